//! vzdump backups, and creating a guest (or restoring one from a backup):
//! `POST /nodes/{node}/qemu` with `archive`, `POST /nodes/{node}/lxc` with `ostemplate` +
//! `restore=1`.

use serde_json::{Map, Value, json};

use super::Call;
use crate::human::iso_time as iso;
use crate::sim::http::Reply;
use crate::sim::params;
use crate::sim::spec::{GuestKind, GuestStatus, VolumeSpec};
use crate::sim::state::{Guest, State, now_secs};

pub(super) const VZDUMP_PARAMS: &str = "node:str all:bool? bwlimit:int(0..)? compress:enum(0|1|gzip|lzo|zstd)? dumpdir:str? exclude:list? fleecing:str? ionice:int(0..8)? job-id:str? lockwait:int(0..)? mailnotification:enum(always|failure)? mailto:list? maxfiles:int(1..)? mode:enum(snapshot|suspend|stop)? notes-template:str? notification-mode:enum(auto|legacy-sendmail|notification-system)? notification-policy:enum(always|failure|never)? notification-target:str? pbs-change-detection-mode:enum(legacy|data|metadata)? performance:str? pigz:int? pool:str? protected:bool? prune-backups:str? quiet:bool? remove:bool? script:str? stdexcludes:bool? stdout:bool? stop:bool? stopwait:int(0..)? storage:str? tmpdir:str? vmid:list? zstd:int?";

pub(super) fn create_params(kind: GuestKind, _: &str) -> Option<String> {
    let keys = super::config::keys(kind);
    Some(match kind {
        GuestKind::Qemu => format!(
            "node:str vmid:int(100..999999999) {keys} archive:str? storage:str? force:bool? unique:bool? pool:str? bwlimit:int(0..)? live-restore:bool? start:bool?"
        ),
        GuestKind::Lxc => format!(
            "node:str vmid:int(100..999999999) {keys} ostemplate:str restore:bool? force:bool? storage:str? unique:bool? pool:str? bwlimit:num? start:bool? ignore-unpack-errors:bool? password:str? ssh-public-keys:str?"
        ),
    })
}

/// `2026_11_24-11_00_00`, as vzdump names its files.
fn stamp(secs: i64) -> String {
    let (y, m, d, h, mi, s) = crate::human::utc_parts(secs);
    format!("{y:04}_{m:02}_{d:02}-{h:02}_{mi:02}_{s:02}")
}

/// What a vzdump call asked for, once PVE's checks passed (`PVE::API2::VZDump` `vzdump`).
struct BackupJob {
    node: String,
    storage: String,
    /// The guests asked for that live on this node, in order.
    local: Vec<u32>,
    /// Those this call locked `backup` itself (the others were locked already).
    locked_here: Vec<u32>,
    compress: String,
    notes: Option<String>,
    protected: bool,
}

pub(super) fn vzdump(call: &mut Call<'_>) -> Reply {
    let p = call.req.params.clone();
    let node = call.node().to_string();
    let (wanted, storage) = match vzdump_checks(call, &p, &node) {
        Ok(v) => v,
        Err(reply) => return reply,
    };
    let local: Vec<u32> = wanted
        .iter()
        .copied()
        .filter(|id| call.st.guests.get(id).is_some_and(|g| g.node == node))
        .collect();
    let external: Vec<u32> = wanted.iter().copied().filter(|id| !local.contains(id)).collect();
    let mode = params::text(&p, "mode").unwrap_or_else(|| "snapshot".into());
    let id = if wanted.len() == 1 && local.len() == 1 {
        local[0].to_string()
    } else {
        String::new()
    };
    let mut first = vec![format!(
        "INFO: starting new backup job: vzdump {} --storage {storage} --mode {mode}",
        join(&wanted, " ")
    )];
    if !external.is_empty() {
        first.push(format!("INFO: skip external VMs: {}", join(&external, ", ")));
    }
    let locked_here = lock_for_backup(call.st, &local);
    let job = BackupJob {
        node: node.clone(),
        storage,
        local,
        locked_here,
        compress: params::text(&p, "compress").unwrap_or_else(|| "0".into()),
        notes: params::text(&p, "notes-template"),
        protected: params::flag(&p, "protected"),
    };
    let user = call.user();
    let upid = call.st.start_task(
        &node,
        "vzdump",
        &id,
        &user,
        first,
        Box::new(move |st: &mut State| run_backup(st, &job)),
    );
    Reply::data(json!(upid))
}

fn join(ids: &[u32], sep: &str) -> String {
    ids.iter().map(u32::to_string).collect::<Vec<_>>().join(sep)
}

/// PVE's checks before a backup task starts: dependent parameters, the guests asked for,
/// `VM.Backup` on each, the target storage and `Datastore.AllocateSpace` on it. Gives the
/// guests asked for and the storage.
fn vzdump_checks(call: &Call<'_>, p: &Map<String, Value>, node: &str) -> Result<(Vec<u32>, String), Reply> {
    for (dep, name) in [("notes-template", "storage"), ("protected", "storage")] {
        if p.contains_key(dep) && !p.contains_key(name) {
            return Err(Reply::param_error(
                name,
                format!("missing property required by '{dep}'"),
            ));
        }
    }
    let wanted: Vec<u32> = if params::flag(p, "all") {
        call.st
            .guests
            .values()
            .filter(|g| g.node == node)
            .map(|g| g.vmid)
            .collect()
    } else {
        match params::list(p, "vmid") {
            Some(list) => list.iter().filter_map(|v| v.trim().parse().ok()).collect(),
            None => {
                return Err(Reply::param_error("vmid", "property is missing and it is not optional"));
            }
        }
    };
    for id in &wanted {
        if !call.can(&format!("/vms/{id}"), &["VM.Backup"]) {
            return Err(Reply::error(
                403,
                format!("Permission check failed (/vms/{id}, VM.Backup)"),
            ));
        }
    }
    let storage = params::text(p, "storage").unwrap_or_else(|| "local".into());
    match call.st.storages.get(&storage) {
        None => return Err(Reply::error(500, format!("storage '{storage}' does not exist"))),
        Some(s) if !s.spec.content.iter().any(|c| c == "backup") => {
            return Err(Reply::error(
                500,
                format!("can't use storage '{storage}' for backups - wrong content type"),
            ));
        }
        Some(s) if !s.on_node(node) => {
            return Err(Reply::error(
                500,
                format!("storage '{storage}' is not available on node '{node}'"),
            ));
        }
        _ => {}
    }
    if !call.can(&format!("/storage/{storage}"), &["Datastore.AllocateSpace"]) {
        return Err(Reply::error(
            403,
            format!("Permission check failed (/storage/{storage}, Datastore.AllocateSpace)"),
        ));
    }
    Ok((wanted, storage))
}

/// PVE::VZDump `exec_backup_task`: each guest is locked 'backup' while it is backed up
/// (`lock_vm`, i.e. `set_lock`, which refuses a guest locked already). Gives the guests
/// locked here.
fn lock_for_backup(st: &mut State, local: &[u32]) -> Vec<u32> {
    let mut locked_here = Vec::new();
    for vmid in local {
        if let Some(g) = st.guests.get_mut(vmid)
            && g.lock.is_none()
        {
            g.lock = Some("backup".into());
            locked_here.push(*vmid);
        }
    }
    locked_here
}

/// The task's effect: one archive per guest, an error line per guest that could not be
/// backed up, and the job failed if any was.
fn run_backup(st: &mut State, job: &BackupJob) -> Result<Vec<String>, String> {
    if job.local.is_empty() {
        return Err("no guests to back up on this node".into());
    }
    let mut lines = Vec::new();
    let mut failed = 0;
    for vmid in &job.local {
        let Some(g) = st.guests.get(vmid).cloned() else {
            lines.push(format!("ERROR: Backup of VM {vmid} failed - guest does not exist"));
            failed += 1;
            continue;
        };
        if !job.locked_here.contains(vmid)
            && let Err(e) = super::check_lock(&g)
        {
            lines.push(format!("INFO: Starting Backup of VM {vmid} ({})", g.kind.as_str()));
            lines.push(format!("ERROR: Backup of VM {vmid} failed - {e}"));
            failed += 1;
            continue;
        }
        if let Some(g) = st.guests.get_mut(vmid) {
            g.lock = None;
        }
        back_up_one(st, job, &g, &mut lines);
    }
    if failed > 0 {
        st.effect_log.extend(lines);
        return Err("job errors".into());
    }
    lines.push("INFO: Backup job finished successfully".into());
    Ok(lines)
}

/// One guest's archive: named as vzdump names it (or as PBS does), with the job's notes.
fn back_up_one(st: &mut State, job: &BackupJob, g: &Guest, lines: &mut Vec<String>) {
    let storage = &job.storage;
    let is_pbs = st.storages.get(storage).is_some_and(|s| s.spec.kind == "pbs");
    let shared = st.storages.get(storage).is_some_and(|s| s.spec.shared);
    let vmid = g.vmid;
    let now = now_secs() as i64;
    let (kind_word, ext) = match g.kind {
        GuestKind::Qemu => ("qemu", "vma"),
        GuestKind::Lxc => ("lxc", "tar"),
    };
    let suffix = match job.compress.as_str() {
        "gzip" => ".gz",
        "lzo" => ".lzo",
        "zstd" | "1" => ".zst",
        _ => "",
    };
    let (volid, format) = if is_pbs {
        let t = if g.kind == GuestKind::Qemu { "vm" } else { "ct" };
        (format!("{storage}:backup/{t}/{vmid}/{}", iso(now)), format!("pbs-{t}"))
    } else {
        (
            format!(
                "{storage}:backup/vzdump-{kind_word}-{vmid}-{}.{ext}{suffix}",
                stamp(now)
            ),
            format!("{ext}{suffix}"),
        )
    };
    lines.push(format!("INFO: Starting Backup of VM {vmid} ({kind_word})"));
    lines.push(format!("INFO: Backup started at {}", iso(now)));
    lines.push(format!("INFO: creating archive '{volid}'"));
    let note = job.notes.as_ref().map(|t| {
        t.replace("{{guestname}}", &g.name())
            .replace("{{vmid}}", &vmid.to_string())
            .replace("{{node}}", &job.node)
    });
    st.volumes.push(VolumeSpec {
        volid,
        content: "backup".into(),
        format,
        size: g.maxdisk() / 3 + 1024 * 1024,
        ctime: now,
        vmid: Some(vmid),
        node: (!shared).then(|| job.node.clone()),
        notes: note,
        protected: job.protected,
    });
    lines.push(format!("INFO: Finished Backup of VM {vmid} (00:00:01)"));
}

/// The backup volume `archive`, if this node can read it.
fn find_backup(st: &State, node: &str, archive: &str) -> Option<VolumeSpec> {
    let storage = archive.split(':').next()?;
    let shared = st.storages.get(storage)?.spec.shared;
    st.volumes
        .iter()
        .find(|v| v.volid == archive && v.content == "backup" && (shared || v.node.as_deref() == Some(node)))
        .cloned()
}

fn backup_kind(volid: &str) -> Option<GuestKind> {
    if volid.contains("vzdump-qemu-") || volid.contains(":backup/vm/") {
        Some(GuestKind::Qemu)
    } else if volid.contains("vzdump-lxc-") || volid.contains(":backup/ct/") || volid.contains("vzdump-openvz-") {
        Some(GuestKind::Lxc)
    } else {
        None
    }
}

/// `POST /nodes/{node}/{qemu|lxc}`: create a guest, or restore one from a backup
/// (qemu-server `PVE::API2::Qemu` `create_vm`, pve-container `PVE::API2::LXC` `create_vm`).
pub(super) fn create_or_restore(call: &mut Call<'_>) -> Reply {
    let kind = call.kind();
    let node = call.node().to_string();
    let p = call.req.params.clone();
    let vmid = params::int(&p, "vmid").unwrap_or(0) as u32;
    let archive = match kind {
        GuestKind::Qemu => params::text(&p, "archive"),
        GuestKind::Lxc if params::flag(&p, "restore") => params::text(&p, "ostemplate"),
        GuestKind::Lxc => None,
    };
    let force = params::flag(&p, "force");
    if force && kind == GuestKind::Qemu && archive.is_none() {
        return Reply::param_error("archive", "missing property required by 'force'");
    }
    let existing = call.st.guests.get(&vmid).cloned();
    if let Err(reply) = check_replaced(existing.as_ref(), kind, vmid, &node, archive.is_some(), force) {
        return reply;
    }
    let backup = match archive_to_restore(call.st, kind, vmid, &node, archive.as_deref()) {
        Ok(b) => b,
        Err(reply) => return reply,
    };
    let storage = match target_storage(call.st, kind, &p) {
        Ok(s) => s,
        Err(reply) => return reply,
    };
    let config = new_config(kind, vmid, &p, &storage, existing.as_ref(), backup.as_ref());
    let start = params::flag(&p, "start");
    let task_type = match (kind, backup.is_some()) {
        (GuestKind::Qemu, true) => "qmrestore",
        (GuestKind::Qemu, false) => "qmcreate",
        (GuestKind::Lxc, true) => "vzrestore",
        (GuestKind::Lxc, false) => "vzcreate",
    };
    let mut first = Vec::new();
    if let Some(b) = &backup {
        first.push(format!("restore vma archive: {}", b.volid));
    }
    let user = call.user();
    let task_node = node.clone();
    let upid = call.st.start_task(
        &node,
        task_type,
        &vmid.to_string(),
        &user,
        first,
        Box::new(move |st: &mut State| {
            if let Some(old) = st.guests.get(&vmid)
                && (!force || old.running())
            {
                return Err(format!(
                    "unable to restore VM {vmid} - VM {vmid} already exists on node '{}'",
                    old.node
                ));
            }
            let mut guest = Guest::fresh(vmid, kind, &task_node, config.clone());
            if start {
                guest.status = GuestStatus::Running;
                guest.started_at = Some(now_secs());
            }
            st.guests.insert(vmid, guest);
            Ok(vec![format!(
                "{} {vmid} created",
                if kind == GuestKind::Qemu { "VM" } else { "CT" }
            )])
        }),
    );
    Reply::data(json!(upid))
}

/// A guest with this vmid may be replaced only by a forced restore of the same kind, on
/// its own node, while it is stopped.
fn check_replaced(
    existing: Option<&Guest>,
    kind: GuestKind,
    vmid: u32,
    node: &str,
    restoring: bool,
    force: bool,
) -> Result<(), Reply> {
    let Some(g) = existing else { return Ok(()) };
    let word = if kind == GuestKind::Qemu { "VM" } else { "CT" };
    if !restoring || !force {
        let what = if restoring { "restore" } else { "create" };
        return Err(Reply::error(
            500,
            format!(
                "unable to {what} {word} {vmid} - VM {vmid} already exists on node '{}'",
                g.node
            ),
        ));
    }
    if g.node != node {
        return Err(Reply::error(
            500,
            format!(
                "unable to restore {word} {vmid} - VM {vmid} already exists on node '{}'",
                g.node
            ),
        ));
    }
    if g.kind != kind {
        return Err(Reply::error(
            500,
            format!("unable to restore {word} {vmid} - existing guest {vmid} is of another type"),
        ));
    }
    if g.running() {
        let msg = if kind == GuestKind::Qemu {
            format!("unable to restore VM {vmid} - vm is running")
        } else {
            "can't overwrite running container".to_string()
        };
        return Err(Reply::error(500, msg));
    }
    Ok(())
}

/// The backup volume a restore reads: it must exist where this node can read it and be a
/// backup of this guest kind.
fn archive_to_restore(
    st: &State,
    kind: GuestKind,
    vmid: u32,
    node: &str,
    archive: Option<&str>,
) -> Result<Option<VolumeSpec>, Reply> {
    let Some(a) = archive else { return Ok(None) };
    let word = if kind == GuestKind::Qemu { "VM" } else { "CT" };
    let Some(b) = find_backup(st, node, a) else {
        return Err(Reply::error(
            500,
            format!("unable to restore {word} {vmid} - volume '{a}' does not exist"),
        ));
    };
    if backup_kind(&b.volid) != Some(kind) {
        return Err(Reply::error(
            500,
            format!(
                "unable to restore {word} {vmid} - archive '{}' is not a {} backup",
                b.volid,
                kind.as_str()
            ),
        ));
    }
    Ok(Some(b))
}

/// The storage the guest's disks go to, which must hold guest images or container
/// directories.
fn target_storage(st: &State, kind: GuestKind, p: &Map<String, Value>) -> Result<String, Reply> {
    let storage = params::text(p, "storage").unwrap_or_else(|| {
        if kind == GuestKind::Lxc {
            "local".into()
        } else {
            "local-lvm".into()
        }
    });
    if !st
        .storages
        .get(&storage)
        .is_some_and(|s| s.spec.content.iter().any(|c| c == "images" || c == "rootdir"))
    {
        let what = if kind == GuestKind::Lxc {
            "container directories"
        } else {
            "vm images"
        };
        return Err(Reply::error(
            500,
            format!("storage '{storage}' does not support {what}"),
        ));
    }
    Ok(storage)
}

/// The config: the given keys over the replaced guest's config (or a minimal one).
fn new_config(
    kind: GuestKind,
    vmid: u32,
    p: &Map<String, Value>,
    storage: &str,
    existing: Option<&Guest>,
    backup: Option<&VolumeSpec>,
) -> Map<String, Value> {
    let keys = crate::sim::params::specs(super::config::keys(kind));
    let mut config: Map<String, Value> = match (existing, backup) {
        (Some(g), Some(_)) => g.config.clone(),
        _ => Map::new(),
    };
    let name_key = if kind == GuestKind::Qemu { "name" } else { "hostname" };
    if !config.contains_key(name_key) {
        let name = backup
            .and_then(|b| b.notes.clone())
            .unwrap_or_else(|| format!("{}-{vmid}", if backup.is_some() { "restored" } else { "new" }));
        config.insert(
            name_key.into(),
            json!(name.split_whitespace().next().unwrap_or("guest")),
        );
    }
    if backup.is_some() && !config.keys().any(|k| crate::sim::state::is_disk_key(k)) {
        let (key, size) = if kind == GuestKind::Qemu {
            ("scsi0", "32G")
        } else {
            ("rootfs", "8G")
        };
        config.insert(key.into(), json!(format!("{storage}:vm-{vmid}-disk-0,size={size}")));
    }
    for (k, v) in p {
        if keys.iter().any(|s| s.matches(k)) {
            config.insert(k.clone(), v.clone());
        }
    }
    config
}
