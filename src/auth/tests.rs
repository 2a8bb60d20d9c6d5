//! `verify` + `VerifiedBody` end to end: AWS's worked examples, then every refusal.
//!
//! References: <https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-header-based-auth.html>,
//! <https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-streaming.html>,
//! <https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-streaming-trailers.html>,
//! <https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-query-string-auth.html>

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderMap, Request};
use http_body::{Body, Frame};
use http_body_util::{Empty, Full};

use super::checksum::{checksum, ChecksumAlgorithm};
use super::sigv4::{self, EMPTY_SHA256};
use super::*;
use crate::error::{S3Code, S3Error};

const AK: &str = "AKIAIOSFODNN7EXAMPLE";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
const AMZ_DATE: &str = "20130524T000000Z";
const SCOPE: &str = "20130524/us-east-1/s3/aws4_request";

fn keys() -> ClientKeys {
    ClientKeys::new([ClientIdentity {
        access_key_id: AK.into(),
        secret: SecretKey::new(SECRET),
        upstream: "primary".into(),
        buckets: BucketPatterns::any(),
        operations: super::Grants::default(),
    }])
}

fn t0() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_369_353_600)
}

fn cx_at(now: SystemTime) -> AuthContext<'static> {
    AuthContext {
        region: "us-east-1",
        now,
        sigv2: true,
        virtual_host_bucket: None,
    }
}

fn run<B: Body>(req: Request<B>) -> Result<Verified<B>, AuthError> {
    verify(req, &keys(), &cx_at(t0()))
}

fn code_of<B: Body>(req: Request<B>) -> S3Code {
    run(req).expect_err("must be refused").code()
}

// === Test bodies ===

/// A body delivered in the given frames, then optionally a client I/O error or a stall.
struct Pieces {
    frames: VecDeque<Bytes>,
    fail_at_end: bool,
    stall_at_end: bool,
}

impl Pieces {
    fn new(frames: impl IntoIterator<Item = Bytes>) -> Self {
        Pieces {
            frames: frames.into_iter().filter(|f| !f.is_empty()).collect(),
            fail_at_end: false,
            stall_at_end: false,
        }
    }

    fn bytewise(data: &[u8]) -> Self {
        Self::new(data.iter().map(|b| Bytes::copy_from_slice(&[*b])))
    }
}

impl Body for Pieces {
    type Data = Bytes;
    type Error = crate::body::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, crate::body::BoxError>>> {
        if let Some(f) = self.frames.pop_front() {
            return Poll::Ready(Some(Ok(Frame::data(f))));
        }
        if std::mem::take(&mut self.fail_at_end) {
            return Poll::Ready(Some(Err(std::io::Error::other("connection reset").into())));
        }
        if std::mem::take(&mut self.stall_at_end) {
            let after = std::time::Duration::from_secs(60);
            return Poll::Ready(Some(Err(Box::new(crate::body::Stalled { after }))));
        }
        Poll::Ready(None)
    }

    fn is_end_stream(&self) -> bool {
        self.frames.is_empty() && !self.fail_at_end && !self.stall_at_end
    }
}

#[derive(Debug)]
struct Drained {
    data: Vec<u8>,
    trailers: Option<HeaderMap>,
    error: Option<BodyError>,
}

/// Polls to the end with a no-op waker: every test body is always ready.
fn drain<B>(mut body: VerifiedBody<B>) -> Drained
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<crate::body::BoxError>,
{
    let mut cx = Context::from_waker(Waker::noop());
    let mut out = Drained {
        data: Vec::new(),
        trailers: None,
        error: None,
    };
    loop {
        let remaining = body.size_hint().exact();
        match Pin::new(&mut body).poll_frame(&mut cx) {
            Poll::Ready(None) => {
                assert!(body.is_end_stream());
                return out;
            }
            Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                Ok(data) => {
                    assert!(out.trailers.is_none(), "data after trailers");
                    if let Some(remaining) = remaining {
                        assert!(data.len() as u64 <= remaining, "size_hint was too small");
                    }
                    out.data.extend_from_slice(&data);
                }
                Err(frame) => out.trailers = Some(frame.into_trailers().expect("data or trailers")),
            },
            Poll::Ready(Some(Err(e))) => {
                out.error = Some(e);
                // After an error the stream is over.
                assert!(matches!(
                    Pin::new(&mut body).poll_frame(&mut cx),
                    Poll::Ready(None)
                ));
                return out;
            }
            Poll::Pending => panic!("test bodies are always ready"),
        }
    }
}

/// Drains a body that must fail, and checks the hold-back rule: strictly less than `payload_len`
/// bytes were released, and the failure slot holds the error.
fn drain_failing<B>(verified: Verified<B>, payload_len: usize) -> AuthError
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<crate::body::BoxError>,
{
    let slot = verified.body.failure();
    let out = drain(verified.body);
    let Some(BodyError::Verification(e)) = out.error else {
        panic!("expected a verification failure, got {:?}", out.error);
    };
    assert!(
        out.data.len() < payload_len,
        "held-back invariant broken: {} of {payload_len} bytes released",
        out.data.len()
    );
    assert!(out.trailers.is_none());
    assert_eq!(slot.get(), Some(&e));
    e
}

// === A test signer, built on the (vector-checked) sigv4 functions ===

/// Signs `req` with header auth over the given headers (all headers when `None`).
fn sign<B>(mut req: Request<B>, signed: Option<&[&str]>) -> (Request<B>, sigv4::Signature) {
    let mut names: Vec<&str> = match signed {
        Some(names) => names.to_vec(),
        None => req.headers().keys().map(http::HeaderName::as_str).collect(),
    };
    names.sort_unstable();
    names.dedup();
    let signed_headers = names.join(";");
    let payload = req.headers()["x-amz-content-sha256"]
        .to_str()
        .unwrap()
        .to_owned();
    let date = req.headers()["x-amz-date"].to_str().unwrap().to_owned();
    let canonical = sigv4::canonical_request(
        req.method().as_str(),
        &sigv4::canonical_uri(req.uri().path()).unwrap(),
        &sigv4::canonical_query(req.uri().query().unwrap_or(""), None).unwrap(),
        &sigv4::canonical_headers(req.headers(), None, &names).unwrap(),
        &signed_headers,
        &payload,
    );
    let sts = sigv4::string_to_sign(&date, SCOPE, &canonical);
    let signature = sigv4::SigningKey::derive(SECRET, &date[..8], "us-east-1").sign(sts.as_bytes());
    let value = format!(
        "AWS4-HMAC-SHA256 Credential={AK}/{SCOPE}, SignedHeaders={signed_headers}, Signature={}",
        hex::encode(signature)
    );
    req.headers_mut()
        .insert(AUTHORIZATION, value.parse().unwrap());
    (req, signature)
}

fn put(uri: &str, payload_hash: &str) -> http::request::Builder {
    Request::put(uri)
        .header("host", "examplebucket.s3.amazonaws.com")
        .header("x-amz-date", AMZ_DATE)
        .header("x-amz-content-sha256", payload_hash)
}

fn sha_hex(data: &[u8]) -> String {
    hex::encode(sigv4::sha256(data))
}

/// A signed PUT of `data` with its SHA-256 and Content-Length.
fn signed_put(data: &'static [u8], extra: &[(&str, &str)]) -> Request<Pieces> {
    let mut b = put("/k", &sha_hex(data)).header("content-length", data.len());
    for (n, v) in extra {
        b = b.header(*n, *v);
    }
    sign(b.body(Pieces::bytewise(data)).unwrap(), None).0
}

/// An aws-chunked body signed chunk by chunk from `seed`, with an optional signed trailer.
fn signed_chunks(
    seed: sigv4::Signature,
    chunks: &[&[u8]],
    trailer: Option<(&str, &str)>,
) -> Vec<u8> {
    let key = sigv4::SigningKey::derive(SECRET, "20130524", "us-east-1");
    let mut previous = seed;
    let mut out = Vec::new();
    for data in chunks.iter().chain([&&b""[..]]) {
        let sts = sigv4::chunk_string_to_sign(AMZ_DATE, SCOPE, &previous, &sigv4::sha256(data));
        previous = key.sign(sts.as_bytes());
        out.extend_from_slice(
            format!(
                "{:x};chunk-signature={}\r\n",
                data.len(),
                hex::encode(previous)
            )
            .as_bytes(),
        );
        out.extend_from_slice(data);
        if !data.is_empty() {
            out.extend_from_slice(b"\r\n");
        }
    }
    if let Some((name, value)) = trailer {
        let canonical = sigv4::canonical_trailers([(name, value)]);
        let sts =
            sigv4::trailer_string_to_sign(AMZ_DATE, SCOPE, &previous, &sigv4::sha256(&canonical));
        let signature = hex::encode(key.sign(sts.as_bytes()));
        out.extend_from_slice(
            format!("{name}:{value}\r\nx-amz-trailer-signature:{signature}\r\n").as_bytes(),
        );
    }
    out.extend_from_slice(b"\r\n");
    out
}

fn unsigned_chunks(chunks: &[&[u8]], trailer: Option<(&str, &str)>) -> Vec<u8> {
    let mut out = Vec::new();
    for data in chunks {
        out.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
        out.extend_from_slice(data);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n");
    if let Some((name, value)) = trailer {
        out.extend_from_slice(format!("{name}:{value}\r\n").as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out
}

fn b64(algorithm: ChecksumAlgorithm, data: &[u8]) -> String {
    ChecksumAlgorithm::encode(&checksum(algorithm, data))
}

// === AWS worked examples ===

#[test]
fn aws_example_get_object() {
    let req = Request::get("/test.txt")
        .header("host", "examplebucket.s3.amazonaws.com")
        .header("range", "bytes=0-9")
        .header("x-amz-content-sha256", EMPTY_SHA256)
        .header("x-amz-date", AMZ_DATE)
        .header(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41",
        )
        .body(Empty::<Bytes>::new())
        .unwrap();
    let v = run(req).unwrap();
    assert_eq!(v.principal.client().unwrap().access_key_id, AK);
    assert!(!v.presigned);
    assert_eq!(v.content_length, None);
    assert_eq!(v.parts.headers["range"], "bytes=0-9");
    // An empty body is verified up front: the stream is over before it is polled.
    assert!(v.body.is_end_stream());
    let out = drain(v.body);
    assert!(out.data.is_empty() && out.error.is_none());
}

#[test]
fn aws_example_put_object() {
    let payload = b"Welcome to Amazon S3.";
    let make = |body: Pieces| {
        Request::put("/test$file.text")
            .header("host", "examplebucket.s3.amazonaws.com")
            .header("date", "Fri, 24 May 2013 00:00:00 GMT")
            .header("x-amz-date", AMZ_DATE)
            .header("x-amz-storage-class", "REDUCED_REDUNDANCY")
            .header("x-amz-content-sha256", "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072")
            .header("content-length", "21")
            .header(
                "authorization",
                "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders=date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class,Signature=98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd",
            )
            .body(body)
            .unwrap()
    };
    for body in [
        Pieces::new([Bytes::from_static(payload)]),
        Pieces::bytewise(payload),
    ] {
        let v = run(make(body)).unwrap();
        assert_eq!(v.content_length, Some(21));
        assert_eq!(v.body.size_hint().exact(), Some(21));
        let out = drain(v.body);
        assert!(out.error.is_none(), "{:?}", out.error);
        assert_eq!(out.data, payload);
    }
    // The same body with one byte changed must not get through whole.
    let v = run(make(Pieces::bytewise(b"Welcome to Amazon S3!"))).unwrap();
    assert_eq!(
        drain_failing(v, payload.len()),
        AuthError::ContentSha256Mismatch
    );
}

#[test]
fn aws_example_get_bucket_lifecycle() {
    let req = Request::get("/?lifecycle")
        .header("host", "examplebucket.s3.amazonaws.com")
        .header("x-amz-content-sha256", EMPTY_SHA256)
        .header("x-amz-date", AMZ_DATE)
        .header(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders=host;x-amz-content-sha256;x-amz-date,Signature=fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543",
        )
        .body(Empty::<Bytes>::new())
        .unwrap();
    run(req).unwrap();
}

#[test]
fn aws_example_list_objects() {
    let req = Request::get("/?max-keys=2&prefix=J")
        .header("host", "examplebucket.s3.amazonaws.com")
        .header("x-amz-content-sha256", EMPTY_SHA256)
        .header("x-amz-date", AMZ_DATE)
        .header(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders=host;x-amz-content-sha256;x-amz-date,Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7",
        )
        .body(Empty::<Bytes>::new())
        .unwrap();
    run(req).unwrap();
}

const PRESIGNED: &str = "/test.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404";

fn presigned(uri: &str) -> Request<Empty<Bytes>> {
    Request::get(uri)
        .header("host", "examplebucket.s3.amazonaws.com")
        .body(Empty::new())
        .unwrap()
}

#[test]
fn aws_example_presigned_url() {
    let v = run(presigned(PRESIGNED)).unwrap();
    assert!(v.presigned);
    // Valid for the whole 86400 s, not after.
    let late = t0() + Duration::from_secs(86_400);
    verify(presigned(PRESIGNED), &keys(), &cx_at(late)).unwrap();
    let expired = verify(
        presigned(PRESIGNED),
        &keys(),
        &cx_at(late + Duration::from_secs(1)),
    )
    .unwrap_err();
    assert_eq!(
        (expired.code(), expired.to_string()),
        (S3Code::AccessDenied, "Request has expired".into())
    );
    let early = verify(
        presigned(PRESIGNED),
        &keys(),
        &cx_at(t0() - Duration::from_secs(16 * 60)),
    )
    .unwrap_err();
    assert_eq!(
        (early.code(), early.to_string()),
        (S3Code::AccessDenied, "Request is not valid yet".into())
    );
    verify(
        presigned(PRESIGNED),
        &keys(),
        &cx_at(t0() - Duration::from_secs(14 * 60)),
    )
    .unwrap();
    // Tampering with any signed part of the URL breaks it.
    let tampered = PRESIGNED.replace("/test.txt", "/test2.txt");
    assert_eq!(code_of(presigned(&tampered)), S3Code::SignatureDoesNotMatch);
    let extra = format!("{PRESIGNED}&response-content-type=text/html");
    assert_eq!(code_of(presigned(&extra)), S3Code::SignatureDoesNotMatch);
}

#[test]
fn presigned_parameter_errors() {
    // X-Amz-Expires, worded as S3 words each case; zero seconds is valid, and long expired.
    for (expires, message) in [
        ("-1", "X-Amz-Expires must be non-negative"),
        ("soon", "X-Amz-Expires should be a number"),
        ("", "X-Amz-Expires should be a number"),
        ("604801", "X-Amz-Expires must be less than a week (in seconds); that is, the given X-Amz-Expires must be less than 604800 seconds"),
        ("99999999999999999999999", "X-Amz-Expires must be less than a week (in seconds); that is, the given X-Amz-Expires must be less than 604800 seconds"),
    ] {
        let uri = PRESIGNED.replace("X-Amz-Expires=86400", &format!("X-Amz-Expires={expires}"));
        let err = run(presigned(&uri)).unwrap_err();
        assert_eq!(
            (err.code(), err.to_string().as_str()),
            (S3Code::AuthorizationQueryParametersError, message),
            "{uri}"
        );
    }
    let zero = PRESIGNED.replace("X-Amz-Expires=86400", "X-Amz-Expires=0");
    assert_eq!(
        run(presigned(&zero)).unwrap_err(),
        AuthError::RequestExpired
    );
    for (from, to) in [
        ("X-Amz-Expires=86400", "X-Amz-Expires=604801"),
        ("X-Amz-Expires=86400", "X-Amz-Expires=-1"),
        ("X-Amz-Expires=86400&", ""),
        (
            "X-Amz-Algorithm=AWS4-HMAC-SHA256",
            "X-Amz-Algorithm=AWS4-HMAC-SHA1",
        ),
        ("X-Amz-Date=20130524T000000Z", "X-Amz-Date=2013-05-24"),
        ("us-east-1%2Fs3", "us-west-2%2Fs3"),
        ("s3%2Faws4_request", "s4%2Faws4_request"),
        ("X-Amz-Signature=aeeed9", "X-Amz-Signature=AEEED9"),
        (
            "X-Amz-SignedHeaders=host",
            "X-Amz-SignedHeaders=host&X-Amz-SignedHeaders=host",
        ),
    ] {
        let uri = PRESIGNED.replace(from, to);
        assert_eq!(
            code_of(presigned(&uri)),
            S3Code::AuthorizationQueryParametersError,
            "{uri}"
        );
    }
    let sigv4a = PRESIGNED.replace(
        "X-Amz-Algorithm=AWS4-HMAC-SHA256",
        "X-Amz-Algorithm=AWS4-ECDSA-P256-SHA256",
    );
    // S3 takes SigV4a only at multi-region access points: 400 InvalidRequest elsewhere.
    assert_eq!(code_of(presigned(&sigv4a)), S3Code::InvalidRequest);
    // An unsigned x-amz-* header cannot ride along with a presigned URL.
    let mut req = presigned(PRESIGNED);
    req.headers_mut()
        .insert("x-amz-acl", "public-read".parse().unwrap());
    assert_eq!(code_of(req), S3Code::AccessDenied);
    // Both mechanisms at once.
    let mut req = presigned(PRESIGNED);
    req.headers_mut()
        .insert(AUTHORIZATION, "AWS4-HMAC-SHA256 x".parse().unwrap());
    assert_eq!(code_of(req), S3Code::InvalidArgument);
}

const CHUNK_SIGNATURES: [&str; 3] = [
    "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
    "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497",
    "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9",
];

fn aws_chunked_body(signatures: [&str; 3], trailer: &[u8]) -> Vec<u8> {
    let mut body = format!("10000;chunk-signature={}\r\n", signatures[0]).into_bytes();
    body.resize(body.len() + 65536, b'a');
    body.extend_from_slice(format!("\r\n400;chunk-signature={}\r\n", signatures[1]).as_bytes());
    body.extend_from_slice(&[b'a'; 1024]);
    body.extend_from_slice(format!("\r\n0;chunk-signature={}\r\n", signatures[2]).as_bytes());
    body.extend_from_slice(trailer);
    body.extend_from_slice(b"\r\n");
    body
}

fn aws_chunked_request(body: Pieces) -> Request<Pieces> {
    Request::put("/examplebucket/chunkObject.txt")
        .header("host", "s3.amazonaws.com")
        .header("x-amz-date", AMZ_DATE)
        .header("x-amz-storage-class", "REDUCED_REDUNDANCY")
        .header("x-amz-content-sha256", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD")
        .header("content-encoding", "aws-chunked")
        .header("x-amz-decoded-content-length", "66560")
        .header("content-length", "66824")
        .header(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders=content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;x-amz-storage-class,Signature=4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9",
        )
        .body(body)
        .unwrap()
}

#[test]
fn aws_example_chunked_upload() {
    let body = aws_chunked_body(CHUNK_SIGNATURES, b"");
    assert_eq!(body.len(), 66824);
    let splits = [
        Pieces::new([Bytes::from(body.clone())]),
        Pieces::new(body.chunks(1000).map(Bytes::copy_from_slice)),
        Pieces::bytewise(&body),
    ];
    for pieces in splits {
        let v = run(aws_chunked_request(pieces)).unwrap();
        assert_eq!(v.content_length, Some(66560));
        assert_eq!(v.body.size_hint().exact(), Some(66560));
        let out = drain(v.body);
        assert!(out.error.is_none(), "{:?}", out.error);
        assert_eq!(out.data, vec![b'a'; 66560]);
        assert!(out.trailers.is_none());
    }
}

/// The first `len` bytes of a body, then nothing more for now: a client that stopped
/// sending in the middle of a chunk.
struct Stalled(Option<Bytes>);

impl Body for Stalled {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        match self.0.take() {
            Some(frame) => Poll::Ready(Some(Ok(Frame::data(frame)))),
            None => Poll::Pending,
        }
    }
}

fn stalled_chunked_request(len: usize, budget: &BufferBudget) -> Request<Stalled> {
    let body = Bytes::from(aws_chunked_body(CHUNK_SIGNATURES, b"")).slice(..len);
    let (parts, _) = aws_chunked_request(Pieces::new([])).into_parts();
    let mut req = Request::from_parts(parts, Stalled(Some(body)));
    req.extensions_mut().insert(budget.clone());
    req
}

#[test]
fn requests_of_a_connection_share_one_buffer_budget() {
    let mut cx = Context::from_waker(Waker::noop());
    let budget = BufferBudget::new(70_000);
    // Two uploads stop 40,000 bytes into their first 64 KiB chunk: the first is held, the
    // second would take the connection past its budget.
    let mut first = run(stalled_chunked_request(40_000, &budget)).unwrap().body;
    assert!(Pin::new(&mut first).poll_frame(&mut cx).is_pending());
    let held = budget.held();
    assert!((39_000..40_000).contains(&held), "{held}");
    let second = run(stalled_chunked_request(40_000, &budget)).unwrap();
    let slot = second.body.failure();
    let mut second = second.body;
    match Pin::new(&mut second).poll_frame(&mut cx) {
        Poll::Ready(Some(Err(BodyError::Verification(e)))) => {
            assert_eq!(e, AuthError::BufferBudgetExhausted { limit: 70_000 });
            assert_eq!(e.code(), S3Code::SlowDown);
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(slot.get().is_some());
    // The refused upload gave back what it had taken; the held one gives its share back when
    // it ends.
    assert_eq!(budget.held(), held);
    drop(first);
    assert_eq!(budget.held(), 0);
}

#[test]
fn released_bytes_go_back_to_the_budget() {
    // The whole example fits in one chunk plus the client frame that ends it (whose rest is
    // the next chunk's start) when chunks are handed on as they are verified.
    let budget = BufferBudget::new(65_536 + 1_000);
    let body = aws_chunked_body(CHUNK_SIGNATURES, b"");
    let mut req = aws_chunked_request(Pieces::new(body.chunks(1000).map(Bytes::copy_from_slice)));
    req.extensions_mut().insert(budget.clone());
    let out = drain(run(req).unwrap().body);
    assert!(out.error.is_none(), "{:?}", out.error);
    assert_eq!(out.data.len(), 66_560);
    assert_eq!(budget.held(), 0);
}

#[test]
fn chunked_upload_tampering_is_caught_before_the_end() {
    // A flipped data byte in the last data chunk.
    let mut body = aws_chunked_body(CHUNK_SIGNATURES, b"");
    let at = body.len() - 100;
    body[at] = b'b';
    let v = run(aws_chunked_request(Pieces::new([Bytes::from(body)]))).unwrap();
    let e = drain_failing(v, 66560);
    assert_eq!(e, AuthError::ChunkSignatureDoesNotMatch(1));
    assert_eq!(e.code(), S3Code::SignatureDoesNotMatch);

    // A wrong final-chunk signature: all data chunks verified, but the end is not proven.
    let mut sigs = CHUNK_SIGNATURES;
    sigs[2] = "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df8";
    let v = run(aws_chunked_request(Pieces::bytewise(&aws_chunked_body(
        sigs, b"",
    ))))
    .unwrap();
    assert_eq!(
        drain_failing(v, 66560),
        AuthError::ChunkSignatureDoesNotMatch(2)
    );

    // Chunks swapped in order: the chain breaks at the first one.
    let mut sigs = CHUNK_SIGNATURES;
    sigs.swap(0, 1);
    let v = run(aws_chunked_request(Pieces::bytewise(&aws_chunked_body(
        sigs, b"",
    ))))
    .unwrap();
    assert_eq!(
        drain_failing(v, 66560),
        AuthError::ChunkSignatureDoesNotMatch(0)
    );

    // Truncated anywhere: never complete, never accepted.
    let body = aws_chunked_body(CHUNK_SIGNATURES, b"");
    for cut in [66000, body.len() - 2, body.len() - 1] {
        let v = run(aws_chunked_request(Pieces::new([Bytes::copy_from_slice(
            &body[..cut],
        )])))
        .unwrap();
        assert_eq!(
            drain_failing(v, 66560).code(),
            S3Code::IncompleteBody,
            "cut at {cut}"
        );
    }
    // Trailing garbage after the final chunk.
    let mut body = aws_chunked_body(CHUNK_SIGNATURES, b"");
    body.extend_from_slice(b"0\r\n\r\n");
    let v = run(aws_chunked_request(Pieces::new([Bytes::from(body)]))).unwrap();
    assert_eq!(drain_failing(v, 66560).code(), S3Code::InvalidRequest);
}

fn aws_trailer_request(body: Pieces) -> Request<Pieces> {
    Request::put("/examplebucket/chunkObject.txt")
        .header("host", "s3.amazonaws.com")
        .header("x-amz-date", AMZ_DATE)
        .header("x-amz-storage-class", "REDUCED_REDUNDANCY")
        .header("x-amz-content-sha256", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER")
        .header("content-encoding", "aws-chunked")
        .header("x-amz-decoded-content-length", "66560")
        .header("x-amz-trailer", "x-amz-checksum-crc32c")
        .header("content-length", "66946")
        .header(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders=content-encoding;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;x-amz-storage-class;x-amz-trailer,Signature=106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e",
        )
        .body(body)
        .unwrap()
}

const TRAILER_CHUNK_SIGNATURES: [&str; 3] = [
    "b474d8862b1487a5145d686f57f013e54db672cee1c953b3010fb58501ef5aa2",
    "1c1344b170168f8e65b41376b44b20fe354e373826ccbbe2c1d40a8cae51e5c7",
    "2ca2aba2005185cf7159c6277faf83795951dd77a3a99e6e65d5c9f85863f992",
];
const AWS_TRAILER: &[u8] =
    b"x-amz-checksum-crc32c:sOO8/Q==\r\nx-amz-trailer-signature:d81f82fc3505edab99d459891051a732e8730629a2e4a59689829ca17fe2e435\r\n";

#[test]
fn aws_example_chunked_upload_with_signed_trailer() {
    let body = aws_chunked_body(TRAILER_CHUNK_SIGNATURES, AWS_TRAILER);
    assert_eq!(body.len(), 66946);
    for pieces in [
        Pieces::new([Bytes::from(body.clone())]),
        Pieces::bytewise(&body),
    ] {
        let v = run(aws_trailer_request(pieces)).unwrap();
        let out = drain(v.body);
        assert!(out.error.is_none(), "{:?}", out.error);
        assert_eq!(out.data, vec![b'a'; 66560]);
        // Only the validated checksum is passed on; the trailer signature is not.
        let trailers = out.trailers.expect("validated checksum trailer");
        assert_eq!(trailers.len(), 1);
        assert_eq!(trailers["x-amz-checksum-crc32c"], "sOO8/Q==");
    }
}

#[test]
fn signed_trailer_failures() {
    let cases: [(&[u8], AuthError); 5] = [
        // Checksum changed: the trailer signature no longer matches.
        (
            b"x-amz-checksum-crc32c:AAAAAA==\r\nx-amz-trailer-signature:d81f82fc3505edab99d459891051a732e8730629a2e4a59689829ca17fe2e435\r\n",
            AuthError::TrailerSignatureDoesNotMatch,
        ),
        // No trailer signature at all.
        (b"x-amz-checksum-crc32c:sOO8/Q==\r\n", AuthError::MissingTrailer("x-amz-trailer-signature")),
        // The declared checksum never arrives.
        (
            b"x-amz-trailer-signature:d81f82fc3505edab99d459891051a732e8730629a2e4a59689829ca17fe2e435\r\n",
            AuthError::TrailerSignatureDoesNotMatch,
        ),
        // An undeclared trailer.
        (b"x-amz-checksum-sha1:AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n", AuthError::UndeclaredTrailer("x-amz-checksum-sha1".into())),
        // The declared one, twice.
        (
            b"x-amz-checksum-crc32c:sOO8/Q==\r\nx-amz-checksum-crc32c:sOO8/Q==\r\n",
            AuthError::UndeclaredTrailer("x-amz-checksum-crc32c".into()),
        ),
    ];
    for (trailer, expected) in cases {
        let body = aws_chunked_body(TRAILER_CHUNK_SIGNATURES, trailer);
        let v = run(aws_trailer_request(Pieces::bytewise(&body))).unwrap();
        assert_eq!(
            drain_failing(v, 66560),
            expected,
            "{}",
            String::from_utf8_lossy(trailer)
        );
    }
}

#[test]
fn signed_trailer_with_wrong_checksum_is_bad_digest() {
    // Correctly signed, but the checksum is not the payload's.
    let data: &[u8] = b"hello world";
    let wrong = b64(ChecksumAlgorithm::Crc32, b"hello worlD");
    let req = put("/k", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER")
        .header("x-amz-decoded-content-length", "11")
        .header("x-amz-trailer", "x-amz-checksum-crc32")
        .body(())
        .unwrap();
    let (req, seed) = sign(req, None);
    let body = signed_chunks(seed, &[data], Some(("x-amz-checksum-crc32", &wrong)));
    let v = run(req.map(|()| Pieces::bytewise(&body))).unwrap();
    let e = drain_failing(v, data.len());
    assert_eq!(e.code(), S3Code::BadDigest);
    assert_eq!(
        e.to_string(),
        "The CRC32 you specified did not match the calculated checksum."
    );
}

// === Unsigned trailers ===

fn unsigned_trailer_request(algorithm: ChecksumAlgorithm, len: usize) -> Request<()> {
    let req = put("/k", "STREAMING-UNSIGNED-PAYLOAD-TRAILER")
        .header("content-encoding", "aws-chunked")
        .header("x-amz-decoded-content-length", len)
        .header("x-amz-trailer", algorithm.header_name())
        .body(())
        .unwrap();
    sign(req, None).0
}

#[test]
fn unsigned_trailer_checksums_every_algorithm() {
    let data: &[u8] = b"The quick brown fox jumps over the lazy dog";
    for algorithm in ChecksumAlgorithm::ALL {
        let good = b64(algorithm, data);
        let body = unsigned_chunks(
            &[&data[..10], &data[10..]],
            Some((algorithm.header_name(), &good)),
        );
        let v =
            run(unsigned_trailer_request(algorithm, data.len()).map(|()| Pieces::bytewise(&body)))
                .unwrap();
        let out = drain(v.body);
        assert!(out.error.is_none(), "{algorithm:?}: {:?}", out.error);
        assert_eq!(out.data, data);
        assert_eq!(
            out.trailers.unwrap()[algorithm.header_name()],
            good.as_str()
        );

        let bad = b64(algorithm, b"something else");
        let body = unsigned_chunks(&[data], Some((algorithm.header_name(), &bad)));
        let v =
            run(unsigned_trailer_request(algorithm, data.len()).map(|()| Pieces::bytewise(&body)))
                .unwrap();
        assert_eq!(
            drain_failing(v, data.len()),
            AuthError::ChecksumMismatch(algorithm)
        );

        let body = unsigned_chunks(&[data], Some((algorithm.header_name(), "not base64!")));
        let v =
            run(unsigned_trailer_request(algorithm, data.len()).map(|()| Pieces::bytewise(&body)))
                .unwrap();
        assert_eq!(
            drain_failing(v, data.len()),
            AuthError::InvalidChecksum(algorithm)
        );
    }
}

#[test]
fn unsigned_trailer_missing_or_undeclared() {
    let data: &[u8] = b"abcdef";
    let missing = unsigned_chunks(&[data], None);
    let v =
        run(unsigned_trailer_request(ChecksumAlgorithm::Crc32, 6)
            .map(|()| Pieces::bytewise(&missing)))
        .unwrap();
    let e = drain_failing(v, data.len());
    assert_eq!(
        (e.code(), e),
        (
            S3Code::IncompleteBody,
            AuthError::MissingTrailer("x-amz-checksum-crc32")
        )
    );

    let other = unsigned_chunks(&[data], Some(("x-amz-meta-foo", "bar")));
    let v =
        run(unsigned_trailer_request(ChecksumAlgorithm::Crc32, 6)
            .map(|()| Pieces::bytewise(&other)))
        .unwrap();
    assert_eq!(drain_failing(v, data.len()).code(), S3Code::InvalidRequest);

    // A trailer signature is not part of the unsigned protocol.
    let sig = unsigned_chunks(&[data], Some(("x-amz-trailer-signature", EMPTY_SHA256)));
    let v =
        run(unsigned_trailer_request(ChecksumAlgorithm::Crc32, 6).map(|()| Pieces::bytewise(&sig)))
            .unwrap();
    assert_eq!(drain_failing(v, data.len()).code(), S3Code::InvalidRequest);
}

#[test]
fn decoded_length_must_match() {
    let data: &[u8] = b"abcdef";
    let good = b64(ChecksumAlgorithm::Crc32, data);
    let body = unsigned_chunks(&[data], Some(("x-amz-checksum-crc32", &good)));
    // Declared longer than sent.
    let v = run(
        unsigned_trailer_request(ChecksumAlgorithm::Crc32, 7).map(|()| Pieces::bytewise(&body))
    )
    .unwrap();
    assert_eq!(
        drain_failing(v, data.len()),
        AuthError::IncompleteBody {
            expected: 7,
            received: 6
        }
    );
    // Declared shorter than sent: refused as soon as the chunk header says so.
    let v = run(
        unsigned_trailer_request(ChecksumAlgorithm::Crc32, 5).map(|()| Pieces::bytewise(&body))
    )
    .unwrap();
    let e = drain_failing(v, data.len());
    assert_eq!(
        (e.code(), e),
        (
            S3Code::IncompleteBody,
            AuthError::BodyTooLong { expected: 5 }
        )
    );
}

#[test]
fn aws_chunked_requires_decoded_length() {
    for mode in [
        "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
    ] {
        let req = sign(put("/k", mode).body(Empty::<Bytes>::new()).unwrap(), None).0;
        assert_eq!(code_of(req), S3Code::MissingContentLength, "{mode}");
        let req = put("/k", mode).header("x-amz-decoded-content-length", "-1");
        assert_eq!(
            code_of(sign(req.body(Empty::<Bytes>::new()).unwrap(), None).0),
            S3Code::InvalidArgument
        );
    }
}

// === Plain payloads: checksums, MD5, length ===

#[test]
fn content_sha256_mismatch_and_truncation() {
    let v = run(signed_put(b"payload", &[])).unwrap();
    let out = drain(v.body);
    assert_eq!(out.data, b"payload");

    // Signed for a different payload.
    let req = put("/k", &sha_hex(b"other")).body(()).unwrap();
    let v = run(sign(req, None).0.map(|()| Pieces::bytewise(b"payload"))).unwrap();
    let e = drain_failing(v, 7);
    assert_eq!(
        (e.code(), e),
        (
            S3Code::XAmzContentSHA256Mismatch,
            AuthError::ContentSha256Mismatch
        )
    );

    // Shorter than Content-Length.
    let req = put("/k", &sha_hex(b"payload"))
        .header("content-length", "8")
        .body(())
        .unwrap();
    let v = run(sign(req, None).0.map(|()| Pieces::bytewise(b"payload"))).unwrap();
    assert_eq!(drain_failing(v, 7).code(), S3Code::IncompleteBody);

    // The client goes away mid-body: an I/O error, not a verification failure.
    let mut req = signed_put(b"payload", &[]);
    let body = req.body_mut();
    body.frames.truncate(3);
    body.fail_at_end = true;
    let v = run(req).unwrap();
    let slot = v.body.failure();
    let out = drain(v.body);
    let Some(e @ BodyError::Client(_)) = out.error else {
        panic!("{:?}", out.error)
    };
    assert_eq!(e.code(), S3Code::IncompleteBody);
    assert!(std::error::Error::source(&e).is_some());
    assert!(out.data.len() < 7);
    // Recorded, so that the client hears 400 IncompleteBody and not the upstream's abort.
    assert!(
        matches!(
            slot.get(),
            Some(AuthError::IncompleteBody { expected: 7, .. })
        ),
        "{slot:?}"
    );
}

/// A client that stops sending mid-body hears S3's `RequestTimeout`, and nothing of the body
/// is released as complete.
#[test]
fn a_stalled_body_is_a_request_timeout() {
    let mut req = signed_put(b"payload", &[]);
    let body = req.body_mut();
    body.frames.truncate(3);
    body.stall_at_end = true;
    let v = run(req).unwrap();
    let slot = v.body.failure();
    let out = drain(v.body);
    let Some(e @ BodyError::Client(_)) = out.error else {
        panic!("{:?}", out.error)
    };
    assert_eq!(e.code(), S3Code::RequestTimeout);
    assert!(out.data.len() < 3);
    assert_eq!(slot.get(), Some(&AuthError::RequestTimeout));
    assert_eq!(AuthError::RequestTimeout.code().status(), 400);
}

#[test]
fn unsigned_payload_is_streamed_with_the_last_frame_held() {
    let req = put("/k", "UNSIGNED-PAYLOAD")
        .header("content-length", "5")
        .body(())
        .unwrap();
    let v = run(sign(req, None)
        .0
        .map(|()| Full::new(Bytes::from_static(b"hello"))))
    .unwrap();
    assert_eq!(v.body.size_hint().exact(), Some(5));
    let out = drain(v.body);
    assert_eq!(out.data, b"hello");
}

#[test]
fn content_md5() {
    use base64::Engine as _;
    use md5::Digest as _;
    let data: &'static [u8] = b"md5 me";
    let good = base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(data));
    let out = drain(
        run(signed_put(data, &[("content-md5", &good)]))
            .unwrap()
            .body,
    );
    assert!(out.error.is_none() && out.data == data);

    let wrong = base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(b"other"));
    let v = run(signed_put(data, &[("content-md5", &wrong)])).unwrap();
    let e = drain_failing(v, data.len());
    assert_eq!(
        (e.code(), e),
        (S3Code::BadDigest, AuthError::ContentMd5Mismatch)
    );

    for malformed in ["nope", "AAAA", ""] {
        assert_eq!(
            code_of(signed_put(data, &[("content-md5", malformed)])),
            S3Code::InvalidDigest
        );
    }
}

#[test]
fn checksum_headers() {
    let data: &'static [u8] = b"checksummed";
    for algorithm in ChecksumAlgorithm::ALL {
        let good = b64(algorithm, data);
        let out = drain(
            run(signed_put(data, &[(algorithm.header_name(), &good)]))
                .unwrap()
                .body,
        );
        assert!(out.error.is_none(), "{algorithm:?}");
        assert!(
            out.trailers.is_none(),
            "a header checksum is already in the head"
        );

        let bad = b64(algorithm, b"other");
        let v = run(signed_put(data, &[(algorithm.header_name(), &bad)])).unwrap();
        assert_eq!(
            drain_failing(v, data.len()),
            AuthError::ChecksumMismatch(algorithm)
        );

        let req = signed_put(data, &[(algorithm.header_name(), "AAAA")]);
        assert_eq!(run(req).unwrap_err(), AuthError::InvalidChecksum(algorithm));
    }
    let two = signed_put(
        data,
        &[
            ("x-amz-checksum-crc32", &b64(ChecksumAlgorithm::Crc32, data)),
            ("x-amz-checksum-sha1", &b64(ChecksumAlgorithm::Sha1, data)),
        ],
    );
    assert_eq!(run(two).unwrap_err(), AuthError::MultipleChecksums);
    // A trailer declaration needs a trailer mode.
    let req = signed_put(data, &[("x-amz-trailer", "x-amz-checksum-crc32")]);
    assert_eq!(run(req).unwrap_err(), AuthError::InvalidTrailerDeclaration);
}

#[test]
fn checksum_known_values() {
    // "123456789" is the standard CRC check input.
    let check = b"123456789";
    assert_eq!(
        checksum(ChecksumAlgorithm::Crc32, check),
        0xCBF4_3926u32.to_be_bytes()
    );
    assert_eq!(
        checksum(ChecksumAlgorithm::Crc32c, check),
        0xE306_9283u32.to_be_bytes()
    );
    assert_eq!(
        checksum(ChecksumAlgorithm::Crc64Nvme, check),
        0xAE8B_1486_0A79_9888u64.to_be_bytes()
    );
    assert_eq!(
        hex::encode(checksum(ChecksumAlgorithm::Sha1, b"abc")),
        "a9993e364706816aba3e25717850c26c9cd0d89d"
    );
    assert_eq!(
        hex::encode(checksum(ChecksumAlgorithm::Sha256, b"")),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    // The AWS trailer example: 66560 'a' bytes.
    assert_eq!(
        b64(ChecksumAlgorithm::Crc32c, &vec![b'a'; 66560]),
        "sOO8/Q=="
    );
}

proptest::proptest! {
    /// Streaming checksums equal one-shot ones however the data is cut.
    #[test]
    fn checksummer_is_split_invariant(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300), cut in 0usize..300) {
        let cut = cut.min(data.len());
        for algorithm in ChecksumAlgorithm::ALL {
            let mut c = checksum::Checksummer::new(algorithm);
            c.update(&data[..cut]);
            c.update(&data[cut..]);
            proptest::prop_assert_eq!(c.finalize(), checksum(algorithm, &data));
        }
    }
}

// === Header-auth refusals ===

fn get_signed(extra: &[(&str, &str)]) -> Request<Empty<Bytes>> {
    let mut b = Request::get("/k")
        .header("host", "examplebucket.s3.amazonaws.com")
        .header("x-amz-date", AMZ_DATE)
        .header("x-amz-content-sha256", EMPTY_SHA256);
    for (n, v) in extra {
        b = b.header(*n, *v);
    }
    sign(b.body(Empty::new()).unwrap(), None).0
}

fn with_authorization(value: &str) -> Request<Empty<Bytes>> {
    let mut req = get_signed(&[]);
    req.headers_mut()
        .insert(AUTHORIZATION, value.parse().unwrap());
    req
}

fn authorization_of(req: &Request<Empty<Bytes>>) -> String {
    req.headers()[AUTHORIZATION].to_str().unwrap().to_owned()
}

#[test]
fn no_credentials_at_all_is_anonymous() {
    for uri in ["/k", "/k?versionId=1&response-content-type=text%2Fplain"] {
        let req = Request::get(uri)
            .header("host", "h")
            .header("range", "bytes=0-9")
            .header("origin", "https://app.example")
            .body(Empty::<Bytes>::new())
            .unwrap();
        let v = run(req).unwrap();
        assert!(matches!(v.principal, Principal::Anonymous));
        assert!(!v.presigned);
    }
    assert_eq!(
        AuthError::MissingAuthentication.code(),
        S3Code::AccessDenied
    );
}

#[test]
fn any_attempt_at_authentication_is_verified_not_taken_as_anonymous() {
    // Parts of a signature without the signature, in any case, are refused as unsigned.
    for (uri, header) in [
        ("/k", Some(("x-amz-date", AMZ_DATE))),
        ("/k", Some(("x-amz-content-sha256", EMPTY_SHA256))),
        ("/k", Some(("x-amz-security-token", "t"))),
        ("/k", Some(("x-amz-request-payer", "requester"))),
        ("/k?x-amz-signature=00", None),
        ("/k?X-AMZ-CREDENTIAL=a", None),
        ("/k?x-amz-expires=5", None),
        ("/k?awsaccesskeyid=a", None),
    ] {
        let mut b = Request::get(uri).header("host", "h");
        if let Some((n, v)) = header {
            b = b.header(n, v);
        }
        let err = run(b.body(Empty::<Bytes>::new()).unwrap()).unwrap_err();
        assert_eq!(
            err.code(),
            S3Code::AccessDenied,
            "{uri} {header:?}: {err:?}"
        );
    }
    // A signature that does not verify is refused, never served as anonymous.
    let mut forged = get_signed(&[]);
    let auth = authorization_of(&forged);
    let last = if auth.ends_with('0') { "1" } else { "0" };
    let bad = format!("{}{last}", &auth[..auth.len() - 1]);
    forged
        .headers_mut()
        .insert(AUTHORIZATION, bad.parse().unwrap());
    assert_eq!(run(forged).unwrap_err(), AuthError::SignatureDoesNotMatch);
    // A presigned URL with a wrong signature, and SigV2 query authentication.
    let bad = PRESIGNED.replace("X-Amz-Signature=a", "X-Amz-Signature=b");
    assert_ne!(bad, PRESIGNED);
    assert_eq!(
        run(presigned(&bad)).unwrap_err(),
        AuthError::SignatureDoesNotMatch
    );
    let err = run(presigned(&format!(
        "/k?AWSAccessKeyId={AK}&Expires=99999999999&Signature=AAAA"
    )))
    .unwrap_err();
    assert_eq!(err, AuthError::SignatureDoesNotMatch);
}

#[test]
fn signature_and_key_errors() {
    run(get_signed(&[])).unwrap();
    let good = authorization_of(&get_signed(&[]));

    let mut flipped = good.clone();
    let last = flipped.pop().unwrap();
    flipped.push(if last == '0' { '1' } else { '0' });
    let e = run(with_authorization(&flipped)).unwrap_err();
    assert_eq!(e.code(), S3Code::SignatureDoesNotMatch);
    assert!(e
        .to_string()
        .starts_with("The request signature we calculated does not match"));

    let unknown = good.replace(AK, "AKIAUNKNOWNKEY000000");
    assert_eq!(
        code_of(with_authorization(&unknown)),
        S3Code::InvalidAccessKeyId
    );

    // Signed for another region: AWS's own wording.
    let e = run(with_authorization(&good.replace("us-east-1", "us-west-2"))).unwrap_err();
    assert_eq!(e.code(), S3Code::AuthorizationHeaderMalformed);
    assert!(
        e.to_string()
            .contains("the region 'us-west-2' is wrong; expecting 'us-east-1'"),
        "{e}"
    );
    for (from, to) in [
        ("20130524/", "20130525/"),
        ("/s3/", "/sts/"),
        ("aws4_request", "aws5_request"),
    ] {
        assert_eq!(
            code_of(with_authorization(&good.replace(from, to))),
            S3Code::AuthorizationHeaderMalformed
        );
    }
    assert_eq!(
        code_of(with_authorization(
            &good.replace("AWS4-HMAC-SHA256", "AWS4-ECDSA-P256-SHA256")
        )),
        S3Code::InvalidRequest
    );
    // SigV2: a signature that is no HMAC-SHA1 matches nothing.
    assert_eq!(
        code_of(with_authorization("AWS AKIAIOSFODNN7EXAMPLE:c2lnbmF0dXJl")),
        S3Code::SignatureDoesNotMatch
    );
    assert_eq!(
        code_of(with_authorization("Bearer x")),
        S3Code::AuthorizationHeaderMalformed
    );
    let mut two = get_signed(&[]);
    two.headers_mut()
        .append(AUTHORIZATION, good.parse().unwrap());
    assert_eq!(code_of(two), S3Code::AuthorizationHeaderMalformed);
}

#[test]
fn clock_skew() {
    let at = |now| verify(get_signed(&[]), &keys(), &cx_at(now));
    at(t0() + Duration::from_secs(14 * 60)).unwrap();
    at(t0() - Duration::from_secs(14 * 60)).unwrap();
    for now in [
        t0() + Duration::from_secs(16 * 60),
        t0() - Duration::from_secs(16 * 60),
    ] {
        assert_eq!(at(now).unwrap_err().code(), S3Code::RequestTimeTooSkewed);
    }
    // No date at all, or an unparsable one.
    let mut req = get_signed(&[]);
    req.headers_mut().remove("x-amz-date");
    assert_eq!(run(req).unwrap_err(), AuthError::MissingDate);
    let mut req = get_signed(&[]);
    req.headers_mut()
        .insert("x-amz-date", "2013-05-24T00:00:00Z".parse().unwrap());
    assert_eq!(code_of(req), S3Code::AccessDenied);
}

#[test]
fn date_header_instead_of_x_amz_date() {
    // SigV4 allows `Date` when `x-amz-date` is absent; the string to sign uses its ISO form.
    let req = Request::get("/k")
        .header("host", "examplebucket.s3.amazonaws.com")
        .header("date", "Fri, 24 May 2013 00:00:00 GMT")
        .header("x-amz-content-sha256", EMPTY_SHA256)
        .header("x-amz-date", AMZ_DATE)
        .body(Empty::<Bytes>::new())
        .unwrap();
    let (mut req, _) = sign(req, Some(&["date", "host", "x-amz-content-sha256"]));
    req.headers_mut().remove("x-amz-date");
    run(req).unwrap();
}

#[test]
fn signed_headers_rules() {
    // Every x-amz-* header must be signed.
    let mut req = get_signed(&[]);
    req.headers_mut()
        .insert("x-amz-server-side-encryption", "AES256".parse().unwrap());
    let e = run(req).unwrap_err();
    assert_eq!(
        e,
        AuthError::HeadersNotSigned("x-amz-server-side-encryption".into())
    );
    assert_eq!(e.code(), S3Code::AccessDenied);

    let base = || {
        Request::get("/k")
            .header("host", "examplebucket.s3.amazonaws.com")
            .header("x-amz-date", AMZ_DATE)
            .header("x-amz-content-sha256", EMPTY_SHA256)
            .body(Empty::<Bytes>::new())
            .unwrap()
    };
    let (req, _) = sign(base(), Some(&["x-amz-content-sha256", "x-amz-date"]));
    assert_eq!(
        run(req).unwrap_err(),
        AuthError::RequiredHeaderNotSigned("host")
    );
    let (req, _) = sign(base(), Some(&["host", "x-amz-date"]));
    assert_eq!(
        run(req).unwrap_err(),
        AuthError::RequiredHeaderNotSigned("x-amz-content-sha256")
    );

    // A signed header the request does not carry.
    let mut req = get_signed(&[("x-amz-meta-a", "1")]);
    req.headers_mut().remove("x-amz-meta-a");
    assert_eq!(
        run(req).unwrap_err(),
        AuthError::SignedHeaderAbsent("x-amz-meta-a".into())
    );

    // Unsorted SignedHeaders.
    let good = authorization_of(&get_signed(&[]));
    let unsorted = good.replace(
        "host;x-amz-content-sha256;x-amz-date",
        "host;x-amz-date;x-amz-content-sha256",
    );
    assert_eq!(
        code_of(with_authorization(&unsorted)),
        S3Code::AuthorizationHeaderMalformed
    );

    // A signed header's value changed in transit.
    let mut req = get_signed(&[("x-amz-meta-a", "1")]);
    req.headers_mut()
        .insert("x-amz-meta-a", "2".parse().unwrap());
    assert_eq!(code_of(req), S3Code::SignatureDoesNotMatch);

    // x-amz-content-sha256 is required with header auth.
    let mut req = get_signed(&[]);
    req.headers_mut().remove("x-amz-content-sha256");
    assert_eq!(code_of(req), S3Code::InvalidRequest);
}

#[test]
fn content_sha256_values() {
    let with = |value: &str| {
        let req = Request::put("/k")
            .header("host", "h")
            .header("x-amz-date", AMZ_DATE)
            .header("x-amz-content-sha256", value)
            .body(Empty::<Bytes>::new())
            .unwrap();
        sign(req, None).0
    };
    assert_eq!(
        code_of(with("STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD")),
        S3Code::InvalidRequest
    );
    assert_eq!(
        code_of(with("STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD-TRAILER")),
        S3Code::InvalidRequest
    );
    for bad in [
        "",
        "UNSIGNED",
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85",
        "zz",
    ] {
        assert_eq!(code_of(with(bad)), S3Code::InvalidArgument, "{bad:?}");
    }
}

#[test]
fn uri_encoding_variants_verify() {
    let get = |path: &str| {
        Request::get(path)
            .header("host", "h")
            .header("x-amz-date", AMZ_DATE)
            .header("x-amz-content-sha256", "UNSIGNED-PAYLOAD")
            .body(Empty::<Bytes>::new())
            .unwrap()
    };
    // A client that escapes `!` and one that does not sign the same canonical URI.
    let (escaped, escaped_signature) = sign(get("/bucket/a%21b%20c"), None);
    let (raw, raw_signature) = sign(get("/bucket/a!b%20c"), None);
    assert_eq!(escaped_signature, raw_signature);
    run(escaped).unwrap();
    run(raw).unwrap();
    // Broken percent-encoding cannot be canonicalised.
    let mut bad = get("/bad%zz");
    bad.headers_mut()
        .insert(AUTHORIZATION, raw_signature_header(&raw_signature));
    assert_eq!(code_of(bad), S3Code::InvalidURI);
}

fn raw_signature_header(signature: &sigv4::Signature) -> http::HeaderValue {
    format!(
        "AWS4-HMAC-SHA256 Credential={AK}/{SCOPE}, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature={}",
        hex::encode(signature)
    )
    .parse()
    .unwrap()
}

#[test]
fn signed_chunks_generated_end_to_end() {
    // Many small chunks, each released only after its signature held.
    let data: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
    let chunks: Vec<&[u8]> = data.chunks(333).collect();
    let req = put("/k", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD")
        .header("content-encoding", "aws-chunked")
        .header("x-amz-decoded-content-length", data.len())
        .body(())
        .unwrap();
    let (req, seed) = sign(req, None);
    let body = signed_chunks(seed, &chunks, None);
    let v = run(req.map(|()| Pieces::new(body.chunks(77).map(Bytes::copy_from_slice)))).unwrap();
    let out = drain(v.body);
    assert!(out.error.is_none(), "{:?}", out.error);
    assert_eq!(out.data, data);
}

#[test]
fn every_error_has_a_code() {
    // Exhaustiveness is the compiler's job; this pins the codes the brief promises.
    let cases = [
        (
            AuthError::SignatureDoesNotMatch,
            S3Code::SignatureDoesNotMatch,
        ),
        (
            AuthError::ContentSha256Mismatch,
            S3Code::XAmzContentSHA256Mismatch,
        ),
        (
            AuthError::MissingDecodedContentLength,
            S3Code::MissingContentLength,
        ),
        (
            AuthError::RequestTimeTooSkewed,
            S3Code::RequestTimeTooSkewed,
        ),
        (
            AuthError::ConflictingAuthentication,
            S3Code::InvalidArgument,
        ),
        (AuthError::InvalidContentMd5, S3Code::InvalidDigest),
        (AuthError::InvalidToken, S3Code::InvalidToken),
        (
            AuthError::Chunked(chunked::ChunkedError::Truncated),
            S3Code::IncompleteBody,
        ),
        (
            AuthError::MalformedQueryAuthentication(String::new()),
            S3Code::AuthorizationQueryParametersError,
        ),
    ];
    for (e, code) in cases {
        assert_eq!(e.code(), code, "{e}");
        assert_eq!(BodyError::Verification(e).code(), code);
    }
}

// === Clients that encode paths differently ===

#[test]
fn a_path_signed_exactly_as_sent_is_accepted() {
    // `encodeURIComponent`-style clients send and sign `%2F` inside a key; the SDKs send `/`.
    // Both name the same key, and both signatures must verify.
    let req = Request::get("/dir%2Fkey%21")
        .header("host", "examplebucket.s3.amazonaws.com")
        .header("x-amz-date", AMZ_DATE)
        .header("x-amz-content-sha256", EMPTY_SHA256)
        .body(Empty::<Bytes>::new())
        .unwrap();
    let names = ["host", "x-amz-content-sha256", "x-amz-date"];
    let canonical = sigv4::canonical_request(
        "GET",
        "/dir%2Fkey%21",
        "",
        &sigv4::canonical_headers(req.headers(), None, &names).unwrap(),
        &names.join(";"),
        EMPTY_SHA256,
    );
    let sts = sigv4::string_to_sign(AMZ_DATE, SCOPE, &canonical);
    let sig = sigv4::SigningKey::derive(SECRET, "20130524", "us-east-1").sign(sts.as_bytes());
    let mut req = req;
    req.headers_mut().insert(
        AUTHORIZATION,
        format!(
            "AWS4-HMAC-SHA256 Credential={AK}/{SCOPE}, SignedHeaders={}, Signature={}",
            names.join(";"),
            hex::encode(sig)
        )
        .parse()
        .unwrap(),
    );
    assert!(run(req).is_ok());

    // The S3 canonical form (each byte encoded once) of the same path verifies as well.
    let req = Request::get("/dir%2Fkey%21")
        .header("host", "examplebucket.s3.amazonaws.com")
        .header("x-amz-date", AMZ_DATE)
        .header("x-amz-content-sha256", EMPTY_SHA256)
        .body(Empty::<Bytes>::new())
        .unwrap();
    assert!(run(sign(req, None).0).is_ok());
}

// === Signature Version 2 ===

/// `Base64(HMAC-SHA1(SECRET, string_to_sign))`, built here from the crates directly.
fn v2_signature(string_to_sign: &str) -> String {
    use base64::engine::general_purpose::STANDARD;
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(string_to_sign.as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

fn v2_header_get(
    path_and_query: &str,
    resource: &str,
    extra: &[(&str, &str)],
) -> Request<Empty<Bytes>> {
    let date = httpdate::fmt_http_date(t0());
    let mut amz = String::new();
    for (k, v) in extra {
        let _ = writeln!(amz, "{k}:{v}");
    }
    let sts = format!("GET\n\n\n{date}\n{amz}{resource}");
    let mut req = Request::get(path_and_query)
        .header("host", "h")
        .header("date", &date)
        .header(AUTHORIZATION, format!("AWS {AK}:{}", v2_signature(&sts)));
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    req.body(Empty::<Bytes>::new()).unwrap()
}

fn v2_presigned_get(path: &str, expires: u64) -> Request<Empty<Bytes>> {
    let sig = v2_signature(&format!("GET\n\n\n{expires}\n{path}"));
    let sig = percent_encoding::utf8_percent_encode(&sig, percent_encoding::NON_ALPHANUMERIC);
    Request::get(format!(
        "{path}?AWSAccessKeyId={AK}&Expires={expires}&Signature={sig}"
    ))
    .header("host", "h")
    .body(Empty::<Bytes>::new())
    .unwrap()
}

#[test]
fn signature_version_2_headers_authenticate() {
    let v = run(v2_header_get("/bkt/k", "/bkt/k", &[])).unwrap();
    assert!(!v.presigned);
    // x-amz-* headers and sub-resources are signed; other parameters are not.
    let meta = [("x-amz-meta-a", "1")];
    assert!(run(v2_header_get(
        "/bkt/k?acl&x-id=GetObjectAcl",
        "/bkt/k?acl",
        &meta
    ))
    .is_ok());
    let mut req = v2_header_get("/bkt/k", "/bkt/k", &[]);
    req.headers_mut()
        .insert("x-amz-meta-injected", "1".parse().unwrap());
    assert_eq!(code_of(req), S3Code::SignatureDoesNotMatch);
    assert_eq!(
        code_of(v2_header_get("/bkt/other", "/bkt/k", &[])),
        S3Code::SignatureDoesNotMatch
    );
    // The clock, the key, the token.
    let late = verify(
        v2_header_get("/bkt/k", "/bkt/k", &[]),
        &keys(),
        &cx_at(t0() + Duration::from_secs(16 * 60)),
    );
    assert_eq!(late.unwrap_err().code(), S3Code::RequestTimeTooSkewed);
    let mut req = v2_header_get("/bkt/k", "/bkt/k", &[]);
    req.headers_mut().insert(
        AUTHORIZATION,
        format!("AWS NOSUCHKEY:{}", v2_signature("x"))
            .parse()
            .unwrap(),
    );
    assert_eq!(code_of(req), S3Code::InvalidAccessKeyId);
    let token = [("x-amz-security-token", "t")];
    assert_eq!(
        code_of(v2_header_get("/bkt/k", "/bkt/k", &token)),
        S3Code::InvalidToken
    );
}

#[test]
fn signature_version_2_presigned_urls_authenticate_until_they_expire() {
    let expires = 1_369_353_600 + 60;
    let v = run(v2_presigned_get("/bkt/k", expires)).unwrap();
    assert!(v.presigned);
    // An Expires beyond what SystemTime holds is far in the future, not a panic.
    assert!(run(v2_presigned_get("/bkt/k", u64::MAX)).is_ok());
    let err = run(v2_presigned_get("/bkt/k", 1_369_353_600 - 1)).unwrap_err();
    assert_eq!(
        (err.code(), err.to_string().as_str()),
        (S3Code::AccessDenied, "Request has expired")
    );
    let req = Request::get("/bkt/k?AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Expires=1369353660")
        .header("host", "h")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let err = run(req).unwrap_err();
    assert_eq!(
        (err.code(), err.to_string().as_str()),
        (
            S3Code::AccessDenied,
            "Query-string authentication requires the Signature, Expires and AWSAccessKeyId parameters"
        )
    );
}

#[test]
fn signature_version_2_can_be_refused() {
    let off = AuthContext {
        sigv2: false,
        ..cx_at(t0())
    };
    for req in [
        v2_header_get("/bkt/k", "/bkt/k", &[]),
        v2_presigned_get("/bkt/k", 1_369_353_660),
    ] {
        let err = verify(req, &keys(), &off).unwrap_err();
        assert_eq!(err.code(), S3Code::InvalidRequest);
        assert_eq!(
            err.to_string(),
            "The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256."
        );
    }
}

// === Deny by default: temporary credentials and mixed signature schemes ===

/// A presigned `GET /k`, valid at [`t0`], whose signed query also carries `extra`
/// (`&name=value...`, already encoded).
fn presigned_with(extra: &str) -> Request<Empty<Bytes>> {
    let query = format!(
        "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential={AK}%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date={AMZ_DATE}&X-Amz-Expires=86400&X-Amz-SignedHeaders=host{extra}"
    );
    let unsigned = presigned(&format!("/k?{query}"));
    let canonical = sigv4::canonical_request(
        "GET",
        "/k",
        &sigv4::canonical_query(&query, None).unwrap(),
        &sigv4::canonical_headers(unsigned.headers(), None, &["host"]).unwrap(),
        "host",
        UNSIGNED_PAYLOAD,
    );
    let sts = sigv4::string_to_sign(AMZ_DATE, SCOPE, &canonical);
    let signature = sigv4::SigningKey::derive(SECRET, "20130524", "us-east-1").sign(sts.as_bytes());
    presigned(&format!(
        "/k?{query}&X-Amz-Signature={}",
        hex::encode(signature)
    ))
}

/// A `GET /k?query` with header auth that signs the query too.
fn get_signed_query(query: &str) -> Request<Empty<Bytes>> {
    let req = Request::get(format!("/k?{query}"))
        .header("host", "examplebucket.s3.amazonaws.com")
        .header("x-amz-date", AMZ_DATE)
        .header("x-amz-content-sha256", EMPTY_SHA256)
        .body(Empty::new())
        .unwrap();
    sign(req, None).0
}

/// The S3 code and HTTP status a refusal is answered with.
fn answer<B: Body>(req: Request<B>) -> (&'static str, u16) {
    let code = run(req).expect_err("must be refused").code();
    (code.as_str(), code.status().as_u16())
}

#[test]
fn security_tokens_are_refused_even_when_signed() {
    // The helpers sign correctly: without a token both forms verify.
    run(presigned_with("")).unwrap();
    run(get_signed(&[])).unwrap();

    // s3seal issues no temporary credentials, so no session token can be valid.
    let token = "FQoGZXIvYXdzEXAMPLE%2F%2BtoKEN";
    let e = run(get_signed(&[(
        "x-amz-security-token",
        "FQoGZXIvYXdzEXAMPLE",
    )]))
    .unwrap_err();
    assert_eq!(
        (e.code().as_str(), e.code().status().as_u16(), e.to_string()),
        (
            "InvalidToken",
            400,
            "The provided token is malformed or otherwise invalid.".to_owned()
        )
    );
    assert_eq!(
        answer(presigned_with(&format!("&X-Amz-Security-Token={token}"))),
        ("InvalidToken", 400)
    );
    // Query parameter names are matched without regard to case: a backend that does so
    // must not be handed a token the proxy let through.
    assert_eq!(
        answer(presigned_with(&format!("&x-amz-security-token={token}"))),
        ("InvalidToken", 400)
    );
    assert_eq!(
        answer(get_signed_query(&format!("X-Amz-Security-Token={token}"))),
        ("InvalidToken", 400)
    );
}

#[test]
fn signature_version_2_parameters_cannot_ride_along_with_sigv4() {
    for v2 in [
        "AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE",
        "Signature=c2lnbmF0dXJl",
        "Expires=1369440000",
        "signature=c2lnbmF0dXJl",
    ] {
        // Inside a SigV4 header-signed request, and inside a SigV4 presigned URL.
        assert_eq!(
            answer(get_signed_query(v2)),
            ("InvalidArgument", 400),
            "header auth + {v2}"
        );
        assert_eq!(
            answer(presigned_with(&format!("&{v2}"))),
            ("InvalidArgument", 400),
            "presigned + {v2}"
        );
    }
    // A SigV2 Authorization header with SigV4 query authentication, or with SigV2 query
    // parameters.
    let mut req = presigned_with("");
    req.headers_mut().insert(
        AUTHORIZATION,
        "AWS AKIAIOSFODNN7EXAMPLE:c2lnbmF0dXJl".parse().unwrap(),
    );
    assert_eq!(answer(req), ("InvalidArgument", 400));
    let req = Request::get("/k?Signature=c2lnbmF0dXJl&Expires=1369440000")
        .header("host", "examplebucket.s3.amazonaws.com")
        .header(AUTHORIZATION, "AWS AKIAIOSFODNN7EXAMPLE:c2lnbmF0dXJl")
        .body(Empty::<Bytes>::new())
        .unwrap();
    assert_eq!(answer(req), ("InvalidArgument", 400));
}
