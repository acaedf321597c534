//! What PVE answered during one call, remembered in short, so that a script that trips over
//! an answer of the wrong shape (`null`, a string where a list belongs, a missing field) is
//! reported as an unexpected answer from PVE or a proxy, naming the endpoint and what it
//! returned, instead of as the type error it caused inside the script.

use std::collections::VecDeque;

use rhai::{AST, EvalAltResult};
use serde_json::Value;

use crate::api::{ApiPath, Method};

/// Answers kept per call (the most recent ones).
const KEPT: usize = 16;

/// Keys of an object named in a description.
const KEYS_SHOWN: usize = 6;

/// Characters of a string answer shown.
const STRING_SHOWN: usize = 60;

/// One answer, described.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Answer {
    pub method: Method,
    pub path: String,
    /// What came back, in words: "null (no data)", "the string \"abc\"", "a list of 3 objects".
    pub shape: String,
    /// A shape a PVE read hardly ever has (null, a bare string or a list of non-objects).
    pub odd: bool,
}

impl Answer {
    pub(crate) fn of(method: Method, path: &ApiPath, v: &Value) -> Answer {
        Answer {
            method,
            path: path.to_string(),
            shape: shape(v),
            odd: odd(method, v),
        }
    }
}

/// The answers of one call.
#[derive(Debug, Default)]
pub(crate) struct Answers {
    recent: VecDeque<Answer>,
    last_odd: Option<Answer>,
}

impl Answers {
    pub(crate) fn record(&mut self, answer: Answer) {
        if answer.odd {
            self.last_odd = Some(answer.clone());
        }
        if self.recent.len() == KEPT {
            self.recent.pop_front();
        }
        self.recent.push_back(answer);
    }

    /// The answer a type error is most likely about: the last odd one, else the last one.
    pub(crate) fn suspect(&self) -> Option<&Answer> {
        self.last_odd.as_ref().or(self.recent.back())
    }
}

/// A JSON value in a few words.
pub(crate) fn shape(v: &Value) -> String {
    match v {
        Value::Null => "null (no data)".into(),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) => {
            let shown: String = s.chars().take(STRING_SHOWN).collect();
            let more = if shown.len() < s.len() { "…" } else { "" };
            format!("the string {:?}{more}", shown)
        }
        Value::Array(items) if items.is_empty() => "an empty list".into(),
        Value::Array(items) => {
            let first = kind(&items[0]);
            if items.iter().all(|i| kind(i) == first) {
                format!("a list of {} {first}s", items.len())
            } else {
                format!("a list of {} items of mixed kinds", items.len())
            }
        }
        Value::Object(m) if m.is_empty() => "an empty object".into(),
        Value::Object(m) => {
            let keys: Vec<&str> = m.keys().take(KEYS_SHOWN).map(String::as_str).collect();
            if m.len() > KEYS_SHOWN {
                format!("an object with keys {}, … ({} in all)", keys.join(", "), m.len())
            } else {
                format!("an object with keys {}", keys.join(", "))
            }
        }
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "object",
    }
}

/// PVE's reads answer with objects or lists of objects; the few that answer with a string
/// answer with a number in it (`/cluster/nextid`).
fn odd(method: Method, v: &Value) -> bool {
    if method != Method::Get {
        return false;
    }
    match v {
        Value::Null | Value::Bool(_) => true,
        Value::String(s) => s.is_empty() || !s.trim().bytes().all(|b| b.is_ascii_digit()),
        Value::Array(items) => items.iter().any(|i| !i.is_object()),
        Value::Number(_) | Value::Object(_) => false,
    }
}

/// Whether a script error is a type error: the kind of failure a value of an unexpected
/// shape causes (a loop over null, a field of a string, a function given null).
/// A call of a function that exists under no signature at all is a plain script error.
pub(crate) fn is_type_error(err: &EvalAltResult, ast: &AST) -> bool {
    match err {
        EvalAltResult::ErrorInFunctionCall(_, _, inner, _) | EvalAltResult::ErrorInModule(_, inner, _) => {
            is_type_error(inner, ast)
        }
        EvalAltResult::ErrorMismatchDataType(..)
        | EvalAltResult::ErrorMismatchOutputType(..)
        | EvalAltResult::ErrorFor(..)
        | EvalAltResult::ErrorIndexingType(..)
        | EvalAltResult::ErrorPropertyNotFound(..)
        | EvalAltResult::ErrorArrayBounds(..)
        | EvalAltResult::ErrorStringBounds(..)
        | EvalAltResult::ErrorBitFieldBounds(..)
        | EvalAltResult::ErrorDotExpr(..) => true,
        EvalAltResult::ErrorFunctionNotFound(sig, _) => known_function(sig, ast),
        EvalAltResult::ErrorRuntime(v, _) => v
            .read_lock::<rhai::Map>()
            .and_then(|m| {
                m.get("kind")
                    .map(|k| k.to_string() == super::ErrorKind::TypeMismatch.as_str())
            })
            .unwrap_or(false),
        _ => false,
    }
}

/// Functions and methods of Rhai's standard library that scripts apply to PVE answers;
/// "not found" for one of them means it was given a value of another type.
const STANDARD: &[&str] = &[
    "len",
    "is_empty",
    "contains",
    "filter",
    "map",
    "reduce",
    "sort",
    "for_each",
    "some",
    "all",
    "retain",
    "drain",
    "index_of",
    "find",
    "find_map",
    "keys",
    "values",
    "split",
    "to_upper",
    "to_lower",
    "trim",
    "starts_with",
    "ends_with",
    "sub_string",
    "replace",
    "to_string",
    "to_int",
    "to_float",
    "parse_int",
    "parse_float",
    "push",
    "append",
    "insert",
    "remove",
    "get",
    "set",
    "pad",
    "extract",
    "chop",
    "truncate",
    "reverse",
    "dedup",
    "abs",
    "round",
    "floor",
    "ceiling",
    "min",
    "max",
    "sum",
    "type_of",
    "+",
    "-",
    "*",
    "/",
    "%",
    "<",
    ">",
    "<=",
    ">=",
    "==",
    "!=",
    "in",
    "+=",
    "-=",
    "&",
    "|",
    "^",
    "!",
];

/// `len (())`: a function given a value of a type it does not take (null, a character of
/// a string iterated by mistake), a property of something that is not a map, or a known
/// function under another signature. A name that exists nowhere is a plain script error.
fn known_function(sig: &str, ast: &AST) -> bool {
    let Some((name, args)) = sig.split_once(" (") else {
        return false;
    };
    let name = name.trim();
    let bare = name.rsplit("::").next().unwrap_or(name);
    let args: Vec<&str> = args.trim_end_matches(')').split(", ").map(str::trim).collect();
    bare.starts_with("get$")
        || bare.starts_with("set$")
        || bare.starts_with("index$")
        || args.iter().any(|a| *a == "()" || *a == "char")
        || STANDARD.contains(&bare)
        || name.starts_with("pve::")
        || ast.iter_functions().any(|f| f.name == bare)
}

/// What a type error says was expected, in words, when it says.
pub(crate) fn expected(err: &EvalAltResult) -> Option<String> {
    match err {
        EvalAltResult::ErrorInFunctionCall(_, _, inner, _) | EvalAltResult::ErrorInModule(_, inner, _) => {
            expected(inner)
        }
        EvalAltResult::ErrorFor(..) => Some("a list".into()),
        EvalAltResult::ErrorMismatchDataType(want, _, _) | EvalAltResult::ErrorMismatchOutputType(want, _, _) => {
            Some(type_words(want).into())
        }
        _ => None,
    }
}

fn type_words(rhai_type: &str) -> &str {
    match rhai_type {
        "map" | "Map" => "an object",
        "array" | "Array" => "a list",
        "string" | "ImmutableString" | "&str" => "a string",
        "i64" | "INT" | "int" => "an integer",
        "f64" | "FLOAT" | "float" => "a number",
        "bool" => "a boolean",
        "()" => "nothing",
        other => other,
    }
}

/// The sentence for a call that could not use what PVE answered.
pub(crate) fn sentence(tool: &str, a: &Answer, expected: Option<&str>) -> String {
    let want = match expected {
        Some(w) => format!("{w} was expected"),
        None => "a value it needs is missing or has another type".into(),
    };
    let advice = "Check that PVE_HOST points at PVE itself (port 8006) rather than a proxy or another service, and that PVE runs a supported version (8 or 9); retry in a little while if a proxy or PVE was restarting.";
    if a.odd {
        format!(
            "PVE, or a proxy in front of it, sent something unexpected: {} {} answered with {}, which {tool} cannot use ({want}). {advice}",
            a.method, a.path, a.shape
        )
    } else {
        format!(
            "{tool} could not use what {} {} answered ({}): {want}. PVE, or a proxy in front of it, sent something unexpected (an answer of another PVE version or of a PVE-compatible service), or the tool does not handle this answer. {advice}",
            a.method, a.path, a.shape
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn shapes_in_words() {
        assert_eq!(shape(&json!(null)), "null (no data)");
        assert_eq!(shape(&json!("abc")), "the string \"abc\"");
        assert_eq!(shape(&json!([{"a": 1}, {"b": 2}])), "a list of 2 objects");
        assert_eq!(shape(&json!(["a", "b"])), "a list of 2 strings");
        assert_eq!(shape(&json!([1, "b"])), "a list of 2 items of mixed kinds");
        assert_eq!(shape(&json!({"b": 1, "a": 2})), "an object with keys a, b");
        let long = "x".repeat(100);
        assert!(shape(&json!(long)).ends_with("\"…"));
    }

    #[test]
    fn odd_reads() {
        assert!(odd(Method::Get, &json!(null)));
        assert!(odd(Method::Get, &json!("<html>")));
        assert!(!odd(Method::Get, &json!("101")));
        assert!(odd(Method::Get, &json!(["a"])));
        assert!(!odd(Method::Get, &json!([{"a": 1}])));
        assert!(!odd(Method::Post, &json!(null)));
    }

    #[test]
    fn the_last_odd_answer_is_the_suspect() {
        let p = |s: &str| ApiPath::parse(s).unwrap();
        let mut a = Answers::default();
        assert!(a.suspect().is_none());
        a.record(Answer::of(Method::Get, &p("/nodes"), &json!([{"node": "a"}])));
        assert_eq!(a.suspect().unwrap().path, "/nodes");
        a.record(Answer::of(Method::Get, &p("/cluster/resources"), &json!(null)));
        a.record(Answer::of(Method::Get, &p("/version"), &json!({"version": "8"})));
        assert_eq!(a.suspect().unwrap().path, "/cluster/resources");
    }
}
