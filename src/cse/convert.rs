//! `s3seal convert`: an object of an encrypted bucket moved, where it lies, between s3seal's
//! format and the AWS S3 Encryption Client's format 3 (`docs/format.md` §11.5).
//!
//! Both sides are the proxy's own: the object is read as a `GetObject` through the proxy would
//! read it (`read`, either format, multipart s3seal objects too) and written as a `PutObject`
//! through the proxy would write it in the target format (`plan_put`, `s3ec::plan_put`). The
//! plaintext streams from the one into the other. The read and the write are pinned to the
//! `ETag` of the HEAD that found the object, as `s3seal encrypt` pins them (`in_place`), and the
//! result is read back whole through the proxy's read path: it must authenticate under its new
//! record and have the SHA-256 of the plaintext that was sent.
//!
//! An S3 Encryption Client object streams whatever its size: the writer withholds its own end
//! (an s3seal object's final chunk) until the source ended cleanly, after its one tag verified,
//! so a source that fails to authenticate leaves a short `PutObject` the backend discards.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::SystemTime;

use aws_lc_rs::digest;
use bytes::Bytes;
use http::{header, HeaderMap, HeaderName, Method, Response, StatusCode};
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt;
use pin_project_lite::pin_project;
use tokio::sync::oneshot;

use crate::body::{self, Body, BoxError};
use crate::crypto::format::{ciphertext_len, ObjectMetadata, META_PREFIX};
use crate::crypto::s3ec::gcm::TAG_LEN;
use crate::crypto::s3ec::{detect, is_instruction_file, Found, Metadata};
use crate::error::ProxyError;
use crate::s3::headers;
use crate::s3::route::Target;
use crate::upstream::{Outgoing, Payload, Sender};

use super::in_place::{etag, header_value, KEPT, MAX_ANSWER_BYTES, MAX_PUT_OBJECT_SIZE};
use super::{
    collect_bounded, content_length, head, plan_put, read, s3ec, CseError, Rule, USER_META_PREFIX,
};

/// An object format of an encrypted bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// s3seal's own: written as a version 2 single-part record (`docs/format.md` §1-§7).
    S3seal,
    /// The AWS S3 Encryption Client's: written as format 3 with its record in the object
    /// metadata (`docs/format.md` §11).
    S3ec,
}

impl Format {
    /// How the command line and the reports name it.
    pub fn name(self) -> &'static str {
        match self {
            Format::S3seal => "s3seal",
            Format::S3ec => "s3ec",
        }
    }
}

/// What `s3seal convert` did to one object.
pub(crate) enum Convert {
    /// In the target format already.
    Already,
    /// Without any client-side record (`s3seal encrypt` is for those).
    Unencrypted,
    /// An S3 Encryption Client object's instruction file, not an object of its own.
    InstructionFile,
    /// Converted (or, in a dry run, to be), with its plaintext size.
    Converted(u64),
}

/// Converts the object at `target`, whose HEAD answered `found`, to `to` under `rule` (which
/// reads S3 Encryption Client objects), and checks what the backend then holds.
pub(crate) async fn convert_object(
    rule: &Arc<Rule>,
    upstream: &Sender<'_>,
    target: &Target,
    found: &HeaderMap,
    to: Format,
    dry_run: bool,
) -> Result<Convert, ProxyError> {
    if is_instruction_file(&Metadata::from_headers(found)) {
        return Ok(Convert::InstructionFile);
    }
    let Some(from) = source_format(upstream, target, found).await? else {
        return Ok(Convert::Unencrypted);
    };
    if from == to {
        return Ok(Convert::Already);
    }
    let backend_etag = etag(found)
        .ok_or_else(|| CseError::Answer("the HEAD gave no ETag".to_owned()))?
        .to_owned();
    // Reads compare a quoted `ETag`, RGW 16's writes an unquoted one (as `in_place` sends).
    let pinned = format!("\"{backend_etag}\"");
    let size = content_length(
        read_through(rule, upstream, target, &pinned, Method::HEAD)
            .await?
            .headers(),
    )?;
    let stored = match to {
        Format::S3seal => ciphertext_len(size),
        Format::S3ec => size.checked_add(TAG_LEN as u64),
    };
    if stored.is_none_or(|n| n > MAX_PUT_OBJECT_SIZE) {
        return Err(CseError::TooLargeInPlace(size).into());
    }
    if dry_run {
        return Ok(Convert::Converted(size));
    }
    let source = read_through(rule, upstream, target, &pinned, Method::GET).await?;
    if content_length(source.headers())? != size {
        return Err(
            CseError::Inconsistent("the GET and the HEAD differ in size".to_owned()).into(),
        );
    }
    let (sent_tx, mut sent_rx) = oneshot::channel();
    let plaintext = DigestBody {
        inner: source.into_body(),
        hash: Some(digest::Context::new(&digest::SHA256)),
        len: 0,
        done: Some(sent_tx),
    }
    .boxed_unsync();
    let mut put = Outgoing {
        method: Method::PUT,
        target,
        query: Vec::new(),
        headers: carried(found),
        content_length: Some(size),
    };
    put.headers
        .insert(header::IF_MATCH, header_value(&backend_etag)?);
    let mut transform = match to {
        Format::S3seal => plan_put(rule, &mut put).await?,
        Format::S3ec => s3ec::plan_put(rule, &mut put).await?,
    };
    let (put, sealed, _) = transform.seal_body(put, plaintext, None::<()>)?;
    let signed = upstream
        .sign(put, &Payload::Streamed, sealed, SystemTime::now())
        .map_err(ProxyError::upstream)?;
    let written = match upstream.send(signed).await {
        Ok(written) => written,
        // The PUT fails with its body: say why the body failed, if it was the source.
        Err(e) => {
            return Err(match sent_rx.try_recv() {
                Ok(Err(why)) => {
                    CseError::Inconsistent(format!("the object does not read whole: {why}")).into()
                }
                _ => ProxyError::upstream(e),
            })
        }
    };
    let (parts, answer) = written.into_parts();
    if !parts.status.is_success() {
        let answer = answer
            .map_err(|e| -> BoxError { Box::new(e) })
            .boxed_unsync();
        let doc = collect_bounded(answer, MAX_ANSWER_BYTES).await?;
        return Err(CseError::Answer(format!(
            "the PUT answered {}: {}",
            parts.status,
            String::from_utf8_lossy(&doc)
        ))
        .into());
    }
    let sent = sent_rx.await.ok().and_then(Result::ok).ok_or_else(|| {
        CseError::Inconsistent("the PUT succeeded, but the plaintext did not end".to_owned())
    })?;
    verify(rule, upstream, target, &parts.headers, to, sent).await?;
    Ok(Convert::Converted(size))
}

/// The format of the object at `target`, whose HEAD answered `found`; `None` without any
/// client-side record, in its metadata or (S3EC formats 1 and 2 may keep the whole record
/// there) in `<key>.instruction`.
async fn source_format(
    upstream: &Sender<'_>,
    target: &Target,
    found: &HeaderMap,
) -> Result<Option<Format>, ProxyError> {
    if let Some(format) = format_of(found)? {
        return Ok(Some(format));
    }
    let (bucket, key) = (
        target.bucket().unwrap_or_default(),
        target.key().unwrap_or_default(),
    );
    let record = s3ec::record(upstream, bucket, key, found).await?;
    Ok(record.map(|_| Format::S3ec))
}

/// The format of the object whose HEAD answered `h`; `None` without any client-side record in
/// its metadata.
fn format_of(h: &HeaderMap) -> Result<Option<Format>, CseError> {
    let s3seal = ObjectMetadata::from_headers(h)?.is_some();
    let s3ec = !matches!(detect(&Metadata::from_headers(h))?, Found::None);
    match (s3seal, s3ec) {
        (false, false) => Ok(None),
        (true, false) => Ok(Some(Format::S3seal)),
        (false, true) => Ok(Some(Format::S3ec)),
        (true, true) => Err(CseError::Inconsistent(
            "the object has both an s3seal and an S3 Encryption Client record".to_owned(),
        )),
    }
}

/// What the new object keeps of the old one's HEAD: its content headers, user metadata (not
/// either format's record), storage class and server-side encryption settings.
fn carried(found: &HeaderMap) -> HeaderMap {
    let records: Vec<HeaderName> = Metadata::header_names().collect();
    let mut h = HeaderMap::new();
    for (name, value) in found {
        let user = name.as_str().starts_with(USER_META_PREFIX)
            && !name.as_str().starts_with(META_PREFIX)
            && !records.contains(name);
        if user || headers::OBJECT_DESCRIPTION.contains(name) || KEPT.contains(&name.as_str()) {
            h.append(name.clone(), value.clone());
        }
    }
    h
}

/// A whole-object `method` (GET or HEAD) of the version whose `ETag` is `pinned`, answered as
/// the proxy answers a client: plaintext size, decrypted body.
async fn read_through(
    rule: &Arc<Rule>,
    upstream: &Sender<'_>,
    target: &Target,
    pinned: &str,
    method: Method,
) -> Result<Response<Body>, ProxyError> {
    let mut h = HeaderMap::new();
    h.insert(header::IF_MATCH, header_value(pinned)?);
    let out = Outgoing {
        method,
        target,
        query: Vec::new(),
        headers: h,
        content_length: None,
    };
    let transform = read::plan_operator_read(rule, &out);
    let signed = upstream
        .sign(out, &Payload::Known(b""), body::empty(), SystemTime::now())
        .map_err(ProxyError::upstream)?;
    let resp = upstream.send(signed).await.map_err(ProxyError::upstream)?;
    let resp = resp.map(|b| b.map_err(|e| -> BoxError { Box::new(e) }).boxed_unsync());
    let resp = transform.reply(upstream, resp).await?;
    if resp.status() != StatusCode::OK {
        return Err(CseError::Read(resp.status()).into());
    }
    Ok(resp)
}

/// What the backend holds at `target` after the PUT that answered `written`: the same version
/// (its `ETag`), a record of format `to`, and a body that reads back through the proxy, whole
/// and authenticated, with the length and SHA-256 of the plaintext `sent`.
async fn verify(
    rule: &Arc<Rule>,
    upstream: &Sender<'_>,
    target: &Target,
    written: &HeaderMap,
    to: Format,
    sent: (u64, digest::Digest),
) -> Result<(), ProxyError> {
    let resp = head(upstream, target, Vec::new(), HeaderMap::new()).await?;
    if resp.status() != StatusCode::OK {
        return Err(CseError::Read(resp.status()).into());
    }
    let now = resp.headers();
    let tag = etag(now).ok_or_else(|| CseError::Answer("the HEAD gave no ETag".to_owned()))?;
    if etag(written).is_some_and(|w| w != tag) {
        return Err(CseError::Inconsistent(
            "the object was rewritten again right after it was converted".to_owned(),
        )
        .into());
    }
    if format_of(now)? != Some(to) {
        return Err(CseError::Inconsistent(format!(
            "the backend did not keep the new {} record",
            to.name()
        ))
        .into());
    }
    let back = read_through(rule, upstream, target, &format!("\"{tag}\""), Method::GET).await?;
    let read = digest_of(back.into_body())
        .await
        .map_err(|e| CseError::Inconsistent(format!("the converted object does not read: {e}")))?;
    if read.0 != sent.0 || read.1.as_ref() != sent.1.as_ref() {
        return Err(CseError::Inconsistent(
            "the converted object reads back different from the plaintext written".to_owned(),
        )
        .into());
    }
    Ok(())
}

/// The length and SHA-256 of a whole body.
async fn digest_of(mut body: Body) -> Result<(u64, digest::Digest), BoxError> {
    let mut hash = digest::Context::new(&digest::SHA256);
    let mut len = 0;
    while let Some(frame) = body.frame().await {
        if let Some(data) = frame?.data_ref() {
            hash.update(data);
            len += data.len() as u64;
        }
    }
    Ok((len, hash.finish()))
}

pin_project! {
    /// `inner` unchanged; once it ended cleanly, its length and SHA-256 go to `done`, or its
    /// error (with its causes) if it failed. A body dropped before its end sends nothing.
    struct DigestBody<B> {
        #[pin]
        inner: B,
        hash: Option<digest::Context>,
        len: u64,
        done: Option<oneshot::Sender<Digested>>,
    }
}

/// What [`DigestBody`] saw: the length and SHA-256 of a whole body, or why it failed.
type Digested = Result<(u64, digest::Digest), String>;

impl<B: http_body::Body<Data = Bytes, Error = BoxError>> http_body::Body for DigestBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.project();
        let frame = ready!(this.inner.poll_frame(cx));
        match &frame {
            Some(Ok(f)) => {
                if let (Some(data), Some(hash)) = (f.data_ref(), this.hash.as_mut()) {
                    hash.update(data);
                    *this.len += data.len() as u64;
                }
            }
            Some(Err(e)) => {
                this.hash.take();
                if let Some(done) = this.done.take() {
                    let _ = done.send(Err(with_causes(e.as_ref())));
                }
            }
            None => {
                if let (Some(hash), Some(done)) = (this.hash.take(), this.done.take()) {
                    let _ = done.send(Ok((*this.len, hash.finish())));
                }
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// An error and its causes, as one line.
fn with_causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}
