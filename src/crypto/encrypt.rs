//! [`EncryptBody`]: a plaintext body of declared length in, one ciphertext segment out
//! (`docs/format.md` §3).

use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use crate::body::BoxError;

use super::format::{ciphertext_len, FormatError, PartKey, SegmentPrefix, CHUNK_SIZE};
use super::StreamError;

pin_project! {
    /// Encrypts `inner`, which must yield exactly the declared number of bytes, into one segment
    /// under a part key. Yields one frame per chunk; its `size_hint` is exact, so it can be sent with
    /// `Content-Length: ciphertext_len(declared)`. Memory: at most one plaintext chunk plus the
    /// inner frame being consumed.
    ///
    /// The final chunk is sealed only after `inner` has ended without error. So when `inner` fails
    /// late (a checksum or signature checked at its end), the upstream never receives a complete
    /// segment. Inner trailers are dropped (see the module docs).
    pub struct EncryptBody<B> {
        #[pin]
        inner: B,
        state: State,
        key: PartKey,
        prefix: SegmentPrefix,
        declared: u64,
        received: u64,
        next_index: u32,
        final_index: u32,
        // The current chunk's plaintext so far, when it spans inner frames.
        buf: BytesMut,
        // The rest of the inner frame being consumed.
        pending: Bytes,
        // Ciphertext bytes not yet yielded.
        remaining: u64,
    }
}

#[derive(Debug)]
enum State {
    /// Collecting the plaintext of chunk `next_index`.
    Filling,
    /// The final chunk's plaintext is complete; waiting for `inner` to end before sealing it.
    AwaitingEnd(Bytes),
    Done,
}

impl<B> EncryptBody<B> {
    /// `declared` is the plaintext length: `Content-Length`, or `x-amz-decoded-content-length`.
    pub fn new(inner: B, key: PartKey, declared: u64) -> Result<Self, FormatError> {
        let remaining = ciphertext_len(declared).ok_or(FormatError::TooLarge(declared))?;
        let final_index = u32::try_from(declared.saturating_sub(1) / CHUNK_SIZE as u64)
            .expect("MAX_SEGMENT_LEN bounds the chunk count");
        Ok(EncryptBody {
            inner,
            state: State::Filling,
            key,
            prefix: SegmentPrefix::generate(),
            declared,
            received: 0,
            next_index: 0,
            final_index,
            buf: BytesMut::new(),
            pending: Bytes::new(),
            remaining,
        })
    }
}

/// Plaintext length of chunk `index` of a segment of `declared` bytes.
fn chunk_len(declared: u64, index: u32) -> usize {
    let start = u64::from(index) * CHUNK_SIZE as u64;
    usize::try_from((declared - start).min(CHUNK_SIZE as u64)).expect("at most CHUNK_SIZE")
}

impl<B> Body for EncryptBody<B>
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
            match this.state {
                State::Done => return Poll::Ready(None),
                State::Filling => {
                    let want = chunk_len(*this.declared, *this.next_index);
                    let plaintext = if this.buf.is_empty() && this.pending.len() >= want {
                        // The whole chunk is in one inner frame: no copy.
                        Some(this.pending.split_to(want))
                    } else {
                        let n = (want - this.buf.len()).min(this.pending.len());
                        this.buf.extend_from_slice(&this.pending.split_to(n));
                        (this.buf.len() == want).then(|| this.buf.split().freeze())
                    };
                    if let Some(plaintext) = plaintext {
                        if *this.next_index == *this.final_index {
                            *this.state = State::AwaitingEnd(plaintext);
                            continue;
                        }
                        let chunk =
                            this.key
                                .seal_chunk(*this.prefix, *this.next_index, false, &plaintext);
                        *this.next_index += 1;
                        *this.remaining -= chunk.len() as u64;
                        return Poll::Ready(Some(Ok(Frame::data(chunk))));
                    }
                    let error = match ready!(this.inner.as_mut().poll_frame(cx)) {
                        Some(Ok(frame)) => match frame.into_data() {
                            Ok(data) => {
                                *this.received += data.len() as u64;
                                if *this.received <= *this.declared {
                                    *this.pending = data;
                                    continue;
                                }
                                StreamError::PlaintextLength {
                                    declared: *this.declared,
                                    received: *this.received,
                                }
                            }
                            Err(_trailers) => continue,
                        },
                        Some(Err(e)) => StreamError::Body(e.into()),
                        None => StreamError::PlaintextLength {
                            declared: *this.declared,
                            received: *this.received,
                        },
                    };
                    *this.state = State::Done;
                    return Poll::Ready(Some(Err(error)));
                }
                State::AwaitingEnd(plaintext) => {
                    let error = match ready!(this.inner.as_mut().poll_frame(cx)) {
                        Some(Ok(frame)) => match frame.into_data() {
                            Ok(data) if data.is_empty() => continue,
                            Ok(data) => StreamError::PlaintextLength {
                                declared: *this.declared,
                                received: *this.received + data.len() as u64,
                            },
                            Err(_trailers) => continue,
                        },
                        Some(Err(e)) => StreamError::Body(e.into()),
                        None => {
                            let chunk = this.key.seal_chunk(
                                *this.prefix,
                                *this.next_index,
                                true,
                                plaintext,
                            );
                            *this.state = State::Done;
                            *this.remaining -= chunk.len() as u64;
                            debug_assert_eq!(*this.remaining, 0);
                            return Poll::Ready(Some(Ok(Frame::data(chunk))));
                        }
                    };
                    *this.state = State::Done;
                    return Poll::Ready(Some(Err(error)));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.state, State::Done)
    }

    fn size_hint(&self) -> SizeHint {
        match self.state {
            State::Done => SizeHint::with_exact(0),
            State::Filling | State::AwaitingEnd(_) => SizeHint::with_exact(self.remaining),
        }
    }
}
