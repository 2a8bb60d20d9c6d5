//! Closes connections that make no progress: no request started or being answered, and no
//! response bytes produced, for the configured time. hyper's header-read timeout only starts
//! once a request's first byte arrives, so without this an idle keep-alive connection would
//! live forever.
//!
//! Progress is counted at the request level, not in socket bytes. An HTTP/2 client can keep a
//! socket busy without asking for anything: `PING` (RFC 9113 §6.7), `SETTINGS` (§6.5) and
//! `WINDOW_UPDATE` (§6.9) frames are answered by the h2 layer and never reach the service, so
//! they do not count. TCP keep-alive probes (RFC 1122 §4.2.3.6) carry no data and never reach
//! the process at all.
//!
//! The first request is held to a shorter deadline, the handshake's ([`Activity::no_request_by`]):
//! a connection that never asks for anything is not a keep-alive connection between requests.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::time::Instant;

/// One connection's progress: when it last made some, and how many requests are being
/// answered. Cloned into the service and into each response body.
#[derive(Clone)]
pub struct Activity(Arc<Shared>);

struct Shared {
    /// What `last_ms` counts from.
    origin: Instant,
    /// Milliseconds from `origin` to the last progress.
    last_ms: AtomicU64,
    in_flight: AtomicUsize,
    /// Whether a request has reached the service (its head was read whole).
    requested: AtomicBool,
}

impl Activity {
    pub fn new() -> Self {
        Activity(Arc::new(Shared {
            origin: Instant::now(),
            last_ms: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            requested: AtomicBool::new(false),
        }))
    }

    /// Records progress now.
    pub fn touch(&self) {
        let ms = u64::try_from(self.0.origin.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.0.last_ms.fetch_max(ms, Ordering::Relaxed);
    }

    /// A request is being answered until the guard is dropped: a slow upstream does not make
    /// its connection idle.
    pub fn enter(&self) -> Busy {
        self.touch();
        self.0.in_flight.fetch_add(1, Ordering::AcqRel);
        self.0.requested.store(true, Ordering::Release);
        Busy(self.clone())
    }

    /// Resolves at `deadline` if no request has arrived by then; never resolves otherwise.
    pub async fn no_request_by(&self, deadline: Instant) {
        tokio::time::sleep_until(deadline).await;
        if self.0.requested.load(Ordering::Acquire) {
            std::future::pending::<()>().await;
        }
    }

    fn last(&self) -> Instant {
        self.0.origin + Duration::from_millis(self.0.last_ms.load(Ordering::Relaxed))
    }

    fn is_busy(&self) -> bool {
        self.0.in_flight.load(Ordering::Acquire) > 0
    }

    /// Resolves once the connection has made no progress for `timeout` and no request is
    /// being answered.
    pub async fn idle(&self, timeout: Duration) {
        loop {
            let deadline = self.last() + timeout;
            if Instant::now() < deadline {
                tokio::time::sleep_until(deadline).await;
            } else if self.is_busy() {
                // The request's end counts as progress, so the connection can be idle no
                // sooner than `timeout` after it: look again then.
                tokio::time::sleep(timeout).await;
            } else {
                return;
            }
        }
    }
}

/// Marks a request in flight until dropped; its end is progress.
pub struct Busy(Activity);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0 .0.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.0.touch();
    }
}

pin_project_lite::pin_project! {
    /// A response body whose frames count as its connection's progress: a download keeps its
    /// connection open for as long as the client reads it, however long it takes.
    pub struct Progress<B> {
        #[pin]
        inner: B,
        activity: Activity,
    }
}

impl<B> Progress<B> {
    pub fn new(inner: B, activity: Activity) -> Self {
        Progress { inner, activity }
    }
}

impl<B: Body<Data = Bytes>> Body for Progress<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.project();
        let frame = ready!(this.inner.poll_frame(cx));
        if matches!(frame, Some(Ok(_))) {
            this.activity.touch();
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Full};

    const TIMEOUT: Duration = Duration::from_secs(5);
    const JUST_BEFORE: Duration = Duration::from_millis(4990);

    /// Whether `idle` resolves within `within`.
    async fn idles_within(activity: &Activity, within: Duration) -> bool {
        tokio::time::timeout(within, activity.idle(TIMEOUT))
            .await
            .is_ok()
    }

    #[tokio::test(start_paused = true)]
    async fn idle_after_the_timeout_without_progress() {
        let activity = Activity::new();
        assert!(!idles_within(&activity, JUST_BEFORE).await);
        assert!(idles_within(&activity, Duration::from_millis(20)).await);
    }

    #[tokio::test(start_paused = true)]
    async fn progress_postpones_idleness() {
        let activity = Activity::new();
        tokio::time::sleep(Duration::from_secs(4)).await;
        activity.touch();
        assert!(!idles_within(&activity, Duration::from_secs(4)).await);
        assert!(idles_within(&activity, Duration::from_secs(2)).await);
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_in_flight_keeps_the_connection_until_it_ends() {
        let activity = Activity::new();
        let busy = activity.enter();
        assert!(!idles_within(&activity, TIMEOUT * 3).await);
        drop(busy);
        // Its end is progress: a full timeout from there.
        assert!(!idles_within(&activity, JUST_BEFORE).await);
        assert!(idles_within(&activity, Duration::from_millis(20)).await);
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_without_a_request_ends_at_the_deadline() {
        let activity = Activity::new();
        let deadline = Instant::now() + TIMEOUT;
        let silent = tokio::time::timeout(TIMEOUT * 2, activity.no_request_by(deadline));
        assert!(silent.await.is_ok());
        assert!(Instant::now() >= deadline);

        let activity = Activity::new();
        drop(activity.enter());
        let served = tokio::time::timeout(TIMEOUT * 2, activity.no_request_by(deadline));
        assert!(
            served.await.is_err(),
            "a connection that was asked something was cut"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn response_frames_are_progress() {
        let activity = Activity::new();
        let mut body = Progress::new(Full::new(Bytes::from_static(b"x")), activity.clone());
        tokio::time::sleep(Duration::from_secs(4)).await;
        body.frame().await.unwrap().unwrap();
        assert!(!idles_within(&activity, Duration::from_secs(4)).await);
        assert!(idles_within(&activity, Duration::from_secs(2)).await);
    }
}
