//! The flexible checksums S3 accepts (`x-amz-checksum-*`), computed over the decoded payload.
//!
//! Values travel base64-encoded, CRCs as their big-endian bytes.
//!
//! Reference: <https://docs.aws.amazon.com/AmazonS3/latest/userguide/checking-object-integrity.html>

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use crc_fast::CrcAlgorithm;
use sha1::Sha1;
use sha2::{Digest as _, Sha256};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChecksumAlgorithm {
    Crc32,
    Crc32c,
    Crc64Nvme,
    Sha1,
    Sha256,
}

impl ChecksumAlgorithm {
    pub const ALL: [ChecksumAlgorithm; 5] = [
        ChecksumAlgorithm::Crc32,
        ChecksumAlgorithm::Crc32c,
        ChecksumAlgorithm::Crc64Nvme,
        ChecksumAlgorithm::Sha1,
        ChecksumAlgorithm::Sha256,
    ];

    /// The header (or trailer) that carries this checksum.
    pub fn header_name(self) -> &'static str {
        match self {
            ChecksumAlgorithm::Crc32 => "x-amz-checksum-crc32",
            ChecksumAlgorithm::Crc32c => "x-amz-checksum-crc32c",
            ChecksumAlgorithm::Crc64Nvme => "x-amz-checksum-crc64nvme",
            ChecksumAlgorithm::Sha1 => "x-amz-checksum-sha1",
            ChecksumAlgorithm::Sha256 => "x-amz-checksum-sha256",
        }
    }

    /// The name AWS uses in its error messages ("The CRC32 you specified ...").
    pub fn display_name(self) -> &'static str {
        match self {
            ChecksumAlgorithm::Crc32 => "CRC32",
            ChecksumAlgorithm::Crc32c => "CRC32C",
            ChecksumAlgorithm::Crc64Nvme => "CRC64NVME",
            ChecksumAlgorithm::Sha1 => "SHA1",
            ChecksumAlgorithm::Sha256 => "SHA256",
        }
    }

    /// Matches the exact lowercase header name; `x-amz-checksum-type` and
    /// `x-amz-checksum-algorithm` are other headers and do not match.
    pub fn from_header_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.header_name() == name)
    }

    /// Length of the raw digest in bytes.
    pub fn digest_len(self) -> usize {
        match self {
            ChecksumAlgorithm::Crc32 | ChecksumAlgorithm::Crc32c => 4,
            ChecksumAlgorithm::Crc64Nvme => 8,
            ChecksumAlgorithm::Sha1 => 20,
            ChecksumAlgorithm::Sha256 => 32,
        }
    }

    /// Decodes a header value: standard base64 of exactly `digest_len` bytes.
    pub fn decode(self, value: &str) -> Option<Vec<u8>> {
        STANDARD
            .decode(value)
            .ok()
            .filter(|raw| raw.len() == self.digest_len())
    }

    pub fn encode(digest: &[u8]) -> String {
        STANDARD.encode(digest)
    }
}

/// A running checksum.
#[derive(Debug, Clone)]
pub struct Checksummer(Inner);

#[derive(Debug, Clone)]
enum Inner {
    Crc32(crc_fast::Digest),
    Crc64(crc_fast::Digest),
    Sha1(Sha1),
    Sha256(Sha256),
}

impl Checksummer {
    pub fn new(algorithm: ChecksumAlgorithm) -> Self {
        Checksummer(match algorithm {
            ChecksumAlgorithm::Crc32 => {
                Inner::Crc32(crc_fast::Digest::new(CrcAlgorithm::Crc32IsoHdlc))
            }
            ChecksumAlgorithm::Crc32c => {
                Inner::Crc32(crc_fast::Digest::new(CrcAlgorithm::Crc32Iscsi))
            }
            ChecksumAlgorithm::Crc64Nvme => {
                Inner::Crc64(crc_fast::Digest::new(CrcAlgorithm::Crc64Nvme))
            }
            ChecksumAlgorithm::Sha1 => Inner::Sha1(Sha1::new()),
            ChecksumAlgorithm::Sha256 => Inner::Sha256(Sha256::new()),
        })
    }

    pub fn update(&mut self, data: &[u8]) {
        match &mut self.0 {
            Inner::Crc32(d) | Inner::Crc64(d) => d.update(data),
            Inner::Sha1(h) => h.update(data),
            Inner::Sha256(h) => h.update(data),
        }
    }

    /// The raw digest (CRCs big-endian, as S3 encodes them).
    pub fn finalize(self) -> Vec<u8> {
        match self.0 {
            Inner::Crc32(d) => {
                let crc = u32::try_from(d.finalize()).expect("a CRC-32 fits in 32 bits");
                crc.to_be_bytes().to_vec()
            }
            Inner::Crc64(d) => d.finalize().to_be_bytes().to_vec(),
            Inner::Sha1(h) => h.finalize().to_vec(),
            Inner::Sha256(h) => h.finalize().to_vec(),
        }
    }
}

/// The checksum of a whole buffer.
pub fn checksum(algorithm: ChecksumAlgorithm, data: &[u8]) -> Vec<u8> {
    let mut c = Checksummer::new(algorithm);
    c.update(data);
    c.finalize()
}
