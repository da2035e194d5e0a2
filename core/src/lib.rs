//! Switchboard's gateway as a library: authentication, authorization, rate
//! limits, routing, backend auth, streaming proxy, agent-card rewriting,
//! semantic discovery, and the stores behind them. No UI and no printing: the
//! console and the CLI in `app/` drive this crate.

pub mod admin;
pub mod audit;
pub mod auth;
pub mod config;
pub mod discovery;
pub mod error;
pub mod events;
pub mod gateway;
pub mod listener;
pub mod metrics;
pub mod pipeline;
pub mod profile;
pub mod proxy;
pub mod ratelimit;
pub mod registry;
pub mod server;
pub mod store;
pub mod sync;

pub use config::GatewayConfig;
pub use error::{ErrorStyle, GatewayError};
pub use events::{EventBus, TrafficEvent};
pub use gateway::Gateway;
