//! What the MCP user sees of the scripts themselves: the `pve-mcp://scripts` resource (every
//! script with its state and error), the note on a tool's result when its last edit failed to
//! compile, and the answer to a call of a tool that is not in service because it never
//! compiled.

use rmcp::model::{CallToolResult, ContentBlock, ReadResourceResult, Resource, ResourceContents};
use serde_json::{Value, json};

use crate::config::Mode;
use crate::registry::{self, Problem, Snapshot};
use crate::script::ErrorKind;

/// The resource listing every script, its state and its error.
pub(crate) const SCRIPTS_URI: &str = "pve-mcp://scripts";

pub(crate) fn resources() -> Vec<Resource> {
    vec![
        Resource::new(SCRIPTS_URI, "scripts")
            .with_title("Tool scripts and their state")
            .with_description(
                "Every tool script the server found: whether it is in service, where it came from, and the compile error of a broken one (file, line, column, message).",
            )
            .with_mime_type("application/json"),
    ]
}

/// `file:line:col` and the message of a problem.
fn place(p: &Problem) -> (String, String) {
    match &p.error {
        Some(e) => {
            let at = match (e.line, e.col) {
                (Some(l), Some(c)) => format!("{}:{l}:{c}", e.origin),
                (Some(l), None) => format!("{}:{l}", e.origin),
                _ => e.origin.clone(),
            };
            (at, e.message.clone())
        }
        None => (p.origin.clone(), p.message.clone()),
    }
}

fn error_json(p: &Problem) -> Value {
    match &p.error {
        Some(e) => json!({"file": e.origin, "line": e.line, "column": e.col, "message": e.message}),
        None => json!({"file": p.origin, "message": p.message}),
    }
}

/// The scripts resource's JSON.
pub(crate) fn status(snap: &Snapshot, mode: Mode) -> Value {
    let mut names: Vec<&str> = snap.tools.keys().map(String::as_str).collect();
    names.extend(snap.problems.iter().filter_map(|p| p.tool.as_deref()));
    names.sort();
    names.dedup();
    let tools: Vec<Value> = names
        .into_iter()
        .map(|name| {
            let serving = snap.tools.get(name);
            let problem = snap.problem_of(name);
            let state = match (serving, problem) {
                (Some(_), None) => "ok",
                (Some(_), Some(_)) => "broken; the previous version is in service",
                (None, _) => "broken; not in service",
            };
            let mut row = json!({"tool": name, "state": state});
            if let Some(t) = serving {
                row["file"] = json!(t.origin);
                row["class"] = json!(t.manifest.class.label());
                row["listed"] = json!(registry::visible(t.manifest.class, mode));
            }
            if let Some(found) = snap.findings.get(name) {
                let texts: Vec<String> = found.iter().map(|e| e.to_string()).collect();
                row["warnings"] = json!(texts);
            }
            if let Some(p) = problem {
                row["file"] = json!(p.origin);
                row["error"] = error_json(p);
                if let Some(t) = serving {
                    row["serving"] = json!(t.origin);
                }
            }
            row
        })
        .collect();
    let other: Vec<Value> = snap
        .problems
        .iter()
        .filter(|p| p.tool.is_none())
        .map(|p| json!({"file": p.origin, "message": p.message}))
        .collect();
    let shadowed: Vec<Value> = snap
        .shadowed
        .iter()
        .map(|(name, file)| json!({"library": name, "file": file, "note": "your tools import this one; built-in tools keep the built-in library of that name"}))
        .collect();
    json!({"tools": tools, "other_problems": other, "shadowed_libraries": shadowed})
}

pub(crate) fn read(snap: &Snapshot, mode: Mode, uri: &str) -> Option<ReadResourceResult> {
    if uri != SCRIPTS_URI {
        return None;
    }
    let text = serde_json::to_string_pretty(&status(snap, mode)).unwrap_or_default();
    Some(ReadResourceResult::new(vec![
        ResourceContents::text(text, SCRIPTS_URI).with_mime_type("application/json"),
    ]))
}

/// The note a tool's result carries while the newest edit of its script does not compile.
pub(crate) fn stale_note(snap: &Snapshot, tool: &str) -> Option<String> {
    let p = snap.problem_of(tool).filter(|p| p.kept_previous)?;
    let serving = snap.tools.get(tool)?;
    let (at, message) = place(p);
    let ran = if serving.origin == p.origin {
        "the previous version of that file ran".to_string()
    } else {
        format!("the version in service ({}) ran", serving.origin)
    };
    Some(format!(
        "note: the last edit of {} failed to compile at {at}: {message}; {ran}. Fix the file and save it again.",
        p.origin
    ))
}

/// Add [`stale_note`] to a result (as a last text block), when there is one.
pub(crate) fn add_stale_note(snap: &Snapshot, tool: &str, result: &mut CallToolResult) {
    if let Some(note) = stale_note(snap, tool) {
        result.content.push(ContentBlock::text(note));
    }
}

/// Why a tool that is not in service cannot be called, when its script failed to compile.
pub(crate) fn not_in_service(snap: &Snapshot, tool: &str) -> Option<String> {
    let p = snap.problem_of(tool).filter(|_| !snap.tools.contains_key(tool))?;
    let (at, message) = place(p);
    Some(format!(
        "tool '{tool}' is not in service: its script {} failed to compile at {at}: {message}. Fix the file and save it; the server loads it then.",
        p.origin
    ))
}

/// The answer to a call of a tool whose script never compiled.
pub(crate) fn not_in_service_result(tool: &str, message: String) -> CallToolResult {
    let mut r = CallToolResult::error(vec![ContentBlock::text(message.clone())]);
    r.structured_content = Some(json!({"error": ErrorKind::ScriptError.as_str(), "tool": tool, "message": message}));
    r
}
