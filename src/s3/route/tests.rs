use super::*;

fn r(method: &str, uri: &str, host: &str) -> Result<Routed, RouteError> {
    let uri: Uri = uri.parse().unwrap();
    route(
        &method.parse().unwrap(),
        &uri,
        Some(host),
        Some("s3.localhost"),
        false,
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
    let x = r("GET", "/b/k", "s3.localhost").unwrap();
    assert_eq!(x.target, obj("b", "k"));
    assert!(!x.virtual_host);
}

#[test]
fn operations_from_method_and_query() {
    let cases = [
        ("GET", "/", Operation::ListBuckets),
        ("PUT", "/b", Operation::CreateBucket),
        ("DELETE", "/b", Operation::DeleteBucket),
        ("HEAD", "/b", Operation::HeadBucket),
        ("GET", "/b", Operation::ListObjects),
        (
            "GET",
            "/b?list-type=2&continuation-token=x",
            Operation::ListObjectsV2,
        ),
        ("GET", "/b?versions", Operation::ListObjectVersions),
        ("GET", "/b?uploads", Operation::ListMultipartUploads),
        ("POST", "/b?delete", Operation::DeleteObjects),
        ("POST", "/b", Operation::PostObject),
        ("GET", "/b?tagging", Operation::Other),
        (
            "GET",
            "/b/k?versionId=3&x-id=GetObject",
            Operation::GetObject,
        ),
        ("GET", "/b/k?partNumber=2", Operation::GetObject),
        (
            "GET",
            "/b/k?response-content-type=text%2Fplain",
            Operation::GetObject,
        ),
        ("HEAD", "/b/k", Operation::HeadObject),
        ("DELETE", "/b/k", Operation::DeleteObject),
        ("POST", "/b/k?uploads", Operation::CreateMultipartUpload),
        ("PUT", "/b/k?partNumber=1&uploadId=u", Operation::UploadPart),
        (
            "POST",
            "/b/k?uploadId=u",
            Operation::CompleteMultipartUpload,
        ),
        ("DELETE", "/b/k?uploadId=u", Operation::AbortMultipartUpload),
        ("GET", "/b/k?uploadId=u", Operation::ListParts),
        ("PUT", "/b/k?tagging", Operation::Other),
        ("GET", "/b/k?attributes", Operation::GetObjectAttributes),
        (
            "POST",
            "/b/k?select&select-type=2",
            Operation::SelectObjectContent,
        ),
        (
            "POST",
            "/b/k?select-type=2&select",
            Operation::SelectObjectContent,
        ),
        ("POST", "/b/k?restore", Operation::RestoreObject),
        ("POST", "/b/k?restore&versionId=1", Operation::RestoreObject),
    ];
    for (m, u, op) in cases {
        assert_eq!(r(m, u, "localhost").unwrap().op, op, "{m} {u}");
    }
}

#[test]
fn copies_are_told_apart_by_the_copy_source_header() {
    let uri: Uri = "/b/k".parse().unwrap();
    let x = route(&Method::PUT, &uri, Some("h"), None, true).unwrap();
    assert_eq!(x.op, Operation::CopyObject);
    let uri: Uri = "/b/k?partNumber=1&uploadId=u".parse().unwrap();
    let x = route(&Method::PUT, &uri, Some("h"), None, true).unwrap();
    assert_eq!(x.op, Operation::UploadPartCopy);
}

#[test]
fn body_kinds() {
    assert_eq!(r("PUT", "/b?policy", "h").unwrap().body, BodyKind::Json);
    assert_eq!(r("PUT", "/b?cors", "h").unwrap().body, BodyKind::Xml);
    assert_eq!(r("POST", "/b?delete", "h").unwrap().body, BodyKind::Xml);
    assert_eq!(
        r("PUT", "/b/k?partNumber=1&uploadId=u", "h").unwrap().body,
        BodyKind::Data
    );
}

#[test]
fn bad_input_is_refused() {
    assert_eq!(r("GET", "/b/%FF", "h"), Err(RouteError::BadPath));
    assert_eq!(r("GET", "/../k", "h"), Err(RouteError::InvalidBucketName));
    assert_eq!(r("GET", "/b%2F%2E%2E", "h").unwrap().target, obj("b", ".."));
    assert_eq!(
        r("GET", "/b%5Cc/k", "h"),
        Err(RouteError::InvalidBucketName)
    );
    let long = format!("/b/{}", "k".repeat(1025));
    assert_eq!(r("GET", &long, "h"), Err(RouteError::KeyTooLong(1025)));
    assert!(r("GET", &format!("/b/{}", "k".repeat(1024)), "h").is_ok());
    let uri: Uri = "/b".parse().unwrap();
    assert_eq!(
        route(&Method::GET, &uri, None, None, false),
        Err(RouteError::MissingHost)
    );
}

#[test]
fn encode_path_matches_s3_canonical_form() {
    assert_eq!(
        encode_path("/b/a b+c~d_e-f.g/\u{2713}*"),
        "/b/a%20b%2Bc~d_e-f.g/%E2%9C%93%2A"
    );
}

#[test]
fn aws_host_names_route_like_aws() {
    let vhost = [
        ("b1.s3.amazonaws.com", "b1"),
        ("b1.s3.us-east-1.amazonaws.com", "b1"),
        ("b1.s3.eu-west-1.amazonaws.com:443", "b1"),
        ("b1.s3.dualstack.ap-southeast-2.amazonaws.com", "b1"),
        ("b1.s3-fips.us-gov-west-1.amazonaws.com", "b1"),
        ("b1.s3-fips.dualstack.us-east-2.amazonaws.com", "b1"),
        ("b1.s3-us-west-2.amazonaws.com", "b1"),
        ("b1.s3-external-1.amazonaws.com", "b1"),
        ("b1.s3.cn-north-1.amazonaws.com.cn", "b1"),
        ("B1.S3.US-EAST-1.AMAZONAWS.COM", "B1"),
        // Dotted bucket names, and buckets whose labels look like the service's.
        (
            "my.dotted.bucket.s3.us-east-1.amazonaws.com",
            "my.dotted.bucket",
        ),
        ("s3.s3.amazonaws.com", "s3"),
        ("logs.s3.s3.us-east-1.amazonaws.com", "logs.s3"),
    ];
    for (host, bucket) in vhost {
        assert_eq!(aws_virtual_host_bucket(host), Some(bucket), "{host}");
        let x = route(
            &Method::GET,
            &"/k/x".parse().unwrap(),
            Some(host),
            None,
            false,
        )
        .unwrap();
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
        "b1.s3-accesspoint.us-east-1.amazonaws.com",
        "b1.s3-website-us-east-1.amazonaws.com",
        "b1.s3-website.us-east-1.amazonaws.com",
        "b1.s3-object-lambda.us-east-1.amazonaws.com",
        "b1.s3.dualstack.amazonaws.com",
        "b1.ec2.amazonaws.com",
        "b1.s3.amazonaws.com.evil.example",
        "b1.s3.example.com",
        "amazonaws.com",
        "[::1]:443",
    ];
    for host in path_style {
        assert_eq!(aws_virtual_host_bucket(host), None, "{host}");
        let x = route(
            &Method::GET,
            &"/b2/k".parse().unwrap(),
            Some(host),
            None,
            false,
        )
        .unwrap();
        assert_eq!(x.target, obj("b2", "k"), "{host}");
    }
    // The configured domain is read first.
    let x = r("GET", "/k", "b3.s3.localhost").unwrap();
    assert_eq!(x.target, obj("b3", "k"));
}
