//! Closes connections that sit idle: no bytes in either direction and no request being
//! answered for the configured time. hyper's header-read timeout only starts once a request's
//! first byte arrives, so without this an idle keep-alive connection would live forever.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// Requests being answered on one connection. The service holds a [`Busy`] guard while it
/// works, so a slow upstream does not count as idleness.
#[derive(Clone, Default)]
pub struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    pub fn enter(&self) -> Busy {
        self.0.fetch_add(1, Ordering::AcqRel);
        Busy(self.0.clone())
    }

    fn is_idle(&self) -> bool {
        self.0.load(Ordering::Acquire) == 0
    }
}

/// Marks a request in flight until dropped.
pub struct Busy(Arc<AtomicUsize>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// An I/O stream whose reads fail with `TimedOut` after `timeout` without activity.
pub struct IdleTimeout<T> {
    inner: T,
    sleep: Pin<Box<Sleep>>,
    timeout: Duration,
    in_flight: InFlight,
}

impl<T> IdleTimeout<T> {
    pub fn new(inner: T, timeout: Duration, in_flight: InFlight) -> Self {
        IdleTimeout {
            inner,
            sleep: Box::pin(tokio::time::sleep(timeout)),
            timeout,
            in_flight,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for IdleTimeout<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(r) => {
                if buf.filled().len() > before {
                    this.sleep.as_mut().reset(Instant::now() + this.timeout);
                }
                Poll::Ready(r)
            }
            Poll::Pending => {
                while this.sleep.as_mut().poll(cx).is_ready() {
                    if this.in_flight.is_idle() {
                        return Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "connection idle for too long",
                        )));
                    }
                    this.sleep.as_mut().reset(Instant::now() + this.timeout);
                }
                Poll::Pending
            }
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for IdleTimeout<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write(cx, data);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            this.sleep.as_mut().reset(Instant::now() + this.timeout);
        }
        r
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            this.sleep.as_mut().reset(Instant::now() + this.timeout);
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test(start_paused = true)]
    async fn idle_reads_time_out_unless_a_request_is_in_flight() {
        let (client, server) = tokio::io::duplex(64);
        let in_flight = InFlight::default();
        let mut io = IdleTimeout::new(server, Duration::from_secs(5), in_flight.clone());
        let mut client = client;
        let mut buf = [0u8; 8];

        client.write_all(b"hi").await.unwrap();
        assert_eq!(io.read(&mut buf).await.unwrap(), 2);

        // A request in flight keeps the connection open past the timeout.
        let busy = in_flight.enter();
        let read = tokio::time::timeout(Duration::from_secs(12), io.read(&mut buf)).await;
        assert!(read.is_err(), "read must still be pending while busy");
        drop(busy);

        let err = io.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    }
}
