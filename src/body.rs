//! The body type that flows through the proxy in both directions, and the read deadline on
//! the client's request body.

use std::future::Future as _;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Empty, Full};
use tokio::time::{Instant, Sleep};

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

// === impl ReadTimeout ===

/// The client sent no request body bytes for `after` while the proxy was waiting for them
/// (`[server] body_timeout_secs`).
#[derive(Debug, thiserror::Error)]
#[error("the client sent nothing of the request body for {} s", .after.as_secs())]
pub struct Stalled {
    pub after: Duration,
}

/// Where a [`ReadTimeout`] is between two frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wait {
    /// Not waiting on the client: the last poll returned a frame, or none happened yet.
    Idle,
    /// The last poll found nothing; the timer runs.
    Waiting,
    /// The timer fired; the body is over.
    Stalled,
}

pin_project_lite::pin_project! {
    /// A body that fails with [`Stalled`] when its source has nothing for `timeout` while it
    /// is being read: the gap between two successive reads, not the whole transfer, as nginx's
    /// `client_body_timeout`. The timer runs only while the consumer waits on the client, so
    /// a consumer that is itself slow (an upstream that reads slowly) never trips it.
    #[derive(Debug)]
    pub struct ReadTimeout<B> {
        #[pin]
        inner: B,
        // Boxed so that the body stays `Unpin` when its source is, as hyper's `Incoming`.
        timer: Pin<Box<Sleep>>,
        timeout: Duration,
        wait: Wait,
    }
}

impl<B> ReadTimeout<B> {
    /// Needs a tokio runtime with time enabled.
    pub fn new(inner: B, timeout: Duration) -> Self {
        ReadTimeout {
            inner,
            timer: Box::pin(tokio::time::sleep(timeout)),
            timeout,
            wait: Wait::Idle,
        }
    }
}

impl<B> http_body::Body for ReadTimeout<B>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.project();
        let stalled = || -> BoxError {
            Box::new(Stalled {
                after: *this.timeout,
            })
        };
        // Failed for good: an end of stream now would pass a truncated body as complete.
        if *this.wait == Wait::Stalled {
            return Poll::Ready(Some(Err(stalled())));
        }
        if let Poll::Ready(frame) = this.inner.poll_frame(cx) {
            *this.wait = Wait::Idle;
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        if *this.wait == Wait::Idle {
            this.timer.as_mut().reset(Instant::now() + *this.timeout);
            *this.wait = Wait::Waiting;
        }
        ready!(this.timer.as_mut().poll(cx));
        *this.wait = Wait::Stalled;
        Poll::Ready(Some(Err(stalled())))
    }

    fn is_end_stream(&self) -> bool {
        self.wait != Wait::Stalled && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Whether `error`, or an error it was caused by, is a [`Stalled`] body.
pub fn is_stalled(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(e) = cause {
        if e.is::<Stalled>() {
            return true;
        }
        cause = e.source();
    }
    false
}

#[cfg(test)]
mod tests;
