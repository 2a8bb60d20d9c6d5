use super::*;

#[test]
fn probe_targets() {
    let t = |s: &str| probe_target(&s.parse().unwrap());
    assert_eq!(
        t("https://s3.example.test"),
        ("s3.example.test".into(), 443)
    );
    assert_eq!(t("http://127.0.0.1:9000"), ("127.0.0.1".into(), 9000));
    assert_eq!(t("http://minio"), ("minio".into(), 80));
    assert_eq!(t("https://[::1]:8443"), ("::1".into(), 8443));
}

/// A config with a live upstream and a dead one whose `readiness` is `dead_readiness`.
fn two_upstreams(
    live: std::net::SocketAddr,
    dead: std::net::SocketAddr,
    dead_readiness: &str,
) -> Config {
    let text = format!(
        r#"
[server]
listen = "127.0.0.1:0"
tls_cert = "server.pem"
tls_key = "server-key.pem"

[[upstream]]
name = "live"
endpoint = "http://{live}"
allow_plaintext = true
access_key_id = "a"
secret_access_key = "b"

[[upstream]]
name = "tenant-b"
endpoint = "http://{dead}"
allow_plaintext = true
access_key_id = "a"
secret_access_key = "b"
readiness = "{dead_readiness}"

[[client]]
access_key_id = "APP"
secret_access_key = "s"
upstream = "live"
"#
    );
    Config::from_toml(
        &text,
        std::path::Path::new("."),
        &std::collections::HashMap::new(),
    )
    .unwrap()
}

#[tokio::test]
async fn readiness_can_ignore_an_upstream_and_metrics_show_each_one() {
    let live = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let live_addr = live.local_addr().unwrap();

    // Required (the default): one dead upstream makes the replica unready.
    let admin = Admin::new(
        Arc::new(Metrics::default()),
        &two_upstreams(live_addr, dead, "required"),
    );
    let reasons = admin.readiness().await.unwrap_err();
    assert!(reasons.contains("upstream 'tenant-b'"), "{reasons}");
    assert!(!reasons.contains("upstream 'live'"), "{reasons}");

    // Ignored: ready, the answer names what is down, and /metrics has both either way.
    let admin = Admin::new(
        Arc::new(Metrics::default()),
        &two_upstreams(live_addr, dead, "ignored"),
    );
    let ignored = admin.readiness().await.unwrap();
    assert!(
        ignored.contains("upstream 'tenant-b'") && ignored.contains("ignored"),
        "{ignored}"
    );
    let metrics = admin.metrics.render();
    assert!(
        metrics.contains(r#"s3seal_dependency_up{kind="upstream",name="live"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"s3seal_dependency_up{kind="upstream",name="tenant-b"} 0"#),
        "{metrics}"
    );
    drop(live);
}
