//! Routing and the order of PVE's checks: the node must be reachable (pveproxy forwards
//! `/nodes/{node}/…`), then the permission, then the parameters, then the handler.

mod cluster;
mod guests;
mod tasks;

use std::collections::BTreeMap;
use std::sync::LazyLock;

use serde_json::Value;

use super::auth::{Identity, Tokens};
use super::http::{Reply, Request};
use super::params::{ParamSpec, specs, validate};
use super::spec::GuestKind;
use super::state::{Guest, State};
use crate::gate::Method;

/// Where the permission of a route is checked.
#[derive(Clone, Copy)]
pub enum Perm {
    /// Anyone authenticated; the handler filters what it shows.
    All,
    Root(&'static [&'static str]),
    Node(&'static [&'static str]),
    Vm(&'static [&'static str]),
    Storage(&'static [&'static str]),
}

pub type HandlerFn = fn(&mut Call<'_>) -> Reply;

struct Route {
    method: Method,
    pattern: &'static str,
    params: &'static str,
    perm: Perm,
    handler: HandlerFn,
}

struct Compiled {
    route: &'static Route,
    specs: Vec<ParamSpec>,
}

const G: Method = Method::Get;
const P: Method = Method::Post;
const D: Method = Method::Delete;

/// `{kind}` matches `qemu` or `lxc`; any other `{name}` matches one segment.
static ROUTES: &[Route] = &[
    Route {
        method: G,
        pattern: "version",
        params: "",
        perm: Perm::All,
        handler: cluster::version,
    },
    Route {
        method: G,
        pattern: "nodes",
        params: "",
        perm: Perm::All,
        handler: cluster::nodes,
    },
    Route {
        method: G,
        pattern: "nodes/{node}/status",
        params: "node:str",
        perm: Perm::Node(&["Sys.Audit"]),
        handler: cluster::node_status,
    },
    Route {
        method: G,
        pattern: "nodes/{node}/version",
        params: "node:str",
        perm: Perm::All,
        handler: cluster::version,
    },
    Route {
        method: G,
        pattern: "cluster/status",
        params: "",
        perm: Perm::Root(&["Sys.Audit"]),
        handler: cluster::status,
    },
    Route {
        method: G,
        pattern: "cluster/resources",
        params: "type:enum(vm|storage|node|sdn)?",
        perm: Perm::All,
        handler: cluster::resources,
    },
    Route {
        method: G,
        pattern: "cluster/nextid",
        params: "vmid:int(100..999999999)?",
        perm: Perm::All,
        handler: cluster::nextid,
    },
    Route {
        method: G,
        pattern: "cluster/tasks",
        params: "",
        perm: Perm::All,
        handler: tasks::cluster_tasks,
    },
    Route {
        method: G,
        pattern: "nodes/{node}/tasks",
        params: "node:str errors:bool? limit:int(0..)? since:int? source:enum(archive|active|all)? start:int(0..)? statusfilter:list? typefilter:str? until:int? userfilter:str? vmid:int(100..999999999)?",
        perm: Perm::All,
        handler: tasks::node_tasks,
    },
    Route {
        method: G,
        pattern: "nodes/{node}/tasks/{upid}/status",
        params: "node:str upid:str",
        perm: Perm::All,
        handler: tasks::status,
    },
    Route {
        method: G,
        pattern: "nodes/{node}/tasks/{upid}/log",
        params: "node:str upid:str download:bool? limit:int(0..)? start:int(0..)?",
        perm: Perm::All,
        handler: tasks::log,
    },
    Route {
        method: G,
        pattern: "nodes/{node}/{kind}/{vmid}/status/current",
        params: "node:str vmid:int(100..999999999)",
        perm: Perm::Vm(&["VM.Audit"]),
        handler: guests::status_current,
    },
    Route {
        method: G,
        pattern: "nodes/{node}/{kind}/{vmid}/config",
        params: "node:str vmid:int(100..999999999) current:bool? snapshot:str?",
        perm: Perm::Vm(&["VM.Audit"]),
        handler: guests::config,
    },
    Route {
        method: P,
        pattern: "nodes/{node}/{kind}/{vmid}/status/{action}",
        params: "",
        perm: Perm::Vm(&["VM.PowerMgmt"]),
        handler: guests::power,
    },
    Route {
        method: D,
        pattern: "nodes/{node}/{kind}/{vmid}",
        params: "",
        perm: Perm::Vm(&["VM.Allocate"]),
        handler: guests::destroy,
    },
];

/// Parameters of the power endpoints, by guest kind and action (from the PVE 8.4 schema).
fn power_params(kind: GuestKind, action: &str) -> Option<&'static str> {
    const COMMON: &str = "node:str vmid:int(100..999999999)";
    Some(match (kind, action) {
        (GuestKind::Qemu, "start") => {
            "node:str vmid:int(100..999999999) force-cpu:str? machine:str? migratedfrom:str? migration_network:str? migration_type:enum(secure|insecure)? nets-host-mtu:str? skiplock:bool? stateuri:str? targetstorage:str? timeout:int(0..86400)?"
        }
        (GuestKind::Qemu, "shutdown") => {
            "node:str vmid:int(100..999999999) forceStop:bool? keepActive:bool? skiplock:bool? timeout:int(0..)?"
        }
        (GuestKind::Qemu, "stop") => {
            "node:str vmid:int(100..999999999) keepActive:bool? migratedfrom:str? overrule-shutdown:bool? skiplock:bool? timeout:int(0..)?"
        }
        (GuestKind::Qemu, "reboot") => "node:str vmid:int(100..999999999) timeout:int(0..)?",
        (GuestKind::Qemu, "reset") => "node:str vmid:int(100..999999999) skiplock:bool?",
        (GuestKind::Qemu, "suspend") => {
            "node:str vmid:int(100..999999999) skiplock:bool? statestorage:str? todisk:bool?"
        }
        (GuestKind::Qemu, "resume") => "node:str vmid:int(100..999999999) nocheck:bool? skiplock:bool?",
        (GuestKind::Lxc, "start") => "node:str vmid:int(100..999999999) debug:bool? skiplock:bool?",
        (GuestKind::Lxc, "shutdown") => "node:str vmid:int(100..999999999) forceStop:bool? timeout:int(0..)?",
        (GuestKind::Lxc, "stop") => "node:str vmid:int(100..999999999) overrule-shutdown:bool? skiplock:bool?",
        (GuestKind::Lxc, "reboot") => "node:str vmid:int(100..999999999) timeout:int(0..)?",
        (GuestKind::Lxc, "suspend" | "resume") => COMMON,
        _ => return None,
    })
}

fn destroy_params(kind: GuestKind) -> &'static str {
    match kind {
        GuestKind::Qemu => {
            "node:str vmid:int(100..999999999) destroy-unreferenced-disks:bool? purge:bool? skiplock:bool?"
        }
        GuestKind::Lxc => "node:str vmid:int(100..999999999) destroy-unreferenced-disks:bool? force:bool? purge:bool?",
    }
}

static COMPILED: LazyLock<Vec<Compiled>> = LazyLock::new(|| {
    ROUTES
        .iter()
        .map(|r| Compiled {
            route: r,
            specs: specs(r.params),
        })
        .collect()
});

fn matches(pattern: &str, segs: &[&str]) -> Option<BTreeMap<String, String>> {
    let pat: Vec<&str> = pattern.split('/').collect();
    if pat.len() != segs.len() {
        return None;
    }
    let mut args = BTreeMap::new();
    for (p, s) in pat.iter().zip(segs) {
        match p.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
            Some("kind") if *s != "qemu" && *s != "lxc" => return None,
            Some(name) => {
                args.insert(name.to_string(), s.to_string());
            }
            None if p == s => {}
            None => return None,
        }
    }
    Some(args)
}

/// One request being answered.
pub struct Call<'a> {
    pub st: &'a mut State,
    pub req: &'a Request,
    pub args: BTreeMap<String, String>,
    pub who: &'a Identity,
    pub tokens: &'a Tokens,
}

impl Call<'_> {
    pub fn arg(&self, name: &str) -> &str {
        self.args.get(name).map(String::as_str).unwrap_or("")
    }

    pub fn node(&self) -> &str {
        self.arg("node")
    }

    pub fn kind(&self) -> GuestKind {
        if self.arg("kind") == "lxc" {
            GuestKind::Lxc
        } else {
            GuestKind::Qemu
        }
    }

    pub fn vmid(&self) -> u32 {
        self.arg("vmid").parse().unwrap_or(0)
    }

    /// The guest the path names, as PVE finds it: only in that node's config directory.
    pub fn guest(&self) -> Result<&Guest, Reply> {
        let (node, kind, vmid) = (self.node(), self.kind(), self.vmid());
        match self.st.guests.get(&vmid) {
            Some(g) if g.node == node && g.kind == kind => Ok(g),
            _ => Err(config_missing(node, kind, vmid)),
        }
    }

    pub fn can(&self, path: &str, privs: &[&str]) -> bool {
        self.tokens.has_any(self.who, path, privs)
    }

    pub fn user(&self) -> String {
        self.who.token_id.clone()
    }
}

pub fn config_missing(node: &str, kind: GuestKind, vmid: u32) -> Reply {
    let dir = if kind == GuestKind::Qemu { "qemu-server" } else { "lxc" };
    Reply::error(
        500,
        format!("Configuration file 'nodes/{node}/{dir}/{vmid}.conf' does not exist"),
    )
}

/// Answer one authenticated request against the state.
pub fn dispatch(st: &mut State, req: &Request, who: &Identity, tokens: &Tokens) -> Reply {
    let segs = req.segments();
    let Some((compiled, args)) = COMPILED
        .iter()
        .filter(|c| c.route.method == req.method)
        .find_map(|c| matches(c.route.pattern, &segs).map(|a| (c, a)))
    else {
        return Reply::error(
            501,
            format!("Method '{} /api2/json{}' not implemented", req.method, req.path),
        );
    };
    if let Some(node) = args.get("node") {
        match st.nodes.get(node) {
            None => {
                return Reply::error(
                    500,
                    format!(
                        "hostname lookup '{node}' failed - failed to get address info for: {node}: Name or service not known"
                    ),
                );
            }
            Some(n) if !n.online => return Reply::bare(595, "No route to host"),
            Some(_) => {}
        }
    }
    let perm_path = match compiled.route.perm {
        Perm::All => None,
        Perm::Root(p) => Some(("/".to_string(), p)),
        Perm::Node(p) => Some((
            format!("/nodes/{}", args.get("node").map(String::as_str).unwrap_or("")),
            p,
        )),
        Perm::Vm(p) => Some((
            format!("/vms/{}", args.get("vmid").map(String::as_str).unwrap_or("")),
            p,
        )),
        Perm::Storage(p) => Some((
            format!("/storage/{}", args.get("storage").map(String::as_str).unwrap_or("")),
            p,
        )),
    };
    if let Some((path, privs)) = perm_path
        && let Err(reply) = tokens.require(who, &path, privs)
    {
        return reply;
    }
    // Path parameters are parameters too, as PVE validates them.
    let mut params = req.params.clone();
    for (k, v) in &args {
        if k != "kind" && k != "action" {
            params.insert(k.clone(), Value::String(v.clone()));
        }
    }
    let kind = if args.get("kind").map(String::as_str) == Some("lxc") {
        GuestKind::Lxc
    } else {
        GuestKind::Qemu
    };
    let dynamic;
    let specs: &[ParamSpec] = if compiled.route.pattern.ends_with("status/{action}") {
        let action = args.get("action").map(String::as_str).unwrap_or("");
        match power_params(kind, action) {
            Some(s) => {
                dynamic = specs(s);
                &dynamic
            }
            None => {
                return Reply::error(
                    501,
                    format!("Method '{} /api2/json{}' not implemented", req.method, req.path),
                );
            }
        }
    } else if compiled.route.method == Method::Delete && compiled.route.pattern == "nodes/{node}/{kind}/{vmid}" {
        dynamic = specs(destroy_params(kind));
        &dynamic
    } else {
        &compiled.specs
    };
    if let Err(errors) = validate(specs, &params, req.encoding) {
        return Reply::param_errors(errors);
    }
    let mut call = Call {
        st,
        req,
        args,
        who,
        tokens,
    };
    (compiled.route.handler)(&mut call)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_spec_parses_and_patterns_match() {
        assert_eq!(COMPILED.len(), ROUTES.len());
        for kind in [GuestKind::Qemu, GuestKind::Lxc] {
            for a in ["start", "shutdown", "stop", "reboot", "suspend", "resume"] {
                specs(power_params(kind, a).unwrap());
            }
            specs(destroy_params(kind));
        }
        assert!(power_params(GuestKind::Lxc, "reset").is_none());
        let m = matches(
            "nodes/{node}/{kind}/{vmid}/status/{action}",
            &["nodes", "pve1", "lxc", "200", "status", "stop"],
        )
        .unwrap();
        assert_eq!(m["kind"], "lxc");
        assert!(matches("nodes/{node}/{kind}/{vmid}", &["nodes", "pve1", "openvz", "200"]).is_none());
    }
}
