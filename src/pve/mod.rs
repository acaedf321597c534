//! The PVE API client: one pooled HTTPS client, token auth, parameter encoding and
//! PVE's error conventions turned into typed errors.

pub mod client;
pub mod encode;
pub mod error;
pub mod lists;
pub mod roles;
pub mod upid;
pub mod vmids;

pub use client::{BodyEncoding, PveClient, install_crypto_provider};
pub use error::{ApiError, PveError, TransportError, TransportKind};
pub use upid::Upid;
pub use vmids::{Place, VmidMap};
