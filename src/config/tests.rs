use super::*;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

const GOOD: &str = r#"
[server]
listen = "127.0.0.1:8443"
tls_cert = "certs/server.pem"
tls_key = "certs/server-key.pem"
domain = "S3.Localhost"

[[upstream]]
name = "main"
endpoint = "https://s3.example.test"
region = "eu-west-1"
access_key_id = { env = "UP_AK" }
secret_access_key = { env = "UP_SK" }
addressing_style = "virtual"

[[client]]
access_key_id = "APPKEY1"
secret_access_key = "app-secret"
upstream = "main"
buckets = ["logs-*"]
"#;

fn env() -> HashMap<String, String> {
    [("UP_AK", "AKUP"), ("UP_SK", "up-secret")]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

#[test]
fn parses_validates_and_resolves_secrets() {
    let c = Config::from_toml(GOOD, Path::new("/etc/s3seal"), &env()).unwrap();
    assert_eq!(c.server.tls_cert, Path::new("/etc/s3seal/certs/server.pem"));
    assert_eq!(c.server.region, "us-east-1");
    assert_eq!(c.server.domain.as_deref(), Some("s3.localhost"));
    let up = &c.upstreams["main"];
    assert_eq!(up.access_key_id, "AKUP");
    assert_eq!(up.secret_access_key.expose(), "up-secret");
    assert_eq!(up.addressing_style, AddressingStyle::Virtual);
    let id = c.clients.get("APPKEY1").unwrap();
    assert_eq!(id.secret.expose(), "app-secret");
    assert!(id.buckets.allows("logs-a"));
    assert!(!id.buckets.allows("other"));
    assert!(c.clients.get("nope").is_none());
}

#[test]
fn checksum_trailers_are_detected_unless_set_and_old_settings_still_parse() {
    let c = Config::from_toml(GOOD, Path::new("/etc/s3seal"), &env()).unwrap();
    assert_eq!(
        c.upstreams["main"].forward_checksum_trailers,
        TrailerMode::Auto
    );
    let with = |value: &str| {
        let text = GOOD.replace(
            "addressing_style = \"virtual\"",
            &format!("addressing_style = \"virtual\"\nforward_checksum_trailers = {value}"),
        );
        Config::from_toml(&text, Path::new("/etc/s3seal"), &env())
            .map(|c| c.upstreams["main"].forward_checksum_trailers)
    };
    assert_eq!(with("true").unwrap(), TrailerMode::Forward);
    assert_eq!(with("false").unwrap(), TrailerMode::Strip);
    assert_eq!(with("\"auto\"").unwrap(), TrailerMode::Auto);
    let err = with("\"sometimes\"").unwrap_err().to_string();
    assert!(err.contains("forward_checksum_trailers"), "{err}");
    assert!(err.contains("line 15"), "{err}");
}

#[test]
fn sigv2_is_on_unless_switched_off() {
    let c = Config::from_toml(GOOD, Path::new("/etc/s3seal"), &env()).unwrap();
    assert!(c.server.sigv2);
    let text = GOOD.replace(
        "domain = \"S3.Localhost\"",
        "domain = \"S3.Localhost\"\nsigv2 = false",
    );
    let c = Config::from_toml(&text, Path::new("/etc/s3seal"), &env()).unwrap();
    assert!(!c.server.sigv2);
}

#[test]
fn admin_listener_is_optional() {
    let c = Config::from_toml(GOOD, Path::new("/etc/s3seal"), &env()).unwrap();
    assert_eq!(c.server.admin_listen, None);
    let text = GOOD.replace(
        "domain = \"S3.Localhost\"",
        "domain = \"S3.Localhost\"\nadmin_listen = \"127.0.0.1:9090\"",
    );
    let c = Config::from_toml(&text, Path::new("/etc/s3seal"), &env()).unwrap();
    assert_eq!(
        c.server.admin_listen,
        Some("127.0.0.1:9090".parse().unwrap())
    );
}

#[test]
fn secrets_from_files() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("sk"), "from-file\n").unwrap();
    let text = GOOD.replace(
        r#"secret_access_key = "app-secret""#,
        r#"secret_access_key = { file = "sk" }"#,
    );
    let c = Config::from_toml(&text, dir.path(), &env()).unwrap();
    assert_eq!(
        c.clients.get("APPKEY1").unwrap().secret.expose(),
        "from-file"
    );
}

#[test]
fn unknown_keys_are_named_with_their_line() {
    let text = GOOD.replace("domain =", "domian =");
    let err = Config::from_toml(&text, Path::new("."), &env())
        .unwrap_err()
        .to_string();
    assert!(err.contains("domian"), "{err}");
    assert!(err.contains("line 6"), "{err}");
}

#[test]
fn bad_values_are_refused_with_the_key() {
    let cases = [
        (
            GOOD.replace("https://s3.example.test", "http://s3.example.test"),
            "allow_plaintext",
        ),
        (
            GOOD.replace("https://s3.example.test", "https://s3.example.test/path"),
            "upstream[0].endpoint",
        ),
        (
            GOOD.replace(r#"upstream = "main""#, r#"upstream = "other""#),
            "client[0].upstream",
        ),
        (
            GOOD.replace(r#"{ env = "UP_SK" }"#, r#"{ env = "MISSING" }"#),
            "MISSING",
        ),
        (
            GOOD.replace(r#"["logs-*"]"#, r#"["[unclosed"]"#),
            "client[0].buckets",
        ),
        (GOOD.replace("127.0.0.1:8443", "not-an-address"), "listen"),
    ];
    for (text, needle) in cases {
        let err = Config::from_toml(&text, Path::new("."), &env())
            .unwrap_err()
            .to_string();
        assert!(err.contains(needle), "expected {needle:?} in {err}");
    }
}

#[test]
fn plaintext_upstream_needs_explicit_consent() {
    let text = GOOD
        .replace("https://s3.example.test", "http://127.0.0.1:9000")
        .replace(
            "addressing_style",
            "allow_plaintext = true\naddressing_style",
        );
    assert!(Config::from_toml(&text, Path::new("."), &env()).is_ok());
}

#[test]
fn secrets_never_appear_in_debug() {
    let c = Config::from_toml(GOOD, Path::new("."), &env()).unwrap();
    let dbg = format!("{c:?}");
    assert!(
        !dbg.contains("app-secret") && !dbg.contains("up-secret"),
        "{dbg}"
    );
}

#[test]
fn bucket_cors_rules_parse_and_errors_name_the_key() {
    let text = format!(
        "{GOOD}{}",
        r#"
[[bucket]]
pattern = "private-*"

[[bucket]]
pattern = "web-*"

[[bucket.cors]]
allowed_origins = ["https://*.example.com"]
allowed_methods = ["GET", "PUT"]
allowed_headers = ["x-amz-*"]
expose_headers = ["ETag"]
max_age_seconds = 600
"#
    );
    let c = Config::from_toml(&text, Path::new("."), &env()).unwrap();
    assert!(c.buckets.for_bucket("private-a").is_none());
    assert_eq!(c.buckets.for_bucket("web-a").map(<[_]>::len), Some(1));
    assert!(c.buckets.for_bucket("other").is_none());

    let cases = [
        (
            "allowed_methods = [\"GET\", \"PUT\"]",
            "allowed_methods = [\"GET\", \"PATCH\"]",
            "bucket[1].cors[0].allowed_methods[1]",
        ),
        (
            "https://*.example.com",
            "https://*.*.com",
            "bucket[1].cors[0].allowed_origins[0]",
        ),
        (
            "[\"x-amz-*\"]",
            "[\"x amz\"]",
            "bucket[1].cors[0].allowed_headers[0]",
        ),
        ("max_age_seconds", "max_age", "unknown field `max_age`"),
        (
            "pattern = \"web-*\"",
            "pattern = \"web-[\"",
            "bucket[1].pattern",
        ),
    ];
    for (from, to, needle) in cases {
        let err = Config::from_toml(&text.replace(from, to), Path::new("."), &env())
            .unwrap_err()
            .to_string();
        assert!(err.contains(needle), "expected {needle:?} in {err}");
    }
    // No [[bucket]] at all: CORS off everywhere.
    let c = Config::from_toml(GOOD, Path::new("."), &env()).unwrap();
    assert!(c.buckets.for_bucket("web-a").is_none());
}

#[test]
fn bucket_encryption_keys() {
    let k1 = STANDARD.encode([1u8; 32]);
    let k2 = STANDARD.encode([2u8; 32]);
    let with =
        |table: &str| format!("{GOOD}\n[[bucket]]\npattern = \"vault-*\"\nencryption = {table}\n");
    let mut env = env();
    env.insert("KEK2".into(), k2.clone());
    let text = with(&format!(
        r#"{{ mode = "client-side", key_id = "2026", key = {{ env = "KEK2" }}, old_keys = [{{ key_id = "2025", key = "{k1}" }}], unencrypted_objects = "refuse" }}"#
    ));
    let c = Config::from_toml(&text, Path::new("/etc/s3seal"), &env).unwrap();
    assert!(c.encryption.for_bucket("vault-a").is_some());
    assert!(c.encryption.for_bucket("logs").is_none());
    assert!(!format!("{c:?}").contains(&k2), "a key in Debug output");

    let refused = |table: String, needle: &str| {
        let err = Config::from_toml(&with(&table), Path::new("/etc/s3seal"), &env)
            .unwrap_err()
            .to_string();
        assert!(err.contains(needle), "{table}: {err}");
    };
    refused(
        r#"{ mode = "client-side", key_id = "a", key = "c2hvcnQ=" }"#.into(),
        "32 bytes",
    );
    refused(
        r#"{ mode = "client-side", key_id = "a", key = "not base64!" }"#.into(),
        "base64",
    );
    refused(
        format!(
            r#"{{ mode = "client-side", key_id = "a", key = "{k1}", old_keys = [{{ key_id = "a", key = "{k2}" }}] }}"#
        ),
        "used twice",
    );
    refused(
        format!(r#"{{ mode = "client-side", key_id = "kms:x", key = "{k1}" }}"#),
        "kms:",
    );
    refused(
        format!(r#"{{ mode = "client-side", key_id = "bad id", key = "{k1}" }}"#),
        "key_id",
    );
    refused(
        format!(r#"{{ mode = "server-side", key_id = "a", key = "{k1}" }}"#),
        "unknown variant",
    );
    refused(
        format!(r#"{{ mode = "client-side", key_id = "a", key = "{k1}", colour = 1 }}"#),
        "unknown field",
    );
    refused(
        r#"{ mode = "client-side", key_id = "a", key = { env = "NOPE" } }"#.into(),
        "NOPE",
    );
}

#[test]
fn bucket_encryption_s3ec() {
    let k1 = STANDARD.encode([1u8; 32]);
    let with =
        |table: &str| format!("{GOOD}\n[[bucket]]\npattern = \"vault-*\"\nencryption = {table}\n");
    let text = with(&format!(
        r#"{{ mode = "client-side", key_id = "a", key = "{k1}", s3ec = {{ max_verified_bytes = 1048576, large_objects = "stream-with-abort", ranged_reads = true }} }}"#
    ));
    let c = Config::from_toml(&text, Path::new("."), &env()).unwrap();
    let rule = format!("{:?}", c.encryption.for_bucket("vault-a").unwrap());
    assert!(
        rule.contains("s3ec: Some(Settings { max_verified_bytes: 1048576, large_objects: StreamWithAbort, ranged_reads: true, write: false })"),
        "{rule}"
    );
    // Defaults: verified reads up to 16 MiB, larger ones refused, no ranges, no writes.
    let text = with(&format!(
        r#"{{ mode = "client-side", key_id = "a", key = "{k1}", s3ec = {{}} }}"#
    ));
    let c = Config::from_toml(&text, Path::new("."), &env()).unwrap();
    let rule = format!("{:?}", c.encryption.for_bucket("vault-a").unwrap());
    assert!(
        rule.contains("s3ec: Some(Settings { max_verified_bytes: 16777216, large_objects: Refuse, ranged_reads: false, write: false })"),
        "{rule}"
    );
    let refused = |table: String, needle: &str| {
        let err = Config::from_toml(&with(&table), Path::new("."), &env())
            .unwrap_err()
            .to_string();
        assert!(err.contains(needle), "{table}: {err}");
    };
    refused(
        format!(
            r#"{{ mode = "client-side", key_id = "a", key = "{k1}", s3ec = {{ max_verified_bytes = 4294967296 }} }}"#
        ),
        "bucket[0].encryption.s3ec.max_verified_bytes",
    );
    refused(
        format!(
            r#"{{ mode = "client-side", key_id = "a", key = "{k1}", s3ec = {{ large_objects = "stream" }} }}"#
        ),
        "unknown variant",
    );
    refused(
        format!(
            r#"{{ mode = "client-side", key_id = "a", key = "{k1}", s3ec = {{ ranges = true }} }}"#
        ),
        "unknown field",
    );
    refused(
        r#"{ mode = "none", s3ec = {} }"#.into(),
        "takes no other keys",
    );
}

#[test]
fn bucket_encryption_with_kms() {
    let k1 = STANDARD.encode([1u8; 32]);
    let with =
        |table: &str| format!("{GOOD}\n[[bucket]]\npattern = \"vault-*\"\nencryption = {table}\n");
    let mut env = env();
    env.insert("KMS_SK".into(), "kms-secret-value".into());
    let kms = r#"endpoint = "https://kms.example", key_id = "alias/s3seal", region = "eu-west-1", access_key_id = "AK", secret_access_key = { env = "KMS_SK" }"#;
    let text = with(&format!(
        r#"{{ mode = "client-side", kms = {{ {kms}, cache_seconds = 60 }}, old_keys = [{{ key_id = "local", key = "{k1}" }}] }}"#
    ));
    let c = Config::from_toml(&text, Path::new("/etc/s3seal"), &env).unwrap();
    assert!(c.encryption.for_bucket("vault-a").is_some());
    assert!(
        !format!("{c:?}").contains("kms-secret-value"),
        "a secret in Debug output"
    );

    let refused = |table: String, needle: &str| {
        let err = Config::from_toml(&with(&table), Path::new("/etc/s3seal"), &env)
            .unwrap_err()
            .to_string();
        assert!(err.contains(needle), "{table}: {err}");
    };
    refused(
        format!(r#"{{ mode = "client-side", key_id = "a", key = "{k1}", kms = {{ {kms} }} }}"#),
        "not both",
    );
    refused(
        r#"{ mode = "client-side" }"#.into(),
        "either key_id and key",
    );
    refused(
        r#"{ mode = "client-side", kms = { endpoint = "http://kms.example", key_id = "k", access_key_id = "a", secret_access_key = "s" } }"#.into(),
        "allow_plaintext",
    );
    refused(
        format!(r#"{{ mode = "client-side", kms = {{ {kms}, cache_max_uses = 0 }} }}"#),
        "cache_max_uses",
    );
    refused(
        r#"{ mode = "client-side", kms = { endpoint = "https://kms.example", key_id = "bad id", access_key_id = "a", secret_access_key = "s" } }"#.into(),
        "key_id",
    );
}

const KEY_A: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
const KEY_B: &str = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";

fn with_buckets(tables: &str) -> String {
    format!("{GOOD}\n{tables}")
}

#[test]
fn bucket_sse_rules_parse_with_keys_from_env_and_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("old.key"), format!("{KEY_B}\n")).unwrap();
    let mut env = env();
    env.insert("VAULT_KEY".into(), KEY_A.into());
    let text = with_buckets(
        r#"
[[bucket]]
pattern = "vault-*"
sse = { rule = "sse-c", key = { id = "2026", env = "VAULT_KEY" }, old_keys = [{ id = "2025", file = "old.key" }], client_headers = "reject" }

[[bucket]]
pattern = "web-*"
[[bucket.cors]]
allowed_origins = ["*"]
allowed_methods = ["GET"]

[[bucket]]
pattern = "*"
[bucket.sse]
rule = "sse-kms"
key_id = "testkey-1"
on_unverified = "warn"
"#,
    );
    let c = Config::from_toml(&text, dir.path(), &env).unwrap();
    let vault = c.sse.for_bucket("vault-a").unwrap();
    assert_eq!(vault.client_headers, crate::policy::ClientHeaders::Reject);
    let crate::policy::Encryption::SseC { key, old_keys } = &vault.kind else {
        panic!("{vault:?}")
    };
    assert_eq!(key.id(), "2026");
    assert_eq!(old_keys[0].id(), "2025");
    // A table without `sse` (CORS only) does not hide the default rule.
    let web = c.sse.for_bucket("web-a").unwrap();
    assert_eq!(web.kind.kind(), crate::policy::RuleKind::SseKms);
    assert_eq!(web.verify, crate::policy::Verify::Warn);
    assert!(c.buckets.for_bucket("web-a").is_some());
    // Key material never reaches debug output.
    let dbg = format!("{c:?}");
    assert!(!dbg.contains(KEY_A) && !dbg.contains(KEY_B), "{dbg}");

    // No rule anywhere: no bucket has one.
    let c = Config::from_toml(GOOD, Path::new("."), &env).unwrap();
    assert!(c.sse.for_bucket("vault-a").is_none());
}

#[test]
fn bucket_sse_errors_name_the_key_and_line() {
    let mut env = env();
    env.insert("SHORT".into(), "AAAA".into());
    env.insert("GOODKEY".into(), KEY_A.into());
    let cases = [
        (
            "sse = { rule = \"sse-c\", key = { id = \"k\", env = \"SHORT\" } }",
            "bucket[0].sse.key (line 24): decodes to 3 bytes",
        ),
        (
            "sse = { rule = \"sse-c\", key = { id = \"k\", env = \"NOPE\" } }",
            "bucket[0].sse.key (line 24): environment variable NOPE is not set",
        ),
        (
            "sse = { rule = \"sse-c\", key = { id = \"k\", file = \"/nonexistent/k\" } }",
            "bucket[0].sse.key (line 24): cannot read /nonexistent/k",
        ),
        ("sse = { rule = \"sse-kms\" }", "bucket[0].sse.key_id (line 24)"),
        (
            "sse = { rule = \"sse-s3\", verify = \"warn\" }",
            "unknown field `verify`",
        ),
        ("sse = { rule = \"sse-x\" }", "line 24"),
        (
            "sse = { rule = \"sse-c\", key = { id = \"k\", env = \"GOODKEY\" }, old_keys = [{ id = \"k\", env = \"GOODKEY\" }] }",
            "bucket[0].sse.old_keys (line 24)",
        ),
    ];
    for (sse, needle) in cases {
        let text = with_buckets(&format!("[[bucket]]\npattern = \"a-*\"\n{sse}\n"));
        let err = Config::from_toml(&text, Path::new("."), &env)
            .unwrap_err()
            .to_string();
        assert!(err.contains(needle), "expected {needle:?} in {err}");
    }
    // The same pattern twice: the second rule could never apply.
    let text = with_buckets(
        "[[bucket]]\npattern = \"a-*\"\nsse = { rule = \"sse-s3\" }\n[[bucket]]\npattern = \"a-*\"\nsse = { rule = \"none\" }\n",
    );
    let err = Config::from_toml(&text, Path::new("."), &env)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("bucket[1].sse (line 27): pattern \"a-*\" already has"),
        "{err}"
    );
}

#[test]
fn the_most_specific_sse_pattern_wins_wherever_it_is_written() {
    let text = with_buckets(
        "[[bucket]]\npattern = \"*\"\nsse = { rule = \"sse-s3\" }\n[[bucket]]\npattern = \"vault-*\"\nsse = { rule = \"sse-kms\", key_id = \"k\" }\n[[bucket]]\npattern = \"vault-public\"\nsse = { rule = \"none\" }\n",
    );
    let c = Config::from_toml(&text, Path::new("."), &env()).unwrap();
    let kind = |b: &str| c.sse.for_bucket(b).unwrap().kind.kind();
    assert_eq!(kind("vault-a"), crate::policy::RuleKind::SseKms);
    assert_eq!(kind("vault-public"), crate::policy::RuleKind::None);
    assert_eq!(kind("logs"), crate::policy::RuleKind::SseS3);
}

#[test]
fn sse_c_keys_go_over_plain_http_only_with_explicit_consent() {
    let mut env = env();
    env.insert("GOODKEY".into(), KEY_A.into());
    let rule = "[[bucket]]\npattern = \"*\"\nsse = { rule = \"sse-c\", key = { id = \"k\", env = \"GOODKEY\" } }\n";
    let plain = with_buckets(rule).replace("https://s3.example.test", "http://127.0.0.1:9000");
    let err = Config::from_toml(&plain, Path::new("."), &env)
        .unwrap_err()
        .to_string();
    assert!(err.contains("allow_plaintext"), "{err}");
    let consented = plain.replace(
        "addressing_style",
        "allow_plaintext = true\naddressing_style",
    );
    assert!(Config::from_toml(&consented, Path::new("."), &env).is_ok());
}

#[test]
fn body_timeout_defaults_to_nginx_and_must_be_set_to_a_second_or_more() {
    let c = Config::from_toml(GOOD, Path::new("/etc/s3seal"), &env()).unwrap();
    assert_eq!(c.server.body_timeout, Duration::from_secs(60));
    let set = |v: &str| {
        let text = GOOD.replace(
            "domain = \"S3.Localhost\"",
            &format!("domain = \"S3.Localhost\"\nbody_timeout_secs = {v}"),
        );
        Config::from_toml(&text, Path::new("/etc/s3seal"), &env())
    };
    assert_eq!(
        set("5").unwrap().server.body_timeout,
        Duration::from_secs(5)
    );
    let err = set("0").unwrap_err().to_string();
    assert!(err.contains("timeouts must be at least 1 second"), "{err}");
}

#[test]
fn operations_settings_have_defaults_and_are_checked() {
    let c = Config::from_toml(GOOD, Path::new("/etc/s3seal"), &env()).unwrap();
    assert_eq!(c.server.log_format, LogFormat::Text);
    assert_eq!(c.server.drain_timeout, Duration::from_secs(25));
    assert!(c.server.trusted_proxies.is_empty());

    let text = GOOD.replace(
        "domain = \"S3.Localhost\"",
        "domain = \"S3.Localhost\"\nlog_format = \"json\"\ndrain_timeout_secs = 5\n\
         trusted_proxies = [\"10.1.2.3/8\", \"fd00::1\"]",
    );
    let c = Config::from_toml(&text, Path::new("/etc/s3seal"), &env()).unwrap();
    assert_eq!(c.server.log_format, LogFormat::Json);
    assert_eq!(c.server.drain_timeout, Duration::from_secs(5));
    assert_eq!(
        c.server.trusted_proxies,
        [
            "10.0.0.0/8".parse::<IpNet>().unwrap(),
            "fd00::1/128".parse().unwrap()
        ]
    );

    let bad = GOOD.replace(
        "domain = \"S3.Localhost\"",
        "trusted_proxies = [\"10.0.0.0/33\"]",
    );
    let err = Config::from_toml(&bad, Path::new("/etc/s3seal"), &env()).unwrap_err();
    assert!(
        err.to_string().contains("server.trusted_proxies[0]"),
        "{err}"
    );
    assert_eq!(c.server.watch_interval, None);
    let bad = GOOD.replace("domain = \"S3.Localhost\"", "watch_interval_secs = 0");
    let err = Config::from_toml(&bad, Path::new("/etc/s3seal"), &env()).unwrap_err();
    assert!(err.to_string().contains("watch_interval_secs"), "{err}");
    let bad = GOOD.replace("domain = \"S3.Localhost\"", "log_format = \"xml\"");
    assert!(Config::from_toml(&bad, Path::new("/etc/s3seal"), &env()).is_err());
    assert_eq!(c.server.max_connections_per_peer, 512);
    let bad = GOOD.replace("domain = \"S3.Localhost\"", "max_connections_per_peer = 0");
    let err = Config::from_toml(&bad, Path::new("/etc/s3seal"), &env()).unwrap_err();
    assert!(
        err.to_string().contains("max_connections_per_peer"),
        "{err}"
    );
    assert_eq!(c.server.max_connection_buffer_bytes, 64 * 1024 * 1024);
    let bad = GOOD.replace(
        "domain = \"S3.Localhost\"",
        "max_connection_buffer_bytes = 1048576",
    );
    let err = Config::from_toml(&bad, Path::new("/etc/s3seal"), &env()).unwrap_err();
    assert!(
        err.to_string().contains("max_connection_buffer_bytes"),
        "{err}"
    );
}

/// Every per-bucket setting is decided the same way: of the `[[bucket]]` tables that set it,
/// the most specific matching pattern, wherever it is written. A table written for one
/// setting never changes another: a CORS table for `web-*` leaves `web-*` encrypted, and
/// only `mode = "none"` (or `cors = []`) exempts buckets from a broader rule.
#[test]
fn the_most_specific_table_that_sets_a_setting_decides_it() {
    let k1 = STANDARD.encode([1u8; 32]);
    let text = format!(
        r#"{GOOD}
[[bucket]]
pattern = "*"
encryption = {{ mode = "client-side", key_id = "k1", key = "{k1}" }}
[[bucket.cors]]
allowed_origins = ["https://any.example"]
allowed_methods = ["GET"]

[[bucket]]
pattern = "web-*"
[[bucket.cors]]
allowed_origins = ["https://web.example"]
allowed_methods = ["GET"]

[[bucket]]
pattern = "web-public"
encryption = {{ mode = "none" }}
cors = []
"#
    );
    let c = Config::from_toml(&text, Path::new("/etc/s3seal"), &env()).unwrap();
    assert!(
        c.encryption.for_bucket("web-a").is_some(),
        "a CORS table exempted web-a"
    );
    assert!(c.encryption.for_bucket("web-public").is_none());
    assert!(c.encryption.for_bucket("logs").is_some());
    let origin = |b: &str| {
        c.buckets
            .for_bucket(b)
            .map(|rules| format!("{rules:?}").contains("web.example"))
    };
    assert_eq!(origin("web-a"), Some(true), "the broader `*` CORS rule won");
    assert_eq!(origin("logs"), Some(false));
    assert_eq!(origin("web-public"), None);

    let refused = |extra: &str, needle: &str| {
        let err = Config::from_toml(&format!("{GOOD}\n{extra}"), Path::new("/"), &env())
            .unwrap_err()
            .to_string();
        assert!(err.contains(needle), "{extra}: {err}");
    };
    refused(
        "[[bucket]]\npattern = \"a-*\"\ncors = []\n[[bucket]]\npattern = \"a-*\"\ncors = []\n",
        "bucket[1].cors",
    );
    refused(
        "[[bucket]]\npattern = \"a-*\"\nencryption = { mode = \"none\" }\n[[bucket]]\npattern = \"a-*\"\nencryption = { mode = \"none\" }\n",
        "already has an encryption rule",
    );
    refused(
        "[[bucket]]\npattern = \"a-*\"\nencryption = { mode = \"none\", key_id = \"k\" }\n",
        r#"mode = "none" takes no other keys"#,
    );
    refused(
        "[[bucket]]\npattern = \"a-*\"\nencryption = { mode = \"client-side\", key_id = \"k\" }\n",
        "needs either key_id and key",
    );
}

#[test]
fn client_side_encryption_and_sse_c_on_one_bucket_are_refused_at_load() {
    let k = STANDARD.encode([1u8; 32]);
    let mut env = env();
    env.insert("VAULT_KEY".into(), KEY_A.into());
    let cse = format!(
        "[[bucket]]\npattern = \"*\"\nencryption = {{ mode = \"client-side\", key_id = \"k\", key = \"{k}\" }}\n"
    );
    let sse_c = "[[bucket]]\npattern = \"vault\"\nsse = { rule = \"sse-c\", key = { id = \"1\", env = \"VAULT_KEY\" } }\n";
    let err = Config::from_toml(
        &with_buckets(&format!("{cse}{sse_c}")),
        Path::new("."),
        &env,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("bucket[1]") && err.contains("cannot be combined"),
        "{err}"
    );
    // The same rule in one table, and a glob on both sides.
    let both = format!(
        "[[bucket]]\npattern = \"vault-*\"\nencryption = {{ mode = \"client-side\", key_id = \"k\", key = \"{k}\" }}\nsse = {{ rule = \"sse-c\", key = {{ id = \"1\", env = \"VAULT_KEY\" }} }}\n"
    );
    assert!(Config::from_toml(&with_buckets(&both), Path::new("."), &env).is_err());

    // Exempting the SSE-C bucket from client-side encryption makes the config valid.
    let exempt = "encryption = { mode = \"none\" }\n";
    let text = with_buckets(&format!("{cse}{sse_c}{exempt}"));
    let c = Config::from_toml(&text, Path::new("."), &env).unwrap();
    assert!(c.encryption.for_bucket("vault").is_none());
    assert!(c.encryption.for_bucket("other").is_some());
}

fn load(text: &str) -> Result<Config, ConfigError> {
    Config::from_toml(text, Path::new("."), &env())
}

#[test]
fn anonymous_access_is_off_unless_set_and_names_its_upstream() {
    let c = load(GOOD).unwrap();
    assert!(c.anonymous.for_bucket("public").is_none());
    let c = load(&with_buckets(
        r#"
[[bucket]]
pattern = "public-*"
anonymous = { read = true }
[[bucket]]
pattern = "public-listed"
anonymous = { read = true, list = true, upstream = "main" }
[[bucket]]
pattern = "public-closed"
anonymous = { read = false }
"#,
    ))
    .unwrap();
    let a = c.anonymous.for_bucket("public-a").unwrap();
    assert_eq!((a.read, a.list, a.upstream.as_str()), (true, false, "main"));
    assert!(c.anonymous.for_bucket("public-listed").unwrap().list);
    assert!(c.anonymous.for_bucket("public-closed").is_none());
    assert!(c.anonymous.for_bucket("other").is_none());

    for (table, key) in [
        (
            r#"anonymous = { read = true, upstream = "nope" }"#,
            "bucket[0].anonymous.upstream",
        ),
        ("anonymous = { read = true, write = true }", "write"),
    ] {
        let err = load(&with_buckets(&format!(
            "[[bucket]]\npattern = \"p\"\n{table}\n"
        )))
        .unwrap_err()
        .to_string();
        assert!(err.contains(key), "{err}");
    }
}

#[test]
fn upstream_must_be_named_when_there_are_several() {
    let two = GOOD.replace(
        "[[client]]",
        "[[upstream]]\nname = \"other\"\nendpoint = \"https://o.example.test\"\naccess_key_id = \"a\"\nsecret_access_key = \"b\"\n\n[[client]]",
    );
    for table in ["anonymous = { read = true }", "cors_from_bucket = {}"] {
        let err = load(&format!("{two}\n[[bucket]]\npattern = \"p\"\n{table}\n"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("upstream: the config has 2 upstreams"),
            "{err}"
        );
    }
}

#[test]
fn cors_rules_come_from_the_config_or_from_the_bucket() {
    let c = load(&with_buckets(
        r#"
[[bucket]]
pattern = "site-*"
cors_from_bucket = { cache_seconds = 5 }
[[bucket]]
pattern = "site-config"
[[bucket.cors]]
allowed_origins = ["*"]
allowed_methods = ["GET"]
"#,
    ))
    .unwrap();
    match c.buckets.source("site-a") {
        Some(cors::Source::Bucket(from)) => {
            assert_eq!(from.upstream, "main");
            assert_eq!(from.ttl, Duration::from_secs(5));
        }
        other => panic!("{other:?}"),
    }
    assert!(c.buckets.for_bucket("site-a").is_none());
    assert_eq!(c.buckets.for_bucket("site-config").map(<[_]>::len), Some(1));
    let default = load(&with_buckets(
        "[[bucket]]\npattern = \"s\"\ncors_from_bucket = {}\n",
    ))
    .unwrap();
    assert!(matches!(
        default.buckets.source("s"),
        Some(cors::Source::Bucket(f)) if f.ttl == Duration::from_secs(60)
    ));

    for (table, key) in [
        (
            "cors_from_bucket = { cache_seconds = 0 }",
            "bucket[0].cors_from_bucket.cache_seconds",
        ),
        (
            "cors_from_bucket = { cache_seconds = 3601 }",
            "bucket[0].cors_from_bucket.cache_seconds",
        ),
        (
            "cors_from_bucket = {}\ncors = []",
            "bucket[0].cors_from_bucket: a table takes its CORS rules either",
        ),
    ] {
        let err = load(&with_buckets(&format!(
            "[[bucket]]\npattern = \"p\"\n{table}\n"
        )))
        .unwrap_err()
        .to_string();
        assert!(err.contains(key), "{err}");
    }
}
