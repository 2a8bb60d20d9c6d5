//! A second reader of single-part objects and version 2 seals, written only from
//! `docs/format.md` with RustCrypto (`aes-gcm`, `hmac`, `sha2`) and no code from
//! `crypto::format`. If it decrypts what `EncryptBody` writes and reads the seals the proxy
//! writes, the format is what the document says.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = <HmacSha256 as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// RFC 5869 HKDF-SHA256 for a 32-byte output: `PRK = HMAC(salt, IKM)`,
/// `OKM = T(1) = HMAC(PRK, info || 0x01)`.
pub fn hkdf_32(salt: &[u8], ikm: &[u8], info: &[&[u8]]) -> [u8; 32] {
    let prk = hmac(salt, &[ikm]);
    let mut parts = info.to_vec();
    parts.push(&[1]);
    hmac(&prk, &parts)
}

/// §3: `nonce_i = prefix || u32be(i) || final_i`, empty associated data.
pub fn open_chunk(
    part_key: &[u8; 32],
    index: u32,
    is_final: bool,
    chunk: &[u8],
) -> Option<Vec<u8>> {
    if chunk.len() < 7 + 16 {
        return None;
    }
    let (prefix, sealed) = chunk.split_at(7);
    let mut nonce = prefix.to_vec();
    nonce.extend_from_slice(&index.to_be_bytes());
    nonce.push(u8::from(is_final));
    Aes256Gcm::new(part_key.into())
        .decrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: sealed,
                aad: b"",
            },
        )
        .ok()
}

/// §5.1: the version 1 commitment and part key 0 of a single-part object.
pub fn object_keys(dek: &[u8], salt: &[u8]) -> ([u8; 32], [u8; 32]) {
    let commitment = hkdf_32(salt, dek, &[b"s3seal/v1/commitment"]);
    let part_key = hkdf_32(salt, dek, &[b"s3seal/v1/part", &0u32.to_be_bytes()]);
    (commitment, part_key)
}

/// `u32be(len(x)) || x` for each of `fields`.
fn length_prefixed(fields: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    for f in fields {
        out.extend_from_slice(&u32::try_from(f.len()).unwrap().to_be_bytes());
        out.extend_from_slice(f.as_bytes());
    }
    out
}

/// §5.1: the version 2 commitment of the object at `bucket`/`key`.
pub fn commitment_v2(dek: &[u8], salt: &[u8], bucket: &str, key: &str) -> [u8; 32] {
    let place = length_prefixed(&[bucket, key]);
    hkdf_32(salt, dek, &[b"s3seal/v2/commitment", &place])
}

/// §7: the parts `(number, plaintext length)` of a version 2 seal, after its tag verified.
pub fn read_seal_v2(dek: &[u8], salt: &[u8], seal: &[u8]) -> Result<Vec<(u32, u64)>, String> {
    let seal_key = hkdf_32(salt, dek, &[b"s3seal/v1/seal"]);
    let (body, tag) = seal.split_at(seal.len().checked_sub(32).ok_or("short seal")?);
    if hmac(&seal_key, &[b"s3seal-seal-2", body]).as_slice() != tag {
        return Err("seal tag".into());
    }
    let runs = usize::from(u16::from_be_bytes([body[0], body[1]]));
    let mut parts = Vec::new();
    for run in body[2..].chunks(12).take(runs) {
        let first = u32::from(u16::from_be_bytes([run[0], run[1]]));
        let count = u32::from(u16::from_be_bytes([run[2], run[3]]));
        let len = u64::from_be_bytes(run[4..12].try_into().unwrap());
        parts.extend((first..first + count).map(|n| (n, len)));
    }
    Ok(parts)
}

/// Decrypts a whole version 2 single-part object stored at `bucket`/`key` from its §6
/// metadata, a local keyring (key id → KEK) and the stored bytes.
pub fn decrypt_single(
    metadata: &http::HeaderMap,
    keyring: &[(&str, [u8; 32])],
    (bucket, key): (&str, &str),
    stored: &[u8],
) -> Result<Vec<u8>, String> {
    let get = |name: &str| -> Result<&str, String> {
        metadata
            .get(format!("x-amz-meta-s3seal-{name}"))
            .ok_or(format!("missing {name}"))?
            .to_str()
            .map_err(|e| e.to_string())
    };
    let b64 = |name: &str| STANDARD.decode(get(name)?).map_err(|e| e.to_string());
    if get("v")? != "2" || get("layout")? != "single" {
        return Err("not a version 2 single-part object".into());
    }
    let kid = get("kid")?;
    let kek = keyring
        .iter()
        .find(|(id, _)| *id == kid)
        .ok_or("unknown key id")?
        .1;

    // §5.2: nonce (12) || AES-GCM(KEK, nonce, DEK, aad) || tag, with
    // aad = "s3seal/v2/wrap" || lp(key_id) || lp(bucket) || lp(key).
    let wrapped = b64("dek")?;
    let aad = [
        b"s3seal/v2/wrap".as_slice(),
        &length_prefixed(&[kid, bucket, key]),
    ]
    .concat();
    let dek = Aes256Gcm::new((&kek).into())
        .decrypt(
            Nonce::from_slice(&wrapped[..12]),
            Payload {
                msg: &wrapped[12..],
                aad: &aad,
            },
        )
        .map_err(|_| "unwrap failed")?;

    // §5.1: check the commitment, which names the place, before any chunk.
    let salt = b64("salt")?;
    let (_, part_key) = object_keys(&dek, &salt);
    if commitment_v2(&dek, &salt, bucket, key).as_slice() != b64("commit")?.as_slice() {
        return Err("commitment mismatch".into());
    }

    // §3: chunks of 65559 stored bytes; the last one, possibly shorter, is final.
    let chunks: Vec<&[u8]> = if stored.is_empty() {
        vec![stored]
    } else {
        stored.chunks(65559).collect()
    };
    let mut plaintext = Vec::new();
    for (i, chunk) in chunks.iter().enumerate() {
        let index = u32::try_from(i).map_err(|e| e.to_string())?;
        let is_final = i + 1 == chunks.len();
        let plain = open_chunk(&part_key, index, is_final, chunk).ok_or(format!("chunk {i}"))?;
        if !is_final && plain.len() != 65536 {
            return Err(format!("short chunk {i}"));
        }
        plaintext.extend_from_slice(&plain);
    }
    Ok(plaintext)
}
