use super::*;

#[test]
fn xml_escapes_client_controlled_text() {
    let xml = error_xml(S3Code::InvalidURI, "bad <key> & \"more\"", "/b/<k>", "id-1");
    assert!(xml.contains("<Code>InvalidURI</Code>"));
    assert!(xml.contains("<Message>bad &lt;key&gt; &amp; &quot;more&quot;</Message>"));
    assert!(xml.contains("<Resource>/b/&lt;k&gt;</Resource>"));
    assert!(xml.contains("<RequestId>id-1</RequestId>"));
}

#[test]
fn response_carries_status_type_and_request_id() {
    let resp = error_response(S3Code::SignatureDoesNotMatch, "nope", "/", "abc");
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert_eq!(resp.headers()[header::CONTENT_TYPE], "application/xml");
    assert_eq!(resp.headers()["x-amz-request-id"], "abc");
}

#[test]
fn internal_errors_do_not_leak_details() {
    let e = ProxyError::Internal("disk /secret/path failed".into());
    assert_eq!(e.code(), S3Code::InternalError);
    assert!(!e.client_message().contains("/secret/path"));
}

#[test]
fn upstream_codes_are_letters_and_digits() {
    for code in [
        "SignatureDoesNotMatch",
        "NoSuchKey",
        "InvalidArgument",
        "Http2Only",
    ] {
        assert_eq!(UpstreamCode::new(code).unwrap().as_str(), code);
    }
    for bad in [
        "",
        "No Such Key",
        "Code</Code><CanonicalRequest>",
        "x-amz-server-side-encryption-customer-key:abc=",
        &"A".repeat(MAX_UPSTREAM_CODE_LEN + 1),
    ] {
        assert_eq!(UpstreamCode::new(bad), None, "{bad}");
    }
}

#[test]
fn a_withheld_error_keeps_status_headers_and_code_only() {
    let (parts, ()) = Response::builder()
        .status(StatusCode::FORBIDDEN)
        .header(header::CONTENT_LENGTH, "9999")
        .header(header::CONTENT_TYPE, "text/plain")
        .header("x-amz-request-id", "UP-1")
        .header("x-amz-id-2", "host-id")
        .body(())
        .unwrap()
        .into_parts();
    let code = UpstreamCode::new("SignatureDoesNotMatch").unwrap();
    let resp = withheld_error_response(parts, &code);
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert!(!resp.headers().contains_key(header::CONTENT_LENGTH));
    assert_eq!(resp.headers()[header::CONTENT_TYPE], "application/xml");
    assert_eq!(resp.headers()["x-amz-id-2"], "host-id");
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let doc = rt
        .block_on(http_body_util::BodyExt::collect(resp.into_body()))
        .unwrap()
        .to_bytes();
    let doc = std::str::from_utf8(&doc).unwrap();
    assert!(doc.contains("<Code>SignatureDoesNotMatch</Code>"), "{doc}");
    assert!(doc.contains("<RequestId>UP-1</RequestId>"), "{doc}");
    assert!(doc.contains("withheld"), "{doc}");
}
