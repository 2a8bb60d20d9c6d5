//! Listeners, the accept loop, one task per connection, graceful shutdown.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::accept::{self, AcceptError, Accepted};
use crate::admin::{self, Admin};
use crate::auth::BufferBudget;
use idle::{Activity, Progress};
use peers::{PeerConnections, PeerSlot};

mod close;
mod file_watch;
mod idle;
mod peers;
use crate::config::{self, Config};
use crate::forwarded::ViaTrustedProxy;
use crate::metrics::{Metrics, StateSource};
use crate::proxy::{self, State};
use crate::tls;
use crate::upstream::UpstreamClient;
pub use file_watch::FileWatch;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Why a reload was refused; the previous config keeps serving.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
}

/// One config generation: what a connection and a request are served with. A reload builds a
/// new one and swaps it in whole; connections and requests hold the one they started with.
struct Live {
    state: Arc<State>,
    cert_not_after: Option<std::time::SystemTime>,
    acceptor: tokio_rustls::TlsAcceptor,
    settings: Arc<config::Server>,
}

/// Builds a generation: reads the TLS material and builds the upstream clients, keeping what
/// the `previous` generation learnt about each upstream. Fails without side effects, so a
/// reload that fails leaves the running generation untouched.
fn build(
    config: Config,
    metrics: &Arc<Metrics>,
    previous: Option<&State>,
) -> Result<Live, tls::TlsError> {
    let server_tls = tls::server_config(&config.server.tls_cert, &config.server.tls_key)?;
    let cert_not_after = tls::leaf_not_after(&config.server.tls_cert);
    config.encryption.observe(metrics);
    let mut upstreams = HashMap::new();
    for (name, up) in config.upstreams {
        let client_tls = tls::client_config(up.ca_bundle.as_deref())?;
        let client = match previous.and_then(|p| p.upstreams.get(&name)) {
            Some(known) => UpstreamClient::carried_over(up, client_tls, known),
            None => UpstreamClient::new(up, client_tls),
        };
        upstreams.insert(name, client);
    }
    let state = Arc::new(State {
        region: config.server.region.clone(),
        domain: config.server.domain.clone(),
        legacy_bucket_names: config.server.legacy_bucket_names,
        sigv2: config.server.sigv2,
        clients: config.clients,
        upstreams,
        buckets: config.buckets,
        bucket_cors: crate::bucket_cors::Cache::default(),
        anonymous: config.anonymous,
        sse: config.sse,
        encryption: config.encryption,
        metrics: metrics.clone(),
        body_timeout: config.server.body_timeout,
    });
    Ok(Live {
        state,
        cert_not_after,
        acceptor: tokio_rustls::TlsAcceptor::from(server_tls),
        settings: Arc::new(config.server),
    })
}

/// `/metrics` shows this generation's upstreams' checksum-trailer handling.
fn watch_upstreams(metrics: &Metrics, state: &State) {
    let sources = state
        .upstreams
        .values()
        .map(|u| {
            let source: Arc<dyn StateSource> = u.trailer_support();
            (u.name().to_owned(), source)
        })
        .collect();
    metrics.watch_checksum_trailers(sources);
}

/// A proxy that is serving. Dropping it does not stop it; call [`Running::shutdown`].
pub struct Running {
    pub addr: SocketAddr,
    pub plaintext_addr: Option<SocketAddr>,
    /// The admin listener (`/healthz`, `/readyz`, `/metrics`), when configured.
    pub admin_addr: Option<SocketAddr>,
    live: Arc<ArcSwap<Live>>,
    admin: Arc<Admin>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Running {
    /// Stops accepting, lets in-flight requests finish (up to the current config's
    /// `drain_timeout`), returns.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }

    /// Reads, validates and applies the config file at `path` (SIGHUP). Logs the outcome and
    /// counts it in `s3seal_config_reloads_total`; on error the running config is untouched.
    pub async fn reload_file(&self, path: &Path, env: &dyn config::Env) -> Result<(), ReloadError> {
        let result = match Config::load(path, env) {
            Ok(config) => self.apply(config).await,
            Err(e) => Err(ReloadError::Config(e)),
        };
        match &result {
            Ok(changed) => {
                tracing::info!(path = %path.display(), changed = %changed, "config reloaded");
            }
            Err(e) => tracing::error!(
                path = %path.display(),
                error = %e,
                "config reload refused; still serving the previous config"
            ),
        }
        self.admin.metrics.config_reload(result.is_ok());
        result.map(drop)
    }

    /// The current generation's `[server]` settings.
    pub fn settings(&self) -> Arc<config::Server> {
        self.live.load().settings.clone()
    }

    /// Applies a validated config without dropping connections: requests already being
    /// served finish with the generation they started with; the next request, and the next
    /// TLS handshake, use the new one. Nothing changes unless every part of the new
    /// generation was built.
    ///
    /// The settings [`restart_only_changes`] lists are fixed at start: a change to them is
    /// logged and takes effect on the next restart.
    /// Returns what changed, for the log line of the reload.
    async fn apply(&self, config: Config) -> Result<String, ReloadError> {
        let probes = crate::admin::probes(&config);
        let next = build(config, &self.admin.metrics, Some(&self.live.load().state))?;
        let changed = Generation::of(&self.live.load()).changes_to(&Generation::of(&next));
        let fixed = restart_only_changes(&self.live.load().settings, &next.settings);
        if !fixed.is_empty() {
            tracing::warn!(
                settings = fixed.join(", "),
                "changed settings take effect only after a restart"
            );
        }
        self.admin
            .metrics
            .set_tls_cert_not_after(next.cert_not_after);
        watch_upstreams(&self.admin.metrics, &next.state);
        self.live.store(Arc::new(next));
        self.admin.set_probes(probes).await;
        Ok(changed)
    }
}

/// What a reload's log line compares between two generations: names, never secrets.
#[derive(Debug, Default, PartialEq, Eq)]
struct Generation {
    clients: Vec<String>,
    upstreams: Vec<String>,
    cert_not_after: Option<std::time::SystemTime>,
}

impl Generation {
    fn of(live: &Live) -> Self {
        let mut upstreams: Vec<String> = live.state.upstreams.keys().cloned().collect();
        upstreams.sort();
        Generation {
            clients: (live.state.clients.iter())
                .map(|c| c.access_key_id.clone())
                .collect(),
            upstreams,
            cert_not_after: live.cert_not_after,
        }
    }

    /// `clients +NEW -OLD; upstreams +b; certificate now expires ...`, or that nothing of
    /// these changed (rules and settings may still have).
    fn changes_to(&self, next: &Generation) -> String {
        fn delta(what: &str, old: &[String], new: &[String]) -> Option<String> {
            let added: Vec<String> = new
                .iter()
                .filter(|n| !old.contains(n))
                .map(|n| format!("+{n}"))
                .collect();
            let removed: Vec<String> = old
                .iter()
                .filter(|o| !new.contains(o))
                .map(|o| format!("-{o}"))
                .collect();
            let all: Vec<String> = added.into_iter().chain(removed).collect();
            (!all.is_empty()).then(|| format!("{what} {}", all.join(" ")))
        }
        let mut out: Vec<String> = [
            delta("clients", &self.clients, &next.clients),
            delta("upstreams", &self.upstreams, &next.upstreams),
        ]
        .into_iter()
        .flatten()
        .collect();
        if self.cert_not_after != next.cert_not_after {
            out.push(match next.cert_not_after {
                Some(at) => format!("certificate now expires {}", httpdate::fmt_http_date(at)),
                None => "certificate replaced".to_owned(),
            });
        }
        if out.is_empty() {
            "no client keys, upstreams or certificate".to_owned()
        } else {
            out.join("; ")
        }
    }
}

/// The `[server]` settings a running process cannot change: bound sockets, the connection
/// limit's semaphore, hyper's connection builder, the log subscriber.
fn restart_only_changes(old: &config::Server, new: &config::Server) -> Vec<&'static str> {
    let mut changed = Vec::new();
    let mut check = |name, differs: bool| {
        if differs {
            changed.push(name);
        }
    };
    check("listen", old.listen != new.listen);
    check(
        "plaintext_listen",
        old.plaintext_listen != new.plaintext_listen,
    );
    check("admin_listen", old.admin_listen != new.admin_listen);
    check(
        "max_connections",
        old.max_connections != new.max_connections,
    );
    check(
        "header_read_timeout_secs",
        old.header_read_timeout != new.header_read_timeout,
    );
    check(
        "max_header_bytes",
        old.max_header_bytes != new.max_header_bytes,
    );
    check("log_format", old.log_format != new.log_format);
    check(
        "watch_interval_secs",
        old.watch_interval != new.watch_interval,
    );
    changed
}

/// What `serve` would refuse before binding anything, checked without binding: the TLS files
/// read and parsed, the key matching its certificate, the upstreams' CA bundles. `s3seal
/// check` runs this after loading the config, so that "valid" means `serve` starts.
pub fn check(config: Config) -> Result<(), StartError> {
    tls::install_crypto_provider();
    build(config, &Arc::new(Metrics::default()), None)?;
    Ok(())
}

/// Binds the listeners and starts serving. The config is already valid; nothing is bound
/// before the TLS material and the upstream clients have been built.
pub async fn start(config: Config) -> Result<Running, StartError> {
    tls::install_crypto_provider();
    let metrics = Arc::new(Metrics::default());
    let admin = Arc::new(Admin::new(metrics.clone(), &config));
    let live = build(config, &metrics, None)?;
    metrics.set_tls_cert_not_after(live.cert_not_after);
    watch_upstreams(&metrics, &live.state);
    let settings = live.settings.clone();
    let live = Arc::new(ArcSwap::from_pointee(live));

    let bind = |addr: SocketAddr| async move {
        TcpListener::bind(addr)
            .await
            .map_err(|source| StartError::Bind { addr, source })
    };
    let listener = bind(settings.listen).await?;
    let plaintext = match settings.plaintext_listen {
        Some(addr) => Some(bind(addr).await?),
        None => None,
    };
    let addr = listener.local_addr().map_err(|source| StartError::Bind {
        addr: settings.listen,
        source,
    })?;
    let plaintext_addr = plaintext.as_ref().and_then(|l| l.local_addr().ok());
    let admin_listener = match settings.admin_listen {
        Some(addr) => Some(bind(addr).await?),
        None => None,
    };
    let admin_addr = admin_listener.as_ref().and_then(|l| l.local_addr().ok());

    let (stop, stopped) = watch::channel(false);
    let mut tasks = vec![tokio::spawn(serve_tls(
        listener,
        live.clone(),
        settings.clone(),
        stopped.clone(),
    ))];
    if let Some(l) = plaintext {
        tasks.push(tokio::spawn(serve_plaintext(
            l,
            addr.port(),
            settings,
            metrics,
            stopped.clone(),
        )));
    }
    if let Some(l) = admin_listener {
        tasks.push(tokio::spawn(admin::serve(l, admin.clone(), stopped)));
    }
    // Logged once each listener is bound and its task spawned, with the address the OS gave
    // (the port it chose for `:0`): operators and the end-to-end tests read the ports from
    // these lines, keyed by `listener` (docs/operations.md, "Logs").
    tracing::info!(listener = "https", %addr, "s3seal listening (HTTPS)");
    if let Some(p) = plaintext_addr {
        tracing::info!(
            listener = "plaintext",
            addr = %p,
            "plain-HTTP listener answers every request with TlsRequired"
        );
    }
    if let Some(a) = admin_addr {
        tracing::info!(
            listener = "admin",
            addr = %a,
            "admin listener: /healthz /readyz /metrics"
        );
    }
    Ok(Running {
        addr,
        plaintext_addr,
        admin_addr,
        live,
        admin,
        stop,
        tasks,
    })
}

/// `settings` are the start-time settings, for what cannot change without a restart; the rest
/// is read from the current generation per connection (TLS, timeouts) and per request (state).
async fn serve_tls(
    listener: TcpListener,
    live: Arc<ArcSwap<Live>>,
    settings: Arc<config::Server>,
    mut stopped: watch::Receiver<bool>,
) {
    let graceful = GracefulShutdown::new();
    // Every connection task holds a clone; the drain waits until all are gone, so that a
    // connection's closing (see `close`) is part of it, not cut by the process exit.
    let (connections, all_closed) = tokio::sync::mpsc::channel::<()>(1);
    let limits = Limits {
        total: Arc::new(Semaphore::new(settings.max_connections)),
        per_peer: PeerConnections::default(),
    };
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(settings.header_read_timeout)
        .max_buf_size(settings.max_header_bytes);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(settings.max_header_bytes).unwrap_or(u32::MAX));
    let builder = Arc::new(builder);

    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stopped.changed() => break,
        };
        let generation = live.load_full();
        let settings = &generation.settings;
        let metrics = &generation.state.metrics;
        let trusted = is_trusted(&settings.trusted_proxies, peer);
        let admission = match limits.admit(peer, trusted, settings) {
            Ok(admission) => admission,
            Err(limit) => {
                // Counted, and logged at debug only: a flood would write a line per attempt.
                tracing::debug!(%peer, limit, "connection limit reached; closing new connection");
                metrics.connection_refused(limit);
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let live = live.clone();
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let open = metrics.connection_opened();
        let connection = connections.clone();
        tokio::spawn(async move {
            let _connection = connection;
            let _open = open;
            let settings = &generation.settings;
            let metrics = &generation.state.metrics;
            // One deadline for the handshake and the first request's head: a client that
            // completes the handshake and then sends nothing holds no slot for longer.
            let deadline = Instant::now() + settings.handshake_timeout;
            let accepted = if trusted {
                accept::accept_trusted(tcp, &generation.acceptor, deadline).await
            } else {
                accept::accept(tcp, &generation.acceptor, deadline)
                    .await
                    .map(|tls| Accepted::Tls(Box::new(tls)))
            };
            let conn = Conn {
                admission,
                peer,
                live,
                builder,
                first_request_by: deadline,
                idle_timeout: settings.idle_timeout,
                buffer_budget: BufferBudget::new(settings.max_connection_buffer_bytes),
            };
            match accepted {
                Ok(Accepted::Tls(stream)) => {
                    let via = trusted.then_some(ViaTrustedProxy { plaintext: false });
                    conn.serve(stream, via, watcher).await;
                }
                Ok(Accepted::Forwarded(stream)) => {
                    let via = Some(ViaTrustedProxy { plaintext: true });
                    conn.serve(stream, via, watcher).await;
                }
                Err(AcceptError::Plaintext) => {
                    metrics.plaintext_rejected();
                    tracing::info!(%peer, "plain HTTP on the TLS port refused");
                }
                // A client that connects and leaves without a byte is a TCP health check or
                // a port scan, not a failed handshake.
                Err(AcceptError::Closed) => {}
                Err(e @ (AcceptError::Timeout | AcceptError::Handshake(_))) => {
                    metrics.tls_handshake_failure();
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                }
            }
        });
    }
    drop(listener);
    drop(connections);
    drain(graceful, all_closed, live.load().settings.drain_timeout).await;
}

/// Waits until every connection has finished its requests and closed (each connection task
/// holds a sender of `all_closed`), for at most `deadline`.
async fn drain(
    graceful: GracefulShutdown,
    mut all_closed: tokio::sync::mpsc::Receiver<()>,
    deadline: Duration,
) {
    let drained = async {
        graceful.shutdown().await;
        // `None` once every connection task has ended.
        let _ = all_closed.recv().await;
    };
    if tokio::time::timeout(deadline, drained).await.is_err() {
        tracing::warn!(
            deadline_secs = deadline.as_secs(),
            "drain deadline passed; closing remaining connections"
        );
    }
}

/// The connection limits of the S3 listener.
struct Limits {
    /// `max_connections`, fixed at start.
    total: Arc<Semaphore>,
    /// `max_connections_per_peer`, read from the current settings at each accept.
    per_peer: PeerConnections,
}

/// What an admitted connection holds until it closes.
struct Admission {
    _total: OwnedSemaphorePermit,
    _peer: Option<PeerSlot>,
}

impl Limits {
    /// Admits a connection from `peer`, or names the limit (its config key) it is over.
    fn admit(
        &self,
        peer: SocketAddr,
        trusted: bool,
        settings: &config::Server,
    ) -> Result<Admission, &'static str> {
        // A trusted TLS terminator carries many clients' connections from one address: the
        // per-peer limit would cap all of them together, so only `max_connections` applies.
        let slot = if trusted {
            None
        } else {
            let limit = settings.max_connections_per_peer;
            let slot = self.per_peer.try_open(peer.ip(), limit);
            Some(slot.ok_or("max_connections_per_peer")?)
        };
        let permit = (self.total.clone().try_acquire_owned()).map_err(|_| "max_connections")?;
        Ok(Admission {
            _total: permit,
            _peer: slot,
        })
    }
}

/// Whether `peer` is one of the configured TLS terminators. An IPv4 peer seen on a dual-stack
/// socket (`::ffff:10.0.0.1`) matches IPv4 ranges.
fn is_trusted(trusted: &[ipnet::IpNet], peer: SocketAddr) -> bool {
    let ip = peer.ip().to_canonical();
    trusted.iter().any(|net| net.contains(&ip))
}

/// What serving one accepted connection needs.
struct Conn {
    /// Its place under the connection limits, given up once it is closing.
    admission: Admission,
    peer: SocketAddr,
    live: Arc<ArcSwap<Live>>,
    builder: Arc<auto::Builder<TokioExecutor>>,
    /// The handshake deadline, which the first request's head must also meet.
    first_request_by: Instant,
    idle_timeout: Duration,
    /// Shared by the connection's requests: HTTP/2 multiplexes many on one connection.
    buffer_budget: BufferBudget,
}

impl Conn {
    /// Serves HTTP/1 or HTTP/2 on `stream` until the client closes or shutdown drains it.
    /// `via` marks every request of a connection from a trusted proxy.
    async fn serve<S>(
        self,
        stream: S,
        via: Option<ViaTrustedProxy>,
        watcher: hyper_util::server::graceful::Watcher,
    ) where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let Conn {
            admission,
            peer,
            live,
            builder,
            first_request_by,
            idle_timeout,
            buffer_budget,
        } = self;
        let metrics = live.load().state.metrics.clone();
        let activity = Activity::new();
        let progress = activity.clone();
        let service = service_fn(move |mut req: hyper::Request<_>| {
            req.extensions_mut().insert(proxy::Peer(peer));
            req.extensions_mut().insert(buffer_budget.clone());
            if let Some(v) = via {
                req.extensions_mut().insert(v);
            }
            // Each request takes the generation current when it starts and keeps it to the
            // end, so a reload never changes the rules under a request.
            let state = live.load().state.clone();
            let busy = progress.enter();
            let progress = progress.clone();
            async move {
                let resp = proxy::handle(state, req).await;
                drop(busy);
                Ok::<_, std::convert::Infallible>(resp.map(|body| Progress::new(body, progress)))
            }
        });
        let (stream, returned) = close::hand_back(stream);
        let conn = builder.serve_connection(TokioIo::new(stream), service);
        // Dropping the connection closes it, as a client that vanished would: nothing is in
        // flight, and an HTTP/2 client waiting on a stalled response sees its streams reset.
        tokio::select! {
            served = watcher.watch(conn.into_owned()) => {
                if let Err(e) = served {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
            }
            () = activity.idle(idle_timeout) => {
                tracing::debug!(%peer, "closing idle connection");
            }
            // hyper's own header timeout cannot cover this: the HTTP/1-or-2 detection of
            // `auto` waits for the first bytes without one, and HTTP/2 has none at all.
            () = activity.no_request_by(first_request_by) => {
                tracing::debug!(%peer, "no request before the handshake deadline; closing");
                metrics.client_timeout("first_request");
            }
        }
        // hyper has dropped the stream: close it so the client gets its last bytes. A
        // closing connection serves nothing more, so it no longer counts under the limits.
        drop(admission);
        if let Ok(stream) = returned.await {
            close::linger(stream).await;
        }
    }
}

async fn serve_plaintext(
    listener: TcpListener,
    https_port: u16,
    settings: Arc<config::Server>,
    metrics: Arc<Metrics>,
    mut stopped: watch::Receiver<bool>,
) {
    let limit = Arc::new(Semaphore::new(settings.max_connections));
    loop {
        let tcp: TcpStream = tokio::select! {
            accepted = listener.accept() => if let Ok((s, _)) = accepted { s } else {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            },
            _ = stopped.changed() => break,
        };
        // No per-peer limit here: each connection lives at most `handshake_timeout` plus the
        // answer's linger, and this listener's slots are its own.
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            metrics.connection_refused("max_connections");
            continue;
        };
        let timeout = settings.handshake_timeout;
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let _permit = permit;
            accept::reject_plaintext(tcp, https_port, timeout).await;
            metrics.plaintext_rejected();
        });
    }
}

#[cfg(test)]
mod tests;
