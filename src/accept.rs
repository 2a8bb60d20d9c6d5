//! The first stage of every connection: a TLS handshake under one deadline, or, for a client
//! that spoke plain HTTP to the TLS port, an S3 error telling it to use `https://`.
//!
//! The first byte decides. An HTTP/1 request starts with a method token (RFC 9110 §9.1, a
//! `tchar` of §5.6.2), or an empty line a server should skip (RFC 9112 §2.2); every TLS
//! connection starts with a handshake record, content type 22 (RFC 8446 §5.1, RFC 5246
//! §6.2.1). Anything else (an SSLv2-style `ClientHello`, whose first byte has its high bit set,
//! or noise) goes to the TLS acceptor too, which answers it at once with a fatal alert instead
//! of waiting for an HTTP head that will never come. The byte is peeked, not read, so the TLS
//! acceptor still sees the whole `ClientHello`.
//!
//! Answering plain HTTP (rather than dropping it, which is what a bare TLS acceptor does) turns
//! "connection reset" or "wrong version number" into a message a person can act on. tokio-rustls
//! suggests the same for `LazyConfigAcceptor` (docs of `tokio_rustls::LazyConfigAcceptor`); we
//! peek instead so the request head, and its `Host`, is still ours to read.

use std::io;
use std::time::SystemTime;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{timeout, timeout_at, Duration, Instant};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use crate::error::{error_xml, S3Code};

/// The most of a plain-HTTP request head that is read before answering. The head is only read
/// to find `Host`; a client sending more is answered all the same.
pub const MAX_PLAINTEXT_HEAD: usize = 16 * 1024;

/// How much of what a plain-HTTP client sends after its head (a body, another request) is read
/// and thrown away before closing; see [`drain`].
const MAX_DRAIN: usize = 256 * 1024;

/// How long writing the answer, and then draining, may each take. Bounds the time a client that
/// neither reads nor closes can hold a task.
const LINGER: Duration = Duration::from_secs(1);

/// Longest `Host` value considered: a 253-byte DNS name (RFC 1035 §2.3.4), a colon and a port.
const MAX_HOST_LEN: usize = 253 + 6;

#[derive(Debug, thiserror::Error)]
pub enum AcceptError {
    /// The client spoke plain HTTP; it was answered `400 TlsRequired` and the connection closed.
    #[error("plain HTTP on the TLS listener (answered 400 TlsRequired)")]
    Plaintext,
    /// The client sent nothing, or not a whole handshake, before the deadline.
    #[error("TLS handshake did not finish in time")]
    Timeout,
    /// The client closed before sending a byte: a TCP health check or a port scan.
    #[error("connection closed before the TLS handshake began")]
    Closed,
    #[error("TLS handshake failed")]
    Handshake(#[source] io::Error),
}

/// Completes the TLS handshake on `stream`, or answers plain HTTP and closes.
///
/// `deadline` bounds everything up to the finished handshake, starting with the wait for the
/// first byte; a plain-HTTP client gets the same bound to send its request head.
pub async fn accept(
    stream: TcpStream,
    acceptor: &TlsAcceptor,
    deadline: Instant,
) -> Result<TlsStream<TcpStream>, AcceptError> {
    if starts_with_http(&stream, deadline).await? {
        // On this listener the port the client dialed is the HTTPS port, so the `Host` port
        // is kept in the suggested URL.
        answer_plaintext(stream, None, deadline).await;
        return Err(AcceptError::Plaintext);
    }
    handshake(stream, acceptor, deadline).await
}

/// A connection from a trusted TLS terminator: TLS, or plain HTTP that the terminator
/// decrypted (each request must then say it arrived over https; see [`crate::forwarded`]).
pub enum Accepted {
    /// Boxed: the TLS state is large and the plain variant is a socket.
    Tls(Box<TlsStream<TcpStream>>),
    Forwarded(TcpStream),
}

/// [`accept`] for a peer in `trusted_proxies`: plain HTTP is let through instead of refused.
pub async fn accept_trusted(
    stream: TcpStream,
    acceptor: &TlsAcceptor,
    deadline: Instant,
) -> Result<Accepted, AcceptError> {
    if starts_with_http(&stream, deadline).await? {
        Ok(Accepted::Forwarded(stream))
    } else {
        let tls = handshake(stream, acceptor, deadline).await?;
        Ok(Accepted::Tls(Box::new(tls)))
    }
}

/// Waits for the first byte and tells whether it starts an HTTP/1 request; if not, it is
/// for the TLS acceptor (see the module docs).
async fn starts_with_http(stream: &TcpStream, deadline: Instant) -> Result<bool, AcceptError> {
    let mut first = [0u8; 1];
    match timeout_at(deadline, stream.peek(&mut first)).await {
        Err(_elapsed) => Err(AcceptError::Timeout),
        Ok(Err(e)) => Err(AcceptError::Handshake(e)),
        Ok(Ok(0)) => Err(AcceptError::Closed),
        Ok(Ok(_)) => Ok(opens_http_request(first[0])),
    }
}

/// Whether `byte` can open an HTTP/1 request: a method's first `tchar` (RFC 9110 §5.6.2), or
/// the CR or LF of an empty line before the request line (RFC 9112 §2.2).
fn opens_http_request(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~\r\n".contains(&byte)
}

async fn handshake(
    stream: TcpStream,
    acceptor: &TlsAcceptor,
    deadline: Instant,
) -> Result<TlsStream<TcpStream>, AcceptError> {
    match timeout_at(deadline, acceptor.accept(stream)).await {
        Err(_elapsed) => Err(AcceptError::Timeout),
        Ok(Err(e)) => Err(AcceptError::Handshake(e)),
        Ok(Ok(tls)) => Ok(tls),
    }
}

/// Answers one plain-HTTP request with `400 TlsRequired` and closes: for an optional listener
/// on the plain-HTTP port. The suggested URL names `https_port` instead of the port the client
/// dialed. `head_timeout` bounds the wait for the request head.
pub async fn reject_plaintext(stream: TcpStream, https_port: u16, head_timeout: Duration) {
    answer_plaintext(stream, Some(https_port), Instant::now() + head_timeout).await;
}

async fn answer_plaintext(mut stream: TcpStream, https_port: Option<u16>, head_deadline: Instant) {
    let head = read_head(&mut stream, head_deadline).await;
    let request_id = format!("{:016X}", rand::random::<u64>());
    let reply = plaintext_reply(&head, https_port, &request_id);
    let written = timeout(LINGER, async {
        stream.write_all(&reply).await?;
        // FIN after the response, so the client sees `Connection: close` honoured.
        stream.shutdown().await
    })
    .await;
    tracing::debug!(
        peer = ?stream.peer_addr().ok(),
        request_id,
        delivered = matches!(written, Ok(Ok(()))),
        "plain HTTP on the TLS listener: answered 400 TlsRequired",
    );
    if matches!(written, Ok(Ok(()))) {
        drain(&mut stream).await;
    }
}

/// Reads until the end of the request head, [`MAX_PLAINTEXT_HEAD`] bytes, EOF, an error or the
/// deadline, whichever comes first, and returns what arrived. Never fails: a partial head still
/// gets an answer.
async fn read_head(stream: &mut TcpStream, deadline: Instant) -> Vec<u8> {
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    let _ = timeout_at(deadline, async {
        while head.len() < MAX_PLAINTEXT_HEAD && head_end(&head).is_none() {
            let want = chunk.len().min(MAX_PLAINTEXT_HEAD - head.len());
            match stream.read(&mut chunk[..want]).await {
                Ok(0) | Err(_) => break,
                Ok(n) => head.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await;
    head
}

/// Closing a socket while the client is still sending (a body sent without
/// `Expect: 100-continue`, a pipelined request) makes the kernel answer with a RST
/// (RFC 1122 §4.2.2.13): the client's next write fails with "broken pipe" before it reads our
/// answer, and some stacks discard received data on a RST. So read what the client still sends
/// until it closes, bounded in bytes and time, as nginx's `lingering_close` does.
async fn drain(stream: &mut TcpStream) {
    discard(stream, MAX_DRAIN, LINGER).await;
}

/// Reads and throws away what the peer still sends until it closes, at most `max` bytes for
/// at most `time` (see [`drain`] for why).
pub(crate) async fn discard<S>(stream: &mut S, max: usize, time: Duration)
where
    S: tokio::io::AsyncRead + Unpin,
{
    let mut sink = [0u8; 4096];
    let mut left = max;
    let _ = timeout(time, async {
        while left > 0 {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    })
    .await;
}

// === plain-HTTP answer (pure) ===

/// The complete HTTP/1.1 response to a plain-HTTP request head.
fn plaintext_reply(head: &[u8], https_port: Option<u16>, request_id: &str) -> Vec<u8> {
    let request = PlainRequest::parse(head);
    let code = S3Code::TlsRequired;
    let body = error_xml(
        code,
        &tls_required_message(request.host.as_ref(), https_port),
        request.path.unwrap_or("/"),
        request_id,
    );
    let status = code.status();
    let mut reply = format!(
        "HTTP/1.1 {} {}\r\n\
         Content-Type: application/xml\r\n\
         Content-Length: {}\r\n\
         Connection: close\r\n\
         Date: {}\r\n\
         x-amz-request-id: {request_id}\r\n\
         \r\n",
        status.as_str(),
        status.canonical_reason().unwrap_or_default(),
        body.len(),
        httpdate::fmt_http_date(SystemTime::now()),
    )
    .into_bytes();
    // A response to HEAD carries the headers of the GET response but never a body
    // (RFC 9110 §9.3.2); a client would read the body as the next response.
    if request.method != Some("HEAD") {
        reply.extend_from_slice(body.as_bytes());
    }
    reply
}

fn tls_required_message(host: Option<&Authority<'_>>, https_port: Option<u16>) -> String {
    const PREFIX: &str = "This endpoint accepts HTTPS only";
    let Some(host) = host else {
        return match https_port {
            Some(port) => format!("{PREFIX}: use https:// on port {port}"),
            None => format!("{PREFIX}: use https:// instead of http://"),
        };
    };
    // Without a port in `Host`, the client dialed http's default, 80 (RFC 9110 §4.2.1).
    let port = https_port.or(host.port).unwrap_or(80);
    if port == 443 {
        format!("{PREFIX}: use https://{}/", host.host)
    } else {
        format!("{PREFIX}: use https://{}:{port}/", host.host)
    }
}

/// End of the request head: the index after the empty line. A bare LF is accepted as a line
/// terminator, as RFC 9112 §2.2 allows a recipient to.
fn head_end(buf: &[u8]) -> Option<usize> {
    let crlf = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4);
    let lf = buf.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    crlf.into_iter().chain(lf).min()
}

/// What the answer uses from a plain-HTTP request head. Every field is optional: the client is
/// not trusted to have sent a well-formed request, and nothing malformed is echoed back.
#[derive(Debug, Default, PartialEq, Eq)]
struct PlainRequest<'a> {
    method: Option<&'a str>,
    /// The request-target's path, without the query: a presigned URL's signature stays out of
    /// the response.
    path: Option<&'a str>,
    host: Option<Authority<'a>>,
}

impl<'a> PlainRequest<'a> {
    fn parse(head: &'a [u8]) -> Self {
        let head = &head[..head_end(head).unwrap_or(head.len())];
        let mut lines = head
            .split(|&b| b == b'\n')
            .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
            .map(std::str::from_utf8);
        let Some(Ok(request_line)) = lines.next() else {
            return Self::default();
        };
        let mut parts = request_line.split(' ');
        let method = parts
            .next()
            .filter(|m| !m.is_empty() && m.bytes().all(|b| b.is_ascii_uppercase()));
        let path = parts
            .next()
            .and_then(|target| target.split('?').next())
            .filter(|p| {
                p.starts_with('/') && p.len() <= 1024 && p.bytes().all(|b| b.is_ascii_graphic())
            });

        let mut hosts = lines
            .map_while(Result::ok)
            .take_while(|line| !line.is_empty())
            .filter_map(|line| line.split_once(':'))
            .filter(|(name, _)| name.eq_ignore_ascii_case("host"))
            .map(|(_, value)| value.trim_matches([' ', '\t']));
        // More than one Host makes the request invalid (RFC 9112 §3.2); use neither.
        let host = match (hosts.next(), hosts.next()) {
            (Some(value), None) => Authority::parse(value),
            _ => None,
        };
        PlainRequest { method, path, host }
    }
}

/// A `Host` value that is safe to put in a URL: a DNS name or IP literal and an optional port.
#[derive(Debug, PartialEq, Eq)]
struct Authority<'a> {
    /// As sent, with brackets for IPv6.
    host: &'a str,
    port: Option<u16>,
}

impl<'a> Authority<'a> {
    /// RFC 9110 §7.2 `Host = uri-host [ ":" port ]`, narrowed to what a client of an S3 proxy
    /// can mean: a DNS name (letters, digits, `-`, `.`) or an IP literal.
    fn parse(value: &'a str) -> Option<Self> {
        if value.is_empty() || value.len() > MAX_HOST_LEN {
            return None;
        }
        let (host, port) = if let Some(rest) = value.strip_prefix('[') {
            let (addr, after) = rest.split_once(']')?;
            addr.parse::<std::net::Ipv6Addr>().ok()?;
            let port = match after {
                "" => None,
                after => Some(after.strip_prefix(':')?),
            };
            (&value[..addr.len() + 2], port)
        } else {
            let (host, port) = match value.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (value, None),
            };
            let is_name = !host.is_empty()
                && host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
            if !is_name {
                return None;
            }
            (host, port)
        };
        let port = match port {
            None => None,
            Some(p) if (1..=5).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()) => {
                Some(p.parse().ok()?)
            }
            Some(_) => return None,
        };
        Some(Authority { host, port })
    }
}

#[cfg(test)]
mod tests;
