//! The body type that flows through the proxy in both directions.

use bytes::Bytes;
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Empty, Full};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A streamed body. Unsync because hyper's `Incoming` is the common source.
pub type Body = UnsyncBoxBody<Bytes, BoxError>;

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

pub fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

/// Gathers the data frames an inner body has ready into frames of up to [`COALESCE_BYTES`],
/// without ever waiting for more: when the inner body is pending, what was gathered goes out.
///
/// Why: some backends send bodies in 4 KiB pieces, and forwarding each as its own TLS record
/// and `write()` cost the proxy 7.7x more CPU per MiB on GETs than on PUTs
/// (docs/benchmarks.md, "Surprises").
pub const COALESCE_BYTES: usize = 64 * 1024;

pin_project_lite::pin_project! {
    pub struct Coalesce<B> {
        #[pin]
        inner: B,
        buf: bytes::BytesMut,
        // A non-data frame (trailers) or an error that arrived while data was gathered; it
        // goes out right after that data.
        held: Option<Result<http_body::Frame<Bytes>, BoxError>>,
        done: bool,
    }
}

impl<B> Coalesce<B> {
    pub fn new(inner: B) -> Self {
        Coalesce {
            inner,
            buf: bytes::BytesMut::new(),
            held: None,
            done: false,
        }
    }
}

impl<B> http_body::Body for Coalesce<B>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
        use std::task::Poll;
        let mut this = self.project();
        if this.buf.is_empty() {
            if let Some(held) = this.held.take() {
                return Poll::Ready(Some(held));
            }
        }
        while !*this.done && this.held.is_none() && this.buf.len() < COALESCE_BYTES {
            match this.inner.as_mut().poll_frame(cx) {
                Poll::Pending => break,
                Poll::Ready(None) => *this.done = true,
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) if this.buf.is_empty() && data.len() >= COALESCE_BYTES => {
                        return Poll::Ready(Some(Ok(http_body::Frame::data(data))));
                    }
                    Ok(data) => this.buf.extend_from_slice(&data),
                    Err(frame) => *this.held = Some(Ok(frame)),
                },
                Poll::Ready(Some(Err(e))) => *this.held = Some(Err(e.into())),
            }
        }
        if !this.buf.is_empty() {
            return Poll::Ready(Some(Ok(http_body::Frame::data(this.buf.split().freeze()))));
        }
        if let Some(held) = this.held.take() {
            return Poll::Ready(Some(held));
        }
        if *this.done {
            Poll::Ready(None)
        } else {
            Poll::Pending
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done && self.buf.is_empty() && self.held.is_none()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        let mut hint = self.inner.size_hint();
        let buffered = self.buf.len() as u64;
        hint.set_lower(hint.lower() + buffered);
        if let Some(upper) = hint.upper() {
            hint.set_upper(upper + buffered);
        }
        hint
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use http_body::{Body as _, Frame};

    use super::*;

    /// Yields each step in turn; `None` steps are `Pending` (with an immediate wake).
    struct Steps(VecDeque<Option<Frame<Bytes>>>);

    impl http_body::Body for Steps {
        type Data = Bytes;
        type Error = BoxError;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
            match self.0.pop_front() {
                None => Poll::Ready(None),
                Some(None) => {
                    cx.waker().wake_by_ref();
                    Poll::Pending
                }
                Some(Some(f)) => Poll::Ready(Some(Ok(f))),
            }
        }
    }

    fn data(n: usize, byte: u8) -> Frame<Bytes> {
        Frame::data(Bytes::from(vec![byte; n]))
    }

    #[tokio::test]
    async fn ready_pieces_are_gathered_and_nothing_waits() {
        let mut trailers = http::HeaderMap::new();
        trailers.insert("x-t", http::HeaderValue::from_static("1"));
        let mut steps: VecDeque<_> = (0..20).map(|i| Some(data(4096, i))).collect();
        steps.push_back(None);
        steps.push_back(Some(data(10, 99)));
        steps.push_back(Some(Frame::trailers(trailers.clone())));
        let mut body = std::pin::pin!(Coalesce::new(Steps(steps)));
        let mut sizes = Vec::new();
        let mut out = Vec::new();
        let mut got_trailers = None;
        while let Some(frame) = std::future::poll_fn(|cx| body.as_mut().poll_frame(cx)).await {
            match frame.unwrap().into_data() {
                Ok(d) => {
                    sizes.push(d.len());
                    out.extend_from_slice(&d);
                }
                Err(f) => got_trailers = f.into_trailers().ok(),
            }
        }
        // 16 x 4 KiB fill one frame, the next 4 go out when the source is pending, then the
        // last piece; the trailers follow the data, unchanged.
        assert_eq!(sizes, [65536, 16384, 10]);
        let want: Vec<u8> = (0..20u8)
            .flat_map(|i| vec![i; 4096])
            .chain(vec![99; 10])
            .collect();
        assert_eq!(out, want);
        assert_eq!(got_trailers, Some(trailers));
    }
}
