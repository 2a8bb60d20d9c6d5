//! A property test of the head stages (issue 9): requests built from random operations, query
//! parameters, percent-encodings, header casing, Host/authority pairs and copy sources, signed
//! for real, then run through `auth::verify`, `route::route` and [`super::authorize`]. Whatever
//! those let through must be exactly what a small reference model allows: the same operation,
//! bucket, copy source and upstream query, signed by a known key and granted to it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderName, HeaderValue, Method, Request};
use http_body_util::Empty;
use proptest::prelude::*;

use crate::auth::{self, sigv4, AuthContext, BucketPatterns, ClientIdentity, ClientKeys, Grants};
use crate::s3::route::{self, Access, Addressing, Operation};

const AK: &str = "MODELKEY";
const SECRET: &str = "model-secret";
const DATE: &str = "20260102";
const AMZ_DATE: &str = "20260102T030405Z";
const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
const HOST: &str = "proxy.example:8443";

/// The reference model's operations: method, object or bucket, keyword, parameters it takes,
/// whether it copies, its class.
struct Spec {
    method: &'static str,
    object: bool,
    keyword: Option<&'static str>,
    params: &'static [(&'static str, &'static str)],
    copy: bool,
    class: Option<Access>,
    op: Operation,
}

const SPECS: &[Spec] = &[
    Spec {
        method: "GET",
        object: true,
        keyword: None,
        params: &[("versionId", "v 1"), ("response-content-type", "a/b")],
        copy: false,
        class: Some(Access::Read),
        op: Operation::GetObject,
    },
    Spec {
        method: "PUT",
        object: true,
        keyword: None,
        params: &[],
        copy: false,
        class: Some(Access::Write),
        op: Operation::PutObject,
    },
    Spec {
        method: "PUT",
        object: true,
        keyword: None,
        params: &[],
        copy: true,
        class: Some(Access::Write),
        op: Operation::CopyObject,
    },
    Spec {
        method: "PUT",
        object: true,
        keyword: None,
        params: &[("partNumber", "3"), ("uploadId", "u/1")],
        copy: true,
        class: Some(Access::Multipart),
        op: Operation::UploadPartCopy,
    },
    Spec {
        method: "DELETE",
        object: true,
        keyword: None,
        params: &[("versionId", "v")],
        copy: false,
        class: Some(Access::Delete),
        op: Operation::DeleteObject,
    },
    Spec {
        method: "GET",
        object: false,
        keyword: None,
        params: &[("list-type", "2"), ("prefix", "p q"), ("max-keys", "5")],
        copy: false,
        class: Some(Access::List),
        op: Operation::ListObjectsV2,
    },
    Spec {
        method: "PUT",
        object: false,
        keyword: Some("policy"),
        params: &[],
        copy: false,
        class: Some(Access::BucketAdmin),
        op: Operation::BucketConfig(route::BucketResource::Policy, route::Verb::Put),
    },
    Spec {
        method: "PUT",
        object: false,
        keyword: None,
        params: &[],
        copy: false,
        class: Some(Access::CreateDeleteBucket),
        op: Operation::CreateBucket,
    },
    Spec {
        method: "HEAD",
        object: false,
        keyword: None,
        params: &[],
        copy: false,
        class: None,
        op: Operation::HeadBucket,
    },
];

const BUCKETS: &[&str] = &["pub-a", "pub-b", "vault", "PUB-A", "ab"];
const KEYS: &[&str] = &["k", "a/b c", ".s3seal/seal/x", "x/../y"];
/// Extra parameters: names no modelled operation takes, and ones every operation drops.
const EXTRAS: &[(&str, bool)] = &[
    ("foo", false),
    ("Tagging", false),
    ("AWSAccessKeyId", false),
    ("versionid", false),
    ("x-id", true),
    ("X-Amz-Meta", true),
];

/// What the model says the proxy must do.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Refuse,
    Forward {
        op: Operation,
        bucket: String,
        copy_source: Option<(String, String)>,
        query: Vec<(String, String)>,
    },
}

#[derive(Debug, Clone)]
struct Case {
    spec: usize,
    bucket: usize,
    key: usize,
    copy_bucket: usize,
    copy_key: usize,
    params: Vec<bool>,
    extra: Option<usize>,
    /// Which bytes of names, values and copy sources are percent-encoded.
    encode: Vec<bool>,
    /// 0: no absolute-form authority; 1: the signed host; 2: another bucket's virtual host.
    authority: u8,
    upper_headers: bool,
}

fn case() -> impl Strategy<Value = Case> {
    (
        0..SPECS.len(),
        0..BUCKETS.len(),
        0..KEYS.len(),
        0..BUCKETS.len(),
        0..KEYS.len(),
        proptest::collection::vec(any::<bool>(), 3),
        proptest::option::of(0..EXTRAS.len()),
        proptest::collection::vec(any::<bool>(), 64),
        0u8..3,
        any::<bool>(),
    )
        .prop_map(
            |(
                spec,
                bucket,
                key,
                copy_bucket,
                copy_key,
                params,
                extra,
                encode,
                authority,
                upper,
            )| {
                Case {
                    spec,
                    bucket,
                    key,
                    copy_bucket,
                    copy_key,
                    params,
                    extra,
                    encode,
                    authority,
                    upper_headers: upper,
                }
            },
        )
}

/// Percent-encodes the bytes `mask` picks (cycling), leaving the others as they are except
/// those a URL cannot carry raw.
fn encode(s: &str, mask: &[bool], offset: usize) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    for (i, b) in s.bytes().enumerate() {
        let must = !(b.is_ascii_alphanumeric() || b"-_.~/".contains(&b));
        if must || mask[(i + offset) % mask.len()] {
            let _ = write!(out, "%{b:02X}");
        } else {
            out.push(char::from(b));
        }
    }
    out
}

fn model(c: &Case) -> Verdict {
    let spec = &SPECS[c.spec];
    let bucket = BUCKETS[c.bucket];
    let valid = |b: &str| b.len() >= 3 && !b.bytes().any(|x| x.is_ascii_uppercase());
    let allowed = |b: &str| b.to_ascii_lowercase().starts_with("pub-");
    if c.authority == 2 || !valid(bucket) {
        return Verdict::Refuse;
    }
    if spec.object && KEYS[c.key].starts_with(".s3seal/") {
        return Verdict::Refuse;
    }
    if c.extra.is_some_and(|e| !EXTRAS[e].1) {
        return Verdict::Refuse;
    }
    let copy_source = if spec.copy {
        let (b, k) = (BUCKETS[c.copy_bucket], KEYS[c.copy_key]);
        if !valid(b) || k.starts_with(".s3seal/") || !allowed(b) {
            return Verdict::Refuse;
        }
        Some((b.to_owned(), k.to_owned()))
    } else {
        None
    };
    let granted = spec
        .class
        .is_none_or(|class| Grants::default().allows(class));
    if !granted || !allowed(bucket) {
        return Verdict::Refuse;
    }
    let mut query: Vec<(String, String)> = Vec::new();
    if let Some(k) = spec.keyword {
        query.push((k.to_owned(), String::new()));
    }
    for (i, (name, value)) in spec.params.iter().enumerate() {
        if c.params[i % c.params.len()] || spec.op == Operation::UploadPartCopy {
            query.push(((*name).to_owned(), (*value).to_owned()));
        }
    }
    if spec.op == Operation::ListObjectsV2 && !query.iter().any(|(k, _)| k == "list-type") {
        // Without `list-type=2` it is a ListObjects (V1), also a listing.
        return Verdict::Forward {
            op: Operation::ListObjects,
            bucket: bucket.to_owned(),
            copy_source,
            query,
        };
    }
    Verdict::Forward {
        op: spec.op,
        bucket: bucket.to_owned(),
        copy_source,
        query,
    }
}

/// The request the case describes, signed by the model's key for the `Host` it names.
fn build(c: &Case) -> Request<Empty<bytes::Bytes>> {
    let spec = &SPECS[c.spec];
    let bucket = BUCKETS[c.bucket];
    let mut path = format!("/{bucket}");
    if spec.object {
        path.push('/');
        path.push_str(&encode(KEYS[c.key], &c.encode, 7));
    }
    let mut pairs: Vec<String> = Vec::new();
    if let Some(k) = spec.keyword {
        pairs.push(encode(k, &c.encode, 1));
    }
    let sent_params: Vec<(&str, &str)> = spec
        .params
        .iter()
        .enumerate()
        .filter(|(i, _)| c.params[i % c.params.len()] || spec.op == Operation::UploadPartCopy)
        .map(|(_, p)| *p)
        .collect();
    for (i, (k, v)) in sent_params.iter().enumerate() {
        pairs.push(format!(
            "{}={}",
            encode(k, &c.encode, 11 * i),
            encode(v, &c.encode, 13 * i)
        ));
    }
    if let Some(e) = c.extra {
        pairs.push(format!("{}=1", encode(EXTRAS[e].0, &c.encode, 17)));
    }
    let target = if pairs.is_empty() {
        path
    } else {
        format!("{path}?{}", pairs.join("&"))
    };
    let uri = match c.authority {
        0 => target.clone(),
        1 => format!("https://{HOST}{target}"),
        _ => format!("https://vault.{HOST}{target}"),
    };
    let name = |n: &'static str| {
        if c.upper_headers {
            HeaderName::from_bytes(n.to_ascii_uppercase().as_bytes()).unwrap()
        } else {
            HeaderName::from_static(n)
        }
    };
    let mut req = Request::builder()
        .method(Method::from_bytes(spec.method.as_bytes()).unwrap())
        .uri(&uri)
        .body(Empty::<bytes::Bytes>::new())
        .unwrap();
    let h = req.headers_mut();
    h.insert(name("host"), HeaderValue::from_static(HOST));
    h.insert(name("x-amz-date"), HeaderValue::from_static(AMZ_DATE));
    h.insert(
        name("x-amz-content-sha256"),
        HeaderValue::from_static(EMPTY_SHA256),
    );
    if spec.copy {
        let src = format!("{}/{}", BUCKETS[c.copy_bucket], KEYS[c.copy_key]);
        let value = encode(&src, &c.encode, 23);
        h.insert(
            name("x-amz-copy-source"),
            HeaderValue::from_str(&value).unwrap(),
        );
    }
    sign(&mut req, &target);
    req
}

/// Runs the request through the head stages.
fn run(c: &Case) -> Verdict {
    let req = build(c);
    let keys = ClientKeys::new([ClientIdentity {
        access_key_id: AK.into(),
        secret: auth::SecretKey::new(SECRET),
        upstream: "u".into(),
        buckets: BucketPatterns::new(&["pub-*".to_owned()]).unwrap(),
        operations: Grants::default(),
    }]);
    let routed = route::route(
        req.method(),
        req.uri(),
        req.headers(),
        Addressing {
            domain: Some(HOST.split(':').next().unwrap()),
            legacy_bucket_names: false,
        },
    );
    let cx = AuthContext {
        region: "us-east-1",
        now: UNIX_EPOCH + Duration::from_secs(1_767_323_045),
        sigv2: true,
        virtual_host_bucket: None,
    };
    let Ok(verified) = auth::verify(req, &keys, &cx) else {
        return Verdict::Refuse;
    };
    let Ok(routed) = routed else {
        return Verdict::Refuse;
    };
    let Ok(authorized) = crate::authz::authorize(
        routed,
        verified.principal.clone(),
        &crate::authz::AnonymousAccess::none(),
    ) else {
        return Verdict::Refuse;
    };
    let routed = authorized.routed().clone();
    Verdict::Forward {
        op: routed.op,
        bucket: routed.target.bucket().unwrap_or_default().to_owned(),
        copy_source: routed.copy_source.map(|s| (s.bucket, s.key)),
        query: routed.query,
    }
}

/// Header auth over every header, for the path and query as sent.
fn sign<B>(req: &mut Request<B>, target: &str) {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut names: Vec<String> = req
        .headers()
        .keys()
        .map(|n| n.as_str().to_owned())
        .collect();
    names.sort();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let canonical = sigv4::canonical_request(
        req.method().as_str(),
        &sigv4::canonical_uri(path).unwrap(),
        &sigv4::canonical_query(query, None).unwrap(),
        &sigv4::canonical_headers(req.headers(), None, &names).unwrap(),
        &names.join(";"),
        EMPTY_SHA256,
    );
    let scope = sigv4::scope(DATE, "us-east-1");
    let sts = sigv4::string_to_sign(AMZ_DATE, &scope, &canonical);
    let signature = sigv4::SigningKey::derive(SECRET, DATE, "us-east-1").sign(sts.as_bytes());
    let value = format!(
        "AWS4-HMAC-SHA256 Credential={AK}/{scope}, SignedHeaders={}, Signature={}",
        names.join(";"),
        hex::encode(signature)
    );
    req.headers_mut()
        .insert(http::header::AUTHORIZATION, value.parse().unwrap());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// What the head stages let through is exactly what the model allows, and nothing the
    /// model allows is refused.
    #[test]
    fn only_signed_and_granted_requests_pass(c in case()) {
        prop_assert_eq!(run(&c), model(&c));
    }
}

#[test]
fn the_clock_of_the_model_is_the_signing_date() {
    let t = UNIX_EPOCH + Duration::from_secs(1_767_323_045);
    assert_eq!(sigv4::format_amz_date(t), AMZ_DATE);
    assert!(SystemTime::now() > t);
}
