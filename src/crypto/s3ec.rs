//! The AWS S3 Encryption Client's object formats (S3EC), as pure functions: reading the content
//! metadata of format versions 2 and 3 from object metadata and instruction files, opening
//! their data keys' `AES/GCM` wraps, the version 3 key commitment, and writing a version 3
//! record. No I/O: the client-side encryption stage fetches what these functions read.
//!
//! An S3EC object is one AES-256-GCM message with one tag at its end:
//! - version 2 (`x-amz-cek-alg = AES/GCM/NoPadding`): the data key is the content key, the IV
//!   is `x-amz-iv`, no AAD;
//! - version 3 (`x-amz-c = 115`, `ALG_AES_256_GCM_HKDF_SHA512_COMMIT_KEY`): HKDF-SHA512 with the
//!   28-byte message id `x-amz-i` as salt derives a 28-byte commitment, which must equal
//!   `x-amz-d`, and the content key; the IV is twelve `0x01` bytes and the AAD the suite id
//!   `00 73`.
//!
//! Reference: the S3EC specification in `awslabs/aws-encryption-sdk-specification`,
//! `s3-encryption/` (`data-format/content-metadata.md`, `data-format/metadata-strategy.md`,
//! `key-derivation.md`, `decryption.md`, `materials/s3-kms-keyring.md`), and the AES keyring
//! of `aws/amazon-s3-encryption-client-java` for the `AES/GCM` wrap's AAD. See
//! `docs/format.md` ("S3 Encryption Client objects").

mod body;
pub mod gcm;

pub use body::{Release, S3ecBody, SealBody};

use std::collections::BTreeMap;

use aws_lc_rs::hkdf::{self, HKDF_SHA512};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use http::{HeaderMap, HeaderName, HeaderValue};
use subtle::ConstantTimeEq as _;
use zeroize::Zeroizing;

use super::format::{DataKey, Kek, KEY_LEN, MAX_WRAPPED_DEK_LEN};
use gcm::{IV_LEN, TAG_LEN};

/// The suite id of `ALG_AES_256_GCM_HKDF_SHA512_COMMIT_KEY`, as bytes (the content AAD and the
/// HKDF info prefix) and as `x-amz-c` writes it.
pub const SUITE_V3: [u8; 2] = [0x00, 0x73];
pub const SUITE_V3_TEXT: &str = "115";
/// The content cipher of version 2.
pub const CEK_ALG_V2: &str = "AES/GCM/NoPadding";
/// The message id (HKDF salt) and the commitment of version 3: 224 bits each.
pub const MESSAGE_ID_LEN: usize = 28;
pub const COMMITMENT_LEN: usize = 28;
/// Version 3's fixed content IV.
pub const V3_IV: [u8; IV_LEN] = [0x01; IV_LEN];
/// The reserved encryption-context entry of `kms+context`: the content cipher, so a blob
/// cannot be replayed under another suite.
pub const KMS_CONTEXT_CEK_ALG: &str = "aws:x-amz-cek-alg";
/// The instruction file's key is the object's with this suffix.
pub const INSTRUCTION_SUFFIX: &str = ".instruction";
/// An instruction file is a small JSON map; anything longer is not one.
pub const MAX_INSTRUCTION_FILE_BYTES: usize = 16 * 1024;
/// GCM's limit on one message: 2^39 - 256 bits of plaintext.
pub const MAX_PLAINTEXT_LEN: u64 = (1 << 36) - 32;
/// The longest metadata JSON (material description or encryption context) read.
const MAX_CONTEXT_BYTES: usize = 8 * 1024;

const INFO_DERIVE: &[u8] = b"DERIVEKEY";
const INFO_COMMIT: &[u8] = b"COMMITKEY";

// Mapkeys, without the `x-amz-meta-` of object metadata.
const KEY_V1: &str = "x-amz-key";
const KEY_V2: &str = "x-amz-key-v2";
const IV: &str = "x-amz-iv";
const MATDESC: &str = "x-amz-matdesc";
const WRAP_ALG: &str = "x-amz-wrap-alg";
const CEK_ALG: &str = "x-amz-cek-alg";
const TAG_LEN_KEY: &str = "x-amz-tag-len";
const UNENCRYPTED_LEN: &str = "x-amz-unencrypted-content-length";
const INSTRUCTION_MARKER: &str = "x-amz-crypto-instr-file";
const CONTENT_CIPHER_V3: &str = "x-amz-c";
const KEY_V3: &str = "x-amz-3";
const MATDESC_V3: &str = "x-amz-m";
const CONTEXT_V3: &str = "x-amz-t";
const WRAP_ALG_V3: &str = "x-amz-w";
const COMMITMENT_V3: &str = "x-amz-d";
const MESSAGE_ID_V3: &str = "x-amz-i";

/// Every mapkey of the formats, as an instruction file may hold them.
const MAPKEYS: [&str; 16] = [
    KEY_V1,
    KEY_V2,
    IV,
    MATDESC,
    WRAP_ALG,
    CEK_ALG,
    TAG_LEN_KEY,
    UNENCRYPTED_LEN,
    INSTRUCTION_MARKER,
    CONTENT_CIPHER_V3,
    KEY_V3,
    MATDESC_V3,
    CONTEXT_V3,
    WRAP_ALG_V3,
    COMMITMENT_V3,
    MESSAGE_ID_V3,
];
/// Version 3 keeps these in the object metadata, never in an instruction file.
const V3_OBJECT_ONLY: [&str; 3] = [CONTENT_CIPHER_V3, COMMITMENT_V3, MESSAGE_ID_V3];
const USER_META_PREFIX: &str = "x-amz-meta-";

/// Why S3EC metadata cannot be read or a key opened.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum S3ecError {
    #[error("the metadata mixes keys of several S3 Encryption Client format versions")]
    MixedVersions,
    #[error("the metadata lacks {0}")]
    Missing(&'static str),
    #[error("{0} is not valid: {1}")]
    Invalid(&'static str, String),
    #[error("{0} is not supported by s3seal")]
    Unsupported(String),
    #[error("the instruction file is not a JSON map of S3 Encryption Client keys")]
    InstructionFile,
    #[error("the instruction file holds {0}, which only the object metadata may hold")]
    InstructionFileOverride(&'static str),
    #[error("the object metadata's {0} contradicts its instruction file")]
    InstructionFileContradiction(&'static str),
    #[error("the encryption context's {KMS_CONTEXT_CEK_ALG} is not this object's content cipher")]
    ContextCipher,
    #[error("the data key does not open with any key of the bucket's keyring")]
    Unwrap,
    #[error("the key commitment does not match the data key")]
    Commitment,
}

// === Metadata ===

/// S3EC mapkeys and their values, from object metadata or an instruction file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metadata(BTreeMap<String, String>);

impl Metadata {
    /// The S3EC entries of an object's user metadata (`x-amz-meta-x-amz-*` headers).
    pub fn from_headers(h: &HeaderMap) -> Self {
        let mut map = BTreeMap::new();
        for name in MAPKEYS {
            let header = format!("{USER_META_PREFIX}{name}");
            if let Some(v) = h.get(&header).and_then(|v| v.to_str().ok()) {
                map.insert(name.to_owned(), v.to_owned());
            }
        }
        Metadata(map)
    }

    /// An instruction file's body: a JSON object of S3EC mapkeys to strings, nothing else.
    pub fn from_instruction_file(body: &[u8]) -> Result<Self, S3ecError> {
        if body.len() > MAX_INSTRUCTION_FILE_BYTES {
            return Err(S3ecError::InstructionFile);
        }
        let map: BTreeMap<String, String> =
            serde_json::from_slice(body).map_err(|_| S3ecError::InstructionFile)?;
        if map.keys().any(|k| !MAPKEYS.contains(&k.as_str())) {
            return Err(S3ecError::InstructionFile);
        }
        Ok(Metadata(map))
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    fn has(&self, key: &str) -> bool {
        self.0.contains_key(key)
    }

    /// Whether any S3EC mapkey is present.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The user metadata headers an S3EC record occupies, for hiding them from clients.
    pub fn header_names() -> impl Iterator<Item = HeaderName> {
        MAPKEYS.into_iter().map(|k| {
            HeaderName::try_from(format!("{USER_META_PREFIX}{k}")).expect("lowercase ASCII")
        })
    }
}

/// Whether the metadata is an instruction file's own (the object `<key>.instruction`): the
/// marker `x-amz-crypto-instr-file`, and no other mapkey but the plaintext length, which the
/// AWS SDK for Ruby writes beside it (`AWS::S3::S3Object#write` with
/// `encryption_materials_location: :instruction_file`).
pub fn is_instruction_file(meta: &Metadata) -> bool {
    meta.has(INSTRUCTION_MARKER)
        && meta
            .0
            .keys()
            .all(|k| k == INSTRUCTION_MARKER || k == UNENCRYPTED_LEN)
}

/// What an object's metadata says about S3EC.
#[derive(Debug, PartialEq, Eq)]
pub enum Found {
    /// No S3EC mapkey at all.
    None,
    /// A complete record in the object metadata.
    Record(Record),
    /// Version 3 content fields without the data key: the rest is in `<key>.instruction`.
    InstructionFile,
    /// The object is itself an instruction file ([`is_instruction_file`]): another object's
    /// record, not content.
    IsInstructionFile,
}

/// Reads an object's metadata as the specification's "Determining S3EC Object Status" says,
/// strictly: mixed versions, version 1 (AES-CBC, unauthenticated) and incomplete records are
/// errors, never plaintext.
pub fn detect(meta: &Metadata) -> Result<Found, S3ecError> {
    // The plaintext length describes no cipher: the AWS SDK for Ruby writes it, and nothing
    // else, on an object whose record is in its instruction file. Such metadata "matches none
    // of the V1/V2/V3 formats", and the instruction file is looked for.
    if meta.0.keys().all(|k| k == UNENCRYPTED_LEN) {
        return Ok(Found::None);
    }
    if is_instruction_file(meta) {
        return Ok(Found::IsInstructionFile);
    }
    let v3_content = V3_OBJECT_ONLY.iter().all(|k| meta.has(k));
    if v3_content && !meta.has(KEY_V3) && !meta.has(KEY_V2) && !meta.has(KEY_V1) {
        return Ok(Found::InstructionFile);
    }
    Record::parse(meta).map(Found::Record)
}

/// The record of an object whose metadata holds no S3EC mapkey, read from its instruction
/// file alone: formats 1 and 2 keep "all of the content metadata" there
/// (`data-format/metadata-strategy.md`, "V1/V2 Instruction Files"). Format 3 never does (its
/// content keys stay in the object metadata), so a format 3 file found this way is refused.
/// What `object`'s metadata holds beside it (at most the plaintext length, see [`detect`]) must
/// agree with the file.
pub fn record_in_instruction_file(object: &Metadata, file: &Metadata) -> Result<Record, S3ecError> {
    if let Some(k) = V3_OBJECT_ONLY.into_iter().find(|k| file.has(k)) {
        return Err(S3ecError::InstructionFileOverride(k));
    }
    agree(object, file, &[])?;
    Record::parse(file)
}

/// A version 3 object's metadata completed by its instruction file. Any other mapkey the
/// object's metadata holds must say what the file says: one of two contradicting records
/// would otherwise be dropped unseen.
pub fn with_instruction_file(object: &Metadata, file: &Metadata) -> Result<Record, S3ecError> {
    if let Some(k) = V3_OBJECT_ONLY.into_iter().find(|k| file.has(k)) {
        return Err(S3ecError::InstructionFileOverride(k));
    }
    agree(object, file, &V3_OBJECT_ONLY)?;
    let mut merged = file.0.clone();
    for k in V3_OBJECT_ONLY {
        if let Some(v) = object.get(k) {
            merged.insert(k.to_owned(), v.to_owned());
        }
    }
    Record::parse(&Metadata(merged))
}

/// Every mapkey of `object` but `except` has the same value in `file`; the plaintext length,
/// which describes no cipher, may be the object's alone.
fn agree(object: &Metadata, file: &Metadata, except: &[&str]) -> Result<(), S3ecError> {
    for k in MAPKEYS.into_iter().filter(|k| !except.contains(k)) {
        let Some(ours) = object.get(k) else {
            continue;
        };
        match file.get(k) {
            Some(theirs) if theirs == ours => {}
            None if k == UNENCRYPTED_LEN => {}
            _ => return Err(S3ecError::InstructionFileContradiction(k)),
        }
    }
    Ok(())
}

// === Record ===

/// The content cipher of an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// `ALG_AES_256_GCM_IV12_TAG16_NO_KDF`.
    V2 { iv: [u8; IV_LEN] },
    /// `ALG_AES_256_GCM_HKDF_SHA512_COMMIT_KEY`.
    V3 {
        message_id: [u8; MESSAGE_ID_LEN],
        commitment: [u8; COMMITMENT_LEN],
    },
}

impl Content {
    /// What the `AES/GCM` wrap authenticates, and `kms+context`'s reserved entry holds.
    pub fn cipher_name(&self) -> &'static str {
        match self {
            Content::V2 { .. } => CEK_ALG_V2,
            Content::V3 { .. } => SUITE_V3_TEXT,
        }
    }
}

/// How the data key is wrapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wrap {
    /// A raw AES-256 key: `IV(12) || AES-GCM(key, IV, DEK, cipher name) || tag`.
    AesGcm,
    /// AWS KMS with an encryption context that holds `aws:x-amz-cek-alg`.
    KmsContext,
}

/// A complete S3EC content-metadata record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub content: Content,
    pub wrap: Wrap,
    pub encrypted_data_key: Vec<u8>,
    /// The material description (`AES/GCM`) or the KMS encryption context (`kms+context`).
    pub context: BTreeMap<String, String>,
}

impl Record {
    fn parse(meta: &Metadata) -> Result<Self, S3ecError> {
        let versions = [KEY_V1, KEY_V2, KEY_V3]
            .iter()
            .filter(|k| meta.has(k))
            .count();
        if versions > 1 {
            return Err(S3ecError::MixedVersions);
        }
        if meta.has(KEY_V1) {
            return Err(S3ecError::Unsupported(
                "format version 1 (x-amz-key)".to_owned(),
            ));
        }
        if meta.has(KEY_V2) {
            Self::parse_v2(meta)
        } else {
            Self::parse_v3(meta)
        }
    }

    fn parse_v2(meta: &Metadata) -> Result<Self, S3ecError> {
        let v3_only = [
            CONTENT_CIPHER_V3,
            MATDESC_V3,
            CONTEXT_V3,
            WRAP_ALG_V3,
            COMMITMENT_V3,
            MESSAGE_ID_V3,
        ];
        if v3_only.iter().any(|k| meta.has(k)) {
            return Err(S3ecError::MixedVersions);
        }
        let cek = required(meta, CEK_ALG)?;
        if cek != CEK_ALG_V2 {
            // AES/CBC/PKCS5Padding is unauthenticated: never decrypted here.
            return Err(S3ecError::Unsupported(format!("{CEK_ALG} {cek}")));
        }
        if let Some(len) = meta.get(TAG_LEN_KEY) {
            if len != "128" {
                return Err(S3ecError::Invalid(TAG_LEN_KEY, len.to_owned()));
            }
        }
        let wrap = match required(meta, WRAP_ALG)? {
            "AES/GCM" => Wrap::AesGcm,
            "kms+context" => Wrap::KmsContext,
            other => return Err(S3ecError::Unsupported(format!("{WRAP_ALG} {other}"))),
        };
        Ok(Record {
            content: Content::V2 {
                iv: fixed(IV, required(meta, IV)?)?,
            },
            wrap,
            encrypted_data_key: data_key_blob(KEY_V2, required(meta, KEY_V2)?)?,
            context: json_map(MATDESC, meta.get(MATDESC))?,
        })
    }

    fn parse_v3(meta: &Metadata) -> Result<Self, S3ecError> {
        let v2_only = [IV, MATDESC, WRAP_ALG, CEK_ALG, TAG_LEN_KEY];
        if v2_only.iter().any(|k| meta.has(k)) {
            return Err(S3ecError::MixedVersions);
        }
        let cipher = required(meta, CONTENT_CIPHER_V3)?;
        if cipher != SUITE_V3_TEXT {
            return Err(S3ecError::Unsupported(format!(
                "{CONTENT_CIPHER_V3} {cipher}"
            )));
        }
        let (wrap, context_key) = match required(meta, WRAP_ALG_V3)? {
            "02" => (Wrap::AesGcm, MATDESC_V3),
            "12" => (Wrap::KmsContext, CONTEXT_V3),
            other => return Err(S3ecError::Unsupported(format!("{WRAP_ALG_V3} {other}"))),
        };
        Ok(Record {
            content: Content::V3 {
                message_id: fixed(MESSAGE_ID_V3, required(meta, MESSAGE_ID_V3)?)?,
                commitment: fixed(COMMITMENT_V3, required(meta, COMMITMENT_V3)?)?,
            },
            wrap,
            encrypted_data_key: data_key_blob(KEY_V3, required(meta, KEY_V3)?)?,
            context: json_map(context_key, meta.get(context_key))?,
        })
    }

    /// The `AES/GCM` wrap's AAD: the content cipher's name.
    pub fn wrap_aad(&self) -> &'static [u8] {
        self.content.cipher_name().as_bytes()
    }

    /// Opens an `AES/GCM` wrap with the first of `keks` it opens under; that key too.
    pub fn unwrap_local<'k>(
        &self,
        keks: impl IntoIterator<Item = &'k Kek>,
    ) -> Result<(DataKey, &'k Kek), S3ecError> {
        if self.wrap != Wrap::AesGcm {
            return Err(S3ecError::Unwrap);
        }
        keks.into_iter()
            .find_map(|k| {
                k.unwrap_with_aad(&self.encrypted_data_key, self.wrap_aad())
                    .ok()
                    .map(|dek| (dek, k))
            })
            .ok_or(S3ecError::Unwrap)
    }

    /// The encryption context to open a `kms+context` blob with: the stored one, which must
    /// name this object's content cipher in its reserved entry (else a blob made for one suite
    /// could open an object of another).
    pub fn kms_context(&self) -> Result<&BTreeMap<String, String>, S3ecError> {
        match self.context.get(KMS_CONTEXT_CEK_ALG) {
            Some(v) if v == self.content.cipher_name() => Ok(&self.context),
            _ => Err(S3ecError::ContextCipher),
        }
    }

    /// The content key, IV and AAD once the data key is known. For version 3 the commitment
    /// is derived and compared in constant time before the content key is derived.
    pub fn content_cipher(&self, data_key: &DataKey) -> Result<ContentCipher, S3ecError> {
        match &self.content {
            Content::V2 { iv } => Ok(ContentCipher {
                key: Zeroizing::new(*data_key.expose()),
                iv: *iv,
                aad: &[],
            }),
            Content::V3 {
                message_id,
                commitment,
            } => {
                let prk = hkdf::Salt::new(HKDF_SHA512, message_id).extract(data_key.expose());
                let mut derived = [0u8; COMMITMENT_LEN];
                prk.expand(&[&SUITE_V3, INFO_COMMIT], Len(COMMITMENT_LEN))
                    .and_then(|okm| okm.fill(&mut derived))
                    .expect("28 bytes is within HKDF-SHA512's output limit");
                if !bool::from(derived.ct_eq(commitment)) {
                    return Err(S3ecError::Commitment);
                }
                let mut key = Zeroizing::new([0u8; KEY_LEN]);
                prk.expand(&[&SUITE_V3, INFO_DERIVE], Len(KEY_LEN))
                    .and_then(|okm| okm.fill(&mut key[..]))
                    .expect("32 bytes is within HKDF-SHA512's output limit");
                Ok(ContentCipher {
                    key,
                    iv: V3_IV,
                    aad: &SUITE_V3,
                })
            }
        }
    }

    /// A new version 3 record for `data_key`, wrapped as `wrap` says (`encrypted_data_key`
    /// already made by the caller: KMS's blob, or [`Record::wrap_aad`]'s wrap under a local
    /// key), with a fresh message id.
    pub fn new_v3(
        data_key: &DataKey,
        wrap: Wrap,
        encrypted_data_key: Vec<u8>,
        context: BTreeMap<String, String>,
        message_id: [u8; MESSAGE_ID_LEN],
    ) -> (Self, ContentCipher) {
        let prk = hkdf::Salt::new(HKDF_SHA512, &message_id).extract(data_key.expose());
        let mut commitment = [0u8; COMMITMENT_LEN];
        prk.expand(&[&SUITE_V3, INFO_COMMIT], Len(COMMITMENT_LEN))
            .and_then(|okm| okm.fill(&mut commitment))
            .expect("28 bytes is within HKDF-SHA512's output limit");
        let record = Record {
            content: Content::V3 {
                message_id,
                commitment,
            },
            wrap,
            encrypted_data_key,
            context,
        };
        let cipher = record
            .content_cipher(data_key)
            .expect("the commitment was derived from this key");
        (record, cipher)
    }

    /// Writes the record into object metadata headers, as version 3 stores it there.
    pub fn write_headers(&self, h: &mut HeaderMap) -> Result<(), S3ecError> {
        let Content::V3 {
            message_id,
            commitment,
        } = &self.content
        else {
            return Err(S3ecError::Unsupported(
                "writing format version 2".to_owned(),
            ));
        };
        let (wrap, context_key) = match self.wrap {
            Wrap::AesGcm => ("02", MATDESC_V3),
            Wrap::KmsContext => ("12", CONTEXT_V3),
        };
        let context = serde_json::to_string(&self.context).expect("a map of strings");
        let entries = [
            (CONTENT_CIPHER_V3, SUITE_V3_TEXT.to_owned()),
            (KEY_V3, STANDARD.encode(&self.encrypted_data_key)),
            (WRAP_ALG_V3, wrap.to_owned()),
            (COMMITMENT_V3, STANDARD.encode(commitment)),
            (MESSAGE_ID_V3, STANDARD.encode(message_id)),
            (context_key, context),
        ];
        for (k, v) in entries {
            let name =
                HeaderName::try_from(format!("{USER_META_PREFIX}{k}")).expect("lowercase ASCII");
            let value = HeaderValue::try_from(v)
                .map_err(|_| S3ecError::Invalid(context_key, "not a header value".to_owned()))?;
            h.insert(name, value);
        }
        Ok(())
    }
}

/// The key, IV and AAD of an object's one GCM message.
pub struct ContentCipher {
    key: Zeroizing<[u8; KEY_LEN]>,
    iv: [u8; IV_LEN],
    aad: &'static [u8],
}

impl ContentCipher {
    /// A stream over the whole message, authenticated by its tag.
    pub fn stream(&self) -> gcm::Gcm {
        gcm::Gcm::new(&self.key, &self.iv, self.aad)
    }

    /// Counter-mode decryption from plaintext byte `offset`, unauthenticated.
    pub fn range_from(&self, offset: u64) -> gcm::RangeCipher {
        gcm::Gcm::keystream_at(&self.key, &self.iv, offset)
    }
}

impl std::fmt::Debug for ContentCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContentCipher").finish_non_exhaustive()
    }
}

/// The plaintext length of a stored S3EC object of `stored` bytes (message and tag).
pub fn plaintext_len(stored: u64) -> Option<u64> {
    stored
        .checked_sub(TAG_LEN as u64)
        .filter(|&n| n <= MAX_PLAINTEXT_LEN)
}

/// The stored bytes that hold plaintext `first..end` for a ranged read: whole AES blocks.
pub fn cipher_span(first: u64, end: u64) -> (u64, u64) {
    let block = 16;
    (first - first % block, end.div_ceil(block) * block)
}

/// A fresh version 3 message id.
pub fn message_id() -> [u8; MESSAGE_ID_LEN] {
    let mut id = [0u8; MESSAGE_ID_LEN];
    aws_lc_rs::rand::fill(&mut id).expect("the system RNG works");
    id
}

struct Len(usize);

impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

fn required<'m>(meta: &'m Metadata, key: &'static str) -> Result<&'m str, S3ecError> {
    meta.get(key).ok_or(S3ecError::Missing(key))
}

fn fixed<const N: usize>(key: &'static str, b64: &str) -> Result<[u8; N], S3ecError> {
    let bytes = STANDARD
        .decode(b64.trim())
        .map_err(|_| S3ecError::Invalid(key, "not base64".to_owned()))?;
    bytes
        .try_into()
        .map_err(|b: Vec<u8>| S3ecError::Invalid(key, format!("{} bytes, not {N}", b.len())))
}

fn data_key_blob(key: &'static str, b64: &str) -> Result<Vec<u8>, S3ecError> {
    let bytes = STANDARD
        .decode(b64.trim())
        .map_err(|_| S3ecError::Invalid(key, "not base64".to_owned()))?;
    if bytes.is_empty() || bytes.len() > MAX_WRAPPED_DEK_LEN {
        return Err(S3ecError::Invalid(key, format!("{} bytes", bytes.len())));
    }
    Ok(bytes)
}

/// A JSON map of strings; absent is the empty map.
fn json_map(key: &'static str, text: Option<&str>) -> Result<BTreeMap<String, String>, S3ecError> {
    let Some(text) = text else {
        return Ok(BTreeMap::new());
    };
    if text.len() > MAX_CONTEXT_BYTES {
        return Err(S3ecError::Invalid(key, "too long".to_owned()));
    }
    serde_json::from_str(text).map_err(|_| S3ecError::Invalid(key, "not a JSON map".to_owned()))
}

#[cfg(test)]
mod tests;
