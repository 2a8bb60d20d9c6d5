use std::path::Path;

use super::*;

fn server(extra: &str) -> config::Server {
    let text = format!(
        r#"
[server]
listen = "127.0.0.1:8443"
tls_cert = "c.pem"
tls_key = "k.pem"
{extra}

[[upstream]]
name = "u"
endpoint = "https://s3.example.test"
access_key_id = "AK"
secret_access_key = "SK"

[[client]]
access_key_id = "APP"
secret_access_key = "s"
upstream = "u"
"#
    );
    let env = HashMap::<String, String>::new();
    Config::from_toml(&text, Path::new("/etc"), &env)
        .unwrap()
        .server
}

#[test]
fn reload_names_the_settings_that_need_a_restart() {
    let old = server("");
    assert!(restart_only_changes(&old, &server("")).is_empty());
    // Applied by a reload: not reported.
    let applied = server(
        "region = \"eu-west-1\"\ndomain = \"s3.example\"\nidle_timeout_secs = 5\n\
         handshake_timeout_secs = 3\ndrain_timeout_secs = 1\ntrusted_proxies = [\"10.0.0.0/8\"]\n\
         max_connections_per_peer = 7\nmax_connection_buffer_bytes = 40000000",
    );
    assert!(restart_only_changes(&old, &applied).is_empty());
    let fixed = server(
        "admin_listen = \"127.0.0.1:9090\"\nmax_connections = 10\nlog_format = \"json\"\n\
         header_read_timeout_secs = 5\nmax_header_bytes = 10000",
    );
    assert_eq!(
        restart_only_changes(&old, &fixed),
        [
            "admin_listen",
            "max_connections",
            "header_read_timeout_secs",
            "max_header_bytes",
            "log_format"
        ]
    );
}

#[test]
fn trusted_proxies_match_by_address_including_mapped_ipv4() {
    let trusted: Vec<ipnet::IpNet> =
        vec!["10.0.0.0/8".parse().unwrap(), "fd00::/8".parse().unwrap()];
    let yes = ["10.1.2.3:5000", "[::ffff:10.9.9.9]:5000", "[fd00::7]:443"];
    let no = [
        "11.0.0.1:5000",
        "[::ffff:11.0.0.1]:5000",
        "[fe80::1]:443",
        "127.0.0.1:1",
    ];
    for peer in yes {
        assert!(is_trusted(&trusted, peer.parse().unwrap()), "{peer}");
    }
    for peer in no {
        assert!(!is_trusted(&trusted, peer.parse().unwrap()), "{peer}");
    }
    assert!(!is_trusted(&[], "10.1.2.3:1".parse().unwrap()));
}

#[test]
fn a_reload_names_what_changed_by_name_only() {
    let gen = |clients: &[&str], upstreams: &[&str], secs: u64| Generation {
        clients: clients.iter().map(|s| (*s).to_owned()).collect(),
        upstreams: upstreams.iter().map(|s| (*s).to_owned()).collect(),
        cert_not_after: Some(std::time::UNIX_EPOCH + Duration::from_secs(secs)),
    };
    let old = gen(&["APP1", "APP2"], &["aws"], 1_800_000_000);
    assert_eq!(
        old.changes_to(&gen(&["APP1", "APP2"], &["aws"], 1_800_000_000)),
        "no client keys, upstreams or certificate"
    );
    assert_eq!(
        old.changes_to(&gen(&["APP1", "APP3"], &["aws", "minio"], 1_900_000_000)),
        "clients +APP3 -APP2; upstreams +minio; certificate now expires Sun, 17 Mar 2030 17:46:40 GMT"
    );
}
