//! The local Switchboard stack: an OAuth2 issuer that plays Amazon Cognito,
//! sample A2A agents, and the wiring of the core to the local backends.

pub mod agents;
pub mod issuer;
pub mod keys;
pub mod stack;

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod testutil;
