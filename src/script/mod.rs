//! Tool scripts: the sandboxed Rhai engine, the manifest, compilation, the `pve` binding
//! and the runner for one call.

pub mod answers;
pub mod binding;
pub mod budget;
pub mod compile;
pub mod context;
pub mod convert;
pub mod defaults;
pub mod error;
pub mod fanout;
pub mod invoke;
pub mod libs;
pub mod lint;
pub mod manifest;
mod parse_limits;
mod resolve;
pub mod sandbox;
pub mod thread;

pub use compile::{CompiledTool, compile_tool, compile_tool_deferred};
pub use error::ScriptError;
pub use invoke::{CallError, Outcome, Runtime, invoke};
pub use libs::{LibSource, Libs};
pub use manifest::Manifest;
