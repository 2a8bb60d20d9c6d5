use super::*;

const ZERO_KEY_B64: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
const ONES_KEY_B64: &str = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
const KMS_KEY: &str = "1234abcd-12ab-34cd-56ef-1234567890ab";

fn raw(toml_text: &str) -> RawSseRule {
    toml::from_str(toml_text).unwrap()
}

fn load(src: &KeySource) -> Result<Zeroizing<String>, String> {
    match src {
        KeySource::Env { env } if env == "ZERO" => Ok(Zeroizing::new(ZERO_KEY_B64.into())),
        KeySource::File { file } if file.to_str() == Some("ones.key") => {
            Ok(Zeroizing::new(format!("{ONES_KEY_B64}\n")))
        }
        other => Err(format!("no such key {other:?}")),
    }
}

fn rule(kind: &str, mode: &str) -> SseRule {
    let extra = match kind {
        "sse-kms" => format!("key_id = \"{KMS_KEY}\"\n"),
        "sse-c" => "key = { id = \"k1\", env = \"ZERO\" }\n".into(),
        _ => String::new(),
    };
    raw(&format!(
        "rule = \"{kind}\"\nclient_headers = \"{mode}\"\n{extra}"
    ))
    .validate(load)
    .unwrap()
}

fn headers(pairs: &[(&HeaderName, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (n, v) in pairs {
        h.insert((*n).clone(), HeaderValue::from_str(v).unwrap());
    }
    h
}

fn md5_b64(key_b64: &str) -> String {
    B64.encode(Md5::digest(B64.decode(key_b64).unwrap()))
}

fn client_sse_c(key_b64: &str) -> HeaderMap {
    headers(&[
        (&SSE_C_ALGORITHM, "AES256"),
        (&SSE_C_KEY, key_b64),
        (&SSE_C_KEY_MD5, &md5_b64(key_b64)),
    ])
}

fn get<'a>(p: &'a SsePlan, n: &HeaderName) -> Option<&'a str> {
    p.set_request.get(n).map(|v| v.to_str().unwrap())
}

const WRITES: [Operation; 3] = [
    Operation::PutObject,
    Operation::CopyObject,
    Operation::CreateMultipartUpload,
];
const KEYED: [Operation; 8] = [
    Operation::UploadPart,
    Operation::UploadPartCopy,
    Operation::CompleteMultipartUpload,
    Operation::GetObject,
    Operation::HeadObject,
    Operation::GetObjectAttributes,
    Operation::SelectObjectContent,
    Operation::ListParts,
];
const NEVER: [Operation; 6] = [
    Operation::RestoreObject,
    Operation::DeleteObject,
    Operation::ListObjectsV2,
    Operation::AbortMultipartUpload,
    Operation::HeadBucket,
    Operation::BucketConfig(
        crate::s3::route::BucketResource::Policy,
        crate::s3::route::Verb::Put,
    ),
];
const MODES: [&str; 3] = ["override", "reject", "allow"];

// === Config ===

#[test]
fn key_md5_matches_an_independent_md5() {
    let k = CustomerKey::from_base64("z", ZERO_KEY_B64).unwrap();
    // MD5 of 32 zero bytes, base64: a fixed vector, and recomputed independently.
    assert_eq!(k.md5_b64(), "cLyPS3KoaSFGi/joRB3OUQ==");
    assert_eq!(k.md5_b64(), md5_b64(ZERO_KEY_B64));
    assert_eq!(k.id(), "z");
    assert_eq!(format!("{k:?}"), "CustomerKey(z, <redacted>)");
    assert!(!format!("{:?}", rule("sse-c", "override")).contains(ZERO_KEY_B64));
}

#[test]
fn config_validation() {
    let r = raw("rule = \"sse-c\"\non_unverified = \"warn\"\nkey = { id = \"new\", file = \"ones.key\" }\nold_keys = [{ id = \"old\", env = \"ZERO\" }]")
        .validate(load)
        .unwrap();
    assert_eq!(r.verify, Verify::Warn);
    assert_eq!(r.client_headers, ClientHeaders::Override);
    let Encryption::SseC { key, old_keys } = &r.kind else {
        panic!()
    };
    assert_eq!(key.md5_b64(), md5_b64(ONES_KEY_B64));
    assert_eq!(
        old_keys[0],
        CustomerKey::from_base64("old", ZERO_KEY_B64).unwrap()
    );
    assert_ne!(old_keys[0], *key);

    let err = |t: &str| raw(t).validate(load).unwrap_err().field;
    assert_eq!(err("rule = \"sse-kms\""), "key_id");
    assert_eq!(err("rule = \"sse-s3\"\nkey_id = \"k\""), "key_id");
    assert_eq!(err("rule = \"sse-kms\"\nkey_id = \"a\\nb\""), "key_id");
    assert_eq!(
        err("rule = \"sse-kms\"\nkey_id = \"k\"\nkey = { id = \"a\", env = \"ZERO\" }"),
        "key"
    );
    assert_eq!(err("rule = \"sse-c\""), "key");
    assert_eq!(err("rule = \"sse-c\"\nkey = { id = \"a\" }"), "key");
    assert_eq!(
        err("rule = \"sse-c\"\nkey = { id = \"a\", env = \"ZERO\", file = \"ones.key\" }"),
        "key"
    );
    assert_eq!(
        err("rule = \"sse-c\"\nkey = { id = \"a\", env = \"NOPE\" }"),
        "key"
    );
    assert_eq!(
        err("rule = \"sse-c\"\nkey = { id = \"\", env = \"ZERO\" }"),
        "key"
    );
    assert_eq!(err("rule = \"sse-c\"\nkey = { id = \"a\", env = \"ZERO\" }\nold_keys = [{ id = \"a\", file = \"ones.key\" }]"), "old_keys");
    assert_eq!(err("rule = \"sse-c\"\nkey = { id = \"a\", env = \"ZERO\" }\nold_keys = [{ id = \"b\", env = \"ZERO\" }]"), "old_keys");
    assert!(toml::from_str::<RawSseRule>("rule = \"sse-s3\"\nkeyid = \"x\"").is_err());
    assert!(toml::from_str::<RawSseRule>("rule = \"aes\"").is_err());
    assert!(CustomerKey::from_base64("s", "AAAA")
        .unwrap_err()
        .contains("3 bytes"));
    assert!(CustomerKey::from_base64("s", "!!").is_err());
}

#[test]
fn kms_rule_sends_key_context_and_bucket_key() {
    let r = raw(&format!("rule = \"sse-kms\"\nkey_id = \"{KMS_KEY}\"\nbucket_key = true\ncontext = {{ app = \"a\\\"b\", b = \"c\" }}"))
        .validate(load)
        .unwrap();
    let p = plan(&r, Operation::PutObject, &HeaderMap::new(), None).unwrap();
    assert_eq!(get(&p, &SSE), Some("aws:kms"));
    assert_eq!(get(&p, &SSE_KMS_KEY_ID), Some(KMS_KEY));
    assert_eq!(get(&p, &SSE_BUCKET_KEY), Some("true"));
    let ctx = B64.decode(get(&p, &SSE_CONTEXT).unwrap()).unwrap();
    assert_eq!(ctx, br#"{"app":"a\"b","b":"c"}"#);
}

// === The matrix ===

#[test]
fn plain_requests_get_the_rule_on_writes() {
    for mode in MODES {
        let none = plan(
            &rule("none", mode),
            Operation::PutObject,
            &HeaderMap::new(),
            None,
        )
        .unwrap();
        assert!(none.set_request.is_empty() && none.expect.is_none());
        for op in WRITES {
            let p = plan(&rule("sse-s3", mode), op, &HeaderMap::new(), None).unwrap();
            assert_eq!(get(&p, &SSE), Some("AES256"), "{op:?}");
            assert_eq!(p.set_request.len(), 1);
            assert_eq!(p.expect, Some(Expectation::SseS3));

            let p = plan(&rule("sse-kms", mode), op, &HeaderMap::new(), None).unwrap();
            assert_eq!(get(&p, &SSE), Some("aws:kms"));
            assert_eq!(get(&p, &SSE_KMS_KEY_ID), Some(KMS_KEY));
            assert_eq!(
                p.expect,
                Some(Expectation::SseKms {
                    key_id: Some(KMS_KEY.into())
                })
            );

            let p = plan(&rule("sse-c", mode), op, &HeaderMap::new(), None).unwrap();
            assert_eq!(get(&p, &SSE_C_ALGORITHM), Some("AES256"));
            assert_eq!(get(&p, &SSE_C_KEY), Some(ZERO_KEY_B64));
            assert_eq!(
                get(&p, &SSE_C_KEY_MD5),
                Some(md5_b64(ZERO_KEY_B64).as_str())
            );
            assert!(!p.set_request.contains_key(SSE));
            assert_eq!(p.strip_response, vec![SSE_C_KEY_MD5]);
            assert!(!format!("{p:?}").contains(ZERO_KEY_B64));
        }
    }
}

#[test]
fn sse_c_key_goes_wherever_the_object_is_read_or_written_and_nowhere_else() {
    for mode in MODES {
        let r = rule("sse-c", mode);
        for op in KEYED {
            let p = plan(&r, op, &HeaderMap::new(), None).unwrap();
            assert_eq!(get(&p, &SSE_C_KEY), Some(ZERO_KEY_B64), "{op:?}");
            assert!(!p.set_request.contains_key(SSE), "{op:?}");
        }
        for op in NEVER {
            let p = plan(&r, op, &client_sse_c(ONES_KEY_B64), None).unwrap();
            assert!(p.set_request.is_empty(), "{op:?}");
            assert_eq!(p.strip_request.len(), 3, "{op:?}");
        }
        for kind in ["sse-s3", "sse-kms"] {
            for op in KEYED.iter().chain(&NEVER) {
                let p = plan(&rule(kind, mode), *op, &HeaderMap::new(), None).unwrap();
                assert!(p.set_request.is_empty(), "{kind} {op:?}");
            }
        }
    }
}

#[test]
fn fail_closed_expectations_per_operation() {
    let r = rule("sse-c", "override");
    let expect = |op| plan(&r, op, &HeaderMap::new(), None).unwrap().expect;
    let c = Some(Expectation::SseC {
        key_md5: md5_b64(ZERO_KEY_B64),
    });
    assert_eq!(expect(Operation::UploadPart), c);
    assert_eq!(expect(Operation::UploadPartCopy), c);
    assert_eq!(expect(Operation::CompleteMultipartUpload), None);
    assert_eq!(expect(Operation::GetObject), None);
    let s3 = rule("sse-s3", "override");
    let expect = |op| plan(&s3, op, &HeaderMap::new(), None).unwrap().expect;
    assert_eq!(expect(Operation::UploadPart), Some(Expectation::SseS3));
    assert_eq!(
        expect(Operation::CompleteMultipartUpload),
        Some(Expectation::SseS3)
    );
    assert_eq!(expect(Operation::HeadObject), None);
    // In allow mode the client may have chosen a stronger scheme at creation; a part cannot tell.
    let allow = rule("sse-s3", "allow");
    assert_eq!(
        plan(&allow, Operation::UploadPart, &HeaderMap::new(), None)
            .unwrap()
            .expect,
        None
    );
    let complete = |r: &SseRule| {
        plan(
            r,
            Operation::CompleteMultipartUpload,
            &HeaderMap::new(),
            None,
        )
        .unwrap()
        .expect
    };
    assert_eq!(complete(&allow), None);
    assert_eq!(
        complete(&rule("sse-s3", "reject")),
        Some(Expectation::SseS3)
    );
}

#[test]
fn override_strips_the_clients_choice() {
    let r = rule("sse-s3", "override");
    let h = headers(&[(&SSE, "aws:kms"), (&SSE_KMS_KEY_ID, "other")]);
    let p = plan(&r, Operation::PutObject, &h, None).unwrap();
    assert_eq!(p.strip_request, vec![SSE, SSE_KMS_KEY_ID]);
    assert_eq!(get(&p, &SSE), Some("AES256"));
    assert!(!p.set_request.contains_key(SSE_KMS_KEY_ID));
    let p = plan(
        &rule("sse-c", "override"),
        Operation::GetObject,
        &client_sse_c(ONES_KEY_B64),
        None,
    )
    .unwrap();
    assert_eq!(get(&p, &SSE_C_KEY), Some(ZERO_KEY_B64));
}

#[test]
fn reject_names_the_rule_and_accepts_what_matches() {
    let err = plan(
        &rule("sse-kms", "reject"),
        Operation::PutObject,
        &headers(&[(&SSE, "AES256")]),
        None,
    )
    .unwrap_err();
    assert_eq!(
        err,
        PolicyError::Rejected {
            rule: "sse-kms",
            header: SSE
        }
    );
    assert_eq!(err.code(), S3Code::AccessDenied);
    assert!(err.to_string().contains("rule is sse-kms"), "{err}");
    let err = plan(
        &rule("sse-s3", "reject"),
        Operation::GetObject,
        &client_sse_c(ONES_KEY_B64),
        None,
    )
    .unwrap_err();
    assert!(err.to_string().contains("sse-s3") && err.to_string().contains("customer-algorithm"));
    assert!(plan(
        &rule("sse-c", "reject"),
        Operation::UploadPart,
        &client_sse_c(ONES_KEY_B64),
        None
    )
    .is_err());
    assert!(plan(
        &rule("none", "reject"),
        Operation::PutObject,
        &headers(&[(&SSE, "AES256")]),
        None
    )
    .is_err());
    // Matching the rule is not a conflict.
    let ok =
        |r: &str, h: HeaderMap| plan(&rule(r, "reject"), Operation::PutObject, &h, None).unwrap();
    assert_eq!(
        get(&ok("sse-s3", headers(&[(&SSE, "AES256")])), &SSE),
        Some("AES256")
    );
    let p = ok("sse-kms", headers(&[(&SSE, "aws:kms")]));
    assert_eq!(get(&p, &SSE_KMS_KEY_ID), Some(KMS_KEY));
    assert!(plan(
        &rule("sse-kms", "reject"),
        Operation::PutObject,
        &headers(&[(&SSE, "aws:kms"), (&SSE_KMS_KEY_ID, "x")]),
        None
    )
    .is_err());
    let p = ok("sse-c", client_sse_c(ZERO_KEY_B64));
    assert_eq!(get(&p, &SSE_C_KEY), Some(ZERO_KEY_B64));
}

#[test]
fn allow_keeps_equal_or_stronger_and_corrects_weaker() {
    let kms_client = headers(&[
        (&SSE, "aws:kms"),
        (&SSE_KMS_KEY_ID, "client-key"),
        (&SSE_BUCKET_KEY, "false"),
    ]);
    // Stronger (kms over s3) stands, and is verified as the client asked.
    let p = plan(
        &rule("sse-s3", "allow"),
        Operation::PutObject,
        &kms_client,
        None,
    )
    .unwrap();
    assert_eq!(get(&p, &SSE_KMS_KEY_ID), Some("client-key"));
    assert_eq!(get(&p, &SSE_BUCKET_KEY), Some("false"));
    assert_eq!(
        p.expect,
        Some(Expectation::SseKms {
            key_id: Some("client-key".into())
        })
    );
    // Equal (another kms key) stands.
    let p = plan(
        &rule("sse-kms", "allow"),
        Operation::PutObject,
        &kms_client,
        None,
    )
    .unwrap();
    assert_eq!(get(&p, &SSE_KMS_KEY_ID), Some("client-key"));
    let dsse = headers(&[(&SSE, "aws:kms:dsse")]);
    let p = plan(&rule("sse-kms", "allow"), Operation::PutObject, &dsse, None).unwrap();
    assert_eq!(get(&p, &SSE), Some("aws:kms:dsse"));
    assert_eq!(p.expect, Some(Expectation::SseKms { key_id: None }));
    // Weaker is corrected to the rule.
    let p = plan(
        &rule("sse-kms", "allow"),
        Operation::PutObject,
        &headers(&[(&SSE, "AES256")]),
        None,
    )
    .unwrap();
    assert_eq!(get(&p, &SSE), Some("aws:kms"));
    assert_eq!(get(&p, &SSE_KMS_KEY_ID), Some(KMS_KEY));
    let p = plan(
        &rule("sse-c", "allow"),
        Operation::PutObject,
        &kms_client,
        None,
    )
    .unwrap();
    assert_eq!(get(&p, &SSE_C_KEY), Some(ZERO_KEY_B64));
    // The client's own SSE-C key stands everywhere, and its MD5 is echoed back to it.
    for op in WRITES.iter().chain(&KEYED) {
        let p = plan(
            &rule("sse-c", "allow"),
            *op,
            &client_sse_c(ONES_KEY_B64),
            None,
        )
        .unwrap();
        assert_eq!(get(&p, &SSE_C_KEY), Some(ONES_KEY_B64), "{op:?}");
        assert!(p.strip_response.is_empty());
    }
    assert!(
        RuleKind::None < RuleKind::SseS3
            && RuleKind::SseS3 < RuleKind::SseKms
            && RuleKind::SseKms < RuleKind::SseC
    );
}

#[test]
fn copies_take_the_source_buckets_key() {
    let dest = rule("sse-s3", "override");
    let src = rule("sse-c", "override");
    for op in [Operation::CopyObject, Operation::UploadPartCopy] {
        let p = plan(&dest, op, &HeaderMap::new(), Some(&src)).unwrap();
        assert_eq!(
            get(&p, &COPY_SOURCE_SSE_C_KEY),
            Some(ZERO_KEY_B64),
            "{op:?}"
        );
        assert_eq!(
            get(&p, &COPY_SOURCE_SSE_C_KEY_MD5),
            Some(md5_b64(ZERO_KEY_B64).as_str())
        );
        assert!(!p.set_request.contains_key(SSE_C_KEY));
    }
    // sse-c to sse-c with rotation-style different keys: source and destination headers differ.
    let new = raw("rule = \"sse-c\"\nkey = { id = \"k2\", file = \"ones.key\" }")
        .validate(load)
        .unwrap();
    let p = plan(&new, Operation::CopyObject, &HeaderMap::new(), Some(&src)).unwrap();
    assert_eq!(get(&p, &SSE_C_KEY), Some(ONES_KEY_B64));
    assert_eq!(get(&p, &COPY_SOURCE_SSE_C_KEY), Some(ZERO_KEY_B64));
    // A source without a rule: the client's copy-source key passes through.
    let mut h = HeaderMap::new();
    for (n, c) in COPY_SOURCE_HEADERS.iter().zip(&CUSTOMER_HEADERS) {
        h.insert(n.clone(), client_sse_c(ONES_KEY_B64)[c].clone());
    }
    let p = plan(&dest, Operation::CopyObject, &h, None).unwrap();
    assert_eq!(get(&p, &COPY_SOURCE_SSE_C_KEY), Some(ONES_KEY_B64));
    assert_eq!(p.strip_request.len(), 3);
    // ... is replaced by the source rule's key, unless the source allows clients' keys ...
    let p = plan(&dest, Operation::CopyObject, &h, Some(&src)).unwrap();
    assert_eq!(get(&p, &COPY_SOURCE_SSE_C_KEY), Some(ZERO_KEY_B64));
    let p = plan(
        &dest,
        Operation::CopyObject,
        &h,
        Some(&rule("sse-c", "allow")),
    )
    .unwrap();
    assert_eq!(get(&p, &COPY_SOURCE_SSE_C_KEY), Some(ONES_KEY_B64));
    // ... and refused where the source rejects it, naming the source's rule.
    let err = plan(
        &dest,
        Operation::CopyObject,
        &h,
        Some(&rule("sse-kms", "reject")),
    )
    .unwrap_err();
    assert_eq!(
        err,
        PolicyError::Rejected {
            rule: "sse-kms",
            header: COPY_SOURCE_SSE_C_ALGORITHM
        }
    );
    // Not a copy: copy-source headers are dropped.
    let p = plan(&dest, Operation::PutObject, &h, Some(&src)).unwrap();
    assert!(!p.set_request.contains_key(COPY_SOURCE_SSE_C_KEY));
}

#[test]
fn malformed_client_headers_are_400() {
    let r = rule("sse-s3", "override");
    let bad = |h: HeaderMap| {
        let e = plan(&r, Operation::PutObject, &h, None).unwrap_err();
        assert_eq!(e.code(), S3Code::InvalidArgument, "{e}");
        e
    };
    bad(headers(&[(&SSE, "aes256")]));
    bad(headers(&[(&SSE_KMS_KEY_ID, "k")]));
    bad(headers(&[(&SSE, "AES256"), (&SSE_CONTEXT, "e30=")]));
    bad(headers(&[(&SSE, "aws:kms"), (&SSE_BUCKET_KEY, "yes")]));
    let mut both = client_sse_c(ZERO_KEY_B64);
    both.insert(SSE, HeaderValue::from_static("AES256"));
    bad(both);
    let mut wrong_md5 = client_sse_c(ZERO_KEY_B64);
    wrong_md5.insert(
        SSE_C_KEY_MD5,
        HeaderValue::from_str(&md5_b64(ONES_KEY_B64)).unwrap(),
    );
    assert!(bad(wrong_md5).to_string().contains("key-md5"));
    let mut partial = client_sse_c(ZERO_KEY_B64);
    partial.remove(SSE_C_KEY);
    assert_eq!(
        bad(partial),
        PolicyError::Malformed {
            header: SSE_C_KEY,
            reason: "SSE-C needs algorithm, key and key-MD5 together"
        }
    );
    let mut short = client_sse_c(ZERO_KEY_B64);
    short.insert(SSE_C_KEY, HeaderValue::from_static("AAAA"));
    bad(short);
    let mut alg = client_sse_c(ZERO_KEY_B64);
    alg.insert(SSE_C_ALGORITHM, HeaderValue::from_static("AES128"));
    bad(alg);
    let mut not_ascii = HeaderMap::new();
    not_ascii.insert(SSE, HeaderValue::from_bytes(b"AES\xff").unwrap());
    assert_eq!(
        bad(not_ascii),
        PolicyError::Malformed {
            header: SSE,
            reason: "not ASCII"
        }
    );
}

#[test]
fn post_object_only_on_none_buckets() {
    let err = plan(
        &rule("sse-c", "allow"),
        Operation::PostObject,
        &HeaderMap::new(),
        None,
    )
    .unwrap_err();
    assert_eq!(err, PolicyError::PostObject { rule: "sse-c" });
    assert_eq!(err.code(), S3Code::AccessDenied);
    assert!(plan(
        &rule("none", "override"),
        Operation::PostObject,
        &HeaderMap::new(),
        None
    )
    .is_ok());
}

// === Verify ===

#[test]
fn verify_catches_a_backend_that_ignored_sse_s3() {
    let p = plan(
        &rule("sse-s3", "override"),
        Operation::PutObject,
        &HeaderMap::new(),
        None,
    )
    .unwrap();
    assert_eq!(p.verify, Verify::Enforce);
    let err = verify_response(&p, &HeaderMap::new()).unwrap_err();
    assert_eq!(
        err,
        PolicyError::NotApplied {
            expected: "sse-s3",
            header: SSE,
            found: "(missing)".into()
        }
    );
    assert_eq!(err.code(), S3Code::NotImplemented);
    assert!(verify_response(&p, &headers(&[(&SSE, "aws:kms")])).is_err());
    assert!(verify_response(&p, &headers(&[(&SSE, "AES256")])).is_ok());
    let nothing = plan(
        &rule("none", "override"),
        Operation::PutObject,
        &HeaderMap::new(),
        None,
    )
    .unwrap();
    assert!(verify_response(&nothing, &HeaderMap::new()).is_ok());
}

#[test]
fn verify_checks_the_kms_key_id() {
    let p = plan(
        &rule("sse-kms", "override"),
        Operation::PutObject,
        &HeaderMap::new(),
        None,
    )
    .unwrap();
    let arn = format!("arn:aws:kms:us-east-1:111122223333:key/{KMS_KEY}");
    assert!(verify_response(&p, &headers(&[(&SSE, "aws:kms"), (&SSE_KMS_KEY_ID, &arn)])).is_ok());
    assert!(verify_response(
        &p,
        &headers(&[(&SSE, "aws:kms"), (&SSE_KMS_KEY_ID, KMS_KEY)])
    )
    .is_ok());
    let wrong = verify_response(
        &p,
        &headers(&[
            (&SSE, "aws:kms"),
            (&SSE_KMS_KEY_ID, "arn:aws:kms:us-east-1:1:key/other"),
        ]),
    );
    assert!(
        matches!(wrong, Err(PolicyError::NotApplied { header, .. }) if header == SSE_KMS_KEY_ID)
    );
    assert!(verify_response(
        &p,
        &headers(&[(&SSE, "aws:kms"), (&SSE_KMS_KEY_ID, &format!("x{KMS_KEY}"))])
    )
    .is_err());
    assert!(verify_response(&p, &headers(&[(&SSE, "aws:kms")])).is_err());
    assert!(verify_response(
        &p,
        &headers(&[(&SSE, "AES256"), (&SSE_KMS_KEY_ID, KMS_KEY)])
    )
    .is_err());
    let alias = raw("rule = \"sse-kms\"\nkey_id = \"alias/app\"")
        .validate(load)
        .unwrap();
    let p = plan(&alias, Operation::PutObject, &HeaderMap::new(), None).unwrap();
    assert!(verify_response(&p, &headers(&[(&SSE, "aws:kms"), (&SSE_KMS_KEY_ID, &arn)])).is_ok());
}

#[test]
fn verify_checks_the_sse_c_echo() {
    let p = plan(
        &rule("sse-c", "override"),
        Operation::UploadPart,
        &HeaderMap::new(),
        None,
    )
    .unwrap();
    let md5 = md5_b64(ZERO_KEY_B64);
    assert!(verify_response(
        &p,
        &headers(&[(&SSE_C_ALGORITHM, "AES256"), (&SSE_C_KEY_MD5, &md5)])
    )
    .is_ok());
    assert!(verify_response(&p, &headers(&[(&SSE_C_KEY_MD5, &md5)])).is_err());
    let other = md5_b64(ONES_KEY_B64);
    assert!(verify_response(
        &p,
        &headers(&[(&SSE_C_ALGORITHM, "AES256"), (&SSE_C_KEY_MD5, &other)])
    )
    .is_err());
}

#[test]
fn names_and_modes_round_trip() {
    for (m, s) in [
        (ClientHeaders::Override, "override"),
        (ClientHeaders::Reject, "reject"),
        (ClientHeaders::Allow, "allow"),
    ] {
        assert_eq!(m.as_str(), s);
        assert_eq!(rule("none", s).client_headers, m);
    }
    for k in ["none", "sse-s3", "sse-kms", "sse-c"] {
        assert_eq!(rule(k, "allow").kind.kind().as_str(), k);
    }
}

#[test]
fn rotation_retries_try_old_keys_on_reads_and_copy_sources_only() {
    // Current key ONES ("new"), old key ZERO ("old").
    let rotated = raw("rule = \"sse-c\"\nkey = { id = \"new\", file = \"ones.key\" }\nold_keys = [{ id = \"old\", env = \"ZERO\" }]")
        .validate(load)
        .unwrap();
    for op in [
        Operation::GetObject,
        Operation::HeadObject,
        Operation::GetObjectAttributes,
    ] {
        let p = plan(&rotated, op, &HeaderMap::new(), None).unwrap();
        let retries = rotation_retries(&p, op, &rotated, None);
        assert_eq!(retries.len(), 1, "{op:?}");
        assert_eq!(retries[0].key_id, "old");
        assert_eq!(get(&retries[0].plan, &SSE_C_KEY), Some(ZERO_KEY_B64));
        assert_eq!(
            get(&retries[0].plan, &SSE_C_KEY_MD5),
            Some(md5_b64(ZERO_KEY_B64).as_str())
        );
        // The retried response still hides the key's fingerprint.
        assert_eq!(retries[0].plan.strip_response, p.strip_response);
    }
    // Writes always use the current key.
    for op in [
        Operation::PutObject,
        Operation::UploadPart,
        Operation::CreateMultipartUpload,
    ] {
        let p = plan(&rotated, op, &HeaderMap::new(), None).unwrap();
        assert!(
            rotation_retries(&p, op, &rotated, None).is_empty(),
            "{op:?}"
        );
    }
    // A client's own key (allowed) is never swapped for the proxy's old key.
    let allow = raw("rule = \"sse-c\"\nclient_headers = \"allow\"\nkey = { id = \"new\", file = \"ones.key\" }\nold_keys = [{ id = \"old\", env = \"ZERO\" }]")
        .validate(load)
        .unwrap();
    let own = client_sse_c("AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=");
    let p = plan(&allow, Operation::GetObject, &own, None).unwrap();
    assert!(rotation_retries(&p, Operation::GetObject, &allow, None).is_empty());
    // Copy in place after a rotation: the source is retried with the old key while the
    // destination keeps the new one, so the copy re-encrypts.
    let p = plan(
        &rotated,
        Operation::CopyObject,
        &HeaderMap::new(),
        Some(&rotated),
    )
    .unwrap();
    let retries = rotation_retries(&p, Operation::CopyObject, &rotated, Some(&rotated));
    assert_eq!(retries.len(), 1);
    assert_eq!(
        get(&retries[0].plan, &COPY_SOURCE_SSE_C_KEY),
        Some(ZERO_KEY_B64)
    );
    assert_eq!(get(&retries[0].plan, &SSE_C_KEY), Some(ONES_KEY_B64));
    assert_eq!(retries[0].plan.expect, p.expect);
    // No old keys, no retries.
    let plain = rule("sse-c", "override");
    let p = plan(&plain, Operation::GetObject, &HeaderMap::new(), None).unwrap();
    assert!(rotation_retries(&p, Operation::GetObject, &plain, None).is_empty());
}

#[test]
fn bucket_rules_most_specific_wins() {
    let policies = SsePolicies::new([
        ("*".to_owned(), rule("sse-s3", "reject")),
        ("vault-*".to_owned(), rule("sse-c", "override")),
    ])
    .unwrap();
    assert_eq!(
        policies.for_bucket("vault-1").unwrap().kind.kind(),
        RuleKind::SseC
    );
    assert_eq!(
        policies.for_bucket("other").unwrap().kind.kind(),
        RuleKind::SseS3
    );
    assert!(SsePolicies::default().for_bucket("other").is_none());
    assert!(SsePolicies::new([("[".to_owned(), rule("none", "override"))]).is_err());
}

#[test]
fn pattern_specificity() {
    use crate::rules::specificity;
    assert_eq!(specificity("vault-prod"), (true, 10));
    assert_eq!(specificity("vault-*"), (false, 6));
    assert_eq!(specificity("*"), (false, 0));
    assert_eq!(specificity("v[ab]ult-?"), (false, 6));
    assert_eq!(specificity("{a,b}-logs"), (false, 5));
    assert!(specificity("a") > specificity("abcdef*"));
    // Equally specific: config order.
    let policies = SsePolicies::new([
        ("a-*".to_owned(), rule("sse-s3", "override")),
        ("*-b".to_owned(), rule("sse-c", "override")),
    ])
    .unwrap();
    assert_eq!(
        policies.for_bucket("a-b").unwrap().kind.kind(),
        RuleKind::SseS3
    );
}
