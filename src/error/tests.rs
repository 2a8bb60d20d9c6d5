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
