//! Routing to backends: paths, backend credentials, streaming and agent cards.

pub mod backend_auth;
pub mod card;
pub mod forward;
pub mod headers;
pub mod path;
pub mod sse;
