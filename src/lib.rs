//! pve-mcp: an MCP server for Proxmox VE whose tools are Rhai scripts, with safety
//! enforced by the core. See ARCHITECTURE.md for the map of the code.

pub mod api;
pub mod audit;
mod author;
mod background;
pub mod cli;
pub mod config;
mod confirm;
pub mod gate;
mod heap;
pub mod human;
pub mod pve;
mod registry;
pub mod script;
mod server;
#[cfg(feature = "simulator")]
pub mod sim;
#[cfg(feature = "simulator")]
mod testing;
