//! [`DecryptBody`]: fetched ciphertext chunks in, a plaintext range out (`docs/format.md` §3, §4).

use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf as _, Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use crate::body::BoxError;

use super::format::{CipherRange, PartKey, SegmentPrefix, CIPHER_CHUNK_SIZE};
use super::StreamError;

pin_project! {
    /// Decrypts `inner`, the bytes `range.cipher_start()..range.cipher_end()` of one segment, and
    /// yields the plaintext range that `range` describes. Each chunk is released only after its tag
    /// verifies at its position, so no unauthenticated byte is ever yielded. Memory: at most one
    /// ciphertext chunk plus the inner frame being consumed.
    ///
    /// Refuses a short body (`Truncated`), a long one (`TrailingData`), chunks that do not verify
    /// at their position (`ChunkAuthentication`: tampering, reordering, duplication, splicing, or
    /// truncation at a chunk boundary), and chunks of different uploads of one part
    /// (`SegmentMismatch`). Inner trailers are dropped (see the module docs).
    pub struct DecryptBody<B> {
        #[pin]
        inner: B,
        state: State,
        key: PartKey,
        range: CipherRange,
        // Prefix of the first chunk; every later chunk must carry it.
        prefix: Option<SegmentPrefix>,
        next_index: u32,
        // Ciphertext bytes received from `inner`.
        received: u64,
        // Ciphertext bytes decrypted.
        consumed: u64,
        // Plaintext bytes still to drop from the first chunk, and to yield.
        skip: usize,
        to_yield: u64,
        // The current chunk's ciphertext so far.
        buf: BytesMut,
        // The rest of the inner frame being consumed.
        pending: Bytes,
    }
}

#[derive(Debug)]
enum State {
    Reading,
    Done,
}

impl<B> DecryptBody<B> {
    /// `inner` must start at `range.cipher_start()`: the upstream GET sends `range.http_range()`.
    pub fn new(inner: B, key: PartKey, range: CipherRange) -> Self {
        DecryptBody {
            inner,
            state: State::Reading,
            key,
            prefix: None,
            next_index: range.first_chunk(),
            received: 0,
            consumed: 0,
            skip: range.skip_in_first_chunk(),
            to_yield: range.plain_len(),
            range,
            buf: BytesMut::new(),
            pending: Bytes::new(),
        }
    }

    /// The wrapped body, once this one has ended: everything it yielded was consumed.
    pub fn into_inner(self) -> B {
        self.inner
    }
}

impl<B> Body for DecryptBody<B>
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
        let expected = this.range.cipher_end() - this.range.cipher_start();
        loop {
            if let State::Done = this.state {
                return Poll::Ready(None);
            }
            // Every chunk is full except the segment's final one, which ends the range.
            let want = usize::try_from((expected - *this.consumed).min(CIPHER_CHUNK_SIZE as u64))
                .expect("at most CIPHER_CHUNK_SIZE");
            let n = (want - this.buf.len()).min(this.pending.len());
            if this.buf.is_empty() {
                // Room for the whole chunk at once, so that gathering it from the upstream's
                // frames copies each byte once: grown frame by frame, a `BytesMut` that was
                // split reallocates and copies what it holds when it passes 64 KiB.
                this.buf.reserve(want);
            }
            this.buf.extend_from_slice(&this.pending.split_to(n));
            if want > 0 && this.buf.len() == want {
                let index = *this.next_index;
                let is_final = index == this.range.final_chunk();
                let opened = this.key.open_chunk(index, is_final, this.buf.split());
                let result = match (opened, *this.prefix) {
                    (None, _) => Err(StreamError::ChunkAuthentication { index }),
                    (Some((prefix, _)), Some(first)) if prefix != first => {
                        Err(StreamError::SegmentMismatch { index })
                    }
                    (Some((prefix, plaintext)), _) => {
                        *this.prefix = Some(prefix);
                        Ok(plaintext)
                    }
                };
                let mut plaintext = match result {
                    Ok(plaintext) => plaintext,
                    Err(e) => {
                        *this.state = State::Done;
                        return Poll::Ready(Some(Err(e)));
                    }
                };
                *this.consumed += want as u64;
                *this.next_index = index.wrapping_add(1);
                plaintext.advance((*this.skip).min(plaintext.len()));
                *this.skip = 0;
                plaintext.truncate(usize::try_from(*this.to_yield).unwrap_or(usize::MAX));
                *this.to_yield -= plaintext.len() as u64;
                if plaintext.is_empty() {
                    continue;
                }
                return Poll::Ready(Some(Ok(Frame::data(plaintext))));
            }
            let error = match ready!(this.inner.as_mut().poll_frame(cx)) {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => {
                        *this.received += data.len() as u64;
                        if *this.received <= expected {
                            *this.pending = data;
                            continue;
                        }
                        StreamError::TrailingData { expected }
                    }
                    Err(_trailers) => continue,
                },
                Some(Err(e)) => StreamError::Body(e.into()),
                None if *this.received == expected => {
                    *this.state = State::Done;
                    return Poll::Ready(None);
                }
                None => StreamError::Truncated {
                    expected,
                    received: *this.received,
                },
            };
            *this.state = State::Done;
            return Poll::Ready(Some(Err(error)));
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.state, State::Done)
    }

    fn size_hint(&self) -> SizeHint {
        match self.state {
            State::Done => SizeHint::with_exact(0),
            State::Reading => SizeHint::with_exact(self.to_yield),
        }
    }
}
