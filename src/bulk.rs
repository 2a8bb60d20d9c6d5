//! What the bulk commands (`rewrap`, `reencrypt`, `encrypt`) share: walking a bucket's objects page by
//! page (ListObjectsV2, optionally from `--start-after`), a bounded number of objects in
//! flight at once, a progress line on stderr and a summary.
//!
//! Pages are done one after the other and every object of a page is finished before the
//! next page is listed, so when a run stops, every key up to the last page's last key is done:
//! the progress line names it, and `--start-after` resumes from there.

use std::future::Future;
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use futures_util::stream::{self, StreamExt as _};
use http::{HeaderMap, Method, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use crate::body;
use crate::s3::route::Target;
use crate::upstream::{Outgoing, Payload, Sender};

/// Objects listed per ListObjectsV2 page.
const PAGE_KEYS: &str = "1000";

/// The largest listing page read into memory (1000 keys of 1024 bytes, with XML around them).
const MAX_LISTING_BYTES: usize = 8 * 1024 * 1024;

/// How often the progress line is written at most.
const PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Which objects a bulk command visits, and how.
#[derive(Debug, Clone)]
pub struct Options {
    /// Only keys that start with this.
    pub prefix: String,
    /// Only keys after this one (resuming a run that stopped).
    pub start_after: Option<String>,
    /// Objects in flight at once (at least 1).
    pub concurrency: usize,
    /// Decide, but write nothing.
    pub dry_run: bool,
    /// Write a progress line on stderr.
    pub progress: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            prefix: String::new(),
            start_after: None,
            concurrency: 8,
            dry_run: false,
            progress: false,
        }
    }
}

/// Runs `each` on every object of `bucket` that `opts` selects and `visit` accepts, at most
/// `opts.concurrency` at once; returns each key with its outcome, in no particular order
/// within a page. `name` labels the progress line.
pub(crate) async fn for_each<T, F, Fut>(
    client: &Sender<'_>,
    bucket: &str,
    opts: &Options,
    name: &str,
    visit: impl Fn(&str) -> bool,
    each: F,
) -> Result<Vec<(String, Result<T, String>)>, String>
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let started = Instant::now();
    let mut last_line = started;
    let mut out = Vec::new();
    let mut failed = 0usize;
    let mut token = None;
    loop {
        let (keys, next) = list_page(client, bucket, opts, token.as_deref()).await?;
        let last_key = keys.last().cloned();
        let done: Vec<(String, Result<T, String>)> =
            stream::iter(keys.into_iter().filter(|k| visit(k)))
                .map(|key| {
                    let work = each(key.clone());
                    async move { (key, work.await) }
                })
                .buffer_unordered(opts.concurrency.max(1))
                .collect()
                .await;
        failed += done.iter().filter(|(_, r)| r.is_err()).count();
        out.extend(done);
        if opts.progress && (next.is_none() || last_line.elapsed() >= PROGRESS_EVERY) {
            last_line = Instant::now();
            let secs = started.elapsed().as_secs_f64().max(0.001);
            let resume = last_key.map_or_else(String::new, |k| {
                format!("; done up to {k:?} (--start-after to resume)")
            });
            #[allow(clippy::cast_precision_loss)]
            let rate = out.len() as f64 / secs;
            eprintln!(
                "{name}: {} objects, {failed} failed, {rate:.0}/s, {:.0}s{resume}",
                out.len(),
                secs
            );
        }
        match next {
            Some(t) => token = Some(t),
            None => return Ok(out),
        }
    }
}

/// The object's headers, from a HEAD that must answer 200.
pub(crate) async fn head(client: &Sender<'_>, target: &Target) -> Result<HeaderMap, String> {
    let out = Outgoing {
        method: Method::HEAD,
        target,
        query: Vec::new(),
        headers: HeaderMap::new(),
        content_length: None,
    };
    let signed = client
        .sign(out, &Payload::Known(b""), body::empty(), SystemTime::now())
        .map_err(|e| e.to_string())?;
    let resp = client.send(signed).await.map_err(|e| e.to_string())?;
    if resp.status() != StatusCode::OK {
        return Err(format!("HEAD answered {}", resp.status()));
    }
    Ok(resp.into_parts().0.headers)
}

/// One ListObjectsV2 page: its keys and the continuation token, if there is more.
async fn list_page(
    client: &Sender<'_>,
    bucket: &str,
    opts: &Options,
    token: Option<&str>,
) -> Result<(Vec<String>, Option<String>), String> {
    let target = Target::Bucket(bucket.to_owned());
    let mut query = vec![
        ("list-type".to_owned(), "2".to_owned()),
        ("max-keys".to_owned(), PAGE_KEYS.to_owned()),
        ("prefix".to_owned(), opts.prefix.clone()),
    ];
    if let Some(t) = token {
        query.push(("continuation-token".to_owned(), t.to_owned()));
    }
    if let Some(after) = &opts.start_after {
        // ListObjectsV2 ignores it once a continuation token is given.
        query.push(("start-after".to_owned(), after.clone()));
    }
    let out = Outgoing {
        method: Method::GET,
        target: &target,
        query,
        headers: HeaderMap::new(),
        content_length: None,
    };
    let signed = client
        .sign(out, &Payload::Known(b""), body::empty(), SystemTime::now())
        .map_err(|e| e.to_string())?;
    let resp = client.send(signed).await.map_err(|e| e.to_string())?;
    let status = resp.status();
    let doc = read_limited(resp.into_body()).await?;
    if !status.is_success() {
        return Err(format!("{status}: {}", String::from_utf8_lossy(&doc)));
    }
    parse_listing(&doc)
}

async fn read_limited(mut body: Incoming) -> Result<Bytes, String> {
    let mut doc = Vec::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.map_err(|e| e.to_string())?.into_data() {
            if doc.len() + data.len() > MAX_LISTING_BYTES {
                return Err(format!(
                    "a listing page is larger than {MAX_LISTING_BYTES} bytes"
                ));
            }
            doc.extend_from_slice(&data);
        }
    }
    Ok(Bytes::from(doc))
}

/// The `Contents/Key` values and the `NextContinuationToken` (when `IsTruncated`).
fn parse_listing(doc: &[u8]) -> Result<(Vec<String>, Option<String>), String> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_reader(doc);
    let mut path: Vec<Vec<u8>> = Vec::new();
    let mut text = String::new();
    let (mut keys, mut token, mut truncated) = (Vec::new(), None, false);
    loop {
        match reader.read_event().map_err(|e| e.to_string())? {
            Event::Start(e) => {
                path.push(e.local_name().as_ref().to_vec());
                text.clear();
            }
            Event::Text(t) => text.push_str(&t.decode().map_err(|e| e.to_string())?),
            Event::GeneralRef(r) => text.push(match &*r {
                b"lt" => '<',
                b"gt" => '>',
                b"amp" => '&',
                b"apos" => '\'',
                b"quot" => '"',
                other => return Err(format!("unknown entity {}", String::from_utf8_lossy(other))),
            }),
            Event::End(_) => {
                let inner: Vec<&[u8]> = path.iter().map(Vec::as_slice).collect();
                match inner.as_slice() {
                    [_, b"Contents", b"Key"] => keys.push(std::mem::take(&mut text)),
                    [_, b"NextContinuationToken"] => token = Some(std::mem::take(&mut text)),
                    [_, b"IsTruncated"] => truncated = text == "true",
                    _ => {}
                }
                path.pop();
                text.clear();
            }
            Event::Eof => break,
            _ => {}
        }
    }
    Ok((keys, token.filter(|_| truncated)))
}

#[cfg(test)]
mod tests;
