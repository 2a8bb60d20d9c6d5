//! Client-side encryption: the stored format ([`format`], specified in `docs/format.md`) and the
//! streaming bodies that apply it. [`EncryptBody`] turns a plaintext request body into one
//! ciphertext segment; [`DecryptBody`] turns fetched ciphertext chunks back into a plaintext range,
//! releasing each chunk only after its tag verifies.
//!
//! Both bodies drop the trailers of the body they wrap: a request's trailers (`x-amz-checksum-*`)
//! describe the plaintext and must neither be stored nor be checked against the ciphertext, and a
//! response's trailers describe the ciphertext the client never sees.

mod decrypt;
mod encrypt;
pub mod format;
pub mod offline;
pub mod s3ec;
mod segments;

pub use decrypt::DecryptBody;
pub use encrypt::EncryptBody;
pub use segments::{DecryptSegments, Segment};

use crate::body::BoxError;

/// Why an encrypted or decrypted stream failed. After an error a body yields nothing more.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("the wrapped body failed")]
    Body(#[source] BoxError),
    #[error(
        "the plaintext body does not have its declared {declared} bytes ({received} received)"
    )]
    PlaintextLength { declared: u64, received: u64 },
    #[error("the ciphertext ended after {received} of {expected} bytes")]
    Truncated { expected: u64, received: u64 },
    #[error("the ciphertext continues past its {expected} bytes")]
    TrailingData { expected: u64 },
    #[error("ciphertext chunk {index} is not authentic")]
    ChunkAuthentication { index: u32 },
    #[error("ciphertext chunk {index} belongs to another upload of this part")]
    SegmentMismatch { index: u32 },
    /// An S3 Encryption Client object's one tag (`s3ec`).
    #[error("the object's authentication tag does not verify")]
    ObjectAuthentication,
}

#[cfg(test)]
mod tests;
