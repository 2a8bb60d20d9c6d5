//! End-to-end tests: the real proxy on 127.0.0.1 ephemeral ports, in front of real S3 servers
//! (s3s-fs in-process, moto and Ceph RGW as processes), driven by real clients.

// Scenarios read top to bottom like the scripts they replace.
#![allow(clippy::too_many_lines)]

mod support;

mod backends_smoke;

mod admin;
mod clients;
mod convert;
mod cors;
mod cse;
mod cse_s3;
mod cse_v2;
mod demo;
mod deny;
mod deploy;
mod encrypt;
mod endpoint;
mod kms;
mod negative;
mod ops;
mod post;
mod public;
mod s3ec;
mod sdk;
mod server;
mod shield;
mod sigv2;
mod sse;
mod stall;
mod streaming;
mod trailers;
