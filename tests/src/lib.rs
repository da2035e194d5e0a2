//! End-to-end test crate: see the files under `tests/tests/`. The library
//! holds harness pieces shared with other crates' tests: a local AWS
//! ([`moto`]) and a proxy that makes it fail on demand ([`faults`]). A
//! harness fails the test by panicking, so `unwrap`/`expect` are fine here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod faults;
pub mod moto;
