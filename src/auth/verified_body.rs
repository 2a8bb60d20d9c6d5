//! [`VerifiedBody`]: the request body, checked as it streams, that never releases its last bytes
//! before every proof about it has held.
//!
//! The proxy streams the body to the upstream while reading it from the client, so a proof that
//! fails at the end (payload hash, last chunk signature, trailing checksum) would come too late if
//! every byte had already been forwarded: a lax backend would store the object. Hence the rule:
//! decoded bytes are released with a lag of one piece, the last piece only after the client's body
//! ended and all proofs passed. On failure the stream ends with an error, so the upstream request
//! is aborted with an incomplete body.
//!
//! Memory is bounded: one signed chunk (at most [`MAX_SIGNED_CHUNK_SIZE`]) while its signature is
//! pending, plus the pieces of the client frame being decoded. The chunk's bytes are also charged
//! to the connection's [`super::BufferBudget`], shared by all of its requests, from when they are
//! buffered until they are handed on.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{ready, Context, Poll};

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue};
use http_body::{Body, Frame, SizeHint};
use md5::Md5;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq;

use crate::body::BoxError;

use super::budget::Charge;
use super::checksum::{ChecksumAlgorithm, Checksummer};
use super::chunked::{Decoder, Event, Framing, MAX_SIGNED_CHUNK_SIZE};
use super::error::{AuthError, BodyError};
use super::sigv4::{self, Signature, SigningKey};

// === Plan: what the head promised about the body ===

/// Everything `verify` learnt from the head about the body, for [`VerifiedBody`] to check.
#[derive(Debug)]
pub(crate) struct BodyPlan {
    pub encoding: Encoding,
    /// Decoded payload length, when declared.
    pub expected_len: Option<u64>,
    pub checksum: Option<ExpectedChecksum>,
    pub content_md5: Option<[u8; 16]>,
}

#[derive(Debug)]
pub(crate) enum Encoding {
    /// The body is the payload. `sha256` is the signed `x-amz-content-sha256`, unless unsigned.
    Plain { sha256: Option<[u8; 32]> },
    /// The body is `aws-chunked`. `signing` is present for `STREAMING-AWS4-HMAC-SHA256-*`;
    /// `trailer` tells whether a trailer section (and, when signed, its signature) is expected.
    Chunked {
        signing: Option<ChunkSigning>,
        trailer: bool,
    },
}

/// What chunk signatures are chained from.
#[derive(Debug)]
pub(crate) struct ChunkSigning {
    pub key: SigningKey,
    pub amz_date: String,
    pub scope: String,
    /// The request's own signature: the first link of the chain.
    pub seed: Signature,
}

#[derive(Debug)]
pub(crate) enum ExpectedChecksum {
    /// From an `x-amz-checksum-*` header.
    Header(ChecksumAlgorithm, Vec<u8>),
    /// Declared in `x-amz-trailer`, to arrive in the aws-chunked trailer.
    Trailer(ChecksumAlgorithm),
}

// === Outbox: the hold-back rule ===

/// Decoded bytes waiting to be released. The most recent piece (`tail`) is held back until the
/// next piece arrives, or until the end once everything is verified.
#[derive(Debug, Default)]
struct Outbox {
    ready: VecDeque<Bytes>,
    tail: Option<Bytes>,
}

impl Outbox {
    fn push(&mut self, piece: Bytes) {
        if piece.is_empty() {
            return;
        }
        if let Some(previous) = self.tail.replace(piece) {
            self.ready.push_back(previous);
        }
    }
}

// === Proofs: the state machine ===

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Reading the client's body.
    Streaming,
    /// The client's body ended and every proof held: release the tail, then the trailers.
    Releasing,
    Done,
    Failed,
}

/// The chain of chunk signatures, and the chunk being buffered until its signature is checked.
#[derive(Debug)]
struct ChunkChain {
    signing: ChunkSigning,
    previous: Signature,
    /// Signature announced by the current chunk's header.
    announced: Signature,
    index: u64,
    data: BytesMut,
    hasher: Sha256,
}

impl ChunkChain {
    fn verify(&mut self, chunk_sha256: &[u8; 32]) -> Result<(), AuthError> {
        let s = &self.signing;
        let sts = sigv4::chunk_string_to_sign(&s.amz_date, &s.scope, &self.previous, chunk_sha256);
        let computed = s.key.sign(sts.as_bytes());
        if !bool::from(computed.ct_eq(&self.announced)) {
            return Err(AuthError::ChunkSignatureDoesNotMatch(self.index));
        }
        self.previous = computed;
        self.index += 1;
        Ok(())
    }
}

#[derive(Debug)]
struct Machine {
    phase: Phase,
    out: Outbox,
    /// Present for aws-chunked bodies.
    decoder: Option<Decoder>,
    /// Present for signed aws-chunked bodies.
    chain: Option<ChunkChain>,
    trailer_expected: bool,
    payload_sha256: Option<(Sha256, [u8; 32])>,
    checksum: Option<(Checksummer, ExpectedChecksum)>,
    md5: Option<(Md5, [u8; 16])>,
    expected_len: Option<u64>,
    /// Decoded bytes received (for aws-chunked: announced by chunk headers).
    received: u64,
    /// Decoded bytes released to the consumer.
    released: u64,
    trailers: Vec<(String, String)>,
    trailer_signature: Option<Signature>,
    /// The validated checksum trailer, emitted after the data.
    trailers_frame: Option<HeaderMap>,
    /// Buffered signed-chunk bytes not yet released, charged to the connection's budget.
    charge: Charge,
}

impl Machine {
    fn new(plan: BodyPlan, charge: Charge) -> Self {
        let (decoder, chain, trailer_expected, payload_sha256) = match plan.encoding {
            Encoding::Plain { sha256 } => (None, None, false, sha256.map(|h| (Sha256::new(), h))),
            Encoding::Chunked { signing, trailer } => {
                let (framing, max) = match signing {
                    Some(_) => (Framing::Signed, MAX_SIGNED_CHUNK_SIZE),
                    // Unsigned chunks are streamed, not buffered: only the declared length bounds them.
                    None => (Framing::Unsigned, u64::MAX),
                };
                let chain = signing.map(|signing| ChunkChain {
                    previous: signing.seed,
                    signing,
                    announced: [0; 32],
                    index: 0,
                    data: BytesMut::new(),
                    hasher: Sha256::new(),
                });
                (Some(Decoder::new(framing, max)), chain, trailer, None)
            }
        };
        let checksum = plan.checksum.map(|expected| {
            let algorithm = match &expected {
                ExpectedChecksum::Header(a, _) | ExpectedChecksum::Trailer(a) => *a,
            };
            (Checksummer::new(algorithm), expected)
        });
        Machine {
            phase: Phase::Streaming,
            out: Outbox::default(),
            decoder,
            chain,
            trailer_expected,
            payload_sha256,
            checksum,
            md5: plan.content_md5.map(|m| (Md5::new(), m)),
            expected_len: plan.expected_len,
            received: 0,
            released: 0,
            trailers: Vec::new(),
            trailer_signature: None,
            trailers_frame: None,
            charge,
        }
    }

    /// Feeds one frame of the client's body.
    fn ingest(&mut self, frame: &Bytes) -> Result<(), AuthError> {
        let Some(mut decoder) = self.decoder.take() else {
            self.count(frame.len() as u64)?;
            self.hash_payload(frame);
            self.out.push(frame.clone());
            return Ok(());
        };
        let result = self.ingest_chunked(&mut decoder, frame);
        self.decoder = Some(decoder);
        result
    }

    fn ingest_chunked(&mut self, decoder: &mut Decoder, frame: &Bytes) -> Result<(), AuthError> {
        let mut input: &[u8] = frame;
        while !input.is_empty() {
            let (n, event) = decoder.decode(input)?;
            input = &input[n..];
            match event {
                None => {}
                Some(Event::Chunk { size, signature }) => self.on_chunk(size, signature)?,
                Some(Event::Data(data)) => {
                    hash_into(&mut self.checksum, &mut self.md5, data);
                    match &mut self.chain {
                        Some(chain) => {
                            self.charge.take(data.len() as u64)?;
                            chain.hasher.update(data);
                            chain.data.extend_from_slice(data);
                        }
                        None => self.out.push(frame.slice_ref(data)),
                    }
                }
                Some(Event::ChunkEnd) => self.on_chunk_end()?,
                Some(Event::Trailer { name, value }) => self.on_trailer(name, value)?,
                Some(Event::End) => self.verify_trailer_signature()?,
            }
        }
        Ok(())
    }

    fn on_chunk(&mut self, size: u64, signature: Option<Signature>) -> Result<(), AuthError> {
        // Fail as soon as the chunks announce more than the declared length.
        let expected = self.expected_len.unwrap_or(u64::MAX);
        match self.received.checked_add(size) {
            Some(received) if received <= expected => self.received = received,
            _ => return Err(AuthError::BodyTooLong { expected }),
        }
        if let (Some(chain), Some(signature)) = (&mut self.chain, signature) {
            chain.announced = signature;
            chain.hasher = Sha256::new();
            // Grows with the data actually received, not with the size the client announced.
            chain.data = BytesMut::new();
            if size == 0 {
                chain.verify(&sigv4::sha256(b""))?;
            }
        }
        Ok(())
    }

    fn on_chunk_end(&mut self) -> Result<(), AuthError> {
        let Some(chain) = &mut self.chain else {
            return Ok(());
        };
        let digest: [u8; 32] = std::mem::take(&mut chain.hasher).finalize().into();
        chain.verify(&digest)?;
        // Release all but the chunk's last byte now: memory stays at one chunk, and the
        // held-back byte still keeps a failing body from completing upstream.
        let mut data = std::mem::take(&mut chain.data).freeze();
        let last = data.split_off(data.len() - 1);
        self.out.push(data);
        self.out.push(last);
        Ok(())
    }

    fn count(&mut self, n: u64) -> Result<(), AuthError> {
        self.received = self.received.saturating_add(n);
        match self.expected_len {
            Some(expected) if self.received > expected => Err(AuthError::BodyTooLong { expected }),
            _ => Ok(()),
        }
    }

    fn hash_payload(&mut self, data: &[u8]) {
        if let Some((hasher, _)) = &mut self.payload_sha256 {
            hasher.update(data);
        }
        hash_into(&mut self.checksum, &mut self.md5, data);
    }

    fn on_trailer(&mut self, name: String, value: String) -> Result<(), AuthError> {
        let declared = match &self.checksum {
            Some((_, ExpectedChecksum::Trailer(a))) => Some(a.header_name()),
            _ => None,
        };
        let seen = self.trailers.iter().any(|(n, _)| *n == name);
        if name == "x-amz-trailer-signature" && self.chain.is_some() && self.trailer_expected {
            let signature =
                sigv4::parse_signature(&value).ok_or(AuthError::TrailerSignatureDoesNotMatch)?;
            if self.trailer_signature.replace(signature).is_some() {
                return Err(AuthError::UndeclaredTrailer(name));
            }
            return Ok(());
        }
        if declared != Some(name.as_str()) || seen {
            return Err(AuthError::UndeclaredTrailer(name));
        }
        self.trailers.push((name, value));
        Ok(())
    }

    /// Signed trailers: the signature chains from the final chunk's and covers every other trailer.
    fn verify_trailer_signature(&mut self) -> Result<(), AuthError> {
        let Some(chain) = self.chain.as_ref().filter(|_| self.trailer_expected) else {
            return Ok(());
        };
        let announced = self
            .trailer_signature
            .ok_or(AuthError::MissingTrailer("x-amz-trailer-signature"))?;
        let canonical =
            sigv4::canonical_trailers(self.trailers.iter().map(|(n, v)| (n.as_str(), v.as_str())));
        let s = &chain.signing;
        let sts = sigv4::trailer_string_to_sign(
            &s.amz_date,
            &s.scope,
            &chain.previous,
            &sigv4::sha256(&canonical),
        );
        if bool::from(s.key.sign(sts.as_bytes()).ct_eq(&announced)) {
            Ok(())
        } else {
            Err(AuthError::TrailerSignatureDoesNotMatch)
        }
    }

    /// The client's body ended: check every remaining proof.
    fn finish(&mut self) -> Result<(), AuthError> {
        if let Some(decoder) = &self.decoder {
            decoder.finish()?;
        }
        if let Some(expected) = self.expected_len {
            if self.received != expected {
                return Err(AuthError::IncompleteBody {
                    expected,
                    received: self.received,
                });
            }
        }
        if let Some((hasher, expected)) = self.payload_sha256.take() {
            let computed: [u8; 32] = hasher.finalize().into();
            if !bool::from(computed.ct_eq(&expected)) {
                return Err(AuthError::ContentSha256Mismatch);
            }
        }
        if let Some((hasher, expected)) = self.checksum.take() {
            let computed = hasher.finalize();
            match expected {
                ExpectedChecksum::Header(algorithm, value) => {
                    if computed != value {
                        return Err(AuthError::ChecksumMismatch(algorithm));
                    }
                }
                ExpectedChecksum::Trailer(algorithm) => {
                    let name = algorithm.header_name();
                    let (_, value) = self
                        .trailers
                        .iter()
                        .find(|(n, _)| n == name)
                        .ok_or(AuthError::MissingTrailer(name))?;
                    let sent = algorithm
                        .decode(value)
                        .ok_or(AuthError::InvalidChecksum(algorithm))?;
                    if computed != sent {
                        return Err(AuthError::ChecksumMismatch(algorithm));
                    }
                    let mut frame = HeaderMap::new();
                    let value = HeaderValue::from_str(value)
                        .map_err(|_| AuthError::InvalidChecksum(algorithm))?;
                    frame.insert(HeaderName::from_static(name), value);
                    self.trailers_frame = Some(frame);
                }
            }
        }
        if let Some((hasher, expected)) = self.md5.take() {
            if hasher.finalize().as_slice() != expected {
                return Err(AuthError::ContentMd5Mismatch);
            }
        }
        Ok(())
    }

    /// The next frame to release, if any, according to the phase.
    fn next_frame(&mut self) -> Option<Frame<Bytes>> {
        if let Some(piece) = self.out.ready.pop_front() {
            return Some(self.release(piece));
        }
        if self.phase != Phase::Releasing {
            return None;
        }
        if let Some(piece) = self.out.tail.take() {
            return Some(self.release(piece));
        }
        self.phase = Phase::Done;
        self.trailers_frame.take().map(Frame::trailers)
    }

    /// Nothing more is released after a failure, not even pieces verified before it.
    fn fail(&mut self) {
        self.phase = Phase::Failed;
        self.out = Outbox::default();
        self.trailers_frame = None;
        if let Some(chain) = &mut self.chain {
            chain.data = BytesMut::new();
        }
        self.charge.give_back_all();
    }

    fn release(&mut self, piece: Bytes) -> Frame<Bytes> {
        self.released += piece.len() as u64;
        // Only signed-chunk bytes were charged, and every released piece of a signed body is one.
        self.charge.give_back(piece.len() as u64);
        Frame::data(piece)
    }

    fn end_of_input(&mut self) -> Result<(), AuthError> {
        self.finish()?;
        self.phase = if self.out.tail.is_none()
            && self.out.ready.is_empty()
            && self.trailers_frame.is_none()
        {
            Phase::Done
        } else {
            Phase::Releasing
        };
        Ok(())
    }
}

fn hash_into(
    checksum: &mut Option<(Checksummer, ExpectedChecksum)>,
    md5: &mut Option<(Md5, [u8; 16])>,
    data: &[u8],
) {
    if let Some((c, _)) = checksum {
        c.update(data);
    }
    if let Some((h, _)) = md5 {
        h.update(data);
    }
}

// === impl VerifiedBody ===

pin_project_lite::pin_project! {
    /// The decoded request payload, verified as it streams. See the module docs for the rule.
    pub struct VerifiedBody<B> {
        #[pin]
        inner: B,
        machine: Box<Machine>,
        failure: Arc<OnceLock<AuthError>>,
    }
}

impl<B: Body> VerifiedBody<B> {
    /// Builds the body; when the client's body is already known to be empty, its proofs are
    /// checked now, so an empty body that cannot be right fails in `verify` and a correct one
    /// reports `is_end_stream` at once.
    pub(super) fn new(inner: B, plan: BodyPlan, charge: Charge) -> Result<Self, AuthError> {
        let mut machine = Box::new(Machine::new(plan, charge));
        if inner.is_end_stream() {
            machine.end_of_input()?;
        }
        Ok(VerifiedBody {
            inner,
            machine,
            failure: Arc::new(OnceLock::new()),
        })
    }
}

impl<B> VerifiedBody<B> {
    /// Set when a proof about the body failed, so the proxy can answer with that S3 error
    /// even though the upstream client only saw the stream abort.
    pub fn failure(&self) -> Arc<OnceLock<AuthError>> {
        Arc::clone(&self.failure)
    }
}

impl<B> std::fmt::Debug for VerifiedBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifiedBody")
            .field("phase", &self.machine.phase)
            .field("received", &self.machine.received)
            .field("released", &self.machine.released)
            .finish_non_exhaustive()
    }
}

impl<B> Body for VerifiedBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let mut this = self.project();
        loop {
            if let Some(frame) = this.machine.next_frame() {
                return Poll::Ready(Some(Ok(frame)));
            }
            if this.machine.phase != Phase::Streaming {
                return Poll::Ready(None);
            }
            let step = match ready!(this.inner.as_mut().poll_frame(cx)) {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => this.machine.ingest(&data),
                    // HTTP trailers from the client are not covered by any signature: they are
                    // never forwarded. Only checksums validated here go out as trailers.
                    Err(_) => Ok(()),
                },
                Some(Err(e)) => {
                    // The client stopped sending (a half-close before the declared length, a
                    // reset, a stall): recorded like a failed proof, so the client hears S3's
                    // 400 rather than the upstream request's abort as a 502.
                    let e: BoxError = e.into();
                    let failure = if crate::body::is_stalled(e.as_ref()) {
                        AuthError::RequestTimeout
                    } else if let Some(own) = e.downcast_ref::<AuthError>() {
                        // An inner body that verifies a framing of its own (a form upload's
                        // closing delimiter) names its failure.
                        own.clone()
                    } else {
                        AuthError::IncompleteBody {
                            expected: this.machine.expected_len.unwrap_or(this.machine.received),
                            received: this.machine.received,
                        }
                    };
                    let _ = this.failure.set(failure);
                    this.machine.fail();
                    return Poll::Ready(Some(Err(BodyError::Client(e))));
                }
                None => this.machine.end_of_input(),
            };
            if let Err(e) = step {
                this.machine.fail();
                // Keep the first failure: it is the one the client should hear about.
                let _ = this.failure.set(e.clone());
                return Poll::Ready(Some(Err(BodyError::Verification(e))));
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.machine.phase, Phase::Done | Phase::Failed)
    }

    fn size_hint(&self) -> SizeHint {
        match (self.machine.phase, self.machine.expected_len) {
            (Phase::Done | Phase::Failed, _) => SizeHint::with_exact(0),
            (_, Some(expected)) => {
                SizeHint::with_exact(expected.saturating_sub(self.machine.released))
            }
            (_, None) => SizeHint::default(),
        }
    }
}
