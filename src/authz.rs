//! Authorization: the verified key may do the routed operation, on the addressed bucket and
//! on a copy's source bucket (docs/config.md, "Operation grants"); an anonymous request may
//! only read a bucket opened to anonymous reads (docs/config.md, "Anonymous reads").
//!
//! [`Authorized`] is the only proof the upstream accepts: `upstream::UpstreamClient::authorized`
//! takes one, and every request the proxy sends for a client (the client's own, and the HEADs,
//! seals and part lists it sends on the client's behalf) goes through the handle it returns.
//! Only [`authorize`] makes one.

use crate::auth::{AuthError, ClientIdentity, Principal};
use crate::error::{S3Code, S3Error};
use crate::rules::ByBucket;
use crate::s3::route::{Access, Needs, Operation, Routed};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthzError {
    #[error("Access Denied: this access key may not use bucket '{0}'.")]
    BucketNotAllowed(String),
    #[error("Access Denied: this access key may not use {0} ('{1}' is not among its operations).")]
    OperationNotAllowed(&'static str, &'static str),
    /// An unsigned request that no anonymous rule admits: answered exactly as an unsigned
    /// request was before anonymous reads existed, so that nothing tells a bucket with a rule
    /// for other operations from one without.
    #[error("{}", AuthError::MissingAuthentication)]
    NotAnonymous,
}

impl S3Error for AuthzError {
    fn code(&self) -> S3Code {
        match self {
            AuthzError::BucketNotAllowed(_) | AuthzError::OperationNotAllowed(..) => {
                S3Code::AccessDenied
            }
            AuthzError::NotAnonymous => AuthError::MissingAuthentication.code(),
        }
    }
}

// === Anonymous reads ===

/// What one `[[bucket]] anonymous` table opens to requests without authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anonymous {
    /// GetObject and HeadObject.
    pub read: bool,
    /// `ListObjects` and `ListObjectsV2`.
    pub list: bool,
    /// The `[[upstream]]` whose credentials serve these requests.
    pub upstream: String,
}

impl Anonymous {
    /// Whether `op` is one this table opens. The set is closed: object reads and the two
    /// object listings, nothing that writes, deletes, administers or reads other metadata.
    fn admits(&self, op: Operation) -> bool {
        match op {
            Operation::GetObject | Operation::HeadObject => self.read,
            Operation::ListObjects | Operation::ListObjectsV2 => self.list,
            _ => false,
        }
    }
}

/// Bucket glob → anonymous access; the most specific pattern decides (`crate::rules`), so
/// `anonymous = { read = false }` closes buckets that a broader pattern opens.
#[derive(Debug, Default)]
pub struct AnonymousAccess(ByBucket<Anonymous>);

impl AnonymousAccess {
    /// No bucket open to anonymous requests (the default).
    pub fn none() -> Self {
        AnonymousAccess(ByBucket::default())
    }

    /// From `(bucket glob, access)` pairs in config order.
    pub fn new(
        sets: impl IntoIterator<Item = (String, Anonymous)>,
    ) -> Result<Self, globset::Error> {
        Ok(AnonymousAccess(ByBucket::new(sets)?))
    }

    /// The anonymous access of `bucket`, if any operation is open.
    pub fn for_bucket(&self, bucket: &str) -> Option<&Anonymous> {
        self.0.get(bucket).filter(|a| a.read || a.list)
    }
}

// === Authorized ===

/// A routed request that its principal may send.
#[derive(Debug)]
pub struct Authorized {
    routed: Routed,
    principal: Principal,
    upstream: String,
}

impl Authorized {
    pub fn routed(&self) -> &Routed {
        &self.routed
    }

    pub fn principal(&self) -> &Principal {
        &self.principal
    }

    /// The name of the `[[upstream]]` that serves it: the client key's, or for an anonymous
    /// request the bucket's `anonymous` table's.
    pub fn upstream(&self) -> &str {
        &self.upstream
    }
}

/// Checks the operation's class, the addressed bucket and a copy's source bucket (which the
/// key must be allowed to read) against the key's grants; an anonymous request against the
/// bucket's anonymous access.
pub fn authorize(
    routed: Routed,
    principal: Principal,
    anonymous: &AnonymousAccess,
) -> Result<Authorized, AuthzError> {
    let upstream = match &principal {
        Principal::Client(id) => {
            check(&routed, id)?;
            id.upstream.clone()
        }
        Principal::Anonymous => admit_anonymous(&routed, anonymous)?.upstream.clone(),
    };
    Ok(Authorized {
        routed,
        principal,
        upstream,
    })
}

fn admit_anonymous<'a>(
    routed: &Routed,
    anonymous: &'a AnonymousAccess,
) -> Result<&'a Anonymous, AuthzError> {
    routed
        .target
        .bucket()
        .and_then(|b| anonymous.for_bucket(b))
        .filter(|a| routed.copy_source.is_none() && a.admits(routed.op))
        .ok_or(AuthzError::NotAnonymous)
}

fn check(routed: &Routed, id: &ClientIdentity) -> Result<(), AuthzError> {
    let op = routed.op;
    let class_granted = |class: Access| {
        if id.operations.allows(class) {
            Ok(())
        } else {
            Err(AuthzError::OperationNotAllowed(op.as_str(), class.as_str()))
        }
    };
    let bucket_allowed = |b: &str| {
        if id.buckets.allows(b) {
            Ok(())
        } else {
            Err(AuthzError::BucketNotAllowed(b.to_owned()))
        }
    };
    if let Needs::Class(class) = op.needs() {
        class_granted(class)?;
    }
    if let Some(b) = routed.target.bucket() {
        bucket_allowed(b)?;
    }
    if let Some(src) = &routed.copy_source {
        bucket_allowed(&src.bucket)?;
        class_granted(Access::Read)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
