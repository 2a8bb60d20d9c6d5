//! The s3seal object format (`docs/format.md`), versions 1 and 2, as pure functions: constants,
//! length and range math, key derivation, chunk sealing, metadata, the multipart seal, the upload
//! token and the local DEK wrap. No I/O, and nothing else from the crate. Writers write version 2;
//! readers read both.
//!
//! Every const marked FROZEN is part of what is stored: changing it breaks every stored object.

use std::fmt;
use std::ops::Range;

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use aws_lc_rs::hkdf::{self, HKDF_SHA256};
use aws_lc_rs::hmac;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use bytes::{BufMut as _, Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

// === Constants (docs/format.md §2) ===

/// Plaintext bytes per chunk; only a segment's final chunk may be shorter.
/// FROZEN: changing this breaks every stored object.
pub const CHUNK_SIZE: usize = 64 * 1024;
/// Random nonce prefix stored at the start of every chunk. FROZEN: changing this breaks every stored object.
pub const PREFIX_LEN: usize = 7;
/// AES-GCM tag at the end of every chunk. FROZEN: changing this breaks every stored object.
pub const TAG_LEN: usize = 16;
/// Stored bytes per chunk beyond its plaintext.
pub const CHUNK_OVERHEAD: usize = PREFIX_LEN + TAG_LEN;
/// Stored size of a full chunk.
pub const CIPHER_CHUNK_SIZE: usize = CHUNK_SIZE + CHUNK_OVERHEAD;
/// Most chunks in one segment: the nonce counter is a `u32`.
pub const MAX_CHUNKS: u64 = 1 << 32;
/// Longest plaintext of one segment (256 TiB), far above S3's 5 TiB object limit.
pub const MAX_SEGMENT_LEN: u64 = MAX_CHUNKS * CHUNK_SIZE as u64;
/// AES-256 keys: DEK, KEK and part keys.
pub const KEY_LEN: usize = 32;
/// Per-object random salt. FROZEN: changing this breaks every stored object.
pub const SALT_LEN: usize = 32;
/// Key commitment. FROZEN: changing this breaks every stored object.
pub const COMMITMENT_LEN: usize = 32;
/// Highest S3 part number (part key 0 is the single-part object).
pub const MAX_PART_NUMBER: u32 = 10_000;
/// Longest key id. KMS key ARNs are about 80 characters.
pub const MAX_KEY_ID_LEN: usize = 256;
/// Longest wrapped DEK: a local wrap is 60 bytes, an AWS KMS `CiphertextBlob` for a 256-bit key
/// about 184.
pub const MAX_WRAPPED_DEK_LEN: usize = 512;
/// Length of a DEK wrapped by a local KEK: nonce, encrypted DEK, tag.
pub const LOCAL_WRAPPED_DEK_LEN: usize = NONCE_LEN + KEY_LEN + TAG_LEN;

// HKDF and wrap labels (§1, §5). FROZEN: changing these breaks every stored object.
const LABEL_COMMITMENT: &[u8] = b"s3seal/v1/commitment";
const LABEL_PART: &[u8] = b"s3seal/v1/part";
const LABEL_WRAP: &[u8] = b"s3seal/v1/wrap";
const LABEL_SEAL: &[u8] = b"s3seal/v1/seal";
// Version 2 (§5.1, §5.2, §7.3): the record is bound to the object's place.
const LABEL_COMMITMENT_V2: &[u8] = b"s3seal/v2/commitment";
const LABEL_WRAP_V2: &[u8] = b"s3seal/v2/wrap";
const LABEL_UPLOAD_V2: &[u8] = b"s3seal/v2/upload";
/// The first bytes of a version 1 seal object (§7).
const SEAL_MAGIC: &[u8] = b"s3seal-seal-1";
/// What a version 2 seal's tag authenticates starts with; not stored (§7).
const SEAL_MAGIC_V2: &[u8] = b"s3seal-seal-2";
/// What an upload token's tag authenticates starts with (§7.3).
const UPLOAD_MAGIC_V2: &[u8] = b"s3seal-upload-2";
/// The first byte of a version 2 upload token.
const UPLOAD_TOKEN_V2: u8 = 2;
/// Bytes of the tag in an upload token.
pub const UPLOAD_TAG_LEN: usize = 16;
/// What the tag of a part `ETag` authenticates starts with: apart from a seal's body, which
/// is authenticated under the same key.
const PART_ETAG_MAGIC: &[u8] = b"s3seal-part-etag-1";
/// Bytes of the tag in the part `ETag`s the proxy shows (`docs/format.md` §6.1).
pub const PART_ETAG_TAG_LEN: usize = 8;
/// Bytes per part in a seal: part number and plaintext length.
const SEAL_ENTRY_LEN: usize = 4 + 8;
/// HMAC-SHA256 at the end of a seal.
const SEAL_TAG_LEN: usize = 32;
/// Longest seal: every part number used.
pub const MAX_SEAL_LEN: usize =
    SEAL_MAGIC.len() + 4 + MAX_PART_NUMBER as usize * SEAL_ENTRY_LEN + SEAL_TAG_LEN;
/// Bytes per run in a version 2 seal: first part number, count, plaintext length of each.
const SEAL_RUN_LEN: usize = 2 + 2 + 8;

/// Metadata header names (§6). FROZEN: changing these breaks every stored object.
pub const META_PREFIX: &str = "x-amz-meta-s3seal-";
pub const META_VERSION: HeaderName = HeaderName::from_static("x-amz-meta-s3seal-v");
pub const META_LAYOUT: HeaderName = HeaderName::from_static("x-amz-meta-s3seal-layout");
pub const META_KEY_ID: HeaderName = HeaderName::from_static("x-amz-meta-s3seal-kid");
pub const META_WRAPPED_DEK: HeaderName = HeaderName::from_static("x-amz-meta-s3seal-dek");
pub const META_SALT: HeaderName = HeaderName::from_static("x-amz-meta-s3seal-salt");
pub const META_COMMITMENT: HeaderName = HeaderName::from_static("x-amz-meta-s3seal-commit");
/// Version 2 only: a completed multipart object's seal (§7).
pub const META_SEAL: HeaderName = HeaderName::from_static("x-amz-meta-s3seal-seal");

/// Why metadata or keys were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    #[error("unsupported s3seal format version {0:?}")]
    UnsupportedVersion(String),
    #[error("s3seal metadata lacks {0}")]
    MissingField(String),
    #[error("invalid s3seal metadata {0}")]
    InvalidField(String),
    #[error("the data key does not unwrap: wrong key-encryption key, wrong key id, or tampered metadata")]
    Unwrap,
    #[error("the key commitment does not match: wrong data key, or tampered salt or commitment")]
    CommitmentMismatch,
    #[error("a plaintext of {0} bytes exceeds the segment limit of {MAX_SEGMENT_LEN} bytes")]
    TooLarge(u64),
    #[error("the multipart seal is not authentic: tampered, or written for another object")]
    SealMismatch,
    #[error("the upload id was not made by s3seal for this upload of this object")]
    UploadToken,
}

/// Why the text of a key-encryption key is not one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyTextError {
    #[error("is not base64")]
    NotBase64,
    #[error("must decode to {KEY_LEN} bytes")]
    Length,
}

// === Lengths and ranges (§4) ===

/// Number of chunks in a segment of `plain_len` bytes: an empty segment has one empty chunk.
fn chunk_count(plain_len: u64) -> u64 {
    plain_len.div_ceil(CHUNK_SIZE as u64).max(1)
}

/// Stored length of a segment holding `plain_len` bytes; `None` above [`MAX_SEGMENT_LEN`].
pub fn ciphertext_len(plain_len: u64) -> Option<u64> {
    (plain_len <= MAX_SEGMENT_LEN)
        .then(|| plain_len + CHUNK_OVERHEAD as u64 * chunk_count(plain_len))
}

/// Plaintext length of a segment stored in `cipher_len` bytes; `None` if no segment has that length.
pub fn plaintext_len(cipher_len: u64) -> Option<u64> {
    let (full, rest) = (
        cipher_len / CIPHER_CHUNK_SIZE as u64,
        cipher_len % CIPHER_CHUNK_SIZE as u64,
    );
    let overhead = CHUNK_OVERHEAD as u64;
    let plain = match rest {
        0 if full >= 1 => full * CHUNK_SIZE as u64,
        r if r == overhead && full == 0 => 0,
        r if r > overhead => full * CHUNK_SIZE as u64 + r - overhead,
        _ => return None,
    };
    (plain <= MAX_SEGMENT_LEN).then_some(plain)
}

/// What to fetch and decrypt to serve a plaintext range of one segment: the ciphertext bytes
/// `cipher_start..cipher_end` hold chunks `first_chunk..`, of which `skip_in_first_chunk`
/// plaintext bytes are dropped and `plain_len` bytes are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CipherRange {
    cipher: Range<u64>,
    first_chunk: u32,
    final_chunk: u32,
    skip: usize,
    plain_len: u64,
}

impl CipherRange {
    /// The whole segment, including the single empty chunk of an empty one.
    pub fn whole(total_plain_len: u64) -> Option<Self> {
        Some(CipherRange {
            cipher: 0..ciphertext_len(total_plain_len)?,
            first_chunk: 0,
            final_chunk: final_chunk_index(total_plain_len),
            skip: 0,
            plain_len: total_plain_len,
        })
    }

    pub fn cipher_start(&self) -> u64 {
        self.cipher.start
    }

    /// Exclusive.
    pub fn cipher_end(&self) -> u64 {
        self.cipher.end
    }

    pub fn skip_in_first_chunk(&self) -> usize {
        self.skip
    }

    /// Plaintext bytes the range yields.
    pub fn plain_len(&self) -> u64 {
        self.plain_len
    }

    /// Index of the first fetched chunk.
    pub fn first_chunk(&self) -> u32 {
        self.first_chunk
    }

    /// Index of the segment's final chunk, the one sealed with `final = 1`.
    pub fn final_chunk(&self) -> u32 {
        self.final_chunk
    }

    /// The `Range` header value for the upstream GET (HTTP ranges are inclusive).
    pub fn http_range(&self) -> String {
        format!("bytes={}-{}", self.cipher.start, self.cipher.end - 1)
    }
}

/// Index of the final chunk of a segment of `plain_len <= MAX_SEGMENT_LEN` bytes.
fn final_chunk_index(plain_len: u64) -> u32 {
    u32::try_from(chunk_count(plain_len) - 1).expect("MAX_SEGMENT_LEN bounds the chunk count")
}

/// Maps the plaintext range `plain` of a segment of `total_plain_len` bytes to the chunks that hold
/// it. `None` if the range is empty or not inside the segment (the caller answers 416).
pub fn ciphertext_range_for(plain: Range<u64>, total_plain_len: u64) -> Option<CipherRange> {
    let total_cipher = ciphertext_len(total_plain_len)?;
    if plain.start >= plain.end || plain.end > total_plain_len {
        return None;
    }
    let chunk = CHUNK_SIZE as u64;
    let first = plain.start / chunk;
    let last = (plain.end - 1) / chunk;
    Some(CipherRange {
        cipher: first * CIPHER_CHUNK_SIZE as u64
            ..((last + 1) * CIPHER_CHUNK_SIZE as u64).min(total_cipher),
        first_chunk: u32::try_from(first).expect("MAX_SEGMENT_LEN bounds the chunk index"),
        final_chunk: final_chunk_index(total_plain_len),
        skip: usize::try_from(plain.start % chunk).expect("below CHUNK_SIZE"),
        plain_len: plain.end - plain.start,
    })
}

// === Versions and places (§1, §6) ===

/// The version of an object's record, `x-amz-meta-s3seal-v`. FROZEN: each version's meaning
/// never changes once objects exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// Records not bound to their place; multipart seals in `.s3seal/seal/` objects.
    V1,
    /// Records bound to their bucket and key; multipart seals in the record.
    V2,
}

impl Version {
    fn as_str(self) -> &'static str {
        match self {
            Version::V1 => "1",
            Version::V2 => "2",
        }
    }
}

/// Where an object lives. A version 2 record opens only there (§5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Place<'a> {
    pub bucket: &'a str,
    pub key: &'a str,
}

impl Place<'_> {
    /// `label || u32be(len(bucket)) || bucket || u32be(len(key)) || key`: lengths first, so
    /// no two places give the same bytes.
    fn bound(&self, label: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(label.len() + 8 + self.bucket.len() + self.key.len());
        out.extend_from_slice(label);
        for field in [self.bucket, self.key] {
            let len = u32::try_from(field.len()).expect("S3 names are at most 1024 bytes");
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(field.as_bytes());
        }
        out
    }
}

/// What a wrapped DEK is bound to: its key id (version 1), and its place (version 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Binding<'a> {
    V1,
    V2(Place<'a>),
}

impl<'a> Binding<'a> {
    /// The binding of a record of `version` at `place`.
    pub fn of(version: Version, place: Place<'a>) -> Self {
        match version {
            Version::V1 => Binding::V1,
            Version::V2 => Binding::V2(place),
        }
    }

    /// The bucket a KMS encryption context names: none in version 1 (§5.3).
    pub fn bucket(&self) -> Option<&'a str> {
        match self {
            Binding::V1 => None,
            Binding::V2(place) => Some(place.bucket),
        }
    }
}

// === Keys (§1, §5.1) ===

/// The per-object data key. Zeroized on drop, redacted in `Debug`.
pub struct DataKey(Zeroizing<[u8; KEY_LEN]>);

impl DataKey {
    /// A fresh random key.
    pub fn generate() -> Self {
        let mut key = Zeroizing::new([0; KEY_LEN]);
        fill_random(&mut key[..]);
        DataKey(key)
    }

    /// A key from elsewhere, e.g. the plaintext of a KMS `GenerateDataKey` answer.
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        DataKey(Zeroizing::new(bytes))
    }

    /// The key itself, for a KMS `Encrypt` that rewraps it (§5.4).
    pub fn expose(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey(<redacted>)")
    }
}

/// The per-object random salt; public.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Salt(pub [u8; SALT_LEN]);

impl Salt {
    pub fn generate() -> Self {
        let mut salt = [0; SALT_LEN];
        fill_random(&mut salt);
        Salt(salt)
    }

    /// Where a version 1 multipart object keeps its seal, in the object's bucket:
    /// `.s3seal/seal/<base64url(salt)>` (§7.2).
    pub fn v1_seal_name(&self) -> String {
        format!(".s3seal/seal/{}", URL_SAFE_NO_PAD.encode(self.0))
    }
}

/// The key commitment stored in metadata; public.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Commitment(pub [u8; COMMITMENT_LEN]);

/// Which part key a segment uses: 0 for a single-part object, else the S3 part number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartNumber(u32);

impl PartNumber {
    /// The body of a PutObject.
    pub const SINGLE: PartNumber = PartNumber(0);

    /// An UploadPart's part number, 1..=10000.
    pub fn multipart(number: u32) -> Option<Self> {
        (1..=MAX_PART_NUMBER)
            .contains(&number)
            .then_some(PartNumber(number))
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

/// The keys of one object: `PRK = HKDF-Extract(salt, DEK)`.
pub struct ObjectKey {
    prk: hkdf::Prk,
    salt: Salt,
}

impl ObjectKey {
    /// Derives the keys of an object. Writers pass a fresh salt; readers go through
    /// [`ObjectMetadata::open`], which also checks the commitment.
    pub fn derive(dek: &DataKey, salt: Salt) -> Self {
        let prk = hkdf::Salt::new(HKDF_SHA256, &salt.0).extract(&dek.0[..]);
        ObjectKey { prk, salt }
    }

    /// Version 1: `HKDF-Expand(PRK, "s3seal/v1/commitment", 32)`. Version 2:
    /// `HKDF-Expand(PRK, "s3seal/v2/commitment" || u32be(len(bucket)) || bucket ||
    /// u32be(len(key)) || key, 32)`, so a record moved to another place does not open.
    pub fn commitment(&self, binding: Binding<'_>) -> Commitment {
        let info = match binding {
            Binding::V1 => LABEL_COMMITMENT.to_vec(),
            Binding::V2(place) => place.bound(LABEL_COMMITMENT_V2),
        };
        let mut out = [0; COMMITMENT_LEN];
        self.prk
            .expand(&[&info], HkdfLen(COMMITMENT_LEN))
            .and_then(|okm| okm.fill(&mut out))
            .expect("32 bytes is within HKDF-SHA256's output limit");
        Commitment(out)
    }

    /// The tag of an upload token (§7.3): the first 16 bytes of `HMAC-SHA256(upload key,
    /// "s3seal-upload-2" || u32be(len(id)) || id || u32be(len(bucket)) || bucket ||
    /// u32be(len(key)) || key)`, with `upload key = HKDF-Expand(PRK, "s3seal/v2/upload", 32)`
    /// and `id` the backend's upload id.
    fn upload_tag(&self, backend_id: &str, place: Place<'_>) -> [u8; UPLOAD_TAG_LEN] {
        let mut key = Zeroizing::new([0; KEY_LEN]);
        self.prk
            .expand(&[LABEL_UPLOAD_V2], HkdfLen(KEY_LEN))
            .and_then(|okm| okm.fill(&mut key[..]))
            .expect("32 bytes is within HKDF-SHA256's output limit");
        let id_len = u32::try_from(backend_id.len()).unwrap_or(u32::MAX);
        let mut msg = UPLOAD_MAGIC_V2.to_vec();
        msg.extend_from_slice(&id_len.to_be_bytes());
        msg.extend_from_slice(backend_id.as_bytes());
        msg.extend_from_slice(&place.bound(b"")[..]);
        let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &key[..]), &msg);
        let mut out = [0; UPLOAD_TAG_LEN];
        out.copy_from_slice(&tag.as_ref()[..UPLOAD_TAG_LEN]);
        out
    }

    pub fn salt(&self) -> Salt {
        self.salt
    }

    /// `HKDF-Expand(PRK, "s3seal/v1/seal", 32)`, as an HMAC-SHA256 key.
    fn seal_key(&self) -> hmac::Key {
        let mut key = Zeroizing::new([0; KEY_LEN]);
        self.prk
            .expand(&[LABEL_SEAL], HkdfLen(KEY_LEN))
            .and_then(|okm| okm.fill(&mut key[..]))
            .expect("32 bytes is within HKDF-SHA256's output limit");
        hmac::Key::new(hmac::HMAC_SHA256, &key[..])
    }

    /// The tag of the `ETag`s of part `n` holding `len` plaintext bytes in this object's upload
    /// (`docs/format.md` §6.1): the first 8 bytes of
    /// `HMAC-SHA256(seal key, "s3seal-part-etag-1" || u32be(n) || u64be(len))`. Shown to the
    /// client, never stored.
    pub fn part_etag_tag(&self, part: PartNumber, len: u64) -> [u8; PART_ETAG_TAG_LEN] {
        let msg = [PART_ETAG_MAGIC, &part.0.to_be_bytes(), &len.to_be_bytes()].concat();
        let tag = hmac::sign(&self.seal_key(), &msg);
        let mut out = [0; PART_ETAG_TAG_LEN];
        out.copy_from_slice(&tag.as_ref()[..PART_ETAG_TAG_LEN]);
        out
    }

    /// `HKDF-Expand(PRK, "s3seal/v1/part" || u32be(n), 32)`.
    pub fn part_key(&self, part: PartNumber) -> PartKey {
        let n = part.0.to_be_bytes();
        let info = [LABEL_PART, &n[..]];
        let okm = self
            .prk
            .expand(&info, &AES_256_GCM)
            .expect("32 bytes is within HKDF-SHA256's output limit");
        PartKey(LessSafeKey::new(UnboundKey::from(okm)))
    }
}

impl fmt::Debug for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectKey")
            .field("salt", &self.salt)
            .finish_non_exhaustive()
    }
}

/// An HKDF output length for raw bytes (the commitment).
struct HkdfLen(usize);

impl hkdf::KeyType for HkdfLen {
    fn len(&self) -> usize {
        self.0
    }
}

// === Multipart seal (§7) ===

/// Which parts make up a multipart object, in order, with their plaintext lengths. Written by
/// the proxy at CompleteMultipartUpload, authenticated with the object's seal key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seal {
    parts: Vec<(PartNumber, u64)>,
}

impl Seal {
    /// Part numbers must be strictly increasing, as S3 requires of a completion.
    pub fn new(parts: Vec<(PartNumber, u64)>) -> Result<Self, FormatError> {
        let increasing = parts.windows(2).all(|w| w[0].0 .0 < w[1].0 .0);
        if parts.is_empty() || !increasing {
            return Err(FormatError::InvalidField(
                "seal parts are empty or not increasing".into(),
            ));
        }
        if parts.iter().any(|(_, len)| *len > MAX_SEGMENT_LEN) {
            return Err(FormatError::InvalidField("seal part length".into()));
        }
        Ok(Seal { parts })
    }

    pub fn parts(&self) -> &[(PartNumber, u64)] {
        &self.parts
    }

    pub fn plaintext_len(&self) -> u64 {
        self.parts.iter().map(|(_, len)| len).sum()
    }

    /// The stored size of the object: its segments, concatenated.
    pub fn ciphertext_len(&self) -> u64 {
        self.parts
            .iter()
            .map(|(_, len)| ciphertext_len(*len).expect("checked by Seal::new"))
            .sum()
    }

    /// `body || HMAC-SHA256(seal_key, body)`, with
    /// `body = "s3seal-seal-1" || u32be(k) || k × (u32be(part_number) || u64be(plaintext_len))`.
    pub fn encode(&self, key: &ObjectKey) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            SEAL_MAGIC.len() + 4 + self.parts.len() * SEAL_ENTRY_LEN + SEAL_TAG_LEN,
        );
        out.extend_from_slice(SEAL_MAGIC);
        let count = u32::try_from(self.parts.len()).expect("at most 10000 parts");
        out.extend_from_slice(&count.to_be_bytes());
        for (part, len) in &self.parts {
            out.extend_from_slice(&part.0.to_be_bytes());
            out.extend_from_slice(&len.to_be_bytes());
        }
        let tag = hmac::sign(&key.seal_key(), &out);
        out.extend_from_slice(tag.as_ref());
        out
    }

    /// Verifies the tag before reading anything else.
    pub fn decode(bytes: &[u8], key: &ObjectKey) -> Result<Self, FormatError> {
        let invalid = || FormatError::InvalidField("seal".into());
        if bytes.len() < SEAL_MAGIC.len() + 4 + SEAL_TAG_LEN || bytes.len() > MAX_SEAL_LEN {
            return Err(invalid());
        }
        let (body, tag) = bytes.split_at(bytes.len() - SEAL_TAG_LEN);
        hmac::verify(&key.seal_key(), body, tag).map_err(|_| FormatError::SealMismatch)?;
        let rest = body.strip_prefix(SEAL_MAGIC).ok_or_else(invalid)?;
        let (count, entries) = rest.split_at(4);
        let count = u32::from_be_bytes(count.try_into().expect("4 bytes")) as usize;
        if entries.len() != count * SEAL_ENTRY_LEN {
            return Err(invalid());
        }
        let parts = entries
            .chunks_exact(SEAL_ENTRY_LEN)
            .map(|e| {
                let number = u32::from_be_bytes(e[..4].try_into().expect("4 bytes"));
                let len = u64::from_be_bytes(e[4..].try_into().expect("8 bytes"));
                PartNumber::multipart(number)
                    .map(|n| (n, len))
                    .ok_or_else(invalid)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Seal::new(parts)
    }
}

impl Seal {
    /// The version 2 form, stored in the record (§7): `runs || tag`, with
    /// `runs = u16be(r) || r × (u16be(first part number) || u16be(count) || u64be(plaintext_len))`
    /// (parts `first .. first + count` each hold `plaintext_len` bytes) and
    /// `tag = HMAC-SHA256(seal_key, "s3seal-seal-2" || runs)`. A client's parts are usually of
    /// one size but the last, so two runs describe them.
    pub fn encode_v2(&self, key: &ObjectKey) -> Vec<u8> {
        let runs = self.runs();
        let mut out = Vec::with_capacity(2 + runs.len() * SEAL_RUN_LEN + SEAL_TAG_LEN);
        let count = u16::try_from(runs.len()).expect("at most 10000 parts");
        out.extend_from_slice(&count.to_be_bytes());
        for (first, count, len) in runs {
            out.extend_from_slice(&first.to_be_bytes());
            out.extend_from_slice(&count.to_be_bytes());
            out.extend_from_slice(&len.to_be_bytes());
        }
        let tag = hmac::sign(&key.seal_key(), &[SEAL_MAGIC_V2, &out].concat());
        out.extend_from_slice(tag.as_ref());
        out
    }

    /// Runs of consecutive part numbers of one plaintext length in [`Seal::encode_v2`].
    pub fn run_count(&self) -> usize {
        self.runs().len()
    }

    /// Stored bytes of a version 2 seal of `runs` runs, before base64.
    pub const fn encoded_v2_len_for(runs: usize) -> usize {
        2 + runs * SEAL_RUN_LEN + SEAL_TAG_LEN
    }

    /// Verifies the tag before reading anything else.
    pub fn decode_v2(bytes: &[u8], key: &ObjectKey) -> Result<Self, FormatError> {
        let invalid = || FormatError::InvalidField("seal".into());
        if bytes.len() < 2 + SEAL_TAG_LEN {
            return Err(invalid());
        }
        let (body, tag) = bytes.split_at(bytes.len() - SEAL_TAG_LEN);
        hmac::verify(&key.seal_key(), &[SEAL_MAGIC_V2, body].concat(), tag)
            .map_err(|_| FormatError::SealMismatch)?;
        let (count, runs) = body.split_at(2);
        let count = usize::from(u16::from_be_bytes([count[0], count[1]]));
        if runs.len() != count * SEAL_RUN_LEN {
            return Err(invalid());
        }
        let mut parts = Vec::new();
        for run in runs.chunks_exact(SEAL_RUN_LEN) {
            let first = u32::from(u16::from_be_bytes([run[0], run[1]]));
            let n = u32::from(u16::from_be_bytes([run[2], run[3]]));
            let len = u64::from_be_bytes(run[4..].try_into().expect("8 bytes"));
            if n == 0 || first + n - 1 > MAX_PART_NUMBER {
                return Err(invalid());
            }
            for number in first..first + n {
                parts.push((PartNumber::multipart(number).ok_or_else(invalid)?, len));
            }
        }
        Seal::new(parts)
    }

    /// Consecutive part numbers of equal length, as `(first, count, length)`.
    fn runs(&self) -> Vec<(u16, u16, u64)> {
        let mut runs: Vec<(u16, u16, u64)> = Vec::new();
        for (part, len) in &self.parts {
            let number = u16::try_from(part.0).expect("part numbers are at most 10000");
            match runs.last_mut() {
                Some((first, count, l)) if *l == *len && *first + *count == number => *count += 1,
                _ => runs.push((number, 1, *len)),
            }
        }
        runs
    }
}

// === Upload token (§7.3) ===

/// The keys of a multipart upload, as the client carries them in the upload id between
/// CreateMultipartUpload and the requests that follow: `base64url(0x02 || salt || tag ||
/// wrapped DEK)`, no padding. The tag binds the token to the backend's upload id, the bucket
/// and the key, so a client cannot bring another object's keys to its own upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadToken {
    pub salt: Salt,
    tag: [u8; UPLOAD_TAG_LEN],
    pub wrapped_dek: Vec<u8>,
}

impl UploadToken {
    /// The token of a new upload of the object whose keys are `key`.
    pub fn new(key: &ObjectKey, wrapped_dek: Vec<u8>, backend_id: &str, place: Place<'_>) -> Self {
        UploadToken {
            salt: key.salt,
            tag: key.upload_tag(backend_id, place),
            wrapped_dek,
        }
    }

    pub fn encode(&self) -> String {
        let mut raw = Vec::with_capacity(1 + SALT_LEN + UPLOAD_TAG_LEN + self.wrapped_dek.len());
        raw.push(UPLOAD_TOKEN_V2);
        raw.extend_from_slice(&self.salt.0);
        raw.extend_from_slice(&self.tag);
        raw.extend_from_slice(&self.wrapped_dek);
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// The token's fields; nothing in it is trusted before [`UploadToken::verify`].
    pub fn parse(text: &str) -> Result<Self, FormatError> {
        let invalid = || FormatError::InvalidField("upload token".into());
        let raw = URL_SAFE_NO_PAD.decode(text).map_err(|_| invalid())?;
        let Some((&UPLOAD_TOKEN_V2, rest)) = raw.split_first() else {
            return Err(invalid());
        };
        if rest.len() <= SALT_LEN + UPLOAD_TAG_LEN
            || rest.len() > SALT_LEN + UPLOAD_TAG_LEN + MAX_WRAPPED_DEK_LEN
        {
            return Err(invalid());
        }
        let (salt, rest) = rest.split_at(SALT_LEN);
        let (tag, wrapped) = rest.split_at(UPLOAD_TAG_LEN);
        Ok(UploadToken {
            salt: Salt(salt.try_into().expect("SALT_LEN bytes")),
            tag: tag.try_into().expect("UPLOAD_TAG_LEN bytes"),
            wrapped_dek: wrapped.to_vec(),
        })
    }

    /// Checks, in constant time, that the token was made by the proxy for this upload of this
    /// object, with the keys `key` derived from its salt and unwrapped DEK.
    pub fn verify(
        &self,
        key: &ObjectKey,
        backend_id: &str,
        place: Place<'_>,
    ) -> Result<(), FormatError> {
        let expected = key.upload_tag(backend_id, place);
        if key.salt == self.salt && bool::from(expected.ct_eq(&self.tag)) {
            Ok(())
        } else {
            Err(FormatError::UploadToken)
        }
    }
}

// === Chunks (§3) ===

/// The random nonce prefix shared by the chunks of one segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentPrefix(pub [u8; PREFIX_LEN]);

impl SegmentPrefix {
    pub fn generate() -> Self {
        let mut prefix = [0; PREFIX_LEN];
        fill_random(&mut prefix);
        SegmentPrefix(prefix)
    }
}

/// `nonce_i = prefix || u32be(i) || final_i`.
fn chunk_nonce(prefix: SegmentPrefix, index: u32, is_final: bool) -> Nonce {
    let mut nonce = [0; NONCE_LEN];
    nonce[..PREFIX_LEN].copy_from_slice(&prefix.0);
    nonce[PREFIX_LEN..PREFIX_LEN + 4].copy_from_slice(&index.to_be_bytes());
    nonce[NONCE_LEN - 1] = u8::from(is_final);
    Nonce::assume_unique_for_key(nonce)
}

/// The AES-256-GCM key of one part (or of a single-part object). aws-lc-rs zeroizes it on drop.
pub struct PartKey(LessSafeKey);

impl PartKey {
    /// Seals chunk `index` into `prefix || ciphertext || tag`. `plaintext` is at most [`CHUNK_SIZE`]
    /// bytes, exactly that unless `is_final`.
    pub fn seal_chunk(
        &self,
        prefix: SegmentPrefix,
        index: u32,
        is_final: bool,
        plaintext: &[u8],
    ) -> Bytes {
        debug_assert!(plaintext.len() <= CHUNK_SIZE && (is_final || plaintext.len() == CHUNK_SIZE));
        let mut out = BytesMut::with_capacity(plaintext.len() + CHUNK_OVERHEAD);
        out.put_slice(&prefix.0);
        out.put_slice(plaintext);
        let tag = self
            .0
            .seal_in_place_separate_tag(
                chunk_nonce(prefix, index, is_final),
                Aad::empty(),
                &mut out[PREFIX_LEN..],
            )
            .expect("a chunk is far below AES-GCM's message limit");
        out.put_slice(tag.as_ref());
        out.freeze()
    }

    /// Opens chunk `index` (`prefix || ciphertext || tag`), returning its prefix and plaintext;
    /// `None` if it is not authentic at this position under this key.
    pub fn open_chunk(
        &self,
        index: u32,
        is_final: bool,
        mut chunk: BytesMut,
    ) -> Option<(SegmentPrefix, Bytes)> {
        if chunk.len() < CHUNK_OVERHEAD {
            return None;
        }
        let prefix = SegmentPrefix(chunk.split_to(PREFIX_LEN)[..].try_into().ok()?);
        let plain_len = self
            .0
            .open_in_place(
                chunk_nonce(prefix, index, is_final),
                Aad::empty(),
                &mut chunk,
            )
            .ok()?
            .len();
        chunk.truncate(plain_len);
        Some((prefix, chunk.freeze()))
    }
}

impl fmt::Debug for PartKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PartKey(<redacted>)")
    }
}

// === Key ids and the local DEK wrap (§5.2) ===

/// The name of a key-encryption key: 1..=256 chars of `A-Z a-z 0-9 - _ . : / + = @`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyId(String);

impl KeyId {
    pub fn new(id: impl Into<String>) -> Result<Self, FormatError> {
        let id = id.into();
        let valid = (1..=MAX_KEY_ID_LEN).contains(&id.len())
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:/+=@".contains(&b));
        if valid {
            Ok(KeyId(id))
        } else {
            Err(FormatError::InvalidField(format!("key id {id:?}")))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A local key-encryption key and its name. Redacted in `Debug`; aws-lc-rs zeroizes the key.
pub struct Kek {
    id: KeyId,
    key: LessSafeKey,
}

impl Kek {
    pub fn new(id: KeyId, key: &[u8; KEY_LEN]) -> Self {
        let key = UnboundKey::new(&AES_256_GCM, key).expect("32 bytes is an AES-256 key");
        Kek {
            id,
            key: LessSafeKey::new(key),
        }
    }

    /// A key from its text form (32 bytes in base64, surrounding white space ignored): the
    /// form of config files, of `s3seal keygen` and of the demo's key file.
    pub fn from_base64(id: KeyId, text: &str) -> Result<Self, KeyTextError> {
        let bytes = Zeroizing::new(
            STANDARD
                .decode(text.trim())
                .map_err(|_| KeyTextError::NotBase64)?,
        );
        let raw: Zeroizing<[u8; KEY_LEN]> = Zeroizing::new(
            bytes
                .as_slice()
                .try_into()
                .map_err(|_| KeyTextError::Length)?,
        );
        Ok(Kek::new(id, &raw))
    }

    /// A new random key in its text form.
    pub fn generate_base64() -> Zeroizing<String> {
        let mut raw = Zeroizing::new([0; KEY_LEN]);
        fill_random(&mut raw[..]);
        Zeroizing::new(STANDARD.encode(&raw[..]))
    }

    pub fn id(&self) -> &KeyId {
        &self.id
    }

    /// Version 1: `"s3seal/v1/wrap" || key_id`. Version 2: `"s3seal/v2/wrap" ||
    /// u32be(len(key_id)) || key_id || u32be(len(bucket)) || bucket || u32be(len(key)) || key`.
    fn aad(&self, binding: Binding<'_>) -> Aad<Vec<u8>> {
        Aad::from(match binding {
            Binding::V1 => [LABEL_WRAP, self.id.0.as_bytes()].concat(),
            Binding::V2(place) => {
                let id_len = u32::try_from(self.id.0.len()).expect("at most 256 bytes");
                let mut aad = LABEL_WRAP_V2.to_vec();
                aad.extend_from_slice(&id_len.to_be_bytes());
                aad.extend_from_slice(self.id.0.as_bytes());
                aad.extend_from_slice(&place.bound(b""));
                aad
            }
        })
    }

    /// `nonce || AES-GCM(KEK, nonce, DEK, aad) || tag`, `aad` as [`Kek::aad`] says.
    pub fn wrap(&self, dek: &DataKey, binding: Binding<'_>) -> Vec<u8> {
        self.seal_wrapped(dek, self.aad(binding))
    }

    fn seal_wrapped(&self, dek: &DataKey, aad: Aad<Vec<u8>>) -> Vec<u8> {
        let mut nonce = [0; NONCE_LEN];
        fill_random(&mut nonce);
        let mut out = Vec::with_capacity(LOCAL_WRAPPED_DEK_LEN);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&dek.0[..]);
        let tag = self
            .key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                aad,
                &mut out[NONCE_LEN..],
            )
            .expect("a 32-byte key is far below AES-GCM's message limit");
        out.extend_from_slice(tag.as_ref());
        out
    }

    pub fn unwrap(&self, wrapped: &[u8], binding: Binding<'_>) -> Result<DataKey, FormatError> {
        self.open_wrapped(wrapped, self.aad(binding))
    }

    /// Another format's wrap of a data key under this KEK, `nonce || AES-GCM(KEK, nonce, DEK,
    /// aad) || tag` with the `aad` that format names: the S3 Encryption Client's `AES/GCM`
    /// (`crate::crypto::s3ec`).
    pub fn unwrap_with_aad(&self, wrapped: &[u8], aad: &[u8]) -> Result<DataKey, FormatError> {
        self.open_wrapped(wrapped, Aad::from(aad.to_vec()))
    }

    /// The wrap [`Kek::unwrap_with_aad`] opens, under a fresh random nonce.
    pub fn wrap_with_aad(&self, dek: &DataKey, aad: &[u8]) -> Vec<u8> {
        self.seal_wrapped(dek, Aad::from(aad.to_vec()))
    }

    fn open_wrapped(&self, wrapped: &[u8], aad: Aad<Vec<u8>>) -> Result<DataKey, FormatError> {
        if wrapped.len() != LOCAL_WRAPPED_DEK_LEN {
            return Err(FormatError::Unwrap);
        }
        let (nonce, sealed) = wrapped.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| FormatError::Unwrap)?;
        let mut buf = Zeroizing::new(sealed.to_vec());
        let dek = self
            .key
            .open_in_place(nonce, aad, &mut buf)
            .map_err(|_| FormatError::Unwrap)?;
        Ok(DataKey::from_bytes(
            dek.try_into().map_err(|_| FormatError::Unwrap)?,
        ))
    }
}

impl fmt::Debug for Kek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Kek")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

fn fill_random(out: &mut [u8]) {
    aws_lc_rs::rand::fill(out).expect("the system random generator failed");
}

// === Metadata (§6) ===

/// How an object was written: decides which part keys its segments use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// PutObject: one segment under part key 0.
    Single,
    /// CreateMultipartUpload: one segment per part, listed by the seal.
    Multipart,
}

impl Layout {
    fn as_str(self) -> &'static str {
        match self {
            Layout::Single => "single",
            Layout::Multipart => "multipart",
        }
    }
}

/// The `x-amz-meta-s3seal-*` record of an encrypted object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMetadata {
    pub version: Version,
    pub layout: Layout,
    pub key_id: KeyId,
    pub wrapped_dek: Vec<u8>,
    pub salt: Salt,
    pub commitment: Commitment,
    /// Version 2, a completed multipart object: its seal ([`Seal::encode_v2`]).
    pub seal: Option<Vec<u8>>,
}

impl ObjectMetadata {
    /// The version 2 record of a new object at `place` whose keys are `key`.
    pub fn new(
        layout: Layout,
        key_id: KeyId,
        wrapped_dek: Vec<u8>,
        key: &ObjectKey,
        place: Place<'_>,
    ) -> Self {
        ObjectMetadata {
            version: Version::V2,
            layout,
            key_id,
            wrapped_dek,
            salt: key.salt,
            commitment: key.commitment(Binding::V2(place)),
            seal: None,
        }
    }

    /// What the record's wrapped DEK and commitment are bound to, read at `place`.
    pub fn binding<'a>(&self, place: Place<'a>) -> Binding<'a> {
        Binding::of(self.version, place)
    }

    /// Derives the object's keys from its unwrapped DEK, after checking the key commitment,
    /// which in version 2 also names the place the record is read from.
    pub fn open(&self, dek: &DataKey, place: Place<'_>) -> Result<ObjectKey, FormatError> {
        let key = ObjectKey::derive(dek, self.salt);
        let expected = key.commitment(self.binding(place));
        if bool::from(expected.0.ct_eq(&self.commitment.0)) {
            Ok(key)
        } else {
            Err(FormatError::CommitmentMismatch)
        }
    }

    /// The version 2 record of the same object at `place`, its DEK wrapped as `wrapped_dek`
    /// under `key_id` (a copy, a rewrap or an upgrade, §5.4). `key` must come from
    /// [`ObjectMetadata::open`] of this record.
    #[must_use]
    pub fn moved(
        &self,
        key: &ObjectKey,
        key_id: KeyId,
        wrapped_dek: Vec<u8>,
        place: Place<'_>,
        seal: Option<&Seal>,
    ) -> Self {
        ObjectMetadata {
            version: Version::V2,
            layout: self.layout,
            key_id,
            wrapped_dek,
            salt: self.salt,
            commitment: key.commitment(Binding::V2(place)),
            seal: seal.map(|s| s.encode_v2(key)),
        }
    }

    /// The verified version 2 seal of a multipart object; `None` if the record has none.
    pub fn seal(&self, key: &ObjectKey) -> Result<Option<Seal>, FormatError> {
        self.seal
            .as_deref()
            .map(|bytes| Seal::decode_v2(bytes, key))
            .transpose()
    }

    fn fields(&self) -> Vec<(HeaderName, String)> {
        let mut fields = vec![
            (META_VERSION, self.version.as_str().to_owned()),
            (META_LAYOUT, self.layout.as_str().to_owned()),
            (META_KEY_ID, self.key_id.0.clone()),
            (META_WRAPPED_DEK, STANDARD.encode(&self.wrapped_dek)),
            (META_SALT, STANDARD.encode(self.salt.0)),
            (META_COMMITMENT, STANDARD.encode(self.commitment.0)),
        ];
        if let Some(seal) = &self.seal {
            fields.push((META_SEAL, STANDARD.encode(seal)));
        }
        fields
    }

    /// Sets the record's headers, replacing any with the same names.
    pub fn write_headers(&self, headers: &mut HeaderMap) {
        for (name, value) in self.fields() {
            let value = HeaderValue::try_from(value).expect("every field is ASCII");
            headers.insert(name, value);
        }
    }

    /// Size as S3 counts it against the 2 KiB user-metadata limit: names without `x-amz-meta-`,
    /// plus values.
    pub fn encoded_len(&self) -> usize {
        self.fields()
            .iter()
            .map(|(name, value)| meta_len(name, value.len()))
            .sum()
    }

    /// What a seal of `seal_len` stored bytes adds to [`ObjectMetadata::encoded_len`].
    pub fn seal_field_len(seal_len: usize) -> usize {
        meta_len(&META_SEAL, seal_len.div_ceil(3) * 4)
    }

    /// Reads the record. `Ok(None)`: no `s3seal` header at all, a legacy plaintext object.
    pub fn from_headers(headers: &HeaderMap) -> Result<Option<Self>, FormatError> {
        let mut any = false;
        for name in headers.keys() {
            if name.as_str().starts_with(META_PREFIX) {
                any = true;
                let known = [
                    META_VERSION,
                    META_LAYOUT,
                    META_KEY_ID,
                    META_WRAPPED_DEK,
                    META_SALT,
                    META_COMMITMENT,
                    META_SEAL,
                ];
                if !known.contains(name) {
                    return Err(FormatError::InvalidField(format!("unknown field {name}")));
                }
            }
        }
        if !any {
            return Ok(None);
        }
        let version = match field(headers, &META_VERSION)? {
            "1" => Version::V1,
            "2" => Version::V2,
            other => return Err(FormatError::UnsupportedVersion(other.to_owned())),
        };
        let layout = match field(headers, &META_LAYOUT)? {
            "single" => Layout::Single,
            "multipart" => Layout::Multipart,
            other => return Err(FormatError::InvalidField(format!("layout {other:?}"))),
        };
        let wrapped_dek = base64_field(headers, &META_WRAPPED_DEK)?;
        if !(1..=MAX_WRAPPED_DEK_LEN).contains(&wrapped_dek.len()) {
            return Err(FormatError::InvalidField("wrapped key length".to_owned()));
        }
        // A seal belongs to version 2 multipart objects only.
        let seal = match (headers.contains_key(&META_SEAL), version, layout) {
            (false, _, _) => None,
            (true, Version::V2, Layout::Multipart) => Some(base64_field(headers, &META_SEAL)?),
            (true, _, _) => return Err(FormatError::InvalidField(META_SEAL.to_string())),
        };
        Ok(Some(ObjectMetadata {
            version,
            layout,
            key_id: KeyId::new(field(headers, &META_KEY_ID)?)?,
            wrapped_dek,
            salt: Salt(fixed_field(headers, &META_SALT)?),
            commitment: Commitment(fixed_field(headers, &META_COMMITMENT)?),
            seal,
        }))
    }
}

/// Bytes S3 counts for one user-metadata field.
fn meta_len(name: &HeaderName, value_len: usize) -> usize {
    name.as_str().len() - "x-amz-meta-".len() + value_len
}

/// The one value of a required header.
fn field<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Result<&'a str, FormatError> {
    let mut values = headers.get_all(name).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return Err(if headers.contains_key(name) {
            FormatError::InvalidField(format!("{name} is repeated"))
        } else {
            FormatError::MissingField(name.to_string())
        });
    };
    value
        .to_str()
        .map_err(|_| FormatError::InvalidField(format!("{name} is not ASCII")))
}

fn base64_field(headers: &HeaderMap, name: &HeaderName) -> Result<Vec<u8>, FormatError> {
    STANDARD
        .decode(field(headers, name)?)
        .map_err(|_| FormatError::InvalidField(format!("{name} is not base64")))
}

fn fixed_field<const N: usize>(
    headers: &HeaderMap,
    name: &HeaderName,
) -> Result<[u8; N], FormatError> {
    base64_field(headers, name)?
        .try_into()
        .map_err(|_| FormatError::InvalidField(format!("{name} is not {N} bytes")))
}
