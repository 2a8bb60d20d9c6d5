//! The server-side encryption stage of the pipeline. [`policy`] decides; this module acts on
//! the decision: it rewrites the upstream request's SSE headers before signing, tries a
//! bucket's old SSE-C keys when the backend refuses the current one, checks the backend's
//! answer to a write, and removes what a backend wrote without the encryption the rule asked
//! for ("fail closed"). It also judges a copy's answer: kept, or made again by the proxy when
//! the backend cannot copy under the rule ([`Stage::judge_copy`]). The rules themselves are in
//! `docs/policy.md`.

use std::time::SystemTime;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, Method, Response, StatusCode};
use http_body_util::BodyExt;

use crate::body::{self, Body};
use crate::error::{self, ProxyError, S3Code, S3Error};
use crate::logging::{self, KeyOperation};
use crate::policy::{
    self, ClientHeaders, Encryption, PolicyError, Retry, SsePlan, SsePolicies, SseRule, Verify,
};
use crate::s3::route::{Operation, Routed, Target};
use crate::upstream::{Outgoing, Payload, Sender};

/// The largest backend error or CreateMultipartUpload document this stage reads into memory.
/// S3 error documents are a few hundred bytes.
const MAX_SMALL_BODY: usize = 64 * 1024;

const X_AMZ_VERSION_ID: HeaderName = HeaderName::from_static("x-amz-version-id");

#[derive(Debug, thiserror::Error)]
pub enum SseError {
    /// The backend ignored the rule and the write was refused.
    #[error("{policy} {}", if *.removed { "What it wrote has been removed." } else { "Removing what it wrote failed; the proxy log has the details." })]
    NotApplied { policy: PolicyError, removed: bool },
    /// AWS refused an SSE-C write because the bucket blocks SSE-C.
    #[error("Access Denied by the storage backend: {backend}. This bucket's encryption rule is sse-c, and the backend blocks SSE-C writes to the bucket (AWS blocks SSE-C on new general purpose buckets since April 2026). Allow SSE-C on the bucket (PutBucketEncryption with BlockedEncryptionTypes NONE) or give the bucket another rule.")]
    SseCBlocked { backend: String },
    #[error("The storage backend's answer could not be read: {0}")]
    Unreadable(String),
    /// A refusal of a request that carried a key, whose document names no S3 error code.
    #[error("The storage backend refused the request ({0}) with an error document that names no S3 error code; it is withheld because the request carried an encryption key.")]
    UnreadableRefusal(StatusCode),
}

impl S3Error for SseError {
    fn code(&self) -> S3Code {
        match self {
            SseError::NotApplied { policy, .. } => policy.code(),
            SseError::SseCBlocked { .. } => S3Code::AccessDenied,
            SseError::Unreadable(_) | SseError::UnreadableRefusal(_) => S3Code::BadGateway,
        }
    }
}

/// The destination of a copy whose bucket has no rule: under `allow` every client choice
/// stands (none is weaker than `none`), so the client's headers pass, checked for form only.
static PASS_THROUGH: SseRule = SseRule {
    kind: Encryption::None,
    client_headers: ClientHeaders::Allow,
    verify: Verify::Warn,
};

/// The stage for one request.
pub struct Stage<'a> {
    /// Nothing when neither the bucket nor a copy source has a rule.
    active: Option<Active<'a>>,
    /// Whether the upstream request carries an SSE-C key (the rule's, or a client's own
    /// where no rule applies); its refusals are then not relayed as the backend wrote them.
    carries_key: bool,
}

struct Active<'a> {
    rule: &'a SseRule,
    plan: SsePlan,
    retries: Vec<Retry>,
    op: Operation,
    target: &'a Target,
    /// The upstream query (its `uploadId` names the upload to abort).
    query: Vec<(String, String)>,
    /// The copy source's bucket and key, for the audit log.
    copy_source: Option<(String, String)>,
}

/// What becomes of a copy the backend was asked to make ([`Stage::judge_copy`]).
pub enum CopyVerdict {
    /// Its answer, for [`Stage::settle`].
    Kept(Response<Body>),
    /// Nothing of it is kept: the proxy makes the copy. A part the backend wrote without
    /// proving the rule is still in the upload until the proxy's own part replaces it.
    ThroughProxy { unproven_part: Option<PolicyError> },
}

/// A bodiless or buffered request as it was signed, so it can be signed again with an old key.
pub struct Replay<'a> {
    pub out: Outgoing<'a>,
    pub body: Bytes,
}

impl<'a> Stage<'a> {
    /// Plans the request under its bucket's rule (and, for copies, the source bucket's) and
    /// returns `out` with its SSE headers rewritten accordingly, with the stage that settles
    /// the answer.
    pub fn prepare<'o>(
        policies: &'a SsePolicies,
        routed: &'a Routed,
        client_headers: &HeaderMap,
        mut out: Outgoing<'o>,
    ) -> Result<(Outgoing<'o>, Self), ProxyError> {
        let source_rule = (routed.copy_source.as_ref())
            .and_then(|src| policies.for_bucket(&src.bucket))
            .map(AsRef::as_ref);
        let dest_rule = routed.target.bucket().and_then(|b| policies.for_bucket(b));
        let rule: &SseRule = match (dest_rule, source_rule) {
            (Some(rule), _) => rule,
            // A copy out of a bucket with a rule into one without: the source still needs
            // its key, the destination's headers pass as the client sent them.
            (None, Some(_)) => &PASS_THROUGH,
            (None, None) => {
                let carries_key = carries_key(&out.headers);
                return Ok((
                    out,
                    Stage {
                        active: None,
                        carries_key,
                    },
                ));
            }
        };
        let mut plan = policy::plan(rule, routed.op, client_headers, source_rule)
            .map_err(ProxyError::downstream)?;
        if dest_rule.is_none() {
            // No rule to enforce for the destination.
            plan.expect = None;
        }
        apply(&plan, &mut out.headers);
        let retries = policy::rotation_retries(&plan, routed.op, rule, source_rule);
        let stage = Stage {
            active: Some(Active {
                rule,
                plan,
                retries,
                op: routed.op,
                target: &routed.target,
                query: out.query.clone(),
                copy_source: (routed.copy_source.as_ref())
                    .map(|s| (s.bucket.clone(), s.key.clone())),
            }),
            carries_key: carries_key(&out.headers),
        };
        Ok((out, stage))
    }

    /// Whether the request is a copy under a rule (the destination's or the source's): one
    /// the proxy makes itself when the backend cannot ([`Stage::judge_copy`]).
    pub fn copies_under_rule(&self) -> bool {
        self.active
            .as_ref()
            .is_some_and(|a| matches!(a.op, Operation::CopyObject | Operation::UploadPartCopy))
    }

    /// The backend's answer to a copy made server-side: kept, or to be made again through
    /// the proxy, because the backend did not make it (`501 NotImplemented`: Ceph RGW 16 for
    /// any encrypted source) or cannot prove that it encrypted it as the rule says (RGW drops
    /// a `CopyObject`'s SSE headers, and echoes none on `UploadPartCopy`). An unproven
    /// object is removed first; an unproven part is replaced, as an `UploadPart` of the same
    /// number replaces it. Under `on_unverified = "warn"` an unproven copy is kept, as any
    /// other write ([`Stage::settle`] warns).
    pub async fn judge_copy(
        &self,
        upstream: &Sender<'_>,
        resp: Response<Body>,
    ) -> Result<CopyVerdict, ProxyError> {
        let Some(a) = self.active.as_ref().filter(|_| self.copies_under_rule()) else {
            return Ok(CopyVerdict::Kept(resp));
        };
        let unproven = match policy::verify_response(&a.plan, resp.headers()) {
            Err(e) if resp.status().is_success() && a.plan.verify == Verify::Enforce => Some(e),
            Ok(()) | Err(_) => None,
        };
        if resp.status() != StatusCode::NOT_IMPLEMENTED && unproven.is_none() {
            return Ok(CopyVerdict::Kept(resp));
        }
        let mut unproven_part = None;
        match unproven {
            Some(policy) if a.op == Operation::CopyObject => {
                if let Err(why) = a.remove_written(upstream, resp).await {
                    tracing::error!(
                        bucket = a.target.bucket().unwrap_or(""),
                        key = a.target.key().unwrap_or(""),
                        error = %why,
                        "sse: removing a copy the backend did not encrypt failed"
                    );
                    return Err(ProxyError::upstream(SseError::NotApplied {
                        policy,
                        removed: false,
                    }));
                }
            }
            Some(_) | None => {
                unproven_part = unproven;
                // Read to the end so the connection returns to the pool.
                let _ = resp.into_body().collect().await;
            }
        }
        Ok(CopyVerdict::ThroughProxy { unproven_part })
    }

    /// The fail-closed end of a part copy whose answer did not prove the rule and that the
    /// proxy could not make again: the upload is aborted, as for any unproven part.
    pub async fn refuse_unproven_part(
        &self,
        upstream: &Sender<'_>,
        policy: PolicyError,
    ) -> ProxyError {
        match &self.active {
            // The abort needs only the request's `uploadId`, not the answer.
            Some(a) => {
                a.refuse(upstream, Response::new(body::empty()), policy)
                    .await
            }
            None => ProxyError::upstream(SseError::NotApplied {
                policy,
                removed: false,
            }),
        }
    }

    /// Whether [`Stage::settle`] may need to send the request again (old SSE-C keys).
    pub fn wants_replay(&self) -> bool {
        self.active.as_ref().is_some_and(|a| !a.retries.is_empty())
    }

    /// Acts on the backend's answer: old keys on a refused read, the SSE-C block explained,
    /// the write verified (and removed when it is not what the rule asked for), response
    /// headers that would reveal the proxy's key removed, and, when the request carried a
    /// key, a refusal's document replaced by the proxy's ([`withhold_error_document`]).
    pub async fn settle(
        self,
        upstream: &Sender<'_>,
        resp: Response<Body>,
        replay: Option<Replay<'_>>,
    ) -> Result<Response<Body>, ProxyError> {
        let resp = match self.active {
            Some(a) => a.settle(upstream, resp, replay).await?,
            None => resp,
        };
        if self.carries_key {
            withhold_error_document(resp).await
        } else {
            Ok(resp)
        }
    }
}

impl Active<'_> {
    /// [`Stage::settle`] under a rule.
    async fn settle(
        &self,
        upstream: &Sender<'_>,
        resp: Response<Body>,
        replay: Option<Replay<'_>>,
    ) -> Result<Response<Body>, ProxyError> {
        let mut resp = resp;
        let mut used = &self.plan;
        if let (true, Some(replay)) = (refuses_key(resp.status()), replay) {
            let retried;
            (resp, retried) = self.with_old_keys(upstream, resp, replay).await?;
            if let Some(retry) = retried {
                used = &retry.plan;
            }
        }
        if resp.status() == StatusCode::FORBIDDEN && self.writes_customer_key() {
            resp = explain_sse_c_block(resp).await?;
        }
        if resp.status().is_success() {
            let mut verdict = policy::verify_response(&self.plan, resp.headers());
            if verdict.is_err() && self.op == Operation::CompleteMultipartUpload {
                // AWS echoes the scheme on completion, Ceph RGW does not: ask the object.
                if let Some(head) = self.head_written(upstream, resp.headers()).await {
                    verdict = policy::verify_response(&self.plan, &head);
                }
            }
            if let Err(e) = verdict {
                match self.plan.verify {
                    Verify::Enforce => return Err(self.refuse(upstream, resp, e).await),
                    Verify::Warn => tracing::warn!(
                        operation = self.op.as_str(),
                        bucket = self.target.bucket().unwrap_or(""),
                        key = self.target.key().unwrap_or(""),
                        error = %e,
                        "sse: the backend did not prove the bucket's encryption; kept (on_unverified = warn)"
                    ),
                }
            }
        }
        if resp.status().is_success() {
            self.audit(used);
        }
        for name in &self.plan.strip_response {
            resp.headers_mut().remove(name);
        }
        Ok(resp)
    }
}

/// Replaces the client's SSE headers with the plan's.
fn apply(plan: &SsePlan, headers: &mut HeaderMap) {
    for name in &plan.strip_request {
        headers.remove(name);
    }
    for (name, value) in &plan.set_request {
        headers.insert(name.clone(), value.clone());
    }
}

/// Whether `headers` carry an SSE-C key, the object's or a copy source's.
fn carries_key(headers: &HeaderMap) -> bool {
    headers.contains_key(policy::SSE_C_KEY) || headers.contains_key(policy::COPY_SOURCE_SSE_C_KEY)
}

/// The answer to a request that carried an SSE-C key, with a refusal's document (4xx, 5xx)
/// replaced by the proxy's, which keeps the backend's status and S3 code
/// ([`error::withheld_error_response`]): an error document may echo the request, and AWS's
/// `SignatureDoesNotMatch` does, key included. This is the one place: every answer to such a
/// request passes through [`Stage::settle`]. A document read to its end (bounded by
/// [`MAX_SMALL_BODY`]) that names no code is answered 502, not relayed.
async fn withhold_error_document(resp: Response<Body>) -> Result<Response<Body>, ProxyError> {
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return Ok(resp);
    }
    let (parts, body) = resp.into_parts();
    let doc = read_small(body)
        .await
        .map_err(|e| ProxyError::upstream(SseError::Unreadable(e)))?;
    if doc.is_empty() {
        // A HEAD's refusal: headers only.
        return Ok(Response::from_parts(parts, body::empty()));
    }
    let code = element_text(&doc, "Code")
        .and_then(|c| error::UpstreamCode::new(&c))
        .ok_or_else(|| ProxyError::upstream(SseError::UnreadableRefusal(status)))?;
    Ok(error::withheld_error_response(parts, &code))
}

/// How backends refuse a wrong SSE-C key: AWS 403, Ceph RGW 400.
fn refuses_key(status: StatusCode) -> bool {
    status == StatusCode::BAD_REQUEST || status == StatusCode::FORBIDDEN
}

impl Active<'_> {
    /// Whether the request sends the proxy's SSE-C key for a new object or part.
    fn writes_customer_key(&self) -> bool {
        matches!(
            self.op,
            Operation::PutObject
                | Operation::CopyObject
                | Operation::CreateMultipartUpload
                | Operation::UploadPart
                | Operation::UploadPartCopy
        ) && self.plan.set_request.contains_key(policy::SSE_C_KEY)
    }

    /// Sends the request again with each old key until the backend accepts one, and says
    /// which one. If none does, the client gets the backend's first refusal.
    async fn with_old_keys(
        &self,
        upstream: &Sender<'_>,
        refused: Response<Body>,
        replay: Replay<'_>,
    ) -> Result<(Response<Body>, Option<&Retry>), ProxyError> {
        let refused = buffer(refused).await?;
        for retry in &self.retries {
            let mut out = replay.out.clone();
            apply(&retry.plan, &mut out.headers);
            let signed = upstream
                .sign(
                    out,
                    &Payload::Known(&replay.body),
                    body::full(replay.body.clone()),
                    SystemTime::now(),
                )
                .map_err(ProxyError::upstream)?;
            let resp = upstream.send(signed).await.map_err(ProxyError::upstream)?;
            if !refuses_key(resp.status()) {
                tracing::info!(
                    operation = self.op.as_str(),
                    bucket = self.target.bucket().unwrap_or(""),
                    key = self.target.key().unwrap_or(""),
                    key_id = %retry.key_id,
                    "sse: the object is encrypted with an old SSE-C key"
                );
                let resp = resp.map(|b| {
                    b.map_err(|e| -> body::BoxError { Box::new(e) })
                        .boxed_unsync()
                });
                return Ok((resp, Some(retry)));
            }
        }
        Ok((refused, None))
    }

    /// One audit line for each key the backend was asked to use, and accepted: the SSE-KMS
    /// key id, or the SSE-C key's MD5 as S3 reports it (never the key).
    fn audit(&self, used: &SsePlan) {
        let bucket = self.target.bucket().unwrap_or("-");
        let object = self.target.key();
        let writes = matches!(
            self.op,
            Operation::PutObject
                | Operation::CopyObject
                | Operation::CreateMultipartUpload
                | Operation::UploadPart
                | Operation::UploadPartCopy
                | Operation::CompleteMultipartUpload
        );
        let id = |name: &HeaderName| used.set_request.get(name).and_then(|v| v.to_str().ok());
        if let Some(kms) = id(&policy::SSE_KMS_KEY_ID).filter(|_| writes) {
            logging::key_use(KeyOperation::ServerSideEncrypt, bucket, object, kms);
        }
        if let Some(md5) = id(&policy::SSE_C_KEY_MD5) {
            let op = if writes {
                KeyOperation::ServerSideEncrypt
            } else {
                KeyOperation::ServerSideDecrypt
            };
            logging::key_use(op, bucket, object, md5);
        }
        if let Some(md5) = id(&policy::COPY_SOURCE_SSE_C_KEY_MD5) {
            let (src_bucket, src_key) = self
                .copy_source
                .as_ref()
                .map_or(("-", None), |(b, k)| (b.as_str(), Some(k.as_str())));
            logging::key_use(KeyOperation::ServerSideDecrypt, src_bucket, src_key, md5);
        }
    }

    /// The headers of the object a write just finished (its version, when the bucket is
    /// versioned), or `None` if the backend does not answer a HEAD with 2xx.
    async fn head_written(&self, upstream: &Sender<'_>, written: &HeaderMap) -> Option<HeaderMap> {
        let out = Outgoing {
            method: Method::HEAD,
            target: self.target,
            query: version_query(written),
            headers: HeaderMap::new(),
            content_length: None,
        };
        let signed = upstream
            .sign(out, &Payload::Known(b""), body::empty(), SystemTime::now())
            .ok()?;
        let answer = upstream.send(signed).await.ok()?;
        answer
            .status()
            .is_success()
            .then(|| answer.into_parts().0.headers)
    }

    /// The fail-closed path: log the incident, remove what the backend wrote, refuse.
    async fn refuse(
        &self,
        upstream: &Sender<'_>,
        resp: Response<Body>,
        policy: PolicyError,
    ) -> ProxyError {
        let removed = match self.remove_written(upstream, resp).await {
            Ok(()) => true,
            Err(why) => {
                tracing::error!(
                    operation = self.op.as_str(),
                    bucket = self.target.bucket().unwrap_or(""),
                    key = self.target.key().unwrap_or(""),
                    error = %why,
                    "sse: removing the unencrypted write failed"
                );
                false
            }
        };
        tracing::error!(
            operation = self.op.as_str(),
            bucket = self.target.bucket().unwrap_or(""),
            key = self.target.key().unwrap_or(""),
            rule = self.rule.kind.kind().as_str(),
            client_headers = self.rule.client_headers.as_str(),
            error = %policy,
            removed,
            "sse: the backend did not apply the bucket's encryption; write refused"
        );
        ProxyError::upstream(SseError::NotApplied { policy, removed })
    }

    /// `DeleteObject` for a finished object (its version, when the bucket is versioned);
    /// `AbortMultipartUpload` for an upload or one of its parts.
    async fn remove_written(
        &self,
        upstream: &Sender<'_>,
        resp: Response<Body>,
    ) -> Result<(), String> {
        let query = match self.op {
            Operation::PutObject | Operation::CopyObject | Operation::CompleteMultipartUpload => {
                version_query(resp.headers())
            }
            Operation::UploadPart | Operation::UploadPartCopy => {
                let id = self.query.iter().find(|(k, _)| k == "uploadId");
                let Some(id) = id.cloned() else {
                    return Err("the request names no uploadId".to_owned());
                };
                vec![id]
            }
            Operation::CreateMultipartUpload => {
                let doc = read_small(resp.into_body()).await?;
                let Some(id) = element_text(&doc, "UploadId") else {
                    return Err("the answer names no UploadId".to_owned());
                };
                vec![("uploadId".to_owned(), id)]
            }
            other => return Err(format!("{} writes nothing to remove", other.as_str())),
        };
        let out = Outgoing {
            method: Method::DELETE,
            target: self.target,
            query,
            headers: HeaderMap::new(),
            content_length: None,
        };
        let signed = upstream
            .sign(out, &Payload::Known(b""), body::empty(), SystemTime::now())
            .map_err(|e| e.to_string())?;
        let answer = upstream.send(signed).await.map_err(|e| e.to_string())?;
        let status = answer.status();
        // Read to the end so the connection returns to the pool.
        let _ = answer.into_body().collect().await;
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("the backend answered {status}"))
        }
    }
}

/// `versionId=...` for the version a write created, when the backend names one.
fn version_query(written: &HeaderMap) -> Vec<(String, String)> {
    written
        .get(X_AMZ_VERSION_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| *v != "null")
        .map(|v| vec![("versionId".to_owned(), v.to_owned())])
        .unwrap_or_default()
}

/// Turns AWS's refusal of an SSE-C write into an error that says why and what to do. Other
/// 403 answers pass unchanged.
async fn explain_sse_c_block(resp: Response<Body>) -> Result<Response<Body>, ProxyError> {
    let (parts, body) = resp.into_parts();
    let doc = read_small(body)
        .await
        .map_err(|e| ProxyError::upstream(SseError::Unreadable(e)))?;
    if let Some(backend) = sse_c_block_message(&doc) {
        return Err(ProxyError::downstream(SseError::SseCBlocked { backend }));
    }
    Ok(Response::from_parts(parts, body::full(doc)))
}

/// The backend's message when an error document is AWS's SSE-C block: `AccessDenied` whose
/// message names SSE-C, customer-provided keys or the blocked encryption types.
/// Reference: <https://docs.aws.amazon.com/AmazonS3/latest/userguide/blocking-unblocking-s3-c-encryption-gpb.html>
fn sse_c_block_message(doc: &[u8]) -> Option<String> {
    if element_text(doc, "Code").as_deref() != Some("AccessDenied") {
        return None;
    }
    let message = element_text(doc, "Message").unwrap_or_default();
    let lower = message.to_ascii_lowercase();
    let names_sse_c = [
        "sse-c",
        "customer-provided",
        "customer provided",
        "blockedencryptiontypes",
        "encryption type",
    ]
    .iter()
    .any(|k| lower.contains(k));
    names_sse_c.then_some(message)
}

/// The response with its (small) body read into memory, so it can be sent later.
async fn buffer(resp: Response<Body>) -> Result<Response<Body>, ProxyError> {
    let (parts, body) = resp.into_parts();
    let doc = read_small(body)
        .await
        .map_err(|e| ProxyError::upstream(SseError::Unreadable(e)))?;
    Ok(Response::from_parts(parts, body::full(doc)))
}

async fn read_small(mut body: Body) -> Result<Bytes, String> {
    let mut doc = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| e.to_string())?;
        if let Ok(data) = frame.into_data() {
            if doc.len() + data.len() > MAX_SMALL_BODY {
                return Err(format!("more than {MAX_SMALL_BODY} bytes"));
            }
            doc.extend_from_slice(&data);
        }
    }
    Ok(Bytes::from(doc))
}

/// The text of the first element named `name` (S3 documents have no namespaces that matter
/// here and no repeated names among the ones read).
fn element_text(doc: &[u8], name: &str) -> Option<String> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_reader(doc);
    let mut inside = false;
    let mut text = String::new();
    loop {
        match reader.read_event().ok()? {
            Event::Start(e) if e.local_name().as_ref() == name.as_bytes() => inside = true,
            Event::Text(t) if inside => text.push_str(&t.decode().ok()?),
            Event::GeneralRef(r) if inside => text.push(match &*r {
                b"lt" => '<',
                b"gt" => '>',
                b"amp" => '&',
                b"apos" => '\'',
                b"quot" => '"',
                _ => return None,
            }),
            Event::End(e) if inside && e.local_name().as_ref() == name.as_bytes() => {
                return Some(text)
            }
            Event::Eof => return None,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests;
