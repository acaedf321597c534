//! Routing and the order of PVE's checks: the node must be reachable (pveproxy forwards
//! `/nodes/{node}/…`), then the permission, then the parameters, then the handler.

mod agent;
mod backup;
mod cluster;
mod config;
mod guests;
mod lifecycle;
mod rrd;
mod snapshots;
mod storage;
mod tasks;

use std::collections::BTreeMap;
use std::sync::LazyLock;

use serde_json::Value;

use super::auth::{Identity, Tokens};
use super::http::{Reply, Request};
use super::params::{ParamSpec, specs, validate};
use super::spec::GuestKind;
use super::state::{Guest, State};
use crate::api::Method;
use crate::pve::roles::PveMajor;

/// Where the permission of a route is checked.
#[derive(Clone, Copy)]
pub(crate) enum Perm {
    /// Anyone authenticated; the handler filters what it shows.
    All,
    Root(&'static [&'static str]),
    Node(&'static [&'static str]),
    Vm(&'static [&'static str]),
    Storage(&'static [&'static str]),
    /// On `/vms/{vmid}`, with privileges that differ between PVE 8 and PVE 9.
    VmByVersion {
        v8: &'static [&'static str],
        v9: &'static [&'static str],
    },
}

pub(crate) type HandlerFn = fn(&mut Call<'_>) -> Reply;

/// A route's parameters: fixed, or depending on the path (guest kind, action).
#[derive(Clone, Copy)]
enum Spec {
    Fixed(&'static str),
    ByPath(fn(GuestKind, &str) -> Option<String>),
}

struct Route {
    method: Method,
    pattern: &'static str,
    params: Spec,
    perm: Perm,
    handler: HandlerFn,
}

struct Compiled {
    route: &'static Route,
    specs: Vec<ParamSpec>,
}

const G: Method = Method::Get;
const P: Method = Method::Post;
const U: Method = Method::Put;
const D: Method = Method::Delete;
use Spec::{ByPath, Fixed};

const VMID: &str = "vmid:int(100..999999999)";

/// Any VM.Config.* privilege lets a caller reach the config endpoints; PVE then checks
/// each key against its own privilege.
const CONFIG_PRIVS: &[&str] = &[
    "VM.Config.Options",
    "VM.Config.CPU",
    "VM.Config.Memory",
    "VM.Config.Disk",
    "VM.Config.Network",
    "VM.Config.HWType",
    "VM.Config.CDROM",
    "VM.Config.Cloudinit",
];

/// Guest-agent `exec` and `exec-status`: `VM.Monitor` on PVE 8, `VM.GuestAgent.Unrestricted`
/// on PVE 9 (qemu-server `PVE::API2::Qemu::Agent`, 8.3.13 and 9.2.6).
const AGENT_UNRESTRICTED: Perm = Perm::VmByVersion {
    v8: &["VM.Monitor"],
    v9: &["VM.GuestAgent.Unrestricted"],
};
/// Read-only agent commands (`ping`, `info`, …): PVE 8's default `VM.Monitor`; on PVE 9 the
/// command's own privilege or `VM.GuestAgent.Unrestricted` (`register_command`).
const AGENT_AUDIT: Perm = Perm::VmByVersion {
    v8: &["VM.Monitor"],
    v9: &["VM.GuestAgent.Audit", "VM.GuestAgent.Unrestricted"],
};

macro_rules! route {
    ($m:expr, $pat:expr, $params:expr, $perm:expr, $h:expr) => {
        Route {
            method: $m,
            pattern: $pat,
            params: $params,
            perm: $perm,
            handler: $h,
        }
    };
}

/// `{kind}` matches `qemu` or `lxc`; any other `{name}` matches one segment.
static ROUTES: &[Route] = &[
    route!(G, "version", Fixed(""), Perm::All, cluster::version),
    route!(G, "nodes", Fixed(""), Perm::All, cluster::nodes),
    route!(
        G,
        "nodes/{node}/status",
        Fixed("node:str"),
        Perm::Node(&["Sys.Audit"]),
        cluster::node_status
    ),
    route!(
        G,
        "nodes/{node}/version",
        Fixed("node:str"),
        Perm::All,
        cluster::version
    ),
    route!(
        G,
        "cluster/status",
        Fixed(""),
        Perm::Root(&["Sys.Audit"]),
        cluster::status
    ),
    route!(
        G,
        "cluster/resources",
        Fixed("type:enum(vm|storage|node|sdn)?"),
        Perm::All,
        cluster::resources
    ),
    route!(
        G,
        "cluster/nextid",
        Fixed("vmid:int(100..999999999)?"),
        Perm::All,
        cluster::nextid
    ),
    route!(G, "cluster/tasks", Fixed(""), Perm::All, tasks::cluster_tasks),
    route!(
        G,
        "nodes/{node}/rrddata",
        Fixed(rrd::PARAMS),
        Perm::Node(&["Sys.Audit"]),
        rrd::node
    ),
    route!(
        G,
        "nodes/{node}/{kind}/{vmid}/rrddata",
        Fixed(rrd::GUEST_PARAMS),
        Perm::Vm(&["VM.Audit"]),
        rrd::guest
    ),
    route!(
        G,
        "nodes/{node}/tasks",
        Fixed(
            "node:str errors:bool? limit:int(0..)? since:int? source:enum(archive|active|all)? start:int(0..)? statusfilter:list? typefilter:str? until:int? userfilter:str? vmid:int(100..999999999)?"
        ),
        Perm::All,
        tasks::node_tasks
    ),
    route!(
        G,
        "nodes/{node}/tasks/{upid}/status",
        Fixed("node:str upid:str"),
        Perm::All,
        tasks::status
    ),
    route!(
        G,
        "nodes/{node}/tasks/{upid}/log",
        Fixed("node:str upid:str download:bool? limit:int(0..)? start:int(0..)?"),
        Perm::All,
        tasks::log
    ),
    route!(
        G,
        "nodes/{node}/qemu",
        Fixed("node:str full:bool?"),
        Perm::All,
        guests::list_on_node
    ),
    route!(
        G,
        "nodes/{node}/lxc",
        Fixed("node:str"),
        Perm::All,
        guests::list_on_node
    ),
    route!(
        P,
        "nodes/{node}/{kind}",
        ByPath(backup::create_params),
        Perm::Vm(&["VM.Allocate"]),
        backup::create_or_restore
    ),
    route!(
        G,
        "nodes/{node}/{kind}/{vmid}/status/current",
        Fixed("node:str vmid:int(100..999999999)"),
        Perm::Vm(&["VM.Audit"]),
        guests::status_current
    ),
    route!(
        G,
        "nodes/{node}/{kind}/{vmid}/config",
        Fixed("node:str vmid:int(100..999999999) current:bool? snapshot:str?"),
        Perm::Vm(&["VM.Audit"]),
        guests::config
    ),
    route!(
        G,
        "nodes/{node}/{kind}/{vmid}/pending",
        Fixed("node:str vmid:int(100..999999999)"),
        Perm::Vm(&["VM.Audit"]),
        config::pending
    ),
    route!(
        P,
        "nodes/{node}/qemu/{vmid}/config",
        ByPath(config::set_params_post),
        Perm::Vm(CONFIG_PRIVS),
        config::set
    ),
    route!(
        U,
        "nodes/{node}/{kind}/{vmid}/config",
        ByPath(config::set_params_put),
        Perm::Vm(CONFIG_PRIVS),
        config::set
    ),
    route!(
        U,
        "nodes/{node}/{kind}/{vmid}/resize",
        ByPath(config::resize_params),
        Perm::Vm(&["VM.Config.Disk"]),
        config::resize
    ),
    route!(
        P,
        "nodes/{node}/{kind}/{vmid}/status/{action}",
        ByPath(power_params),
        Perm::Vm(&["VM.PowerMgmt"]),
        guests::power
    ),
    route!(
        D,
        "nodes/{node}/{kind}/{vmid}",
        ByPath(destroy_params),
        Perm::Vm(&["VM.Allocate"]),
        guests::destroy
    ),
    route!(
        P,
        "nodes/{node}/{kind}/{vmid}/clone",
        ByPath(lifecycle::clone_params),
        Perm::Vm(&["VM.Clone"]),
        lifecycle::clone
    ),
    route!(
        G,
        "nodes/{node}/qemu/{vmid}/migrate",
        Fixed("node:str vmid:int(100..999999999) target:str?"),
        Perm::Vm(&["VM.Migrate"]),
        lifecycle::migrate_check
    ),
    route!(
        P,
        "nodes/{node}/{kind}/{vmid}/migrate",
        ByPath(lifecycle::migrate_params),
        Perm::Vm(&["VM.Migrate"]),
        lifecycle::migrate
    ),
    route!(
        G,
        "nodes/{node}/{kind}/{vmid}/snapshot",
        Fixed("node:str vmid:int(100..999999999)"),
        Perm::Vm(&["VM.Audit"]),
        snapshots::list
    ),
    route!(
        P,
        "nodes/{node}/{kind}/{vmid}/snapshot",
        ByPath(snapshots::create_params),
        Perm::Vm(&["VM.Snapshot"]),
        snapshots::create
    ),
    route!(
        P,
        "nodes/{node}/{kind}/{vmid}/snapshot/{snapname}/rollback",
        Fixed("node:str vmid:int(100..999999999) snapname:str start:bool?"),
        Perm::Vm(&["VM.Snapshot", "VM.Snapshot.Rollback"]),
        snapshots::rollback
    ),
    route!(
        D,
        "nodes/{node}/{kind}/{vmid}/snapshot/{snapname}",
        Fixed("node:str vmid:int(100..999999999) snapname:str force:bool?"),
        Perm::Vm(&["VM.Snapshot"]),
        snapshots::delete
    ),
    route!(
        P,
        "nodes/{node}/vzdump",
        Fixed(backup::VZDUMP_PARAMS),
        Perm::All,
        backup::vzdump
    ),
    route!(G, "storage", Fixed("type:str?"), Perm::All, storage::config),
    route!(
        G,
        "access/permissions",
        Fixed("path:str? userid:str?"),
        Perm::All,
        cluster::permissions
    ),
    route!(
        G,
        "nodes/{node}/storage",
        Fixed("node:str content:list? enabled:bool? format:bool? storage:str? target:str?"),
        Perm::All,
        storage::status
    ),
    route!(
        G,
        "nodes/{node}/storage/{storage}/content",
        Fixed(
            "node:str storage:str content:enum(images|rootdir|vztmpl|iso|backup|snippets|import)? vmid:int(100..999999999)?"
        ),
        Perm::Storage(&["Datastore.Audit", "Datastore.AllocateSpace"]),
        storage::content
    ),
    route!(
        P,
        "nodes/{node}/qemu/{vmid}/agent/exec",
        Fixed("node:str vmid:int(100..999999999) command:list input-data:str?"),
        AGENT_UNRESTRICTED,
        agent::exec
    ),
    route!(
        G,
        "nodes/{node}/qemu/{vmid}/agent/exec-status",
        Fixed("node:str vmid:int(100..999999999) pid:int"),
        AGENT_UNRESTRICTED,
        agent::exec_status
    ),
    route!(
        P,
        "nodes/{node}/qemu/{vmid}/agent/ping",
        Fixed("node:str vmid:int(100..999999999)"),
        AGENT_AUDIT,
        agent::ping
    ),
];

/// Parameters of the power endpoints, by guest kind and action (from the PVE 8.4 schema).
fn power_params(kind: GuestKind, action: &str) -> Option<String> {
    let extra = match (kind, action) {
        (GuestKind::Qemu, "start") => {
            "force-cpu:str? machine:str? migratedfrom:str? migration_network:str? migration_type:enum(secure|insecure)? nets-host-mtu:str? skiplock:bool? stateuri:str? targetstorage:str? timeout:int(0..86400)?"
        }
        (GuestKind::Qemu, "shutdown") => "forceStop:bool? keepActive:bool? skiplock:bool? timeout:int(0..)?",
        (GuestKind::Qemu, "stop") => {
            "keepActive:bool? migratedfrom:str? overrule-shutdown:bool? skiplock:bool? timeout:int(0..)?"
        }
        (GuestKind::Qemu, "reboot") => "timeout:int(0..)?",
        (GuestKind::Qemu, "reset") => "skiplock:bool?",
        (GuestKind::Qemu, "suspend") => "skiplock:bool? statestorage:str? todisk:bool?",
        (GuestKind::Qemu, "resume") => "nocheck:bool? skiplock:bool?",
        (GuestKind::Lxc, "start") => "debug:bool? skiplock:bool?",
        (GuestKind::Lxc, "shutdown") => "forceStop:bool? timeout:int(0..)?",
        (GuestKind::Lxc, "stop") => "overrule-shutdown:bool? skiplock:bool?",
        (GuestKind::Lxc, "reboot") => "timeout:int(0..)?",
        (GuestKind::Lxc, "suspend" | "resume") => "",
        _ => return None,
    };
    Some(format!("node:str {VMID} {extra}"))
}

fn destroy_params(kind: GuestKind, _: &str) -> Option<String> {
    Some(match kind {
        GuestKind::Qemu => format!("node:str {VMID} destroy-unreferenced-disks:bool? purge:bool? skiplock:bool?"),
        GuestKind::Lxc => format!("node:str {VMID} destroy-unreferenced-disks:bool? force:bool? purge:bool?"),
    })
}

static COMPILED: LazyLock<Vec<Compiled>> = LazyLock::new(|| {
    ROUTES
        .iter()
        .map(|r| Compiled {
            route: r,
            specs: if let Fixed(s) = r.params { specs(s) } else { Vec::new() },
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
pub(crate) struct Call<'a> {
    pub st: &'a mut State,
    pub req: &'a Request,
    pub args: BTreeMap<String, String>,
    pub who: &'a Identity,
    pub tokens: &'a Tokens,
}

impl Call<'_> {
    pub(crate) fn arg(&self, name: &str) -> &str {
        self.args.get(name).map(String::as_str).unwrap_or("")
    }

    pub(crate) fn node(&self) -> &str {
        self.arg("node")
    }

    pub(crate) fn kind(&self) -> GuestKind {
        if self.arg("kind") == "lxc" {
            GuestKind::Lxc
        } else {
            GuestKind::Qemu
        }
    }

    pub(crate) fn vmid(&self) -> u32 {
        self.arg("vmid").parse().unwrap_or(0)
    }

    /// The guest the path names, as PVE finds it: only in that node's config directory.
    pub(crate) fn guest(&self) -> Result<&Guest, Reply> {
        let (node, kind, vmid) = (self.node(), self.kind(), self.vmid());
        match self.st.guests.get(&vmid) {
            Some(g) if g.node == node && g.kind == kind => Ok(g),
            _ => Err(config_missing(node, kind, vmid)),
        }
    }

    pub(crate) fn can(&self, path: &str, privs: &[&str]) -> bool {
        self.tokens.has_any(self.who, path, privs)
    }

    pub(crate) fn user(&self) -> String {
        self.who.token_id.clone()
    }

    /// Start a task about guest `g` whose effect changes that guest, and answer its UPID.
    /// The task fails with PVE's message if the guest is gone by the time it finishes.
    pub(crate) fn guest_task(
        &mut self,
        g: &Guest,
        task_type: &str,
        first: Vec<String>,
        effect: impl FnOnce(&mut Guest) -> Result<Vec<String>, String> + Send + 'static,
    ) -> Reply {
        let (vmid, word) = (g.vmid, g.word());
        let user = self.user();
        let upid = self.st.start_task(
            &g.node,
            task_type,
            &vmid.to_string(),
            &user,
            first,
            Box::new(move |st: &mut State| {
                let g = st
                    .guests
                    .get_mut(&vmid)
                    .ok_or_else(|| format!("{word} {vmid} does not exist"))?;
                effect(g)
            }),
        );
        Reply::data(serde_json::json!(upid))
    }
}

/// pve-guest-common `AbstractConfig::check_lock`: a locked config refuses the operation with
/// "VM is locked (backup)" (`guest_type` is "VM" for QEMU, "CT" for LXC).
pub(crate) fn check_lock(g: &Guest) -> Result<(), String> {
    match &g.lock {
        Some(lock) => Err(format!("{} is locked ({lock})", g.word())),
        None => Ok(()),
    }
}

/// `skiplock`, which only `root@pam` itself may use (qemu-server and pve-container:
/// "Only root may use this option."). An API token is never `root@pam`, even root's own
/// (`RPCEnvironment::get_user` is the token id), so a token always gets the 400.
pub(crate) fn skiplock(call: &Call<'_>) -> Result<bool, Reply> {
    if super::params::flag(&call.req.params, "skiplock") {
        return Err(Reply::param_error("skiplock", "Only root may use this option."));
    }
    Ok(false)
}

/// PVE's message for a guest that is not on the node the path names.
pub(crate) fn config_missing_message(node: &str, kind: GuestKind, vmid: u32) -> String {
    let dir = if kind == GuestKind::Qemu { "qemu-server" } else { "lxc" };
    format!("Configuration file 'nodes/{node}/{dir}/{vmid}.conf' does not exist")
}

pub(crate) fn config_missing(node: &str, kind: GuestKind, vmid: u32) -> Reply {
    Reply::error(500, config_missing_message(node, kind, vmid))
}

/// Answer one authenticated request against the state.
/// One request through pveproxy's order: the route, the node being reachable, the
/// permission, the parameters (path parameters included), then the handler.
pub(crate) fn dispatch(st: &mut State, req: &Request, who: &Identity, tokens: &Tokens) -> Reply {
    let segs = req.segments();
    let Some((compiled, args)) = COMPILED
        .iter()
        .filter(|c| c.route.method == req.method)
        .find_map(|c| matches(c.route.pattern, &segs).map(|a| (c, a)))
    else {
        return not_implemented(req);
    };
    if let Err(reply) = node_reachable(st, &args) {
        return reply;
    }
    if let Some((path, privs)) = permission(compiled.route.perm, &args, st.major())
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
    let kind = if segs.get(2) == Some(&"lxc") {
        GuestKind::Lxc
    } else {
        GuestKind::Qemu
    };
    let dynamic;
    let specs: &[ParamSpec] = match compiled.route.params {
        Fixed(_) => &compiled.specs,
        ByPath(f) => match f(kind, args.get("action").map(String::as_str).unwrap_or("")) {
            Some(s) => {
                dynamic = specs(&s);
                &dynamic
            }
            None => return not_implemented(req),
        },
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

fn not_implemented(req: &Request) -> Reply {
    Reply::error(
        501,
        format!("Method '{} /api2/json{}' not implemented", req.method, req.path),
    )
}

/// pveproxy forwards `/nodes/{node}/…`: an unknown node fails the hostname lookup, an
/// offline one answers 595.
fn node_reachable(st: &State, args: &BTreeMap<String, String>) -> Result<(), Reply> {
    let Some(node) = args.get("node") else { return Ok(()) };
    match st.nodes.get(node) {
        None => Err(Reply::error(
            500,
            format!(
                "hostname lookup '{node}' failed - failed to get address info for: {node}: Name or service not known"
            ),
        )),
        Some(n) if !n.online => Err(Reply::bare(595, "No route to host")),
        Some(_) => Ok(()),
    }
}

/// The ACL path and privileges a route's permission names, for this request.
fn permission(
    perm: Perm,
    args: &BTreeMap<String, String>,
    major: PveMajor,
) -> Option<(String, &'static [&'static str])> {
    let arg = |k: &str| args.get(k).map(String::as_str).unwrap_or("");
    match perm {
        Perm::All => None,
        Perm::Root(p) => Some(("/".to_string(), p)),
        Perm::Node(p) => Some((format!("/nodes/{}", arg("node")), p)),
        Perm::Vm(p) => Some((format!("/vms/{}", arg("vmid")), p)),
        Perm::Storage(p) => Some((format!("/storage/{}", arg("storage")), p)),
        Perm::VmByVersion { v8, v9 } => Some((
            format!("/vms/{}", arg("vmid")),
            match major {
                PveMajor::V8 => v8,
                PveMajor::V9 => v9,
            },
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_spec_parses_and_patterns_match() {
        assert_eq!(COMPILED.len(), ROUTES.len());
        for kind in [GuestKind::Qemu, GuestKind::Lxc] {
            for a in ["start", "shutdown", "stop", "reboot", "suspend", "resume"] {
                specs(&power_params(kind, a).unwrap());
            }
            for r in ROUTES {
                if let ByPath(f) = r.params
                    && let Some(s) = f(kind, "start")
                {
                    specs(&s);
                }
            }
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
