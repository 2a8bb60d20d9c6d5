use super::*;

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
    assert_eq!(client_etag("&quot;abc-2&quot;"), "&quot;abc-2-s3seal&quot;");
    assert_eq!(client_etag("abc"), "abc-s3seal");
    let mut h = HeaderMap::new();
    h.insert(
        "if-match",
        HeaderValue::from_static("\"abc-s3seal\", \"def\""),
    );
    h.insert("if-none-match", HeaderValue::from_static("*"));
    h.insert(
        "x-amz-copy-source-if-match",
        HeaderValue::from_static("abc-2-s3seal"),
    );
    backend_etags(&mut h);
    assert_eq!(h["if-match"], "\"abc\", \"def\"");
    assert_eq!(h["if-none-match"], "*");
    assert_eq!(h["x-amz-copy-source-if-match"], "abc-2");
    // A listing entry shows the marked ETag only when its size is a ciphertext length.
    let doc = br"<L><Contents><Key>e</Key><ETag>&quot;x&quot;</ETag><Size>24</Size></Contents><Contents><Key>p</Key><ETag>&quot;y&quot;</ETag><Size>5</Size></Contents></L>";
    let out =
        String::from_utf8(listing::rewrite_doc(doc, &listing::Kind::Objects).unwrap()).unwrap();
    assert!(
        out.contains("<ETag>&quot;x-s3seal&quot;</ETag><Size>1</Size>"),
        "{out}"
    );
    assert!(
        out.contains("<ETag>&quot;y&quot;</ETag><Size>5</Size>"),
        "{out}"
    );
    let copied = br#"<CopyObjectResult><ETag>"z"</ETag></CopyObjectResult>"#;
    let out =
        String::from_utf8(listing::rewrite_doc(copied, &listing::Kind::Result).unwrap()).unwrap();
    assert!(out.contains(r#"<ETag>"z-s3seal"</ETag>"#), "{out}");
}

#[test]
fn completion_documents_get_the_backends_part_etags() {
    assert_eq!(backend_etag("\"abc-s3seal\""), "\"abc\"");
    assert_eq!(backend_etag("&quot;abc-s3seal&quot;"), "&quot;abc&quot;");
    assert_eq!(backend_etag("abc-s3seal"), "abc");
    assert_eq!(backend_etag("\"abc\""), "\"abc\"");
    let doc = b"<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>&quot;aa-s3seal&quot;</ETag></Part><Part><PartNumber>2</PartNumber><ETag>\"bb\"</ETag></Part></CompleteMultipartUpload>";
    let out = listing::rewrite_doc(doc, &listing::Kind::Completion).unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>&quot;aa&quot;</ETag></Part><Part><PartNumber>2</PartNumber><ETag>\"bb\"</ETag></Part></CompleteMultipartUpload>"
    );
}

#[test]
fn list_parts_shows_plaintext_sizes_and_marked_etags() {
    let doc = b"<ListPartsResult><UploadId>up</UploadId><Part><PartNumber>1</PartNumber><ETag>&quot;aa&quot;</ETag><Size>65559</Size></Part></ListPartsResult>";
    let out = listing::rewrite_doc(doc, &listing::Kind::Parts { token: "t" }).unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "<ListPartsResult><UploadId>up~s3seal~t</UploadId><Part><PartNumber>1</PartNumber><ETag>&quot;aa-s3seal&quot;</ETag><Size>65536</Size></Part></ListPartsResult>"
    );
}
