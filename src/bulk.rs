//! What the bulk commands (`rewrap`, `reencrypt`, `encrypt`) share: walking a bucket's objects page by
//! page (ListObjectsV2, optionally from `--start-after`), a bounded number of objects in
//! flight at once, progress on stderr (objects and bytes done, rates, an ETA: [`progress`]) and
//! a summary.
//!
//! Pages are done one after the other and every object of a page is finished before the
//! next page is listed, so when a run stops, every key up to the last page's last key is done:
//! the progress report names it, and `--start-after` resumes from there.

use std::cell::Cell;
use std::future::Future;
use std::pin::pin;
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use futures_util::future::{self, Either};
use futures_util::stream::{self, StreamExt as _};
use http::{HeaderMap, Method, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use crate::body;
use crate::s3::route::Target;
use crate::upstream::{Outgoing, Payload, Sender};

pub use progress::Progress;
use progress::{Reporter, Tally};

mod progress;

/// A listing page: keys with their sizes, and the token of the next page.
type Listing = (Vec<(String, u64)>, Option<String>);

/// Objects listed per ListObjectsV2 page.
const PAGE_KEYS: &str = "1000";

/// The largest listing page read into memory (1000 keys of 1024 bytes, with XML around them).
const MAX_LISTING_BYTES: usize = 8 * 1024 * 1024;

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
    /// How to report progress on stderr.
    pub progress: Progress,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            prefix: String::new(),
            start_after: None,
            concurrency: 8,
            dry_run: false,
            progress: Progress::Off,
        }
    }
}

/// Runs `each` on every object of `bucket` that `opts` selects and `visit` accepts, at most
/// `opts.concurrency` at once; returns each key with its outcome, in no particular order
/// within a page. `name` labels the progress line.
///
/// With progress on, a second listing counts what the run will visit alongside it, so the
/// progress line can give an ETA once the count is in: a listing page is one request for up
/// to 1000 objects that each take several, so counting costs little and delays nothing.
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
    let total = Cell::new(None);
    let count = async {
        if opts.progress != Progress::Off {
            total.set(count_all(client, bucket, opts, &visit).await);
        }
    };
    let walk = walk(client, bucket, opts, name, (&visit, each), &total);
    // Bound, not returned: the pinned futures borrow `total` and must go first.
    let out = match future::select(pin!(walk), pin!(count)).await {
        Either::Left((out, _)) => out,
        Either::Right(((), walk)) => walk.await,
    };
    out
}

/// [`for_each`]'s run; `total` holds the objects and bytes it will visit, once counted.
async fn walk<T, F, Fut>(
    client: &Sender<'_>,
    bucket: &str,
    opts: &Options,
    name: &str,
    (visit, each): (&impl Fn(&str) -> bool, F),
    total: &Cell<Option<(usize, u64)>>,
) -> Result<Vec<(String, Result<T, String>)>, String>
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let mut report = Reporter::new(opts.progress, name, std::io::stderr(), Instant::now());
    let mut tally = Tally::default();
    let mut out = Vec::new();
    let mut token = None;
    let walked = loop {
        let (listed, next) = match list_page(client, bucket, opts, token.as_deref()).await {
            Ok(page) => page,
            Err(e) => break Err(e),
        };
        let last_key = listed.last().map(|(k, _)| k.clone());
        let visited = listed.into_iter().filter(|(k, _)| visit(k));
        let mut done = stream::iter(visited)
            .map(|(key, size)| {
                let work = each(key.clone());
                async move { (key, size, work.await) }
            })
            .buffer_unordered(opts.concurrency.max(1));
        while let Some((key, size, outcome)) = done.next().await {
            tally.done += 1;
            tally.bytes += size;
            tally.total = total.get();
            let failure = outcome.as_ref().err();
            tally.failed += usize::from(failure.is_some());
            let failure = failure.map(|why| (key.as_str(), why.as_str()));
            report.object_done(&tally, failure, Instant::now());
            out.push((key, outcome));
        }
        tally.done_up_to = last_key.or(tally.done_up_to);
        tally.total = total.get();
        report.page_done(&tally, next.is_none(), Instant::now());
        match next {
            Some(t) => token = Some(t),
            None => break Ok(()),
        }
    };
    if walked.is_ok() {
        // Every page was walked: what was visited is the total, counted or not.
        tally.total = Some((tally.done, tally.bytes));
    }
    // Also when a listing failed: the error is printed after the status line, not on it.
    report.finish(&tally, Instant::now());
    walked.map(|()| out)
}

/// The objects and bytes a run will visit, from a listing of its own; `None` if a page fails
/// (the run then goes on without an ETA).
async fn count_all(
    client: &Sender<'_>,
    bucket: &str,
    opts: &Options,
    visit: &impl Fn(&str) -> bool,
) -> Option<(usize, u64)> {
    let (mut objects, mut bytes, mut token) = (0usize, 0u64, None);
    loop {
        let (listed, next) = list_page(client, bucket, opts, token.as_deref())
            .await
            .ok()?;
        for (_, size) in listed.iter().filter(|(k, _)| visit(k)) {
            objects += 1;
            bytes += size;
        }
        match next {
            Some(t) => token = Some(t),
            None => return Some((objects, bytes)),
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

/// One ListObjectsV2 page: its keys with their sizes, and the continuation token, if there is
/// more.
async fn list_page(
    client: &Sender<'_>,
    bucket: &str,
    opts: &Options,
    token: Option<&str>,
) -> Result<(Vec<(String, u64)>, Option<String>), String> {
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

/// The `Contents` (`Key` and `Size`) and the `NextContinuationToken` (when `IsTruncated`).
fn parse_listing(doc: &[u8]) -> Result<Listing, String> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_reader(doc);
    let mut path: Vec<Vec<u8>> = Vec::new();
    let mut text = String::new();
    let (mut keys, mut token, mut truncated) = (Vec::new(), None, false);
    let (mut key, mut size) = (String::new(), 0);
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
                    [_, b"Contents", b"Key"] => key = std::mem::take(&mut text),
                    // Only for the progress line: a size that does not parse counts as 0.
                    [_, b"Contents", b"Size"] => size = text.parse().unwrap_or(0),
                    [_, b"Contents"] => {
                        keys.push((std::mem::take(&mut key), std::mem::take(&mut size)));
                    }
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
