//! Compile one tool script: self-contained AST, manifest, argument validator.

use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rhai::{AST, Engine, EvalAltResult, Position, Scope};
use serde_json::Value;

use super::budget;
use super::error::ScriptError;
use super::libs::Libs;
use super::manifest::Manifest;
use super::sandbox;

/// A tool ready to run. Immutable: a reload builds new ones, calls in flight keep theirs.
pub struct CompiledTool {
    pub manifest: Manifest,
    pub ast: AST,
    /// Where the script came from, as shown to users (`builtin:pve_vm_status.rhai` or a file path).
    pub origin: String,
    pub validator: jsonschema::Validator,
    /// Checks results when the manifest declares an output schema.
    pub output_validator: Option<jsonschema::Validator>,
    /// Hash of the source text and of the libraries it was compiled with.
    pub source_hash: u64,
    /// SHA-256 of the script's text, in hex (the audit log names the script by it).
    pub sha256: String,
}

impl std::fmt::Debug for CompiledTool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledTool")
            .field("name", &self.manifest.name)
            .field("class", &self.manifest.class)
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

pub const ENTRY: &str = "run";

/// Wall-clock limit for the top-level code of the libraries one compilation evaluates.
pub const LIB_DEADLINE: Duration = Duration::from_secs(2);
/// Memory the libraries' top-level code may hold during one compilation.
pub const LIB_MEMORY: usize = 64 * 1024 * 1024;

/// An engine for compiling, whose evaluation of library top-level code stops at
/// [`LIB_DEADLINE`] or over [`LIB_MEMORY`] (besides the operations limit).
fn compile_engine(log: sandbox::LogFn, libs: &Libs) -> Engine {
    let mut engine = sandbox::engine(log);
    engine.set_module_resolver(libs.clone());
    let deadline = Instant::now() + LIB_DEADLINE;
    engine.on_progress(move |ops| {
        if budget::exceeded() {
            return Some(format!("library top-level code held more than {} MiB", LIB_MEMORY >> 20).into());
        }
        if ops % 256 == 0 && Instant::now() >= deadline {
            return Some(
                format!(
                    "library top-level code ran for more than {}s; keep only const, fn and import at a library's top level",
                    LIB_DEADLINE.as_secs()
                )
                .into(),
            );
        }
        None
    });
    engine
}

/// Compile a script into a self-contained AST (its imports resolved from `libs` and
/// embedded), named by `origin` in error positions. Library top-level code runs under
/// [`LIB_DEADLINE`] and [`LIB_MEMORY`].
pub fn compile_script(origin: &str, text: &str, libs: &Libs) -> Result<AST, ScriptError> {
    let log_origin = origin.to_string();
    let _budget = budget::enter(LIB_MEMORY);
    let engine = compile_engine(
        Arc::new(move |s| tracing::info!(target: "script", "{log_origin} (top level): {s}")),
        libs,
    );
    let mut ast = engine
        .compile_into_self_contained(&Scope::new(), text)
        .map_err(|e| ScriptError::from_eval(origin, &e))?;
    ast.set_source(origin.to_string());
    Ok(ast)
}

pub fn compile_tool(stem: &str, origin: &str, text: &str, libs: &Libs) -> Result<CompiledTool, ScriptError> {
    let ast = compile_script(origin, text, libs)?;

    let tool = ast
        .iter_literal_variables(true, false)
        .find(|(name, _, _)| *name == "TOOL")
        .map(|(_, _, value)| value);
    let at_top = |message: String| ScriptError::at(origin, Position::new(1, 1), message);
    let tool = tool.ok_or_else(|| at_top(super::manifest::ManifestError::Missing.to_string()))?;
    let tool: Value = rhai::serde::from_dynamic(&tool).map_err(|e| at_top(format!("TOOL: {e}")))?;
    let manifest = Manifest::from_value(stem, tool).map_err(|e| at_top(e.to_string()))?;

    if !ast.iter_functions().any(|f| f.name == ENTRY && f.params.len() == 1) {
        return Err(at_top(format!("the script has no entry function `fn {ENTRY}(args)`")));
    }
    let validator = jsonschema::validator_for(&Value::Object(manifest.input_schema.clone()))
        .map_err(|e| at_top(format!("TOOL.params is not a valid JSON Schema: {e}")))?;

    let output_validator = match &manifest.output_schema {
        Some(schema) => Some(
            jsonschema::validator_for(&Value::Object(schema.clone()))
                .map_err(|e| at_top(format!("TOOL.output is not a valid JSON Schema: {e}")))?,
        ),
        None => None,
    };
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut hasher);
    Ok(CompiledTool {
        manifest,
        ast,
        origin: origin.to_string(),
        validator,
        output_validator,
        source_hash: hasher.finish(),
        sha256: crate::audit::sha256_hex(text.as_bytes()),
    })
}

/// Compile a library module on its own, to report its errors by its own file.
pub fn check_lib(origin: &str, text: &str, libs: &Libs) -> Result<(), ScriptError> {
    let _budget = budget::enter(LIB_MEMORY);
    let engine = compile_engine(Arc::new(|_| {}), libs);
    let mut ast = engine
        .compile_into_self_contained(&Scope::new(), text)
        .map_err(|e| ScriptError::from_eval(origin, &e))?;
    ast.set_source(origin.to_string());
    rhai::Module::eval_ast_as_new(Scope::new(), &ast, &engine).map_err(|e| ScriptError::from_eval(origin, &e))?;
    Ok(())
}

/// For messages: the error text without Rhai's trailing position.
pub fn bare_message(err: &EvalAltResult) -> String {
    let text = err.to_string();
    if err.position().is_none() {
        return text;
    }
    let suffix = format!(" ({})", err.position());
    text.strip_suffix(&suffix).map(str::to_string).unwrap_or(text)
}
