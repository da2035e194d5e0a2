//! The registry: agent records, permissions, and the traits every store implements.

pub mod cache;
pub mod file;
pub mod model;
pub mod permissions;
pub mod store;
pub mod validate;

pub use cache::RegistryCache;
pub use model::*;
pub use permissions::{PermissionSet, ALL_AGENTS};
pub use store::*;
pub use validate::{
    agent_problems, validate_agent, validate_agent_id, validate_backend_url, validate_client,
    validate_client_id, validate_credential_header, validate_granted_agent, validate_permission,
    validate_scope, validate_secret_name, validate_secret_value, validate_token_url,
    AGENT_ID_PATTERN,
};
