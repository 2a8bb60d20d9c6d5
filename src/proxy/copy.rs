//! Copies under an SSE rule that the backend cannot make itself. Ceph RGW 16 answers
//! `501 NotImplemented` to any `CopyObject` of an SSE-C or SSE-KMS object, stores a copy of
//! an unencrypted one without the SSE headers the rule adds, and answers `UploadPartCopy`
//! without echoing them (`docs/policy.md`, "Copies"). Such a copy is made by the proxy
//! instead, as client-side encryption makes its copies (`cse::copy_through_proxy`): the
//! source streamed from a GET (with its SSE-C key) into a `PutObject` or `UploadPart` that
//! carries the destination's SSE headers, whose answer the SSE stage verifies as any write.
//!
//! The backend is asked first, as AWS makes these copies itself without moving the data; once
//! it has failed one, the upstream remembers it and later copies skip the try.

use http::{Response, StatusCode};
use http_body_util::BodyExt;

use crate::body::{self, Body, BoxError};
use crate::cse::{self, Transform};
use crate::error::ProxyError;
use crate::s3::route::Routed;
use crate::sse::{self, CopyVerdict};
use crate::upstream::{Outgoing, Sender};

use super::sign_data;

/// A copy the backend is asked to make, kept so that the proxy can make it instead.
pub(super) struct Fallback<'o> {
    out: Outgoing<'o>,
}

/// Plans a copy under an SSE rule that client-side encryption leaves to the backend: made by
/// the proxy at once when the backend is known to fail it, otherwise kept as a [`Fallback`].
pub(super) async fn plan<'o>(
    routed: &Routed,
    sse: &sse::Stage<'_>,
    upstream: &Sender<'_>,
    out: Outgoing<'o>,
    transform: Transform,
) -> Result<(Outgoing<'o>, Transform, Option<Fallback<'o>>), ProxyError> {
    if !(sse.copies_under_rule() && transform.is_pass()) {
        return Ok((out, transform, None));
    }
    if upstream.copies_through_proxy() {
        let (out, transform) = cse::copy_through_proxy(routed, upstream, out).await?;
        return Ok((out, transform, None));
    }
    let fallback = Fallback { out: out.clone() };
    Ok((out, transform, Some(fallback)))
}

impl Fallback<'_> {
    /// The backend's answer to the copy, or, when the SSE stage does not keep it, the answer
    /// to the proxy's own copy with the [`Transform`] that turns it into the copy's result.
    pub(super) async fn settle(
        self,
        routed: &Routed,
        sse: &sse::Stage<'_>,
        upstream: &Sender<'_>,
        resp: Response<Body>,
        transform: Transform,
    ) -> Result<(Response<Body>, Transform), ProxyError> {
        let status = resp.status();
        match sse.judge_copy(upstream, resp).await? {
            CopyVerdict::Kept(resp) => return Ok((resp, transform)),
            CopyVerdict::ThroughProxy => {}
        }
        upstream.learn_copies_through_proxy();
        tracing::info!(
            upstream = upstream.name(),
            operation = routed.op.as_str(),
            backend_status = status.as_u16(),
            not_implemented = status == StatusCode::NOT_IMPLEMENTED,
            "sse: the backend cannot make copies under the SSE rules; the proxy makes them"
        );
        let (out, mut transform) = cse::copy_through_proxy(routed, upstream, self.out).await?;
        let signed = sign_data(upstream, &mut transform, out, body::empty(), None)?;
        let resp = upstream.send(signed).await.map_err(ProxyError::upstream)?;
        let resp = resp.map(|b| b.map_err(|e| -> BoxError { Box::new(e) }).boxed_unsync());
        Ok((resp, transform))
    }
}
