//! Who is calling (JWT verification against a JWKS) and what they may reach.

pub mod scopes;
