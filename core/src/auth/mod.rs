//! Who is calling and what they may reach: the bearer token
//! ([`bearer`]), its verification against the issuer's keys ([`jwt`]),
//! the scope decision ([`scopes`]), and the OAuth2 client-credentials
//! exchange and OIDC discovery the gateway and the CLI share ([`oauth2`]).

pub mod bearer;
pub mod jwt;
pub mod oauth2;
pub mod scopes;

pub use crate::registry::PermissionSet;
pub use bearer::{authenticate, bearer_token};
pub use jwt::{AuthError, Principal, Verifier, VerifierConfig};
pub use scopes::{authorize, explain, Denied, Explanation};
