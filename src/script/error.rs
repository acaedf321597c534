//! Script errors with their place: `file:line:col: message`.

use rhai::{EvalAltResult, Position};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{origin}{}: {message}", fmt_pos(*line, *col))]
pub struct ScriptError {
    pub origin: String,
    pub line: Option<usize>,
    pub col: Option<usize>,
    pub message: String,
}

fn fmt_pos(line: Option<usize>, col: Option<usize>) -> String {
    match (line, col) {
        (Some(l), Some(c)) => format!(":{l}:{c}"),
        (Some(l), None) => format!(":{l}"),
        _ => String::new(),
    }
}

impl ScriptError {
    pub fn at(origin: &str, pos: Position, message: String) -> ScriptError {
        ScriptError {
            origin: origin.to_string(),
            line: pos.line(),
            col: pos.position(),
            message,
        }
    }

    /// Find the innermost error (inside function calls and modules) and report its place.
    pub fn from_eval(default_origin: &str, err: &EvalAltResult) -> ScriptError {
        let mut origin = default_origin.to_string();
        let mut calls = Vec::new();
        let mut e = err;
        loop {
            match e {
                EvalAltResult::ErrorInFunctionCall(name, src, inner, _) => {
                    if !src.is_empty() {
                        origin = src.clone();
                    }
                    calls.push(name.clone());
                    e = inner;
                }
                EvalAltResult::ErrorInModule(name, inner, _) => {
                    if !name.is_empty() {
                        origin = name.clone();
                    }
                    e = inner;
                }
                _ => break,
            }
        }
        let mut message = match e {
            EvalAltResult::ErrorRuntime(value, _) => runtime_message(value),
            // Stopped by the host, which said why.
            EvalAltResult::ErrorTerminated(why, _) if why.is_string() => why.to_string(),
            other => super::compile::bare_message(other),
        };
        let calls: Vec<_> = calls.into_iter().filter(|c| c != super::compile::ENTRY).collect();
        if !calls.is_empty() {
            message.push_str(&format!(" (in {})", calls.join(" → ")));
        }
        ScriptError::at(&origin, e.position(), message)
    }
}

/// Characters kept of a thrown value's text.
pub const MAX_THROWN_CHARS: usize = 2_000;

/// A thrown value: a PVE error map says `message`; anything else is shown as it is, shortened.
fn runtime_message(value: &rhai::Dynamic) -> String {
    if super::convert::check_depth(value).is_err() {
        return format!(
            "the script threw a value nested more than {} levels deep",
            super::convert::MAX_DEPTH
        );
    }
    let text = match value.read_lock::<rhai::Map>() {
        Some(map) if map.contains_key("message") => map.get("message").map(|m| m.to_string()).unwrap_or_default(),
        _ => value.to_string(),
    };
    shorten(text)
}

fn shorten(text: String) -> String {
    match text.char_indices().nth(MAX_THROWN_CHARS) {
        Some((cut, _)) => format!("{}… (shortened)", &text[..cut]),
        None => text,
    }
}
