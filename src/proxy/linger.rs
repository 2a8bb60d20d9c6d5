//! Reading what is left of a refused request's body before answering.
//!
//! When the proxy refuses a request before reading its whole body (a bad signature found in
//! the second aws-chunked chunk, an unknown key on a PUT), hyper closes the connection after
//! the response. Closing a socket whose receive buffer still holds unread bytes makes the
//! kernel send a reset (RFC 1122 §4.2.2.13), and a client still writing its body then sees
//! "broken pipe" or "connection reset" instead of the S3 error that explains the refusal.
//! nginx solves the same problem with its "lingering close"; we do it before answering: read
//! and discard up to [`LINGER_BYTES`] for at most [`LINGER_TIME`], so clients that send a
//! body of ordinary size always read the error. Bigger bodies are cut off as before.

use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{header, Request};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use crate::body::{BoxError, ReadTimeout};

/// The most a refused request may still send before the connection is cut.
pub const LINGER_BYTES: u64 = 8 * 1024 * 1024;
/// The longest the proxy waits for it.
pub const LINGER_TIME: Duration = Duration::from_secs(5);

/// The client's body, readable by the pipeline while [`handle`](super::handle) keeps a
/// [`Remainder`] to drain after a refusal.
#[derive(Debug)]
pub struct ClientBody {
    shared: Arc<Mutex<Inner>>,
}

/// What `handle` keeps of the body.
#[derive(Debug)]
pub struct Remainder {
    shared: Arc<Mutex<Inner>>,
    awaits_continue: bool,
}

#[derive(Debug)]
struct Inner {
    /// Taken by [`Remainder::drain`]; whatever might still hold a [`ClientBody`] then (an
    /// upstream connection task winding down) only sees the end of the stream. Dropped as
    /// soon as reading it fails, so hyper closes the connection after the answer instead of
    /// waiting for the rest.
    body: Option<ReadTimeout<Incoming>>,
    /// Whether anything asked for the body: until then hyper has not sent `100 Continue`,
    /// and a client that asked for it must not be invited to send a body only to discard it.
    polled: bool,
    /// Body bytes received from the client so far, as sent (an aws-chunked body with its
    /// chunk signatures), whether the pipeline read them or a drain discarded them.
    received: u64,
}

/// Splits the client's request into the one the pipeline reads and the remainder `handle`
/// keeps. The body fails with [`crate::body::Stalled`] when the client sends nothing of it
/// for `body_timeout` while it is being read.
pub fn split(req: Request<Incoming>, body_timeout: Duration) -> (Request<ClientBody>, Remainder) {
    let awaits_continue = req
        .headers()
        .get(header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let (parts, body) = req.into_parts();
    let shared = Arc::new(Mutex::new(Inner {
        body: Some(ReadTimeout::new(body, body_timeout)),
        polled: false,
        received: 0,
    }));
    let body = ClientBody {
        shared: Arc::clone(&shared),
    };
    (
        Request::from_parts(parts, body),
        Remainder {
            shared,
            awaits_continue,
        },
    )
}

impl Body for ClientBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut inner = self.shared.lock().unwrap_or_else(PoisonError::into_inner);
        inner.polled = true;
        let polled = match inner.body.as_mut() {
            Some(body) => Pin::new(body).poll_frame(cx),
            None => return Poll::Ready(None),
        };
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                inner.received += frame.data_ref().map_or(0, |d| d.len() as u64);
            }
            Poll::Ready(Some(Err(_))) => inner.body = None,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.shared
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .body
            .as_ref()
            .is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.shared
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .body
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Body::size_hint)
    }
}

impl Remainder {
    /// Body bytes received from the client so far (for metrics and the access log: what
    /// the client sent, in every body form, not what it declared).
    pub fn received(&self) -> u64 {
        self.shared
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .received
    }

    /// Reads and discards the rest of the body, within the limits above. Returns the number
    /// of bytes discarded.
    pub async fn drain(&self) -> u64 {
        let Some(body) = self.take() else {
            return 0;
        };
        let mut discarded = 0u64;
        let read = async {
            let mut body = body;
            while discarded < LINGER_BYTES {
                match body.frame().await {
                    Some(Ok(frame)) => {
                        discarded += frame.data_ref().map_or(0, |d| d.len() as u64);
                    }
                    Some(Err(_)) | None => break,
                }
            }
        };
        // Running out of time is the expected end for a client that keeps sending.
        let _ = tokio::time::timeout(LINGER_TIME, read).await;
        self.shared
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .received += discarded;
        discarded
    }

    /// The body, if there is anything to drain.
    fn take(&self) -> Option<ReadTimeout<Incoming>> {
        let mut inner = self.shared.lock().unwrap_or_else(PoisonError::into_inner);
        if self.awaits_continue && !inner.polled {
            return None;
        }
        inner.body.take().filter(|b| !b.is_end_stream())
    }
}
