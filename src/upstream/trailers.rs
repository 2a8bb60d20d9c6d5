//! Whether an upstream takes the client's trailing checksum on: learnt per upstream from the
//! first request that could carry one, unless `forward_checksum_trailers` says.
//!
//! Forwarding a trailer (`STREAMING-UNSIGNED-PAYLOAD-TRAILER`) lets the upstream verify and
//! store the checksum the client computed. Not every S3 server implements it: Ceph RGW before
//! Reef takes `x-amz-content-sha256: STREAMING-UNSIGNED-PAYLOAD-TRAILER` for a payload hash and
//! answers `400 XAmzContentSHA256Mismatch`. Stripping the trailer (a decoded body signed
//! `UNSIGNED-PAYLOAD`) works everywhere, and s3seal verifies the checksum itself in either case
//! before the last byte goes upstream, so the choice changes only who else checks it.
//!
//! No request is side-effect free and accepted by every backend, so there is no probe at start.
//! The first trailer-bearing body of at most [`PROBE_MAX_BYTES`] is read whole instead, sent
//! with its trailer, and, if the upstream refuses that, sent again without: a refusal with the
//! trailer followed by a success without it means the upstream does not take trailers. Until
//! the answer is known (and for bodies too large to send twice) trailers are stripped.
//! Reference: <https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-streaming-trailers.html>

use std::fmt;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use http::StatusCode;
use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

use crate::metrics::StateSource;

/// The largest body read whole to learn an upstream's trailer support: the SDKs' multipart
/// part size (8 MiB), so a first upload of parts or of a small object teaches it. One probe
/// runs at a time per upstream, which bounds the memory it takes.
pub const PROBE_MAX_BYTES: u64 = 8 * 1024 * 1024;

/// `forward_checksum_trailers` of an `[[upstream]]`: `"auto"` (the default), `true` (always
/// forward) or `false` (never).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TrailerMode {
    #[default]
    Auto,
    Forward,
    Strip,
}

impl<'de> Deserialize<'de> for TrailerMode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ModeVisitor;

        impl Visitor<'_> for ModeVisitor {
            type Value = TrailerMode;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("\"auto\", true or false")
            }

            fn visit_bool<E: de::Error>(self, v: bool) -> Result<TrailerMode, E> {
                Ok(if v {
                    TrailerMode::Forward
                } else {
                    TrailerMode::Strip
                })
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<TrailerMode, E> {
                match v {
                    "auto" => Ok(TrailerMode::Auto),
                    _ => Err(E::invalid_value(de::Unexpected::Str(v), &self)),
                }
            }
        }

        d.deserialize_any(ModeVisitor)
    }
}

/// What s3seal does with a client's trailing checksum on this upstream, as `/metrics` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Support {
    /// Not known yet: stripped, except on the one body sent to find out.
    Unknown,
    Forward,
    Strip,
}

impl Support {
    pub const LABELS: &'static [&'static str] = &["forward", "strip", "unknown"];

    pub fn label(self) -> &'static str {
        match self {
            Support::Forward => "forward",
            Support::Strip => "strip",
            Support::Unknown => "unknown",
        }
    }
}

const UNKNOWN: u8 = 0;
const PROBING: u8 = 1;
const FORWARD: u8 = 2;
const STRIP: u8 = 3;

/// One upstream's trailer support. Shared by the generations of a reloaded config while the
/// upstream's endpoint and setting stay the same, so a reload does not forget it.
#[derive(Debug)]
pub struct TrailerSupport {
    upstream: String,
    mode: TrailerMode,
    state: AtomicU8,
}

/// How to send one trailer-bearing body.
#[derive(Debug)]
pub enum Decision {
    Forward,
    Strip,
    /// Read it whole and learn from it (see the module docs); the guard is the only probe.
    Probe(ProbeGuard),
}

/// What a probe's answers showed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The upstream accepted the body with its trailer.
    Accepted,
    /// Refused with the trailer, accepted without it.
    Refused,
    /// Neither: the refusal had another cause, so nothing was learnt.
    Inconclusive,
}

impl TrailerSupport {
    pub fn new(upstream: &str, mode: TrailerMode) -> Self {
        let state = match mode {
            TrailerMode::Auto => UNKNOWN,
            TrailerMode::Forward => FORWARD,
            TrailerMode::Strip => STRIP,
        };
        TrailerSupport {
            upstream: upstream.to_owned(),
            mode,
            state: AtomicU8::new(state),
        }
    }

    pub fn mode(&self) -> TrailerMode {
        self.mode
    }

    pub fn current(&self) -> Support {
        match self.state.load(Ordering::Acquire) {
            FORWARD => Support::Forward,
            STRIP => Support::Strip,
            _ => Support::Unknown,
        }
    }

    /// How to send a trailer-bearing body of `decoded_len` bytes.
    pub fn decide(self: &Arc<Self>, decoded_len: u64) -> Decision {
        match self.current() {
            Support::Forward => Decision::Forward,
            Support::Strip => Decision::Strip,
            Support::Unknown => {
                let free = decoded_len <= PROBE_MAX_BYTES
                    && self
                        .state
                        .compare_exchange(UNKNOWN, PROBING, Ordering::AcqRel, Ordering::Acquire)
                        .is_ok();
                if free {
                    Decision::Probe(ProbeGuard(Some(Arc::clone(self))))
                } else {
                    Decision::Strip
                }
            }
        }
    }
}

impl StateSource for TrailerSupport {
    fn state(&self) -> &'static str {
        self.current().label()
    }

    fn states(&self) -> &'static [&'static str] {
        Support::LABELS
    }
}

/// Whether an answer to a body sent with its trailer may be a refusal of the trailer, worth
/// sending the body again without it. Client errors (RGW: `400 XAmzContentSHA256Mismatch`;
/// others `411 MissingContentLength` or `400 InvalidArgument`) and `501 NotImplemented` may
/// be; a transient server error is not, and is handed to the client as it is.
pub fn may_refuse_trailer(status: StatusCode) -> bool {
    status.is_client_error() || status == StatusCode::NOT_IMPLEMENTED
}

/// What a probe showed: `with_trailer` is the first answer, `without` the answer to the same
/// body sent again without its trailer, when it was.
pub fn judge(with_trailer: StatusCode, without: Option<StatusCode>) -> Outcome {
    match without {
        None if with_trailer.is_success() => Outcome::Accepted,
        Some(plain) if may_refuse_trailer(with_trailer) && plain.is_success() => Outcome::Refused,
        None | Some(_) => Outcome::Inconclusive,
    }
}

/// The one probe in flight for an upstream. Dropped without an outcome (the client went away,
/// the upstream could not be reached), it lets the next body probe instead.
#[derive(Debug)]
pub struct ProbeGuard(Option<Arc<TrailerSupport>>);

impl ProbeGuard {
    /// Records what the probe showed; the choice is logged once per upstream.
    pub fn learn(mut self, outcome: Outcome) {
        let Some(cell) = self.0.take() else {
            return;
        };
        let (state, message) = match outcome {
            Outcome::Accepted => (
                FORWARD,
                "the upstream accepts aws-chunked checksum trailers: clients' trailing checksums are forwarded, and verified by s3seal too",
            ),
            Outcome::Refused => (
                STRIP,
                "the upstream refuses aws-chunked checksum trailers: bodies go without them, their checksums verified by s3seal",
            ),
            Outcome::Inconclusive => (UNKNOWN, ""),
        };
        cell.state.store(state, Ordering::Release);
        if state != UNKNOWN {
            tracing::info!(
                upstream = %cell.upstream,
                checksum_trailers = cell.current().label(),
                "{message}"
            );
        }
    }
}

impl Drop for ProbeGuard {
    fn drop(&mut self) {
        if let Some(cell) = self.0.take() {
            cell.state.store(UNKNOWN, Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests;
