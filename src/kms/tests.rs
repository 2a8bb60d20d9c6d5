use super::*;

fn kms(endpoint: &str) -> Kms {
    Kms::new(
        KmsSettings {
            endpoint: endpoint.parse().unwrap(),
            region: "eu-west-1".into(),
            key_id: "alias/s3seal".into(),
            old_key_ids: vec!["old".into()],
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: SecretKey::new("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
            cache_ttl: Duration::from_secs(60),
            cache_max_uses: 3,
            required_for_readiness: true,
        },
        crate::tls::client_config(None).unwrap(),
    )
}

#[test]
fn generate_request_is_the_documented_json() {
    let request = GenerateRequest {
        key_id: "alias/s3seal",
        key_spec: "AES_256",
        encryption_context: context(Some("photos")),
    };
    assert_eq!(
        serde_json::to_string(&request).unwrap(),
        r#"{"KeyId":"alias/s3seal","KeySpec":"AES_256","EncryptionContext":{"bucket":"photos","s3seal":"v2"}}"#
    );
    let request = EncryptRequest {
        key_id: "k",
        plaintext: "AAAA",
        encryption_context: context(Some("b")),
    };
    assert_eq!(
        serde_json::to_string(&request).unwrap(),
        r#"{"KeyId":"k","Plaintext":"AAAA","EncryptionContext":{"bucket":"b","s3seal":"v2"}}"#
    );
    let request = DecryptRequest {
        key_id: "k",
        ciphertext_blob: STANDARD.encode(b"blob"),
        encryption_context: context(None),
    };
    assert_eq!(
        serde_json::to_string(&request).unwrap(),
        r#"{"KeyId":"k","CiphertextBlob":"YmxvYg==","EncryptionContext":{"s3seal":"v1"}}"#
    );
}

#[test]
fn answers_give_the_key_or_a_named_error() {
    let key = STANDARD.encode([7u8; 32]);
    let ok = format!(r#"{{"CiphertextBlob":"YmxvYg==","Plaintext":"{key}","KeyId":"arn:x"}}"#);
    let answer = parse_answer(Op::GenerateDataKey, StatusCode::OK, ok.as_bytes()).unwrap();
    assert_eq!(answer.ciphertext_blob.as_deref(), Some("YmxvYg=="));
    assert!(plaintext_key(Op::GenerateDataKey, &answer.plaintext).is_ok());
    // A 16-byte key is no AES-256 data key.
    let short = STANDARD.encode([7u8; 16]);
    assert!(matches!(
        plaintext_key(Op::Decrypt, &short),
        Err(KmsError::Answer("Decrypt", _))
    ));

    let refused =
        br#"{"__type":"com.amazonaws.kms#NotFoundException","message":"Key 'x' does not exist"}"#;
    match parse_answer(Op::Decrypt, StatusCode::BAD_REQUEST, refused) {
        Err(KmsError::Refused { op, kind, message }) => {
            assert_eq!((op, kind.as_str()), ("Decrypt", "NotFoundException"));
            assert_eq!(message, "Key 'x' does not exist");
        }
        other => panic!("{:?}", other.err()),
    }
    // Not JSON at all (a proxy's error page): the status names it.
    match parse_answer(Op::Decrypt, StatusCode::BAD_GATEWAY, b"<html>") {
        Err(KmsError::Refused { kind, .. }) => assert_eq!(kind, "HTTP 502"),
        other => panic!("{:?}", other.err()),
    }
    // An `Encrypt` answer has only the blob; a Decrypt answer without a key is no key.
    let mut answer = parse_answer(
        Op::Encrypt,
        StatusCode::OK,
        br#"{"CiphertextBlob":"YmxvYg=="}"#,
    )
    .unwrap();
    assert_eq!(blob(Op::Encrypt, &mut answer).unwrap(), b"blob");
    let answer = parse_answer(Op::Decrypt, StatusCode::OK, b"{}").unwrap();
    assert!(matches!(
        plaintext_key(Op::Decrypt, &answer.plaintext),
        Err(KmsError::Answer(..))
    ));
}

#[test]
fn requests_are_signed_for_kms_with_the_json_target() {
    let kms = kms("https://kms.example:8443");
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let req = kms.sign(Op::GenerateDataKey, b"{}".to_vec(), now).unwrap();
    assert_eq!(req.method(), Method::POST);
    assert_eq!(req.uri(), "https://kms.example:8443/");
    let h = req.headers();
    assert_eq!(h["x-amz-target"], "TrentService.GenerateDataKey");
    assert_eq!(h[header::CONTENT_TYPE], "application/x-amz-json-1.1");
    assert_eq!(h[header::HOST], "kms.example:8443");
    assert_eq!(h["x-amz-date"], "20231114T221320Z");
    let auth = h[header::AUTHORIZATION].to_str().unwrap();
    assert!(
        auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20231114/eu-west-1/kms/aws4_request, SignedHeaders=content-length;content-type;host;x-amz-date;x-amz-target, Signature="),
        "{auth}"
    );
    // The signature covers the body: another body, another signature.
    let other = kms.sign(Op::GenerateDataKey, b"{ }".to_vec(), now).unwrap();
    assert_ne!(
        other.headers()[header::AUTHORIZATION],
        h[header::AUTHORIZATION]
    );
}

#[tokio::test]
async fn an_unreachable_endpoint_is_a_503_and_not_cached() {
    // A port nothing listens on: bound, then closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let kms = kms(&format!("http://127.0.0.1:{port}"));
    let err = kms.data_key("b").await.unwrap_err();
    assert!(matches!(err, KmsError::Unreachable(_)), "{err}");
    assert_eq!(err.code(), S3Code::ServiceUnavailable);
    // The failed slot is retried, not remembered.
    assert!(kms.data_key("b").await.is_err());
    assert!(kms.open("alias/s3seal", Some("b"), b"blob").await.is_err());
    assert!(kms.readers.lock().unwrap().is_empty());
}

#[test]
fn object_key_ids_name_the_current_and_old_keys() {
    let kms = kms("https://kms.example");
    assert_eq!(kms.key_for("kms:alias/s3seal"), Some("alias/s3seal"));
    assert_eq!(kms.key_for("kms:old"), Some("old"));
    assert_eq!(kms.key_for("kms:other"), None);
    assert_eq!(kms.key_for("alias/s3seal"), None);
}

#[test]
fn eviction_keeps_the_read_cache_bounded() {
    let mut readers = HashMap::new();
    let now = Instant::now();
    for i in 0..MAX_CACHED_BLOBS {
        let mut id = [0u8; 32];
        id[..8].copy_from_slice(&(i as u64).to_le_bytes());
        readers.insert(
            id,
            Arc::new(ReadSlot {
                created: now + Duration::from_millis(i as u64),
                key: tokio::sync::OnceCell::new(),
            }),
        );
    }
    evict(
        &mut readers,
        |s| s.created,
        Duration::from_secs(60),
        MAX_CACHED_BLOBS,
    );
    assert!(readers.len() < MAX_CACHED_BLOBS);
    assert!(readers.len() >= MAX_CACHED_BLOBS / 2 - 1);
}

/// A KMS endpoint that refuses every call with `kind`; it counts the calls.
async fn refusing_kms(kind: &'static str) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = calls.clone();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let mut request = Vec::new();
            let mut buf = [0u8; 4096];
            // The whole request (head and JSON body) before answering, so the client sees the
            // answer and not a reset.
            while !is_complete(&request) {
                match tcp.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let body = format!(r#"{{"__type":"{kind}","message":"no"}}"#);
            let answer = format!(
                "HTTP/1.1 400 Bad Request\r\nContent-Type: application/x-amz-json-1.1\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = tcp.write_all(answer.as_bytes()).await;
        }
    });
    (endpoint, calls)
}

fn is_complete(request: &[u8]) -> bool {
    let text = String::from_utf8_lossy(request);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return false;
    };
    let length = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse::<usize>())
        })
        .and_then(Result::ok)
        .unwrap_or(0);
    body.len() >= length
}

#[tokio::test]
async fn a_refused_blob_is_remembered_and_a_throttled_one_is_not() {
    let (endpoint, calls) = refusing_kms("InvalidCiphertextException").await;
    let forged = kms(&endpoint);
    for _ in 0..3 {
        let err = forged
            .open("alias/s3seal", Some("b"), b"forged")
            .await
            .unwrap_err();
        assert!(
            matches!(&err, KmsError::Refused { kind, .. } if kind == "InvalidCiphertextException"),
            "{err}"
        );
    }
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
    // The same blob under another key is another question for KMS.
    assert!(forged.open("old", Some("b"), b"forged").await.is_err());
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 2);
    assert!(forged.readers.lock().unwrap().is_empty());

    let (endpoint, calls) = refusing_kms("ThrottlingException").await;
    let throttled = kms(&endpoint);
    for _ in 0..3 {
        assert!(throttled
            .open("alias/s3seal", Some("b"), b"blob")
            .await
            .is_err());
    }
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 3);
    assert!(throttled.refused.lock().unwrap().is_empty());
}

/// An S3 Encryption Client blob (`kms+context`) names no key id: each of the rule's keys is
/// asked in turn while KMS refuses it, and a failure that is no verdict on the blob stops there.
#[tokio::test]
async fn a_context_blob_is_tried_under_the_old_keys_too() {
    let context = BTreeMap::from([("aws:x-amz-cek-alg".to_owned(), "115".to_owned())]);
    let (endpoint, calls) = refusing_kms("IncorrectKeyException").await;
    let err = kms(&endpoint)
        .open_any_with_context(&context, b"blob")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, KmsError::Refused { kind, .. } if kind == "IncorrectKeyException"),
        "{err}"
    );
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 2);

    let (endpoint, calls) = refusing_kms("ThrottlingException").await;
    assert!(kms(&endpoint)
        .open_any_with_context(&context, b"blob")
        .await
        .is_err());
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[tokio::test]
async fn concurrent_opens_of_a_refused_blob_cost_one_call() {
    let (endpoint, calls) = refusing_kms("InvalidCiphertextException").await;
    let kms = Arc::new(kms(&endpoint));
    let opens: Vec<_> = (0..8)
        .map(|_| {
            let kms = kms.clone();
            tokio::spawn(async move {
                kms.open("alias/s3seal", Some("b"), b"forged")
                    .await
                    .is_err()
            })
        })
        .collect();
    for open in opens {
        assert!(open.await.unwrap());
    }
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[test]
fn only_named_refusals_about_the_blob_are_verdicts() {
    let refused = |kind: &str| KmsError::Refused {
        op: "Decrypt",
        kind: kind.into(),
        message: String::new(),
    };
    for kind in [
        "InvalidCiphertextException",
        "IncorrectKeyException",
        "NotFoundException",
    ] {
        assert!(refused(kind).is_verdict(), "{kind}");
    }
    for kind in [
        "ThrottlingException",
        "KMSInternalException",
        "HTTP 502",
        "HTTP 403",
    ] {
        assert!(!refused(kind).is_verdict(), "{kind}");
    }
    assert!(!KmsError::Timeout.is_verdict());
}
