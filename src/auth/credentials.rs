//! Client credentials: who may call the proxy, with which secret, on which buckets.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use arc_swap::ArcSwapOption;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::auth::sigv4::SigningKey;
use crate::s3::operation::Access;

/// A secret access key. Zeroized on drop, redacted in `Debug`, compared in constant time.
///
/// It keeps the SigV4 signing key it last derived: `kSigning` depends only on the secret, the
/// date and the region, so one derivation (four HMACs) serves every request of a day instead
/// of being repeated per request. Clones share that cache.
#[derive(Clone)]
pub struct SecretKey {
    secret: Zeroizing<String>,
    day_key: Arc<ArcSwapOption<DayKey>>,
}

/// A signing key and the scope it was derived for.
struct DayKey {
    date: String,
    region: String,
    key: SigningKey,
}

impl SecretKey {
    pub fn new(s: impl Into<String>) -> Self {
        SecretKey {
            secret: Zeroizing::new(s.into()),
            day_key: Arc::default(),
        }
    }

    /// The only way to read the secret.
    pub fn expose(&self) -> &str {
        &self.secret
    }

    /// `kSigning` for `date` (`YYYYMMDD`) and `region`, from the cache when the last key
    /// derived was for the same scope.
    pub fn signing_key(&self, date: &str, region: &str) -> SigningKey {
        if let Some(cached) = self.day_key.load().as_deref() {
            if cached.date == date && cached.region == region {
                return cached.key.clone();
            }
        }
        let key = SigningKey::derive(&self.secret, date, region);
        self.day_key.store(Some(Arc::new(DayKey {
            date: date.to_owned(),
            region: region.to_owned(),
            key: key.clone(),
        })));
        key
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

impl PartialEq for SecretKey {
    fn eq(&self, other: &Self) -> bool {
        self.secret.as_bytes().ct_eq(other.secret.as_bytes()).into()
    }
}

impl Eq for SecretKey {}

/// Bucket name patterns (globs) a client key may use. They match case-insensitively: bucket
/// names are lower case unless `legacy_bucket_names` is on, and then a backend that resolves
/// names case-insensitively must not see `VAULT` escape a rule for `vault`.
#[derive(Debug, Clone)]
pub struct BucketPatterns {
    set: globset::GlobSet,
    any: bool,
    /// As configured, for `s3seal check`.
    patterns: Vec<String>,
}

impl BucketPatterns {
    /// Every bucket.
    pub fn any() -> Self {
        Self::new(&["*".to_owned()]).expect("static glob")
    }

    pub fn new(patterns: &[String]) -> Result<Self, globset::Error> {
        let mut b = globset::GlobSetBuilder::new();
        for p in patterns {
            b.add(crate::rules::glob(p)?);
        }
        Ok(BucketPatterns {
            set: b.build()?,
            any: patterns.iter().any(|p| p == "*"),
            patterns: patterns.to_vec(),
        })
    }

    pub fn allows(&self, bucket: &str) -> bool {
        self.any || self.set.is_match(bucket)
    }

    /// Whether every bucket is allowed (`"*"` is among the patterns).
    pub fn is_any(&self) -> bool {
        self.any
    }

    /// The patterns as configured.
    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }
}

/// The classes of operations a client key may use (`operations` in `[[client]]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grants(Vec<Access>);

impl Grants {
    pub fn new(classes: impl IntoIterator<Item = Access>) -> Self {
        let mut v: Vec<Access> = classes.into_iter().collect();
        v.sort_unstable();
        v.dedup();
        Grants(v)
    }

    pub fn allows(&self, class: Access) -> bool {
        self.0.contains(&class)
    }

    pub fn iter(&self) -> impl Iterator<Item = Access> + '_ {
        self.0.iter().copied()
    }
}

impl Default for Grants {
    /// See [`Access::DEFAULT`].
    fn default() -> Self {
        Grants::new(Access::DEFAULT)
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
    pub operations: Grants,
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

    /// Every key, by access key id.
    pub fn iter(&self) -> impl Iterator<Item = &ClientIdentity> {
        let mut ids: Vec<&ClientIdentity> = self.0.values().map(AsRef::as_ref).collect();
        ids.sort_by(|a, b| a.access_key_id.cmp(&b.access_key_id));
        ids.into_iter()
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

    /// The cached signing key is the derived one, and a new scope (the next day, another
    /// region) derives anew rather than reusing the cached key.
    #[test]
    fn signing_keys_follow_the_scope() {
        let secret = SecretKey::new("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY");
        let sign = |k: SigningKey| k.sign(b"string to sign");
        for (date, region) in [
            ("20130524", "us-east-1"),
            ("20130524", "us-east-1"),
            ("20130525", "us-east-1"),
            ("20130525", "eu-west-1"),
            ("20130524", "us-east-1"),
        ] {
            assert_eq!(
                sign(secret.signing_key(date, region)),
                sign(SigningKey::derive(secret.expose(), date, region)),
                "{date} {region}"
            );
        }
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
