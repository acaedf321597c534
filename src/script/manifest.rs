//! A tool's manifest: the literal `const TOOL = #{ ... };` at the top of its script.
//!
//! ```rhai
//! const TOOL = #{
//!     description: "Live status of one guest.",
//!     class: "read",                       // read | write | destructive | exec | admin,
//!                                          // or a list: ["write", "exec"]
//!     title: "Guest status",               // optional
//!     idempotent: true,                    // optional
//!     params: #{                           // JSON Schema of the arguments
//!         "type": "object",
//!         "properties": #{ "vmid": #{ "type": "integer", "minimum": 100 } },
//!         "required": ["vmid"],
//!     },
//!     output: #{ "type": "object" },       // optional output schema
//! };
//! ```
//!
//! The core owns `confirm` and `confirm_token`: they are added to the schema of every tool
//! whose calls may need a confirmation, and a script may not declare them.

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use thiserror::Error;

use crate::gate::{Capabilities, Capability};

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Manifest {
    pub name: String,
    pub description: String,
    /// The capabilities the tool needs; it is listed only when all are enabled.
    pub class: Capabilities,
    pub title: Option<String>,
    pub idempotent: Option<bool>,
    /// Every write of the tool is planned first and needs a confirmation (`confirm: true` in
    /// the manifest), not only its destructive requests.
    pub confirm_writes: bool,
    /// The input schema the arguments are checked against (with `confirm` and
    /// `confirm_token` where [`may_need_confirmation`]); the listing drops those two where
    /// the client does not use them.
    pub input_schema: Map<String, Value>,
    pub output_schema: Option<Map<String, Value>>,
}

/// What a script may write in its `const TOOL` map. [`Manifest::json_schema`] is derived from
/// this type, so the schema editors check against and the parser cannot drift apart; the
/// checks across fields (name and file name, reserved parameters, `confirm` on a read tool)
/// are [`Manifest::from_value`]'s.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(
    title = "pve-mcp tool manifest",
    description = "The `const TOOL = #{ ... };` map at the top of a pve-mcp tool script (SCRIPTING.md)."
)]
struct RawManifest {
    /// The tool name. Optional: the file name (without `.rhai`) is the tool name, and a
    /// name given here must be the same.
    #[serde(default)]
    #[schemars(length(min = 1, max = 64), regex(pattern = r"^[A-Za-z0-9_-]+$"))]
    name: Option<String>,
    /// What the tool does, its side effects, and when to prefer another tool; the host's
    /// model reads it to choose.
    #[schemars(length(min = 1))]
    description: String,
    /// What the tool may do: one class or a list of them. It is listed only when the server
    /// allows all of them (read-only mode, PVE_MCP_ENABLE_EXEC, PVE_MCP_ENABLE_ADMIN).
    #[schemars(schema_with = "class_schema")]
    class: Value,
    /// A short human title for hosts that show one.
    #[serde(default)]
    title: Option<String>,
    /// True when calling twice with the same arguments does no more than calling once.
    #[serde(default)]
    idempotent: Option<bool>,
    /// True: every write of the tool is planned first and needs a confirmation, not only
    /// its destructive requests. Not for read tools.
    #[serde(default)]
    confirm: Option<bool>,
    /// JSON Schema of the arguments (`"type": "object"`); `confirm` and `confirm_token` are
    /// reserved (the core adds them where needed).
    #[serde(default)]
    #[schemars(schema_with = "object_schema")]
    params: Option<Value>,
    /// JSON Schema of the result (`"type": "object"`), checked on every call.
    #[serde(default)]
    #[schemars(schema_with = "typed_object_schema")]
    output: Option<Value>,
}

/// `"write"` or `["write", "exec"]`, the names taken from [`Capability::ALL`].
fn class_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let names: Vec<&str> = Capability::ALL.iter().map(|c| c.as_str()).collect();
    schemars::json_schema!({
        "oneOf": [
            {"type": "string", "enum": names},
            {"type": "array", "items": {"type": "string", "enum": names}, "minItems": 1},
        ]
    })
}

/// A JSON Schema of an object with its `"type": "object"` said.
fn typed_object_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "properties": {"type": {"const": "object"}},
        "required": ["type"],
    })
}

/// A JSON Schema of an object: a map with `"type": "object"` (or no type).
fn object_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "properties": {"type": {"const": "object"}},
    })
}

#[derive(Debug, Error, PartialEq)]
pub(crate) enum ManifestError {
    #[error("the script has no `const TOOL = #{{ ... }};` manifest (it must be a literal map at the top level)")]
    Missing,
    #[error("TOOL: {0}")]
    Invalid(String),
}

pub(crate) const CONFIRM_TOKEN_DESCRIPTION: &str =
    "With confirm=true: the plan's token; only what it showed is then done, and not if a guest changed since.";
pub(crate) const CONFIRM_DESCRIPTION: &str = "true: carry it out. Without it nothing is destroyed: the call answers with a plan (what is lost, the requests, a confirm_token), or goes ahead if it loses nothing.";
pub(crate) const CONFIRM_WRITES_DESCRIPTION: &str = "Set to true to carry out this operation. Without it nothing is changed: the tool answers with a plan (what would be done, the exact requests, and a confirm_token).";

/// Can calls of this tool need a confirmation? Destructive tools and `confirm: true` tools
/// always; exec and admin tools where the server confirms those. Their schema accepts
/// `confirm` and `confirm_token`; the listing shows them where the client uses them.
pub(crate) fn may_need_confirmation(class: Capabilities, confirm_writes: bool) -> bool {
    confirm_writes
        || [Capability::Destructive, Capability::Exec, Capability::Admin]
            .iter()
            .any(|c| class.has(*c))
}

/// Is `name` usable as an MCP tool name?
pub(crate) fn valid_tool_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 64 && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

impl Manifest {
    /// The JSON Schema of a `const TOOL` map (`pve-mcp schema manifest`).
    pub(crate) fn json_schema() -> Value {
        serde_json::to_value(schemars::schema_for!(RawManifest)).unwrap_or_default()
    }

    /// Build the manifest from the `TOOL` value (already converted to JSON).
    pub(crate) fn from_value(stem: &str, value: Value) -> Result<Manifest, ManifestError> {
        Manifest::read(stem, value, true)
    }

    /// As [`Manifest::from_value`], but `params` is not checked against the JSON Schema
    /// meta-schema here: for a tool whose body is built later, whose argument validator
    /// checks it then (the first check builds the meta-schema's validator, a few
    /// milliseconds a start-up with only built-in tools need not spend).
    pub(crate) fn from_value_deferred(stem: &str, value: Value) -> Result<Manifest, ManifestError> {
        Manifest::read(stem, value, false)
    }

    fn read(stem: &str, value: Value, check_schema: bool) -> Result<Manifest, ManifestError> {
        let invalid = |s: String| ManifestError::Invalid(s);
        let raw: RawManifest = serde_json::from_value(value).map_err(|e| invalid(e.to_string()))?;
        if !valid_tool_name(stem) {
            return Err(invalid(format!(
                "the file name '{stem}' is not a valid tool name (letters, digits, '_' and '-', at most 64)"
            )));
        }
        if let Some(name) = &raw.name
            && name != stem
        {
            return Err(invalid(format!(
                "name '{name}' differs from the file name '{stem}'; the file name is the tool name"
            )));
        }
        if raw.description.trim().is_empty() {
            return Err(invalid(
                "description is empty; say what the tool does, its side effects, and when to prefer another tool"
                    .into(),
            ));
        }
        let class = capabilities(&raw.class).map_err(invalid)?;
        let confirm_writes = raw.confirm.unwrap_or(false);
        if confirm_writes && class.is_read() {
            return Err(invalid(
                "confirm: true is for tools that change something; a read tool has nothing to confirm".into(),
            ));
        }
        let input_schema = input_schema(raw.params, class, confirm_writes, check_schema).map_err(invalid)?;
        let output_schema = match raw.output {
            None => None,
            Some(Value::Object(o)) if o.get("type") == Some(&json!("object")) => Some(o),
            Some(_) => return Err(invalid("output must be a JSON Schema with \"type\": \"object\"".into())),
        };
        Ok(Manifest {
            name: stem.to_string(),
            description: raw.description.trim().to_string(),
            class,
            title: raw.title,
            idempotent: raw.idempotent,
            confirm_writes,
            input_schema,
            output_schema,
        })
    }
}

/// `"write"` or `["write", "exec"]`.
fn capabilities(v: &Value) -> Result<Capabilities, String> {
    const KNOWN: &str = "read, write, destructive, exec, admin";
    let one = |v: &Value| -> Result<Capability, String> {
        let name = v.as_str().ok_or_else(|| format!("class names are strings, got {v}"))?;
        Capability::parse(name).ok_or_else(|| format!("class '{name}' is not one of {KNOWN}"))
    };
    match v {
        Value::Array(items) if items.is_empty() => Err(format!("class is an empty list; name one or more of {KNOWN}")),
        Value::Array(items) => Ok(Capabilities::of(&items.iter().map(one).collect::<Result<Vec<_>, _>>()?)),
        other => Ok(Capabilities::of(&[one(other)?])),
    }
}

fn input_schema(
    params: Option<Value>,
    class: Capabilities,
    confirm_writes: bool,
    check_schema: bool,
) -> Result<Map<String, Value>, String> {
    let mut schema = match params {
        None => Map::new(),
        Some(Value::Object(o)) => o,
        Some(_) => return Err("params must be a JSON Schema object map".into()),
    };
    match schema.get("type") {
        None => {
            schema.insert("type".into(), json!("object"));
        }
        Some(t) if t == "object" => {}
        Some(t) => return Err(format!("params must have \"type\": \"object\" (got {t})")),
    }
    let props = schema.entry("properties").or_insert_with(|| json!({}));
    let Value::Object(props) = props else {
        return Err("params.properties must be a map".into());
    };
    for reserved in ["confirm", "confirm_token"] {
        if props.contains_key(reserved) {
            return Err(format!(
                "'{reserved}' is reserved: the core adds it to every tool that needs a confirmation"
            ));
        }
    }
    if may_need_confirmation(class, confirm_writes) {
        let description = if confirm_writes || !class.has(Capability::Destructive) {
            CONFIRM_WRITES_DESCRIPTION
        } else {
            CONFIRM_DESCRIPTION
        };
        props.insert("confirm".into(), json!({"type": "boolean", "description": description}));
        props.insert(
            "confirm_token".into(),
            // Its length is bounded where it is read (`confirm::token`).
            json!({"type": "string", "description": CONFIRM_TOKEN_DESCRIPTION}),
        );
    }
    if let Some(required) = schema.get("required") {
        let Some(list) = required.as_array() else {
            return Err("params.required must be a list of property names".into());
        };
        for r in list {
            let known = r.as_str().is_some_and(|name| schema["properties"].get(name).is_some());
            if !known {
                return Err(format!("params.required names {r}, which is not in params.properties"));
            }
        }
    }
    // A typo in an argument name should be an error, not silently ignored.
    schema.entry("additionalProperties").or_insert(json!(false));
    // Against the meta-schema only; the validator itself is built with the tool's body.
    if check_schema {
        jsonschema::meta::validate(&Value::Object(schema.clone()))
            .map_err(|e| format!("params is not a valid JSON Schema: {e}"))?;
    }
    Ok(schema)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_a_destructive_manifest() {
        let m = Manifest::from_value(
            "pve_vm_delete",
            json!({"description": "Delete.", "class": "destructive",
                   "params": {"type": "object", "properties": {"vmid": {"type": "integer"}}, "required": ["vmid"]}}),
        )
        .unwrap();
        assert_eq!(m.class, Capabilities::of(&[Capability::Destructive]));
        assert_eq!(m.input_schema["properties"]["confirm"]["type"], "boolean");
        assert_eq!(m.input_schema["additionalProperties"], false);
    }

    #[test]
    fn rejects_bad_manifests() {
        let cases = [
            (json!({"description": "x", "class": "root"}), "class 'root'"),
            (json!({"description": "x", "class": []}), "empty list"),
            (
                json!({"description": "x", "class": ["write", 1]}),
                "class names are strings",
            ),
            (json!({"description": " ", "class": "read"}), "description is empty"),
            (
                json!({"description": "x", "class": "read", "name": "other"}),
                "differs from the file name",
            ),
            (
                json!({"description": "x", "class": "read", "params": {"type": "array"}}),
                "\"type\": \"object\"",
            ),
            (
                json!({"description": "x", "class": "read", "params": {"properties": {}, "required": ["vmid"]}}),
                "not in params.properties",
            ),
            (
                json!({"description": "x", "class": "destructive", "params": {"properties": {"confirm": {"type": "boolean"}}}}),
                "reserved",
            ),
            (
                json!({"description": "x", "class": "read", "params": {"properties": {"a": {"type": "no-such-type"}}}}),
                "not a valid JSON Schema",
            ),
            (
                json!({"description": "x", "class": "read", "descripton": "typo"}),
                "unknown field `descripton`",
            ),
        ];
        for (value, want) in cases {
            let err = Manifest::from_value("t", value.clone()).unwrap_err().to_string();
            assert!(err.contains(want), "{value}: {err}");
        }
        let err = Manifest::from_value("bad name", json!({"description": "x", "class": "read"})).unwrap_err();
        assert!(err.to_string().contains("'bad name' is not a valid tool name"), "{err}");
    }

    #[test]
    fn classes_are_sets() {
        let m = Manifest::from_value("t", json!({"description": "x", "class": ["write", "exec"]})).unwrap();
        assert_eq!(m.class, Capabilities::of(&[Capability::Write, Capability::Exec]));
        // Accepted, for servers that confirm guest commands; listed only where used.
        assert_eq!(m.input_schema["properties"]["confirm"]["type"], "boolean");
        let m = Manifest::from_value("t", json!({"description": "x", "class": "write"})).unwrap();
        assert!(m.input_schema["properties"].get("confirm").is_none());
        let m = Manifest::from_value("t", json!({"description": "x", "class": ["admin", "destructive"]})).unwrap();
        assert_eq!(m.input_schema["properties"]["confirm"]["type"], "boolean");
        let m = Manifest::from_value("t", json!({"description": "x", "class": "read"})).unwrap();
        assert!(m.class.is_read());
    }

    /// The `TOOL` map of every built-in script, as the compiler reads it.
    fn builtin_manifests() -> Vec<(String, Value)> {
        let engine = crate::script::sandbox::engine(std::sync::Arc::new(|_| {}));
        crate::registry::sources::builtin()
            .into_iter()
            .filter_map(|f| {
                let stem = f.tool_name()?.to_string();
                let ast = engine.compile(&*f.text).unwrap();
                let (_, _, tool) = ast
                    .iter_literal_variables(true, false)
                    .find(|(n, _, _)| *n == "TOOL")
                    .unwrap();
                Some((stem, rhai::serde::from_dynamic::<Value>(&tool).unwrap()))
            })
            .collect()
    }

    #[test]
    fn the_schema_accepts_what_the_parser_accepts_and_refuses_what_it_refuses_by_shape() {
        let schema = Manifest::json_schema();
        let validator = jsonschema::validator_for(&schema).unwrap();
        let builtins = builtin_manifests();
        assert!(builtins.len() >= 24, "{} built-in tools", builtins.len());
        let good = [
            json!({"description": "x", "class": "read"}),
            json!({"name": "t", "description": "x", "class": ["write", "exec"], "title": "T", "idempotent": true,
                   "confirm": true, "params": {"properties": {"a": {"type": "string"}}}, "output": {"type": "object"}}),
            json!({"description": "x", "class": ["admin", "destructive"], "params": {"type": "object"}}),
        ];
        for (stem, value) in builtins
            .iter()
            .map(|(s, v)| (s.as_str(), v.clone()))
            .chain(good.into_iter().map(|v| ("t", v)))
        {
            Manifest::from_value(stem, value.clone()).unwrap_or_else(|e| panic!("{stem}: {e}"));
            let errors: Vec<String> = validator.iter_errors(&value).map(|e| e.to_string()).collect();
            assert!(
                errors.is_empty(),
                "{stem}: the schema refuses what the parser takes: {errors:?}"
            );
        }
        // What is wrong in shape, the schema says too (the checks across fields are the
        // parser's alone).
        let bad = [
            json!({"class": "read"}),
            json!({"description": "x"}),
            json!({"description": "", "class": "read"}),
            json!({"description": "x", "class": "root"}),
            json!({"description": "x", "class": []}),
            json!({"description": "x", "class": ["write", 1]}),
            json!({"description": "x", "class": "read", "name": "bad name"}),
            json!({"description": "x", "class": "read", "params": {"type": "array"}}),
            json!({"description": "x", "class": "read", "params": "vmid"}),
            json!({"description": "x", "class": "read", "output": {"properties": {}}}),
            json!({"description": "x", "class": "read", "idempotent": "yes"}),
            json!({"description": "x", "class": "read", "descripton": "typo"}),
        ];
        for value in bad {
            let parsed = Manifest::from_value("t", value.clone());
            assert!(parsed.is_err(), "{value}: the parser takes it");
            assert!(
                !validator.is_valid(&value),
                "{value}: the schema takes what the parser refuses ({:?})",
                parsed.err()
            );
        }
        // Every class name is in the schema.
        let text = schema.to_string();
        for c in Capability::ALL {
            assert!(text.contains(&format!("\"{c}\"")), "{c} missing from {text}");
        }
    }
}
