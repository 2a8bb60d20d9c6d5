//! Issue 14, items 3 and 4: the proxy answers as S3 does (status, code and message) where its
//! backends would not, and refuses before forwarding what S3 refuses and permissive backends
//! accept. Each case is sent through a [`Tap`] that keeps every byte the backend received, so
//! "refused before forwarding" is checked at the wire, not inferred from the backend's state.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_sdk_s3::primitives::ByteStream;
use aws_sigv4::http_request::SignableBody;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::raw::{self, error_code, sign_request};
use crate::support::tap::Tap;
use crate::support::{self, backends, Harness, UpstreamInfo, CLIENT_AK, CLIENT_SK};

/// The proxy in front of a backend, through a tap; `h.direct()` bypasses the tap.
struct Tapped {
    h: Harness,
    tap: Tap,
    _store_dir: Option<tempfile::TempDir>,
}

async fn tapped(backend: Option<&backends::Backend>) -> Tapped {
    let (upstream, store_dir) = if let Some(b) = backend {
        (UpstreamInfo::of(b), None)
    } else {
        let dir = tempfile::tempdir().unwrap();
        let store = s3seal::embedded::start_store(dir.path()).await.unwrap();
        (UpstreamInfo::of_store(store), Some(dir))
    };
    let tap = Tap::start(&upstream.endpoint).await;
    let mut via_tap = upstream.clone();
    via_tap.endpoint.clone_from(&tap.endpoint);
    let mut h = Harness::start_with(via_tap, |_| {}).await;
    h.upstream = upstream;
    Tapped {
        h,
        tap,
        _store_dir: store_dir,
    }
}

/// An answer as the client read it.
struct Answer {
    status: u16,
    body: String,
}

impl Answer {
    fn message(&self) -> &str {
        self.body
            .split_once("<Message>")
            .and_then(|(_, rest)| rest.split_once("</Message>"))
            .map_or("", |(m, _)| m)
    }
}

/// A request signed with header auth and sent whole.
async fn signed(
    h: &Harness,
    method: &str,
    path_and_query: &str,
    extra: &[(&str, &str)],
    body: &[u8],
) -> Answer {
    let uri = format!("{}{path_and_query}", h.endpoint());
    let len = body.len().to_string();
    let mut headers = vec![("content-length", len.as_str())];
    headers.extend_from_slice(extra);
    let s = sign_request(
        method,
        &uri,
        &headers,
        SignableBody::Bytes(body),
        CLIENT_AK,
        CLIENT_SK,
        SystemTime::now(),
    );
    let (status, _, body) = raw::send(method, &uri, &s.headers, body.to_vec()).await;
    Answer { status, body }
}

/// The head of a request signed with an unsigned payload, as written on the wire.
fn signed_head(
    h: &Harness,
    method: &str,
    path_and_query: &str,
    headers: &[(&str, &str)],
) -> String {
    let uri = format!("{}{path_and_query}", h.endpoint());
    let s = sign_request(
        method,
        &uri,
        headers,
        SignableBody::UnsignedPayload,
        CLIENT_AK,
        CLIENT_SK,
        SystemTime::now(),
    );
    let mut head = format!(
        "{method} {path_and_query} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n",
        h.proxy.addr.port()
    );
    for (k, v) in &s.headers {
        if k != "host" {
            let _ = write!(head, "{k}: {v}\r\n");
        }
    }
    head.push_str("\r\n");
    head
}

/// Writes `bytes` over TLS, then (with `half_close`) closes the sending side, and reads the
/// answer (bounded in time).
async fn raw_tls(h: &Harness, bytes: &[u8], half_close: bool) -> Answer {
    let connector = tokio_rustls::TlsConnector::from(Arc::new(support::client_tls()));
    let tcp = TcpStream::connect(h.proxy.addr).await.unwrap();
    let mut tls = connector
        .connect("localhost".try_into().unwrap(), tcp)
        .await
        .unwrap();
    tls.write_all(bytes).await.unwrap();
    if half_close {
        tls.shutdown().await.unwrap();
    }
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|s| s.get(..3))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map_or(String::new(), |(_, b)| b.to_owned());
    Answer { status, body }
}

/// What S3 answers: status, code and message (`None`: a HEAD's bodiless answer).
type Want = (u16, Option<(&'static str, &'static str)>);

const EXPIRED: Want = (403, Some(("AccessDenied", "Request has expired")));
const INVALID_PART_NUMBER: Want = (
    400,
    Some((
        "InvalidArgument",
        "Part number must be an integer between 1 and 10000, inclusive",
    )),
);
const MALFORMED_XML: Want = (
    400,
    Some((
        "MalformedXML",
        "The XML you provided was not well-formed or did not validate against our published schema.",
    )),
);
const INVALID_BUCKET_NAME: Want = (
    400,
    Some(("InvalidBucketName", "The specified bucket is not valid.")),
);
const ENTITY_TOO_LARGE: Want = (
    400,
    Some((
        "EntityTooLarge",
        "Your proposed upload exceeds the maximum allowed object size.",
    )),
);
const INCOMPLETE_BODY: Want = (
    400,
    Some((
        "IncompleteBody",
        "You did not provide the number of bytes specified by the Content-Length HTTP header.",
    )),
);

/// Checks the cases one by one and reports every mismatch at once.
#[derive(Default)]
struct Report {
    failures: Vec<String>,
    /// The bytes the backend had received when the last case was checked.
    received: usize,
}

impl Report {
    /// Checks the answer to the one request sent since the last check (or [`Report::sync`]).
    /// `forwarded`: whether it may reach the backend (it is the backend's to answer, in its
    /// own words: only the status and code are checked).
    async fn check(&mut self, t: &Tapped, name: &str, want: Want, forwarded: bool, a: Answer) {
        let got = (a.status, error_code(&a.body), a.message());
        let ok = match want.1 {
            Some((code, _)) if forwarded => (got.0, got.1) == (want.0, code),
            Some((code, message)) => got == (want.0, code, message),
            None => a.status == want.0,
        };
        if !ok {
            self.failures
                .push(format!("{name}: want {want:?}, got {got:?}: {}", a.body));
        }
        let before = self.received;
        self.sync(t).await;
        if !forwarded && self.received != before {
            self.failures.push(format!(
                "{name}: {} bytes reached the backend",
                self.received - before
            ));
        }
    }

    /// Takes the requests sent since the last check as setup, not as a case.
    async fn sync(&mut self, t: &Tapped) {
        self.received = t.tap.received().await;
    }

    fn assert_clean(self) {
        assert!(self.failures.is_empty(), "\n{}", self.failures.join("\n"));
    }
}

async fn setup(h: &Harness) -> String {
    let b = support::bucket("shield");
    let s3 = h.sdk();
    s3.create_bucket().bucket(&b).send().await.unwrap();
    s3.put_object()
        .bucket(&b)
        .key("existing")
        .body(ByteStream::from_static(b"original content"))
        .send()
        .await
        .unwrap();
    b
}

/// Item 3: error codes as S3 words them. Each case's key (or bucket) names it, and must not
/// reach the backend unless the backend is the one to answer.
async fn answers_as_s3(tapped: &Tapped) {
    use aws_sdk_s3::presigning::PresigningConfig;
    let (t, h) = (tapped, &tapped.h);
    let b = setup(h).await;
    let mut report = Report::default();
    report.sync(t).await;

    // Presigned URLs: X-Amz-Expires out of range, and expired.
    let conf = PresigningConfig::expires_in(Duration::from_secs(60)).unwrap();
    for (name, expires, want) in [
        ("expires-zero", "0", EXPIRED),
        (
            "expires-negative",
            "-1",
            (
                400,
                Some((
                    "AuthorizationQueryParametersError",
                    "X-Amz-Expires must be non-negative",
                )),
            ),
        ),
        (
            "expires-over-a-week",
            "604801",
            (
                400,
                Some((
                    "AuthorizationQueryParametersError",
                    "X-Amz-Expires must be less than a week (in seconds); that is, the given X-Amz-Expires must be less than 604800 seconds",
                )),
            ),
        ),
        (
            "expires-not-a-number",
            "soon",
            (
                400,
                Some((
                    "AuthorizationQueryParametersError",
                    "X-Amz-Expires should be a number",
                )),
            ),
        ),
    ] {
        let req = h
            .sdk()
            .put_object()
            .bucket(&b)
            .key(name)
            .presigned(conf.clone())
            .await
            .unwrap();
        report.sync(t).await;
        let uri = req
            .uri()
            .replace("X-Amz-Expires=60", &format!("X-Amz-Expires={expires}"));
        let (status, _, body) = raw::send("PUT", &uri, &[], b"data".to_vec()).await;
        report.check(t, name, want, false, Answer { status, body }).await;
    }
    let late = PresigningConfig::builder()
        .start_time(SystemTime::now() - Duration::from_secs(3600))
        .expires_in(Duration::from_secs(60))
        .build()
        .unwrap();
    let req = h
        .sdk()
        .put_object()
        .bucket(&b)
        .key("expired-url")
        .presigned(late)
        .await
        .unwrap();
    let (status, _, body) = raw::send("PUT", req.uri(), &[], b"data".to_vec()).await;
    report
        .check(t, "expired-url", EXPIRED, false, Answer { status, body })
        .await;

    // An empty Content-Length: hyper refuses the head before the proxy sees it, with a bare
    // 400 (no S3 document; docs/config.md lists it among the differences).
    let head = format!(
        "PUT /{b}/empty-length HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: \r\nConnection: close\r\n\r\n",
        h.proxy.addr.port()
    );
    let a = raw_tls(h, head.as_bytes(), false).await;
    report.check(t, "empty-length", (400, None), false, a).await;

    // A PUT into a bucket that does not exist (deleted meanwhile): the backend's answer.
    let gone = support::bucket("gone");
    let a = signed(h, "PUT", &format!("/{gone}/no-bucket"), &[], b"data").await;
    report
        .check(
            t,
            "no-bucket",
            (
                404,
                Some(("NoSuchBucket", "The specified bucket does not exist")),
            ),
            true,
            a,
        )
        .await;

    // A body shorter than its Content-Length, the client half-closing after it.
    let mut req = signed_head(
        h,
        "PUT",
        &format!("/{b}/short-body"),
        &[("content-length", "1000")],
    )
    .into_bytes();
    req.extend_from_slice(b"only ten b");
    let a = raw_tls(h, &req, true).await;
    report
        .check(t, "short-body", INCOMPLETE_BODY, true, a)
        .await;

    // A PUT and an UploadPart declaring more than 5 GiB: refused before any byte goes upstream.
    let huge = (5u64 * 1024 * 1024 * 1024 + 1).to_string();
    let mut req = signed_head(
        h,
        "PUT",
        &format!("/{b}/huge-put"),
        &[("content-length", &huge)],
    )
    .into_bytes();
    req.extend_from_slice(&[0; 4096]);
    let a = raw_tls(h, &req, false).await;
    report
        .check(t, "huge-put", ENTITY_TOO_LARGE, false, a)
        .await;
    let mut req = signed_head(
        h,
        "PUT",
        &format!("/{b}/huge-part?partNumber=1&uploadId=u"),
        &[("content-length", &huge)],
    )
    .into_bytes();
    req.extend_from_slice(&[0; 4096]);
    let a = raw_tls(h, &req, false).await;
    report
        .check(t, "huge-part", ENTITY_TOO_LARGE, false, a)
        .await;

    // SigV4a (AWS4-ECDSA-P256-SHA256), which only multi-region access points take.
    let day = time::OffsetDateTime::now_utc();
    let amz_date = format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        day.year(),
        u8::from(day.month()),
        day.day(),
        day.hour(),
        day.minute(),
        day.second()
    );
    let head = format!(
        "GET /{b}/sigv4a HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nx-amz-date: {amz_date}\r\nx-amz-region-set: *\r\nx-amz-content-sha256: UNSIGNED-PAYLOAD\r\nAuthorization: AWS4-ECDSA-P256-SHA256 Credential={CLIENT_AK}/{date}/s3/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-region-set, Signature=3045022100aa\r\nConnection: close\r\n\r\n",
        port = h.proxy.addr.port(),
        date = &amz_date[..8],
    );
    let a = raw_tls(h, head.as_bytes(), false).await;
    report.check(
        t,
        "sigv4a",
        (
            400,
            Some((
                "InvalidRequest",
                "The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256.",
            )),
        ),
        false,
        a,
    )
    .await;

    report.assert_clean();
}

/// Item 4: what S3 refuses and permissive backends accept is refused before forwarding.
async fn refuses_what_s3_refuses(tapped: &Tapped) {
    let (t, h) = (tapped, &tapped.h);
    let b = setup(h).await;
    let mut report = Report::default();
    report.sync(t).await;

    // partNumber out of range on GetObject, HeadObject and UploadPart.
    for (i, n) in ["0", "-1", "10001"].into_iter().enumerate() {
        let name = format!("part-get-{i}");
        let a = signed(h, "GET", &format!("/{b}/{name}?partNumber={n}"), &[], b"").await;
        report.check(t, &name, INVALID_PART_NUMBER, false, a).await;
        let name = format!("part-head-{i}");
        let a = signed(h, "HEAD", &format!("/{b}/{name}?partNumber={n}"), &[], b"").await;
        report.check(t, &name, (400, None), false, a).await;
        let name = format!("part-upload-{i}");
        let path = format!("/{b}/{name}?partNumber={n}&uploadId=u");
        let a = signed(h, "PUT", &path, &[], b"data").await;
        report.check(t, &name, INVALID_PART_NUMBER, false, a).await;
    }

    // A negative max-keys.
    let a = signed(
        h,
        "GET",
        &format!("/{b}?max-keys=-1&prefix=neg-max-keys"),
        &[],
        b"",
    )
    .await;
    report
        .check(
            t,
            "neg-max-keys",
            (
                400,
                Some((
                    "InvalidArgument",
                    "Argument maxKeys must be an integer between 0 and 2147483647",
                )),
            ),
            false,
            a,
        )
        .await;

    // User metadata over 2 KB, on each operation that sets it.
    let big = "v".repeat(2100);
    let too_large = (
        400,
        Some((
            "MetadataTooLarge",
            "Your metadata headers exceed the maximum allowed metadata size.",
        )),
    );
    let a = signed(
        h,
        "PUT",
        &format!("/{b}/meta-put"),
        &[("x-amz-meta-big", &big)],
        b"d",
    )
    .await;
    report.check(t, "meta-put", too_large, false, a).await;
    let a = signed(
        h,
        "POST",
        &format!("/{b}/meta-create?uploads"),
        &[("x-amz-meta-big", &big)],
        b"",
    )
    .await;
    report.check(t, "meta-create", too_large, false, a).await;
    let source = format!("/{b}/existing");
    let a = signed(
        h,
        "PUT",
        &format!("/{b}/meta-copy"),
        &[
            ("x-amz-copy-source", &source),
            ("x-amz-metadata-directive", "REPLACE"),
            ("x-amz-meta-big", &big),
        ],
        b"",
    )
    .await;
    report.check(t, "meta-copy", too_large, false, a).await;

    // DeleteObjects: more than 1000 keys, deeply nested, empty.
    let many = "<Object><Key>del-many</Key></Object>".repeat(1001);
    let nested = format!(
        "<Delete><Object><Key>del-nested</Key></Object>{}{}</Delete>",
        "<Object>".repeat(10_000),
        "</Object>".repeat(10_000)
    );
    for (name, doc) in [
        ("del-many", format!("<Delete>{many}</Delete>")),
        ("del-nested", nested),
        ("del-empty", String::new()),
    ] {
        let path = format!("/{b}?delete");
        let a = signed(h, "POST", &path, &[], doc.as_bytes()).await;
        report.check(t, name, MALFORMED_XML, false, a).await;
    }

    // CompleteMultipartUpload: parts out of order (a real upload), and an upload id that
    // does not exist (the backend's to answer, as S3 would).
    let up = h
        .sdk()
        .create_multipart_upload()
        .bucket(&b)
        .key("complete-order")
        .send()
        .await
        .unwrap();
    let id = up.upload_id().unwrap();
    report.sync(t).await;
    let doc = "<CompleteMultipartUpload><Part><PartNumber>2</PartNumber><ETag>\"a\"</ETag></Part><Part><PartNumber>1</PartNumber><ETag>\"b\"</ETag></Part></CompleteMultipartUpload>";
    let a = signed(
        h,
        "POST",
        &format!("/{b}/complete-order?uploadId={id}"),
        &[],
        doc.as_bytes(),
    )
    .await;
    report.check(
        t,
        "complete-order",
        (
            400,
            Some((
                "InvalidPartOrder",
                "The list of parts was not in ascending order. The parts list must be specified in order by part number.",
            )),
        ),
        false,
        a,
    )
    .await;
    let doc = "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>\"a\"</ETag></Part></CompleteMultipartUpload>";
    let path = format!("/{b}/complete-bogus?uploadId=bogus-upload-id");
    let a = signed(h, "POST", &path, &[], doc.as_bytes()).await;
    report.check(
        t,
        "complete-bogus",
        (
            404,
            Some((
                "NoSuchUpload",
                "The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.",
            )),
        ),
        true,
        a,
    )
    .await;

    // Bucket names S3 reserves.
    for name in ["xn--shield", "shield-s3alias", "shield--ol-s3"] {
        let a = signed(h, "PUT", &format!("/{name}"), &[], b"").await;
        report.check(t, name, INVALID_BUCKET_NAME, false, a).await;
    }

    report.assert_clean();
}

macro_rules! per_backend {
    ($scenario:ident) => {
        mod $scenario {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn s3s_fs() {
                $scenario(&tapped(None).await).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn moto() {
                $scenario(&tapped(Some(backends::shared_moto())).await).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn rgw() {
                $scenario(&tapped(Some(backends::shared_rgw())).await).await;
            }
        }
    };
}

per_backend!(answers_as_s3);
per_backend!(refuses_what_s3_refuses);
