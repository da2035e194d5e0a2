//! End-to-end test crate: see the files under `tests/tests/`. The library
//! holds harness pieces shared with other crates' tests: a local AWS
//! ([`moto`]), a proxy that makes it fail on demand ([`faults`]), agent
//! backends that misbehave on purpose ([`backends`]) and a raw-socket
//! HTTP/1.1 client for requests ordinary clients refuse to send
//! ([`rawhttp`]), and a local Lambda Runtime API ([`lambda_runtime`]). A harness fails the test by panicking, so
//! `unwrap`/`expect` are fine here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod backends;
pub mod faults;
pub mod lambda_runtime;
pub mod moto;
pub mod rawhttp;
