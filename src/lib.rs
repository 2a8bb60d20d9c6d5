//! s3seal: a transparent, TLS-terminating S3 proxy that authenticates every client request,
//! re-signs it for the upstream with the upstream's own credentials, and (in later stages)
//! applies per-bucket encryption policy.
//!
//! A request flows through [`proxy::handle`]:
//! 1. [`accept`] terminates TLS and refuses plain HTTP with an S3 error;
//! 2. framing checks refuse request-smuggling forms;
//! 3. [`auth::verify`] checks the SigV4 (or SigV2) signature and wraps the body so it verifies
//!    itself; a request with no authentication at all is anonymous; a browser form upload is
//!    verified by its POST policy ([`auth::post`]) and becomes the PutObject of its file;
//! 4. [`s3::route`] finds bucket, key and operation, and [`authz`] checks the client's bucket
//!    rights (or, for an anonymous request, the bucket's anonymous reads);
//! 5. XML bodies are buffered and checked, data bodies stream;
//! 6. [`upstream`] re-signs and sends the request;
//! 7. the response streams back; every error is rendered once, by [`error::ProxyError`].
//!
//! [`crypto`] holds the client-side encryption format of `docs/format.md` and its streaming
//! bodies; [`cse`] applies them in the pipeline to buckets with `encryption` (between
//! steps 4 and 6: request bodies are encrypted, answers decrypted and their sizes rewritten).
//!
//! [`policy`] decides the server-side encryption headers of each request and checks the
//! backend's answer (`docs/policy.md`); it is pure. [`sse`] is its stage in the pipeline: it
//! rewrites the upstream request's SSE headers before signing and acts on the answer (old
//! SSE-C keys on reads, fail-closed removal of unencrypted writes, copies the backend cannot
//! make under the rule handed to the proxy, which makes them as [`cse`] makes its own).
//!
//! [`cors`] answers preflights from the config's rules, or from rules read from the bucket
//! itself and cached by `bucket_cors` (`docs/cors.md`).
//!
//! [`metrics`] counts what [`proxy::handle`] and the accept loop see; [`admin`] serves the counts,
//! liveness and readiness on a separate plain-HTTP listener; [`logging`] writes the access log
//! and the audit log of key use (see `docs/operations.md`). [`server`] swaps the whole config
//! on reload and drains on shutdown; [`forwarded`] admits plain HTTP from trusted TLS
//! terminators (see `docs/deploy.md`).

pub mod auth;
pub mod authz;
pub mod s3;

pub(crate) mod accept;
pub(crate) mod admin;
pub(crate) mod body;
pub(crate) mod bucket_cors;
pub mod bulk;
pub mod certs;
pub mod config;
pub mod convert;
pub mod cors;
pub mod crypto;
pub mod cse;
mod cse_command;
#[cfg(feature = "embedded")]
pub mod embedded;
pub mod encrypt;
pub(crate) mod error;
pub(crate) mod forwarded;
pub mod kms;
pub mod logging;
pub(crate) mod metrics;
pub(crate) mod outbound;
pub mod policy;
pub(crate) mod proxy;
pub mod recover;
pub mod reencrypt;
pub mod rewrap;
pub(crate) mod rules;
pub mod server;
pub(crate) mod sse;
pub mod tls;
pub(crate) mod upstream;

#[cfg(test)]
mod layering;
