//! Browser form uploads (`PostObject`) in the pipeline.
//!
//! [`verify`] reads the form's fields (bounded: `s3::post::MAX_PRE_DATA_BYTES`), has
//! `auth::post` verify its policy and signature, and returns the `PutObject` that replaces it:
//! the file, streamed (never buffered), is that PUT's body. The upstream receives a PUT signed
//! with the upstream's credentials, never the form: a policy is the client key's proof, which
//! the backend does not know, and a PUT goes through the SSE and client-side encryption
//! stages exactly as every other PUT does. [`Reply`] then answers as S3 answers a form.
//!
//! The file's length is known before the first byte is forwarded: the form must end with the
//! file, directly followed by the closing delimiter, so it is the request's `Content-Length`
//! less the fields before it and that delimiter. [`FileBody`] holds the file's last bytes back
//! until it has seen that delimiter end the body, so a body that ends otherwise never
//! completes the upstream PUT, and the policy's `content-length-range` is checked before
//! anything is sent: no refused upload leaves an object behind.
//!
//! Reference: <https://docs.aws.amazon.com/AmazonS3/latest/API/RESTObjectPOST.html>

use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, ETAG, LOCATION};
use http::{HeaderValue, Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, Either};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::auth::{self, AuthContext, AuthError, ClientKeys, Verified};
use crate::body::{self, Body, BoxError};
use crate::error::ProxyError;
use crate::s3::post::{self, FileFraming, FormReader, PostError};
use crate::s3::route::{encode_path, Routed};

use super::linger::ClientBody;
use super::FramingError;

/// Query values of the redirect: everything but RFC 3986 unreserved characters encoded.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// The body every request's verification wraps: the client's, or a form upload's file.
pub(super) type RequestBody = Either<ClientBody, FileBody<ClientBody>>;

/// Verifies a form upload addressed to the bucket of `head` and returns the `PutObject` that
/// stores its file, routed, with the answer the form asked for.
pub(super) async fn verify(
    req: Request<ClientBody>,
    head: Routed,
    keys: &ClientKeys,
    cx: &AuthContext<'_>,
) -> Result<(Verified<RequestBody>, Routed, Reply), ProxyError> {
    let refused = |e: PostError| ProxyError::downstream(AuthError::Post(e));
    let (parts, mut client) = req.into_parts();
    let content_type = parts
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mut reader = FormReader::new(&post::boundary(content_type).map_err(refused)?);
    let total = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
        .ok_or(ProxyError::downstream(FramingError::MissingLength))?;
    let form_head = loop {
        match client.frame().await {
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    if let Some(h) = reader.feed(&data).map_err(refused)? {
                        break h;
                    }
                }
            }
            Some(Err(e)) => {
                return Err(ProxyError::downstream(if body::is_stalled(e.as_ref()) {
                    AuthError::RequestTimeout
                } else {
                    AuthError::Post(PostError::Malformed)
                }))
            }
            None => return Err(refused(PostError::Malformed)),
        }
    };
    let framing = form_head.file(&reader, total).map_err(refused)?;
    let file_len = framing.len();
    let form = form_head.form;
    let bucket = head.target.bucket().unwrap_or_default().to_owned();
    let file = FileBody::new(form_head.file_start.into(), client, framing);
    let verified = auth::post::verify_form(
        parts,
        &form,
        &bucket,
        Either::Right(file),
        file_len,
        keys,
        cx,
    )
    .map_err(ProxyError::downstream)?;
    let key = form.key().map_err(refused)?;
    let routed = head
        .form_upload(&key, &verified.parts.headers)
        .map_err(ProxyError::downstream)?;
    let reply = Reply::new(&form, &routed);
    Ok((verified, routed, reply))
}

// === impl Reply ===

/// How a stored form upload is answered (`success_action_redirect`, `success_action_status`).
#[derive(Debug)]
pub(super) struct Reply {
    answer: Answer,
    bucket: String,
    key: String,
    /// The object's URL, for the 201 document.
    location: String,
}

#[derive(Debug)]
enum Answer {
    /// 303 to this URL, with `bucket`, `key` and `etag` added to its query.
    Redirect(String),
    Ok,
    Created,
    NoContent,
}

impl Reply {
    fn new(form: &post::Form, routed: &Routed) -> Self {
        // S3 acts as if a redirect it cannot interpret were absent, and answers 204 to any
        // status but 200 and 201.
        let redirect = form
            .get("success_action_redirect")
            .or_else(|| form.get("redirect"))
            .filter(|u| {
                u.parse::<http::Uri>()
                    .is_ok_and(|u| matches!(u.scheme_str(), Some("http" | "https")))
            });
        let answer = match (redirect, form.get("success_action_status")) {
            (Some(url), _) => Answer::Redirect(url.to_owned()),
            (None, Some("200")) => Answer::Ok,
            (None, Some("201")) => Answer::Created,
            (None, _) => Answer::NoContent,
        };
        let bucket = routed.target.bucket().unwrap_or_default().to_owned();
        let key = routed.target.key().unwrap_or_default().to_owned();
        let location = if routed.virtual_host {
            format!("https://{}/{}", routed.authority, encode_path(&key))
        } else {
            format!(
                "https://{}/{bucket}/{}",
                routed.authority,
                encode_path(&key)
            )
        };
        Reply {
            answer,
            bucket,
            key,
            location,
        }
    }

    /// The answer to the form, from the upstream's answer to the PUT; a refusal is passed on.
    pub(super) fn respond(self, resp: Response<Body>) -> Result<Response<Body>, ProxyError> {
        if !resp.status().is_success() {
            return Ok(resp);
        }
        let (mut parts, _) = resp.into_parts();
        parts.headers.remove(CONTENT_LENGTH);
        parts.headers.remove(CONTENT_TYPE);
        let etag = parts
            .headers
            .get(ETAG)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let q = |s: &str| utf8_percent_encode(s, QUERY_VALUE).to_string();
        let header = |v: &str| {
            HeaderValue::from_str(v).map_err(|_| ProxyError::Internal("unencodable header".into()))
        };
        let body = match self.answer {
            Answer::Redirect(url) => {
                let sep = if url.contains('?') { '&' } else { '?' };
                let to = format!(
                    "{url}{sep}bucket={}&key={}&etag={}",
                    q(&self.bucket),
                    q(&self.key),
                    q(&etag)
                );
                parts.status = StatusCode::SEE_OTHER;
                parts.headers.insert(LOCATION, header(&to)?);
                body::empty()
            }
            Answer::Ok => {
                parts.status = StatusCode::OK;
                body::empty()
            }
            Answer::NoContent => {
                parts.status = StatusCode::NO_CONTENT;
                body::empty()
            }
            Answer::Created => {
                parts.status = StatusCode::CREATED;
                parts.headers.insert(LOCATION, header(&self.location)?);
                parts
                    .headers
                    .insert(CONTENT_TYPE, HeaderValue::from_static("application/xml"));
                let doc = format!(
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<PostResponse><Location>{}</Location><Bucket>{}</Bucket><Key>{}</Key><ETag>{}</ETag></PostResponse>",
                    escape(&self.location),
                    escape(&self.bucket),
                    escape(&self.key),
                    escape(&etag)
                );
                parts
                    .headers
                    .insert(CONTENT_LENGTH, HeaderValue::from(doc.len()));
                body::full(doc)
            }
        };
        Ok(Response::from_parts(parts, body))
    }
}

fn escape(s: &str) -> String {
    quick_xml::escape::escape(s).into_owned()
}

// === impl FileBody ===

pin_project_lite::pin_project! {
    /// The file of a form upload: the client's body from the file's first byte, framed by
    /// `s3::post::FileFraming` (which holds the file's end back until the closing delimiter
    /// has ended the body).
    pub(super) struct FileBody<B> {
        #[pin]
        client: B,
        // Bytes read with the form's fields, not yet passed on.
        pending: Option<Bytes>,
        framing: Box<FileFraming>,
    }
}

impl<B> FileBody<B> {
    fn new(start: Bytes, client: B, framing: FileFraming) -> Self {
        FileBody {
            client,
            pending: (!start.is_empty()).then_some(start),
            framing: Box::new(framing),
        }
    }
}

fn refused(e: PostError) -> BoxError {
    Box::new(AuthError::Post(e))
}

impl<B: http_body::Body<Data = Bytes, Error = BoxError>> http_body::Body for FileBody<B> {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut this = self.project();
        loop {
            if this.framing.is_done() {
                return Poll::Ready(None);
            }
            let data = match this.pending.take() {
                Some(data) => data,
                None => match ready!(this.client.as_mut().poll_frame(cx)) {
                    Some(Ok(frame)) => match frame.into_data() {
                        Ok(data) => data,
                        Err(_) => continue,
                    },
                    Some(Err(e)) => return Poll::Ready(Some(Err(e))),
                    None => {
                        return Poll::Ready(match this.framing.finish() {
                            Ok(last) if last.is_empty() => None,
                            Ok(last) => Some(Ok(Frame::data(last))),
                            Err(e) => Some(Err(refused(e))),
                        })
                    }
                },
            };
            match this.framing.ingest(data) {
                Ok(Some(file)) => return Poll::Ready(Some(Ok(Frame::data(file)))),
                Ok(None) => {}
                Err(e) => return Poll::Ready(Some(Err(refused(e)))),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.framing.is_done()
    }
}

#[cfg(test)]
mod tests;
