use super::*;

#[test]
fn aws_sse_c_block_is_recognised_by_its_message() {
    let doc = |code: &str, msg: &str| {
        format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{msg}</Message><RequestId>1</RequestId></Error>")
    };
    for msg in [
        "Requests specifying Server Side Encryption with Customer provided keys are blocked for this bucket",
        "SSE-C is blocked for this bucket",
        "The encryption type SSE-C is blocked (BlockedEncryptionTypes)",
    ] {
        assert_eq!(
            sse_c_block_message(doc("AccessDenied", msg).as_bytes()).as_deref(),
            Some(msg)
        );
    }
    assert_eq!(
        sse_c_block_message(doc("AccessDenied", "Access Denied").as_bytes()),
        None
    );
    assert_eq!(
        sse_c_block_message(doc("SignatureDoesNotMatch", "SSE-C").as_bytes()),
        None
    );
    assert_eq!(sse_c_block_message(b""), None);
    assert_eq!(sse_c_block_message(b"<Error><Code>Access"), None);
}

#[test]
fn element_text_reads_escaped_text() {
    let doc = b"<InitiateMultipartUploadResult><Bucket>b</Bucket><Key>a&amp;b</Key><UploadId>2~x&lt;y</UploadId></InitiateMultipartUploadResult>";
    assert_eq!(element_text(doc, "UploadId").as_deref(), Some("2~x<y"));
    assert_eq!(element_text(doc, "Key").as_deref(), Some("a&b"));
    assert_eq!(element_text(doc, "Missing"), None);
}

#[test]
fn key_refusals_are_400_and_403() {
    assert!(refuses_key(StatusCode::BAD_REQUEST));
    assert!(refuses_key(StatusCode::FORBIDDEN));
    assert!(!refuses_key(StatusCode::NOT_FOUND));
    assert!(!refuses_key(StatusCode::OK));
}
