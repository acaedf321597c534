//! A stateful simulated Proxmox VE API: try every tool with no PVE host, develop scripts
//! with no risk, and test against something that behaves like PVE. Kept apart from the
//! production path; built with the `simulator` feature (on by default).

pub mod auth;
pub mod http;
pub mod params;
pub mod spec;
pub mod state;
