//! The `Authorization` header parser: never panics, and whatever it accepts is well-formed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use s3seal::auth::sigv4::{parse_authorization, parse_signed_headers, Credential};

fuzz_target!(|data: &[u8]| {
    let Ok(value) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(parsed) = parse_authorization(value) else {
        return;
    };
    // Accepted SignedHeaders re-parse to a sorted, duplicate-free list of lowercase names.
    let names =
        parse_signed_headers(parsed.signed_headers).expect("accepted SignedHeaders re-parse");
    assert!(names.windows(2).all(|w| w[0] < w[1]));
    assert!(names
        .iter()
        .all(|n| !n.is_empty() && !n.bytes().any(|b| b.is_ascii_uppercase())));
    // The credential round-trips through its textual form.
    let c = &parsed.credential;
    let text = format!(
        "{}/{}/{}/{}/{}",
        c.access_key_id, c.date, c.region, c.service, c.terminator
    );
    assert_eq!(Credential::parse(&text).as_ref(), Some(c));
});
