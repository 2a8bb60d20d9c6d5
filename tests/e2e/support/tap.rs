//! A TCP relay between the proxy and its backend that keeps every byte the proxy sent, so that
//! a test can prove a refused request never reached the backend (not one byte of it), whatever
//! the backend would have done with it.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;

/// How long a relayed byte may take from the proxy's socket to the record: the proxy answers
/// its client before the tap's task has necessarily copied what it sent. A grace period, not
/// a poll, because the tests mostly check that nothing arrived.
const SETTLE: Duration = Duration::from_millis(200);

pub struct Tap {
    /// `http://127.0.0.1:PORT`: the upstream endpoint to give the proxy.
    pub endpoint: String,
    sent: Arc<Mutex<Vec<u8>>>,
}

impl Tap {
    /// Relays connections on a fresh loopback port to `backend` (`http://HOST:PORT`).
    pub async fn start(backend: &str) -> Tap {
        let target = backend
            .strip_prefix("http://")
            .expect("the tap relays plain HTTP backends")
            .trim_end_matches('/')
            .to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let sent = Arc::new(Mutex::new(Vec::new()));
        let record = Arc::clone(&sent);
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(&target).await else {
                    continue;
                };
                tokio::spawn(relay(client, server, Arc::clone(&record)));
            }
        });
        Tap { endpoint, sent }
    }

    /// How many bytes the backend has received through the tap so far, once what the proxy
    /// already sent has arrived.
    pub async fn received(&self) -> usize {
        tokio::time::sleep(SETTLE).await;
        self.sent.lock().await.len()
    }

    /// How many requests the backend has received through the tap that carry `header`
    /// (a lower-case name, as the proxy writes them), once what the proxy sent has arrived.
    pub async fn requests_with(&self, header: &str) -> usize {
        tokio::time::sleep(SETTLE).await;
        let sent = self.sent.lock().await;
        let needle = format!("\r\n{header}:");
        String::from_utf8_lossy(&sent).matches(&needle).count()
    }

    /// The request lines (`METHOD target HTTP/1.1`) the backend has received through the tap,
    /// once what the proxy sent has arrived.
    pub async fn request_lines(&self) -> Vec<String> {
        tokio::time::sleep(SETTLE).await;
        let sent = self.sent.lock().await;
        String::from_utf8_lossy(&sent)
            .split("\r\n")
            .filter(|l| l.ends_with(" HTTP/1.1"))
            .map(str::to_owned)
            .collect()
    }
}

async fn relay(client: TcpStream, server: TcpStream, record: Arc<Mutex<Vec<u8>>>) {
    let (mut from_client, mut to_client) = client.into_split();
    let (mut from_server, mut to_server) = server.into_split();
    let upstream = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match from_client.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    record.lock().await.extend_from_slice(&buf[..n]);
                    if to_server.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            }
        }
        let _ = to_server.shutdown().await;
    };
    let downstream = async move {
        let _ = tokio::io::copy(&mut from_server, &mut to_client).await;
        let _ = to_client.shutdown().await;
    };
    tokio::join!(upstream, downstream);
}
