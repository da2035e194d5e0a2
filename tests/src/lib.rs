//! End-to-end test crate: see the files under `tests/tests/`.
