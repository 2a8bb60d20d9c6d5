//! Client credentials: who may call the proxy, with which secret, on which buckets.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// A secret access key. Zeroized on drop, redacted in `Debug`, compared in constant time.
#[derive(Clone)]
pub struct SecretKey(Zeroizing<String>);

impl SecretKey {
    pub fn new(s: impl Into<String>) -> Self {
        SecretKey(Zeroizing::new(s.into()))
    }

    /// The only way to read the secret.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

impl PartialEq for SecretKey {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_bytes().ct_eq(other.0.as_bytes()).into()
    }
}

impl Eq for SecretKey {}

/// Bucket name patterns (globs) a client key may use.
#[derive(Debug, Clone)]
pub struct BucketPatterns(globset::GlobSet);

impl BucketPatterns {
    /// Every bucket.
    pub fn any() -> Self {
        let mut b = globset::GlobSetBuilder::new();
        b.add(globset::Glob::new("*").expect("static glob"));
        BucketPatterns(b.build().expect("static glob set"))
    }

    pub fn new(patterns: &[String]) -> Result<Self, globset::Error> {
        let mut b = globset::GlobSetBuilder::new();
        for p in patterns {
            b.add(
                globset::GlobBuilder::new(p)
                    .literal_separator(false)
                    .build()?,
            );
        }
        Ok(BucketPatterns(b.build()?))
    }

    pub fn allows(&self, bucket: &str) -> bool {
        self.0.is_match(bucket)
    }
}

/// One client access key as configured.
#[derive(Debug)]
pub struct ClientIdentity {
    pub access_key_id: String,
    pub secret: SecretKey,
    /// Name of the upstream this key's requests go to. `auth` never sees upstream secrets.
    pub upstream: String,
    pub buckets: BucketPatterns,
}

/// Access key id → identity. Immutable once built.
#[derive(Debug, Default, Clone)]
pub struct ClientKeys(HashMap<String, Arc<ClientIdentity>>);

impl ClientKeys {
    pub fn new(ids: impl IntoIterator<Item = ClientIdentity>) -> Self {
        ClientKeys(
            ids.into_iter()
                .map(|id| (id.access_key_id.clone(), Arc::new(id)))
                .collect(),
        )
    }

    pub fn get(&self, access_key_id: &str) -> Option<&Arc<ClientIdentity>> {
        self.0.get(access_key_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_is_redacted_and_compares_by_value() {
        let a = SecretKey::new("wJalrXUtnFEMI");
        assert_eq!(format!("{a:?}"), "SecretKey(<redacted>)");
        assert_eq!(a, SecretKey::new("wJalrXUtnFEMI"));
        assert_ne!(a, SecretKey::new("wJalrXUtnFEMJ"));
    }

    #[test]
    fn bucket_patterns_glob() {
        let p = BucketPatterns::new(&["logs-*".into(), "exact".into()]).unwrap();
        assert!(p.allows("logs-2026"));
        assert!(p.allows("exact"));
        assert!(!p.allows("exactly"));
        assert!(!p.allows("other"));
        assert!(BucketPatterns::any().allows("whatever"));
    }
}
