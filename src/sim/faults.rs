//! Fault injection: rules that make matching requests slow, fail, hang, or break the way
//! real networks and proxies do. Set in the cluster file (`faults`, see [`FaultSpec`]) or
//! per test through [`super::Simulator::add_fault`].

use std::time::Duration;

use bytes::Bytes;

use super::http::{Reply, ReplyBody};
use crate::api::Method;

#[derive(Debug, Clone, PartialEq)]
pub enum FaultAction {
    /// Answer normally, after this delay.
    Latency(Duration),
    /// Answer with this status and message (PVE's error format).
    Status(u16, String),
    /// Never answer.
    Hang,
    /// `200` with a body that is not JSON.
    MalformedJson,
    /// A reverse proxy's HTML error page with this status.
    HtmlPage(u16),
    /// Start the body, then drop the connection.
    DropMidBody,
    /// `595`, as pveproxy answers for a node that is down.
    NodeOffline,
    /// `596`, as pveproxy answers when TLS to the node fails.
    NodeTls,
    /// Answer as usual, but without these fields of `data`, or of each object of a list
    /// (an answer from another release or a PVE-compatible API that leaves them out).
    Omit(Vec<String>),
    /// `200` with this as `data`: `null`, a string where a list belongs, … (a broken
    /// PVE-compatible service, or a proxy that rewrites answers).
    Data(serde_json::Value),
    /// Answer as if the request had no query or body parameters (a proxy that drops the
    /// query string).
    IgnoreParams,
    /// Close the connection without answering.
    Reset,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    /// Only this method (any when `None`).
    pub method: Option<Method>,
    /// A glob over the decoded path below `/api2/json`: `*` matches anything.
    pub path: String,
    pub action: FaultAction,
    /// How many requests it applies to (`None`: all).
    pub times: Option<usize>,
}

impl Fault {
    pub fn new(path: &str, action: FaultAction) -> Fault {
        Fault {
            method: None,
            path: path.to_string(),
            action,
            times: None,
        }
    }

    pub fn method(mut self, m: Method) -> Fault {
        self.method = Some(m);
        self
    }

    pub fn times(mut self, n: usize) -> Fault {
        self.times = Some(n);
        self
    }

    pub fn matches(&self, method: Method, path: &str) -> bool {
        self.method.is_none_or(|m| m == method) && glob(&self.path, path) && self.times != Some(0)
    }
}

/// `*` matches any run of characters; everything else matches itself.
pub fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

/// The reply a short-circuiting fault gives (`None` for the faults that change how the
/// request is answered rather than answering it).
pub fn reply(action: &FaultAction) -> Option<Reply> {
    Some(match action {
        FaultAction::Latency(_) | FaultAction::Hang | FaultAction::Omit(_) | FaultAction::IgnoreParams => return None,
        FaultAction::Reset => Reply {
            status: 200,
            reason: None,
            body: ReplyBody::Reset,
        },
        FaultAction::Data(v) => Reply::data(v.clone()),
        FaultAction::Status(code, msg) => Reply::error(*code, msg.clone()),
        FaultAction::MalformedJson => Reply {
            status: 200,
            reason: None,
            body: ReplyBody::Raw {
                content_type: "application/json;charset=UTF-8",
                bytes: Bytes::from_static(b"{\"data\": [{\"vmid\": 100,"),
            },
        },
        FaultAction::HtmlPage(code) => Reply {
            status: *code,
            reason: Some(if *code == 502 {
                "Bad Gateway".into()
            } else {
                "Service Unavailable".into()
            }),
            body: ReplyBody::Raw {
                content_type: "text/html",
                bytes: Bytes::from(format!(
                    "<html><head><title>{code}</title></head><body><center><h1>{code}</h1></center><hr><center>nginx</center></body></html>"
                )),
            },
        },
        FaultAction::DropMidBody => Reply {
            status: 200,
            reason: None,
            body: ReplyBody::Truncated {
                bytes: Bytes::from_static(b"{\"data\": [{\"vmid\": 100, \"name\": \"w"),
                claimed: 4096,
            },
        },
        FaultAction::NodeOffline => Reply::bare(595, "No route to host"),
        FaultAction::NodeTls => Reply::bare(596, "tls_process_server_certificate: certificate verify failed"),
    })
}

/// One fault of a cluster file: where it applies and what it does, as a JSON (or TOML)
/// object:
///
/// ```json
/// {"path": "/nodes/pve2/*", "method": "GET", "times": 3, "fault": "status", "status": 500, "message": "..."}
/// ```
///
/// `path` is a glob over the path below `/api2/json` (`*` matches anything); `method` and
/// `times` are optional (any method; every request). `fault` is one of `status` (with
/// `status` and `message`), `latency` (`ms`), `hang`, `malformed`, `html` (`status`, 502 by
/// default), `truncated`, `reset`, `node_offline` (595), `node_tls` (596), `omit`
/// (`fields`), `ignore_params`, `data` (`data`: the answer's `data`).
/// Fields every fault may have.
const COMMON_FIELDS: &[&str] = &["path", "method", "times", "fault"];

/// One kind of fault: its name, the fields it takes beside the common ones, which of them
/// it needs, and what it does. The parser ([`FaultSpec::fault`]) and the JSON Schema of
/// the cluster file both read this table.
struct FaultKind {
    name: &'static str,
    fields: &'static [&'static str],
    required: &'static [&'static str],
    does: &'static str,
}

const FAULT_KINDS: &[FaultKind] = &[
    FaultKind {
        name: "status",
        fields: &["status", "message"],
        required: &["status"],
        does: "answer with this HTTP status and message, as PVE's error envelope",
    },
    FaultKind {
        name: "latency",
        fields: &["ms"],
        required: &["ms"],
        does: "answer normally after this many milliseconds",
    },
    FaultKind {
        name: "hang",
        fields: &[],
        required: &[],
        does: "never answer",
    },
    FaultKind {
        name: "malformed",
        fields: &[],
        required: &[],
        does: "answer 200 with a body that is not JSON",
    },
    FaultKind {
        name: "html",
        fields: &["status"],
        required: &[],
        does: "answer with a proxy's HTML error page (status 502 by default)",
    },
    FaultKind {
        name: "truncated",
        fields: &[],
        required: &[],
        does: "drop the connection in the middle of the body",
    },
    FaultKind {
        name: "reset",
        fields: &[],
        required: &[],
        does: "reset the connection without answering",
    },
    FaultKind {
        name: "node_offline",
        fields: &[],
        required: &[],
        does: "answer 595, as pveproxy does for a node it cannot reach",
    },
    FaultKind {
        name: "node_tls",
        fields: &[],
        required: &[],
        does: "answer 596, as pveproxy does when the node's TLS fails",
    },
    FaultKind {
        name: "omit",
        fields: &["fields"],
        required: &["fields"],
        does: "leave these fields out of the answer's data",
    },
    FaultKind {
        name: "ignore_params",
        fields: &[],
        required: &[],
        does: "answer as if the request had no query parameters",
    },
    FaultKind {
        name: "data",
        fields: &["data"],
        required: &["data"],
        does: "answer 200 with this value as the data",
    },
];

fn fields_of(kind: &str) -> &'static [&'static str] {
    FAULT_KINDS.iter().find(|k| k.name == kind).map_or(&[], |k| k.fields)
}

/// The JSON Schema of a field a fault may have.
fn field_schema(field: &str) -> serde_json::Value {
    use serde_json::json;
    match field {
        "path" => {
            json!({"type": "string", "description": "a glob over the path below /api2/json (`*` matches anything), starting with '/'", "pattern": "^(/|\\*$)"})
        }
        "method" => {
            json!({"type": "string", "description": "GET, POST, PUT or DELETE (any method when absent)", "pattern": "^(?i)(get|post|put|delete)$"})
        }
        "times" => {
            json!({"type": "integer", "minimum": 0, "description": "how many matching requests get the fault (every one when absent)"})
        }
        "status" => json!({"type": "integer", "minimum": 100, "maximum": 599}),
        "message" => json!({"type": "string"}),
        "ms" => json!({"type": "integer", "minimum": 0}),
        "fields" => json!({"type": "array", "items": {"type": "string"}}),
        _ => json!({"description": "any JSON value"}),
    }
}

impl schemars::JsonSchema for FaultSpec {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "FaultSpec".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        use serde_json::{Map, Value, json};
        let variants: Vec<Value> = FAULT_KINDS
            .iter()
            .map(|k| {
                let mut props = Map::new();
                for f in COMMON_FIELDS.iter().chain(k.fields) {
                    props.insert((*f).to_string(), field_schema(f));
                }
                props.insert("fault".into(), json!({"const": k.name}));
                let mut required = vec!["path", "fault"];
                required.extend_from_slice(k.required);
                json!({
                    "description": k.does,
                    "type": "object",
                    "properties": props,
                    "required": required,
                    "additionalProperties": false,
                })
            })
            .collect();
        let schema = json!({
            "description": "A fault injected into matching requests; the first matching fault applies.",
            "oneOf": variants,
        });
        schemars::Schema::try_from(schema).unwrap_or_default()
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct FaultSpec(pub serde_json::Map<String, serde_json::Value>);

impl FaultSpec {
    /// The fault it describes, or why it is not one.
    pub fn fault(&self) -> Result<Fault, String> {
        use serde_json::Value;
        let m = &self.0;
        let str_of = |k: &str| m.get(k).and_then(Value::as_str);
        let path = str_of("path").ok_or("a fault needs \"path\" (a glob such as \"/nodes/*/status\")")?;
        if !path.starts_with('/') && path != "*" {
            return Err(format!(
                "fault path '{path}' must start with '/' (the path below /api2/json)"
            ));
        }
        let kind = str_of("fault").ok_or_else(|| format!("fault on {path} needs \"fault\""))?;
        let num = |k: &str| m.get(k).and_then(Value::as_u64);
        let status = |default: Option<u64>| -> Result<u16, String> {
            match num("status").or(default) {
                Some(c) if (100..=599).contains(&c) => Ok(c as u16),
                _ => Err(format!("fault '{kind}' on {path} needs \"status\" between 100 and 599")),
            }
        };
        let action = match kind {
            "status" => FaultAction::Status(status(None)?, str_of("message").unwrap_or("").to_string()),
            "latency" => FaultAction::Latency(std::time::Duration::from_millis(
                num("ms").ok_or_else(|| format!("fault 'latency' on {path} needs \"ms\""))?,
            )),
            "hang" => FaultAction::Hang,
            "malformed" => FaultAction::MalformedJson,
            "html" => FaultAction::HtmlPage(status(Some(502))?),
            "truncated" => FaultAction::DropMidBody,
            "reset" => FaultAction::Reset,
            "node_offline" => FaultAction::NodeOffline,
            "node_tls" => FaultAction::NodeTls,
            "omit" => {
                let fields = m
                    .get("fields")
                    .and_then(Value::as_array)
                    .and_then(|a| {
                        a.iter()
                            .map(|f| f.as_str().map(String::from))
                            .collect::<Option<Vec<_>>>()
                    })
                    .ok_or_else(|| format!("fault 'omit' on {path} needs \"fields\", a list of names"))?;
                FaultAction::Omit(fields)
            }
            "ignore_params" => FaultAction::IgnoreParams,
            "data" => FaultAction::Data(
                m.get("data")
                    .cloned()
                    .ok_or_else(|| format!("fault 'data' on {path} needs \"data\""))?,
            ),
            other => {
                let kinds: Vec<&str> = FAULT_KINDS.iter().map(|k| k.name).collect();
                return Err(format!(
                    "unknown fault '{other}' on {path}: one of {}",
                    kinds.join(", ")
                ));
            }
        };
        let allowed = fields_of(kind);
        if let Some(k) = m
            .keys()
            .find(|k| !COMMON_FIELDS.contains(&k.as_str()) && !allowed.contains(&k.as_str()))
        {
            return Err(format!("fault '{kind}' on {path} has unknown field \"{k}\""));
        }
        let method = match str_of("method") {
            None => None,
            Some(s) => Some(match s.to_ascii_uppercase().as_str() {
                "GET" => Method::Get,
                "POST" => Method::Post,
                "PUT" => Method::Put,
                "DELETE" => Method::Delete,
                _ => return Err(format!("fault on {path}: method '{s}' is not GET, POST, PUT or DELETE")),
            }),
        };
        let times = match m.get("times") {
            None => None,
            Some(v) => Some(
                v.as_u64()
                    .ok_or_else(|| format!("fault on {path}: \"times\" must be a whole number"))?
                    as usize,
            ),
        };
        Ok(Fault {
            method,
            path: path.to_string(),
            action,
            times,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob("/cluster/resources", "/cluster/resources"));
        assert!(glob("/nodes/*/qemu/*/status/*", "/nodes/pve1/qemu/100/status/start"));
        assert!(glob("*", "/anything"));
        assert!(glob("/nodes/pve3/*", "/nodes/pve3/status"));
        assert!(!glob("/nodes/pve3/*", "/nodes/pve1/status"));
        assert!(!glob("/a*b*c", "/abx"));
    }

    #[test]
    fn faults_from_a_cluster_file() {
        let spec = |v: serde_json::Value| FaultSpec(v.as_object().cloned().unwrap_or_default()).fault();
        let f = spec(serde_json::json!({"path": "/nodes/pve2/*", "method": "get", "times": 2, "fault": "status", "status": 500, "message": "boom"})).unwrap();
        assert_eq!(
            f,
            Fault::new("/nodes/pve2/*", FaultAction::Status(500, "boom".into()))
                .method(Method::Get)
                .times(2)
        );
        assert_eq!(
            spec(serde_json::json!({"path": "*", "fault": "html"})).unwrap().action,
            FaultAction::HtmlPage(502)
        );
        assert_eq!(
            spec(serde_json::json!({"path": "/version", "fault": "latency", "ms": 250}))
                .unwrap()
                .action,
            FaultAction::Latency(Duration::from_millis(250))
        );
        for (v, why) in [
            (serde_json::json!({"fault": "hang"}), "needs \"path\""),
            (
                serde_json::json!({"path": "/x", "fault": "explode"}),
                "unknown fault 'explode'",
            ),
            (
                serde_json::json!({"path": "/x", "fault": "hang", "ms": 3}),
                "unknown field \"ms\"",
            ),
            (serde_json::json!({"path": "/x", "fault": "status"}), "needs \"status\""),
            (
                serde_json::json!({"path": "/x", "fault": "reset", "method": "PATCH"}),
                "method 'PATCH'",
            ),
            (
                serde_json::json!({"path": "x", "fault": "reset"}),
                "must start with '/'",
            ),
        ] {
            let err = spec(v).unwrap_err();
            assert!(err.contains(why), "{err}");
        }
    }
}
