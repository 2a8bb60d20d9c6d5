//! The examples of AWS's "Signing and authenticating REST requests" (Signature Version 2),
//! with its example key.

use super::*;

const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            http::HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}

fn b64(sig: Signature) -> String {
    STANDARD.encode(sig)
}

#[test]
fn object_get() {
    let h = headers(&[("date", "Tue, 27 Mar 2007 19:36:42 +0000")]);
    let resource = canonical_resource(Some("awsexamplebucket1"), "/photos/puppy.jpg", "").unwrap();
    let sts = string_to_sign("GET", &h, date_line(&h), &resource);
    assert_eq!(
        sts,
        "GET\n\n\nTue, 27 Mar 2007 19:36:42 +0000\n/awsexamplebucket1/photos/puppy.jpg"
    );
    assert_eq!(b64(sign(SECRET, &sts)), "qgk2+6Sv9/oM7G3qLEjTH1a1l1g=");
}

#[test]
fn object_put() {
    let h = headers(&[
        ("date", "Tue, 27 Mar 2007 21:15:45 +0000"),
        ("content-type", "image/jpeg"),
        ("content-length", "94328"),
    ]);
    let resource = canonical_resource(Some("awsexamplebucket1"), "/photos/puppy.jpg", "").unwrap();
    let sts = string_to_sign("PUT", &h, date_line(&h), &resource);
    assert_eq!(
        sts,
        "PUT\n\nimage/jpeg\nTue, 27 Mar 2007 21:15:45 +0000\n/awsexamplebucket1/photos/puppy.jpg"
    );
    assert_eq!(b64(sign(SECRET, &sts)), "iqRzw+ileNPu1fhspnRs8nOjjIA=");
}

#[test]
fn list_and_acl_sign_only_sub_resources() {
    let h = headers(&[("date", "Tue, 27 Mar 2007 19:42:41 +0000")]);
    let resource = canonical_resource(
        Some("awsexamplebucket1"),
        "/",
        "prefix=photos&max-keys=50&marker=puppy",
    )
    .unwrap();
    assert_eq!(resource, "/awsexamplebucket1/");
    let sts = string_to_sign("GET", &h, date_line(&h), &resource);
    assert_eq!(b64(sign(SECRET, &sts)), "m0WP8eCtspQl5Ahe6L1SozdX9YA=");

    let h = headers(&[("date", "Tue, 27 Mar 2007 19:44:46 +0000")]);
    let resource = canonical_resource(Some("awsexamplebucket1"), "/", "acl").unwrap();
    assert_eq!(resource, "/awsexamplebucket1/?acl");
    let sts = string_to_sign("GET", &h, date_line(&h), &resource);
    assert_eq!(b64(sign(SECRET, &sts)), "82ZHiFIjc+WbcwFKGUVEQspPn+0=");
}

#[test]
fn amz_headers_are_folded_sorted_and_signed() {
    let h = headers(&[
        ("date", "Tue, 27 Mar 2007 21:06:08 +0000"),
        ("x-amz-acl", "public-read"),
        ("content-type", "application/x-download"),
        ("content-md5", "4gJE4saaMU4BqNR0kLY+lw=="),
        ("x-amz-meta-reviewedby", "joe@example.com"),
        ("x-amz-meta-reviewedby", "jane@example.com"),
        ("x-amz-meta-filechecksum", "0x02661779"),
        ("x-amz-meta-checksumalgorithm", "crc32"),
        ("content-disposition", "attachment; filename=database.dat"),
    ]);
    let resource = canonical_resource(Some("static.example.com"), "/db-backup.dat.gz", "").unwrap();
    let sts = string_to_sign("PUT", &h, date_line(&h), &resource);
    assert_eq!(
        sts,
        concat!(
            "PUT\n",
            "4gJE4saaMU4BqNR0kLY+lw==\n",
            "application/x-download\n",
            "Tue, 27 Mar 2007 21:06:08 +0000\n",
            "x-amz-acl:public-read\n",
            "x-amz-meta-checksumalgorithm:crc32\n",
            "x-amz-meta-filechecksum:0x02661779\n",
            "x-amz-meta-reviewedby:joe@example.com,jane@example.com\n",
            "/static.example.com/db-backup.dat.gz"
        )
    );
}

#[test]
fn x_amz_date_empties_the_date_line() {
    let h = headers(&[
        ("date", "Tue, 27 Mar 2007 21:20:27 +0000"),
        ("x-amz-date", "Tue, 27 Mar 2007 21:20:26 +0000"),
    ]);
    assert_eq!(date_line(&h), "");
    let sts = string_to_sign(
        "DELETE",
        &h,
        date_line(&h),
        "/awsexamplebucket1/photos/puppy.jpg",
    );
    assert_eq!(
        sts,
        "DELETE\n\n\n\nx-amz-date:Tue, 27 Mar 2007 21:20:26 +0000\n/awsexamplebucket1/photos/puppy.jpg"
    );
}

#[test]
fn query_authentication_signs_expires() {
    let resource = canonical_resource(Some("awsexamplebucket1"), "/photos/puppy.jpg", "").unwrap();
    let sts = string_to_sign("GET", &HeaderMap::new(), "1175139620", &resource);
    // The header form's string with Expires in place of the date, signed the same way (the
    // e2e tests check botocore's presigned URLs against it).
    assert_eq!(
        sts,
        "GET\n\n\n1175139620\n/awsexamplebucket1/photos/puppy.jpg"
    );
}

#[test]
fn sub_resources_are_sorted_with_decoded_values() {
    let resource = canonical_resource(
        None,
        "/b/k%20x",
        "uploadId=a%2Fb&partNumber=2&response-content-type=text%2Fplain&x-id=UploadPart",
    )
    .unwrap();
    assert_eq!(
        resource,
        "/b/k%20x?partNumber=2&response-content-type=text/plain&uploadId=a/b"
    );
    assert_eq!(
        canonical_resource(None, "/b", "delete").unwrap(),
        "/b?delete"
    );
}

#[test]
fn authorization_headers() {
    let (key, sig) =
        parse_authorization("AWS AKIAIOSFODNN7EXAMPLE:qgk2+6Sv9/oM7G3qLEjTH1a1l1g=").unwrap();
    assert_eq!(key, "AKIAIOSFODNN7EXAMPLE");
    assert_eq!(
        b64(decode_signature(sig).unwrap()),
        "qgk2+6Sv9/oM7G3qLEjTH1a1l1g="
    );
    for bad in [
        "AWS AKIAIOSFODNN7EXAMPLE",
        "AWS :qgk2+6Sv9/oM7G3qLEjTH1a1l1g=",
        "AWS4-HMAC-SHA256 Credential=x",
        "AWSAKIA:qgk2+6Sv9/oM7G3qLEjTH1a1l1g=",
    ] {
        assert_eq!(parse_authorization(bad), None, "{bad}");
    }
    for bad in ["notbase64!", "AAAA", ""] {
        assert_eq!(decode_signature(bad), None, "{bad}");
    }
}
