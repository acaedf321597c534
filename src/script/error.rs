//! Script errors with their place: `file:line:col: message`.

use rhai::{EvalAltResult, Position};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{origin}{}: {message}", fmt_pos(*line, *col))]
pub(crate) struct ScriptError {
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
    pub(crate) fn at(origin: &str, pos: Position, message: String) -> ScriptError {
        ScriptError {
            origin: origin.to_string(),
            line: pos.line(),
            col: pos.position(),
            message,
        }
    }

    /// Find the innermost error (inside function calls and modules) and report its place.
    pub(crate) fn from_eval(default_origin: &str, err: &EvalAltResult) -> ScriptError {
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
            other => describe(other),
        };
        let calls: Vec<_> = calls.into_iter().filter(|c| c != super::compile::ENTRY).collect();
        if !calls.is_empty() {
            message.push_str(&format!(" (in {})", calls.join(" → ")));
        }
        ScriptError::at(&origin, e.position(), message)
    }
}

/// The `kind` of the map a script threw (or let through, like a PVE error), if it threw one.
pub(crate) fn thrown_kind(err: &EvalAltResult) -> Option<String> {
    let mut e = err;
    while let EvalAltResult::ErrorInFunctionCall(_, _, i, _) | EvalAltResult::ErrorInModule(_, i, _) = e {
        e = i;
    }
    match e {
        EvalAltResult::ErrorRuntime(v, _) => v.read_lock::<rhai::Map>()?.get("kind").map(|k| k.to_string()),
        _ => None,
    }
}

/// Characters kept of a thrown value's text.
pub(crate) const MAX_THROWN_CHARS: usize = 2_000;

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

/// A Rhai error in words an author understands; Rhai's own text for the rest.
pub(crate) fn describe(e: &EvalAltResult) -> String {
    match e {
        EvalAltResult::ErrorFunctionNotFound(sig, _) => function_not_found(sig),
        EvalAltResult::ErrorVariableNotFound(name, _) => format!(
            "{name} is not defined here: a fn sees only its parameters and its own variables (a top-level constant is read as global::{name})"
        ),
        EvalAltResult::ErrorMismatchDataType(expected, actual, _) if !expected.is_empty() => {
            format!("expected {} but got {}", type_words(expected), type_words(actual))
        }
        EvalAltResult::ErrorIndexingType(ty, _) => {
            let ty = ty.split_once(" [").map(|(t, _)| t).unwrap_or(ty);
            format!(
                "{} cannot be indexed with [...] (arrays take an integer index, maps a string key)",
                capitalized(&type_words(ty))
            )
        }
        EvalAltResult::ErrorFor(_) => "a for loop needs an array, a range or a string to go through".into(),
        other => super::compile::bare_message(other),
    }
}

/// `split ((), &str | ImmutableString | String)` → "no function split takes (() …, a string)".
fn function_not_found(sig: &str) -> String {
    let Some((name, rest)) = sig.split_once(" (") else {
        return format!("no function {sig} exists");
    };
    let inner = rest.strip_suffix(')').unwrap_or(rest);
    let args: Vec<&str> = if inner.trim().is_empty() {
        Vec::new()
    } else {
        split_types(inner)
    };
    let words: Vec<String> = args.iter().map(|a| type_words(a)).collect();
    let shown = if words.is_empty() {
        "no arguments".to_string()
    } else {
        format!("({})", words.join(", "))
    };
    let mut msg = format!("no function {name} takes {shown}");
    if let Some(arities) = super::lint::native_arities(name) {
        msg.push_str(&format!(
            "; {name} exists, taking {arities} (a method counts the value before the dot)"
        ));
    } else if !name.contains("::") {
        msg.push_str(&format!(
            "; {name} is not a function of Rhai or of this script (pve:: functions are called as pve::{name})"
        ));
    }
    if args.iter().any(|a| a.trim() == "()") {
        msg.push_str(
            ". One of the values is () (nothing): what a missing map field or a fn without a result gives; check the field's name",
        );
    }
    msg
}

/// Split `a, b | c, d` at the top-level commas.
fn split_types(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0i32, 0usize);
    for (i, c) in s.char_indices() {
        match c {
            '(' | '<' | '[' => depth += 1,
            ')' | '>' | ']' => depth -= 1,
            ',' if depth == 0 => {
                out.push(s[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(s[start..].trim());
    out
}

/// A Rhai type name in words: `i64` → "an integer".
pub(crate) fn type_words(ty: &str) -> String {
    let ty = ty.trim();
    let ty = ty.strip_prefix("&mut ").unwrap_or(ty);
    if ty.contains("ImmutableString") || ty.contains("&str") || ty == "string" || ty == "String" {
        return "a string".into();
    }
    let word = match ty.rsplit("::").next().unwrap_or(ty) {
        "()" => "() (nothing)",
        "i64" | "i32" | "int" | "INT" => "an integer",
        "f64" | "f32" | "float" | "FLOAT" => "a decimal number",
        "bool" => "a boolean",
        "char" => "a character",
        "Array" | "array" => "an array",
        "Map" | "map" => "a map",
        "Blob" | "blob" => "a blob",
        "FnPtr" | "Fn" => "a function pointer",
        "Dynamic" | "?" => "any value",
        "timestamp" | "Instant" => "a timestamp",
        "range" | "Range<i64>" | "RangeInclusive<i64>" => "a range",
        other => return format!("a value of type {other}"),
    };
    word.into()
}

fn capitalized(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rhai_jargon_becomes_words() {
        let m = function_not_found("split ((), &str | ImmutableString | String)");
        assert!(
            m.starts_with("no function split takes (() (nothing), a string); split exists, taking"),
            "{m}"
        );
        assert!(m.contains("missing map field"), "{m}");
        let m = function_not_found("frobnicate (i64)");
        assert!(
            m.starts_with("no function frobnicate takes (an integer); frobnicate is not a function"),
            "{m}"
        );
        assert_eq!(type_words("rhai::Map"), "a map");
        assert_eq!(type_words("&mut array"), "an array");
    }

    #[test]
    fn runtime_errors_are_rewritten() {
        let engine = crate::script::sandbox::engine(std::sync::Arc::new(|_| {}));
        let err = engine
            .eval::<rhai::Dynamic>("let m = #{}; m.name.split(\" \")")
            .unwrap_err();
        let e = ScriptError::from_eval("t.rhai", &err);
        assert!(
            e.message
                .starts_with("no function split takes (() (nothing), a string)"),
            "{e}"
        );
        let err = engine.eval::<rhai::Dynamic>("fn f() { X } f()").unwrap_err();
        let e = ScriptError::from_eval("t.rhai", &err);
        assert!(e.message.starts_with("X is not defined here"), "{e}");
    }
}
