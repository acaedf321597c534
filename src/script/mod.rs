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
pub mod invoke;
pub mod libs;
pub mod lint;
pub mod manifest;
pub mod sandbox;
pub mod thread;

pub use compile::{CompiledTool, compile_tool};
pub use error::ScriptError;
pub use invoke::{CallError, Outcome, Runtime, invoke};
pub use libs::{LibSource, Libs};
pub use manifest::Manifest;
