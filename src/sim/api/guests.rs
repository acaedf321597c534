//! Guest endpoints: live status, config, power actions, destroy. The QEMU/LXC differences
//! are PVE's: LXC checks the state synchronously (500), QEMU `start` of a running VM fails
//! inside the task.

use serde_json::{Value, json};

use super::Call;
use super::cluster::{fraction, guest_cpu, guest_mem};
use crate::sim::http::Reply;
use crate::sim::params;
use crate::sim::spec::{GuestKind, GuestStatus};
use crate::sim::state::{Guest, State, now_secs};

pub(super) fn status_current(call: &mut Call<'_>) -> Reply {
    let g = match call.guest() {
        Ok(g) => g,
        Err(r) => return r,
    };
    let running = g.running();
    let seed = u64::from(g.vmid);
    let counter = |k: u64, scale: f64| {
        if running {
            (fraction(seed + k) * scale) as u64
        } else {
            0
        }
    };
    let mut out = json!({
        "vmid": g.vmid, "name": g.name(), "status": if running { "running" } else { "stopped" },
        "uptime": g.uptime(), "cpus": g.cores(), "cpu": guest_cpu(g), "mem": guest_mem(g), "maxmem": g.maxmem(),
        "maxdisk": g.maxdisk(), "netin": counter(1, 9e9), "netout": counter(2, 3e9), "ha": {"managed": 0},
    });
    if running {
        out["pid"] = json!(100_000 + g.vmid);
    }
    if let Some(tags) = g.config.get("tags") {
        out["tags"] = tags.clone();
    }
    if g.template {
        out["template"] = json!(1);
    }
    if let Some(lock) = &g.lock {
        out["lock"] = json!(lock);
    }
    match g.kind {
        GuestKind::Qemu => {
            out["qmpstatus"] = json!(match g.status {
                GuestStatus::Running => "running",
                GuestStatus::Paused => "paused",
                GuestStatus::Stopped => "stopped",
            });
            out["disk"] = json!(0);
            if g.config
                .get("agent")
                .is_some_and(|a| a.as_str().is_some_and(|s| s.starts_with('1')) || a == 1)
            {
                out["agent"] = json!(1);
            }
            if running {
                out["diskread"] = json!(counter(3, 5e9));
                out["diskwrite"] = json!(counter(4, 5e9));
                out["running-qemu"] = json!("9.2.0");
                out["running-machine"] = json!("pc-q35-9.2+pve1");
            }
        }
        GuestKind::Lxc => {
            out["type"] = json!("lxc");
            let swap = g.config.get("swap").and_then(Value::as_u64).unwrap_or(0) * 1024 * 1024;
            out["maxswap"] = json!(swap);
            out["swap"] = json!(0);
            out["disk"] = json!(if running { g.maxdisk() / 4 } else { 0 });
            out["diskread"] = json!(counter(3, 5e9));
            out["diskwrite"] = json!(counter(4, 5e9));
        }
    }
    Reply::data(out)
}

pub(super) fn config(call: &mut Call<'_>) -> Reply {
    let g = match call.guest() {
        Ok(g) => g,
        Err(r) => return r,
    };
    let mut cfg = super::config::effective(g, params::flag(&call.req.params, "current"));
    if let Some(snap) = params::text(&call.req.params, "snapshot") {
        if !g.snapshots.iter().any(|s| s.name == snap) {
            return Reply::error(500, format!("snapshot '{snap}' does not exist"));
        }
        cfg.insert(
            "snaptime".into(),
            json!(g.snapshots.iter().find(|s| s.name == snap).map(|s| s.snaptime)),
        );
    }
    // The digest changes whenever the config does.
    cfg.insert("digest".into(), json!(super::config::digest(&g.config)));
    if let Some(parent) = &g.parent
        && params::text(&call.req.params, "snapshot").is_none()
    {
        cfg.insert("parent".into(), json!(parent));
    }
    // The lock is a key of the config file.
    if let Some(lock) = &g.lock
        && params::text(&call.req.params, "snapshot").is_none()
    {
        cfg.insert("lock".into(), json!(lock));
    }
    Reply::data(Value::Object(cfg))
}

/// `GET /nodes/{node}/qemu` and `…/lxc`: the guests of one kind on one node.
pub(super) fn list_on_node(call: &mut Call<'_>) -> Reply {
    let kind = if call.req.path.ends_with("/lxc") {
        GuestKind::Lxc
    } else {
        GuestKind::Qemu
    };
    let node = call.node().to_string();
    let rows: Vec<Value> = call
        .st
        .guests
        .values()
        .filter(|g| g.node == node && g.kind == kind)
        .filter(|g| call.can(&format!("/vms/{}", g.vmid), &["VM.Audit"]))
        .map(|g| {
            let mut r = super::cluster::guest_row(g);
            if let Some(o) = r.as_object_mut() {
                o.remove("id");
                o.remove("node");
                o.insert("cpus".into(), json!(g.cores()));
            }
            r
        })
        .collect();
    Reply::data(Value::Array(rows))
}

fn set_status(st: &mut State, vmid: u32, status: GuestStatus) {
    if let Some(g) = st.guests.get_mut(&vmid) {
        if g.status == GuestStatus::Stopped && status != GuestStatus::Stopped {
            g.started_at = Some(now_secs());
        }
        if status == GuestStatus::Stopped {
            g.started_at = None;
        }
        g.status = status;
    }
}

pub(super) fn power(call: &mut Call<'_>) -> Reply {
    let g = match call.guest() {
        Ok(g) => g.clone(),
        Err(r) => return r,
    };
    let action = call.arg("action").to_string();
    // `skiplock` is taken from the parameters first, before any state check.
    let skip = match super::skiplock(call) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let (vmid, node, word) = (g.vmid, g.node.clone(), g.word());
    let running = g.running();
    if g.template && action == "start" {
        return Reply::error(500, "you can't start a vm if it's a template");
    }
    let task_type = power_task_type(g.kind, &action, params::flag(&call.req.params, "todisk"));
    if let Err(r) = power_state_check(g.kind, &action, vmid, running) {
        return r;
    }
    let kind = g.kind;
    let effect = power_effect(kind, &action, vmid, word);
    // The lock is checked in the worker, when the action runs.
    let effect: crate::sim::state::Effect = Box::new(move |st: &mut State| {
        if let Some(g) = st.guests.get(&vmid)
            && let Some(lock) = g.lock.as_deref()
        {
            // qemu-server vm_start: a guest being backed up is only resumed.
            if kind == GuestKind::Qemu && action == "start" && lock == "backup" && g.running() {
                return Ok(vec![]);
            }
            if !skip && power_checks_lock(kind, &action, lock) {
                super::check_lock(g)?;
            }
        }
        effect(st)
    });
    let user = call.user();
    let first = vec![format!("{} {word} {vmid}", action_verb(call.arg("action")))];
    let upid = call
        .st
        .start_task(&node, task_type, &vmid.to_string(), &user, first, effect);
    Reply::data(json!(upid))
}

/// The task type PVE gives a power action.
fn power_task_type(kind: GuestKind, action: &str, todisk: bool) -> &'static str {
    match (kind, action) {
        (GuestKind::Qemu, "suspend") if todisk => "qmsuspend",
        (GuestKind::Qemu, "suspend") => "qmpause",
        (GuestKind::Qemu, a) => match a {
            "start" => "qmstart",
            "shutdown" => "qmshutdown",
            "stop" => "qmstop",
            "reboot" => "qmreboot",
            "reset" => "qmreset",
            _ => "qmresume",
        },
        (GuestKind::Lxc, a) => match a {
            "start" => "vzstart",
            "shutdown" => "vzshutdown",
            "stop" => "vzstop",
            "reboot" => "vzreboot",
            "suspend" => "vzsuspend",
            _ => "vzresume",
        },
    }
}

/// The state checks PVE makes before a power task starts.
fn power_state_check(kind: GuestKind, action: &str, vmid: u32, running: bool) -> Result<(), Reply> {
    match (kind, action) {
        (GuestKind::Lxc, "start") if running => Err(Reply::error(500, format!("CT {vmid} already running"))),
        (GuestKind::Lxc, "stop" | "shutdown" | "suspend") if !running => {
            Err(Reply::error(500, format!("CT {vmid} not running")))
        }
        (GuestKind::Lxc, "reboot") if !running => Err(Reply::error(500, format!("VM {vmid} not running"))),
        (GuestKind::Qemu, "reboot" | "reset" | "suspend" | "resume") if !running => {
            Err(Reply::error(500, format!("VM {vmid} not running")))
        }
        _ => Ok(()),
    }
}

/// Whether a power action refuses a guest with this lock (without `skiplock`):
/// qemu-server `vm_start` (not when `suspended`), `_do_vm_stop` (stop, shutdown, reboot),
/// `vm_reset`, `RunState::vm_suspend`/`vm_resume` (not while a `backup` runs);
/// pve-container `API2::LXC::Status` `vm_start`/`vm_stop` (not when `mounted`),
/// `vm_shutdown`, `vm_suspend` (always), reboot and resume (never).
fn power_checks_lock(kind: GuestKind, action: &str, lock: &str) -> bool {
    match (kind, action) {
        (GuestKind::Qemu, "start") => lock != "suspended",
        (GuestKind::Qemu, "stop" | "shutdown" | "reboot" | "reset") => true,
        (GuestKind::Qemu, "suspend" | "resume") => lock != "backup",
        (GuestKind::Lxc, "start" | "stop") => lock != "mounted",
        (GuestKind::Lxc, "shutdown" | "suspend") => true,
        _ => false,
    }
}

/// What a power action does to the state when its task finishes.
fn power_effect(kind: GuestKind, action: &str, vmid: u32, word: &'static str) -> crate::sim::state::Effect {
    match action {
        "start" => Box::new(move |st: &mut State| {
            if st.guests.get(&vmid).is_some_and(|g| g.running()) {
                return Err(format!("{word} {vmid} already running"));
            }
            set_status(st, vmid, GuestStatus::Running);
            // Pending changes are written into the config at start (qemu-server
            // vm_start, pve-container vm_start).
            if let Some(g) = st.guests.get_mut(&vmid) {
                super::config::apply_pending(g);
            }
            Ok(vec![])
        }),
        "shutdown" | "stop" => Box::new(move |st: &mut State| {
            set_status(st, vmid, GuestStatus::Stopped);
            // A container applies them when it stops (lxc-pve-poststop-hook).
            if kind == GuestKind::Lxc
                && let Some(g) = st.guests.get_mut(&vmid)
            {
                super::config::apply_pending(g);
            }
            Ok(vec![])
        }),
        "reboot" | "reset" => {
            // A reboot stops and starts the guest; a QEMU reset does not restart it.
            let restarts = action == "reboot";
            Box::new(move |st: &mut State| {
                if let Some(g) = st.guests.get_mut(&vmid) {
                    g.started_at = Some(now_secs());
                    g.status = GuestStatus::Running;
                    if restarts {
                        super::config::apply_pending(g);
                    }
                }
                Ok(vec![])
            })
        }
        "suspend" if kind == GuestKind::Qemu => Box::new(move |st: &mut State| {
            set_status(st, vmid, GuestStatus::Paused);
            Ok(vec![])
        }),
        "resume" if kind == GuestKind::Qemu => Box::new(move |st: &mut State| {
            set_status(st, vmid, GuestStatus::Running);
            Ok(vec![])
        }),
        // LXC suspend/resume (CRIU, experimental): the container keeps running here.
        _ => Box::new(|_: &mut State| Ok(vec!["container freeze state changed".into()])),
    }
}

fn action_verb(action: &str) -> &'static str {
    match action {
        "start" => "starting",
        "shutdown" => "shutting down",
        "stop" => "stopping",
        "reboot" => "rebooting",
        "reset" => "resetting",
        "suspend" => "suspending",
        _ => "resuming",
    }
}

pub(super) fn destroy(call: &mut Call<'_>) -> Reply {
    let g = match call.guest() {
        Ok(g) => g.clone(),
        Err(r) => return r,
    };
    let vmid = g.vmid;
    let force = params::flag(&call.req.params, "force");
    let purge = params::flag(&call.req.params, "purge");
    let skip = match destroy_checks(call, &g, force) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let disks: Vec<String> = g
        .disks()
        .into_iter()
        .map(|(_, d)| d.split(',').next().unwrap_or("").to_string())
        .collect();
    let (node, kind) = (g.node.clone(), g.kind);
    let task_type = if kind == GuestKind::Qemu {
        "qmdestroy"
    } else {
        "vzdestroy"
    };
    let user = call.user();
    let task_node = node.clone();
    let upid = call.st.start_task(
        &node,
        task_type,
        &vmid.to_string(),
        &user,
        vec![],
        Box::new(move |st: &mut State| {
            let Some(g) = st.guests.get(&vmid) else {
                return Err(super::config_missing_message(&task_node, kind, vmid));
            };
            if !skip && g.lock.as_deref() != Some("suspended") {
                super::check_lock(g)?;
            }
            st.guests.remove(&vmid);
            let mut lines: Vec<String> = disks
                .iter()
                .map(|d| format!("Removing image: 100% complete...done. ({d})"))
                .collect();
            if purge {
                lines.push(format!("purging VM {vmid} from related configurations.."));
            }
            Ok(lines)
        }),
    );
    Reply::data(json!(upid))
}

/// PVE's checks before a destroy task starts, in its order: protection, `skiplock`, the
/// lock (containers only here), and a running guest. Gives whether `skiplock` was given.
fn destroy_checks(call: &Call<'_>, g: &Guest, force: bool) -> Result<bool, Reply> {
    let vmid = g.vmid;
    if g.config.get("protection").is_some_and(|p| p == 1 || p == "1") {
        return Err(Reply::error(
            500,
            format!("can't remove {} {vmid} - protection mode enabled", g.word()),
        ));
    }
    let skip = super::skiplock(call)?;
    // pve-container `destroy_vm` checks the lock early, after the protection; qemu-server's
    // `destroy_vm` in the worker (not for a `suspended` lock).
    if g.kind == GuestKind::Lxc {
        super::check_lock(g).map_err(|e| Reply::error(500, e))?;
    }
    match g.kind {
        GuestKind::Qemu if g.running() => Err(Reply::error(500, format!("VM {vmid} is running - destroy failed"))),
        GuestKind::Lxc if g.running() && !force => Err(Reply::error(
            500,
            format!("unable to destroy CT {vmid} - container is running"),
        )),
        _ => Ok(skip),
    }
}
