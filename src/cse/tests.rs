use super::*;

#[test]
fn if_range_holds_for_the_shown_etag_or_a_strong_date() {
    let head = |etag: &str, modified: &str, date: &str| {
        let mut h = HeaderMap::new();
        h.insert(header::ETAG, HeaderValue::from_str(etag).unwrap());
        h.insert(
            header::LAST_MODIFIED,
            HeaderValue::from_str(modified).unwrap(),
        );
        h.insert(header::DATE, HeaderValue::from_str(date).unwrap());
        h
    };
    let modified = "Wed, 21 Oct 2015 07:28:00 GMT";
    let later = "Wed, 21 Oct 2015 07:28:01 GMT";
    let h = head("\"abc\"", modified, later);
    let holds = |values: &[&str], h: &HeaderMap| {
        let values: Vec<HeaderValue> = values
            .iter()
            .map(|v| HeaderValue::from_str(v).unwrap())
            .collect();
        read::if_range_holds(&values, h)
    };
    // The ETag the client saw is the marked one; the backend's own is no object's here.
    assert!(holds(&["\"abc-s3seal\""], &h));
    assert!(holds(&[" \"abc-s3seal\" "], &h));
    for no in [
        "\"abc\"",
        "W/\"abc-s3seal\"",
        "\"other-s3seal\"",
        "*",
        "not a date",
        "Wed, 21 Oct 2015 07:27:59 GMT",
    ] {
        assert!(!holds(&[no], &h), "{no}");
    }
    assert!(!holds(&["\"abc-s3seal\"", "\"abc-s3seal\""], &h));
    // A date holds if it is the Last-Modified, and that is strong: a second before the Date.
    assert!(holds(&[modified], &h));
    assert!(!holds(&[modified], &head("\"abc\"", modified, modified)));
    let mut no_date = h.clone();
    no_date.remove(header::DATE);
    assert!(!holds(&[modified], &no_date));
}

#[test]
fn range_forms() {
    let p = |s: &str| RangeSpec::parse(s.as_bytes());
    assert_eq!(
        p("bytes=0-0"),
        Some(RangeSpec::From {
            first: 0,
            last: Some(0)
        })
    );
    assert_eq!(
        p("bytes=5-"),
        Some(RangeSpec::From {
            first: 5,
            last: None
        })
    );
    assert_eq!(p("bytes=-7"), Some(RangeSpec::Suffix(7)));
    for ignored in [
        "bytes=3-1",
        "bytes=0-1,4-5",
        "items=0-1",
        "bytes=-",
        "bytes=a-b",
        "0-1",
    ] {
        assert_eq!(p(ignored), None, "{ignored}");
    }
    let total = 100;
    let r = |s: &str| p(s).unwrap().resolve(total);
    assert_eq!(r("bytes=0-0"), Some(0..1));
    assert_eq!(r("bytes=99-"), Some(99..100));
    assert_eq!(r("bytes=90-1000"), Some(90..100));
    assert_eq!(r("bytes=-10"), Some(90..100));
    assert_eq!(r("bytes=-1000"), Some(0..100));
    assert_eq!(r("bytes=100-"), None);
    assert_eq!(r("bytes=-0"), None);
    assert_eq!(p("bytes=0-").unwrap().resolve(0), None);
}

#[test]
fn listing_sizes_become_plaintext_sizes() {
    let doc = br#"<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name><Contents><Key>a&amp;b</Key><Size>23</Size><ETag>&quot;x&quot;</ETag></Contents><Contents><Key>c</Key><Size>65559</Size></Contents><Contents><Key>legacy</Key><Size>5</Size></Contents><MaxKeys>1000</MaxKeys></ListBucketResult>"#;
    let out =
        String::from_utf8(listing::rewrite_doc(doc, &listing::Kind::Objects).unwrap()).unwrap();
    assert!(
        out.contains("<Key>a&amp;b</Key><Size>0</Size><ETag>&quot;x-s3seal&quot;</ETag>"),
        "{out}"
    );
    assert!(out.contains("<Key>c</Key><Size>65536</Size>"), "{out}");
    assert!(out.contains("<Key>legacy</Key><Size>5</Size>"), "{out}");
    assert!(out.contains("<MaxKeys>1000</MaxKeys>"), "{out}");

    let versions = br"<ListVersionsResult><Version><Key>k</Key><Size>24</Size></Version><DeleteMarker><Key>d</Key></DeleteMarker></ListVersionsResult>";
    let out = String::from_utf8(listing::rewrite_doc(versions, &listing::Kind::Objects).unwrap())
        .unwrap();
    assert!(out.contains("<Size>1</Size>"), "{out}");
    assert!(listing::rewrite_doc(
        b"<L><Contents><Size>x</Size></Contents></L>",
        &listing::Kind::Objects
    )
    .is_err());
}

#[test]
fn user_metadata_is_counted_as_s3_does() {
    let mut h = HeaderMap::new();
    h.insert("x-amz-meta-ab", HeaderValue::from_static("xyz"));
    h.insert("content-type", HeaderValue::from_static("text/plain"));
    assert_eq!(user_metadata_len(&h), 5);
    assert!(check_client_metadata(&h).is_ok());
    h.insert("x-amz-meta-s3seal-v", HeaderValue::from_static("1"));
    assert!(matches!(
        check_client_metadata(&h),
        Err(CseError::ReservedMetadata)
    ));
}

fn kek(id: &str, byte: u8) -> Kek {
    Kek::new(KeyId::new(id).unwrap(), &[byte; 32])
}

#[test]
fn keyrings_find_old_keys_and_refuse_duplicate_ids() {
    let ring = Keyring::new(kek("new", 1), vec![kek("old", 2)]).unwrap();
    assert!(ring.holds(&KeyId::new("new").unwrap()));
    assert!(ring.holds(&KeyId::new("old").unwrap()));
    assert!(!ring.holds(&KeyId::new("gone").unwrap()));
    assert!(Keyring::new(kek("a", 1), vec![kek("a", 2)]).is_err());
}

#[test]
fn rules_follow_the_first_matching_pattern() {
    let rule = || {
        Rule::new(
            Keyring::new(kek("k", 1), vec![]).unwrap(),
            Unencrypted::PassThrough,
        )
    };
    let rules = EncryptionRules::new([
        ("public-*".to_owned(), None),
        ("*".to_owned(), Some(rule())),
    ])
    .unwrap();
    assert!(rules.for_bucket("public-a").is_none());
    assert!(rules.for_bucket("vault").is_some());
    assert!(EncryptionRules::none().for_bucket("vault").is_none());
}

#[test]
fn segments_cover_ranges_across_parts() {
    use crate::crypto::format::{PartNumber, CHUNK_SIZE, CIPHER_CHUNK_SIZE};
    let (c, cc) = (CHUNK_SIZE as u64, CIPHER_CHUNK_SIZE as u64);
    let p = |n| PartNumber::multipart(n).unwrap();
    // Part 1: 1.5 chunks; part 2 empty; part 3: 2 chunks.
    let parts = [(p(1), c + c / 2), (p(2), 0), (p(3), 2 * c)];
    let part1_cipher = 2 * 23 + c + c / 2;
    let (whole, span) = read::segments_for(&parts, None);
    assert_eq!(whole.len(), 3);
    assert_eq!(span, 0..part1_cipher + 23 + 2 * cc);

    // Only inside part 3's second chunk.
    let start3 = c + c / 2;
    let (segs, span) = read::segments_for(&parts, Some(start3 + c + 5..start3 + c + 10));
    assert_eq!(segs.len(), 1);
    assert_eq!(segs[0].0, p(3));
    assert_eq!(segs[0].1.first_chunk(), 1);
    assert_eq!(span, part1_cipher + 23 + cc..part1_cipher + 23 + 2 * cc);

    // Across the empty part: its empty chunk is inside the span and is read too.
    let (segs, span) = read::segments_for(&parts, Some(start3 - 1..start3 + 1));
    let numbers: Vec<_> = segs.iter().map(|(n, _)| *n).collect();
    assert_eq!(numbers, [p(1), p(2), p(3)]);
    assert_eq!(span, cc..part1_cipher + 23 + cc);
    let fetched: u64 = segs
        .iter()
        .map(|(_, r)| r.cipher_end() - r.cipher_start())
        .sum();
    assert_eq!(fetched, span.end - span.start);
}

#[test]
fn etags_of_encrypted_objects_are_marked_and_conditions_unmarked() {
    assert_eq!(client_etag("\"abc\""), "\"abc-s3seal\"");
    // RGW writes some ETags without quotes; S3 quotes every one.
    assert_eq!(client_etag("abc-2"), "\"abc-2-s3seal\"");
    let mut h = HeaderMap::new();
    h.insert(
        "if-match",
        HeaderValue::from_static("\"abc-s3seal\", W/\"def-s3seal\""),
    );
    h.insert("if-none-match", HeaderValue::from_static("*"));
    h.insert(
        "x-amz-copy-source-if-match",
        HeaderValue::from_static("abc-2-s3seal"),
    );
    backend_conditions(&mut h, ETAG_CONDITIONS, true);
    assert_eq!(h["if-match"], "\"abc\", W/\"def\"");
    assert_eq!(h["if-none-match"], "*");
    // Only the conditions asked for: the copy source may be in another bucket.
    assert_eq!(h["x-amz-copy-source-if-match"], "abc-2-s3seal");
    backend_conditions(&mut h, SOURCE_ETAG_CONDITIONS, true);
    assert_eq!(h["x-amz-copy-source-if-match"], "\"abc-2\"");
    // Unquoted for writes (RGW 16 compares those with its unquoted ETag).
    let mut h = HeaderMap::new();
    h.insert("if-match", HeaderValue::from_static("\"abc-s3seal\""));
    backend_conditions(&mut h, ETAG_CONDITIONS, false);
    assert_eq!(h["if-match"], "abc");
    // An ETag without the mark is no object's in an encrypted bucket, even if it is the
    // backend's (which the client never sees): it must not match there.
    let mut h = HeaderMap::new();
    h.insert(
        "if-none-match",
        HeaderValue::from_static("\"abc\", \"-s3seal\""),
    );
    backend_conditions(&mut h, ETAG_CONDITIONS, false);
    assert_eq!(h["if-none-match"], format!("{NO_ETAG}, {NO_ETAG}"));
    // Every listing entry shows the marked ETag, whatever its size (a legacy object's too),
    // as HEAD does.
    let doc = br"<L><Contents><Key>e</Key><ETag>&quot;x&quot;</ETag><Size>24</Size></Contents><Contents><Key>p</Key><ETag>&quot;y&quot;</ETag><Size>5</Size></Contents></L>";
    let out =
        String::from_utf8(listing::rewrite_doc(doc, &listing::Kind::Objects).unwrap()).unwrap();
    assert!(
        out.contains("<ETag>&quot;x-s3seal&quot;</ETag><Size>1</Size>"),
        "{out}"
    );
    assert!(
        out.contains("<ETag>&quot;y-s3seal&quot;</ETag><Size>5</Size>"),
        "{out}"
    );
    let result = listing::Kind::Result { fallback: None };
    for copied in [
        br#"<CopyObjectResult><ETag>"z"</ETag></CopyObjectResult>"#.as_slice(),
        b"<CopyObjectResult><ETag>&quot;z&quot;</ETag></CopyObjectResult>",
        b"<CopyObjectResult><ETag>z</ETag></CopyObjectResult>",
    ] {
        let out = String::from_utf8(listing::rewrite_doc(copied, &result).unwrap()).unwrap();
        assert!(out.contains("<ETag>&quot;z-s3seal&quot;</ETag>"), "{out}");
    }
    // RGW 16 completes with an empty ETag: the object's (from HEAD) stands in.
    let done =
        b"<CompleteMultipartUploadResult><Key>k</Key><ETag></ETag></CompleteMultipartUploadResult>";
    let result = listing::Kind::Result {
        fallback: Some("\"y-2\""),
    };
    let out = String::from_utf8(listing::rewrite_doc(done, &result).unwrap()).unwrap();
    assert!(out.contains("<ETag>&quot;y-2-s3seal&quot;</ETag>"), "{out}");
}

#[test]
fn listings_count_only_what_they_show() {
    let doc = b"<ListBucketResult><KeyCount>3</KeyCount><Contents><Key>.s3seal/seal/abc</Key><Size>1</Size></Contents><Contents><Key>a</Key><Size>1</Size></Contents><CommonPrefixes><Prefix>.s3seal/</Prefix></CommonPrefixes></ListBucketResult>";
    let out =
        String::from_utf8(listing::rewrite_doc(doc, &listing::Kind::Objects).unwrap()).unwrap();
    assert_eq!(
        out,
        "<ListBucketResult><KeyCount>1</KeyCount><Contents><Key>a</Key><Size>1</Size></Contents></ListBucketResult>"
    );
    // A key is judged whole: one that has `.s3seal/` after an entity is the client's.
    let doc = b"<ListBucketResult><KeyCount>1</KeyCount><Contents><Key>a&amp;.s3seal/b</Key><Size>1</Size></Contents></ListBucketResult>";
    let out =
        String::from_utf8(listing::rewrite_doc(doc, &listing::Kind::Objects).unwrap()).unwrap();
    assert_eq!(
        out,
        "<ListBucketResult><KeyCount>1</KeyCount><Contents><Key>a&amp;.s3seal/b</Key><Size>1</Size></Contents></ListBucketResult>"
    );
}

#[test]
fn backend_etags_of_shown_ones() {
    assert_eq!(backend_etag("\"abc-s3seal\""), "\"abc\"");
    assert_eq!(backend_etag("abc-s3seal"), "\"abc\"");
    assert_eq!(backend_etag("\"abc\""), "\"abc\"");
}

#[test]
fn completion_documents_are_checked_as_s3_checks_them() {
    let parts = |doc: &str| multipart::completed_parts(doc.as_bytes());
    assert_eq!(
        parts("<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Part><ETag>\"a\"</ETag><PartNumber>2</PartNumber></Part><Part><PartNumber>1</PartNumber><ETag>b</ETag><ChecksumCRC32>x</ChecksumCRC32></Part></CompleteMultipartUpload>").unwrap(),
        [(2, "\"a\"".to_owned()), (1, "b".to_owned())]
    );
    // Entities are part of the text (the SDKs escape an ETag's quotes).
    assert_eq!(
        parts("<CompleteMultipartUpload><Part><PartNumber>3</PartNumber><ETag>&quot;c-d&quot;</ETag></Part></CompleteMultipartUpload>").unwrap(),
        [(3, "\"c-d\"".to_owned())]
    );
    for bad in [
        "",
        "<CompleteMultipartUpload/>",
        "<CompleteMultipartUpload></CompleteMultipartUpload>",
        "<Other><Part><PartNumber>1</PartNumber><ETag>a</ETag></Part></Other>",
        "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber></Part></CompleteMultipartUpload>",
        "<CompleteMultipartUpload><Part><ETag>a</ETag></Part></CompleteMultipartUpload>",
        "<CompleteMultipartUpload><Part><PartNumber>x</PartNumber><ETag>a</ETag></Part></CompleteMultipartUpload>",
        "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><PartNumber>2</PartNumber><ETag>a</ETag></Part></CompleteMultipartUpload>",
        "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>a</ETag>",
    ] {
        assert!(
            matches!(parts(bad), Err(CseError::CompletionXml)),
            "{bad}: {:?}",
            parts(bad)
        );
    }
}

#[test]
fn list_parts_shows_plaintext_sizes_and_the_etags_upload_part_showed() {
    let key = ObjectKey::derive(&DataKey::from_bytes([7; 32]), Salt([9; 32]));
    let one = PartNumber::multipart(1).unwrap();
    let mark = part_mark(&key, one, 65536);
    assert_eq!(mark.len(), "-0123456789abcdef-s3seal".len(), "{mark}");
    let doc = b"<ListPartsResult><UploadId>up</UploadId><Part><PartNumber>1</PartNumber><ETag>&quot;aa&quot;</ETag><Size>65559</Size></Part></ListPartsResult>";
    let kind = listing::Kind::Parts {
        token: "t",
        key: &key,
    };
    let out = listing::rewrite_doc(doc, &kind).unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        format!("<ListPartsResult><UploadId>up~s3seal~t</UploadId><Part><PartNumber>1</PartNumber><ETag>&quot;aa{mark}&quot;</ETag><Size>65536</Size></Part></ListPartsResult>")
    );
    // Another part number, size or upload: another tag, so a completion tells them apart.
    let two = PartNumber::multipart(2).unwrap();
    assert_ne!(mark, part_mark(&key, two, 65536));
    assert_ne!(mark, part_mark(&key, one, 65535));
    let other = ObjectKey::derive(&DataKey::from_bytes([7; 32]), Salt([8; 32]));
    assert_ne!(mark, part_mark(&other, one, 65536));
}

/// A verified S3EC read holds its plaintext once: the frame the body yields is what is sent.
#[tokio::test]
async fn a_verified_read_does_not_copy_its_one_frame() {
    let frame = Bytes::from(vec![7u8; 64 * 1024]);
    let at = frame.as_ptr();
    let whole = s3ec::verify_whole(body::full(frame)).await.unwrap();
    assert_eq!(whole.len(), 64 * 1024);
    assert_eq!(whole.as_ptr(), at);
}
