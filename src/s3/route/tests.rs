use super::*;

const ADDRESSING: Addressing<'static> = Addressing {
    domain: Some("s3.localhost"),
    legacy_bucket_names: false,
};

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            http::HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}

fn route_with(
    method: &str,
    uri: &str,
    h: &[(&str, &str)],
    addressing: Addressing<'_>,
) -> Result<Routed, RouteError> {
    let uri: Uri = uri.parse().unwrap();
    route(&method.parse().unwrap(), &uri, &headers(h), addressing)
}

fn r(method: &str, uri: &str, host: &str) -> Result<Routed, RouteError> {
    route_with(method, uri, &[("host", host)], ADDRESSING)
}

fn copy(uri: &str, source: &str) -> Result<Routed, RouteError> {
    route_with(
        "PUT",
        uri,
        &[("host", "h"), ("x-amz-copy-source", source)],
        ADDRESSING,
    )
}

fn obj(b: &str, k: &str) -> Target {
    Target::Object {
        bucket: b.into(),
        key: k.into(),
    }
}

#[test]
fn path_style_keys_are_percent_decoded() {
    let x = r("GET", "/bkt/a%20b/c%2Bd+e/%E2%9C%93/%2F", "127.0.0.1:8443").unwrap();
    // `+` in a path is a literal plus; only the query uses form encoding.
    assert_eq!(x.target, obj("bkt", "a b/c+d+e/\u{2713}//"));
    assert_eq!(x.op, Operation::GetObject);
    assert!(!x.virtual_host);
}

#[test]
fn keys_keep_dot_segments_and_double_slashes() {
    let x = r("PUT", "/bkt/../x//y/./z", "localhost").unwrap();
    assert_eq!(x.target, obj("bkt", "../x//y/./z"));
    assert_eq!(x.op, Operation::PutObject);
    assert_eq!(x.body, BodyKind::Data);
}

#[test]
fn virtual_hosted_style() {
    let x = r("GET", "/photos/2026/a.jpg", "my-bucket.s3.localhost:8443").unwrap();
    assert_eq!(x.target, obj("my-bucket", "photos/2026/a.jpg"));
    assert!(x.virtual_host);
    let x = r("GET", "/?list-type=2&prefix=a", "my-bucket.s3.localhost").unwrap();
    assert_eq!(x.target, Target::Bucket("my-bucket".into()));
    assert_eq!(x.op, Operation::ListObjectsV2);
    // The bare domain is path style.
    let x = r("GET", "/bkt/k", "s3.localhost").unwrap();
    assert_eq!(x.target, obj("bkt", "k"));
    assert!(!x.virtual_host);
}

#[test]
fn operations_from_method_and_query() {
    let cases = [
        ("GET", "/", Operation::ListBuckets),
        ("PUT", "/bkt", Operation::CreateBucket),
        ("DELETE", "/bkt", Operation::DeleteBucket),
        ("HEAD", "/bkt", Operation::HeadBucket),
        ("GET", "/bkt", Operation::ListObjects),
        (
            "GET",
            "/bkt?list-type=2&continuation-token=x",
            Operation::ListObjectsV2,
        ),
        ("GET", "/bkt?versions", Operation::ListObjectVersions),
        ("GET", "/bkt?uploads", Operation::ListMultipartUploads),
        ("POST", "/bkt?delete", Operation::DeleteObjects),
        ("POST", "/bkt", Operation::PostObject),
        (
            "GET",
            "/bkt?tagging",
            Operation::BucketConfig(BucketResource::Tagging, Verb::Get),
        ),
        (
            "PUT",
            "/bkt?policy",
            Operation::BucketConfig(BucketResource::Policy, Verb::Put),
        ),
        ("GET", "/bkt?location", Operation::GetBucketLocation),
        (
            "GET",
            "/bkt/k?versionId=3&x-id=GetObject",
            Operation::GetObject,
        ),
        ("GET", "/bkt/k?partNumber=2", Operation::GetObject),
        (
            "GET",
            "/bkt/k?response-content-type=text%2Fplain",
            Operation::GetObject,
        ),
        ("HEAD", "/bkt/k", Operation::HeadObject),
        ("DELETE", "/bkt/k", Operation::DeleteObject),
        ("POST", "/bkt/k?uploads", Operation::CreateMultipartUpload),
        (
            "PUT",
            "/bkt/k?partNumber=1&uploadId=u",
            Operation::UploadPart,
        ),
        (
            "POST",
            "/bkt/k?uploadId=u",
            Operation::CompleteMultipartUpload,
        ),
        (
            "DELETE",
            "/bkt/k?uploadId=u",
            Operation::AbortMultipartUpload,
        ),
        ("GET", "/bkt/k?uploadId=u", Operation::ListParts),
        (
            "PUT",
            "/bkt/k?tagging",
            Operation::ObjectConfig(ObjectResource::Tagging, Verb::Put),
        ),
        ("GET", "/bkt/k?attributes", Operation::GetObjectAttributes),
        (
            "POST",
            "/bkt/k?select&select-type=2",
            Operation::SelectObjectContent,
        ),
        (
            "POST",
            "/bkt/k?select-type=2&select",
            Operation::SelectObjectContent,
        ),
        ("POST", "/bkt/k?restore", Operation::RestoreObject),
        (
            "POST",
            "/bkt/k?restore&versionId=1",
            Operation::RestoreObject,
        ),
    ];
    for (m, u, op) in cases {
        assert_eq!(r(m, u, "localhost").unwrap().op, op, "{m} {u}");
    }
}

#[test]
fn copies_are_told_apart_by_the_copy_source_header() {
    let x = copy("/bkt/k", "src/key").unwrap();
    assert_eq!(x.op, Operation::CopyObject);
    let x = copy("/bkt/k?partNumber=1&uploadId=u", "src/key").unwrap();
    assert_eq!(x.op, Operation::UploadPartCopy);
}

#[test]
fn body_kinds() {
    assert_eq!(r("PUT", "/bkt?policy", "h").unwrap().body, BodyKind::Json);
    assert_eq!(r("PUT", "/bkt?cors", "h").unwrap().body, BodyKind::Xml);
    assert_eq!(r("POST", "/bkt?delete", "h").unwrap().body, BodyKind::Xml);
    assert_eq!(
        r("PUT", "/bkt/k?partNumber=1&uploadId=u", "h")
            .unwrap()
            .body,
        BodyKind::Data
    );
}

#[test]
fn bad_input_is_refused() {
    assert_eq!(r("GET", "/bkt/%FF", "h"), Err(RouteError::BadPath));
    assert_eq!(r("GET", "/../k", "h"), Err(RouteError::InvalidBucketName));
    assert_eq!(
        r("GET", "/bkt%2F%2E%2E", "h").unwrap().target,
        obj("bkt", "..")
    );
    assert_eq!(
        r("GET", "/bk%5Cc/k", "h"),
        Err(RouteError::InvalidBucketName)
    );
    let long = format!("/bkt/{}", "k".repeat(1025));
    assert_eq!(r("GET", &long, "h"), Err(RouteError::KeyTooLong(1025)));
    assert!(r("GET", &format!("/bkt/{}", "k".repeat(1024)), "h").is_ok());
    assert_eq!(
        route_with("GET", "/bkt", &[], ADDRESSING),
        Err(RouteError::MissingHost)
    );
}

#[test]
fn encode_path_matches_s3_canonical_form() {
    assert_eq!(
        encode_path("/bkt/a b+c~d_e-f.g/\u{2713}*"),
        "/bkt/a%20b%2Bc~d_e-f.g/%E2%9C%93%2A"
    );
}

#[test]
fn aws_host_names_route_like_aws() {
    let vhost = [
        ("bk1.s3.amazonaws.com", "bk1"),
        ("bk1.s3.us-east-1.amazonaws.com", "bk1"),
        ("bk1.s3.eu-west-1.amazonaws.com:443", "bk1"),
        ("bk1.s3.dualstack.ap-southeast-2.amazonaws.com", "bk1"),
        ("bk1.s3-fips.us-gov-west-1.amazonaws.com", "bk1"),
        ("bk1.s3-fips.dualstack.us-east-2.amazonaws.com", "bk1"),
        ("bk1.s3-us-west-2.amazonaws.com", "bk1"),
        ("bk1.s3-external-1.amazonaws.com", "bk1"),
        ("bk1.s3.cn-north-1.amazonaws.com.cn", "bk1"),
        ("BK1.S3.US-EAST-1.AMAZONAWS.COM", "BK1"),
        // Dotted bucket names, and buckets whose labels look like the service's.
        (
            "my.dotted.bucket.s3.us-east-1.amazonaws.com",
            "my.dotted.bucket",
        ),
        ("s3x.s3.amazonaws.com", "s3x"),
        ("logs.s3.s3.us-east-1.amazonaws.com", "logs.s3"),
    ];
    for (host, bucket) in vhost {
        assert_eq!(aws_virtual_host_bucket(host), Some(bucket), "{host}");
        let x = route_with("GET", "/k/x", &[("host", host)], Addressing::default()).unwrap();
        assert!(x.virtual_host, "{host}");
        assert_eq!(x.target.key(), Some("k/x"), "{host}");
    }
    let path_style = [
        "s3.amazonaws.com",
        "s3.us-east-1.amazonaws.com",
        "s3.dualstack.us-east-1.amazonaws.com",
        "s3-us-west-2.amazonaws.com",
        "s3-external-1.amazonaws.com",
        "s3-fips.us-gov-west-1.amazonaws.com",
        "s3.cn-north-1.amazonaws.com.cn",
        // Not S3 API endpoints, or not AWS at all.
        "bk1.s3-accesspoint.us-east-1.amazonaws.com",
        "bk1.s3-website-us-east-1.amazonaws.com",
        "bk1.s3-website.us-east-1.amazonaws.com",
        "bk1.s3-object-lambda.us-east-1.amazonaws.com",
        "bk1.s3.dualstack.amazonaws.com",
        "bk1.ec2.amazonaws.com",
        "bk1.s3.amazonaws.com.evil.example",
        "bk1.s3.example.com",
        "amazonaws.com",
        "[::1]:443",
    ];
    for host in path_style {
        assert_eq!(aws_virtual_host_bucket(host), None, "{host}");
        let x = route_with("GET", "/bk2/k", &[("host", host)], Addressing::default()).unwrap();
        assert_eq!(x.target, obj("bk2", "k"), "{host}");
    }
    // The configured domain is read first.
    let x = r("GET", "/k", "bk3.s3.localhost").unwrap();
    assert_eq!(x.target, obj("bk3", "k"));
}

// === Issue 9: what is not recognised is refused ===

#[test]
fn unknown_query_parameters_are_refused() {
    for (m, u, p) in [
        ("PUT", "/enc/doc.xml?foo=1", "foo"),
        ("GET", "/enc/k?foo", "foo"),
        ("PUT", "/enc/k?Tagging", "Tagging"),
        ("GET", "/enc?versions&uploads", "uploads"),
        ("GET", "/enc?policy&acl", "acl"),
        ("GET", "/?policy", "policy"),
        ("POST", "/enc?uploads", "uploads"),
        ("DELETE", "/enc/k?partNumber=1", "partNumber"),
    ] {
        assert_eq!(
            r(m, u, "h"),
            Err(RouteError::UnknownParameter(p.into())),
            "{m} {u}"
        );
    }
    assert_eq!(
        r("GET", "/enc?list-type=3", "h"),
        Err(RouteError::UnknownParameter("list-type".into()))
    );
    assert_eq!(
        r("PUT", "/enc/k?uploadId=u", "h"),
        Err(RouteError::MissingParameter("partNumber"))
    );
    assert_eq!(r("PATCH", "/enc/k", "h"), Err(RouteError::MethodNotAllowed));
    assert_eq!(
        r("POST", "/enc?policyStatus", "h"),
        Err(RouteError::MethodNotAllowed)
    );
    assert_eq!(
        r("PUT", "/enc/k?partNumber=1&partNumber=2&uploadId=u", "h"),
        Err(RouteError::DuplicateParameter("partNumber".into()))
    );
}

#[test]
fn parameter_names_are_read_decoded() {
    // `c%6Frs` is `cors`: the proxy's own sub-resource, whatever its spelling.
    assert_eq!(
        r("PUT", "/bkt?c%6Frs", "h").unwrap().op,
        Operation::BucketConfig(BucketResource::Cors, Verb::Put)
    );
}

#[test]
fn the_upstream_query_is_the_recognised_one() {
    let x = r(
        "GET",
        "/bkt/k?versionId=a%2Fb&x-id=GetObject&X-Amz-Signature=abc&X-Amz-Credential=x&response-content-type=a+b",
        "h",
    )
    .unwrap();
    let q: Vec<(&str, &str)> = x
        .query
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(q, [("versionId", "a/b"), ("response-content-type", "a b")]);
}

#[test]
fn part_numbers_and_limits_are_checked() {
    for n in ["0", "-1", "10001", "x", ""] {
        assert_eq!(
            r("PUT", &format!("/bkt/k?partNumber={n}&uploadId=u"), "h"),
            Err(RouteError::InvalidPartNumber),
            "{n}"
        );
        assert_eq!(
            r("GET", &format!("/bkt/k?partNumber={n}"), "h"),
            Err(RouteError::InvalidPartNumber),
            "{n}"
        );
    }
    assert!(r("PUT", "/bkt/k?partNumber=10000&uploadId=u", "h").is_ok());
    assert_eq!(
        r("GET", "/bkt?max-keys=-1", "h"),
        Err(RouteError::InvalidInteger("max-keys"))
    );
}

#[test]
fn bucket_names_follow_s3_rules() {
    for bad in [
        "VAULT",
        "Enc",
        "ab",
        "a_b",
        "-abc",
        "abc-",
        "a..b",
        "192.168.1.1",
        "xn--abc",
        "abc-s3alias",
        "abc--ol-s3",
        &"a".repeat(64),
    ] {
        assert_eq!(
            r("PUT", &format!("/{bad}/doc"), "h"),
            Err(RouteError::InvalidBucketName),
            "{bad}"
        );
    }
    for good in ["vault", "a.b-c", "123", &"a".repeat(63)] {
        assert!(r("PUT", &format!("/{good}/doc"), "h").is_ok(), "{good}");
    }
    let legacy = Addressing {
        domain: None,
        legacy_bucket_names: true,
    };
    let x = route_with("PUT", "/VAULT/doc", &[("host", "h")], legacy).unwrap();
    assert_eq!(x.target, obj("VAULT", "doc"));
    // Host names are case-insensitive: a virtual-hosted `VAULT` is `vault`.
    let x = r("PUT", "/doc", "VAULT.s3.localhost").unwrap();
    assert_eq!(x.target, obj("vault", "doc"));
}

#[test]
fn host_and_authority_must_agree() {
    let presigned = "https://private.s3.localhost:8443/report.pdf";
    assert_eq!(
        route_with(
            "GET",
            presigned,
            &[("host", "public.s3.localhost:8443")],
            ADDRESSING
        ),
        Err(RouteError::AuthorityMismatch {
            host: "public.s3.localhost:8443".into(),
            authority: "private.s3.localhost:8443".into(),
        })
    );
    // HTTP/2: `:authority` alone, or with an agreeing Host.
    let x = route_with("GET", presigned, &[], ADDRESSING).unwrap();
    assert_eq!(x.target, obj("private", "report.pdf"));
    assert_eq!(x.authority, "private.s3.localhost:8443");
    let x = route_with(
        "GET",
        presigned,
        &[("host", "PRIVATE.s3.localhost:8443")],
        ADDRESSING,
    )
    .unwrap();
    assert_eq!(x.target, obj("private", "report.pdf"));
    assert_eq!(
        route_with("GET", "/bkt/k", &[("host", "a"), ("host", "a")], ADDRESSING),
        Err(RouteError::DuplicateHost)
    );
}

#[test]
fn copy_sources_are_decoded_before_anything_reads_them() {
    let x = copy("/dst/k", "private%2Fq3-public/data.csv").unwrap();
    assert_eq!(
        x.copy_source,
        Some(CopySource {
            bucket: "private".into(),
            key: "q3-public/data.csv".into(),
            version_id: None,
        })
    );
    let x = copy("/dst/k", "/src/a%20key%3F?versionId=v%2B1").unwrap();
    let src = x.copy_source.unwrap();
    assert_eq!((src.bucket.as_str(), src.key.as_str()), ("src", "a key?"));
    assert_eq!(src.version_id.as_deref(), Some("v+1"));
    assert_eq!(src.header_value(), "src/a%20key%3F?versionId=v%2B1");
    for bad in ["src", "/src/", "SRC/k", "src/k?foo=1", "src/k?versionId="] {
        assert!(copy("/dst/k", bad).is_err(), "{bad}");
    }
    assert_eq!(
        copy("/dst/k", "src/.s3seal/seal/x"),
        Err(RouteError::ReservedKey)
    );
    assert_eq!(
        route_with(
            "PUT",
            "/dst/k",
            &[
                ("host", "h"),
                ("x-amz-copy-source", "public/k"),
                ("x-amz-copy-source", "private/k")
            ],
            ADDRESSING
        ),
        Err(RouteError::DuplicateCopySource)
    );
    // A copy source on anything but a copy is not an operation s3seal knows.
    assert!(route_with(
        "GET",
        "/dst/k",
        &[("host", "h"), ("x-amz-copy-source", "src/k")],
        ADDRESSING
    )
    .is_err());
}

#[test]
fn the_proxys_namespace_is_refused() {
    assert_eq!(
        r("DELETE", "/bkt/.s3seal/seal/x", "h"),
        Err(RouteError::ReservedKey)
    );
    assert_eq!(
        r("GET", "/bkt?list-type=2&prefix=.s3seal/", "h"),
        Err(RouteError::ReservedKey)
    );
    assert!(r("GET", "/bkt/.s3seal", "h").is_ok());
}

#[test]
fn every_operation_has_a_class() {
    assert_eq!(
        r("PUT", "/bkt?policy", "h").unwrap().op.needs(),
        Needs::Class(Access::BucketAdmin)
    );
    assert_eq!(
        r("PUT", "/bkt", "h").unwrap().op.needs(),
        Needs::Class(Access::CreateDeleteBucket)
    );
    assert_eq!(
        r("GET", "/", "h").unwrap().op.needs(),
        Needs::Class(Access::List)
    );
    assert_eq!(r("HEAD", "/bkt", "h").unwrap().op.needs(), Needs::AnyGrant);
    assert_eq!(
        r("PUT", "/bkt/k?acl", "h").unwrap().op.needs(),
        Needs::Class(Access::BucketAdmin)
    );
    assert_eq!(
        r("PUT", "/bkt/k?tagging", "h").unwrap().op.needs(),
        Needs::Class(Access::Write)
    );
}

#[test]
fn preflights_name_the_request_they_ask_about() {
    for u in [
        "/bkt/k?uploads",
        "/bkt/k?partNumber=0&uploadId=u",
        "/bkt?anything",
    ] {
        assert_eq!(
            r("OPTIONS", u, "h").unwrap().op,
            Operation::CorsPreflight,
            "{u}"
        );
    }
    assert_eq!(r("OPTIONS", "/", "h"), Err(RouteError::MethodNotAllowed));
}

#[test]
fn sigv2_query_authentication_is_never_forwarded() {
    // Checked (or refused) by `auth`, like SigV4's `X-Amz-*`; names match exactly, as in S3.
    let routed = r(
        "GET",
        "/enc/k?AWSAccessKeyId=a&Signature=s&Expires=1&response-content-type=t",
        "h",
    )
    .unwrap();
    assert_eq!(routed.op, Operation::GetObject);
    assert_eq!(
        routed.query,
        vec![("response-content-type".to_owned(), "t".to_owned())]
    );
    assert_eq!(
        r("GET", "/enc/k?signature=s", "h"),
        Err(RouteError::UnknownParameter("signature".into()))
    );
}

#[test]
fn listing_limits_are_worded_as_s3_words_them() {
    let err = r("GET", "/bkt?max-keys=-1", "h").unwrap_err();
    assert_eq!(
        err.to_string(),
        "Argument maxKeys must be an integer between 0 and 2147483647"
    );
    assert_eq!(
        r("GET", "/bkt?uploads&max-uploads=2147483648", "h"),
        Err(RouteError::InvalidInteger("max-uploads"))
    );
    assert!(r("GET", "/bkt?max-keys=2147483647", "h").is_ok());
    assert_eq!(
        RouteError::InvalidPartNumber.to_string(),
        "Part number must be an integer between 1 and 10000, inclusive"
    );
}

#[test]
fn user_metadata_is_at_most_2_kb() {
    let at_limit = "v".repeat(MAX_USER_METADATA_BYTES - 1);
    let over = "v".repeat(MAX_USER_METADATA_BYTES);
    let put = |value: &str, extra: &[(&str, &str)]| {
        let mut h = vec![("host", "h"), ("x-amz-meta-a", value)];
        h.extend_from_slice(extra);
        route_with("PUT", "/bkt/k", &h, ADDRESSING)
    };
    // One byte of name and 2047 of value: 2 KB exactly.
    assert!(put(&at_limit, &[]).is_ok());
    assert_eq!(put(&over, &[]), Err(RouteError::MetadataTooLarge));
    assert_eq!(
        RouteError::MetadataTooLarge.code(),
        S3Code::MetadataTooLarge
    );
    let create = route_with(
        "POST",
        "/bkt/k?uploads",
        &[("host", "h"), ("x-amz-meta-a", &over)],
        ADDRESSING,
    );
    assert_eq!(create, Err(RouteError::MetadataTooLarge));
    // A copy keeps its source's metadata unless told to replace it.
    let copy_with = |directive: &str| {
        route_with(
            "PUT",
            "/bkt/k",
            &[
                ("host", "h"),
                ("x-amz-copy-source", "/src/k"),
                ("x-amz-metadata-directive", directive),
                ("x-amz-meta-a", &over),
            ],
            ADDRESSING,
        )
    };
    assert!(copy_with("COPY").is_ok());
    assert_eq!(copy_with("REPLACE"), Err(RouteError::MetadataTooLarge));
    // Other operations do not set metadata.
    assert!(route_with(
        "GET",
        "/bkt/k",
        &[("host", "h"), ("x-amz-meta-a", &over)],
        ADDRESSING
    )
    .is_ok());
}

#[test]
fn uploads_over_5_gib_are_refused_from_their_declared_length() {
    let put = r("PUT", "/bkt/k", "h").unwrap();
    let part = r("PUT", "/bkt/k?partNumber=1&uploadId=u", "h").unwrap();
    for routed in [&put, &part] {
        assert_eq!(routed.check_declared_length(Some(MAX_UPLOAD_BYTES)), Ok(()));
        assert_eq!(routed.check_declared_length(None), Ok(()));
        assert_eq!(
            routed.check_declared_length(Some(MAX_UPLOAD_BYTES + 1)),
            Err(RouteError::EntityTooLarge)
        );
    }
    let delete = r("POST", "/bkt?delete", "h").unwrap();
    assert_eq!(delete.check_declared_length(Some(u64::MAX)), Ok(()));
}
