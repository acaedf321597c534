//! Snapshots: a tree per guest, with `current` pointing at the snapshot the live state
//! derives from. Rollback restores the saved config (and, for a QEMU snapshot with RAM,
//! the running state); deleting a snapshot re-parents its children.

use serde_json::{Value, json};

use super::Call;
use crate::sim::http::Reply;
use crate::sim::params;
use crate::sim::spec::{GuestKind, GuestStatus, SnapshotSpec};
use crate::sim::state::now_secs;

pub(super) fn create_params(kind: GuestKind, _: &str) -> Option<String> {
    Some(match kind {
        GuestKind::Qemu => "node:str vmid:int(100..999999999) snapname:str description:str? vmstate:bool?".into(),
        GuestKind::Lxc => "node:str vmid:int(100..999999999) snapname:str description:str?".into(),
    })
}

/// pve-configid: a letter, then letters, digits, '_' and '-'; at most 40.
fn valid_snapname(name: &str) -> bool {
    name.len() >= 2
        && name.len() <= 40
        && name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

pub(super) fn list(call: &mut Call<'_>) -> Reply {
    let g = match call.guest() {
        Ok(g) => g,
        Err(r) => return r,
    };
    let mut rows: Vec<Value> = g
        .snapshots
        .iter()
        .map(|s| {
            let mut r = json!({"name": s.name, "snaptime": s.snaptime, "description": s.description});
            if let Some(p) = &s.parent {
                r["parent"] = json!(p);
            }
            if g.kind == GuestKind::Qemu {
                r["vmstate"] = json!(i32::from(s.vmstate));
            }
            r
        })
        .collect();
    let mut current = json!({"name": "current", "description": "You are here!", "running": i32::from(g.running()),
                             "digest": super::config::digest(&g.config)});
    if let Some(p) = &g.parent {
        current["parent"] = json!(p);
    }
    rows.push(current);
    // PVE returns them in no particular order.
    rows.reverse();
    Reply::data(Value::Array(rows))
}

pub(super) fn create(call: &mut Call<'_>) -> Reply {
    let g = match call.guest() {
        Ok(g) => g.clone(),
        Err(r) => return r,
    };
    let p = &call.req.params;
    let name = params::text(p, "snapname").unwrap_or_default();
    if !valid_snapname(&name) {
        return Reply::param_error(
            "snapname",
            format!("invalid format - invalid configuration ID '{name}'"),
        );
    }
    let description = params::text(p, "description").unwrap_or_default();
    let vmstate = params::flag(p, "vmstate") && g.running();
    let task_type = if g.kind == GuestKind::Qemu {
        "qmsnapshot"
    } else {
        "vzsnapshot"
    };
    let mut first = vec![];
    if vmstate {
        first.push("saving VM state and RAM using storage 'local-lvm'".into());
    }
    call.guest_task(&g, task_type, first, move |g| {
        // AbstractConfig::__snapshot_prepare: the lock, then the name.
        super::check_lock(g)?;
        if g.snapshots.iter().any(|s| s.name.eq_ignore_ascii_case(&name)) {
            return Err(format!("snapshot name '{name}' already used"));
        }
        g.snapshots.push(SnapshotSpec {
            name: name.clone(),
            parent: g.parent.clone(),
            description,
            snaptime: now_secs() as i64,
            vmstate,
        });
        g.snap_configs.insert(name.clone(), g.config.clone());
        g.parent = Some(name.clone());
        Ok(vec![format!("snapshot '{name}' created")])
    })
}

pub(super) fn rollback(call: &mut Call<'_>) -> Reply {
    let g = match call.guest() {
        Ok(g) => g.clone(),
        Err(r) => return r,
    };
    let name = call.arg("snapname").to_string();
    let start = params::flag(&call.req.params, "start");
    let task_type = if g.kind == GuestKind::Qemu {
        "qmrollback"
    } else {
        "vzrollback"
    };
    call.guest_task(&g, task_type, vec![], move |g| {
        let snap = g
            .snapshots
            .iter()
            .find(|s| s.name == name)
            .cloned()
            .ok_or_else(|| format!("snapshot '{name}' does not exist"))?;
        // AbstractConfig::snapshot_rollback checks the lock once the snapshot is found.
        super::check_lock(g)?;
        if let Some(cfg) = g.snap_configs.get(&name) {
            g.config = cfg.clone();
        }
        // The snapshot's config replaces the current one, pending changes included
        // (AbstractConfig::__snapshot_apply_config builds it anew).
        g.pending.clear();
        g.pending_delete.clear();
        g.parent = Some(name.clone());
        let running = (snap.vmstate && g.kind == GuestKind::Qemu) || start;
        g.status = if running {
            GuestStatus::Running
        } else {
            GuestStatus::Stopped
        };
        g.started_at = running.then(now_secs);
        Ok(vec![format!("rolled back to snapshot '{name}'")])
    })
}

pub(super) fn delete(call: &mut Call<'_>) -> Reply {
    let g = match call.guest() {
        Ok(g) => g.clone(),
        Err(r) => return r,
    };
    let name = call.arg("snapname").to_string();
    let task_type = if g.kind == GuestKind::Qemu {
        "qmdelsnapshot"
    } else {
        "vzdelsnapshot"
    };
    call.guest_task(&g, task_type, vec![], move |g| {
        let idx = g
            .snapshots
            .iter()
            .position(|s| s.name == name)
            .ok_or_else(|| format!("snapshot '{name}' does not exist"))?;
        // AbstractConfig::snapshot_delete takes the 'snapshot-delete' lock (`set_lock`,
        // which checks the lock first).
        super::check_lock(g)?;
        let removed = g.snapshots.remove(idx);
        for s in g
            .snapshots
            .iter_mut()
            .filter(|s| s.parent.as_deref() == Some(name.as_str()))
        {
            s.parent = removed.parent.clone();
        }
        if g.parent.as_deref() == Some(name.as_str()) {
            g.parent = removed.parent.clone();
        }
        g.snap_configs.remove(&name);
        Ok(vec![format!("snapshot '{name}' deleted")])
    })
}
