//! A CompleteMultipartUpload names an upload the backend may not know. S3 answers 404
//! `NoSuchUpload`; Ceph RGW 16 answers 500 (and moto 500). So the proxy asks the backend first
//! (ListParts, one part), once the client's document has passed its own checks, and when the
//! backend says the upload does not exist, answers S3's error itself: the completion is never
//! sent.
//! Reference: <https://docs.aws.amazon.com/AmazonS3/latest/API/API_CompleteMultipartUpload.html>

use std::time::SystemTime;

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use http_body_util::{BodyExt, Limited};

use crate::body;
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

/// Refuses with [`NoSuchUpload`] when the backend says it has no such upload; any other
/// answer lets the completion go on, for the backend to judge. `out` is the completion as it
/// will go upstream: for an encrypted bucket, the backend's upload id, not the client's.
pub(super) async fn check_exists(
    upstream: &Sender<'_>,
    out: &Outgoing<'_>,
) -> Result<(), ProxyError> {
    let upload_id = out
        .query
        .iter()
        .find(|(k, _)| k == "uploadId")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
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
        return Ok(());
    }
    let doc = Limited::new(resp.into_body(), MAX_REFUSAL_BYTES)
        .collect()
        .await
        .map_err(|e| ProxyError::upstream(UpstreamError::Answer(e.to_string())))?
        .to_bytes();
    if is_no_such_upload(&doc) {
        return Err(ProxyError::downstream(NoSuchUpload));
    }
    Ok(())
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
