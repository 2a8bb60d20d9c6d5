//! [`DecryptSegments`]: one fetched ciphertext span that crosses several segments (the parts of
//! a multipart object, `docs/format.md` §7) in, the plaintext range out.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use crate::body::BoxError;

use super::format::{CipherRange, PartKey};
use super::{DecryptBody, StreamError};

/// One segment's share of the fetched span: its key and the chunks fetched from it.
pub struct Segment {
    pub key: PartKey,
    pub range: CipherRange,
}

/// Decrypts the concatenation of the [`Segment`]s' ciphertext ranges, in order, each with its
/// own [`DecryptBody`] (so every chunk is authenticated at its position under its part's key
/// before release), and refuses bytes past the last one. Memory: one [`DecryptBody`] at a time.
pub struct DecryptSegments<B> {
    current: Option<DecryptBody<Slice<B>>>,
    rest: VecDeque<Segment>,
    /// The source between segments, or after the last one.
    idle: Option<Slice<B>>,
    expected: u64,
}

impl<B> DecryptSegments<B> {
    pub fn new(inner: B, segments: Vec<Segment>) -> Self {
        let expected = segments
            .iter()
            .map(|s| s.range.cipher_end() - s.range.cipher_start())
            .sum();
        DecryptSegments {
            current: None,
            rest: segments.into(),
            idle: Some(Slice {
                inner,
                leftover: Bytes::new(),
                remaining: 0,
            }),
            expected,
        }
    }
}

impl<B> Body for DecryptSegments<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = StreamError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, StreamError>>> {
        let this = &mut *self;
        loop {
            if let Some(current) = this.current.as_mut() {
                match ready!(Pin::new(current).poll_frame(cx)) {
                    Some(Ok(frame)) => return Poll::Ready(Some(Ok(frame))),
                    Some(Err(e)) => {
                        this.current = None;
                        this.rest.clear();
                        return Poll::Ready(Some(Err(e)));
                    }
                    None => {
                        let done = this.current.take().expect("polled above");
                        this.idle = Some(done.into_inner());
                    }
                }
            }
            let Some(mut source) = this.idle.take() else {
                return Poll::Ready(None);
            };
            if let Some(next) = this.rest.pop_front() {
                source.remaining = next.range.cipher_end() - next.range.cipher_start();
                this.current = Some(DecryptBody::new(source, next.key, next.range));
                continue;
            }
            // After the last segment, the source must be exhausted.
            if !source.leftover.is_empty() {
                return Poll::Ready(Some(Err(StreamError::TrailingData {
                    expected: this.expected,
                })));
            }
            match Pin::new(&mut source.inner).poll_frame(cx) {
                Poll::Pending => {
                    this.idle = Some(source);
                    return Poll::Pending;
                }
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Ready(Some(Err(e))) => {
                    return Poll::Ready(Some(Err(StreamError::Body(e.into()))))
                }
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) if !data.is_empty() => {
                        return Poll::Ready(Some(Err(StreamError::TrailingData {
                            expected: this.expected,
                        })))
                    }
                    Ok(_) | Err(_) => this.idle = Some(source),
                },
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.current.is_none() && self.rest.is_empty() && self.idle.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        let rest: u64 = self.rest.iter().map(|s| s.range.plain_len()).sum();
        let current = self
            .current
            .as_ref()
            .and_then(|c| c.size_hint().exact())
            .unwrap_or(0);
        SizeHint::with_exact(rest + current)
    }
}

/// At most `remaining` bytes of the source; what a frame holds beyond them waits in
/// `leftover` for the next segment.
struct Slice<B> {
    inner: B,
    leftover: Bytes,
    remaining: u64,
}

impl<B> Body for Slice<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        loop {
            if this.remaining == 0 {
                return Poll::Ready(None);
            }
            if !this.leftover.is_empty() {
                let n = usize::try_from(this.remaining)
                    .unwrap_or(usize::MAX)
                    .min(this.leftover.len());
                this.remaining -= n as u64;
                return Poll::Ready(Some(Ok(Frame::data(this.leftover.split_to(n)))));
            }
            match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        this.leftover = data;
                    }
                }
                Some(Err(e)) => return Poll::Ready(Some(Err(e.into()))),
                None => return Poll::Ready(None),
            }
        }
    }
}
