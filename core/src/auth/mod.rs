//! Who is calling (JWT verification against a JWKS) and what they may reach.

pub mod jwt;
pub mod oauth2;
pub mod scopes;

pub use jwt::{AuthError, Principal, Verifier, VerifierConfig};
pub use scopes::{Explanation, PermissionSet};
