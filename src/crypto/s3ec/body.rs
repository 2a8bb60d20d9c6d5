//! [`S3ecBody`]: an S3 Encryption Client object's stored bytes in, plaintext out.

use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use crate::body::BoxError;

use super::super::StreamError;
use super::gcm::{Gcm, RangeCipher, TAG_LEN};
use super::ContentCipher;

/// When plaintext leaves the proxy.
#[derive(Debug, Clone, Copy)]
pub enum Release {
    /// Only after the tag verified: the whole object is held (its size was checked against
    /// the bucket's limit before the read).
    Verified,
    /// As it is decrypted; a tag that fails ends the body with an error, so the client sees a
    /// truncated answer and never a complete one (the bucket opted in).
    Streaming,
    /// A ranged read of the span that starts at plaintext byte `offset` (a block boundary):
    /// counter mode from there, `skip` bytes dropped, then `len` bytes. Nothing is
    /// authenticated (the bucket opted in).
    Range { offset: u64, skip: u64, len: u64 },
}

enum Mode {
    Whole { gcm: Option<Gcm>, hold: bool },
    Range(RangeCipher),
}

pin_project! {
    /// Decrypts `inner`, the stored bytes of an S3EC object (`stored` of them: the whole
    /// message and its tag, or a block-aligned span for a range). Refuses a short body
    /// (`Truncated`), a long one (`TrailingData`) and a tag that does not verify
    /// (`ObjectAuthentication`). Inner trailers are dropped: they describe the ciphertext.
    pub struct S3ecBody<B> {
        #[pin]
        inner: B,
        mode: Mode,
        stored: u64,
        received: u64,
        // Plaintext still to drop (a range's head) and to yield.
        skip: u64,
        to_yield: u64,
        // Verified mode: the plaintext so far. Every mode: the tag's bytes.
        held: BytesMut,
        tag: Vec<u8>,
        done: bool,
    }
}

impl<B> S3ecBody<B> {
    /// `stored` is the length of `inner`; for [`Release::Range`], the span
    /// `crate::crypto::s3ec::cipher_span` gave. For [`Release::Verified`] the caller has bounded
    /// it: the plaintext's room is taken at once.
    pub fn new(inner: B, cipher: &ContentCipher, stored: u64, release: Release) -> Self {
        let (mode, skip, to_yield) = match release {
            Release::Verified => (
                Mode::Whole {
                    gcm: Some(cipher.stream()),
                    hold: true,
                },
                0,
                stored.saturating_sub(TAG_LEN as u64),
            ),
            Release::Streaming => (
                Mode::Whole {
                    gcm: Some(cipher.stream()),
                    hold: false,
                },
                0,
                stored.saturating_sub(TAG_LEN as u64),
            ),
            Release::Range { offset, skip, len } => {
                (Mode::Range(cipher.range_from(offset)), skip, len)
            }
        };
        // The held plaintext is allocated once, at its final size (which the caller bounded):
        // grown by doubling, it would briefly need up to three times the object.
        let held = match mode {
            Mode::Whole { hold: true, .. } => {
                BytesMut::with_capacity(usize::try_from(to_yield).unwrap_or(0))
            }
            Mode::Whole { hold: false, .. } | Mode::Range(_) => BytesMut::new(),
        };
        S3ecBody {
            inner,
            mode,
            stored,
            received: 0,
            skip,
            to_yield,
            held,
            tag: Vec::with_capacity(TAG_LEN),
            done: false,
        }
    }
}

impl<B> Body for S3ecBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = StreamError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, StreamError>>> {
        let mut this = self.project();
        loop {
            if *this.done {
                return Poll::Ready(None);
            }
            let error = match ready!(this.inner.as_mut().poll_frame(cx)) {
                Some(Ok(frame)) => {
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    let start = *this.received;
                    *this.received += data.len() as u64;
                    if *this.received > *this.stored {
                        StreamError::TrailingData {
                            expected: *this.stored,
                        }
                    } else {
                        let out = match this.mode {
                            Mode::Whole { gcm, hold } => {
                                // The message is everything before the last TAG_LEN bytes.
                                let text_end = this.stored.saturating_sub(TAG_LEN as u64);
                                let split = usize::try_from(text_end.saturating_sub(start))
                                    .unwrap_or(usize::MAX)
                                    .min(data.len());
                                let mut text = BytesMut::from(&data[..split]);
                                this.tag.extend_from_slice(&data[split..]);
                                if let Some(gcm) = gcm.as_mut() {
                                    gcm.decrypt(&mut text);
                                }
                                if *hold {
                                    this.held.extend_from_slice(&text);
                                    Bytes::new()
                                } else {
                                    text.freeze()
                                }
                            }
                            Mode::Range(ctr) => {
                                let mut text = BytesMut::from(&data[..]);
                                ctr.apply(&mut text);
                                let mut text = text.freeze();
                                let drop = usize::try_from(*this.skip)
                                    .unwrap_or(usize::MAX)
                                    .min(text.len());
                                *this.skip -= drop as u64;
                                let _ = text.split_to(drop);
                                text.truncate(
                                    usize::try_from(*this.to_yield).unwrap_or(usize::MAX),
                                );
                                *this.to_yield -= text.len() as u64;
                                text
                            }
                        };
                        if out.is_empty() {
                            continue;
                        }
                        if let Mode::Whole { .. } = this.mode {
                            *this.to_yield -= out.len() as u64;
                        }
                        return Poll::Ready(Some(Ok(Frame::data(out))));
                    }
                }
                Some(Err(e)) => StreamError::Body(e.into()),
                None if *this.received == *this.stored => {
                    *this.done = true;
                    let Mode::Whole { gcm, .. } = this.mode else {
                        return Poll::Ready(None);
                    };
                    let gcm = gcm.take().expect("verified once, at the end");
                    if !gcm.verify(this.tag) {
                        this.held.clear();
                        return Poll::Ready(Some(Err(StreamError::ObjectAuthentication)));
                    }
                    if this.held.is_empty() {
                        return Poll::Ready(None);
                    }
                    let out = this.held.split().freeze();
                    *this.to_yield -= out.len() as u64;
                    return Poll::Ready(Some(Ok(Frame::data(out))));
                }
                None => StreamError::Truncated {
                    expected: *this.stored,
                    received: *this.received,
                },
            };
            *this.done = true;
            this.held.clear();
            return Poll::Ready(Some(Err(error)));
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done && self.held.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.to_yield)
    }
}

pin_project! {
    /// Encrypts `inner`, `declared` plaintext bytes, as one S3EC GCM message and appends its
    /// tag: the stored form of a version 3 object. Refuses a body that is not `declared` bytes
    /// long (`PlaintextLength`); the tag is only yielded after the inner body ended, so a
    /// failed body never stores a complete object. Inner trailers are dropped: they describe
    /// the plaintext.
    pub struct SealBody<B> {
        #[pin]
        inner: B,
        gcm: Option<Gcm>,
        declared: u64,
        received: u64,
        // Ciphertext and tag bytes still to yield.
        to_yield: u64,
    }
}

impl<B> SealBody<B> {
    pub fn new(inner: B, cipher: &ContentCipher, declared: u64) -> Self {
        SealBody {
            inner,
            gcm: Some(cipher.stream()),
            declared,
            received: 0,
            to_yield: declared + TAG_LEN as u64,
        }
    }
}

impl<B> Body for SealBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = StreamError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, StreamError>>> {
        let mut this = self.project();
        loop {
            let Some(gcm) = this.gcm.as_mut() else {
                return Poll::Ready(None);
            };
            let error = match ready!(this.inner.as_mut().poll_frame(cx)) {
                Some(Ok(frame)) => {
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    *this.received += data.len() as u64;
                    if *this.received > *this.declared {
                        StreamError::PlaintextLength {
                            declared: *this.declared,
                            received: *this.received,
                        }
                    } else if data.is_empty() {
                        continue;
                    } else {
                        let mut text = BytesMut::from(&data[..]);
                        gcm.encrypt(&mut text);
                        *this.to_yield -= text.len() as u64;
                        return Poll::Ready(Some(Ok(Frame::data(text.freeze()))));
                    }
                }
                Some(Err(e)) => StreamError::Body(e.into()),
                None if *this.received == *this.declared => {
                    let tag = this.gcm.take().expect("sealed once").tag();
                    *this.to_yield = 0;
                    return Poll::Ready(Some(Ok(Frame::data(Bytes::copy_from_slice(&tag)))));
                }
                None => StreamError::PlaintextLength {
                    declared: *this.declared,
                    received: *this.received,
                },
            };
            *this.gcm = None;
            return Poll::Ready(Some(Err(error)));
        }
    }

    fn is_end_stream(&self) -> bool {
        self.gcm.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.to_yield)
    }
}
