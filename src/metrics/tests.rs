use std::time::Duration;

use super::*;

/// The value of the sample line that starts with `series` (name and labels, exactly).
fn value(text: &str, series: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ').map(str::to_owned))
}

#[test]
fn label_values_and_help_are_escaped() {
    assert_eq!(escape_label_value(r#"a"b\c"#), r#"a\"b\\c"#);
    assert_eq!(escape_label_value("line\nbreak"), r"line\nbreak");
    assert_eq!(escape_help("a \\ b\nc \"kept\""), r#"a \\ b\nc "kept""#);

    let mut out = Exposition::default();
    out.sample("m", &[("a", "x\"y"), ("b", "z")], 1);
    assert_eq!(out.0, "m{a=\"x\\\"y\",b=\"z\"} 1\n");
}

#[test]
fn every_family_has_help_and_type_before_any_sample() {
    let m = Metrics::default();
    m.answered("GetObject", "-", 200, Duration::from_millis(3), 5, Some(7));
    m.auth_failure("SignatureDoesNotMatch");
    let text = m.render();
    let mut typed = std::collections::HashSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
            assert!(typed.insert(name.to_owned()), "{name} typed twice");
        } else if !line.starts_with("# HELP ") {
            let name = line.split(['{', ' ']).next().unwrap();
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s).filter(|f| typed.contains(*f)))
                .unwrap_or(name);
            assert!(typed.contains(family), "sample before its TYPE: {line}");
        }
    }
    assert!(text.ends_with('\n'));
}

#[test]
fn counters_by_label() {
    let m = Metrics::default();
    for _ in 0..3 {
        m.answered("PutObject", "sse-c", 200, Duration::ZERO, 10, None);
    }
    m.answered("unknown", "-", 403, Duration::ZERO, 0, Some(100));
    m.auth_failure("SignatureDoesNotMatch");
    m.auth_failure("SignatureDoesNotMatch");
    m.upstream_error();
    m.tls_handshake_failure();
    m.plaintext_rejected();
    let text = m.render();
    let v = |s| value(&text, s);
    assert_eq!(
        v(r#"s3seal_requests_total{operation="PutObject",rule="sse-c",status="200"}"#).as_deref(),
        Some("3")
    );
    assert_eq!(
        v(r#"s3seal_requests_total{operation="unknown",rule="-",status="403"}"#).as_deref(),
        Some("1")
    );
    assert_eq!(v("s3seal_request_bytes_total").as_deref(), Some("30"));
    assert_eq!(v("s3seal_response_bytes_total").as_deref(), Some("100"));
    assert_eq!(
        v(r#"s3seal_auth_failures_total{reason="SignatureDoesNotMatch"}"#).as_deref(),
        Some("2")
    );
    assert_eq!(v("s3seal_upstream_errors_total").as_deref(), Some("1"));
    assert_eq!(
        v("s3seal_tls_handshake_failures_total").as_deref(),
        Some("1")
    );
    assert_eq!(v("s3seal_plaintext_rejected_total").as_deref(), Some("1"));
}

#[test]
fn histogram_buckets_are_cumulative_with_sum_and_count() {
    let m = Metrics::default();
    for ms in [1, 5, 7, 200, 200] {
        m.answered("GetObject", "-", 200, Duration::from_millis(ms), 0, None);
    }
    // Above the last bound: only in +Inf.
    m.answered("GetObject", "-", 200, Duration::from_secs(400), 0, None);
    let text = m.render();
    let bucket = |le: &str| {
        value(
            &text,
            &format!("s3seal_request_duration_seconds_bucket{{le=\"{le}\"}}"),
        )
        .unwrap_or_else(|| panic!("no bucket {le} in\n{text}"))
    };
    // A bound is inclusive (`le`): 5 ms falls in the 0.005 bucket.
    assert_eq!(bucket("0.005"), "2");
    assert_eq!(bucket("0.01"), "3");
    assert_eq!(bucket("0.1"), "3");
    assert_eq!(bucket("0.25"), "5");
    assert_eq!(bucket("300"), "5");
    assert_eq!(bucket("+Inf"), "6");
    assert_eq!(
        value(&text, "s3seal_request_duration_seconds_count").as_deref(),
        Some("6")
    );
    assert_eq!(
        value(&text, "s3seal_request_duration_seconds_sum").as_deref(),
        Some("400.413")
    );
    // Bucket lines come in increasing `le` order, ending with +Inf.
    let les: Vec<_> = text
        .lines()
        .filter_map(|l| l.strip_prefix("s3seal_request_duration_seconds_bucket{le=\""))
        .map(|l| l.split('"').next().unwrap())
        .collect();
    assert_eq!(les.len(), DURATION_BUCKETS.len() + 1);
    assert_eq!(les.last(), Some(&"+Inf"));
}

#[test]
fn reloads_are_counted_by_result() {
    let m = Metrics::default();
    let text = m.render();
    assert_eq!(
        value(&text, "s3seal_config_last_reload_successful").as_deref(),
        Some("1")
    );
    m.config_reload(true);
    m.config_reload(false);
    let text = m.render();
    assert_eq!(
        value(&text, r#"s3seal_config_reloads_total{result="success"}"#).as_deref(),
        Some("1")
    );
    assert_eq!(
        value(&text, r#"s3seal_config_reloads_total{result="failure"}"#).as_deref(),
        Some("1")
    );
    assert_eq!(
        value(&text, "s3seal_config_last_reload_successful").as_deref(),
        Some("0")
    );
    m.config_reload(true);
    assert_eq!(
        value(&m.render(), "s3seal_config_last_reload_successful").as_deref(),
        Some("1")
    );
}

#[test]
fn certificate_expiry_is_a_gauge_once_known() {
    let m = Metrics::default();
    assert!(!m
        .render()
        .contains("s3seal_tls_certificate_expiry_timestamp_seconds"));
    m.set_tls_cert_not_after(Some(
        std::time::UNIX_EPOCH + Duration::from_secs(1_900_000_000),
    ));
    assert_eq!(
        value(
            &m.render(),
            "s3seal_tls_certificate_expiry_timestamp_seconds"
        )
        .as_deref(),
        Some("1900000000")
    );
}

#[test]
fn build_info_names_the_version() {
    let text = Metrics::default().render();
    let series = format!(
        "s3seal_build_info{{version=\"{}\"}}",
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(value(&text, &series).as_deref(), Some("1"));
}

#[test]
fn open_connections_go_up_and_down() {
    let m = std::sync::Arc::new(Metrics::default());
    let a = m.connection_opened();
    let b = m.connection_opened();
    assert_eq!(
        value(&m.render(), "s3seal_open_connections").as_deref(),
        Some("2")
    );
    drop(a);
    drop(b);
    assert_eq!(
        value(&m.render(), "s3seal_open_connections").as_deref(),
        Some("0")
    );
}
