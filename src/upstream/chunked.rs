//! Re-encodes a verified body as `STREAMING-UNSIGNED-PAYLOAD-TRAILER` aws-chunked for the
//! upstream, so the checksum the client sent in its trailer keeps protecting the upstream leg.
//!
//! The upstream needs `Content-Length` up front, so chunks have a fixed size and the encoded
//! length is a function of the decoded length and the trailer's name and algorithm.
//! Reference: <https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-streaming-trailers.html>

use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use crate::auth::checksum::ChecksumAlgorithm;
use crate::body::BoxError;

/// Decoded bytes per upstream chunk (the SDKs' default).
pub const CHUNK: usize = 64 * 1024;

/// Length of the aws-chunked encoding of `decoded` bytes followed by one trailer line.
pub fn encoded_len(decoded: u64, algorithm: ChecksumAlgorithm) -> u64 {
    let chunk = CHUNK as u64;
    let framed = |n: u64| format!("{n:x}").len() as u64 + 2 + n + 2;
    let full = decoded / chunk;
    let rem = decoded % chunk;
    let mut len = full * framed(chunk);
    if rem > 0 {
        len += framed(rem);
    }
    len + 3 + trailer_line(algorithm, "").len() as u64 + base64_len(algorithm.digest_len()) + 2
}

fn base64_len(n: usize) -> u64 {
    (n.div_ceil(3) * 4) as u64
}

/// `name:value\r\n` (the value is appended by the caller when known).
fn trailer_line(algorithm: ChecksumAlgorithm, value: &str) -> String {
    format!("{}:{value}\r\n", algorithm.header_name())
}

#[derive(Debug, thiserror::Error)]
#[error("the verified body ended without its {0} trailer")]
pub struct MissingTrailer(&'static str);

pin_project! {
    /// aws-chunked encoder over a body that ends with a trailers frame carrying the checksum.
    pub struct AwsChunked<B> {
        #[pin]
        inner: B,
        algorithm: ChecksumAlgorithm,
        buf: BytesMut,
        state: State,
        remaining: u64,
    }
}

enum State {
    /// Reading data from the inner body.
    Data,
    /// The inner body ended; the trailer value, once seen.
    Trailer(Option<String>),
    Done,
}

impl<B> AwsChunked<B> {
    pub fn new(inner: B, algorithm: ChecksumAlgorithm, decoded_len: u64) -> Self {
        AwsChunked {
            inner,
            algorithm,
            buf: BytesMut::with_capacity(CHUNK),
            state: State::Data,
            remaining: encoded_len(decoded_len, algorithm),
        }
    }
}

fn frame_chunk(data: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(data.len() + 16);
    out.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
    out.freeze()
}

impl<B> Body for AwsChunked<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        loop {
            let this = self.as_mut().project();
            match this.state {
                State::Done => return Poll::Ready(None),
                State::Trailer(value) => {
                    let algorithm = *this.algorithm;
                    let Some(value) = value.take() else {
                        *this.state = State::Done;
                        return Poll::Ready(Some(Err(Box::new(MissingTrailer(
                            algorithm.header_name(),
                        )))));
                    };
                    let mut out = BytesMut::new();
                    if !this.buf.is_empty() {
                        out.extend_from_slice(&frame_chunk(this.buf));
                        this.buf.clear();
                    }
                    out.extend_from_slice(b"0\r\n");
                    out.extend_from_slice(trailer_line(algorithm, &value).as_bytes());
                    out.extend_from_slice(b"\r\n");
                    *this.state = State::Done;
                    *this.remaining = this.remaining.saturating_sub(out.len() as u64);
                    return Poll::Ready(Some(Ok(Frame::data(out.freeze()))));
                }
                State::Data => match ready!(this.inner.poll_frame(cx)) {
                    None => *this.state = State::Trailer(None),
                    Some(Err(e)) => {
                        *this.state = State::Done;
                        return Poll::Ready(Some(Err(e.into())));
                    }
                    Some(Ok(frame)) => match frame.into_data() {
                        Ok(mut data) => {
                            let mut out = BytesMut::new();
                            while !data.is_empty() {
                                let take = (CHUNK - this.buf.len()).min(data.len());
                                this.buf.extend_from_slice(&data.split_to(take));
                                if this.buf.len() == CHUNK {
                                    out.extend_from_slice(&frame_chunk(this.buf));
                                    this.buf.clear();
                                }
                            }
                            if !out.is_empty() {
                                *this.remaining = this.remaining.saturating_sub(out.len() as u64);
                                return Poll::Ready(Some(Ok(Frame::data(out.freeze()))));
                            }
                        }
                        Err(frame) => {
                            if let Ok(trailers) = frame.into_trailers() {
                                let value = trailers
                                    .get(this.algorithm.header_name())
                                    .and_then(|v| v.to_str().ok())
                                    .map(str::to_owned);
                                *this.state = State::Trailer(value);
                            }
                        }
                    },
                },
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.state, State::Done)
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

#[cfg(test)]
mod tests;
