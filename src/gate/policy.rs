//! The core's policy table: what class of request each PVE endpoint is.
//!
//! Rules are matched in order and the first match wins. Patterns are written over the
//! decoded path segments: a literal segment, `a|b` for alternatives, `*` for any one
//! segment and a final `**` for any number of remaining segments. There is no catch-all:
//! a request no rule matches is [`Classification::Unknown`] and refused. A test walks every
//! endpoint of the official API schema and checks that each one gets a class.

use serde_json::{Map, Value};

use super::Method;

/// The safety class of a tool, and of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Class {
    Read,
    Write,
    Destructive,
    Exec,
}

impl Class {
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Read => "read",
            Class::Write => "write",
            Class::Destructive => "destructive",
            Class::Exec => "exec",
        }
    }

    /// May a tool of this class make a request of class `request`?
    /// read < write < destructive; exec requests only from exec tools, which may also read.
    pub fn permits(self, request: Class) -> bool {
        match (self, request) {
            (_, Class::Read) => true,
            (Class::Exec, Class::Exec) => true,
            (Class::Exec, _) | (_, Class::Exec) => false,
            (tool, req) => req <= tool,
        }
    }
}

impl std::fmt::Display for Class {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Classification {
    Class(Class),
    /// Never sent from a script, whatever its class or the mode.
    Forbidden(&'static str),
    /// Not in the table: refused.
    Unknown,
}

#[derive(Clone, Copy)]
enum Outcome {
    Fixed(Class),
    Forbidden(&'static str),
    /// Depends on the parameters (e.g. restore with `force` replaces a guest).
    ByParams(fn(&Map<String, Value>) -> Class),
}

struct Rule {
    methods: &'static [Method],
    pattern: &'static str,
    outcome: Outcome,
}

use Method::{Delete as D, Get as G, Post as P, Put as U};
const ANY: &[Method] = &[G, P, U, D];
const WRITES: &[Method] = &[P, U, D];

const fn rule(methods: &'static [Method], pattern: &'static str, outcome: Outcome) -> Rule {
    Rule {
        methods,
        pattern,
        outcome,
    }
}
const fn forbid(methods: &'static [Method], pattern: &'static str, why: &'static str) -> Rule {
    rule(methods, pattern, Outcome::Forbidden(why))
}
const fn class(methods: &'static [Method], pattern: &'static str, c: Class) -> Rule {
    rule(methods, pattern, Outcome::Fixed(c))
}

const SHELL: &str = "it opens a shell, console or tunnel on the host or a guest";
const ACCESS: &str = "it changes users, tokens, permissions, realms or passwords";
const MEMBERSHIP: &str = "it changes cluster membership";
const CERTS: &str = "it replaces the node's TLS certificates";
const MONITOR: &str = "it sends raw commands to the QEMU monitor";

static RULES: &[Rule] = &[
    // Never from a script.
    forbid(ANY, "nodes/*/vncwebsocket", SHELL),
    forbid(ANY, "nodes/*/termproxy|vncshell|spiceshell|execute", SHELL),
    forbid(
        ANY,
        "nodes/*/qemu|lxc/*/termproxy|vncproxy|spiceproxy|vncwebsocket|mtunnel|mtunnelwebsocket|remote_migrate",
        SHELL,
    ),
    forbid(ANY, "nodes/*/qemu/*/monitor", MONITOR),
    forbid(WRITES, "access/**", ACCESS),
    forbid(WRITES, "cluster/config/join|nodes/**", MEMBERSHIP),
    forbid(WRITES, "cluster/config", MEMBERSHIP),
    forbid(WRITES, "nodes/*/certificates/**", CERTS),
    // Inside the guest: command execution, file access, keystrokes, passwords.
    class(&[P], "nodes/*/qemu/*/agent", Class::Exec),
    class(
        &[P],
        "nodes/*/qemu/*/agent/exec|file-write|set-user-password",
        Class::Exec,
    ),
    class(&[G], "nodes/*/qemu/*/agent/exec-status|file-read", Class::Exec),
    class(&[U], "nodes/*/qemu/*/sendkey", Class::Exec),
    // Side-effect-free agent calls that PVE exposes as POST.
    class(&[P], "nodes/*/qemu/*/agent/ping|fsfreeze-status", Class::Read),
    // Data loss or irreversible changes.
    class(&[D], "nodes/*/qemu|lxc/*", Class::Destructive),
    class(&[P], "nodes/*/qemu|lxc/*/snapshot/*/rollback", Class::Destructive),
    class(&[D], "nodes/*/qemu|lxc/*/snapshot/*", Class::Destructive),
    class(&[P], "nodes/*/qemu|lxc/*/template", Class::Destructive),
    class(&[U], "nodes/*/qemu/*/unlink", Class::Destructive),
    rule(&[P], "nodes/*/qemu|lxc", Outcome::ByParams(create_or_restore)),
    rule(&[P, U], "nodes/*/qemu|lxc/*/config", Outcome::ByParams(config_change)),
    rule(&[P], "nodes/*/qemu/*/move_disk", Outcome::ByParams(move_volume)),
    rule(&[P], "nodes/*/lxc/*/move_volume", Outcome::ByParams(move_volume)),
    class(&[D], "nodes/*/storage/*/content/**", Class::Destructive),
    class(&[D], "nodes/*/storage/*/prunebackups", Class::Destructive),
    class(WRITES, "nodes/*/disks/**", Class::Destructive),
    class(&[D], "nodes/*/ceph/**", Class::Destructive),
    class(&[P], "nodes/*/status", Class::Destructive),
    // Reads.
    class(&[G], "version", Class::Read),
    class(&[G], "cluster|nodes|storage|pools|access", Class::Read),
    class(&[G], "cluster|nodes|storage|pools|access/**", Class::Read),
    // Ordinary changes, listed by subtree so that an unknown subtree stays refused.
    class(WRITES, "nodes/*/qemu|lxc/**", Class::Write),
    class(
        WRITES,
        "nodes/*/aplinfo|apt|ceph|config|dns|firewall|hosts|migrateall|network|replication|services|startall|stopall|storage|subscription|suspendall|tasks|time|vzdump|wakeonlan/**",
        Class::Write,
    ),
    class(
        WRITES,
        "cluster/acme|backup|bulk-action|ceph|firewall|ha|jobs|mapping|metrics|notifications|options|replication|sdn/**",
        Class::Write,
    ),
    class(WRITES, "storage/**", Class::Write),
    class(WRITES, "pools/**", Class::Write),
];

/// Classify one request. `segments` are the decoded path segments below `/api2/json`.
pub fn classify(method: Method, segments: &[String], params: &Map<String, Value>) -> Classification {
    for r in RULES {
        if r.methods.contains(&method) && matches(r.pattern, segments) {
            return match r.outcome {
                Outcome::Fixed(c) => Classification::Class(escalate(c, params)),
                Outcome::Forbidden(why) => Classification::Forbidden(why),
                Outcome::ByParams(f) => Classification::Class(escalate(f(params), params)),
            };
        }
    }
    Classification::Unknown
}

fn matches(pattern: &str, segments: &[String]) -> bool {
    let mut pat = pattern.split('/');
    let mut segs = segments.iter();
    loop {
        match (pat.next(), segs.next()) {
            (Some("**"), _) => return true,
            (None, None) => return true,
            (Some(p), Some(s)) if p == "*" || p.split('|').any(|alt| alt == s) => {}
            _ => return false,
        }
    }
}

/// A write that sets a backup retention (`prune-backups`, or the older `maxfiles`) on a
/// backup, a storage or a backup job can delete older backups when pruning runs: that is
/// destructive. (Pruning under the retention an administrator configured is not touched.)
fn escalate(class: Class, p: &Map<String, Value>) -> Class {
    if class == Class::Write && (p.contains_key("prune-backups") || p.contains_key("maxfiles")) {
        Class::Destructive
    } else {
        class
    }
}

/// PVE's truthy values for a boolean parameter, however a script spelled it. A list counts
/// as true when any element does, since it travels as repeated keys.
pub fn truthy(v: Option<&Value>) -> bool {
    match v {
        Some(Value::Array(items)) => items.iter().any(|i| truthy(Some(i))),
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0),
        Some(Value::String(s)) => matches!(s.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on"),
        _ => false,
    }
}

/// Create a guest, or restore a backup; with `force` it replaces an existing guest.
fn create_or_restore(p: &Map<String, Value>) -> Class {
    if truthy(p.get("force")) {
        Class::Destructive
    } else {
        Class::Write
    }
}

/// Config changes; deleting an `unusedN` disk or forcing removal destroys the volume.
fn config_change(p: &Map<String, Value>) -> Class {
    if truthy(p.get("force")) {
        return Class::Destructive;
    }
    let deletes_unused = |s: &str| {
        s.split([',', ';', ' ']).any(|k| {
            k.strip_prefix("unused")
                .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
        })
    };
    let destroys = match p.get("delete") {
        Some(Value::String(s)) => deletes_unused(s),
        Some(Value::Array(items)) => items.iter().any(|i| i.as_str().is_some_and(deletes_unused)),
        _ => false,
    };
    if destroys { Class::Destructive } else { Class::Write }
}

/// Moving a disk with `delete` removes the source volume.
fn move_volume(p: &Map<String, Value>) -> Class {
    if truthy(p.get("delete")) {
        Class::Destructive
    } else {
        Class::Write
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn c(method: Method, path: &str, params: Value) -> Classification {
        let segs: Vec<String> = path.trim_start_matches('/').split('/').map(str::to_string).collect();
        classify(method, &segs, params.as_object().unwrap())
    }
    use Classification::{Class as K, Forbidden, Unknown};

    #[test]
    fn class_ordering() {
        use Class::*;
        assert!(Read.permits(Read) && !Read.permits(Write));
        assert!(Write.permits(Read) && Write.permits(Write) && !Write.permits(Destructive));
        assert!(Destructive.permits(Write) && Destructive.permits(Destructive));
        for t in [Read, Write, Destructive] {
            assert!(!t.permits(Exec), "{t} must not exec");
        }
        assert!(Exec.permits(Exec) && Exec.permits(Read) && !Exec.permits(Write) && !Exec.permits(Destructive));
    }

    #[test]
    fn tool_endpoints() {
        let e = json!({});
        assert_eq!(c(G, "/cluster/resources", e.clone()), K(Class::Read));
        assert_eq!(c(G, "/nodes/pve1/qemu/100/status/current", e.clone()), K(Class::Read));
        assert_eq!(c(P, "/nodes/pve1/qemu/100/status/start", e.clone()), K(Class::Write));
        assert_eq!(c(P, "/nodes/pve1/lxc/103/status/stop", e.clone()), K(Class::Write));
        assert_eq!(c(D, "/nodes/pve1/qemu/100", e.clone()), K(Class::Destructive));
        assert_eq!(c(D, "/nodes/pve1/lxc/103", e.clone()), K(Class::Destructive));
        assert_eq!(
            c(P, "/nodes/pve1/qemu/100/snapshot/s1/rollback", e.clone()),
            K(Class::Destructive)
        );
        assert_eq!(
            c(D, "/nodes/pve1/lxc/100/snapshot/s1", e.clone()),
            K(Class::Destructive)
        );
        assert_eq!(c(P, "/nodes/pve1/qemu/100/snapshot", e.clone()), K(Class::Write));
        assert_eq!(c(P, "/nodes/pve1/vzdump", e.clone()), K(Class::Write));
        assert_eq!(c(P, "/nodes/pve1/qemu/100/agent/exec", e.clone()), K(Class::Exec));
        assert_eq!(
            c(G, "/nodes/pve1/qemu/100/agent/exec-status", e.clone()),
            K(Class::Exec)
        );
        assert_eq!(c(G, "/nodes/pve1/qemu/100/agent/get-osinfo", e.clone()), K(Class::Read));
        assert_eq!(
            c(
                D,
                "/nodes/pve1/storage/nfs/content/nfs:backup/vzdump-qemu-100.vma.zst",
                e.clone()
            ),
            K(Class::Destructive)
        );
        assert_eq!(c(D, "/nodes/pve1/tasks/UPID:x", e), K(Class::Write));
    }

    #[test]
    fn params_decide_restore_and_config() {
        assert_eq!(
            c(P, "/nodes/n/qemu", json!({"vmid": 100, "archive": "a"})),
            K(Class::Write)
        );
        assert_eq!(
            c(P, "/nodes/n/qemu", json!({"vmid": 100, "archive": "a", "force": 1})),
            K(Class::Destructive)
        );
        assert_eq!(
            c(P, "/nodes/n/lxc", json!({"restore": 1, "force": "1"})),
            K(Class::Destructive)
        );
        assert_eq!(
            c(P, "/nodes/n/lxc", json!({"restore": 1, "force": false})),
            K(Class::Write)
        );
        assert_eq!(
            c(U, "/nodes/n/qemu/1/config", json!({"delete": "onboot,unused0"})),
            K(Class::Destructive)
        );
        assert_eq!(
            c(P, "/nodes/n/qemu/1/config", json!({"delete": ["unused12"]})),
            K(Class::Destructive)
        );
        assert_eq!(
            c(U, "/nodes/n/qemu/1/config", json!({"delete": "unused"})),
            K(Class::Write)
        );
        assert_eq!(
            c(U, "/nodes/n/lxc/1/config", json!({"cores": 2, "delete": "mp0"})),
            K(Class::Write)
        );
        assert_eq!(
            c(U, "/nodes/n/qemu/1/config", json!({"delete": "scsi1", "force": true})),
            K(Class::Destructive)
        );
        assert_eq!(
            c(P, "/nodes/n/qemu/1/move_disk", json!({"delete": 1})),
            K(Class::Destructive)
        );
    }

    #[test]
    fn forbidden_and_unknown() {
        let e = json!({});
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
        ] {
            assert!(matches!(c(m, p, e.clone()), Forbidden(_)), "{m:?} {p}");
        }
        assert_eq!(c(G, "/etc/passwd", e.clone()), Unknown);
        assert_eq!(c(P, "/nodes/n/brand-new-thing", e.clone()), Unknown);
        assert_eq!(c(P, "/cluster/resources", e.clone()), Unknown);
        assert_eq!(c(G, "/access/permissions", e), K(Class::Read));
    }
}
