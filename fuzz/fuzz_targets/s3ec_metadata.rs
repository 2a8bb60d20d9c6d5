//! The S3 Encryption Client's metadata and instruction files: never panic, and a record they
//! accept writes (as format 3) and reads back to itself.
#![no_main]

use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use s3seal::crypto::s3ec::{self, Content, Found, Metadata};

fuzz_target!(|data: &[u8]| {
    // First half: `name=value` lines as object metadata; second half: an instruction file.
    let (meta, file) = data.split_at(data.len() / 2);
    let mut h = HeaderMap::new();
    for line in meta.split(|b| *b == b'\n') {
        let Some(eq) = line.iter().position(|b| *b == b'=') else {
            continue;
        };
        let name = format!("x-amz-meta-{}", String::from_utf8_lossy(&line[..eq]));
        if let (Ok(n), Ok(v)) = (
            HeaderName::try_from(name),
            HeaderValue::from_bytes(&line[eq + 1..]),
        ) {
            h.append(n, v);
        }
    }
    let object = Metadata::from_headers(&h);
    let record = match s3ec::detect(&object) {
        Ok(Found::Record(r)) => r,
        Ok(Found::InstructionFile) => {
            let Ok(file) = Metadata::from_instruction_file(file) else {
                return;
            };
            let Ok(r) = s3ec::with_instruction_file(&object, &file) else {
                return;
            };
            r
        }
        Ok(Found::None) | Err(_) => return,
    };
    if let Content::V3 { .. } = record.content {
        let mut out = HeaderMap::new();
        if record.write_headers(&mut out).is_ok() {
            let again = s3ec::detect(&Metadata::from_headers(&out));
            assert_eq!(again, Ok(Found::Record(record)));
        }
    }
});
