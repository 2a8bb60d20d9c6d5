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

const KEY_B64: &str = "QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI=";

fn policies(rules: &[(&str, &str)]) -> SsePolicies {
    let rule = |text: &str| {
        toml::from_str::<policy::RawSseRule>(text)
            .unwrap()
            .validate(|_| Ok(zeroize::Zeroizing::new(KEY_B64.to_owned())))
            .unwrap()
    };
    SsePolicies::new(rules.iter().map(|(p, r)| ((*p).to_owned(), rule(r)))).unwrap()
}

fn copy_into(bucket: &str, from: &str) -> Routed {
    Routed {
        authority: "h".into(),
        target: Target::Object {
            bucket: bucket.to_owned(),
            key: "k".to_owned(),
        },
        op: Operation::CopyObject,
        body: crate::s3::route::BodyKind::Xml,
        virtual_host: false,
        query: Vec::new(),
        copy_source: Some(crate::s3::route::CopySource {
            bucket: from.to_owned(),
            key: "src".to_owned(),
            version_id: None,
        }),
    }
}

fn outgoing<'t>(target: &'t Target, headers: &HeaderMap) -> Outgoing<'t> {
    Outgoing {
        method: Method::PUT,
        target,
        query: Vec::new(),
        headers: headers.clone(),
        content_length: Some(0),
    }
}

#[test]
fn a_copy_out_of_a_ruled_bucket_gets_the_source_key_even_without_a_destination_rule() {
    let policies = policies(&[(
        "sealed-*",
        "rule = \"sse-c\"\nkey = { id = \"k\", env = \"K\" }",
    )]);
    let mut client = HeaderMap::new();
    client.insert(policy::SSE, http::HeaderValue::from_static("AES256"));
    let routed = copy_into("plain", "sealed-1");
    let out = outgoing(&routed.target, &client);
    let (out, stage) = Stage::prepare(&policies, &routed, &client, out).unwrap();
    assert_eq!(out.headers[policy::COPY_SOURCE_SSE_C_KEY], KEY_B64);
    // The destination has no rule: the client's own choice passes, and nothing is verified.
    assert_eq!(out.headers[policy::SSE], "AES256");
    assert!(!out.headers.contains_key(policy::SSE_C_KEY));
    assert!(stage.active.as_ref().unwrap().plan.expect.is_none());
    assert!(!stage.wants_replay());

    // Neither bucket has a rule: the stage does nothing at all.
    let routed = copy_into("plain", "other");
    let out = outgoing(&routed.target, &client);
    let (out, stage) = Stage::prepare(&policies, &routed, &client, out).unwrap();
    assert!(stage.active.is_none());
    assert_eq!(out.headers, client);

    // Into a ruled bucket: both triples, and the write is verified.
    let routed = copy_into("sealed-2", "sealed-1");
    let out = outgoing(&routed.target, &client);
    let (out, stage) = Stage::prepare(&policies, &routed, &client, out).unwrap();
    assert_eq!(out.headers[policy::SSE_C_KEY], KEY_B64);
    assert_eq!(out.headers[policy::COPY_SOURCE_SSE_C_KEY], KEY_B64);
    assert!(!out.headers.contains_key(policy::SSE));
    assert!(stage.active.as_ref().unwrap().plan.expect.is_some());
}

/// Runs [`withhold_error_document`] on an answer with `status` and `doc`.
fn withheld(status: u16, doc: &'static str) -> Result<(u16, String), S3Code> {
    let resp = Response::builder()
        .status(status)
        .header("content-length", doc.len())
        .body(body::full(doc))
        .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        let resp = withhold_error_document(resp).await.map_err(|e| e.code())?;
        let status = resp.status().as_u16();
        let doc = resp.into_body().collect().await.unwrap().to_bytes();
        Ok((status, String::from_utf8(doc.to_vec()).unwrap()))
    })
}

#[test]
fn a_refusal_of_a_keyed_request_keeps_status_and_code_only() {
    let echo = "<Error><Code>SignatureDoesNotMatch</Code><Message>no</Message><CanonicalRequest>x-amz-server-side-encryption-customer-key:QkJC</CanonicalRequest></Error>";
    let (status, doc) = withheld(403, echo).unwrap();
    assert_eq!(status, 403);
    assert!(doc.contains("<Code>SignatureDoesNotMatch</Code>"), "{doc}");
    assert!(
        !doc.contains("QkJC") && !doc.contains("CanonicalRequest"),
        "{doc}"
    );
    let (status, doc) = withheld(503, "<Error><Code>SlowDown</Code></Error>").unwrap();
    assert_eq!(status, 503);
    assert!(doc.contains("<Code>SlowDown</Code>"), "{doc}");

    // Successes pass as they are; a HEAD's refusal has no document to replace.
    assert_eq!(withheld(200, "data").unwrap(), (200, "data".to_owned()));
    assert_eq!(withheld(404, "").unwrap(), (404, String::new()));

    // A document that names no code, or a code that is not one, is not relayed at all.
    assert_eq!(withheld(400, "<html>QkJC</html>"), Err(S3Code::BadGateway));
    assert_eq!(
        withheld(400, "<Error><Code>Bad QkJC</Code></Error>"),
        Err(S3Code::BadGateway)
    );
}
