//! The proxy steps of the request path ([`crate::pipeline`]): the route,
//! the JSON-RPC envelope, backend credentials, the upstream request and the
//! relay back — plus paths, headers and agent cards.

pub mod backend_auth;
pub mod card;
pub mod headers;
pub mod jsonrpc;
pub mod path;
pub mod relay;
pub mod route;
pub mod sse;
pub mod upstream;
