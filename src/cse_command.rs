//! What the operator's commands over a bucket with client-side encryption (`s3seal rewrap`,
//! `s3seal encrypt`, `s3seal convert`) share: finding the bucket's rule and upstream, acting with the upstream's
//! own credentials, and visiting every object but the proxy's own.

use std::sync::Arc;

use crate::bulk::{self, Options};
use crate::config::Config;
use crate::cse::Rule;
use crate::upstream::Sender;

/// Why a command over a bucket with client-side encryption stopped.
#[derive(Debug, thiserror::Error)]
pub enum EncryptedBucketError {
    #[error("bucket {0} has no client-side encryption in the config")]
    NotEncrypted(String),
    #[error("bucket {0} has no encryption.s3ec in the config: its rule does not read the S3 Encryption Client's format")]
    NoS3ec(String),
    #[error(transparent)]
    Upstream(#[from] crate::upstream::ChooseError),
    #[error("listing the bucket failed: {0}")]
    List(String),
}

/// Runs `each(client, rule, key)` on every object of `bucket` that `opts` selects, as
/// [`bulk::for_each`] does. The command is the operator's: it acts with the upstream's
/// credentials and serves no client. Keys under `.s3seal/` are the proxy's own (version 1
/// seals, which carry no record) and are never visited. `upstream` names the upstream when
/// the config has more than one.
pub(crate) async fn for_each<T>(
    config: Config,
    bucket: &str,
    upstream: Option<&str>,
    opts: &Options,
    name: &str,
    each: impl AsyncFn(&Sender<'_>, &Arc<Rule>, String) -> Result<T, String>,
) -> Result<Vec<(String, Result<T, String>)>, EncryptedBucketError> {
    let rule = config
        .encryption
        .for_bucket(bucket)
        .ok_or_else(|| EncryptedBucketError::NotEncrypted(bucket.to_owned()))?
        .clone();
    let upstream = crate::upstream::client_for(config.upstreams, upstream)?;
    let client = upstream.operator();
    let (client, rule, each) = (&client, &rule, &each);
    let visit = |key: &str| !key.starts_with(crate::s3::route::RESERVED_PREFIX);
    bulk::for_each(client, bucket, opts, name, visit, |key| {
        each(client, rule, key)
    })
    .await
    .map_err(EncryptedBucketError::List)
}
