//! Who is calling and what they may reach: the bearer token
//! ([`bearer`]), its verification against the issuer's keys ([`jwt`]),
//! and the scope decision ([`scopes`]).

pub mod bearer;
pub mod jwt;
pub mod scopes;

pub use crate::registry::PermissionSet;
pub use bearer::{authenticate, bearer_token};
pub use jwt::{AuthError, Principal, Verifier, VerifierConfig};
pub use scopes::{authorize, explain, Denied, Explanation};
