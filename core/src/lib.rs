//! Switchboard's gateway as a library: authentication, authorization, rate
//! limits, routing, backend auth, streaming proxy, agent-card rewriting, and
//! the stores behind them. No UI and no printing: the console and the CLI in
//! `app/` drive this crate.

pub mod auth;
pub mod registry;
pub mod store;
