//! Offline recovery (`s3seal decrypt`): a stored object, its metadata and the key-encryption
//! keys in, plaintext out, without a proxy or a backend. Reads one chunk at a time and releases
//! each only after its tag verifies, like the proxy (`docs/format.md` §3, §7).

use std::io::{self, Read, Write};

use bytes::BytesMut;
use http::HeaderMap;

use super::format::{
    plaintext_len, FormatError, Kek, Layout, ObjectMetadata, PartNumber, Place, Seal,
    SegmentPrefix, Version, CHUNK_OVERHEAD, CHUNK_SIZE,
};

#[derive(Debug, thiserror::Error)]
pub enum OfflineError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("{0}")]
    Format(#[from] FormatError),
    #[error("the metadata has no s3seal record: the object is not encrypted by s3seal")]
    Unencrypted,
    #[error("no key with id '{0}' was given")]
    UnknownKey(String),
    #[error(
        "a version 1 multipart object needs its seal, the object {0} in its bucket: give --config \
         (and --bucket) to fetch it from the upstream, or --seal with a copy of it"
    )]
    NeedSeal(String),
    #[error("the record has no seal: its upload was never completed through s3seal")]
    NoSeal,
    #[error("a version 2 object opens only at its place: give its bucket and key")]
    NeedPlace,
    #[error("the object has {stored} bytes, which does not match its record ({expected})")]
    Length { stored: u64, expected: String },
    #[error("chunk {index} of part {part} is not authentic")]
    Chunk { part: u32, index: u64 },
    #[error("the object continues past its last chunk")]
    TrailingData,
}

/// Decrypts the `stored_len` bytes of `input` to `output`; returns the plaintext length.
/// `place` is where the object was stored (needed for version 2 records, which are bound to
/// it); `seal` is a version 1 multipart object's seal object (version 2 keeps it in the record).
pub fn decrypt_object<R: Read, W: Write>(
    metadata: &HeaderMap,
    keks: &[Kek],
    place: Option<Place<'_>>,
    seal: Option<&[u8]>,
    stored_len: u64,
    mut input: R,
    mut output: W,
) -> Result<u64, OfflineError> {
    let meta = ObjectMetadata::from_headers(metadata)?.ok_or(OfflineError::Unencrypted)?;
    let kek = keks
        .iter()
        .find(|k| k.id() == &meta.key_id)
        .ok_or_else(|| OfflineError::UnknownKey(meta.key_id.as_str().to_owned()))?;
    // A version 1 record is bound to no place: any place opens it.
    let place = match (meta.version, place) {
        (_, Some(place)) => place,
        (Version::V1, None) => Place {
            bucket: "",
            key: "",
        },
        (Version::V2, None) => return Err(OfflineError::NeedPlace),
    };
    let dek = kek.unwrap(&meta.wrapped_dek, meta.binding(place))?;
    let key = meta.open(&dek, place)?;
    let parts = match meta.layout {
        Layout::Single => {
            let len = plaintext_len(stored_len).ok_or_else(|| OfflineError::Length {
                stored: stored_len,
                expected: "a ciphertext length".into(),
            })?;
            vec![(PartNumber::SINGLE, len)]
        }
        Layout::Multipart => {
            let seal = match meta.version {
                Version::V1 => {
                    let seal =
                        seal.ok_or_else(|| OfflineError::NeedSeal(meta.salt.v1_seal_name()))?;
                    Seal::decode(seal, &key)?
                }
                Version::V2 => meta.seal(&key)?.ok_or(OfflineError::NoSeal)?,
            };
            if seal.ciphertext_len() != stored_len {
                return Err(OfflineError::Length {
                    stored: stored_len,
                    expected: format!("{} bytes of sealed parts", seal.ciphertext_len()),
                });
            }
            seal.parts().to_vec()
        }
    };
    let mut buf = BytesMut::new();
    let mut written = 0;
    for (part, len) in parts {
        let part_key = key.part_key(part);
        let chunks = len.div_ceil(CHUNK_SIZE as u64).max(1);
        let mut first: Option<SegmentPrefix> = None;
        for index in 0..chunks {
            let plain = (len - index * CHUNK_SIZE as u64).min(CHUNK_SIZE as u64);
            let size = usize::try_from(plain).expect("at most CHUNK_SIZE") + CHUNK_OVERHEAD;
            buf.resize(size, 0);
            input.read_exact(&mut buf)?;
            let is_final = index + 1 == chunks;
            let refused = OfflineError::Chunk {
                part: part.get(),
                index,
            };
            let position = u32::try_from(index).map_err(|_| FormatError::TooLarge(len))?;
            let (prefix, plaintext) = part_key
                .open_chunk(position, is_final, buf.split())
                .ok_or(refused)?;
            if first.get_or_insert(prefix) != &prefix {
                return Err(OfflineError::Chunk {
                    part: part.get(),
                    index,
                });
            }
            output.write_all(&plaintext)?;
            written += plaintext.len() as u64;
        }
    }
    if input.read(&mut [0; 1])? != 0 {
        return Err(OfflineError::TrailingData);
    }
    output.flush()?;
    Ok(written)
}

/// The object that holds the seal of a version 1 multipart object, in the object's bucket
/// (`docs/format.md` §7.2); `None` for other objects, which need no seal or carry theirs.
pub fn v1_seal_name(metadata: &HeaderMap) -> Result<Option<String>, OfflineError> {
    let meta = ObjectMetadata::from_headers(metadata)?.ok_or(OfflineError::Unencrypted)?;
    Ok(
        (meta.version == Version::V1 && meta.layout == Layout::Multipart)
            .then(|| meta.salt.v1_seal_name()),
    )
}

/// Reads object metadata as saved from the backend: the JSON of `aws s3api head-object`
/// (its `Metadata`), a flat JSON object of metadata, or `name: value` header lines (as
/// `curl -D` writes them). Names may carry the `x-amz-meta-` prefix or not.
pub fn parse_metadata(text: &str) -> Result<HeaderMap, FormatError> {
    let bad = |what: String| FormatError::InvalidField(format!("metadata file: {what}"));
    let mut pairs = Vec::new();
    if text.trim_start().starts_with('{') {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
        let map = value
            .get("Metadata")
            .unwrap_or(&value)
            .as_object()
            .ok_or_else(|| bad("not a JSON object".into()))?;
        for (k, v) in map {
            if let Some(v) = v.as_str() {
                pairs.push((k.clone(), v.to_owned()));
            }
        }
    } else {
        for line in text.lines() {
            if let Some((k, v)) = line.split_once(':') {
                pairs.push((k.trim().to_owned(), v.trim().to_owned()));
            }
        }
    }
    let mut headers = HeaderMap::new();
    for (k, v) in pairs {
        let lower = k.to_ascii_lowercase();
        let name = if lower.starts_with("x-amz-meta-") {
            lower
        } else {
            format!("x-amz-meta-{lower}")
        };
        if !name.starts_with(super::format::META_PREFIX) {
            continue;
        }
        let name = http::HeaderName::try_from(name).map_err(|e| bad(e.to_string()))?;
        let value = http::HeaderValue::try_from(v).map_err(|e| bad(e.to_string()))?;
        headers.append(name, value);
    }
    Ok(headers)
}
