//! AES-256-GCM as a stream: counter mode and GHASH fed piece by piece, the tag computed at the
//! end. The S3 Encryption Client seals a whole object under one tag, so a reader that must not
//! hold the whole object decrypts as the bytes arrive and checks the tag last.
//!
//! Reference: NIST SP 800-38D §7 (GCM-AE/AD): `J0 = IV || 0^31 || 1` for a 96-bit IV, the
//! keystream starts at `inc32(J0)`, `S = GHASH_H(A || 0^v || C || 0^u || [len(A)]64 ||
//! [len(C)]64)`, `T = E_K(J0) XOR S`.

use aes::cipher::{BlockEncrypt as _, KeyInit as _};
use aes::Aes256;
use ctr::cipher::{KeyIvInit as _, StreamCipher as _, StreamCipherSeek as _};
use ghash::universal_hash::UniversalHash as _;
use ghash::GHash;
use subtle::ConstantTimeEq as _;
use zeroize::Zeroizing;

/// GCM's IV length as the S3 Encryption Client uses it (both formats).
pub const IV_LEN: usize = 12;
/// The tag length both formats use (`x-amz-tag-len = 128`).
pub const TAG_LEN: usize = 16;
const BLOCK: usize = 16;

type Ctr = ctr::Ctr32BE<Aes256>;

/// One direction of one GCM message. Feed it the message in order with [`Gcm::decrypt`] or
/// [`Gcm::encrypt`], then take the tag with [`Gcm::tag`] or compare it with [`Gcm::verify`].
pub struct Gcm {
    ctr: Ctr,
    ghash: GHash,
    /// `E_K(J0)`, the mask of the tag.
    mask: Zeroizing<[u8; BLOCK]>,
    /// Ciphertext not yet a whole GHASH block.
    partial: [u8; BLOCK],
    partial_len: usize,
    aad_len: u64,
    text_len: u64,
}

impl Gcm {
    pub fn new(key: &[u8; 32], iv: &[u8; IV_LEN], aad: &[u8]) -> Self {
        let aes = Aes256::new(key.into());
        let mut h = [0u8; BLOCK];
        aes.encrypt_block((&mut h).into());
        let mut j0 = [0u8; BLOCK];
        j0[..IV_LEN].copy_from_slice(iv);
        j0[BLOCK - 1] = 1;
        let mut mask = Zeroizing::new(j0);
        aes.encrypt_block((&mut *mask).into());
        // The keystream starts at inc32(J0).
        let mut first = j0;
        first[BLOCK - 1] = 2;
        let ctr = Ctr::new(key.into(), (&first).into());
        let mut ghash = GHash::new((&h).into());
        ghash.update_padded(aad);
        Gcm {
            ctr,
            ghash,
            mask,
            partial: [0; BLOCK],
            partial_len: 0,
            aad_len: aad.len() as u64,
            text_len: 0,
        }
    }

    /// The keystream of a message from plaintext byte `offset` on, with no authentication: a
    /// ranged read of part of a message whose tag cannot be checked.
    pub fn keystream_at(key: &[u8; 32], iv: &[u8; IV_LEN], offset: u64) -> RangeCipher {
        let mut first = [0u8; BLOCK];
        first[..IV_LEN].copy_from_slice(iv);
        first[BLOCK - 1] = 2;
        let mut ctr = Ctr::new(key.into(), (&first).into());
        ctr.seek(offset);
        RangeCipher(ctr)
    }

    /// Decrypts the next ciphertext bytes in place.
    pub fn decrypt(&mut self, buf: &mut [u8]) {
        self.absorb(buf);
        self.ctr.apply_keystream(buf);
    }

    /// Encrypts the next plaintext bytes in place.
    pub fn encrypt(&mut self, buf: &mut [u8]) {
        self.ctr.apply_keystream(buf);
        self.absorb(buf);
    }

    /// The tag of everything fed so far.
    pub fn tag(mut self) -> [u8; TAG_LEN] {
        if self.partial_len > 0 {
            self.ghash.update_padded(&self.partial[..self.partial_len]);
        }
        let mut lengths = [0u8; BLOCK];
        lengths[..8].copy_from_slice(&(self.aad_len * 8).to_be_bytes());
        lengths[8..].copy_from_slice(&(self.text_len * 8).to_be_bytes());
        self.ghash.update(&[lengths.into()]);
        let s = self.ghash.finalize();
        let mut tag = [0u8; TAG_LEN];
        for (t, (s, m)) in tag.iter_mut().zip(s.iter().zip(self.mask.iter())) {
            *t = s ^ m;
        }
        tag
    }

    /// Whether `stored` is the tag of everything fed so far, compared in constant time.
    pub fn verify(self, stored: &[u8]) -> bool {
        stored.len() == TAG_LEN && bool::from(self.tag().ct_eq(stored))
    }

    /// Feeds ciphertext to GHASH, a block at a time; a short tail waits for the next call.
    fn absorb(&mut self, mut text: &[u8]) {
        self.text_len += text.len() as u64;
        if self.partial_len > 0 {
            let n = (BLOCK - self.partial_len).min(text.len());
            self.partial[self.partial_len..self.partial_len + n].copy_from_slice(&text[..n]);
            self.partial_len += n;
            text = &text[n..];
            if self.partial_len < BLOCK {
                return;
            }
            self.ghash.update(&[self.partial.into()]);
            self.partial_len = 0;
        }
        let whole = text.len() - text.len() % BLOCK;
        if whole > 0 {
            // Whole blocks: `update_padded` pads nothing when the length is a multiple of 16.
            self.ghash.update_padded(&text[..whole]);
        }
        let rest = &text[whole..];
        self.partial[..rest.len()].copy_from_slice(rest);
        self.partial_len = rest.len();
    }
}

/// Counter-mode decryption from a chosen offset (see [`Gcm::keystream_at`]).
pub struct RangeCipher(Ctr);

impl RangeCipher {
    pub fn apply(&mut self, buf: &mut [u8]) {
        self.0.apply_keystream(buf);
    }
}
