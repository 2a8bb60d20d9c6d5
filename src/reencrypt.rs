//! `s3seal reencrypt`: rewrites the objects of a bucket that are still encrypted with one of
//! its rule's `old_keys` under the current SSE-C key (docs/policy.md, "Key rotation").
//!
//! Each object is read with the old key and written back to the same key with the current
//! one, straight to the upstream with the proxy's credentials: this works on every backend,
//! unlike a copy in place (Ceph RGW 16 cannot copy SSE-C objects). The object's content type,
//! caching and content headers and user metadata are carried over; tags, ACLs and object-lock
//! settings are not. An object written by someone else between the read and the write is
//! overwritten: run it while writers are paused, or re-run it (objects already under the
//! current key are skipped).

use std::time::SystemTime;

use http::{header, HeaderMap, Method, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use crate::body::{self, Body, BoxError};
use crate::bulk::{self, Options};
use crate::config::Config;
use crate::policy::{self, Encryption, SsePlan, SseRule};
use crate::s3::route::{Operation, Target};
use crate::upstream::{Outgoing, Payload, Sender};

#[derive(Debug, thiserror::Error)]
pub enum ReencryptError {
    #[error("bucket {0} has no sse-c rule with old_keys in the config")]
    NoRotation(String),
    #[error(transparent)]
    Upstream(#[from] crate::upstream::ChooseError),
    #[error("listing the bucket failed: {0}")]
    List(String),
}

/// What happened to each object.
#[derive(Debug, Default)]
pub struct Report {
    /// Already under the current key.
    pub current: Vec<String>,
    /// Rewritten (or, in a dry run, to be rewritten), with the id of the old key.
    pub reencrypted: Vec<(String, String)>,
    /// Readable with no configured key, or failed to rewrite, with the reason.
    pub failed: Vec<(String, String)>,
}

/// Re-encrypts every object of `bucket` that `opts` selects and that uses an old key.
/// `upstream` names the upstream when the config has more than one.
pub async fn run(
    config: Config,
    bucket: &str,
    upstream: Option<&str>,
    opts: &Options,
) -> Result<Report, ReencryptError> {
    let rule = config
        .sse
        .for_bucket(bucket)
        .filter(|r| matches!(&r.kind, Encryption::SseC { old_keys, .. } if !old_keys.is_empty()))
        .ok_or_else(|| ReencryptError::NoRotation(bucket.to_owned()))?
        .clone();
    let upstream = crate::upstream::client_for(config.upstreams, upstream)?;
    // The operator's own command: it acts with the upstream's credentials and serves no client.
    let client = upstream.operator();
    let (client, rule) = (&client, &rule);
    let outcomes = bulk::for_each(
        client,
        bucket,
        opts,
        "reencrypt",
        |_| true,
        |key| async move {
            let target = Target::Object {
                bucket: bucket.to_owned(),
                key,
            };
            reencrypt_one(client, rule, &target, opts.dry_run).await
        },
    )
    .await
    .map_err(ReencryptError::List)?;
    let mut report = Report::default();
    for (key, outcome) in outcomes {
        match outcome {
            Ok(Outcome::Current) => report.current.push(key),
            Ok(Outcome::Reencrypted(id)) => report.reencrypted.push((key, id)),
            Err(why) => report.failed.push((key, why)),
        }
    }
    Ok(report)
}

enum Outcome {
    Current,
    Reencrypted(String),
}

async fn reencrypt_one(
    client: &Sender<'_>,
    rule: &SseRule,
    target: &Target,
    dry_run: bool,
) -> Result<Outcome, String> {
    let head = plan(rule, Operation::HeadObject)?;
    let found = send(client, Method::HEAD, target, &head, None).await?;
    if found.status().is_success() {
        // A backend that does not enforce SSE-C (or an object stored without it) answers
        // a HEAD with any key: only an answer that names the current key's MD5 proves the
        // object is encrypted under it.
        return if confirms_key(&head, found.headers()) {
            Ok(Outcome::Current)
        } else {
            Err(
                "the backend answered with the current key but does not confirm the object is \
                 SSE-C encrypted under it (stored without SSE-C, or a backend that ignores it)"
                    .to_owned(),
            )
        };
    }
    for retry in policy::rotation_retries(&head, Operation::HeadObject, rule, None) {
        let found = send(client, Method::HEAD, target, &retry.plan, None).await?;
        if !found.status().is_success() {
            continue;
        }
        if dry_run {
            return Ok(Outcome::Reencrypted(retry.key_id));
        }
        let get = send(client, Method::GET, target, &retry.plan, None).await?;
        if get.status() != StatusCode::OK {
            return Err(format!(
                "GET with key {} answered {}",
                retry.key_id,
                get.status()
            ));
        }
        let (parts, data) = get.into_parts();
        let len = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
            .ok_or("the GET answer has no Content-Length")?;
        let mut put = plan(rule, Operation::PutObject)?;
        for (name, value) in &parts.headers {
            if crate::s3::headers::OBJECT_DESCRIPTION.contains(name)
                || name.as_str().starts_with("x-amz-meta-")
            {
                put.set_request.insert(name.clone(), value.clone());
            }
        }
        let data: Body = data.map_err(|e| -> BoxError { Box::new(e) }).boxed_unsync();
        let written = send(client, Method::PUT, target, &put, Some((data, len))).await?;
        if !written.status().is_success() {
            return Err(format!("PUT answered {}", written.status()));
        }
        policy::verify_response(&put, written.headers()).map_err(|e| e.to_string())?;
        return Ok(Outcome::Reencrypted(retry.key_id));
    }
    Err("no configured key opens it (or it is not an SSE-C object)".to_owned())
}

/// Whether `answer` names the SSE-C key the request carried, as AWS S3 and Ceph RGW do for
/// objects encrypted with it (`x-amz-server-side-encryption-customer-key-MD5`).
fn confirms_key(request: &SsePlan, answer: &HeaderMap) -> bool {
    let sent = request.set_request.get(policy::SSE_C_KEY_MD5);
    sent.is_some() && answer.get(policy::SSE_C_KEY_MD5) == sent
}

fn plan(rule: &SseRule, op: Operation) -> Result<SsePlan, String> {
    policy::plan(rule, op, &HeaderMap::new(), None).map_err(|e| e.to_string())
}

/// Sends one request with `plan`'s SSE headers; `data` is a streamed body and its length.
async fn send(
    client: &Sender<'_>,
    method: Method,
    target: &Target,
    plan: &SsePlan,
    data: Option<(Body, u64)>,
) -> Result<Response<Incoming>, String> {
    let out = Outgoing {
        method,
        target,
        query: Vec::new(),
        headers: plan.set_request.clone(),
        content_length: data.as_ref().map(|(_, len)| *len),
    };
    let now = SystemTime::now();
    let signed = match data {
        Some((body, _)) => client.sign(out, &Payload::Streamed, body, now),
        None => client.sign(out, &Payload::Known(b""), body::empty(), now),
    }
    .map_err(|e| e.to_string())?;
    client.send(signed).await.map_err(|e| e.to_string())
}
