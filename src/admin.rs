//! The admin listener: plain HTTP, unauthenticated, meant for loopback or a private
//! interface. `GET /healthz` (the process serves), `GET /readyz` (every upstream accepts a TCP
//! connection and the serving certificate has not expired), `GET /metrics` (Prometheus text
//! format). Anything else is 404.

use std::sync::Arc;

use arc_swap::ArcSwap;
use std::time::{Duration, Instant, SystemTime};

use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Mutex, Semaphore};
use tokio::task::JoinSet;

use crate::body::{self, Body};
use crate::config::Config;
use crate::metrics::{self, Metrics};

/// How long an upstream may take to accept a TCP connection before it counts as down.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a readiness answer is reused, so that frequent probes (several orchestrators,
/// a load balancer) do not turn into a connection storm against the upstreams.
pub const READY_CACHE: Duration = Duration::from_secs(5);
/// The admin listener serves a few scrapers and probes; more connections than this are
/// closed at once rather than competing with the proxy for file descriptors.
const MAX_CONNECTIONS: usize = 64;
/// Admin requests are bodiless GETs; a slow head is a stuck or hostile client.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// `/readyz` answers within one probe timeout, so shutdown need not wait longer than that.
const DRAIN_DEADLINE: Duration = Duration::from_secs(3);

/// What the admin endpoints read.
pub struct Admin {
    pub metrics: Arc<Metrics>,
    /// Replaced when a reload changes the upstreams.
    probes: ArcSwap<Vec<Probe>>,
    /// The last readiness answer and when it was computed. A tokio mutex, held across the
    /// probes, so that concurrent `/readyz` calls share one round of connections.
    ready: Mutex<Option<(Instant, Readiness)>>,
}

/// A readiness answer: `Ok` with the unreachable services readiness ignores (one line each,
/// possibly none), or `Err` with every unreachable service, one line each.
pub type Readiness = Result<String, String>;

/// One service to connect to for readiness.
pub struct Probe {
    /// What it is, for `/metrics`: `upstream` or `kms`.
    kind: &'static str,
    /// Its name, for `/metrics`: the upstream's name, or the KMS endpoint.
    name: String,
    /// How `/readyz` names it: `upstream 'name'` or `KMS`.
    label: String,
    host: String,
    port: u16,
    /// Whether `/readyz` fails while it is unreachable (`readiness = "required"`).
    required: bool,
}

impl Admin {
    pub fn new(metrics: Arc<Metrics>, config: &Config) -> Self {
        Admin {
            metrics,
            probes: ArcSwap::from_pointee(probes(config)),
            ready: Mutex::new(None),
        }
    }

    /// Probes these from now on (after a reload); the cached answer is dropped.
    pub async fn set_probes(&self, probes: Vec<Probe>) {
        let mut cached = self.ready.lock().await;
        self.probes.store(Arc::new(probes));
        self.metrics.forget_dependencies();
        *cached = None;
    }

    /// `Ok` when every required upstream and KMS endpoint accepted a connection within
    /// [`PROBE_TIMEOUT`], else the reasons, one line per service that did not. Cached for
    /// [`READY_CACHE`]. Every probe's outcome is also set in `s3seal_dependency_up`.
    pub async fn readiness(&self) -> Readiness {
        let mut cached = self.ready.lock().await;
        if let Some((at, answer)) = cached.as_ref() {
            if at.elapsed() < READY_CACHE {
                return answer.clone();
            }
        }
        let answer = self.probe().await;
        *cached = Some((Instant::now(), answer.clone()));
        answer
    }

    async fn probe(&self) -> Readiness {
        let mut probes = JoinSet::new();
        for (i, p) in self.probes.load().iter().enumerate() {
            let (label, host, port) = (p.label.clone(), p.host.clone(), p.port);
            probes.spawn(async move {
                let target = format!("{host}:{port}");
                let failure =
                    match tokio::time::timeout(PROBE_TIMEOUT, TcpStream::connect((host, port)))
                        .await
                    {
                        Ok(Ok(_)) => None,
                        Ok(Err(e)) => Some(format!("{label} ({target}) unreachable: {e}")),
                        Err(_) => Some(format!(
                            "{label} ({target}) did not accept a connection within {}s",
                            PROBE_TIMEOUT.as_secs()
                        )),
                    };
                (i, failure)
            });
        }
        let outcomes = probes.join_all().await;
        let probes = self.probes.load();
        let mut failures = Vec::new();
        let mut ignored = Vec::new();
        for (i, failure) in outcomes {
            let Some(p) = probes.get(i) else { continue };
            self.metrics
                .set_dependency_up(p.kind, &p.name, failure.is_none());
            match failure {
                Some(f) if p.required => failures.push(f),
                Some(f) => ignored.push(format!("{f} (readiness = \"ignored\")")),
                None => {}
            }
        }
        if let Some(at) = self.metrics.tls_cert_not_after() {
            if at <= SystemTime::now() {
                failures.push(format!(
                    "the server certificate expired on {}",
                    httpdate::fmt_http_date(at)
                ));
            }
        }
        if failures.is_empty() {
            ignored.sort();
            return Ok(ignored.join("\n"));
        }
        failures.sort();
        Err(failures.join("\n"))
    }
}

/// Every upstream, and every KMS endpoint that client-side encryption wraps keys with: a
/// replica that cannot reach its KMS cannot write to, or read from, those buckets.
pub fn probes(config: &Config) -> Vec<Probe> {
    let upstreams = config.upstreams.values().map(|u| {
        let (host, port) = probe_target(&u.endpoint);
        Probe {
            kind: "upstream",
            name: u.name.clone(),
            label: format!("upstream '{}'", u.name),
            host,
            port,
            required: u.required_for_readiness,
        }
    });
    let kms = config
        .encryption
        .kms_endpoints()
        .into_iter()
        .map(|(endpoint, required)| {
            let (host, port) = probe_target(endpoint);
            Probe {
                kind: "kms",
                name: endpoint.to_string(),
                label: "KMS".to_owned(),
                host,
                port,
                required,
            }
        });
    upstreams.chain(kms).collect()
}

/// The host and port to connect to for an upstream endpoint: the scheme's default port when
/// none is written, and an IPv6 literal without the brackets that URIs need and sockets refuse.
fn probe_target(endpoint: &http::Uri) -> (String, u16) {
    let host = endpoint.host().unwrap_or_default();
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let default_port = if endpoint.scheme_str() == Some("http") {
        80
    } else {
        443
    };
    (host.to_owned(), endpoint.port_u16().unwrap_or(default_port))
}

/// Serves the admin endpoints until `stopped` changes.
pub async fn serve(listener: TcpListener, admin: Arc<Admin>, mut stopped: watch::Receiver<bool>) {
    let graceful = GracefulShutdown::new();
    let limit = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    loop {
        let tcp = tokio::select! {
            accepted = listener.accept() => if let Ok((s, _)) = accepted { s } else {
                // EMFILE and friends: back off instead of spinning.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            },
            _ = stopped.changed() => break,
        };
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            continue;
        };
        let admin = admin.clone();
        let service = service_fn(move |req| {
            let admin = admin.clone();
            async move { Ok::<_, std::convert::Infallible>(handle(&admin, &req).await) }
        });
        let conn = graceful.watch(builder.serve_connection(TokioIo::new(tcp), service));
        tokio::spawn(async move {
            let _permit = permit;
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "admin connection ended with an error");
            }
        });
    }
    drop(listener);
    let _ = tokio::time::timeout(DRAIN_DEADLINE, graceful.shutdown()).await;
}

async fn handle(admin: &Admin, req: &Request<Incoming>) -> Response<Body> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(StatusCode::NOT_FOUND, "not found\n".into());
    }
    match req.uri().path() {
        "/healthz" => text(StatusCode::OK, "ok\n".into()),
        "/readyz" => match admin.readiness().await {
            Ok(ignored) if ignored.is_empty() => text(StatusCode::OK, "ready\n".into()),
            Ok(ignored) => text(StatusCode::OK, format!("ready\n{ignored}\n")),
            Err(reasons) => text(StatusCode::SERVICE_UNAVAILABLE, format!("{reasons}\n")),
        },
        "/metrics" => {
            let mut resp = text(StatusCode::OK, admin.metrics.render());
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(metrics::CONTENT_TYPE),
            );
            resp
        }
        _ => text(StatusCode::NOT_FOUND, "not found\n".into()),
    }
}

fn text(status: StatusCode, body: String) -> Response<Body> {
    let mut resp = Response::new(body::full(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

#[cfg(test)]
mod tests;
