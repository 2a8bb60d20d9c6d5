//! The request parser (`s3::route::route`): never panics, and whatever it accepts is what
//! every later stage may rely on: a valid bucket, no key in the proxy's namespace, an upstream
//! query free of authentication parameters and duplicates, and a copy source that reads back
//! the same from the form sent upstream.
#![no_main]

use libfuzzer_sys::fuzz_target;
use s3seal::s3::route::{self, validate_bucket, Addressing, RESERVED_PREFIX};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // method \n request-target \n host \n copy-source (each optional)
    let mut lines = text.splitn(4, '\n');
    let (Some(method), Some(target)) = (lines.next(), lines.next()) else {
        return;
    };
    let (Ok(method), Ok(uri)) = (
        http::Method::from_bytes(method.as_bytes()),
        target.parse::<http::Uri>(),
    ) else {
        return;
    };
    let mut headers = http::HeaderMap::new();
    if let Some(Ok(host)) = lines.next().map(http::HeaderValue::from_str) {
        headers.insert(http::header::HOST, host);
    }
    if let Some(Ok(src)) = lines.next().map(http::HeaderValue::from_str) {
        headers.insert("x-amz-copy-source", src);
    }
    for legacy in [false, true] {
        let addressing = Addressing {
            domain: Some("s3.example"),
            legacy_bucket_names: legacy,
        };
        let Ok(routed) = route::route(&method, &uri, &headers, addressing) else {
            continue;
        };
        if let Some(b) = routed.target.bucket() {
            assert!(validate_bucket(b, legacy).is_ok(), "{b}");
        }
        if let Some(k) = routed.target.key() {
            assert!(!k.starts_with(RESERVED_PREFIX), "{k}");
        }
        let mut names: Vec<&str> = routed.query.iter().map(|(k, _)| k.as_str()).collect();
        assert!(names
            .iter()
            .all(|n| *n != "x-id" && !n.to_ascii_lowercase().starts_with("x-amz-")));
        names.sort_unstable();
        assert!(names.windows(2).all(|w| w[0] != w[1]));
        if let Some(src) = &routed.copy_source {
            assert!(validate_bucket(&src.bucket, legacy).is_ok());
            assert!(!src.key.starts_with(RESERVED_PREFIX));
            let mut again = headers.clone();
            again.insert(
                "x-amz-copy-source",
                http::HeaderValue::from_str(&src.header_value()).unwrap(),
            );
            let reread = route::route(&method, &uri, &again, addressing).unwrap();
            assert_eq!(reread.copy_source.as_ref(), Some(src));
        }
    }
});
