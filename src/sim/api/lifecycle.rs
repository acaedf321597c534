//! Clone and migrate, with PVE's preconditions.

use serde_json::{Map, Value, json};

use super::Call;
use crate::sim::http::Reply;
use crate::sim::params;
use crate::sim::spec::GuestKind;
use crate::sim::state::{Guest, State};

pub(super) fn clone_params(kind: GuestKind, _: &str) -> Option<String> {
    Some(match kind {
        GuestKind::Qemu => "node:str vmid:int(100..999999999) newid:int(100..999999999) bwlimit:int(0..)? description:str? format:enum(raw|qcow2|vmdk)? full:bool? name:str? pool:str? snapname:str? storage:str? target:str?".into(),
        GuestKind::Lxc => "node:str vmid:int(100..999999999) newid:int(100..999999999) bwlimit:num? description:str? full:bool? hostname:str? pool:str? snapname:str? storage:str? target:str?".into(),
    })
}

pub(super) fn migrate_params(kind: GuestKind, _: &str) -> Option<String> {
    Some(match kind {
        GuestKind::Qemu => "node:str vmid:int(100..999999999) target:str bwlimit:int(0..)? force:bool? migration_network:str? migration_type:enum(secure|insecure)? online:bool? targetstorage:str? with-local-disks:bool?".into(),
        GuestKind::Lxc => "node:str vmid:int(100..999999999) target:str bwlimit:num? online:bool? restart:bool? target-storage:str? timeout:int?".into(),
    })
}

/// Storage ids the guest's disks live on.
fn disk_storages(g: &Guest) -> Vec<String> {
    let mut v: Vec<String> = g
        .disks()
        .iter()
        .filter_map(|(_, d)| d.split(':').next().map(str::to_string))
        .collect();
    v.sort();
    v.dedup();
    v
}

fn local_disks(st: &State, g: &Guest) -> Vec<String> {
    g.disks()
        .into_iter()
        .filter(|(_, d)| {
            let storage = d.split(':').next().unwrap_or("");
            st.storages.get(storage).is_none_or(|s| !s.spec.shared)
        })
        .map(|(k, _)| k)
        .collect()
}

fn target_check(st: &State, source: &str, target: &str) -> Result<(), Reply> {
    if target == source {
        return Err(Reply::param_error("target", "target is local node."));
    }
    match st.nodes.get(target) {
        None => Err(Reply::error(500, format!("no such cluster node '{target}'"))),
        Some(n) if !n.online => Err(Reply::error(500, format!("target node '{target}' is not online"))),
        Some(_) => Ok(()),
    }
}

/// What a clone call asked for, once PVE's checks passed.
struct CloneJob {
    vmid: u32,
    newid: u32,
    full: bool,
    target: String,
    storage: Option<String>,
    name_key: &'static str,
    name: Option<String>,
    description: Option<String>,
}

/// `POST …/{qemu|lxc}/{vmid}/clone` (qemu-server `PVE::API2::Qemu` `clone_vm`,
/// pve-container `PVE::API2::LXC` `clone_vm`).
pub(super) fn clone(call: &mut Call<'_>) -> Reply {
    let g = match call.guest() {
        Ok(g) => g.clone(),
        Err(r) => return r,
    };
    let p = call.req.params.clone();
    let job = match clone_checks(call, &g, &p) {
        Ok(j) => j,
        Err(r) => return r,
    };
    let task_type = if g.kind == GuestKind::Qemu {
        "qmclone"
    } else {
        "vzclone"
    };
    let user = call.user();
    let first = vec![format!(
        "create {} clone of drive(s): {}",
        if job.full { "full" } else { "linked" },
        g.disks().iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>().join(", ")
    )];
    let upid = call.st.start_task(
        &g.node,
        task_type,
        &g.vmid.to_string(),
        &user,
        first,
        Box::new(move |st: &mut State| {
            let (vmid, newid) = (job.vmid, job.newid);
            if st.guests.contains_key(&newid) {
                return Err(format!("unable to create VM {newid}: config file already exists"));
            }
            let src = st
                .guests
                .get(&vmid)
                .cloned()
                .ok_or_else(|| format!("VM {vmid} does not exist"))?;
            let config = cloned_config(&src, &job);
            st.guests
                .insert(newid, Guest::fresh(newid, src.kind, &job.target, config));
            Ok(vec![format!("clone {vmid} -> {newid} finished")])
        }),
    );
    Reply::data(json!(upid))
}

/// PVE's checks before a clone task starts: the source's lock, `VM.Allocate` on the new id,
/// a free new id, full or linked, the target node and the target storage.
fn clone_checks(call: &Call<'_>, g: &Guest, p: &Map<String, Value>) -> Result<CloneJob, Reply> {
    // qemu-server `clone_vm` checks the source's lock; pve-container's `clone_vm` takes a
    // 'disk' lock on it (`set_lock`), which checks it too.
    super::check_lock(g).map_err(|e| Reply::error(500, e))?;
    let newid = params::int(p, "newid").unwrap_or(0) as u32;
    let allocate = format!("/vms/{newid}");
    if !call.can(&allocate, &["VM.Allocate"]) {
        return Err(Reply::error(
            403,
            format!("Permission check failed ({allocate}, VM.Allocate)"),
        ));
    }
    if call.st.guests.contains_key(&newid) {
        return Err(Reply::error(
            500,
            format!("unable to create VM {newid}: config file already exists"),
        ));
    }
    // PVE's default: a full clone of a guest, a linked clone of a template.
    let full = if p.contains_key("full") {
        params::flag(p, "full")
    } else {
        !g.template
    };
    if !full && (p.contains_key("storage") || p.contains_key("format")) {
        return Err(Reply::error(
            500,
            "parameter 'storage'/'format' is only valid for full clones",
        ));
    }
    if !full && !g.template {
        return Err(Reply::error(
            500,
            "linked clones are only possible from templates; use full=1",
        ));
    }
    if g.kind == GuestKind::Lxc && full && g.running() && !p.contains_key("snapname") {
        return Err(Reply::error(
            500,
            "Full clone of a running container needs a snapshot (snapname), or stop the container first",
        ));
    }
    let target = params::text(p, "target").unwrap_or_else(|| g.node.clone());
    if target != g.node {
        target_check(call.st, &g.node, &target)?;
        if !local_disks(call.st, g).is_empty() && !full {
            return Err(Reply::error(
                500,
                "can't clone to a different node: linked clones need shared storage",
            ));
        }
    }
    let storage = params::text(p, "storage");
    if let Some(s) = &storage {
        match call.st.storages.get(s) {
            None => return Err(Reply::error(500, format!("storage '{s}' does not exist"))),
            Some(st) if !st.spec.content.iter().any(|c| c == "images" || c == "rootdir") => {
                return Err(Reply::error(500, format!("storage '{s}' does not support vm images")));
            }
            _ => {}
        }
    }
    let name_key = if g.kind == GuestKind::Qemu { "name" } else { "hostname" };
    Ok(CloneJob {
        vmid: g.vmid,
        newid,
        full,
        target,
        storage,
        name_key,
        name: params::text(p, name_key),
        description: params::text(p, "description"),
    })
}

/// The clone's config: the source's, with each disk a new volume (full) or a volume based
/// on the template's (linked), no unused disks, not a template, and its new name.
fn cloned_config(src: &Guest, job: &CloneJob) -> Map<String, Value> {
    let mut config: Map<String, Value> = Map::new();
    let mut n = 0;
    for (k, v) in &src.config {
        if k.starts_with("unused") {
            continue;
        }
        let value = match v.as_str() {
            Some(d) if crate::sim::state::is_disk_key(k) && !d.contains("media=cdrom") && !d.contains("cloudinit") => {
                let (vol, rest) = d.split_once(',').unwrap_or((d, ""));
                let store = job
                    .storage
                    .clone()
                    .unwrap_or_else(|| vol.split(':').next().unwrap_or("local-lvm").to_string());
                let disk = format!("vm-{}-disk-{n}", job.newid);
                n += 1;
                let volume = if job.full {
                    format!("{store}:{disk}")
                } else {
                    format!("{vol}/{disk}")
                };
                Value::String(if rest.is_empty() {
                    volume
                } else {
                    format!("{volume},{rest}")
                })
            }
            _ => v.clone(),
        };
        config.insert(k.clone(), value);
    }
    config.remove("template");
    let default_name = format!("Copy-of-VM-{}", src.name());
    config.insert(job.name_key.into(), json!(job.name.clone().unwrap_or(default_name)));
    if let Some(d) = &job.description {
        config.insert("description".into(), json!(d));
    }
    config
}

/// `GET …/qemu/{vmid}/migrate`: what would block a migration.
pub(super) fn migrate_check(call: &mut Call<'_>) -> Reply {
    let g = match call.guest() {
        Ok(g) => g.clone(),
        Err(r) => return r,
    };
    // `migrate_vm_precondition`: "try to detect errors early".
    if let Err(e) = super::check_lock(&g) {
        return Reply::error(500, e);
    }
    let local = local_disks(call.st, &g);
    let allowed: Vec<String> = call
        .st
        .nodes
        .values()
        .filter(|n| n.online && n.name != g.node)
        .map(|n| n.name.clone())
        .collect();
    let not_allowed: Map<String, Value> = call
        .st
        .nodes
        .values()
        .filter(|n| !n.online)
        .map(|n| (n.name.clone(), json!({"unavailable_storages": disk_storages(&g)})))
        .collect();
    let local_disks: Vec<Value> = g
        .disks()
        .into_iter()
        .filter(|(k, _)| local.contains(k))
        .map(|(k, d)| json!({"drivename": k, "volid": d.split(',').next().unwrap_or(""), "size": crate::sim::state::disk_size(&d).unwrap_or(0), "is_unused": 0}))
        .collect();
    Reply::data(json!({
        "running": i32::from(g.running()), "allowed_nodes": allowed, "not_allowed_nodes": not_allowed,
        "local_disks": local_disks, "local_resources": [], "mapped-resources": [],
    }))
}

/// `POST …/{qemu|lxc}/{vmid}/migrate` (qemu-server `PVE::API2::Qemu` `migrate_vm`,
/// pve-container `PVE::API2::LXC` `migrate_vm`).
pub(super) fn migrate(call: &mut Call<'_>) -> Reply {
    let g = match call.guest() {
        Ok(g) => g.clone(),
        Err(r) => return r,
    };
    let p = call.req.params.clone();
    let target = params::text(&p, "target").unwrap_or_default();
    if let Err(r) = migrate_checks(call.st, &g, &p, &target) {
        return r;
    }
    let online = params::flag(&p, "online");
    let vmid = g.vmid;
    let kind = g.kind;
    let task_type = if kind == GuestKind::Qemu {
        "qmigrate"
    } else {
        "vzmigrate"
    };
    let user = call.user();
    let first = vec![format!(
        "starting migration of {} {vmid} to node '{target}'",
        if kind == GuestKind::Qemu { "VM" } else { "CT" }
    )];
    let upid = call.st.start_task(
        &g.node,
        task_type,
        &vmid.to_string(),
        &user,
        first,
        Box::new(move |st: &mut State| run_migrate(st, vmid, kind, online, &target)),
    );
    Reply::data(json!(upid))
}

/// PVE's checks before a migration task starts: the target node, the lock (QEMU only; a
/// container's is checked in the worker), and what a running guest needs.
fn migrate_checks(st: &State, g: &Guest, p: &Map<String, Value>, target: &str) -> Result<(), Reply> {
    target_check(st, &g.node, target)?;
    // qemu-server `migrate_vm` checks the lock early; pve-container's in the worker
    // (`PVE::LXC::Migrate::prepare`).
    if g.kind == GuestKind::Qemu {
        super::check_lock(g).map_err(|e| Reply::error(500, e))?;
    }
    let online = params::flag(p, "online");
    let restart = params::flag(p, "restart");
    match g.kind {
        GuestKind::Qemu if g.running() && !online => {
            Err(Reply::error(500, "can't migrate running VM without --online"))
        }
        GuestKind::Qemu if g.running() && !local_disks(st, g).is_empty() && !params::flag(p, "with-local-disks") => {
            Err(Reply::error(
                500,
                "can't live migrate attached local disks without with-local-disks option",
            ))
        }
        GuestKind::Lxc if g.running() && !online && !restart => Err(Reply::error(
            500,
            "can't migrate running container without --online or --restart",
        )),
        _ => Ok(()),
    }
}

/// The migration task's effect: the worker's own checks, then the guest on the target.
fn run_migrate(st: &mut State, vmid: u32, kind: GuestKind, online: bool, target: &str) -> Result<Vec<String>, String> {
    if kind == GuestKind::Lxc
        && let Some(g) = st.guests.get(&vmid)
    {
        super::check_lock(g)?;
    }
    if kind == GuestKind::Lxc && online && st.guests.get(&vmid).is_some_and(|g| g.running()) {
        return Err("lxc live migration is currently not implemented".into());
    }
    if !st.node_online(target) {
        return Err(format!("migration aborted: target node '{target}' is not online"));
    }
    let g = st
        .guests
        .get_mut(&vmid)
        .ok_or_else(|| format!("VM {vmid} does not exist"))?;
    g.node = target.to_string();
    Ok(vec!["migration finished successfully (duration 00:00:01)".to_string()])
}
