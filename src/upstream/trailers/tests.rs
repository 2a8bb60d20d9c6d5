use std::sync::Arc;

use http::StatusCode;

use super::*;

fn auto() -> Arc<TrailerSupport> {
    Arc::new(TrailerSupport::new("up", TrailerMode::Auto))
}

fn probe(cell: &Arc<TrailerSupport>) -> ProbeGuard {
    match cell.decide(1024) {
        Decision::Probe(guard) => guard,
        other => panic!("expected a probe, got {other:?}"),
    }
}

#[test]
fn the_setting_decides_without_a_probe() {
    let forward = Arc::new(TrailerSupport::new("up", TrailerMode::Forward));
    assert!(matches!(forward.decide(1), Decision::Forward));
    assert_eq!(forward.current(), Support::Forward);
    let strip = Arc::new(TrailerSupport::new("up", TrailerMode::Strip));
    assert!(matches!(strip.decide(1), Decision::Strip));
    assert_eq!(strip.current(), Support::Strip);
}

#[test]
fn an_accepted_trailer_is_forwarded_from_then_on() {
    let cell = auto();
    assert_eq!(cell.current(), Support::Unknown);
    probe(&cell).learn(judge(StatusCode::OK, None));
    assert_eq!(cell.current(), Support::Forward);
    assert!(matches!(cell.decide(1), Decision::Forward));
    assert!(matches!(cell.decide(u64::MAX), Decision::Forward));
}

#[test]
fn a_refused_trailer_is_stripped_from_then_on() {
    let cell = auto();
    let outcome = judge(StatusCode::BAD_REQUEST, Some(StatusCode::OK));
    assert_eq!(outcome, Outcome::Refused);
    probe(&cell).learn(outcome);
    assert_eq!(cell.current(), Support::Strip);
    assert!(matches!(cell.decide(1), Decision::Strip));
}

#[test]
fn one_probe_at_a_time_and_others_strip_meanwhile() {
    let cell = auto();
    let guard = probe(&cell);
    assert!(matches!(cell.decide(1), Decision::Strip));
    assert_eq!(
        cell.current(),
        Support::Unknown,
        "a probe in flight is not an answer"
    );
    drop(guard);
    // Abandoned (client gone, upstream unreachable): the next body probes.
    probe(&cell).learn(Outcome::Inconclusive);
    assert_eq!(cell.current(), Support::Unknown);
    probe(&cell);
}

#[test]
fn a_body_too_large_to_send_twice_is_stripped_and_teaches_nothing() {
    let cell = auto();
    assert!(matches!(cell.decide(PROBE_MAX_BYTES + 1), Decision::Strip));
    assert_eq!(cell.current(), Support::Unknown);
    assert!(matches!(cell.decide(PROBE_MAX_BYTES), Decision::Probe(_)));
}

#[test]
fn only_a_refusal_cured_by_stripping_counts() {
    use StatusCode as S;
    assert_eq!(judge(S::OK, None), Outcome::Accepted);
    assert_eq!(judge(S::LENGTH_REQUIRED, Some(S::OK)), Outcome::Refused);
    assert_eq!(judge(S::NOT_IMPLEMENTED, Some(S::OK)), Outcome::Refused);
    // The same refusal either way: the bucket is missing, the key is not allowed...
    assert_eq!(
        judge(S::NOT_FOUND, Some(S::NOT_FOUND)),
        Outcome::Inconclusive
    );
    assert_eq!(
        judge(S::FORBIDDEN, Some(S::FORBIDDEN)),
        Outcome::Inconclusive
    );
    // A transient failure says nothing about trailers, and is not retried.
    assert!(!may_refuse_trailer(S::SERVICE_UNAVAILABLE));
    assert!(!may_refuse_trailer(S::INTERNAL_SERVER_ERROR));
    assert_eq!(judge(S::SERVICE_UNAVAILABLE, None), Outcome::Inconclusive);
    assert!(may_refuse_trailer(S::BAD_REQUEST));
}

#[test]
fn the_setting_parses_as_before_and_as_auto() {
    #[derive(serde::Deserialize)]
    struct T {
        m: TrailerMode,
    }
    let parse = |s: &str| toml::from_str::<T>(s).map(|t| t.m);
    assert_eq!(parse("m = true").unwrap(), TrailerMode::Forward);
    assert_eq!(parse("m = false").unwrap(), TrailerMode::Strip);
    assert_eq!(parse("m = \"auto\"").unwrap(), TrailerMode::Auto);
    let err = parse("m = \"yes\"").unwrap_err().to_string();
    assert!(err.contains("\"auto\", true or false"), "{err}");
    assert!(parse("m = 1").is_err());
}

#[test]
fn metrics_see_the_current_state() {
    let cell = auto();
    assert_eq!(StateSource::state(&*cell), "unknown");
    probe(&cell).learn(Outcome::Refused);
    assert_eq!(StateSource::state(&*cell), "strip");
    assert!(Support::LABELS.contains(&"forward"));
}
