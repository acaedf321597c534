//! The PVE API client: one pooled HTTPS client, token auth, parameter encoding and
//! PVE's error conventions turned into typed errors.

pub(crate) mod client;
pub(crate) mod encode;
pub(crate) mod error;
pub mod lists;
pub(crate) mod roles;
pub(crate) mod upid;
pub(crate) mod vmids;

pub use client::{PveClient, install_crypto_provider};
pub use error::{ApiError, PveError, TransportError, TransportKind};
pub use upid::Upid;
pub(crate) use vmids::{Place, VmidMap};
