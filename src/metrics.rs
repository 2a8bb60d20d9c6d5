//! The proxy's metrics: a small registry of atomics, rendered in the Prometheus text
//! exposition format 0.0.4 by [`Metrics::render`].
//!
//! Reference: <https://prometheus.io/docs/instrumenting/exposition_formats/#text-based-format>
//!
//! Recording is lock-free for the plain counters and takes a `DashMap` shard lock only the
//! first time a label combination is seen, so the hot path stays a few atomic adds.

use std::fmt::Write as _;
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use dashmap::DashMap;

/// The `Content-Type` of [`Metrics::render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Upper bounds (seconds) of the request duration histogram. Fixed so that dashboards can
/// compare instances; they span a cached `HeadObject` to a slow multi-gigabyte upload's head.
pub const DURATION_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

/// Every counter and histogram the proxy exports. Shared as `Arc<Metrics>`.
#[derive(Default)]
pub struct Metrics {
    requests: DashMap<(&'static str, &'static str, u16), AtomicU64>,
    /// The part of `requests` sent without authentication (`[[bucket]] anonymous`).
    anonymous_requests: DashMap<(&'static str, u16), AtomicU64>,
    duration: Histogram,
    request_bytes: AtomicU64,
    response_bytes: AtomicU64,
    upstream_errors: AtomicU64,
    tls_handshake_failures: AtomicU64,
    plaintext_rejected: AtomicU64,
    auth_failures: DashMap<&'static str, AtomicU64>,
    reloads_ok: AtomicU64,
    reloads_failed: AtomicU64,
    last_reload_failed: AtomicBool,
    /// Unix seconds; 0 when unknown.
    tls_cert_not_after: AtomicU64,
    open_connections: AtomicU64,
    connections_refused: DashMap<&'static str, AtomicU64>,
    client_timeouts: DashMap<&'static str, AtomicU64>,
    kms_requests: DashMap<&'static str, AtomicU64>,
    kms_cache_hits: DashMap<&'static str, AtomicU64>,
    kms_refusals_remembered: DashMap<&'static str, AtomicU64>,
    crypto_failures: DashMap<&'static str, AtomicU64>,
    /// `(kind, name)` → 1 when the last readiness probe reached it, 0 when not.
    dependency_up: DashMap<(&'static str, String), AtomicU64>,
    /// Each upstream's checksum-trailer handling, read when rendered; replaced on reload.
    checksum_trailers: ArcSwap<Vec<(String, Arc<dyn StateSource>)>>,
}

/// Reads how many log lines the log writer dropped (set once by `logging::init`).
type DroppedLogLines = Box<dyn Fn() -> u64 + Send + Sync>;
static DROPPED_LOG_LINES: std::sync::OnceLock<DroppedLogLines> = std::sync::OnceLock::new();

/// Where `/metrics` reads `s3seal_log_lines_dropped_total` from: the process's log writer,
/// which lives below every `Metrics` registry (one per process, not per configuration).
pub fn count_dropped_log_lines(source: impl Fn() -> u64 + Send + Sync + 'static) {
    let _ = DROPPED_LOG_LINES.set(Box::new(source));
}

/// Something learnt at run time that `/metrics` shows as one of a fixed set of states (a
/// state set: one sample per state, 1 for the current one). Lets a higher layer's state be
/// rendered without this module knowing its type.
pub trait StateSource: Send + Sync {
    fn state(&self) -> &'static str;
    fn states(&self) -> &'static [&'static str];
}

impl Metrics {
    /// One answered request. `rule` names the encryption rules of the addressed bucket
    /// (see `proxy::rule_label`); `request_bytes` are the body bytes received from the client,
    /// `response_bytes` the answer's declared body length, when known.
    pub fn answered(
        &self,
        operation: &'static str,
        rule: &'static str,
        status: u16,
        elapsed: Duration,
        request_bytes: u64,
        response_bytes: Option<u64>,
    ) {
        inc(&self.requests, (operation, rule, status));
        self.duration.observe(elapsed);
        self.request_bytes
            .fetch_add(request_bytes, Ordering::Relaxed);
        if let Some(n) = response_bytes {
            self.response_bytes.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// A request served (or refused) without authentication, also counted by [`Self::answered`].
    pub fn anonymous(&self, operation: &'static str, status: u16) {
        inc(&self.anonymous_requests, (operation, status));
    }

    /// A request refused for its credentials or signature; `reason` is the S3 error code.
    pub fn auth_failure(&self, reason: &'static str) {
        inc(&self.auth_failures, reason);
    }

    /// A request sent to a KMS endpoint; `op` is the KMS operation.
    pub fn kms_request(&self, op: &'static str) {
        inc(&self.kms_requests, op);
    }

    /// A data key served from the KMS cache instead of a KMS request.
    pub fn kms_cache_hit(&self, op: &'static str) {
        inc(&self.kms_cache_hits, op);
    }

    /// A KMS call not made because KMS had refused the same blob moments ago.
    pub fn kms_refusal_remembered(&self, op: &'static str) {
        inc(&self.kms_refusals_remembered, op);
    }

    /// A data key that could not be made or opened (`op` is `encrypt` or `decrypt`).
    pub fn crypto_failure(&self, op: &'static str) {
        inc(&self.crypto_failures, op);
    }

    pub fn upstream_error(&self) {
        self.upstream_errors.fetch_add(1, Ordering::Relaxed);
    }

    pub fn tls_handshake_failure(&self) {
        self.tls_handshake_failures.fetch_add(1, Ordering::Relaxed);
    }

    /// A reload was asked for (SIGHUP): applied, or refused with the old config kept.
    pub fn config_reload(&self, applied: bool) {
        if applied {
            self.reloads_ok.fetch_add(1, Ordering::Relaxed);
        } else {
            self.reloads_failed.fetch_add(1, Ordering::Relaxed);
        }
        self.last_reload_failed.store(!applied, Ordering::Relaxed);
    }

    /// Counts a client connection as open until the guard is dropped.
    pub fn connection_opened(self: &Arc<Self>) -> OpenConnection {
        self.open_connections.fetch_add(1, Ordering::Relaxed);
        OpenConnection(self.clone())
    }

    /// A connection closed at accept because `limit` (the config key) was reached.
    pub fn connection_refused(&self, limit: &'static str) {
        inc(&self.connections_refused, limit);
    }

    /// A client too slow for a deadline: `first_request` (no request head by the handshake
    /// deadline, connection closed) or `body` (`body_timeout_secs` between two reads of a
    /// request body, answered `400 RequestTimeout`).
    pub fn client_timeout(&self, kind: &'static str) {
        inc(&self.client_timeouts, kind);
    }

    /// The serving certificate's expiry (at start and after each reload).
    pub fn set_tls_cert_not_after(&self, at: Option<SystemTime>) {
        let secs = at
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs());
        self.tls_cert_not_after.store(secs, Ordering::Relaxed);
    }

    pub fn tls_cert_not_after(&self) -> Option<SystemTime> {
        match self.tls_cert_not_after.load(Ordering::Relaxed) {
            0 => None,
            secs => Some(UNIX_EPOCH + Duration::from_secs(secs)),
        }
    }

    /// The outcome of the last readiness probe of an upstream or KMS endpoint.
    pub fn set_dependency_up(&self, kind: &'static str, name: &str, up: bool) {
        let key = (kind, name.to_owned());
        let value = u64::from(up);
        match self.dependency_up.get(&key) {
            Some(v) => v.store(value, Ordering::Relaxed),
            None => {
                self.dependency_up.insert(key, AtomicU64::new(value));
            }
        }
    }

    /// Forgets every probe outcome (a reload changed what is probed).
    pub fn forget_dependencies(&self) {
        self.dependency_up.clear();
    }

    /// From now on, `s3seal_upstream_checksum_trailers` shows these upstreams' states.
    pub fn watch_checksum_trailers(&self, upstreams: Vec<(String, Arc<dyn StateSource>)>) {
        self.checksum_trailers.store(Arc::new(upstreams));
    }

    pub fn plaintext_rejected(&self) {
        self.plaintext_rejected.fetch_add(1, Ordering::Relaxed);
    }

    /// The whole registry in the text exposition format.
    pub fn render(&self) -> String {
        let mut out = Exposition::default();
        out.header(
            "s3seal_build_info",
            "gauge",
            "Always 1; the labels say which s3seal is running.",
        );
        out.sample(
            "s3seal_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))],
            1,
        );
        self.render_requests(&mut out);
        self.render_connections(&mut out);
        self.render_config(&mut out);
        self.render_dependencies(&mut out);
        self.render_checksum_trailers(&mut out);
        self.render_keys(&mut out);
        out.0
    }

    fn render_requests(&self, out: &mut Exposition) {
        out.header(
            "s3seal_requests_total",
            "counter",
            "Requests answered, by S3 operation (\"unknown\" when the request could not be routed), the bucket's encryption rules (\"-\" for none) and HTTP status.",
        );
        for ((operation, rule, status), n) in sorted(&self.requests) {
            out.sample(
                "s3seal_requests_total",
                &[
                    ("operation", operation),
                    ("rule", rule),
                    ("status", &status.to_string()),
                ],
                n,
            );
        }
        out.header(
            "s3seal_anonymous_requests_total",
            "counter",
            "The requests of s3seal_requests_total that carried no authentication at all (anonymous reads), by S3 operation and HTTP status.",
        );
        for ((operation, status), n) in sorted(&self.anonymous_requests) {
            out.sample(
                "s3seal_anonymous_requests_total",
                &[("operation", operation), ("status", &status.to_string())],
                n,
            );
        }
        out.histogram(
            "s3seal_request_duration_seconds",
            "Time from the request head to the response head (body streaming not included).",
            &self.duration,
        );
        out.counter(
            "s3seal_request_bytes_total",
            "Request body bytes, as declared by Content-Length (aws-chunked framing included; bodies of unknown length not counted).",
            &self.request_bytes,
        );
        out.counter(
            "s3seal_response_bytes_total",
            "Response body bytes, as declared by the body's known length (bodies of unknown length not counted).",
            &self.response_bytes,
        );
        out.counter(
            "s3seal_upstream_errors_total",
            "Requests that failed because the upstream could not be reached, signed for or understood (answered 502).",
            &self.upstream_errors,
        );
        out.header(
            "s3seal_auth_failures_total",
            "counter",
            "Requests refused for their credentials, signature or bucket rights, by S3 error code.",
        );
        for (reason, n) in sorted(&self.auth_failures) {
            out.sample("s3seal_auth_failures_total", &[("reason", reason)], n);
        }
    }

    fn render_keys(&self, out: &mut Exposition) {
        let families = [
            (
                "s3seal_kms_requests_total",
                "Requests sent to KMS endpoints, by KMS operation.",
                &self.kms_requests,
                "op",
            ),
            (
                "s3seal_kms_cache_hits_total",
                "Data keys served from the KMS cache instead of a KMS request, by the KMS operation saved.",
                &self.kms_cache_hits,
                "op",
            ),
            (
                "s3seal_kms_refusals_remembered_total",
                "KMS calls not made because KMS had refused the same wrapped key within the last minute, by the KMS operation saved.",
                &self.kms_refusals_remembered,
                "op",
            ),
            (
                "s3seal_crypto_failures_total",
                "Client-side encryption data keys that could not be made (encrypt) or opened (decrypt).",
                &self.crypto_failures,
                "op",
            ),
        ];
        for (name, help, map, label) in families {
            out.header(name, "counter", help);
            for (value, n) in sorted(map) {
                out.sample(name, &[(label, value)], n);
            }
        }
    }

    fn render_connections(&self, out: &mut Exposition) {
        out.header(
            "s3seal_open_connections",
            "gauge",
            "Client connections open on the S3 listener (handshaking, serving or idle).",
        );
        out.sample(
            "s3seal_open_connections",
            &[],
            self.open_connections.load(Ordering::Relaxed),
        );
        out.header(
            "s3seal_connections_refused_total",
            "counter",
            "Connections closed at accept, before a byte was read, by the limit that was reached (max_connections, max_connections_per_peer).",
        );
        for (limit, n) in sorted(&self.connections_refused) {
            out.sample("s3seal_connections_refused_total", &[("limit", limit)], n);
        }
        out.header(
            "s3seal_client_timeouts_total",
            "counter",
            "Clients cut off by a deadline after the handshake: no first request head by the handshake deadline (first_request), or a request body that stalled for body_timeout_secs (body).",
        );
        for (kind, n) in sorted(&self.client_timeouts) {
            out.sample("s3seal_client_timeouts_total", &[("kind", kind)], n);
        }
        if let Some(dropped) = DROPPED_LOG_LINES.get() {
            out.header(
                "s3seal_log_lines_dropped_total",
                "counter",
                "Log lines (access, audit, events) dropped because stderr did not keep up; workers never wait for it.",
            );
            out.sample("s3seal_log_lines_dropped_total", &[], dropped());
        }
        out.counter(
            "s3seal_tls_handshake_failures_total",
            "TLS connections whose handshake failed or timed out.",
            &self.tls_handshake_failures,
        );
        out.counter(
            "s3seal_plaintext_rejected_total",
            "Plain-HTTP connections answered 400 TlsRequired (on the TLS port or the plaintext listener).",
            &self.plaintext_rejected,
        );
        if let Some(at) = self.tls_cert_not_after() {
            out.header(
                "s3seal_tls_certificate_expiry_timestamp_seconds",
                "gauge",
                "When the serving certificate (the first in tls_cert) expires, in Unix seconds.",
            );
            let secs = at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
            out.sample("s3seal_tls_certificate_expiry_timestamp_seconds", &[], secs);
        }
    }

    fn render_dependencies(&self, out: &mut Exposition) {
        if self.dependency_up.is_empty() {
            return;
        }
        out.header(
            "s3seal_dependency_up",
            "gauge",
            "1 when the last /readyz probe connected to the upstream or KMS endpoint, 0 when not (whatever its readiness setting).",
        );
        let mut rows: Vec<_> = self
            .dependency_up
            .iter()
            .map(|e| (e.key().clone(), e.value().load(Ordering::Relaxed)))
            .collect();
        rows.sort();
        for ((kind, name), up) in rows {
            out.sample(
                "s3seal_dependency_up",
                &[("kind", kind), ("name", &name)],
                up,
            );
        }
    }

    fn render_checksum_trailers(&self, out: &mut Exposition) {
        let upstreams = self.checksum_trailers.load();
        if upstreams.is_empty() {
            return;
        }
        out.header(
            "s3seal_upstream_checksum_trailers",
            "gauge",
            "1 for what s3seal does with clients' trailing checksums on this upstream: forward (the upstream verifies them too), strip (it refuses aws-chunked trailers) or unknown (stripped until a small upload shows which); s3seal verifies them either way.",
        );
        let mut rows: Vec<_> = upstreams.iter().collect();
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, source) in rows {
            let current = source.state();
            for mode in source.states() {
                out.sample(
                    "s3seal_upstream_checksum_trailers",
                    &[("upstream", name), ("mode", mode)],
                    u8::from(*mode == current),
                );
            }
        }
    }

    fn render_config(&self, out: &mut Exposition) {
        out.header(
            "s3seal_config_reloads_total",
            "counter",
            "Config reloads asked for (SIGHUP or a watched file change), by result: applied, or refused with the previous config kept.",
        );
        for (result, n) in [
            ("success", &self.reloads_ok),
            ("failure", &self.reloads_failed),
        ] {
            out.sample(
                "s3seal_config_reloads_total",
                &[("result", result)],
                n.load(Ordering::Relaxed),
            );
        }
        out.header(
            "s3seal_config_last_reload_successful",
            "gauge",
            "1 when the last reload was applied (or none was asked for), 0 when it was refused.",
        );
        out.sample(
            "s3seal_config_last_reload_successful",
            &[],
            u8::from(!self.last_reload_failed.load(Ordering::Relaxed)),
        );
    }
}

/// An open connection, counted in `s3seal_open_connections` until dropped.
pub struct OpenConnection(Arc<Metrics>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.open_connections.fetch_sub(1, Ordering::Relaxed);
    }
}

fn inc<K: Eq + Hash>(map: &DashMap<K, AtomicU64>, key: K) {
    // The read lock suffices once the label set exists, which is nearly always.
    if let Some(n) = map.get(&key) {
        n.fetch_add(1, Ordering::Relaxed);
        return;
    }
    map.entry(key).or_default().fetch_add(1, Ordering::Relaxed);
}

/// A snapshot sorted by label values, so that scrapes are stable and diffable.
fn sorted<K: Eq + Hash + Ord + Copy>(map: &DashMap<K, AtomicU64>) -> Vec<(K, u64)> {
    let mut rows: Vec<_> = map
        .iter()
        .map(|e| (*e.key(), e.value().load(Ordering::Relaxed)))
        .collect();
    rows.sort_unstable_by_key(|(k, _)| *k);
    rows
}

// === impl Histogram ===

/// A histogram over [`DURATION_BUCKETS`]. Buckets are stored per interval and summed when
/// rendered, so an observation touches only one bucket.
pub struct Histogram {
    buckets: [AtomicU64; DURATION_BUCKETS.len()],
    /// Observations above the last bound; only in `+Inf`.
    overflow: AtomicU64,
    sum_nanos: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            overflow: AtomicU64::new(0),
            sum_nanos: AtomicU64::new(0),
        }
    }
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        match DURATION_BUCKETS.iter().position(|&le| secs <= le) {
            Some(i) => self.buckets[i].fetch_add(1, Ordering::Relaxed),
            None => self.overflow.fetch_add(1, Ordering::Relaxed),
        };
        // Saturates after 584 years of summed request time.
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }
}

// === impl Exposition ===

#[derive(Default)]
struct Exposition(String);

impl Exposition {
    fn header(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{k}=\"{}\"", escape_label_value(v));
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {value}");
    }

    fn counter(&mut self, name: &str, help: &str, value: &AtomicU64) {
        self.header(name, "counter", help);
        self.sample(name, &[], value.load(Ordering::Relaxed));
    }

    fn histogram(&mut self, name: &str, help: &str, h: &Histogram) {
        self.header(name, "histogram", help);
        let bucket = format!("{name}_bucket");
        let mut cumulative = 0;
        for (le, n) in DURATION_BUCKETS.iter().zip(&h.buckets) {
            cumulative += n.load(Ordering::Relaxed);
            self.sample(&bucket, &[("le", &le.to_string())], cumulative);
        }
        cumulative += h.overflow.load(Ordering::Relaxed);
        self.sample(&bucket, &[("le", "+Inf")], cumulative);
        let sum = Duration::from_nanos(h.sum_nanos.load(Ordering::Relaxed)).as_secs_f64();
        self.sample(&format!("{name}_sum"), &[], sum);
        // No separate count is kept: `_count` must equal the `+Inf` bucket, and deriving it from
        // the same loads keeps the two equal while other threads are observing.
        self.sample(&format!("{name}_count"), &[], cumulative);
    }
}

/// `HELP` text escapes backslash and line feed.
fn escape_help(s: &str) -> String {
    s.replace('\\', r"\\").replace('\n', r"\n")
}

/// Label values escape backslash, double quote and line feed.
fn escape_label_value(s: &str) -> String {
    s.replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', r"\n")
}

#[cfg(test)]
mod tests;
