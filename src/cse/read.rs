//! `GetObject` and `HeadObject` on encrypted buckets: plaintext sizes and ranges, decrypted
//! bodies (`docs/format.md` §4), across the parts of multipart objects (§7).

use std::ops::Range;
use std::sync::Arc;

use http::{header, HeaderMap, HeaderValue, Response, StatusCode};
use http_body_util::BodyExt;

use crate::body::{Body, BoxError};
use crate::crypto::format::{
    ciphertext_len, ciphertext_range_for, CipherRange, Layout, ObjectKey, ObjectMetadata,
    PartNumber, Version,
};
use crate::crypto::{DecryptSegments, Segment};
use crate::error::ProxyError;
use crate::upstream::{Outgoing, Sender};

use super::{
    client_etag, content_length, head, mark_etag, multipart, object_plaintext_len, s3ec,
    strip_stored_headers, version_query, CseError, Rule, Transform, Unencrypted, ETAG_SUFFIX,
};

/// The number of parts of a multipart object, in a `partNumber` read's answer.
const X_AMZ_MP_PARTS_COUNT: http::HeaderName =
    http::HeaderName::from_static("x-amz-mp-parts-count");

/// How to answer a read of an encrypted bucket.
pub struct Open {
    rule: Arc<Rule>,
    bucket: String,
    /// The object's key, for the audit log.
    object: String,
    /// A HEAD: sizes only, no body to decrypt.
    head: bool,
    /// A ranged GET, planned from a HEAD.
    range: Option<Planned>,
    /// A ranged GET of an S3 Encryption Client object, planned from a HEAD.
    s3ec_range: Option<s3ec::RangePlan>,
    /// An operator's command reads (`s3seal convert`): a whole S3 Encryption Client object
    /// streams whatever its size, because what it feeds withholds its own end until this
    /// body ended cleanly, after the tag verified (`convert`).
    operator: bool,
}

/// A plaintext range of an encrypted object, and the ciphertext chunks that hold it.
struct Planned {
    plain: Range<u64>,
    total: u64,
    stored: u64,
    key: ObjectKey,
    segments: Vec<(PartNumber, CipherRange)>,
    /// A `partNumber` read: the object's number of parts, for `x-amz-mp-parts-count`.
    parts_count: Option<usize>,
}

fn bucket_of(out: &Outgoing<'_>) -> String {
    out.target.bucket().unwrap_or_default().to_owned()
}

fn object_of(out: &Outgoing<'_>) -> String {
    out.target.key().unwrap_or_default().to_owned()
}

pub(super) async fn plan_head(
    rule: &Arc<Rule>,
    upstream: &Sender<'_>,
    out: &mut Outgoing<'_>,
) -> Result<Transform, ProxyError> {
    // A HEAD reports the whole object's plaintext size.
    out.headers.remove(header::RANGE);
    let mut open = Open {
        rule: Arc::clone(rule),
        bucket: bucket_of(out),
        object: object_of(out),
        head: true,
        range: None,
        s3ec_range: None,
        operator: false,
    };
    if let Some(number) = part_number(out)? {
        open.range = plan_part(rule, upstream, out, number).await?;
        // The part's size comes from the seal; the HEAD itself is of the whole object.
        out.headers.remove(header::RANGE);
    }
    Ok(Transform::Open(open))
}

/// The `partNumber` of a read, if any.
fn part_number(out: &Outgoing<'_>) -> Result<Option<u32>, CseError> {
    let Some((_, v)) = out.query.iter().find(|(k, _)| k == "partNumber") else {
        return Ok(None);
    };
    let n = v
        .parse()
        .ok()
        .filter(|n| (1..=10_000).contains(n))
        .ok_or(CseError::PartNumber)?;
    // Reference: <https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObject.html>
    if out.headers.contains_key(header::RANGE) {
        return Err(CseError::PartAndRange);
    }
    Ok(Some(n))
}

/// The conditions of a read, for the HEAD that plans it.
fn conditions(h: &HeaderMap) -> HeaderMap {
    let mut conditions = HeaderMap::new();
    for name in [
        header::IF_MATCH,
        header::IF_NONE_MATCH,
        header::IF_MODIFIED_SINCE,
        header::IF_UNMODIFIED_SINCE,
    ] {
        for v in h.get_all(&name) {
            conditions.append(name.clone(), v.clone());
        }
    }
    conditions
}

/// A `partNumber` read of an encrypted object: a HEAD (and the seal) finds the part's
/// plaintext and ciphertext spans; the read then asks for the part's ciphertext as a range.
/// Part `n` of a multipart object is its `n`th sealed part (`docs/format.md` §7); a single-part
/// object has part 1 only. Unencrypted objects (and HEAD failures) go upstream as asked.
async fn plan_part(
    rule: &Rule,
    upstream: &Sender<'_>,
    out: &mut Outgoing<'_>,
    number: u32,
) -> Result<Option<Planned>, ProxyError> {
    let head = head(
        upstream,
        out.target,
        version_query(&out.query),
        conditions(&out.headers),
    )
    .await?;
    if head.status() != StatusCode::OK {
        return Ok(None);
    }
    let Some(meta) = ObjectMetadata::from_headers(head.headers()).map_err(CseError::Stored)? else {
        return Ok(None);
    };
    out.query.retain(|(k, _)| k != "partNumber");
    if let Some(etag) = head.headers().get(header::ETAG) {
        out.headers.insert(header::IF_MATCH, etag.clone());
    }
    let key = rule.open(&meta, &bucket_of(out), &object_of(out)).await?;
    let stored = content_length(head.headers())?;
    let parts = object_parts(upstream, &bucket_of(out), &meta, &key, stored).await?;
    let index = match meta.layout {
        Layout::Single => (number == 1).then_some(0),
        Layout::Multipart => parts.iter().position(|(n, _)| n.get() == number),
    }
    .ok_or(CseError::NoSuchPart(number))?;
    let (before, rest) = parts.split_at(index);
    let (part, len) = rest[0];
    let plain_start: u64 = before.iter().map(|(_, len)| len).sum();
    let cipher_start: u64 = before
        .iter()
        .map(|(_, len)| ciphertext_len(*len).expect("sealed lengths are segment lengths"))
        .sum();
    let range = CipherRange::whole(len).expect("a sealed length");
    let cipher_end = cipher_start + range.cipher_end();
    let header_range = format!("bytes={cipher_start}-{}", cipher_end - 1);
    out.headers.insert(
        header::RANGE,
        HeaderValue::try_from(header_range).expect("digits and '-'"),
    );
    Ok(Some(Planned {
        plain: plain_start..plain_start + len,
        total: parts.iter().map(|(_, len)| len).sum(),
        stored,
        key,
        segments: vec![(part, range)],
        parts_count: (meta.layout == Layout::Multipart).then_some(parts.len()),
    }))
}

/// A whole-object read (`GetObject` or `HeadObject`) of an operator's command, as
/// [`Open::operator`] says.
pub(super) fn plan_operator_read(rule: &Arc<Rule>, out: &Outgoing<'_>) -> Transform {
    Transform::Open(Open {
        rule: Arc::clone(rule),
        bucket: bucket_of(out),
        object: object_of(out),
        head: out.method == http::Method::HEAD,
        range: None,
        s3ec_range: None,
        operator: true,
    })
}

pub(super) async fn plan_get(
    rule: &Arc<Rule>,
    upstream: &Sender<'_>,
    out: &mut Outgoing<'_>,
) -> Result<Transform, ProxyError> {
    let mut open = Open {
        rule: Arc::clone(rule),
        bucket: bucket_of(out),
        object: object_of(out),
        head: false,
        range: None,
        s3ec_range: None,
        operator: false,
    };
    // `If-Range` is evaluated here, against the `ETag` the proxy shows: the backend knows only
    // its own `ETag`s, so it would find every client's `If-Range` false. Without a `Range` it
    // means nothing: "A server MUST ignore an If-Range header field received in a request that
    // does not contain a Range header field" (RFC 9110 §13.1.5), which `partNumber` is not.
    let if_range: Vec<HeaderValue> = out
        .headers
        .get_all(header::IF_RANGE)
        .iter()
        .cloned()
        .collect();
    out.headers.remove(header::IF_RANGE);
    if let Some(number) = part_number(out)? {
        open.range = plan_part(rule, upstream, out, number).await?;
        return Ok(Transform::Open(open));
    }
    let Some(spec) = out
        .headers
        .get(header::RANGE)
        .and_then(|v| RangeSpec::parse(v.as_bytes()))
    else {
        // No range, or one S3 would ignore (RFC 9110 §14.2): the whole object.
        out.headers.remove(header::RANGE);
        return Ok(Transform::Open(open));
    };
    let head = head(
        upstream,
        out.target,
        version_query(&out.query),
        conditions(&out.headers),
    )
    .await?;
    if head.status() != StatusCode::OK {
        // The GET itself answers with the error (or 304), with its body.
        out.headers.remove(header::RANGE);
        return Ok(Transform::Open(open));
    }
    // The GET must read the very object the HEAD described.
    if let Some(etag) = head.headers().get(header::ETAG) {
        out.headers.insert(header::IF_MATCH, etag.clone());
    }
    if !if_range.is_empty() && !if_range_holds(&if_range, head.headers()) {
        // "the recipient MUST ignore the Range header field" (RFC 9110 §13.1.5): the whole
        // object, pinned to the one the condition was evaluated against.
        out.headers.remove(header::RANGE);
        return Ok(Transform::Open(open));
    }
    let Some(meta) = ObjectMetadata::from_headers(head.headers()).map_err(CseError::Stored)? else {
        if let Some(settings) = &rule.s3ec {
            open.s3ec_range =
                Some(s3ec::plan_range(settings, upstream, head.headers(), spec, out).await?);
        }
        // Unencrypted: the client's range goes upstream as it is (or the answer is refused).
        return Ok(Transform::Open(open));
    };
    let key = rule.open(&meta, &open.bucket, &open.object).await?;
    let stored = content_length(head.headers())?;
    let parts = object_parts(upstream, &open.bucket, &meta, &key, stored).await?;
    let total = parts.iter().map(|(_, len)| len).sum();
    let plain = spec.resolve(total).ok_or(CseError::InvalidRange(total))?;
    let (segments, cipher) = segments_for(&parts, Some(plain.clone()));
    let range = format!("bytes={}-{}", cipher.start, cipher.end - 1);
    out.headers.insert(
        header::RANGE,
        HeaderValue::try_from(range).expect("digits and '-'"),
    );
    open.range = Some(Planned {
        plain,
        total,
        stored,
        key,
        segments,
        parts_count: None,
    });
    Ok(Transform::Open(open))
}

/// Whether the `If-Range` header `values` hold for the object whose HEAD answered `head`
/// (RFC 9110 §13.1.5). An entity tag must match the `ETag` the proxy shows for it, strongly (a
/// weak tag never does). A date must equal the `Last-Modified`, and that must be a strong
/// validator: at least a second older than the answer's `Date` (RFC 9110 §8.8.2.2). Anything
/// else, several values included, does not hold, so the whole object is sent.
pub(super) fn if_range_holds(values: &[HeaderValue], head: &HeaderMap) -> bool {
    let [value] = values else {
        return false;
    };
    let Ok(value) = value.to_str().map(str::trim) else {
        return false;
    };
    let text = |name| head.get(name).and_then(|v| v.to_str().ok());
    if value.starts_with('"') {
        return text(header::ETAG).is_some_and(|etag| client_etag(etag) == value);
    }
    let date = |s: Option<&str>| s.and_then(|s| httpdate::parse_http_date(s).ok());
    match (
        date(Some(value)),
        date(text(header::LAST_MODIFIED)),
        date(text(header::DATE)),
    ) {
        (Some(asked), Some(modified), Some(now)) => {
            asked == modified && now >= modified + std::time::Duration::from_secs(1)
        }
        _ => false,
    }
}

/// The parts of an object with their plaintext lengths: one for a `PutObject`, the sealed list
/// for a multipart upload. The stored size must be theirs.
pub(super) async fn object_parts(
    upstream: &Sender<'_>,
    bucket: &str,
    meta: &ObjectMetadata,
    key: &ObjectKey,
    stored: u64,
) -> Result<Vec<(PartNumber, u64)>, ProxyError> {
    match meta.layout {
        Layout::Single => Ok(vec![(PartNumber::SINGLE, object_plaintext_len(stored)?)]),
        Layout::Multipart => {
            let seal = match meta.version {
                Version::V1 => multipart::load_seal(upstream, bucket, key).await?,
                // Completed at the backend, and not yet given its seal: the completion is
                // still running (or failed before it could answer).
                Version::V2 => meta
                    .seal(key)
                    .map_err(CseError::Stored)?
                    .ok_or(CseError::SealPending)?,
            };
            if seal.ciphertext_len() != stored {
                return Err(CseError::Inconsistent(format!(
                    "{stored} stored bytes, but the seal lists {} bytes of parts",
                    seal.ciphertext_len()
                ))
                .into());
            }
            Ok(seal.parts().to_vec())
        }
    }
}

/// The segments (part, chunks within it) that hold `plain` (`None`: everything), and the
/// contiguous span of the object they occupy. Empty parts between two parts of the range are
/// included: their one empty chunk lies inside the span and is authenticated too.
pub(super) fn segments_for(
    parts: &[(PartNumber, u64)],
    plain: Option<Range<u64>>,
) -> (Vec<(PartNumber, CipherRange)>, Range<u64>) {
    let mut starts = Vec::with_capacity(parts.len());
    let (mut plain_at, mut cipher_at) = (0, 0);
    for (_, len) in parts {
        starts.push((plain_at, cipher_at));
        plain_at += len;
        cipher_at += ciphertext_len(*len).expect("sealed lengths are segment lengths");
    }
    let Some(plain) = plain else {
        let segments = parts
            .iter()
            .map(|(n, len)| (*n, CipherRange::whole(*len).expect("a segment length")))
            .collect();
        return (segments, 0..cipher_at);
    };
    let overlaps = |i: usize| {
        let (start, len) = (starts[i].0, parts[i].1);
        len > 0 && start < plain.end && start + len > plain.start
    };
    let first = (0..parts.len())
        .find(|&i| overlaps(i))
        .expect("a satisfiable range");
    let last = (0..parts.len())
        .rev()
        .find(|&i| overlaps(i))
        .expect("a satisfiable range");
    let mut segments = Vec::with_capacity(last - first + 1);
    for i in first..=last {
        let ((start, _), (number, len)) = (starts[i], parts[i]);
        let local = plain.start.max(start) - start..plain.end.min(start + len) - start;
        let range = if len == 0 {
            CipherRange::whole(0).expect("the empty segment")
        } else {
            ciphertext_range_for(local, len).expect("a non-empty range inside the part")
        };
        segments.push((number, range));
    }
    let span = starts[first].1 + segments[0].1.cipher_start()
        ..starts[last].1 + segments[segments.len() - 1].1.cipher_end();
    (segments, span)
}

impl Open {
    pub(super) async fn reply(
        self,
        upstream: &Sender<'_>,
        resp: Response<Body>,
    ) -> Result<Response<Body>, ProxyError> {
        let (mut parts, body) = resp.into_parts();
        // Every object of an encrypted bucket shows its `ETag` marked, in a `304` too
        // (docs/format.md §6.1).
        mark_etag(&mut parts.headers, ETAG_SUFFIX)?;
        if !matches!(parts.status, StatusCode::OK | StatusCode::PARTIAL_CONTENT) {
            return Ok(Response::from_parts(parts, body));
        }
        let meta = ObjectMetadata::from_headers(&parts.headers).map_err(CseError::Stored)?;
        let Some(meta) = meta else {
            let stored_headers = parts.headers.clone();
            strip_stored_headers(&mut parts.headers);
            return self
                .without_record(upstream, parts, body, &stored_headers)
                .await;
        };
        // The stored lengths below are read from the answer's own `Content-Length` and
        // `Content-Range`, which stripping the record leaves, before they are rewritten.
        strip_stored_headers(&mut parts.headers);
        let h = &mut parts.headers;
        h.remove(header::TRANSFER_ENCODING);
        h.remove(crate::s3::headers::CONTENT_MD5);
        let planned_status = if self.head {
            StatusCode::OK
        } else {
            StatusCode::PARTIAL_CONTENT
        };
        let (key, segments, shown) = match (parts.status, self.range) {
            (status, Some(planned)) if status == planned_status => {
                // A ranged GET answers for the whole stored object in `Content-Range`; a HEAD
                // (of a part) in `Content-Length`.
                let total = if self.head {
                    content_length(h).ok()
                } else {
                    content_range_total(h)
                };
                if total != Some(planned.stored) {
                    return Err(CseError::Inconsistent(
                        "the object changed between HEAD and GET".into(),
                    )
                    .into());
                }
                if let Some(count) = planned.parts_count {
                    h.insert(X_AMZ_MP_PARTS_COUNT, HeaderValue::from(count));
                }
                // An empty part has no byte to name.
                if !planned.plain.is_empty() {
                    let content_range = format!(
                        "bytes {}-{}/{}",
                        planned.plain.start,
                        planned.plain.end - 1,
                        planned.total
                    );
                    h.insert(
                        header::CONTENT_RANGE,
                        HeaderValue::try_from(content_range).expect("digits"),
                    );
                }
                parts.status = StatusCode::PARTIAL_CONTENT;
                let shown = planned.plain.end - planned.plain.start;
                (planned.key, planned.segments, shown)
            }
            (StatusCode::OK, _) => {
                // The whole object: no range was asked, or the backend ignored it (If-Range).
                let key = self.rule.open(&meta, &self.bucket, &self.object).await?;
                let stored = content_length(h)?;
                let object = object_parts(upstream, &self.bucket, &meta, &key, stored).await?;
                let total = object.iter().map(|(_, len)| len).sum();
                let (segments, _) = segments_for(&object, None);
                h.remove(header::CONTENT_RANGE);
                (key, segments, total)
            }
            (_, _) => {
                return Err(CseError::Inconsistent(
                    "a partial answer that was not asked for".into(),
                )
                .into())
            }
        };
        parts
            .headers
            .insert(header::CONTENT_LENGTH, HeaderValue::from(shown));
        if self.head {
            return Ok(Response::from_parts(parts, body));
        }
        let segments = segments
            .into_iter()
            .map(|(number, range)| Segment {
                key: key.part_key(number),
                range,
            })
            .collect();
        let body = DecryptSegments::new(body, segments)
            .map_err(|e| -> BoxError { Box::new(e) })
            .boxed_unsync();
        Ok(Response::from_parts(parts, body))
    }
}

impl Open {
    /// The answer for an object without an s3seal record: an S3 Encryption Client object's,
    /// if the bucket reads those, or an unencrypted one's.
    async fn without_record(
        mut self,
        upstream: &Sender<'_>,
        parts: http::response::Parts,
        body: Body,
        stored_headers: &HeaderMap,
    ) -> Result<Response<Body>, ProxyError> {
        let Some(settings) = &self.rule.s3ec else {
            return self.unencrypted(parts, body);
        };
        let settings = if self.operator {
            s3ec::Settings {
                large_objects: s3ec::Large::StreamWithAbort,
                ..settings.clone()
            }
        } else {
            settings.clone()
        };
        let mut parts = parts;
        let read = s3ec::reply(
            &self.rule,
            &settings,
            upstream,
            (&self.bucket, &self.object),
            stored_headers,
            &mut parts,
            body,
            self.head,
            self.s3ec_range.take(),
        )
        .await?;
        match read {
            s3ec::Read::Decrypted(body) => Ok(Response::from_parts(parts, body)),
            s3ec::Read::Other(body) => self.unencrypted(parts, body),
        }
    }

    /// The answer for an object without any client-side record.
    fn unencrypted(
        &self,
        parts: http::response::Parts,
        body: Body,
    ) -> Result<Response<Body>, ProxyError> {
        if self.rule.unencrypted == Unencrypted::Refuse {
            return Err(CseError::Unencrypted.into());
        }
        if self.range.is_some() {
            // The HEAD saw an encrypted object, the GET an unencrypted one, despite If-Match.
            return Err(
                CseError::Inconsistent("the object changed between HEAD and GET".into()).into(),
            );
        }
        Ok(Response::from_parts(parts, body))
    }
}

/// The total of `Content-Range: bytes a-b/total`.
pub(super) fn content_range_total(h: &HeaderMap) -> Option<u64> {
    let v = h.get(header::CONTENT_RANGE)?.to_str().ok()?;
    v.rsplit_once('/')?.1.trim().parse().ok()
}

/// A `Range: bytes=...` header S3 honours: one range (RFC 9110 §14.1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeSpec {
    /// `bytes=a-b` (inclusive) or `bytes=a-`.
    From { first: u64, last: Option<u64> },
    /// `bytes=-n`: the last `n` bytes.
    Suffix(u64),
}

impl RangeSpec {
    /// `None` for anything else (several ranges, other units, `b < a`): S3 then sends the
    /// whole object, as RFC 9110 allows.
    pub fn parse(value: &[u8]) -> Option<Self> {
        let text = std::str::from_utf8(value).ok()?.trim();
        let spec = text.strip_prefix("bytes=")?;
        if spec.contains(',') {
            return None;
        }
        let (start, end) = spec.split_once('-')?;
        let num = |digits: &str| -> Option<u64> {
            (!digits.is_empty() && digits.bytes().all(|c| c.is_ascii_digit()))
                .then(|| digits.parse().ok())
                .flatten()
        };
        match (start.trim(), end.trim()) {
            ("", suffix) => Some(RangeSpec::Suffix(num(suffix)?)),
            (start, "") => Some(RangeSpec::From {
                first: num(start)?,
                last: None,
            }),
            (start, end) => {
                let (first, last) = (num(start)?, num(end)?);
                (last >= first).then_some(RangeSpec::From {
                    first,
                    last: Some(last),
                })
            }
        }
    }

    /// The bytes `[a, b)` of an object of `total` bytes; `None` if unsatisfiable (416).
    pub fn resolve(self, total: u64) -> Option<Range<u64>> {
        let range = match self {
            RangeSpec::From { first, last } => {
                first..last.map_or(total, |l| l.saturating_add(1).min(total))
            }
            RangeSpec::Suffix(n) => total - n.min(total)..total,
        };
        (range.start < range.end).then_some(range)
    }
}
