//! Listeners, the accept loop, one task per connection, graceful shutdown.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;

use crate::accept::{self, AcceptError};
use crate::admin::{self, Admin};
use idle::{IdleTimeout, InFlight};

mod idle;
use crate::config::{self, Config};
use crate::metrics::Metrics;
use crate::proxy::{self, State};
use crate::tls;
use crate::upstream::UpstreamClient;

/// How long in-flight requests may take to finish after shutdown is asked for.
pub const DRAIN_DEADLINE: Duration = Duration::from_secs(10);

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

/// A proxy that is serving. Dropping it does not stop it; call [`Running::shutdown`].
pub struct Running {
    pub addr: SocketAddr,
    pub plaintext_addr: Option<SocketAddr>,
    /// The admin listener (`/healthz`, `/readyz`, `/metrics`), when configured.
    pub admin_addr: Option<SocketAddr>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Running {
    /// Stops accepting, lets in-flight requests finish (up to [`DRAIN_DEADLINE`]), returns.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// Binds the listeners and starts serving. The config is already valid; nothing is bound
/// before the TLS material and the upstream clients have been built.
pub async fn start(config: Config) -> Result<Running, StartError> {
    tls::install_crypto_provider();
    let server_tls = tls::server_config(&config.server.tls_cert, &config.server.tls_key)?;
    let metrics = Arc::new(Metrics::default());
    let admin = Arc::new(Admin::new(metrics.clone(), config.upstreams.values()));
    let mut upstreams = HashMap::new();
    for (name, up) in config.upstreams {
        let client_tls = tls::client_config(up.ca_bundle.as_deref())?;
        upstreams.insert(name, UpstreamClient::new(up, client_tls));
    }
    let state = Arc::new(State {
        region: config.server.region.clone(),
        domain: config.server.domain.clone(),
        clients: config.clients,
        upstreams,
        buckets: config.buckets,
        encryption: config.encryption,
        metrics: metrics.clone(),
    });
    let settings = Arc::new(config.server);

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
        tokio_rustls::TlsAcceptor::from(server_tls),
        state,
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
        tasks.push(tokio::spawn(admin::serve(l, admin, stopped)));
    }
    Ok(Running {
        addr,
        plaintext_addr,
        admin_addr,
        stop,
        tasks,
    })
}

/// Runs until `signal` completes, then shuts down gracefully.
pub async fn run_until(config: Config, signal: impl Future<Output = ()>) -> Result<(), StartError> {
    let running = start(config).await?;
    tracing::info!(addr = %running.addr, "s3seal listening (HTTPS)");
    if let Some(p) = running.plaintext_addr {
        tracing::info!(addr = %p, "plain-HTTP listener answers every request with TlsRequired");
    }
    if let Some(a) = running.admin_addr {
        tracing::info!(addr = %a, "admin listener: /healthz /readyz /metrics");
    }
    signal.await;
    tracing::info!("shutting down: draining in-flight requests");
    running.shutdown().await;
    Ok(())
}

async fn serve_tls(
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    state: Arc<State>,
    settings: Arc<config::Server>,
    mut stopped: watch::Receiver<bool>,
) {
    let graceful = GracefulShutdown::new();
    let limit = Arc::new(Semaphore::new(settings.max_connections));
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
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "connection limit reached; closing new connection");
            drop(tcp);
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let state = state.clone();
        let builder = builder.clone();
        let settings = settings.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let _permit = permit;
            let stream = match accept::accept(tcp, &acceptor, settings.handshake_timeout).await {
                Ok(s) => s,
                Err(AcceptError::Plaintext) => {
                    state.metrics.plaintext_rejected();
                    tracing::info!(%peer, "plain HTTP on the TLS port refused");
                    return;
                }
                // A client that connects and leaves without a byte is a TCP health check or a
                // port scan, not a failed handshake.
                Err(AcceptError::Closed) => return,
                Err(e @ (AcceptError::Timeout | AcceptError::Handshake(_))) => {
                    state.metrics.tls_handshake_failure();
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
            };
            let in_flight = InFlight::default();
            let stream = IdleTimeout::new(stream, settings.idle_timeout, in_flight.clone());
            let service = service_fn(move |req| {
                let state = state.clone();
                let busy = in_flight.enter();
                async move {
                    let resp = proxy::handle(state, req).await;
                    drop(busy);
                    Ok::<_, std::convert::Infallible>(resp)
                }
            });
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            if let Err(e) = watcher.watch(conn.into_owned()).await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_DEADLINE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("drain deadline passed; closing remaining connections");
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
        let Ok(permit) = limit.clone().try_acquire_owned() else {
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
