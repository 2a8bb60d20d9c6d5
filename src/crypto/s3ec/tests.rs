//! The S3EC formats against published vectors, and the streaming GCM against `aes-gcm`.
//!
//! Vectors: `aws/amazon-s3-encryption-client-go`, `v4/internal/key_derivation_test.go`
//! (`TestDeriveKeys_KnownAnswerTests`: HKDF-SHA512 content keys and commitments) and
//! `v4/client/decryption_client_v4_test.go` (`TestDecryptionClientV4_GetMockV2Object`,
//! `..._GetMockV3Object`, `..._GetMockV3ObjectWithIncorrectKCValue`: whole objects with their
//! metadata, the data key KMS returned, and the plaintext).

use aes_gcm::aead::{Aead as _, KeyInit as _, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use http::{HeaderMap, HeaderValue};
use proptest::collection::vec;
use proptest::prelude::*;

use super::super::format::{DataKey, Kek, KeyId};
use super::super::tests::{drain, split};
use super::super::StreamError;
use super::*;

fn hex(s: &str) -> Vec<u8> {
    ::hex::decode(s).unwrap()
}

fn key(b64: &str) -> DataKey {
    DataKey::from_bytes(STANDARD.decode(b64).unwrap().try_into().unwrap())
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    pairs
        .iter()
        .map(|(k, v)| {
            (
                http::HeaderName::try_from(format!("x-amz-meta-{k}")).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            )
        })
        .collect()
}

fn record(pairs: &[(&str, &str)]) -> Result<Record, S3ecError> {
    match detect(&Metadata::from_headers(&headers(pairs)))? {
        Found::Record(r) => Ok(r),
        other => panic!("not a complete record: {other:?}"),
    }
}

/// Decrypts a whole stored object as the proxy does before releasing it.
fn open(cipher: &ContentCipher, stored: &[u8], cuts: &[usize]) -> (Vec<u8>, Option<StreamError>) {
    let body = S3ecBody::new(
        split(stored, cuts, false),
        cipher,
        stored.len() as u64,
        Release::Verified,
    );
    drain(body)
}

// === Key derivation (Go v4 key_derivation_test.go) ===

#[test]
fn key_commitment_known_answers() {
    let vectors = [
        (
            "80d90dc4cc7e77d8a6332efa44eba56230a7fe7b89af37d1e501ab2e07c0a163",
            "b8ea76bed24c7b85382a148cb9dcd1cfdfb765f55ded4dfa6e0c4c79",
            "6dd14f546cc006e639126e83f5d4d1b118576bb5df97f38c6fb3a1db87bbc338",
            "f89818bc0a346d3a3426b68e9509b6b2ae5fe1f904aa329fb73625db",
        ),
        (
            "501afb8227d22e75e68010414b8abdaf3064c081e8e922dafef4992036394d60",
            "61a00b4981a5aacfd136c55cb726e32d2a547dc7600a7d4675c69127",
            "e14786a714748d1d2c3a4a6816dec56ddf1881bbeabb4f39420ffb9f63700b2f",
            "5c1e73e47f6fe3a70d6d094283aceaa76d2975feb829212d88f0afc1",
        ),
    ];
    for (dk, id, enc, commit) in vectors {
        let dk = DataKey::from_bytes(hex(dk).try_into().unwrap());
        let record = Record {
            content: Content::V3 {
                message_id: hex(id).try_into().unwrap(),
                commitment: hex(commit).try_into().unwrap(),
            },
            wrap: Wrap::KmsContext,
            encrypted_data_key: vec![1],
            context: BTreeMap::new(),
        };
        let cipher = record.content_cipher(&dk).expect("the commitment matches");
        assert_eq!(&cipher.key[..], hex(enc).as_slice());
        assert_eq!(cipher.iv, [1; 12]);
        assert_eq!(cipher.aad, [0x00, 0x73]);

        let mut wrong = record.clone();
        wrong.content = Content::V3 {
            message_id: hex(id).try_into().unwrap(),
            commitment: [0; COMMITMENT_LEN],
        };
        assert_eq!(
            wrong.content_cipher(&dk).unwrap_err(),
            S3ecError::Commitment
        );
    }
}

// === Whole objects (Go v4 decryption_client_v4_test.go) ===

const V3_OBJECT: &str = "2d4ff4dafe27f69f628872d82b5a1002ed1a21b8485d532bd8159f6487945b3641af5865fc0a029a3650053600c6d213625b9a0cc9c239577c09f3423dedc5641e88b6835824417c";
const V3_PLAINTEXT: &str = "8f2c59c6dbfcacf356f3da40788cbde67ca38161a4702cbcf757af663e1c24a600001b2f500417dbf5a050f57db6737422b2ed6a44c75e0d";
const V3_DATA_KEY: &str = "lP6AbIQTmptyb/+WQq+ubDw+w7na0T1LGSByZGuaono=";

fn v3_metadata() -> Vec<(&'static str, &'static str)> {
    vec![
        (
            "x-amz-3",
            "8gSzlk7giyfFbLPUVgoVjvQebI1827jp8lDkO+n2chsiSoegx1sjm8NdPk0Bl70I",
        ),
        ("x-amz-c", "115"),
        ("x-amz-d", "6JOSx47RkdyfciJkNauuC4RpkMcWZY4a+i1RzQ=="),
        ("x-amz-i", "sE9zLb4tsEBJkvEhLMZFxMj9oZJBbQ6ZOgOqHA=="),
        ("x-amz-t", r#"{"aws:x-amz-cek-alg":"115"}"#),
        ("x-amz-w", "12"),
    ]
}

#[test]
fn version_3_object_vector() {
    let record = record(&v3_metadata()).unwrap();
    assert_eq!(record.wrap, Wrap::KmsContext);
    assert_eq!(record.kms_context().unwrap()["aws:x-amz-cek-alg"], "115");
    let cipher = record.content_cipher(&key(V3_DATA_KEY)).unwrap();
    let stored = hex(V3_OBJECT);
    for cuts in [&[][..], &[1, 17, 40][..], &[stored.len() - 3][..]] {
        let (plain, err) = open(&cipher, &stored, cuts);
        assert!(err.is_none(), "{err:?}");
        assert_eq!(plain, hex(V3_PLAINTEXT));
    }
}

#[test]
fn version_3_object_with_another_commitment_is_refused() {
    // The vector's object whose x-amz-d belongs to another message id.
    let mut meta = v3_metadata();
    meta[2] = ("x-amz-d", "FiQepGw+/O+3MuYrmQU5mAkotUnxB+W+EwYDHw==");
    meta[3] = ("x-amz-i", "cPwtbK08jrpe3x+QElyG+vGtkk9jDn6KmOta2Q==");
    let record = record(&meta).unwrap();
    assert_eq!(
        record.content_cipher(&key(V3_DATA_KEY)).unwrap_err(),
        S3ecError::Commitment
    );
}

#[test]
fn version_2_object_vector() {
    let record = record(&[
        (
            "x-amz-key-v2",
            "PsuclPnlo2O0MQoov6kL1TBlaZG6oyNwWuAqmAgq7g8b9ZeeORi3VTMg624FU9jx",
        ),
        ("x-amz-iv", "dqqlq2dRVSQ5hFRb"),
        (
            "x-amz-matdesc",
            r#"{"aws:x-amz-cek-alg":"AES/GCM/NoPadding"}"#,
        ),
        ("x-amz-wrap-alg", "kms+context"),
        ("x-amz-cek-alg", "AES/GCM/NoPadding"),
    ])
    .unwrap();
    assert!(record.kms_context().is_ok());
    let cipher = record
        .content_cipher(&key("hJUv7S6K2cHF64boS9ixHX0TZAjBZLT4ZpEO4XxkGnY="))
        .unwrap();
    let stored = hex("6b134eb7a353131de92faff64f594b2794e3544e31776cca26fe3bbeeffc68742d1007234f11c6670522602326868e29f37e9d2678f1614ec1a2418009b9772100929aadbed9a21a");
    let (plain, err) = open(&cipher, &stored, &[5, 33]);
    assert!(err.is_none(), "{err:?}");
    assert_eq!(plain, hex("af150d7156bf5b3f5c461e5c6ac820acc5a33aab7085d920666c250ff251209d5a4029b3bd78250fab6e11aed52fae948d407056a9519b68"));
}

#[test]
fn tampered_tag_or_text_releases_nothing() {
    let cipher = record(&v3_metadata())
        .unwrap()
        .content_cipher(&key(V3_DATA_KEY))
        .unwrap();
    let stored = hex(V3_OBJECT);
    for at in [0, 20, stored.len() - 1] {
        let mut bad = stored.clone();
        bad[at] ^= 1;
        let (plain, err) = open(&cipher, &bad, &[7]);
        assert!(plain.is_empty(), "released before verifying");
        assert!(matches!(err, Some(StreamError::ObjectAuthentication)));
    }
    // Streaming releases as it goes, and still ends in an error.
    let mut bad = stored.clone();
    bad[3] ^= 1;
    let body = S3ecBody::new(
        split(&bad, &[10], false),
        &cipher,
        bad.len() as u64,
        Release::Streaming,
    );
    let (_, err) = drain(body);
    assert!(matches!(err, Some(StreamError::ObjectAuthentication)));
    // Short and long bodies.
    let short = &stored[..stored.len() - 1];
    let body = S3ecBody::new(
        split(short, &[], false),
        &cipher,
        stored.len() as u64,
        Release::Streaming,
    );
    assert!(matches!(drain(body).1, Some(StreamError::Truncated { .. })));
    let mut long = stored.clone();
    long.push(0);
    let (_, err) = open(&cipher, &long[..], &[]);
    // `open` declares the long length, so declare the true one here.
    assert!(matches!(err, Some(StreamError::ObjectAuthentication)));
    let body = S3ecBody::new(
        split(&long, &[], false),
        &cipher,
        stored.len() as u64,
        Release::Verified,
    );
    assert!(matches!(
        drain(body).1,
        Some(StreamError::TrailingData { .. })
    ));
}

// === Metadata ===

#[test]
fn tampered_metadata_is_refused() {
    let mut mixed = v3_metadata();
    mixed.push(("x-amz-iv", "dqqlq2dRVSQ5hFRb"));
    assert_eq!(record(&mixed).unwrap_err(), S3ecError::MixedVersions);

    let mut two_keys = v3_metadata();
    two_keys.push(("x-amz-key-v2", "AAAA"));
    assert_eq!(record(&two_keys).unwrap_err(), S3ecError::MixedVersions);

    let mut cbc = v3_metadata();
    cbc[1] = ("x-amz-c", "AES/CBC/PKCS5Padding");
    assert!(matches!(record(&cbc), Err(S3ecError::Unsupported(_))));

    let mut short_id = v3_metadata();
    short_id[3] = ("x-amz-i", "AAAA");
    assert!(matches!(
        record(&short_id),
        Err(S3ecError::Invalid("x-amz-i", _))
    ));

    let mut rsa = v3_metadata();
    rsa[5] = ("x-amz-w", "22");
    assert!(matches!(record(&rsa), Err(S3ecError::Unsupported(_))));

    // A context that names another suite than the object's cannot open it.
    let mut downgraded = v3_metadata();
    downgraded[4] = ("x-amz-t", r#"{"aws:x-amz-cek-alg":"AES/GCM/NoPadding"}"#);
    assert_eq!(
        record(&downgraded).unwrap().kms_context().unwrap_err(),
        S3ecError::ContextCipher
    );

    let mut missing = v3_metadata();
    missing.remove(5);
    assert_eq!(record(&missing).unwrap_err(), S3ecError::Missing("x-amz-w"));

    assert!(matches!(
        record(&[("x-amz-key", "AAAA"), ("x-amz-iv", "AAAA")]),
        Err(S3ecError::Unsupported(_))
    ));
    assert_eq!(
        detect(&Metadata::from_headers(&headers(&[("color", "blue")]))).unwrap(),
        Found::None
    );
    // The plaintext length alone is no record: the record may be in the instruction file.
    let length_only = headers(&[("x-amz-unencrypted-content-length", "5")]);
    assert_eq!(
        detect(&Metadata::from_headers(&length_only)).unwrap(),
        Found::None
    );
}

#[test]
fn instruction_files() {
    let all = v3_metadata();
    let (object_pairs, file): (Vec<_>, Vec<_>) = all
        .iter()
        .partition(|(k, _)| ["x-amz-c", "x-amz-d", "x-amz-i"].contains(k));
    let object = Metadata::from_headers(&headers(&object_pairs));
    assert_eq!(detect(&object).unwrap(), Found::InstructionFile);
    let json: BTreeMap<&str, &str> = file.iter().copied().collect();
    let file = Metadata::from_instruction_file(&serde_json::to_vec(&json).unwrap()).unwrap();
    let merged = with_instruction_file(&object, &file).unwrap();
    assert_eq!(merged, record(&v3_metadata()).unwrap());
    // The instruction file object's own metadata: the marker, alone or (Ruby) with the
    // plaintext length. Such an object is another's record, not content.
    for own in [
        &[("x-amz-crypto-instr-file", "")][..],
        &[
            ("x-amz-crypto-instr-file", ""),
            ("x-amz-unencrypted-content-length", "5"),
        ],
    ] {
        let own = Metadata::from_headers(&headers(own));
        assert!(is_instruction_file(&own));
        assert_eq!(detect(&own).unwrap(), Found::IsInstructionFile);
    }
    assert!(!is_instruction_file(&object));
    let mut with_record = object.clone();
    with_record
        .0
        .insert("x-amz-crypto-instr-file".into(), String::new());
    assert!(!is_instruction_file(&with_record));
    assert_eq!(detect(&with_record).unwrap(), Found::InstructionFile);

    // The file may not replace what the object's metadata holds.
    let mut spoofed = json.clone();
    spoofed.insert("x-amz-d", "FiQepGw+/O+3MuYrmQU5mAkotUnxB+W+EwYDHw==");
    let spoofed = Metadata::from_instruction_file(&serde_json::to_vec(&spoofed).unwrap()).unwrap();
    assert_eq!(
        with_instruction_file(&object, &spoofed).unwrap_err(),
        S3ecError::InstructionFileOverride("x-amz-d")
    );
    // Nor may the object's metadata say otherwise than the file: another wrap, a context the
    // file lacks, a version 2 key. What agrees, and the plaintext length, are accepted.
    let with_object = |extra: &[(&'static str, &'static str)]| {
        let mut pairs = object_pairs.clone();
        pairs.extend_from_slice(extra);
        with_instruction_file(&Metadata::from_headers(&headers(&pairs)), &file)
    };
    for (extra, key) in [
        (("x-amz-w", "02"), "x-amz-w"),
        (("x-amz-m", "{}"), "x-amz-m"),
        (("x-amz-iv", "dqqlq2dRVSQ5hFRb"), "x-amz-iv"),
        (
            ("x-amz-t", r#"{"aws:x-amz-cek-alg":"AES/GCM/NoPadding"}"#),
            "x-amz-t",
        ),
    ] {
        assert_eq!(
            with_object(&[extra]).unwrap_err(),
            S3ecError::InstructionFileContradiction(key),
            "{extra:?}"
        );
    }
    assert_eq!(with_object(&[("x-amz-w", "12")]).unwrap(), merged);
    assert_eq!(
        with_object(&[("x-amz-unencrypted-content-length", "56")]).unwrap(),
        merged
    );

    for bad in [
        &b"[]"[..],
        b"{\"color\":\"blue\"}",
        b"{\"x-amz-w\":12}",
        b"not json",
    ] {
        assert_eq!(
            Metadata::from_instruction_file(bad).unwrap_err(),
            S3ecError::InstructionFile
        );
    }
}

#[test]
fn a_format_2_record_may_be_wholly_in_the_instruction_file() {
    // Go's and Java's format 2 instruction files: every mapkey, the object metadata has none
    // (the Go client also writes the plaintext length).
    let v2 = [
        (
            "x-amz-key-v2",
            "PsuclPnlo2O0MQoov6kL1TBlaZG6oyNwWuAqmAgq7g8b9ZeeORi3VTMg624FU9jx",
        ),
        ("x-amz-iv", "dqqlq2dRVSQ5hFRb"),
        (
            "x-amz-matdesc",
            r#"{"aws:x-amz-cek-alg":"AES/GCM/NoPadding"}"#,
        ),
        ("x-amz-wrap-alg", "kms+context"),
        ("x-amz-cek-alg", "AES/GCM/NoPadding"),
        ("x-amz-tag-len", "128"),
    ];
    let from_headers = record(&v2).unwrap();
    let mut json: BTreeMap<&str, &str> = v2.iter().copied().collect();
    json.insert("x-amz-unencrypted-content-length", "56");
    let file = Metadata::from_instruction_file(&serde_json::to_vec(&json).unwrap()).unwrap();
    let none = Metadata::default();
    assert_eq!(
        record_in_instruction_file(&none, &file).unwrap(),
        from_headers
    );
    // The plaintext length on the object (Ruby) must be the file's.
    let length =
        |n: &str| Metadata::from_headers(&headers(&[("x-amz-unencrypted-content-length", n)]));
    assert_eq!(
        record_in_instruction_file(&length("56"), &file).unwrap(),
        from_headers
    );
    assert_eq!(
        record_in_instruction_file(&length("57"), &file).unwrap_err(),
        S3ecError::InstructionFileContradiction("x-amz-unencrypted-content-length")
    );

    // Format 3 keeps its content keys in the object: a file that holds them is refused, and
    // one without them is no complete record.
    let v3: BTreeMap<&str, &str> = v3_metadata().into_iter().collect();
    let file = Metadata::from_instruction_file(&serde_json::to_vec(&v3).unwrap()).unwrap();
    assert_eq!(
        record_in_instruction_file(&none, &file).unwrap_err(),
        S3ecError::InstructionFileOverride("x-amz-c")
    );
    let rest: BTreeMap<&str, &str> = v3
        .into_iter()
        .filter(|(k, _)| !["x-amz-c", "x-amz-d", "x-amz-i"].contains(k))
        .collect();
    let file = Metadata::from_instruction_file(&serde_json::to_vec(&rest).unwrap()).unwrap();
    assert_eq!(
        record_in_instruction_file(&none, &file).unwrap_err(),
        S3ecError::Missing("x-amz-c")
    );
    // Format 1 is refused wherever it is.
    let v1 = br#"{"x-amz-key":"AAAA","x-amz-iv":"AAAA","x-amz-matdesc":"{}"}"#;
    let file = Metadata::from_instruction_file(v1).unwrap();
    assert!(matches!(
        record_in_instruction_file(&none, &file),
        Err(S3ecError::Unsupported(_))
    ));
}

// === Local keys and writing ===

#[test]
fn aes_gcm_wraps_and_version_3_records_round_trip() {
    let kek = Kek::new(KeyId::new("k".to_owned()).unwrap(), &[9; 32]);
    let other = Kek::new(KeyId::new("o".to_owned()).unwrap(), &[8; 32]);
    let dek = DataKey::generate();
    let wrapped = kek.wrap_with_aad(&dek, SUITE_V3_TEXT.as_bytes());
    let context = BTreeMap::from([("purpose".to_owned(), "test".to_owned())]);
    let (record, cipher) = Record::new_v3(&dek, Wrap::AesGcm, wrapped, context, message_id());
    let mut h = HeaderMap::new();
    record.write_headers(&mut h).unwrap();
    let read = match detect(&Metadata::from_headers(&h)).unwrap() {
        Found::Record(r) => r,
        other => panic!("{other:?}"),
    };
    assert_eq!(read, record);
    let (opened, by) = read.unwrap_local([&other, &kek]).unwrap();
    assert_eq!(by.id(), kek.id());
    assert_eq!(opened.expose(), dek.expose());
    assert_eq!(read.unwrap_local([&other]).unwrap_err(), S3ecError::Unwrap);

    // A body sealed with the record's cipher opens with the cipher read back.
    let plain = b"sixteen bytes!!!and some more".to_vec();
    let mut gcm = cipher.stream();
    let mut sealed = plain.clone();
    gcm.encrypt(&mut sealed);
    sealed.extend_from_slice(&gcm.tag());
    let back = read.content_cipher(&opened).unwrap();
    let (opened, err) = open(&back, &sealed, &[3]);
    assert!(err.is_none(), "{err:?}");
    assert_eq!(opened, plain);
}

#[test]
fn a_version_2_wrap_does_not_open_as_version_3() {
    let kek = Kek::new(KeyId::new("k".to_owned()).unwrap(), &[9; 32]);
    let dek = DataKey::generate();
    let v2_wrap = kek.wrap_with_aad(&dek, CEK_ALG_V2.as_bytes());
    let (record, _) = Record::new_v3(&dek, Wrap::AesGcm, v2_wrap, BTreeMap::new(), message_id());
    assert_eq!(record.unwrap_local([&kek]).unwrap_err(), S3ecError::Unwrap);
}

// === Streaming GCM ===

proptest! {
    #[test]
    fn streaming_gcm_is_aes_gcm(
        plain in vec(any::<u8>(), 0..300),
        aad in vec(any::<u8>(), 0..40),
        cuts in vec(any::<usize>(), 0..6),
        key in any::<[u8; 32]>(),
        iv in any::<[u8; 12]>(),
    ) {
        let reference = Aes256Gcm::new((&key).into())
            .encrypt(Nonce::from_slice(&iv), Payload { msg: &plain, aad: &aad })
            .unwrap();
        // Encrypting in pieces gives the reference ciphertext and tag.
        let mut gcm = gcm::Gcm::new(&key, &iv, &aad);
        let mut points: Vec<usize> = cuts.iter().map(|c| c % (plain.len() + 1)).collect();
        points.extend([0, plain.len()]);
        points.sort_unstable();
        let mut sealed = plain.clone();
        for w in points.windows(2) {
            gcm.encrypt(&mut sealed[w[0]..w[1]]);
        }
        sealed.extend_from_slice(&gcm.tag());
        prop_assert_eq!(&sealed, &reference);
        // Decrypting in pieces verifies it.
        let mut gcm = gcm::Gcm::new(&key, &iv, &aad);
        let (text, tag) = reference.split_at(plain.len());
        let mut opened = text.to_vec();
        for w in points.windows(2) {
            gcm.decrypt(&mut opened[w[0]..w[1]]);
        }
        prop_assert!(gcm.verify(tag));
        prop_assert_eq!(opened, plain);
    }

    #[test]
    fn ranges_decrypt_without_the_rest(
        plain in vec(any::<u8>(), 1..200),
        a in any::<usize>(),
        b in any::<usize>(),
        cut in any::<usize>(),
    ) {
        let key = [3; 32];
        let record = Record {
            content: Content::V2 { iv: [5; 12] },
            wrap: Wrap::AesGcm,
            encrypted_data_key: vec![1],
            context: BTreeMap::new(),
        };
        let cipher = record.content_cipher(&DataKey::from_bytes(key)).unwrap();
        let mut gcm = cipher.stream();
        let mut stored = plain.clone();
        gcm.encrypt(&mut stored);
        stored.extend_from_slice(&gcm.tag());
        let (first, last) = (a % plain.len(), b % plain.len());
        let (first, end) = (first.min(last), first.max(last) + 1);
        let (from, to) = cipher_span(first as u64, end as u64);
        let to = to.min(stored.len() as u64);
        let span = &stored[usize::try_from(from).unwrap()..usize::try_from(to).unwrap()];
        let body = S3ecBody::new(
            split(span, &[cut], true),
            &cipher,
            span.len() as u64,
            Release::Range { offset: from, skip: first as u64 - from, len: (end - first) as u64 },
        );
        let (got, err) = drain(body);
        prop_assert!(err.is_none());
        prop_assert_eq!(&got[..], &plain[first..end]);
    }
}

#[test]
fn plaintext_lengths() {
    assert_eq!(plaintext_len(16), Some(0));
    assert_eq!(plaintext_len(15), None);
    assert_eq!(plaintext_len(116), Some(100));
    assert_eq!(cipher_span(17, 33), (16, 48));
    assert_eq!(cipher_span(0, 16), (0, 16));
}
