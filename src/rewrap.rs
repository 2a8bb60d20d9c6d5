//! `s3seal rewrap`: gives the objects of a bucket with client-side encryption a record wrapped
//! under the bucket's current key (local or KMS), without copying their data through the proxy
//! (`docs/format.md` §5.4).
//!
//! For each object whose record names another key, or is of version 1: HEAD (the record),
//! unwrap the data key and check its commitment, and rewrite the record in place as version 2
//! under the current key (`cse::record`: a CopyObject onto the object itself with the new
//! record, pinned to the HEAD's `ETag`, so an object rewritten in between is left alone and
//! reported). A version 1 multipart object's seal moves from its `.s3seal/seal/` object into
//! the record. The backend copies the bytes internally; the ciphertext and salt stay.

use crate::bulk::{self, Options};
use crate::config::Config;
use crate::cse::{Rewrap, Rule};
use crate::s3::route::Target;
use crate::upstream::Sender;

/// Why `rewrap` stopped.
pub type RewrapError = crate::cse_command::EncryptedBucketError;

/// What happened to each object.
#[derive(Debug, Default)]
pub struct Report {
    /// Already wrapped under the current key.
    pub current: Vec<String>,
    /// Without an s3seal record (written before encryption was on): left as they are.
    pub unencrypted: Vec<String>,
    /// Rewrapped (or, in a dry run, to be rewrapped), with the id of the old key.
    pub rewrapped: Vec<(String, String)>,
    /// Not rewrapped, with the reason.
    pub failed: Vec<(String, String)>,
}

/// Rewraps every object of `bucket` that `opts` selects and whose record names another key
/// than the current one. `upstream` names the upstream when the config has more than one.
pub async fn run(
    config: Config,
    bucket: &str,
    upstream: Option<&str>,
    opts: &Options,
) -> Result<Report, RewrapError> {
    let outcomes = crate::cse_command::for_each(
        config,
        bucket,
        upstream,
        opts,
        "rewrap",
        async |client, rule, key| rewrap_one(client, rule, bucket, &key, opts.dry_run).await,
    )
    .await?;
    let mut report = Report::default();
    for (key, outcome) in outcomes {
        match outcome {
            Ok(Outcome::Current) => report.current.push(key),
            Ok(Outcome::Unencrypted) => report.unencrypted.push(key),
            Ok(Outcome::Rewrapped(id)) => report.rewrapped.push((key, id)),
            Err(why) => report.failed.push((key, why)),
        }
    }
    Ok(report)
}

enum Outcome {
    Current,
    Unencrypted,
    Rewrapped(String),
}

async fn rewrap_one(
    client: &Sender<'_>,
    rule: &Rule,
    bucket: &str,
    key: &str,
    dry_run: bool,
) -> Result<Outcome, String> {
    let target = &Target::Object {
        bucket: bucket.to_owned(),
        key: key.to_owned(),
    };
    let head = bulk::head(client, target).await?;
    let done = crate::cse::rewrap_object(rule, client, target, &head, dry_run)
        .await
        .map_err(|e| e.to_string())?;
    Ok(match done {
        Rewrap::Current => Outcome::Current,
        Rewrap::Unencrypted => Outcome::Unencrypted,
        Rewrap::Rewrapped(old_key) => Outcome::Rewrapped(old_key),
    })
}
