//! Copies under an SSE rule that the backend cannot make itself. Ceph RGW 16 answers
//! `501 NotImplemented` to any `CopyObject` of an SSE-C or SSE-KMS object, stores a copy of
//! an unencrypted one without the SSE headers the rule adds, and answers `UploadPartCopy`
//! without echoing them (`docs/policy.md`, "Copies the backend cannot make"). Such a copy is
//! made by the proxy instead, as client-side encryption makes its copies
//! (`cse::copy_through_proxy`): the source streamed from a GET (with its SSE-C key) into a
//! `PutObject` or `UploadPart` that carries the destination's SSE headers, whose answer the
//! SSE stage verifies as any write.
//!
//! The backend is asked first, as AWS makes these copies itself without moving the data; once
//! it has failed one, the upstream remembers it and later copies skip the try.

use http::Response;
use http_body_util::BodyExt;

use crate::body::{self, Body, BoxError};
use crate::cse::{self, Transform};
use crate::error::ProxyError;
use crate::s3::route::Routed;
use crate::sse::{self, CopyVerdict, Replay};
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

/// An answer, the [`Transform`] of it, and the request to send again with old SSE-C keys.
type Settled<'r> = (Response<Body>, Transform, Option<Replay<'r>>);

impl Fallback<'_> {
    /// The backend's answer to the copy, or, when the SSE stage does not keep it, the answer
    /// to the proxy's own copy with the [`Transform`] that turns it into the copy's result.
    /// The proxy's copy has no replay: `replay` is the backend's copy, sent with old keys
    /// when the backend refuses a source key.
    pub(super) async fn settle<'r>(
        self,
        routed: &Routed,
        sse: &sse::Stage<'_>,
        upstream: &Sender<'_>,
        resp: Response<Body>,
        transform: Transform,
        replay: Option<Replay<'r>>,
    ) -> Result<Settled<'r>, ProxyError> {
        let status = resp.status();
        let unproven_part = match sse.judge_copy(upstream, resp).await? {
            CopyVerdict::Kept(resp) => return Ok((resp, transform, replay)),
            CopyVerdict::ThroughProxy { unproven_part } => unproven_part,
        };
        upstream.learn_copies_through_proxy();
        tracing::info!(
            upstream = upstream.name(),
            operation = routed.op.as_str(),
            backend_status = status.as_u16(),
            "sse: the backend cannot make copies under the SSE rules; the proxy makes them"
        );
        let made = self.copy(routed, upstream).await;
        match (made, unproven_part) {
            (Ok((resp, transform)), Some(_)) if resp.status().is_success() => {
                Ok((resp, transform, None))
            }
            (made, None) => made.map(|(resp, transform)| (resp, transform, None)),
            (made, Some(policy)) => {
                let why = match &made {
                    Ok((resp, _)) => format!("the backend answered {}", resp.status()),
                    Err(e) => e.to_string(),
                };
                tracing::warn!(
                    operation = routed.op.as_str(),
                    error = %why,
                    "sse: the proxy could not make an unproven part again"
                );
                Err(sse.refuse_unproven_part(upstream, policy).await)
            }
        }
    }

    /// The copy made by the proxy: the source's GET streamed into a `PutObject` or
    /// `UploadPart`.
    async fn copy(
        self,
        routed: &Routed,
        upstream: &Sender<'_>,
    ) -> Result<(Response<Body>, Transform), ProxyError> {
        let (out, mut transform) = cse::copy_through_proxy(routed, upstream, self.out).await?;
        let signed = sign_data(upstream, &mut transform, out, body::empty(), None)?;
        let resp = upstream
            .dispatch(signed)
            .await
            .map_err(ProxyError::upstream)?;
        let resp = resp.map(|b| b.map_err(|e| -> BoxError { Box::new(e) }).boxed_unsync());
        Ok((resp, transform))
    }
}
