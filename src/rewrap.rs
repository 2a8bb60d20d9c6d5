//! `s3seal rewrap`: gives the objects of a bucket with client-side encryption a record wrapped
//! under the bucket's current key (local or KMS), without copying their data through the proxy
//! (`docs/format.md` §5.4).
//!
//! For each object whose record names another key: HEAD (the record), unwrap the data key with
//! that key and check its commitment, wrap it under the current key, then a CopyObject onto the
//! object itself with `MetadataDirective: REPLACE` and the new record. The backend copies the
//! bytes internally; the ciphertext, salt and commitment stay as they are. The copy is pinned to
//! the HEAD's `ETag` (`x-amz-copy-source-if-match`), so an object rewritten in between is left
//! alone (and reported). Content headers and user metadata are carried over; tags, ACLs and
//! object-lock settings follow the backend's CopyObject rules.

use std::time::SystemTime;

use bytes::Bytes;
use http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use http_body_util::BodyExt;

use crate::body;
use crate::bulk::{self, Options};
use crate::config::Config;
use crate::crypto::format::{ObjectMetadata, META_PREFIX};
use crate::cse::Rule;
use crate::s3::headers;
use crate::s3::route::{encode_path, Target};
use crate::upstream::{Outgoing, Payload, Sender};

const COPY_SOURCE_IF_MATCH: HeaderName = HeaderName::from_static("x-amz-copy-source-if-match");
/// A CopyObject answer is a small XML document (or an error in a 200).
const MAX_ANSWER_BYTES: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum RewrapError {
    #[error("bucket {0} has no client-side encryption in the config")]
    NotEncrypted(String),
    #[error(transparent)]
    Upstream(#[from] crate::upstream::ChooseError),
    #[error("listing the bucket failed: {0}")]
    List(String),
}

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
    let rule = config
        .encryption
        .for_bucket(bucket)
        .ok_or_else(|| RewrapError::NotEncrypted(bucket.to_owned()))?
        .clone();
    let upstream = crate::upstream::client_for(config.upstreams, upstream)?;
    // The operator's own command: it acts with the upstream's credentials and serves no client.
    let client = upstream.operator();
    let (client, rule) = (&client, &*rule);
    // The multipart seals are the proxy's own and carry no wrapped key.
    let visit = |key: &str| !key.starts_with(crate::s3::route::RESERVED_PREFIX);
    let outcomes = bulk::for_each(client, bucket, opts, "rewrap", visit, |key| async move {
        rewrap_one(client, rule, bucket, &key, opts.dry_run).await
    })
    .await
    .map_err(RewrapError::List)?;
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
    let (status, head, _) = send(client, Method::HEAD, target, HeaderMap::new()).await?;
    if status != StatusCode::OK {
        return Err(format!("HEAD answered {status}"));
    }
    let Some(meta) = ObjectMetadata::from_headers(&head).map_err(|e| e.to_string())? else {
        return Ok(Outcome::Unencrypted);
    };
    let Some(new) = rule.rewrap(&meta).await.map_err(|e| e.to_string())? else {
        return Ok(Outcome::Current);
    };
    let old_id = meta.key_id.as_str().to_owned();
    if dry_run {
        return Ok(Outcome::Rewrapped(old_id));
    }
    let mut h = HeaderMap::new();
    for (name, value) in &head {
        let meta =
            name.as_str().starts_with("x-amz-meta-") && !name.as_str().starts_with(META_PREFIX);
        if meta || headers::OBJECT_DESCRIPTION.contains(name) {
            h.append(name.clone(), value.clone());
        }
    }
    new.write_headers(&mut h);
    let source = format!("/{bucket}/{}", encode_path(key));
    h.insert(
        headers::X_AMZ_COPY_SOURCE,
        HeaderValue::try_from(source).map_err(|e| e.to_string())?,
    );
    h.insert(
        headers::X_AMZ_METADATA_DIRECTIVE,
        HeaderValue::from_static("REPLACE"),
    );
    if let Some(etag) = head.get(header::ETAG) {
        h.insert(COPY_SOURCE_IF_MATCH, etag.clone());
    }
    let (status, _, body) = send(client, Method::PUT, target, h).await?;
    // CopyObject may fail after its 200 head: the body is then an `<Error>` document.
    if status != StatusCode::OK || !contains(&body, b"CopyObjectResult") {
        return Err(format!(
            "CopyObject answered {status}: {}",
            String::from_utf8_lossy(&body)
        ));
    }
    Ok(Outcome::Rewrapped(old_id))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// One bodiless request: status, headers and a bounded answer body.
async fn send(
    client: &Sender<'_>,
    method: Method,
    target: &Target,
    headers: HeaderMap,
) -> Result<(StatusCode, HeaderMap, Bytes), String> {
    let content_length = (method == Method::PUT).then_some(0);
    let out = Outgoing {
        method,
        target,
        query: Vec::new(),
        headers,
        content_length,
    };
    let signed = client
        .sign(out, &Payload::Known(b""), body::empty(), SystemTime::now())
        .map_err(|e| e.to_string())?;
    let resp = client.send(signed).await.map_err(|e| e.to_string())?;
    let (parts, body) = resp.into_parts();
    let body = http_body_util::Limited::new(body, MAX_ANSWER_BYTES)
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((parts.status, parts.headers, body))
}
