//! Classify one request: find its endpoint in the table (`endpoints.txt`), apply the
//! endpoint's inspector, then the rules that hold for every endpoint.
//!
//! Rules for every request, whatever the endpoint:
//! - parameter names are PVE names (`[A-Za-z][A-Za-z0-9_-]*`): nothing else is sent;
//! - `skiplock` is forbidden (PVE lets only root bypass a guest's lock);
//! - a change that sets a backup retention (`prune-backups`, `maxfiles`) is destructive,
//!   since pruning then deletes older backups.

use serde_json::{Map, Value};

use super::capability::{Capabilities, Capability};
use super::inspect::{self, Deny};
use super::table::{Rule, table};
use crate::api::Method;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Classification {
    /// Allowed for a tool holding these capabilities, in a mode that enables them.
    Needs { caps: Capabilities, template: &'static str },
    /// Never sent from a tool, whatever its class or the mode.
    Forbidden { template: &'static str, why: String },
    /// A parameter the endpoint's table does not list, or a value the gate cannot read.
    BadParam { template: &'static str, why: String },
    /// No endpoint of the PVE API has this method and path.
    Unknown,
}

/// Classify one request. `segments` are the decoded path segments below `/api2/json`.
pub fn classify(method: Method, segments: &[String], params: &Map<String, Value>) -> Classification {
    let Some(entry) = table().lookup(method, segments) else {
        return Classification::Unknown;
    };
    let template = entry.template.as_str();
    if let Some(bad) = params.keys().find(|k| !is_param_name(k)) {
        let shown: String = bad.chars().take(40).flat_map(char::escape_debug).collect();
        return Classification::BadParam {
            template,
            why: format!("the parameter name \"{shown}\" is not a PVE parameter name"),
        };
    }
    if params.contains_key("skiplock") {
        return Classification::Forbidden {
            template,
            why: "'skiplock' bypasses the guest's lock; PVE lets only root@pam use it".into(),
        };
    }
    let caps = match &entry.rule {
        Rule::Needs(c) => *c,
        Rule::Forbidden(why) => {
            return Classification::Forbidden {
                template,
                why: why.clone(),
            };
        }
        Rule::Inspect(name) => match inspect::run(name, &inspect::Request { segments, params }) {
            Ok(c) => c,
            Err(Deny::Forbidden(why)) => return Classification::Forbidden { template, why },
            Err(Deny::UnknownKey(k)) => {
                return Classification::BadParam {
                    template,
                    why: format!("the parameter '{k}' is not in the gate's table for this endpoint, so it is refused"),
                };
            }
            Err(Deny::Malformed { key, why }) => {
                return Classification::BadParam {
                    template,
                    why: format!("the parameter '{key}' {why}"),
                };
            }
        },
    };
    let sets_retention = params.contains_key("prune-backups") || params.contains_key("maxfiles");
    let caps = if method != Method::Get && sets_retention {
        caps.with(Capability::Destructive)
    } else {
        caps
    };
    Classification::Needs { caps, template }
}

fn is_param_name(k: &str) -> bool {
    k.len() <= 64
        && k.starts_with(|c: char| c.is_ascii_alphabetic())
        && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// PVE's truthy values for a boolean parameter, however a script spelled it. A list counts
/// as true when any element does, since it travels as repeated keys.
pub(crate) fn truthy(v: Option<&Value>) -> bool {
    match v {
        Some(Value::Array(items)) => items.iter().any(|i| truthy(Some(i))),
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0),
        Some(Value::String(s)) => matches!(s.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on"),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Capability::*;
    use Method::{Delete as D, Get as G, Post as P, Put as U};
    use serde_json::json;

    fn c(method: Method, path: &str, params: Value) -> Classification {
        let segs: Vec<String> = path.trim_start_matches('/').split('/').map(str::to_string).collect();
        classify(method, &segs, params.as_object().unwrap_or(&Map::new()))
    }
    fn caps(method: Method, path: &str, params: Value) -> Option<Capabilities> {
        match c(method, path, params) {
            Classification::Needs { caps, .. } => Some(caps),
            _ => None,
        }
    }
    fn of(c: &[Capability]) -> Option<Capabilities> {
        Some(Capabilities::of(c))
    }

    #[test]
    fn tool_endpoints() {
        let e = || json!({});
        assert_eq!(caps(G, "/cluster/resources", e()), of(&[]));
        assert_eq!(caps(G, "/nodes/pve1/qemu/100/status/current", e()), of(&[]));
        assert_eq!(caps(P, "/nodes/pve1/qemu/100/status/start", e()), of(&[Write]));
        assert_eq!(caps(P, "/nodes/pve1/lxc/103/status/stop", e()), of(&[Write]));
        assert_eq!(caps(D, "/nodes/pve1/qemu/100", e()), of(&[Destructive]));
        assert_eq!(
            caps(P, "/nodes/pve1/qemu/100/snapshot/s1/rollback", e()),
            of(&[Destructive])
        );
        assert_eq!(caps(D, "/nodes/pve1/lxc/100/snapshot/s1", e()), of(&[Destructive]));
        assert_eq!(caps(P, "/nodes/pve1/qemu/100/snapshot", e()), of(&[Write]));
        assert_eq!(caps(P, "/nodes/pve1/vzdump", json!({"vmid": "100"})), of(&[Write]));
        assert_eq!(caps(P, "/nodes/pve1/qemu/100/agent/exec", e()), of(&[Exec]));
        assert_eq!(caps(G, "/nodes/pve1/qemu/100/agent/exec-status", e()), of(&[Exec]));
        assert_eq!(caps(G, "/nodes/pve1/qemu/100/agent/get-osinfo", e()), of(&[]));
        assert_eq!(
            caps(
                D,
                "/nodes/pve1/storage/nfs/content/nfs:backup/vzdump-qemu-100.vma.zst",
                e()
            ),
            of(&[Destructive])
        );
        assert_eq!(caps(D, "/nodes/pve1/tasks/UPID:x", e()), of(&[Destructive]));
    }

    #[test]
    fn administration_needs_admin() {
        let e = || json!({});
        assert_eq!(caps(P, "/nodes/n/services/pveproxy/start", e()), of(&[Admin]));
        assert_eq!(
            caps(P, "/nodes/n/services/corosync/stop", e()),
            of(&[Admin, Destructive])
        );
        assert_eq!(caps(U, "/nodes/n/network", e()), of(&[Admin, Destructive]));
        assert_eq!(caps(P, "/cluster/firewall/rules", e()), of(&[Admin, Destructive]));
        assert_eq!(caps(U, "/cluster/ceph/flags/pause", e()), of(&[Admin, Destructive]));
        assert_eq!(
            caps(G, "/nodes/n/scan/nfs", json!({"server": "10.0.0.1"})),
            of(&[Admin])
        );
        assert_eq!(caps(P, "/nodes/n/stopall", e()), of(&[Admin, Destructive]));
        assert_eq!(caps(D, "/storage/local", e()), of(&[Admin, Destructive]));
    }

    #[test]
    fn global_parameter_rules() {
        assert!(matches!(
            c(P, "/nodes/n/qemu/1/status/start", json!({"skiplock": 1})),
            Classification::Forbidden { .. }
        ));
        assert!(matches!(
            c(P, "/nodes/n/qemu/1/status/start", json!({"time\nout": 1})),
            Classification::BadParam { .. }
        ));
        assert_eq!(
            caps(
                P,
                "/nodes/n/vzdump",
                json!({"vmid": "100", "prune-backups": "keep-last=1"})
            ),
            of(&[Write, Destructive])
        );
    }

    #[test]
    fn forbidden_and_unknown() {
        for (m, p) in [
            (P, "/nodes/n/execute"),
            (P, "/nodes/n/termproxy"),
            (G, "/nodes/n/vncwebsocket"),
            (P, "/nodes/n/qemu/1/vncproxy"),
            (P, "/nodes/n/qemu/1/monitor"),
            (P, "/access/users/u@pve/token/t"),
            (U, "/access/acl"),
            (P, "/access/ticket"),
            (P, "/cluster/config/join"),
            (P, "/pools"),
            (P, "/cluster/mapping/dir"),
            (P, "/cluster/jobs/realm-sync/x"),
        ] {
            assert!(
                matches!(c(m, p, json!({})), Classification::Forbidden { .. }),
                "{m:?} {p}"
            );
        }
        assert_eq!(c(G, "/etc/passwd", json!({})), Classification::Unknown);
        assert_eq!(c(P, "/nodes/n/brand-new-thing", json!({})), Classification::Unknown);
        assert_eq!(c(P, "/cluster/resources", json!({})), Classification::Unknown);
        assert_eq!(caps(G, "/access/permissions", json!({})), of(&[]));
    }
}
