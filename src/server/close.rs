//! Closing a served connection so that the client receives everything it was sent.
//!
//! When hyper is done with a connection (the client closed it, an idle or graceful shutdown
//! ended it), the last response bytes may still sit in the kernel's send buffer while the
//! client keeps sending small frames (HTTP/2 `WINDOW_UPDATE`s and `PING`s as it reads). Closing
//! a socket that has unread received data makes the kernel send a RST (RFC 1122
//! §4.2.2.13), which discards what the client had not read yet: seen as an HTTP/2 download
//! cut short at SIGTERM. So the stream comes back from hyper when it is dropped
//! ([`HandBack`]), is shut down for writing (TLS `close_notify`, then FIN) and what the client
//! still sends is read and discarded until it closes too, bounded in bytes and time, as
//! nginx's `lingering_close` does.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt as _, ReadBuf};
use tokio::sync::oneshot;

use crate::accept;

/// The most a client may still send while its connection closes.
const LINGER_BYTES: usize = 1024 * 1024;
/// How long a closing connection waits for the client to read the end and close.
const LINGER_TIME: Duration = Duration::from_secs(5);

/// A connection's stream, handed back to its owner when hyper drops it.
pub struct HandBack<S> {
    inner: Option<S>,
    back: Option<oneshot::Sender<S>>,
}

/// Wraps `stream`; the receiver gets it back when the wrapper is dropped.
pub fn hand_back<S>(stream: S) -> (HandBack<S>, oneshot::Receiver<S>) {
    let (tx, rx) = oneshot::channel();
    (
        HandBack {
            inner: Some(stream),
            back: Some(tx),
        },
        rx,
    )
}

impl<S> HandBack<S> {
    fn stream(&mut self) -> io::Result<&mut S> {
        self.inner
            .as_mut()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotConnected, "handed back"))
    }
}

impl<S> Drop for HandBack<S> {
    fn drop(&mut self) {
        if let (Some(stream), Some(back)) = (self.inner.take(), self.back.take()) {
            // The owner may have stopped waiting (its task was cancelled): the stream then
            // closes here, as it would have without the wrapper.
            let _ = back.send(stream);
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for HandBack<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut().stream() {
            Ok(s) => Pin::new(s).poll_read(cx, buf),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for HandBack<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut().stream() {
            Ok(s) => Pin::new(s).poll_write(cx, buf),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut().stream() {
            Ok(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner
            .as_ref()
            .is_some_and(AsyncWrite::is_write_vectored)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut().stream() {
            Ok(s) => Pin::new(s).poll_flush(cx),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut().stream() {
            Ok(s) => Pin::new(s).poll_shutdown(cx),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

/// Closes `stream` so that what was written reaches the client: flushed and shut down for
/// writing, then what the client still sends is discarded until it closes (bounded).
pub async fn linger<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S) {
    let closed = async {
        if stream.shutdown().await.is_ok() {
            accept::discard(&mut stream, LINGER_BYTES, LINGER_TIME).await;
        }
    };
    let _ = tokio::time::timeout(LINGER_TIME, closed).await;
}
