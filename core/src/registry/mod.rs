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
