use super::*;
use http::StatusCode;

fn rule(origins: &[&str], methods: &[&str], headers: &[&str]) -> RawRule {
    let v = |xs: &[&str]| xs.iter().map(|s| (*s).to_owned()).collect();
    RawRule {
        allowed_origins: v(origins),
        allowed_methods: v(methods),
        allowed_headers: v(headers),
        ..RawRule::default()
    }
}

/// The three rules of S3's documentation example ("Example 1" in the CORS user guide).
fn s3_doc_rules() -> Vec<Rule> {
    let mut third = rule(&["*"], &["GET"], &[]);
    third.max_age_seconds = Some(3000);
    third.expose_headers = vec!["x-amz-server-side-encryption".into(), "ETag".into()];
    [
        rule(
            &["http://www.example1.com"],
            &["PUT", "POST", "DELETE"],
            &["*"],
        ),
        rule(
            &["http://www.example2.com"],
            &["PUT", "POST", "DELETE"],
            &["*"],
        ),
        third,
    ]
    .into_iter()
    .map(|r| Rule::try_from(r).unwrap())
    .collect()
}

fn hm(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}

fn preflight(
    rules: Option<&[Rule]>,
    origin: &str,
    method: &str,
    req_headers: Option<&str>,
) -> Result<HeaderMap, CorsError> {
    let mut pairs = vec![
        ("origin", origin),
        ("access-control-request-method", method),
    ];
    if let Some(h) = req_headers {
        pairs.push(("access-control-request-headers", h));
    }
    let h = hm(&pairs);
    let resp = Scope::new(rules, &Method::OPTIONS, &h).preflight(&h)?;
    assert_eq!(resp.status(), StatusCode::OK);
    Ok(resp.headers().clone())
}

fn get<'h>(h: &'h HeaderMap, name: &str) -> Option<&'h str> {
    h.get(name).map(|v| v.to_str().unwrap())
}

#[test]
fn wildcards_have_at_most_one_star_and_ignore_case() {
    let w = Wildcard::new("https://*.Example.com").unwrap();
    assert!(w.matches("https://app.example.com"));
    assert!(w.matches("https://a.b.example.com"));
    assert!(w.matches("HTTPS://APP.EXAMPLE.COM"));
    assert!(!w.matches("https://example.com"));
    assert!(!w.matches("https://evil-example.com"));
    assert!(!w.matches("http://app.example.com"));
    assert!(!w.matches("https://app.example.com.evil"));
    let exact = Wildcard::new("http://www.example1.com").unwrap();
    assert!(exact.matches("http://www.example1.com"));
    assert!(!exact.matches("http://www.example1.com:8080"));
    let any = Wildcard::new("*").unwrap();
    assert!(any.is_any() && any.matches("null") && any.matches(""));
    // A star must not let the prefix and suffix overlap.
    let w = Wildcard::new("ab*ba").unwrap();
    assert!(!w.matches("aba"));
    assert!(w.matches("abba"));
    assert!(Wildcard::new("https://*.*.com").is_err());
}

/// S3 doc example: example1 may PUT with any header; a GET from anywhere is allowed by the
/// third rule, answered with `*`.
#[test]
fn s3_documentation_example() {
    let rules = s3_doc_rules();
    let r = Some(rules.as_slice());

    let h = preflight(
        r,
        "http://www.example1.com",
        "PUT",
        Some("x-amz-meta-a, Content-Type"),
    )
    .unwrap();
    assert_eq!(
        get(&h, "access-control-allow-origin"),
        Some("http://www.example1.com")
    );
    assert_eq!(
        get(&h, "access-control-allow-methods"),
        Some("PUT, POST, DELETE")
    );
    assert_eq!(
        get(&h, "access-control-allow-headers"),
        Some("x-amz-meta-a, content-type")
    );
    assert_eq!(get(&h, "access-control-allow-credentials"), None);
    assert_eq!(get(&h, "access-control-max-age"), None);
    assert_eq!(
        get(&h, "vary"),
        Some("Origin, Access-Control-Request-Method, Access-Control-Request-Headers")
    );

    // GET is only in the third rule: origin `*`, no credentials, so `*`; max-age from it.
    let h = preflight(r, "http://www.example1.com", "GET", None).unwrap();
    assert_eq!(get(&h, "access-control-allow-origin"), Some("*"));
    assert_eq!(get(&h, "access-control-allow-methods"), Some("GET"));
    assert_eq!(get(&h, "access-control-allow-headers"), None);
    assert_eq!(get(&h, "access-control-max-age"), Some("3000"));

    // The third rule has no AllowedHeader: a GET that wants a header is refused.
    assert_eq!(
        preflight(r, "http://other.test", "GET", Some("x-amz-date")),
        Err(CorsError::NotAllowed)
    );
    // PUT from an origin no rule names.
    assert_eq!(
        preflight(r, "http://www.example3.com", "PUT", None),
        Err(CorsError::NotAllowed)
    );
    // HEAD is not listed anywhere.
    assert_eq!(
        preflight(r, "http://www.example1.com", "HEAD", None),
        Err(CorsError::NotAllowed)
    );
}

#[test]
fn first_matching_rule_wins() {
    let mut narrow = rule(&["https://app.example.com"], &["GET"], &[]);
    narrow.max_age_seconds = Some(10);
    let mut wide = rule(&["https://*.example.com"], &["GET", "PUT"], &["x-amz-*"]);
    wide.max_age_seconds = Some(20);
    let rules: Vec<Rule> = [narrow, wide]
        .into_iter()
        .map(|r| Rule::try_from(r).unwrap())
        .collect();
    let r = Some(rules.as_slice());
    let h = preflight(r, "https://app.example.com", "GET", None).unwrap();
    assert_eq!(get(&h, "access-control-max-age"), Some("10"));
    // The first rule matches origin and method but not the header: the second one answers.
    let h = preflight(r, "https://app.example.com", "GET", Some("X-Amz-Date")).unwrap();
    assert_eq!(get(&h, "access-control-max-age"), Some("20"));
    assert_eq!(get(&h, "access-control-allow-headers"), Some("x-amz-date"));
    assert_eq!(
        preflight(r, "https://app.example.com", "PUT", Some("authorization")),
        Err(CorsError::NotAllowed)
    );
}

#[test]
fn credentials_never_come_with_a_star() {
    let mut raw = rule(&["*"], &["GET"], &[]);
    raw.allow_credentials = true;
    let rules = vec![Rule::try_from(raw).unwrap()];
    let h = preflight(Some(&rules), "https://a.test", "GET", None).unwrap();
    assert_eq!(
        get(&h, "access-control-allow-origin"),
        Some("https://a.test")
    );
    assert_eq!(get(&h, "access-control-allow-credentials"), Some("true"));
}

/// S3's answers when the preflight itself is incomplete, and their order: the headers are
/// checked before whether the bucket has CORS at all.
#[test]
fn malformed_preflights_get_s3_errors() {
    let rules = s3_doc_rules();
    for r in [None, Some(rules.as_slice())] {
        let h = hm(&[("access-control-request-method", "GET")]);
        let scope = Scope::new(r, &Method::OPTIONS, &h);
        assert_eq!(scope.preflight(&h).unwrap_err(), CorsError::MissingOrigin);
        let h = hm(&[("origin", "http://www.example1.com")]);
        let err = Scope::new(r, &Method::OPTIONS, &h)
            .preflight(&h)
            .unwrap_err();
        assert_eq!(err, CorsError::InvalidMethod(None));
        assert_eq!(
            err.to_string(),
            "Invalid Access-Control-Request-Method: null"
        );
        assert_eq!(err.code(), S3Code::BadRequest);
        assert_eq!(err.code().status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            preflight(r, "http://www.example1.com", "PATCH", None),
            Err(CorsError::InvalidMethod(Some("PATCH".into())))
        );
        // Methods are case-sensitive, as in S3 and the Fetch standard.
        assert!(matches!(
            preflight(r, "http://www.example1.com", "put", None),
            Err(CorsError::InvalidMethod(_))
        ));
    }
    assert_eq!(
        preflight(None, "http://www.example1.com", "GET", None),
        Err(CorsError::NotEnabled)
    );
    assert_eq!(CorsError::NotAllowed.code().status(), StatusCode::FORBIDDEN);
    assert!(CorsError::NotAllowed
        .to_string()
        .starts_with("CORSResponse: This CORS request is not allowed."));
    // A requested "header" that is not a token cannot be echoed: refused.
    assert_eq!(
        preflight(Some(&rules), "http://www.example1.com", "PUT", Some("a b")),
        Err(CorsError::NotAllowed)
    );
}

#[test]
fn actual_responses_are_decorated_from_the_rules_only() {
    let rules = s3_doc_rules();
    let upstream = || {
        hm(&[
            ("access-control-allow-origin", "*"),
            ("access-control-allow-methods", "GET, PUT"),
            ("etag", "\"abc\""),
            ("vary", "Accept-Encoding"),
        ])
    };

    // GET from anywhere: the third rule, `*`, its expose list.
    let mut h = upstream();
    let req = hm(&[("origin", "https://a.test")]);
    Scope::new(Some(&rules), &Method::GET, &req).decorate(&mut h);
    assert_eq!(get(&h, "access-control-allow-origin"), Some("*"));
    assert_eq!(
        get(&h, "access-control-expose-headers"),
        Some("x-amz-server-side-encryption, etag")
    );
    assert_eq!(get(&h, "access-control-allow-methods"), None);
    let vary: Vec<_> = h.get_all("vary").iter().collect();
    assert_eq!(vary, ["Accept-Encoding", "Origin"]);

    // PUT from example1: echoed origin, no expose list in that rule.
    let mut h = upstream();
    let req = hm(&[("origin", "http://www.example1.com")]);
    Scope::new(Some(&rules), &Method::PUT, &req).decorate(&mut h);
    assert_eq!(
        get(&h, "access-control-allow-origin"),
        Some("http://www.example1.com")
    );
    assert_eq!(get(&h, "access-control-expose-headers"), None);

    // PUT from an origin no rule allows: the upstream's `*` is gone, Vary stays.
    let mut h = upstream();
    let req = hm(&[("origin", "https://evil.test")]);
    Scope::new(Some(&rules), &Method::PUT, &req).decorate(&mut h);
    assert!(!h.keys().any(|k| k.as_str().starts_with("access-control-")));
    assert_eq!(h.get_all("vary").iter().count(), 2);

    // No CORS for the bucket: nothing added, the upstream's CORS headers removed.
    let mut h = upstream();
    Scope::new(None, &Method::GET, &req).decorate(&mut h);
    assert!(!h.keys().any(|k| k.as_str().starts_with("access-control-")));
    assert_eq!(get(&h, "etag"), Some("\"abc\""));
    assert_eq!(h.get_all("vary").iter().count(), 1);

    // No Origin (not a CORS request): nothing added.
    let mut h = upstream();
    Scope::new(Some(&rules), &Method::GET, &HeaderMap::new()).decorate(&mut h);
    assert!(!h.keys().any(|k| k.as_str().starts_with("access-control-")));
}

#[test]
fn preflight_answers_are_not_redecorated() {
    let rules = s3_doc_rules();
    let req = hm(&[
        ("origin", "http://www.example1.com"),
        ("access-control-request-method", "PUT"),
    ]);
    let scope = Scope::new(Some(&rules), &Method::OPTIONS, &req);
    let mut resp = scope.preflight(&req).unwrap();
    scope.decorate(resp.headers_mut());
    assert_eq!(
        get(resp.headers(), "access-control-allow-methods"),
        Some("PUT, POST, DELETE")
    );
}

#[test]
fn rules_are_validated_naming_the_field() {
    let err = |r: RawRule| Rule::try_from(r).unwrap_err().field;
    assert_eq!(err(rule(&[], &["GET"], &[])), "allowed_origins");
    assert_eq!(
        err(rule(&["https://*.*.x"], &["GET"], &[])),
        "allowed_origins[0]"
    );
    assert_eq!(
        err(rule(&["*", "a b"], &["GET"], &[])),
        "allowed_origins[1]"
    );
    assert_eq!(err(rule(&["*"], &[], &[])), "allowed_methods");
    assert_eq!(
        err(rule(&["*"], &["GET", "get"], &[])),
        "allowed_methods[1]"
    );
    assert_eq!(err(rule(&["*"], &["PATCH"], &[])), "allowed_methods[0]");
    assert_eq!(
        err(rule(&["*"], &["GET"], &["x-*-*"])),
        "allowed_headers[0]"
    );
    assert_eq!(err(rule(&["*"], &["GET"], &["a:b"])), "allowed_headers[0]");
    let mut r = rule(&["*"], &["GET"], &[]);
    r.expose_headers = vec!["ETag".into(), "*".into()];
    assert_eq!(err(r), "expose_headers[1]");
}

#[test]
fn bucket_patterns_most_specific_wins_and_empty_exempts() {
    let any_get = || vec![Rule::try_from(rule(&["*"], &["GET"], &[])).unwrap()];
    // Written broadest first: the order in the config does not matter.
    let b = BucketRules::new([
        ("*".to_owned(), any_get()),
        ("private-*".to_owned(), Vec::new()),
    ])
    .unwrap();
    assert!(b.for_bucket("private-x").is_none());
    assert_eq!(b.for_bucket("public").map(<[Rule]>::len), Some(1));
    assert!(BucketRules::none().for_bucket("public").is_none());
}

#[test]
fn bucket_cors_api_is_answered_from_the_config() {
    let rules = s3_doc_rules();
    let get_cors = Operation::BucketConfig(BucketResource::Cors, Verb::Get);
    let put_cors = Operation::BucketConfig(BucketResource::Cors, Verb::Put);
    let scope = Scope::new(Some(&rules), &Method::GET, &HeaderMap::new());
    let tagging = Operation::BucketConfig(BucketResource::Tagging, Verb::Get);
    assert!(scope.bucket_api(tagging).is_none());
    assert!(scope.bucket_api(Operation::GetObject).is_none());
    let resp = scope.bucket_api(get_cors).unwrap().unwrap();
    assert_eq!(get(resp.headers(), "content-type"), Some("application/xml"));

    let xml = configuration_xml(&rules);
    assert!(xml.contains(
        "<CORSRule><AllowedHeader>*</AllowedHeader><AllowedMethod>PUT</AllowedMethod><AllowedMethod>POST</AllowedMethod><AllowedMethod>DELETE</AllowedMethod><AllowedOrigin>http://www.example1.com</AllowedOrigin></CORSRule>"
    ));
    assert!(xml.contains("<ExposeHeader>etag</ExposeHeader><MaxAgeSeconds>3000</MaxAgeSeconds>"));

    let none = Scope::new(None, &Method::GET, &HeaderMap::new());
    assert_eq!(
        none.bucket_api(get_cors).unwrap().unwrap_err(),
        CorsError::NoConfiguration
    );
    let put = Scope::new(Some(&rules), &Method::PUT, &HeaderMap::new());
    assert_eq!(
        put.bucket_api(put_cors).unwrap().unwrap_err(),
        CorsError::ReadOnly("PutBucketCors")
    );
}

// === Rules stored on the bucket ===

const S3_DOC_XML: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<CORSConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
 <CORSRule>
   <ID>site</ID>
   <AllowedOrigin>http://www.example1.com</AllowedOrigin>
   <AllowedMethod>PUT</AllowedMethod>
   <AllowedMethod>POST</AllowedMethod>
   <AllowedHeader>*</AllowedHeader>
   <ExposeHeader>ETag</ExposeHeader>
   <MaxAgeSeconds>3000</MaxAgeSeconds>
 </CORSRule>
 <CORSRule>
   <AllowedOrigin>*</AllowedOrigin>
   <AllowedMethod>GET</AllowedMethod>
 </CORSRule>
</CORSConfiguration>"#;

#[test]
fn configuration_documents_are_read_as_config_rules_are() {
    let rules = parse_configuration(S3_DOC_XML.as_bytes()).unwrap();
    assert_eq!(rules.len(), 2);
    assert_eq!(rules[0].id.as_deref(), Some("site"));
    assert_eq!(rules[0].methods, [Method::PUT, Method::POST]);
    assert_eq!(rules[0].max_age, Some(3000));
    assert!(rules[1].origin_match("https://any.example").is_some());
    // What GetBucketCors renders reads back the same.
    let again = parse_configuration(configuration_xml(&rules).as_bytes()).unwrap();
    assert_eq!(configuration_xml(&again), configuration_xml(&rules));
    // Entities and character references in text.
    let doc = S3_DOC_XML.replace("www.example1.com", "a&amp;b&#46;example");
    let rules = parse_configuration(doc.as_bytes()).unwrap();
    assert_eq!(rules[0].origins[0].source, "http://a&b.example");
}

#[test]
fn configuration_documents_are_refused_unless_exactly_s3s_schema() {
    let rule = "<CORSRule><AllowedOrigin>*</AllowedOrigin><AllowedMethod>GET</AllowedMethod>";
    let doc =
        |inner: &str| format!("<CORSConfiguration>{rule}{inner}</CORSRule></CORSConfiguration>");
    let refused = [
        String::new(),
        "<CORSConfiguration/>".into(),
        "<CORSConfiguration></CORSConfiguration>".into(),
        "<Other><CORSRule/></Other>".into(),
        doc("<AllowedMethod>PATCH</AllowedMethod>"),
        doc("<Unknown>x</Unknown>"),
        doc("<ID>a</ID><ID>b</ID>"),
        doc("<MaxAgeSeconds>-1</MaxAgeSeconds>"),
        doc("<AllowedHeader><b>x</b></AllowedHeader>"),
        doc("<ExposeHeader>x-*</ExposeHeader>"),
        doc("<AllowedHeader><![CDATA[x]]></AllowedHeader>"),
        format!("<CORSConfiguration>{rule}</CORSRule>stray</CORSConfiguration>"),
        format!("<!DOCTYPE x [<!ENTITY e \"GET\">]><CORSConfiguration>{rule}</CORSRule></CORSConfiguration>"),
        format!("<CORSConfiguration>{rule}<AllowedMethod>&e;</AllowedMethod></CORSRule></CORSConfiguration>"),
        format!("<CORSConfiguration>{}</CORSConfiguration>", format!("{rule}</CORSRule>").repeat(MAX_RULES + 1)),
        format!("<CORSConfiguration>{rule}<ID>{}</ID></CORSRule></CORSConfiguration>", "x".repeat(MAX_CONFIGURATION_BYTES)),
    ];
    for d in refused {
        let err = parse_configuration(d.as_bytes()).expect_err(&d[..d.len().min(200)]);
        assert!(
            matches!(
                err.code(),
                S3Code::MalformedXML | S3Code::InvalidRequest | S3Code::MaxMessageLengthExceeded
            ),
            "{err:?}"
        );
    }
    assert!(parse_configuration(doc("").as_bytes()).is_ok());
}

#[test]
fn rules_from_the_bucket_apply_and_fail_closed() {
    let rules = parse_configuration(S3_DOC_XML.as_bytes()).unwrap();
    let req = hm(&[
        ("origin", "http://www.example1.com"),
        ("access-control-request-method", "PUT"),
    ]);
    let scope = Scope::applying(Applied::Bucket(Some(&rules)), &Method::OPTIONS, &req);
    assert!(scope.preflight(&req).is_ok());
    let scope = Scope::applying(Applied::Bucket(None), &Method::OPTIONS, &req);
    assert_eq!(scope.preflight(&req).unwrap_err(), CorsError::NotEnabled);
    let scope = Scope::applying(Applied::Unavailable, &Method::OPTIONS, &req);
    assert_eq!(scope.preflight(&req).unwrap_err(), CorsError::Unavailable);
    assert_eq!(CorsError::Unavailable.code(), S3Code::AccessForbidden);
    // An unreadable source adds no CORS headers and strips the upstream's.
    let mut h = hm(&[("access-control-allow-origin", "*")]);
    Scope::applying(Applied::Unavailable, &Method::GET, &req).decorate(&mut h);
    assert!(h.is_empty());
    // The S3 API on such buckets is the pipeline's, not the config's.
    let put = Operation::BucketConfig(BucketResource::Cors, Verb::Put);
    let scope = Scope::applying(Applied::Bucket(Some(&rules)), &Method::PUT, &req);
    assert!(scope.bucket_api(put).is_none());
    let message = CorsError::ReadOnly("DeleteBucketCors").to_string();
    assert!(
        message.starts_with("DeleteBucketCors is refused"),
        "{message}"
    );
    assert!(message.contains("cors_from_bucket"), "{message}");
}
