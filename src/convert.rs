//! `s3seal convert`: moves the objects of a bucket with client-side encryption between
//! s3seal's format and the AWS S3 Encryption Client's format 3, in place, each checked before
//! it counts (`cse::convert`, `docs/format.md` §11.5).
//!
//! For each object: HEAD it; one in the target format, or without any client-side record, is
//! left alone; the others are read through the proxy's read path, written back to their key in
//! the target format pinned to the HEAD's `ETag`, and read back whole. An object whose new form
//! would not fit one `PutObject` (5 GiB) fails; a multipart s3seal object becomes one S3EC
//! message when it fits.

pub use crate::cse::convert::Format;

use crate::bulk::{self, Options};
use crate::config::Config;
use crate::cse::convert::{self, Convert};
use crate::cse_command::EncryptedBucketError;
use crate::s3::route::Target;

/// What happened to each object.
#[derive(Debug, Default)]
pub struct Report {
    /// In the target format already: left alone.
    pub already: Vec<String>,
    /// Without any client-side record: left alone (`s3seal encrypt` encrypts them).
    pub unencrypted: Vec<String>,
    /// Instruction files of S3 Encryption Client objects (`<key>.instruction`): left alone.
    pub instruction_files: Vec<String>,
    /// Converted (or, in a dry run, to be converted), with their plaintext sizes.
    pub converted: Vec<(String, u64)>,
    /// Not converted, with the reason.
    pub failed: Vec<(String, String)>,
}

/// Converts every object of `bucket` that `opts` selects to `to`. The bucket's rule must read
/// S3 Encryption Client objects (`encryption.s3ec`). `upstream` names the upstream when the
/// config has more than one.
pub async fn run(
    config: Config,
    bucket: &str,
    upstream: Option<&str>,
    to: Format,
    opts: &Options,
) -> Result<Report, EncryptedBucketError> {
    let rule = config
        .encryption
        .for_bucket(bucket)
        .ok_or_else(|| EncryptedBucketError::NotEncrypted(bucket.to_owned()))?;
    if !rule.reads_s3ec() {
        return Err(EncryptedBucketError::NoS3ec(bucket.to_owned()));
    }
    let name = format!("convert to {}", to.name());
    let outcomes = crate::cse_command::for_each(
        config,
        bucket,
        upstream,
        opts,
        &name,
        async |client, rule, key| {
            let target = Target::Object {
                bucket: bucket.to_owned(),
                key,
            };
            let found = bulk::head(client, &target).await?;
            convert::convert_object(rule, client, &target, &found, to, opts.dry_run)
                .await
                .map_err(|e| e.to_string())
        },
    )
    .await?;
    let mut report = Report::default();
    for (key, outcome) in outcomes {
        match outcome {
            Ok(Convert::Already) => report.already.push(key),
            Ok(Convert::Unencrypted) => report.unencrypted.push(key),
            Ok(Convert::InstructionFile) => report.instruction_files.push(key),
            Ok(Convert::Converted(size)) => report.converted.push((key, size)),
            Err(why) => report.failed.push((key, why)),
        }
    }
    Ok(report)
}
