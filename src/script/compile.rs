//! Compile one tool script: self-contained AST, manifest, argument validator.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use rhai::{AST, Engine, EvalAltResult, Position, Scope};
use serde_json::Value;

use super::budget;
use super::error::ScriptError;
use super::libs::Libs;
use super::manifest::Manifest;
use super::sandbox;

/// A tool ready to run. Immutable: a reload builds new ones, calls in flight keep theirs.
///
/// Its manifest is read at load; its runnable part ([`Body`]: the self-contained AST and the
/// argument validator) is built at load for user scripts, so that a broken edit is reported
/// at once, and on first use for built-ins, whose start-up then costs only a parse each (the
/// test suite builds every built-in's body).
pub(crate) struct CompiledTool {
    pub manifest: Manifest,
    /// Where the script came from, as shown to users (`builtin:pve_vm_status.rhai` or a file path).
    pub origin: String,
    /// SHA-256 of the script's text, in hex (the audit log names the script by it).
    pub sha256: String,
    body: OnceLock<Result<Body, ScriptError>>,
    /// What a deferred body is built from.
    source: Option<(Arc<str>, Libs)>,
}

/// The runnable part of a tool.
pub(crate) struct Body {
    pub ast: AST,
    pub validator: jsonschema::Validator,
    /// Checks results when the manifest declares an output schema.
    pub output_validator: Option<jsonschema::Validator>,
}

impl CompiledTool {
    /// The AST and the argument validator, built now if they were deferred.
    pub(crate) fn body(&self) -> Result<&Body, ScriptError> {
        self.body
            .get_or_init(|| match &self.source {
                Some((text, libs)) => build_body(&self.origin, text, libs, &self.manifest),
                None => Err(ScriptError::at(
                    &self.origin,
                    Position::new(1, 1),
                    "the tool was not compiled".into(),
                )),
            })
            .as_ref()
            .map_err(Clone::clone)
    }
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

pub(crate) const ENTRY: &str = "run";

/// Wall-clock limit for the top-level code of the libraries one compilation evaluates.
pub(crate) const LIB_DEADLINE: Duration = Duration::from_secs(2);
/// Memory the libraries' top-level code may hold during one compilation.
pub(crate) const LIB_MEMORY: usize = 64 * 1024 * 1024;

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

/// Compile a tool now: its manifest and its body (a user script: errors show at load).
pub(crate) fn compile_tool(stem: &str, origin: &str, text: &str, libs: &Libs) -> Result<CompiledTool, ScriptError> {
    let tool = read_tool(stem, origin, text, text, true, None)?;
    let body = build_body(origin, text, libs, &tool.manifest)?;
    let _ = tool.body.set(Ok(body));
    Ok(tool)
}

/// Read a tool's manifest now and build its body on first use (a built-in).
///
/// Only the `const TOOL = #{…};` statement is parsed here (see [`manifest_statement`]),
/// which is most of what start-up costs; the whole script is parsed with its body.
pub(crate) fn compile_tool_deferred(
    stem: &str,
    origin: &str,
    text: &Arc<str>,
    libs: &Libs,
) -> Result<CompiledTool, ScriptError> {
    let source = Some((text.clone(), libs.clone()));
    match manifest_statement(text) {
        Some(statement) => read_tool(stem, origin, text, statement, false, source),
        None => read_tool(stem, origin, text, text, true, source),
    }
}

/// The `const TOOL = #{…};` statement of a script, found without parsing the rest: a line
/// that starts with `const TOOL`, up to the `}` that closes its map and the `;` after it.
/// Strings and comments inside the map are skipped over; `None` when the text holds
/// anything this scan does not follow (a backtick string, a character literal), so that the
/// caller parses the whole script instead.
pub(crate) fn manifest_statement(text: &str) -> Option<&str> {
    let start = text
        .match_indices("const TOOL")
        .map(|(i, _)| i)
        .find(|&i| i == 0 || text.as_bytes()[i - 1] == b'\n')?;
    let bytes = text.as_bytes();
    let mut i = start + "const TOOL".len();
    // ` = #{`
    while i < bytes.len() && bytes[i] != b'#' {
        if !matches!(bytes[i], b' ' | b'\t' | b'\r' | b'\n' | b'=') {
            return None;
        }
        i += 1;
    }
    if bytes.get(i + 1) != Some(&b'{') {
        return None;
    }
    i += 1;
    let mut depth = 0usize;
    while i < bytes.len() {
        match bytes[i] {
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    break;
                }
            }
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    if bytes[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                let end = text.get(i + 2..)?.find("*/")?;
                i += 2 + end + 1;
            }
            b'`' | b'\'' => return None,
            _ => {}
        }
        i += 1;
    }
    if depth != 0 {
        return None;
    }
    let rest = text.get(i + 1..)?;
    let semicolon = rest.len() - rest.trim_start().len();
    (rest.as_bytes().get(semicolon) == Some(&b';')).then(|| &text[start..i + 2 + semicolon])
}

/// Read the manifest from `parsed` (the whole script, or its `const TOOL` statement) and
/// make the tool; `whole` says which, and only then is `fn run(args)` checked here (a body
/// build checks it too).
fn read_tool(
    stem: &str,
    origin: &str,
    text: &str,
    parsed: &str,
    whole: bool,
    source: Option<(Arc<str>, Libs)>,
) -> Result<CompiledTool, ScriptError> {
    // The manifest is a literal: an engine without functions reads it (the sandbox's standard
    // package is built on the first call instead, a millisecond or two of start-up).
    let raw;
    let sandboxed;
    let engine = if whole {
        sandboxed = sandbox::engine(Arc::new(|_| {}));
        &sandboxed
    } else {
        raw = Engine::new_raw();
        &raw
    };
    let ast = engine.compile(parsed).map_err(|e| {
        let e: Box<EvalAltResult> = e.into();
        ScriptError::from_eval(origin, &e)
    })?;
    let tool = ast
        .iter_literal_variables(true, false)
        .find(|(name, _, _)| *name == "TOOL")
        .map(|(_, _, value)| value);
    let at_top = |message: String| ScriptError::at(origin, Position::new(1, 1), message);
    let tool = tool.ok_or_else(|| at_top(super::manifest::ManifestError::Missing.to_string()))?;
    let tool: Value = rhai::serde::from_dynamic(&tool).map_err(|e| at_top(format!("TOOL: {e}")))?;
    let manifest = if source.is_some() {
        Manifest::from_value_deferred(stem, tool)
    } else {
        Manifest::from_value(stem, tool)
    }
    .map_err(|e| at_top(e.to_string()))?;
    if whole {
        has_entry(&ast, origin)?;
    }
    Ok(CompiledTool {
        manifest,
        origin: origin.to_string(),
        sha256: crate::audit::sha256_hex(text.as_bytes()),
        body: OnceLock::new(),
        source,
    })
}

/// The self-contained AST (imports embedded; library top-level code runs here, bounded) and
/// the validators of the arguments and of the result.
fn build_body(origin: &str, text: &str, libs: &Libs, manifest: &Manifest) -> Result<Body, ScriptError> {
    let ast = compile_script(origin, text, libs)?;
    has_entry(&ast, origin)?;
    let at_top = |message: String| ScriptError::at(origin, Position::new(1, 1), message);
    let validator = jsonschema::validator_for(&Value::Object(manifest.input_schema.clone()))
        .map_err(|e| at_top(format!("TOOL.params is not a valid JSON Schema: {e}")))?;
    let output_validator = match &manifest.output_schema {
        Some(schema) => Some(
            jsonschema::validator_for(&Value::Object(schema.clone()))
                .map_err(|e| at_top(format!("TOOL.output is not a valid JSON Schema: {e}")))?,
        ),
        None => None,
    };
    Ok(Body {
        ast,
        validator,
        output_validator,
    })
}

/// Compile a script into a self-contained AST (its imports resolved from `libs` and
/// embedded), named by `origin` in error positions. Library top-level code runs under
/// [`LIB_DEADLINE`] and [`LIB_MEMORY`].
pub(crate) fn compile_script(origin: &str, text: &str, libs: &Libs) -> Result<AST, ScriptError> {
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

/// Build what every body build needs once per process, the script engine's standard
/// library and the JSON Schema meta-schema's validator (a few milliseconds together), so
/// that the first call does not wait for them. For a thread of its own at start; the bodies
/// themselves are built by the calls that need them.
pub(crate) fn warm_up() {
    let _ = sandbox::engine(Arc::new(|_| {}));
    let _ = jsonschema::validator_for(&serde_json::json!({"type": "object"}));
}

impl CompiledTool {
    /// Was this tool compiled from this text at this origin?
    pub(crate) fn is_from(&self, origin: &str, text: &str) -> bool {
        self.origin == origin && self.sha256 == crate::audit::sha256_hex(text.as_bytes())
    }
}

fn has_entry(ast: &AST, origin: &str) -> Result<(), ScriptError> {
    if ast.iter_functions().any(|f| f.name == ENTRY && f.params.len() == 1) {
        Ok(())
    } else {
        Err(ScriptError::at(
            origin,
            Position::new(1, 1),
            format!("the script has no entry function `fn {ENTRY}(args)`"),
        ))
    }
}

/// For messages: the error text without Rhai's trailing position.
pub(crate) fn bare_message(err: &EvalAltResult) -> String {
    let text = err.to_string();
    if err.position().is_none() {
        return text;
    }
    let suffix = format!(" ({})", err.position());
    text.strip_suffix(&suffix).map(str::to_string).unwrap_or(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_manifest_statement_reads_as_the_whole_script_does() {
        let libs = Libs::default();
        let mut tools = 0;
        for file in crate::registry::sources::builtin() {
            let Some(stem) = file.tool_name() else { continue };
            let statement = manifest_statement(&file.text).unwrap_or_else(|| panic!("{}: no manifest found", file.rel));
            assert!(
                statement.starts_with("const TOOL") && statement.ends_with(';'),
                "{statement}"
            );
            let quick = compile_tool_deferred(stem, &file.origin, &file.text, &libs).unwrap();
            let whole = read_tool(stem, &file.origin, &file.text, &file.text, true, None).unwrap();
            assert_eq!(quick.manifest, whole.manifest, "{}", file.rel);
            tools += 1;
        }
        assert!(tools >= 24);
    }

    #[test]
    fn the_manifest_scan_skips_strings_and_comments_and_gives_up_on_the_rest() {
        let text = "import \"lib/x\" as x;\nconst TOOL = #{ description: \"a } and a \\\" {\", // }\n /* } */ class: \"read\" } ;\nfn run(args) { 1 }";
        let s = manifest_statement(text).unwrap();
        assert!(s.starts_with("const TOOL = #{") && s.ends_with("} ;"), "{s}");
        assert_eq!(manifest_statement("const TOOL = #{ description: `a ${1}` };"), None);
        assert_eq!(manifest_statement("const TOOLS = #{};"), None);
        assert_eq!(manifest_statement("let x = 1; const TOOL = #{};"), None);
        assert_eq!(manifest_statement("const TOOL = #{ a: 1 }"), None);
        // Without a statement of its own, the whole script is read (and a broken one fails).
        let broken = Arc::<str>::from("const TOOL = #{ description: \"d\", class: \"read\" ");
        let e = compile_tool_deferred("t", "builtin:t.rhai", &broken, &Libs::default()).expect_err("a broken script");
        assert_eq!(e.origin, "builtin:t.rhai", "{e}");
    }

    #[test]
    fn a_deferred_tools_schema_is_checked_when_its_body_is_built() {
        let text = Arc::<str>::from(
            "const TOOL = #{ description: \"d\", class: \"read\", params: #{ properties: #{ a: #{ type: \"nonsense\" } } } };\nfn run(args) { 1 }",
        );
        let e = compile_tool("t", "/s/t.rhai", &text, &Libs::default()).expect_err("an invalid schema");
        assert!(e.message.contains("not a valid JSON Schema"), "{e}");
        let tool = compile_tool_deferred("t", "builtin:t.rhai", &text, &Libs::default()).unwrap();
        let e = tool.body().err().expect("an invalid schema");
        assert!(e.message.contains("not a valid JSON Schema"), "{e}");
    }

    #[test]
    fn a_deferred_tool_without_run_fails_when_its_body_is_built() {
        let text = Arc::<str>::from("const TOOL = #{ description: \"d\", class: \"read\" };\nfn other(x) { x }");
        let tool = compile_tool_deferred("t", "builtin:t.rhai", &text, &Libs::default()).unwrap();
        let e = tool.body().err().expect("no fn run");
        assert!(e.message.contains("fn run(args)"), "{e}");
    }
}
