use super::*;

#[test]
fn listing_pages_give_keys_and_the_next_token() {
    let doc = br#"<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name><Prefix></Prefix><KeyCount>2</KeyCount><MaxKeys>2</MaxKeys><IsTruncated>true</IsTruncated><NextContinuationToken>1/abc=</NextContinuationToken><Contents><Key>a &amp; b.txt</Key><Size>3</Size></Contents><Contents><Key>dir/&lt;c&gt;</Key><Size>0</Size></Contents></ListBucketResult>"#;
    let (keys, token) = parse_listing(doc).unwrap();
    assert_eq!(
        keys,
        [("a & b.txt".to_owned(), 3), ("dir/<c>".to_owned(), 0)]
    );
    assert_eq!(token.as_deref(), Some("1/abc="));

    let last = br"<ListBucketResult><IsTruncated>false</IsTruncated><Contents><Key>z</Key></Contents></ListBucketResult>";
    assert_eq!(
        parse_listing(last).unwrap(),
        (vec![("z".to_owned(), 0)], None)
    );
    // A CommonPrefixes/Prefix or an Owner's fields are not keys.
    let other = br"<ListBucketResult><CommonPrefixes><Prefix>p/</Prefix></CommonPrefixes><Contents><Key>k</Key><Owner><ID>o</ID></Owner></Contents></ListBucketResult>";
    assert_eq!(parse_listing(other).unwrap().0, [("k".to_owned(), 0)]);
    assert!(parse_listing(b"<ListBucketResult><Contents><Key>&x;</Key>").is_err());
}
