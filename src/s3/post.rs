//! Browser form uploads (`PostObject`): the `multipart/form-data` body up to its file, and the
//! POST policy that the form's signature covers. Pure: the caller feeds bytes and the clock.
//!
//! [`FormReader`] reads the fields that precede the `file` field (at most
//! [`MAX_PRE_DATA_BYTES`], S3's limit) and stops where the file's content begins; the file
//! itself is never buffered. [`Policy`] parses the base64 JSON policy and checks a form
//! against it as S3 does: expiration, each condition, and that every field is covered.
//!
//! Reference: <https://docs.aws.amazon.com/AmazonS3/latest/API/RESTObjectPOST.html>,
//! <https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-HTTPPOSTConstructPolicy.html>

use std::time::SystemTime;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use bytes::Bytes;

use crate::error::{S3Code, S3Error};

/// The most the fields before the file may take, boundaries and part headers included: S3
/// answers `MaxPostPreDataLengthExceeded` past 20 KiB.
pub const MAX_PRE_DATA_BYTES: usize = 20 * 1024;

/// The longest boundary RFC 2046 §5.1.1 allows.
const MAX_BOUNDARY_BYTES: usize = 70;

/// Fields that no policy condition needs to name.
/// Reference: sigv4-HTTPPOSTConstructPolicy, "Conditions".
fn is_exempt(name: &str) -> bool {
    matches!(name, "x-amz-signature" | "file" | "policy") || name.starts_with("x-ignore-")
}

/// Why a form upload is refused, in S3's words where S3 has them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PostError {
    #[error("Bucket POST must be of the enclosure-type multipart/form-data")]
    NotMultipart,
    #[error("The body of your POST request is not well-formed multipart/form-data.")]
    Malformed,
    #[error("Your POST request fields preceding the upload file were too large.")]
    PreDataTooLarge,
    #[error("Bucket POST must contain a field named '{0}'.  If it is specified, please check the order of the fields.")]
    MissingField(&'static str),
    #[error("POST requires exactly one file upload per request.")]
    NoFile,
    #[error("The form field '{0}' appears more than once.")]
    DuplicateField(String),
    #[error("The form field '{0}' is not valid: {1}")]
    BadField(&'static str, &'static str),
    #[error("s3seal does not accept the form field '{0}'.")]
    UnsupportedField(String),
    #[error("Invalid Policy: {0}")]
    InvalidPolicy(&'static str),
    #[error("Invalid according to Policy: Policy expired.")]
    Expired,
    #[error("Invalid according to Policy: Policy Condition failed: {0}")]
    ConditionFailed(String),
    #[error("Invalid according to Policy: Extra input fields: {0}")]
    ExtraField(String),
    #[error("Your proposed upload exceeds the maximum allowed size")]
    TooLarge,
    #[error("Your proposed upload is smaller than the minimum allowed size")]
    TooSmall,
}

impl S3Error for PostError {
    fn code(&self) -> S3Code {
        match self {
            PostError::NotMultipart => S3Code::PreconditionFailed,
            PostError::Malformed => S3Code::MalformedPOSTRequest,
            PostError::PreDataTooLarge => S3Code::MaxPostPreDataLengthExceeded,
            PostError::MissingField(_)
            | PostError::NoFile
            | PostError::DuplicateField(_)
            | PostError::BadField(..)
            | PostError::UnsupportedField(_) => S3Code::InvalidArgument,
            PostError::InvalidPolicy(_) => S3Code::InvalidPolicyDocument,
            PostError::Expired | PostError::ConditionFailed(_) | PostError::ExtraField(_) => {
                S3Code::AccessDenied
            }
            PostError::TooLarge => S3Code::EntityTooLarge,
            PostError::TooSmall => S3Code::EntityTooSmall,
        }
    }
}

// === The form ===

/// The boundary of a `multipart/form-data` `Content-Type` (RFC 7578 §4.1).
pub fn boundary(content_type: &str) -> Result<String, PostError> {
    let mut params = content_type.split(';');
    let media = params.next().unwrap_or("").trim();
    if !media.eq_ignore_ascii_case("multipart/form-data") {
        return Err(PostError::NotMultipart);
    }
    for p in params {
        let Some((name, value)) = p.split_once('=') else {
            continue;
        };
        if name.trim().eq_ignore_ascii_case("boundary") {
            let value = value.trim();
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(value);
            if value.is_empty() || value.len() > MAX_BOUNDARY_BYTES || !value.is_ascii() {
                return Err(PostError::Malformed);
            }
            return Ok(value.to_owned());
        }
    }
    Err(PostError::Malformed)
}

/// The fields of a form, in order, names lower-cased (S3 reads them case-insensitively).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Form {
    fields: Vec<(String, String)>,
    /// The `filename` of the file field, as the browser sent it.
    pub filename: Option<String>,
}

impl Form {
    /// A form of these fields (names lower-cased); a name given twice is refused.
    pub fn new<N: AsRef<str>, V: Into<String>>(
        fields: impl IntoIterator<Item = (N, V)>,
        filename: Option<String>,
    ) -> Result<Self, PostError> {
        let mut form = Form {
            fields: Vec::new(),
            filename,
        };
        for (name, value) in fields {
            form.push(name.as_ref().to_ascii_lowercase(), value.into())?;
        }
        Ok(form)
    }

    fn push(&mut self, name: String, value: String) -> Result<(), PostError> {
        if self.get(&name).is_some() {
            return Err(PostError::DuplicateField(name));
        }
        self.fields.push((name, value));
        Ok(())
    }

    /// A field's value; `name` is lower case.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every field, names lower-cased, in the order sent.
    pub fn fields(&self) -> impl Iterator<Item = (&str, &str)> {
        self.fields.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// The object key: the `key` field with `${filename}` replaced by the file's name, as S3
    /// does.
    pub fn key(&self) -> Result<String, PostError> {
        let key = self.get("key").ok_or(PostError::MissingField("key"))?;
        Ok(key.replace("${filename}", self.filename.as_deref().unwrap_or("")))
    }
}

/// The form's head, read up to the first byte of the file's content.
#[derive(Debug)]
pub struct FormHead {
    pub form: Form,
    /// Bytes of the body before the file's content.
    pub file_offset: u64,
    /// File bytes read with the head (the rest of the last chunk fed).
    pub file_start: Vec<u8>,
}

impl FormHead {
    /// The framing of the file in a body of `total` bytes: its length (the body less the
    /// fields and the closing delimiter), and the machine that checks its end.
    pub fn file(&self, reader: &FormReader, total: u64) -> Result<FileFraming, PostError> {
        let closing = reader.closing();
        let len = total
            .checked_sub(self.file_offset + closing.len() as u64)
            .ok_or(PostError::Malformed)?;
        Ok(FileFraming {
            phase: Phase::File,
            remaining: len,
            len,
            held: Bytes::new(),
            // `CRLF --boundary`: where any part after the file would begin.
            delimiter: closing[..closing.len() - 4].to_vec(),
            carry: Vec::new(),
            closing,
            tail: Vec::new(),
        })
    }
}

/// The file's bytes between the form's fields and the closing delimiter, checked as they
/// pass: the delimiter must not occur inside the file (RFC 2046 §5.1.1: that would be another
/// part, which cannot be read without buffering the file), and must end the body exactly
/// where the file's length says. The chunk that completes the file is held back until it has.
#[derive(Debug)]
pub struct FileFraming {
    phase: Phase,
    /// File bytes not yet received.
    remaining: u64,
    len: u64,
    /// The file's last bytes, held until the closing delimiter has ended the body.
    held: Bytes,
    delimiter: Vec<u8>,
    /// The file's last bytes passed on (fewer than the delimiter's), to find a delimiter cut
    /// across two chunks.
    carry: Vec<u8>,
    closing: Vec<u8>,
    /// What followed the file so far.
    tail: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    File,
    Closing,
    Done,
}

impl FileFraming {
    /// The file's length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the file has no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Takes the next bytes of the body; returns the file bytes that may go on now.
    pub fn ingest(&mut self, mut data: Bytes) -> Result<Option<Bytes>, PostError> {
        let result = self.step(&mut data);
        if result.is_err() {
            self.phase = Phase::Done;
        }
        result
    }

    fn step(&mut self, data: &mut Bytes) -> Result<Option<Bytes>, PostError> {
        match self.phase {
            Phase::Done => return Err(PostError::Malformed),
            Phase::File => {
                let end = usize::try_from(self.remaining).unwrap_or(usize::MAX);
                // Strictly shorter: the chunk that ends the file is held back.
                let file = if data.len() < end {
                    std::mem::take(data)
                } else {
                    data.split_to(end)
                };
                self.scan(&file)?;
                self.remaining -= file.len() as u64;
                if data.is_empty() && self.remaining > 0 {
                    return Ok(Some(file));
                }
                self.held = file;
                self.phase = Phase::Closing;
            }
            Phase::Closing => {}
        }
        self.tail.extend_from_slice(data);
        if !self.closing.starts_with(&self.tail) {
            return Err(PostError::Malformed);
        }
        Ok(None)
    }

    /// Refuses a delimiter inside the file, also one cut across chunks.
    fn scan(&mut self, file: &[u8]) -> Result<(), PostError> {
        let d = &self.delimiter;
        let mut seam = std::mem::take(&mut self.carry);
        seam.extend_from_slice(&file[..file.len().min(d.len() - 1)]);
        if find(&seam, d).is_some() || find(file, d).is_some() {
            return Err(PostError::Malformed);
        }
        let keep = d.len() - 1;
        self.carry = if file.len() >= keep {
            file[file.len() - keep..].to_vec()
        } else {
            seam[seam.len().saturating_sub(keep)..].to_vec()
        };
        Ok(())
    }

    /// The end of the body: the held-back end of the file, if the closing delimiter ended it.
    pub fn finish(&mut self) -> Result<Bytes, PostError> {
        let complete = self.phase == Phase::Closing && self.tail == self.closing;
        self.phase = Phase::Done;
        if complete {
            Ok(std::mem::take(&mut self.held))
        } else {
            Err(PostError::Malformed)
        }
    }

    /// Whether the file has been passed on whole, or refused.
    pub fn is_done(&self) -> bool {
        self.phase == Phase::Done
    }
}

/// Reads a form body up to its file field. Fields after the file cannot be read without
/// buffering it, so the file must be the last part, directly followed by the closing
/// delimiter ([`FormReader::closing`]); browsers, `requests` and the SDKs' examples send it so.
#[derive(Debug)]
pub struct FormReader {
    /// `--boundary`.
    delimiter: Vec<u8>,
    buf: Vec<u8>,
    /// The fields read so far.
    form: Form,
    /// Where reading resumes: the first byte after the opening delimiter, or of a part's
    /// headers, or of the value of `field`.
    pos: usize,
    /// How far the search for the current part's end has looked, so that bytes fed one at a
    /// time are not searched again each time (no quadratic work before authentication).
    searched: usize,
    /// The field whose value begins at `pos`.
    field: Option<String>,
}

impl FormReader {
    pub fn new(boundary: &str) -> Self {
        FormReader {
            delimiter: format!("--{boundary}").into_bytes(),
            buf: Vec::new(),
            form: Form::default(),
            pos: 0,
            searched: 0,
            field: None,
        }
    }

    /// What must follow the file's content and end the body: `CRLF --boundary-- CRLF`.
    pub fn closing(&self) -> Vec<u8> {
        let mut c = b"\r\n".to_vec();
        c.extend_from_slice(&self.delimiter);
        c.extend_from_slice(b"--\r\n");
        c
    }

    /// Takes the next bytes of the body; `Some` once the file's content begins.
    pub fn feed(&mut self, data: &[u8]) -> Result<Option<FormHead>, PostError> {
        self.buf.extend_from_slice(data);
        match self.parse()? {
            Some(offset) => {
                let file_start = self.buf.split_off(offset);
                Ok(Some(FormHead {
                    form: std::mem::take(&mut self.form),
                    file_offset: offset as u64,
                    file_start,
                }))
            }
            None if self.buf.len() > MAX_PRE_DATA_BYTES => Err(PostError::PreDataTooLarge),
            None => Ok(None),
        }
    }

    /// Reads on from `pos`: the offset of the file's content, or `None` when more bytes are
    /// needed.
    fn parse(&mut self) -> Result<Option<usize>, PostError> {
        let len = self.buf.len().min(MAX_PRE_DATA_BYTES);
        if self.pos == 0 {
            // The body opens with the first delimiter (no preamble).
            let mut opening = self.delimiter.clone();
            opening.extend_from_slice(b"\r\n");
            let seen = len.min(opening.len());
            if self.buf[..seen] != opening[..seen] {
                return Err(PostError::Malformed);
            }
            if seen < opening.len() {
                return Ok(None);
            }
            self.pos = opening.len();
            self.searched = self.pos;
        }
        let mut marker = b"\r\n".to_vec();
        marker.extend_from_slice(&self.delimiter);
        loop {
            let Some(name) = self.field.take() else {
                // A part's headers, up to the empty line.
                let Some(end) = self.find_from(len, b"\r\n\r\n") else {
                    return Ok(None);
                };
                let part = parse_part_headers(&self.buf[self.pos..end])?;
                self.pos = end + 4;
                self.searched = self.pos;
                if part.name.eq_ignore_ascii_case("file") {
                    self.form.filename = part.filename;
                    return Ok(Some(self.pos));
                }
                self.field = Some(part.name.to_ascii_lowercase());
                continue;
            };
            // A field's value, up to the next delimiter and what follows it.
            let Some(end) = self.find_from(len, &marker) else {
                self.field = Some(name);
                return Ok(None);
            };
            let after = end + marker.len();
            let next = match self.buf[..len].get(after..after + 2) {
                None => {
                    // Found again next time, from here.
                    self.searched = end;
                    self.field = Some(name);
                    return Ok(None);
                }
                Some(next) => <[u8; 2]>::try_from(next).unwrap_or_default(),
            };
            let value = String::from_utf8(self.buf[self.pos..end].to_vec())
                .map_err(|_| PostError::Malformed)?;
            self.form.push(name, value)?;
            match &next {
                b"\r\n" => {}
                // The closing delimiter before any file.
                b"--" => return Err(PostError::NoFile),
                _ => return Err(PostError::Malformed),
            }
            self.pos = after + 2;
            self.searched = self.pos;
        }
    }

    /// The first `needle` in the buffer (up to `len`) at or after `pos`, searching only what
    /// was not searched before; records how far it looked.
    fn find_from(&mut self, len: usize, needle: &[u8]) -> Option<usize> {
        let from = self.searched.max(self.pos);
        let found = find(&self.buf[from..len], needle).map(|i| from + i);
        if found.is_none() {
            self.searched = len.saturating_sub(needle.len() - 1).max(self.pos);
        }
        found
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    let (&first, rest) = needle.split_first()?;
    let mut from = 0;
    while let Some(i) = hay[from..].iter().position(|&b| b == first) {
        let at = from + i;
        if hay.get(at + 1..at + needle.len()) == Some(rest) {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

struct PartHeaders {
    name: String,
    filename: Option<String>,
}

/// A part's headers: a `Content-Disposition: form-data` with a name is required; its
/// `Content-Type` (and any other header) is not S3's business, the `Content-Type` field is.
fn parse_part_headers(raw: &[u8]) -> Result<PartHeaders, PostError> {
    let raw = std::str::from_utf8(raw).map_err(|_| PostError::Malformed)?;
    let mut found = None;
    for line in raw.split("\r\n") {
        let (name, value) = line.split_once(':').ok_or(PostError::Malformed)?;
        if !name.trim().eq_ignore_ascii_case("content-disposition") {
            continue;
        }
        if found.is_some() {
            return Err(PostError::Malformed);
        }
        found = Some(parse_disposition(value)?);
    }
    found.ok_or(PostError::Malformed)
}

/// `form-data; name="x"; filename="y"` (RFC 7578 §4.2), quoted strings with `\` escapes.
fn parse_disposition(value: &str) -> Result<PartHeaders, PostError> {
    let mut rest = value.trim_start();
    let kind_end = rest.find(';').unwrap_or(rest.len());
    if !rest[..kind_end].trim().eq_ignore_ascii_case("form-data") {
        return Err(PostError::Malformed);
    }
    rest = &rest[kind_end..];
    let (mut name, mut filename) = (None, None);
    while let Some(r) = rest.strip_prefix(';') {
        let r = r.trim_start();
        let (param, after) = r.split_once('=').ok_or(PostError::Malformed)?;
        let (value, after) = if let Some(q) = after.strip_prefix('"') {
            let mut out = String::new();
            let mut chars = q.char_indices();
            let end = loop {
                match chars.next() {
                    Some((i, '"')) => break i,
                    Some((_, '\\')) => out.push(chars.next().ok_or(PostError::Malformed)?.1),
                    Some((_, c)) => out.push(c),
                    None => return Err(PostError::Malformed),
                }
            };
            (out, &q[end + 1..])
        } else {
            let end = after.find(';').unwrap_or(after.len());
            (after[..end].trim().to_owned(), &after[end..])
        };
        match param.trim().to_ascii_lowercase().as_str() {
            "name" if name.is_none() => name = Some(value),
            "filename" if filename.is_none() => filename = Some(value),
            "name" | "filename" => return Err(PostError::Malformed),
            _ => {}
        }
        rest = after.trim_start();
    }
    if !rest.is_empty() {
        return Err(PostError::Malformed);
    }
    Ok(PartHeaders {
        name: name.filter(|n| !n.is_empty()).ok_or(PostError::Malformed)?,
        filename,
    })
}

// === The policy ===

/// One condition of a policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// `{"field": "value"}` or `["eq", "$field", "value"]`.
    Eq { field: String, value: String },
    /// `["starts-with", "$field", "prefix"]`; an empty prefix admits any value.
    StartsWith { field: String, prefix: String },
    /// `["content-length-range", min, max]`: the file's size in bytes, inclusive.
    LengthRange { min: u64, max: u64 },
}

/// Fields whose values are secrets or credentials: an SSE-C key (or its digest), a session
/// token, the form's signature, the signed policy itself. Their values are never quoted in a
/// refusal, which is both answered and logged.
/// Reference: <https://docs.aws.amazon.com/AmazonS3/latest/userguide/ServerSideEncryptionCustomerKeys.html>
fn is_secret(field: &str) -> bool {
    matches!(
        field,
        "x-amz-server-side-encryption-customer-key"
            | "x-amz-server-side-encryption-customer-key-md5"
            | "x-amz-security-token"
            | "x-amz-signature"
            | "policy"
    )
}

/// What a refusal shows in place of a secret field's value.
const REDACTED: &str = "(redacted)";

impl Condition {
    /// The condition as S3 quotes it in its refusal, with the values of secret fields
    /// redacted.
    fn quoted(&self) -> String {
        let q = |s: &str| serde_json::Value::from(s).to_string();
        let shown = |field: &str, value: &str| q(if is_secret(field) { REDACTED } else { value });
        match self {
            Condition::Eq { field, value } => {
                format!(
                    "[\"eq\", {}, {}]",
                    q(&format!("${field}")),
                    shown(field, value)
                )
            }
            Condition::StartsWith { field, prefix } => {
                format!(
                    "[\"starts-with\", {}, {}]",
                    q(&format!("${field}")),
                    shown(field, prefix)
                )
            }
            Condition::LengthRange { min, max } => {
                format!("[\"content-length-range\", {min}, {max}]")
            }
        }
    }

    /// Whether the form holds. `bucket` is the addressed bucket; a field the form lacks is
    /// read as empty.
    fn holds(&self, form: &Form, bucket: &str) -> bool {
        let value = |field: &str| {
            if field == "bucket" {
                bucket
            } else {
                form.get(field).unwrap_or("")
            }
        };
        match self {
            Condition::Eq { field, value: want } => value(field) == want,
            // "Content-Type values for a starts-with condition that include commas are
            // interpreted as lists. Each value in the list must meet the condition."
            Condition::StartsWith { field, prefix } if field == "content-type" => value(field)
                .split(',')
                .all(|v| v.trim_start().starts_with(prefix.as_str())),
            Condition::StartsWith { field, prefix } => value(field).starts_with(prefix.as_str()),
            Condition::LengthRange { .. } => true,
        }
    }

    fn field(&self) -> Option<&str> {
        match self {
            Condition::Eq { field, .. } | Condition::StartsWith { field, .. } => Some(field),
            Condition::LengthRange { .. } => None,
        }
    }
}

/// A decoded POST policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub expiration: SystemTime,
    pub conditions: Vec<Condition>,
}

impl Policy {
    /// Decodes the `policy` field: base64 of a UTF-8 JSON document with `expiration` (ISO
    /// 8601, UTC) and `conditions`.
    pub fn parse(b64: &str) -> Result<Self, PostError> {
        let invalid_json = PostError::InvalidPolicy("Invalid JSON.");
        let raw = STANDARD
            .decode(b64.trim())
            .map_err(|_| PostError::InvalidPolicy("Policy could not be base64-decoded."))?;
        // serde_json keeps the last of two equal keys: a policy that repeats one is refused
        // before it is read, since its signer and S3 may read it differently.
        serde_json::from_slice::<UniqueKeys>(&raw).map_err(|e| {
            if e.is_data() {
                PostError::InvalidPolicy("Policy has a repeated key.")
            } else {
                invalid_json.clone()
            }
        })?;
        let doc: serde_json::Value =
            serde_json::from_slice(&raw).map_err(|_| invalid_json.clone())?;
        let doc = doc.as_object().ok_or(invalid_json)?;
        if doc
            .keys()
            .any(|k| !matches!(k.as_str(), "expiration" | "conditions"))
        {
            return Err(PostError::InvalidPolicy(
                "Policy may hold only expiration and conditions.",
            ));
        }
        let expiration = doc
            .get("expiration")
            .ok_or(PostError::InvalidPolicy("Policy missing expiration."))?
            .as_str()
            .and_then(parse_expiration)
            .ok_or(PostError::InvalidPolicy("Invalid 'expiration' value."))?;
        let list = doc
            .get("conditions")
            .ok_or(PostError::InvalidPolicy("Policy missing conditions."))?
            .as_array()
            .ok_or(PostError::InvalidPolicy("Invalid 'conditions' value."))?;
        let mut conditions = Vec::new();
        for c in list {
            parse_condition(c, &mut conditions)?;
        }
        Ok(Policy {
            expiration,
            conditions,
        })
    }

    /// Checks a form as S3 does: the policy has not expired, every condition holds, and
    /// every field but the exempt ones is named by a condition.
    pub fn check(&self, form: &Form, bucket: &str, now: SystemTime) -> Result<(), PostError> {
        if now > self.expiration {
            return Err(PostError::Expired);
        }
        if let Some(failed) = self.conditions.iter().find(|c| !c.holds(form, bucket)) {
            return Err(PostError::ConditionFailed(failed.quoted()));
        }
        for (name, _) in form.fields() {
            if !is_exempt(name) && !self.conditions.iter().any(|c| c.field() == Some(name)) {
                return Err(PostError::ExtraField(name.to_owned()));
            }
        }
        Ok(())
    }

    /// Checks the file's size against every `content-length-range`.
    pub fn check_length(&self, len: u64) -> Result<(), PostError> {
        for c in &self.conditions {
            if let Condition::LengthRange { min, max } = c {
                if len > *max {
                    return Err(PostError::TooLarge);
                }
                if len < *min {
                    return Err(PostError::TooSmall);
                }
            }
        }
        Ok(())
    }
}

/// `2007-12-01T12:00:00.000Z` (fractions optional), UTC only.
fn parse_expiration(s: &str) -> Option<SystemTime> {
    if !s.ends_with('Z') {
        return None;
    }
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
    Some(t.into())
}

/// A condition's field: `$name`, case-insensitive.
fn field_name(v: &serde_json::Value) -> Result<String, PostError> {
    v.as_str()
        .and_then(|s| s.strip_prefix('$'))
        .filter(|s| !s.is_empty())
        .map(str::to_ascii_lowercase)
        .ok_or(PostError::InvalidPolicy("Invalid condition field name."))
}

fn string(v: &serde_json::Value) -> Result<String, PostError> {
    v.as_str()
        .map(str::to_owned)
        .ok_or(PostError::InvalidPolicy(
            "Condition values must be strings.",
        ))
}

/// A byte count: a non-negative integer, or a string of one.
fn length(v: &serde_json::Value) -> Result<u64, PostError> {
    v.as_u64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        .ok_or(PostError::InvalidPolicy(
            "content-length-range takes two non-negative integers.",
        ))
}

/// Why `field` takes no `starts-with`: S3 matches these exactly only.
/// Reference: sigv4-HTTPPOSTConstructPolicy, "Conditions" (`bucket`, `x-amz-algorithm`,
/// `x-amz-credential`, `x-amz-date`: "Exact Matches").
fn exact_only(field: &str) -> Option<&'static str> {
    match field {
        "bucket" => Some("bucket supports exact matching only."),
        "x-amz-algorithm" => Some("x-amz-algorithm supports exact matching only."),
        "x-amz-credential" => Some("x-amz-credential supports exact matching only."),
        "x-amz-date" => Some("x-amz-date supports exact matching only."),
        _ => None,
    }
}

/// A JSON document read only to find an object that repeats a key, at any depth: that is a
/// data error, anything malformed a syntax error.
struct UniqueKeys;

impl<'de> serde::Deserialize<'de> for UniqueKeys {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(UniqueKeys)
    }
}

impl<'de> serde::de::Visitor<'de> for UniqueKeys {
    type Value = UniqueKeys;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("JSON")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self, E> {
        Ok(UniqueKeys)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Self, E> {
        Ok(UniqueKeys)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Self, E> {
        Ok(UniqueKeys)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Self, E> {
        Ok(UniqueKeys)
    }

    fn visit_str<E>(self, _: &str) -> Result<Self, E> {
        Ok(UniqueKeys)
    }

    fn visit_unit<E>(self) -> Result<Self, E> {
        Ok(UniqueKeys)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self, A::Error> {
        while seq.next_element::<UniqueKeys>()?.is_some() {}
        Ok(UniqueKeys)
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self, A::Error> {
        let mut seen = std::collections::HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(key) {
                return Err(serde::de::Error::custom("repeated key"));
            }
            map.next_value::<UniqueKeys>()?;
        }
        Ok(UniqueKeys)
    }
}

fn parse_condition(c: &serde_json::Value, out: &mut Vec<Condition>) -> Result<(), PostError> {
    match c {
        serde_json::Value::Object(map) if !map.is_empty() => {
            for (field, value) in map {
                out.push(Condition::Eq {
                    field: field.to_ascii_lowercase(),
                    value: string(value)?,
                });
            }
        }
        serde_json::Value::Array(items) => {
            let op = items.first().and_then(serde_json::Value::as_str);
            match (op.map(str::to_ascii_lowercase).as_deref(), items.len()) {
                (Some("eq"), 3) => out.push(Condition::Eq {
                    field: field_name(&items[1])?,
                    value: string(&items[2])?,
                }),
                (Some("starts-with"), 3) => {
                    let field = field_name(&items[1])?;
                    if let Some(why) = exact_only(&field) {
                        return Err(PostError::InvalidPolicy(why));
                    }
                    out.push(Condition::StartsWith {
                        field,
                        prefix: string(&items[2])?,
                    });
                }
                (Some("content-length-range"), 3) => {
                    let (min, max) = (length(&items[1])?, length(&items[2])?);
                    if min > max {
                        return Err(PostError::InvalidPolicy(
                            "content-length-range minimum exceeds its maximum.",
                        ));
                    }
                    out.push(Condition::LengthRange { min, max });
                }
                _ => return Err(PostError::InvalidPolicy("Invalid condition.")),
            }
        }
        _ => return Err(PostError::InvalidPolicy("Invalid condition.")),
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests;
