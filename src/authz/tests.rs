use http::{HeaderMap, HeaderValue, Method, Uri};

use super::*;
use crate::s3::route::{self, Addressing};

fn routed(method: &str, target: &str, copy_source: Option<&str>) -> Routed {
    let mut h = HeaderMap::new();
    h.insert(http::header::HOST, HeaderValue::from_static("proxy"));
    if let Some(src) = copy_source {
        h.insert("x-amz-copy-source", HeaderValue::from_str(src).unwrap());
    }
    let method = Method::from_bytes(method.as_bytes()).unwrap();
    let uri: Uri = target.parse().unwrap();
    route::route(&method, &uri, &h, Addressing::default()).unwrap()
}

fn access() -> AnonymousAccess {
    let open = |read, list| Anonymous {
        read,
        list,
        upstream: "main".into(),
    };
    AnonymousAccess::new([
        ("public-*".to_owned(), open(true, false)),
        ("public-listed".to_owned(), open(true, true)),
        ("public-closed".to_owned(), open(false, false)),
    ])
    .unwrap()
}

fn anonymous(r: Routed) -> Result<Authorized, AuthzError> {
    authorize(r, Principal::Anonymous, &access())
}

#[test]
fn anonymous_reads_the_open_operations_with_the_buckets_upstream() {
    for (method, target) in [
        ("GET", "/public-a/k"),
        ("HEAD", "/public-a/dir/k"),
        (
            "GET",
            "/public-a/k?versionId=1&response-content-type=text/plain",
        ),
        ("GET", "/public-listed?list-type=2&prefix=a"),
        ("GET", "/public-listed"),
    ] {
        let a = anonymous(routed(method, target, None)).expect(target);
        assert_eq!(a.upstream(), "main");
        assert!(a.principal().client().is_none());
    }
}

#[test]
fn anonymous_never_writes_nor_reads_anything_else() {
    for (method, target) in [
        ("PUT", "/public-a/k"),
        ("DELETE", "/public-a/k"),
        ("POST", "/public-a/k?uploads"),
        ("POST", "/public-a?delete"),
        ("POST", "/public-a"),
        ("GET", "/public-a/k?tagging"),
        ("GET", "/public-a/k?acl"),
        ("GET", "/public-a/k?attributes"),
        ("GET", "/public-a?cors"),
        ("PUT", "/public-a?cors"),
        ("GET", "/public-a?policy"),
        ("HEAD", "/public-a"),
        ("GET", "/public-a?location"),
        ("GET", "/public-a?versions"),
        ("GET", "/public-a?uploads"),
        // Listing is its own switch.
        ("GET", "/public-a?list-type=2"),
        ("GET", "/public-a"),
        // The most specific pattern closes what a broader one opens.
        ("GET", "/public-closed/k"),
        // Other buckets, and the service.
        ("GET", "/private/k"),
        ("GET", "/"),
    ] {
        assert_eq!(
            anonymous(routed(method, target, None)).unwrap_err(),
            AuthzError::NotAnonymous,
            "{method} {target}"
        );
    }
    // A copy writes, whatever its source.
    let copy = routed("PUT", "/public-a/k", Some("public-a/other"));
    assert!(anonymous(copy).is_err());
}

#[test]
fn anonymous_refusals_read_as_unsigned_requests_always_did() {
    assert_eq!(
        AuthzError::NotAnonymous.to_string(),
        AuthError::MissingAuthentication.to_string()
    );
    assert_eq!(
        AuthzError::NotAnonymous.code(),
        AuthError::MissingAuthentication.code()
    );
    assert!(AnonymousAccess::none().for_bucket("public-a").is_none());
}
