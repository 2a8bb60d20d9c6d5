//! CORS rules taken from the bucket itself (`cors_from_bucket`, `docs/cors.md`): read from the
//! backend with `GetBucketCors` under the upstream's credentials, kept per bucket for the
//! configured time, and dropped when a `PutBucketCors` or `DeleteBucketCors` passes through
//! the proxy, so the next request reads them again.
//!
//! Preflights are answered from these rules before authentication, so an unauthenticated
//! client decides which buckets are read: each bucket is read at most once per period however
//! many requests arrive (one read at a time; the others wait for it), a failed read is
//! remembered too, for [`FAILURE_TTL`] at most, and at most [`MAX_BUCKETS`] buckets are kept.
//! A failure fails closed: no rules apply (`cors::Applied::Unavailable`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;

use crate::cors::{self, Applied, FromBucket, Rule};
use crate::error::{S3Code, S3Error};
use crate::upstream::UpstreamClient;

/// The most buckets whose rules are kept; beyond it, expired entries are dropped, and if none
/// has expired, all of them (they are read again when needed).
pub const MAX_BUCKETS: usize = 4096;

/// How long a failed read is remembered (or the bucket's period, if shorter): long enough that
/// a flood of preflights does not become a flood of reads of an unreachable backend, short
/// enough that a backend back in service is soon used again.
pub const FAILURE_TTL: Duration = Duration::from_secs(5);

/// Why a bucket's rules could not be read; answers an authenticated `GetBucketCors`.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum FetchError {
    #[error("The CORS configuration of this bucket could not be read from its backend: {0}")]
    Unreachable(String),
    #[error("The backend answered GetBucketCors with HTTP status {0}.")]
    Status(u16),
    #[error("The CORS configuration stored on this bucket cannot be applied by s3seal: {0}")]
    Document(String),
    #[error("The upstream '{0}' named by cors_from_bucket is not configured.")]
    NoUpstream(String),
}

impl S3Error for FetchError {
    fn code(&self) -> S3Code {
        match self {
            FetchError::Unreachable(_) | FetchError::Status(_) | FetchError::Document(_) => {
                S3Code::BadGateway
            }
            FetchError::NoUpstream(_) => S3Code::InternalError,
        }
    }
}

/// The outcome of a read of a bucket's rules.
#[derive(Debug, Clone)]
pub enum Fetched {
    Rules(Arc<Vec<Rule>>),
    /// The bucket has no CORS configuration (or does not exist): CORS is not enabled.
    NoRules,
    Failed(FetchError),
}

impl Fetched {
    /// The rules for `cors::Scope`.
    pub fn applied(&self) -> Applied<'_> {
        match self {
            Fetched::Rules(rules) => Applied::Bucket(Some(rules)),
            Fetched::NoRules => Applied::Bucket(None),
            Fetched::Failed(_) => Applied::Unavailable,
        }
    }
}

#[derive(Debug)]
struct Read {
    until: Instant,
    fetched: Fetched,
}

/// One bucket's last read; the lock makes concurrent misses wait for one read.
#[derive(Debug, Default)]
struct Entry(tokio::sync::Mutex<Option<Read>>);

impl Entry {
    /// Whether it may be dropped: read, and expired. One being read is kept.
    fn expired(&self, now: Instant) -> bool {
        self.0
            .try_lock()
            .is_ok_and(|r| r.as_ref().is_none_or(|r| r.until <= now))
    }
}

/// Per-bucket rules read from the backend, for one configuration generation.
#[derive(Debug, Default)]
pub struct Cache {
    entries: DashMap<String, Arc<Entry>>,
}

impl Cache {
    /// The rules of `bucket`: those read within its period, or read now. `fresh` reads them
    /// now in any case (an authenticated `GetBucketCors` answers what the backend holds).
    pub async fn rules(
        &self,
        bucket: &str,
        source: &FromBucket,
        upstream: Option<&UpstreamClient>,
        fresh: bool,
    ) -> Fetched {
        let entry = self.entry(bucket);
        let mut read = entry.0.lock().await;
        let now = Instant::now();
        if let Some(r) = read.as_ref().filter(|r| !fresh && r.until > now) {
            return r.fetched.clone();
        }
        let fetched = match upstream {
            Some(u) => fetch(u, bucket).await,
            None => Fetched::Failed(FetchError::NoUpstream(source.upstream.clone())),
        };
        let ttl = match &fetched {
            Fetched::Failed(e) => {
                tracing::warn!(bucket, error = %e, "the bucket's CORS rules could not be read; its preflights are refused");
                source.ttl.min(FAILURE_TTL)
            }
            Fetched::Rules(_) | Fetched::NoRules => source.ttl,
        };
        *read = Some(Read {
            until: Instant::now() + ttl,
            fetched: fetched.clone(),
        });
        fetched
    }

    /// Forgets what was read of `bucket` (its rules were just changed through the proxy).
    pub fn invalidate(&self, bucket: &str) {
        self.entries.remove(bucket);
    }

    fn entry(&self, bucket: &str) -> Arc<Entry> {
        if let Some(e) = self.entries.get(bucket) {
            return Arc::clone(&e);
        }
        if self.entries.len() >= MAX_BUCKETS {
            let now = Instant::now();
            self.entries.retain(|_, e| !e.expired(now));
            if self.entries.len() >= MAX_BUCKETS {
                self.entries.clear();
            }
        }
        Arc::clone(&self.entries.entry(bucket.to_owned()).or_default())
    }
}

/// One `GetBucketCors`. A 404 (`NoSuchCORSConfiguration`, or `NoSuchBucket`) means no rules.
async fn fetch(upstream: &UpstreamClient, bucket: &str) -> Fetched {
    match upstream
        .bucket_cors(bucket, cors::MAX_CONFIGURATION_BYTES)
        .await
    {
        Err(e) => Fetched::Failed(FetchError::Unreachable(e.to_string())),
        Ok((status, _)) if status == http::StatusCode::NOT_FOUND => Fetched::NoRules,
        Ok((status, _)) if !status.is_success() => {
            Fetched::Failed(FetchError::Status(status.as_u16()))
        }
        Ok((_, doc)) => match cors::parse_configuration(&doc) {
            Ok(rules) => Fetched::Rules(Arc::new(rules)),
            Err(e) => Fetched::Failed(FetchError::Document(e.to_string())),
        },
    }
}
