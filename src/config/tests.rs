use super::*;

use base64::engine::general_purpose::STANDARD;

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
