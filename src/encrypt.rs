//! `s3seal encrypt`: encrypts the objects of a bucket with client-side encryption that were
//! stored in plaintext (written before its rule was on, or straight at the backend), in place,
//! as a `PutObject` through the proxy would have stored them (`cse::in_place`).
//!
//! For each object: HEAD it; one with an s3seal record is left alone; a plaintext one is read,
//! encrypted on the fly and written back to its key, pinned to the HEAD's `ETag`, so an object
//! rewritten in between is reported rather than overwritten. The result is checked (the new
//! record opens at its place, the ciphertext has its exact size) before the object counts as
//! encrypted. An object whose ciphertext would not fit one `PutObject` (5 GiB) fails.

use crate::bulk::{self, Options};
use crate::config::Config;
use crate::cse::in_place::{self, Encrypt};
use crate::cse::Rule;
use crate::s3::route::Target;
use crate::upstream::Sender;

/// Why `encrypt` stopped.
pub type EncryptError = crate::cse_command::EncryptedBucketError;

/// What happened to each object.
#[derive(Debug, Default)]
pub struct Report {
    /// With an s3seal record already: left alone.
    pub already: Vec<String>,
    /// Encrypted (or, in a dry run, to be encrypted), with their plaintext sizes.
    pub encrypted: Vec<(String, u64)>,
    /// Not encrypted, with the reason.
    pub failed: Vec<(String, String)>,
}

/// Encrypts every plaintext object of `bucket` that `opts` selects. `upstream` names the
/// upstream when the config has more than one.
pub async fn run(
    config: Config,
    bucket: &str,
    upstream: Option<&str>,
    opts: &Options,
) -> Result<Report, EncryptError> {
    let outcomes = crate::cse_command::for_each(
        config,
        bucket,
        upstream,
        opts,
        "encrypt",
        async |client, rule, key| encrypt_one(client, rule, bucket, &key, opts.dry_run).await,
    )
    .await?;
    let mut report = Report::default();
    for (key, outcome) in outcomes {
        match outcome {
            Ok(Encrypt::Already) => report.already.push(key),
            Ok(Encrypt::Encrypted(size)) => report.encrypted.push((key, size)),
            Err(why) => report.failed.push((key, why)),
        }
    }
    Ok(report)
}

async fn encrypt_one(
    client: &Sender<'_>,
    rule: &Rule,
    bucket: &str,
    key: &str,
    dry_run: bool,
) -> Result<Encrypt, String> {
    let target = &Target::Object {
        bucket: bucket.to_owned(),
        key: key.to_owned(),
    };
    let found = bulk::head(client, target).await?;
    in_place::encrypt_object(rule, client, target, &found, dry_run)
        .await
        .map_err(|e| e.to_string())
}
