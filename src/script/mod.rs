//! Tool scripts: the sandboxed Rhai engine, the manifest, compilation, the `pve` binding
//! and the runner for one call.

pub(crate) mod answers;
pub mod binding;
pub mod budget;
pub(crate) mod compile;
pub(crate) mod context;
pub(crate) mod convert;
pub(crate) mod defaults;
pub(crate) mod error;
pub(crate) mod fanout;
pub(crate) mod invoke;
pub mod kinds;
pub(crate) mod libs;
pub(crate) mod lint;
pub(crate) mod manifest;
mod parse_limits;
mod resolve;
pub(crate) mod rows;
pub mod sandbox;
pub(crate) mod thread;

pub(crate) use compile::{CompiledTool, compile_tool, compile_tool_deferred};
pub(crate) use error::ScriptError;
pub(crate) use invoke::{CallError, CallOutcome, Services, invoke};
pub use kinds::ErrorKind;
pub(crate) use libs::{LibSource, Libs};
pub(crate) use manifest::Manifest;
