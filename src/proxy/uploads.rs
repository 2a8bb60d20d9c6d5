//! A CompleteMultipartUpload names an upload the backend may not know. S3 answers 404
//! `NoSuchUpload`; Ceph RGW 16 answers 500 (and moto 500). So the proxy asks the backend first
//! (ListParts, one part), once the client's document has passed its own checks. The
//! completion still goes to the backend: an upload that was just completed is no longer
//! listed either, and completing it again is answered 200 with the object by S3 and RGW.
//! Only when the backend then fails with a server error does the proxy answer S3's 404
//! `NoSuchUpload` in its place ([`judge`]). Encrypted buckets check their completions in the
//! client-side encryption stage instead.
//! Reference: <https://docs.aws.amazon.com/AmazonS3/latest/API/API_CompleteMultipartUpload.html>

use std::time::SystemTime;

use bytes::Bytes;
use http::{HeaderMap, Method, Response, StatusCode};
use http_body_util::{BodyExt, Limited};

use crate::body::{self, Body};
use crate::error::{ProxyError, S3Code, S3Error};
use crate::s3::xml;
use crate::upstream::{Outgoing, Payload, Sender, UpstreamError};

/// The most of a ListParts refusal the proxy reads: an S3 error document is a few hundred bytes.
const MAX_REFUSAL_BYTES: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
#[error("The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.")]
pub(super) struct NoSuchUpload;

impl S3Error for NoSuchUpload {
    fn code(&self) -> S3Code {
        S3Code::NoSuchUpload
    }
}

/// Whether the backend lists the upload the completion `out` names: `false` only when it
/// says there is no such upload.
pub(super) async fn listed(upstream: &Sender<'_>, out: &Outgoing<'_>) -> Result<bool, ProxyError> {
    let upload_id = out
        .upload_id()
        .ok_or_else(|| ProxyError::Internal("a completion without an uploadId".to_owned()))?
        .to_owned();
    let list = Outgoing {
        method: Method::GET,
        target: out.target,
        query: vec![
            ("uploadId".to_owned(), upload_id),
            ("max-parts".to_owned(), "1".to_owned()),
        ],
        headers: HeaderMap::new(),
        content_length: None,
    };
    let req = upstream
        .sign(list, &Payload::Known(b""), body::empty(), SystemTime::now())
        .map_err(ProxyError::upstream)?;
    let resp = upstream.send(req).await.map_err(ProxyError::upstream)?;
    if resp.status() != StatusCode::NOT_FOUND {
        return Ok(true);
    }
    let doc = Limited::new(resp.into_body(), MAX_REFUSAL_BYTES)
        .collect()
        .await
        .map_err(|e| ProxyError::upstream(UpstreamError::Answer(e.to_string())))?
        .to_bytes();
    Ok(!is_no_such_upload(&doc))
}

/// The completion's answer for an upload the backend did not list: a server error there
/// means it did not know the upload either, which S3 answers with 404 `NoSuchUpload`.
pub(super) fn judge(resp: Response<Body>) -> Result<Response<Body>, ProxyError> {
    if resp.status().is_server_error() {
        return Err(ProxyError::downstream(NoSuchUpload));
    }
    Ok(resp)
}

/// A ListParts refusal that says the upload does not exist: `NoSuchUpload` as S3 says it, or
/// `NoSuchKey` as Ceph RGW 16 says it (it looks the upload up as an object). `NoSuchBucket`
/// is not one: the completion goes on, for the backend to answer it.
fn is_no_such_upload(doc: &Bytes) -> bool {
    matches!(
        xml::error_code(doc).as_deref(),
        Some("NoSuchUpload" | "NoSuchKey")
    )
}
