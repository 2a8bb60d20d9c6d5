//! Authorization: the verified key may do the routed operation, on the addressed bucket and
//! on a copy's source bucket (docs/config.md, "Operation grants").
//!
//! [`Authorized`] is the only proof the upstream accepts: `upstream::UpstreamClient::authorized`
//! takes one, and every request the proxy sends for a client (the client's own, and the HEADs,
//! seals and part lists it sends on the client's behalf) goes through the handle it returns.
//! Only [`authorize`] makes one.

use std::sync::Arc;

use crate::auth::ClientIdentity;
use crate::error::{S3Code, S3Error};
use crate::s3::route::{Access, Needs, Routed};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthzError {
    #[error("Access Denied: this access key may not use bucket '{0}'.")]
    BucketNotAllowed(String),
    #[error("Access Denied: this access key may not use {0} ('{1}' is not among its operations).")]
    OperationNotAllowed(&'static str, &'static str),
}

impl S3Error for AuthzError {
    fn code(&self) -> S3Code {
        match self {
            AuthzError::BucketNotAllowed(_) | AuthzError::OperationNotAllowed(..) => {
                S3Code::AccessDenied
            }
        }
    }
}

/// A routed request that its verified key may send.
#[derive(Debug)]
pub struct Authorized {
    routed: Routed,
    identity: Arc<ClientIdentity>,
}

impl Authorized {
    pub fn routed(&self) -> &Routed {
        &self.routed
    }

    pub fn identity(&self) -> &Arc<ClientIdentity> {
        &self.identity
    }
}

/// Checks the operation's class, the addressed bucket and a copy's source bucket (which the
/// key must be allowed to read) against the key's grants.
pub fn authorize(routed: Routed, identity: Arc<ClientIdentity>) -> Result<Authorized, AuthzError> {
    check(&routed, &identity)?;
    Ok(Authorized { routed, identity })
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
