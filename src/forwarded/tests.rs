use http::HeaderValue;

use super::*;

fn h(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
    let mut m = HeaderMap::new();
    for (k, v) in pairs {
        m.append(*k, HeaderValue::from_static(v));
    }
    m
}

#[test]
fn https_is_accepted_from_either_header() {
    for headers in [
        h(&[("x-forwarded-proto", "https")]),
        h(&[("x-forwarded-proto", "HTTPS")]),
        h(&[("forwarded", "for=192.0.2.60;proto=https;by=203.0.113.43")]),
        h(&[("forwarded", r#"for="[2001:db8::1]";Proto="https""#)]),
        // Each proxy appends: the nearest one's value is the last.
        h(&[("forwarded", "proto=http, for=10.0.0.1;proto=https")]),
        h(&[("x-forwarded-proto", "http, https")]),
        h(&[
            ("x-forwarded-proto", "http"),
            ("x-forwarded-proto", "https"),
        ]),
        h(&[("forwarded", "proto=https"), ("x-forwarded-proto", "https")]),
    ] {
        assert_eq!(check_https(&headers), Ok(()), "{headers:?}");
    }
}

#[test]
fn anything_else_is_refused() {
    for headers in [
        h(&[]),
        h(&[("x-forwarded-proto", "http")]),
        h(&[("x-forwarded-proto", "https, http")]),
        h(&[("forwarded", "for=192.0.2.60")]),
        h(&[("forwarded", "proto=https, for=10.0.0.1;proto=http")]),
        // Both present: both must agree.
        h(&[("forwarded", "proto=https"), ("x-forwarded-proto", "http")]),
        h(&[("forwarded", "for=1.2.3.4"), ("x-forwarded-proto", "https")]),
        h(&[("x-forwarded-proto", "httpsx")]),
    ] {
        assert_eq!(
            check_https(&headers),
            Err(ForwardedError::NotHttps),
            "{headers:?}"
        );
    }
    assert_eq!(ForwardedError::NotHttps.code(), S3Code::TlsRequired);
}

/// Header lines, and the client address they report.
type Case = (
    &'static [(&'static str, &'static str)],
    Option<&'static str>,
);

#[test]
fn the_client_is_what_the_nearest_proxy_reports() {
    let cases: [Case; 8] = [
        (&[], None),
        (&[("x-forwarded-for", "203.0.113.9")], Some("203.0.113.9")),
        (
            &[("x-forwarded-for", "198.51.100.1, 203.0.113.9")],
            Some("203.0.113.9"),
        ),
        (
            &[("forwarded", r#"for="[2001:db8:cafe::17]:4711";proto=https"#)],
            Some("[2001:db8:cafe::17]:4711"),
        ),
        // `Forwarded` wins over `X-Forwarded-For`.
        (
            &[
                ("forwarded", "for=192.0.2.43"),
                ("x-forwarded-for", "203.0.113.9"),
            ],
            Some("192.0.2.43"),
        ),
        (&[("forwarded", "for=_hidden")], Some("_hidden")),
        (&[("forwarded", "proto=https")], None),
        // Not an address: not logged.
        (&[("x-forwarded-for", "<script>")], None),
    ];
    for (headers, want) in cases {
        assert_eq!(client(&h(headers)).as_deref(), want, "{headers:?}");
    }
}
