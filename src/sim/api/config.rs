//! Config changes (PUT, and QEMU's async POST), pending changes, and disk resize.

use serde_json::{Map, Value, json};

use super::Call;
use crate::sim::http::Reply;
use crate::sim::params;
use crate::sim::spec::GuestKind;
use crate::sim::state::{Guest, format_size, is_disk_key, parse_size};

/// QEMU config keys (PVE 8.4), as parameter specs.
pub(super) const QEMU_KEYS: &str = "name:str? cores:int(1..)? sockets:int(1..)? memory:str? balloon:int(0..)? cpu:str? cpulimit:num? cpuunits:int(1..262144)? vcpus:int(1..)? numa:bool? onboot:bool? startup:str? tags:str? description:str? ostype:enum(other|wxp|w2k|w2k3|w2k8|wvista|win7|win8|win10|win11|l24|l26|solaris)? agent:str? boot:str? bios:enum(seabios|ovmf)? machine:str? protection:bool? hotplug:str? kvm:bool? scsihw:enum(lsi|lsi53c810|virtio-scsi-pci|virtio-scsi-single|megasas|pvscsi)? vga:str? localtime:bool? tablet:bool? hookscript:str? ciuser:str? cipassword:str? citype:enum(configdrive2|nocloud|opennebula)? ipconfig[0..31]:str? nameserver:str? searchdomain:str? sshkeys:str? net[0..31]:str? scsi[0..30]:str? virtio[0..15]:str? sata[0..5]:str? ide[0..3]:str? efidisk0:str? tpmstate0:str? unused[0..255]:str? serial[0..3]:str? usb[0..29]:str? hostpci[0..15]:str? args:str? affinity:str? template:bool?";

/// LXC config keys (PVE 8.4), as parameter specs.
pub(super) const LXC_KEYS: &str = "hostname:str? cores:int(1..8192)? cpulimit:num? cpuunits:int(0..500000)? memory:int(16..)? swap:int(0..)? onboot:bool? startup:str? tags:str? description:str? ostype:enum(debian|devuan|ubuntu|centos|fedora|opensuse|archlinux|alpine|gentoo|nixos|unmanaged)? arch:enum(amd64|i386|arm64|armhf|riscv32|riscv64)? cmode:enum(shell|console|tty)? console:bool? tty:int(0..6)? protection:bool? unprivileged:bool? features:str? hookscript:str? nameserver:str? searchdomain:str? net[0..31]:str? mp[0..255]:str? rootfs:str? unused[0..255]:str? dev[0..255]:str? timezone:str? debug:bool? template:bool?";

pub(super) fn keys(kind: GuestKind) -> &'static str {
    if kind == GuestKind::Qemu { QEMU_KEYS } else { LXC_KEYS }
}

pub(super) fn set_params_put(kind: GuestKind, _: &str) -> Option<String> {
    let extra = if kind == GuestKind::Qemu {
        "delete:list? digest:str? revert:list? skiplock:bool? force:bool?"
    } else {
        "delete:list? digest:str? revert:list?"
    };
    Some(format!("node:str vmid:int(100..999999999) {} {extra}", keys(kind)))
}

pub(super) fn set_params_post(kind: GuestKind, a: &str) -> Option<String> {
    set_params_put(kind, a).map(|s| format!("{s} background_delay:int(1..30)?"))
}

pub(super) fn resize_params(kind: GuestKind, _: &str) -> Option<String> {
    Some(match kind {
        GuestKind::Qemu => "node:str vmid:int(100..999999999) disk:str size:str digest:str? skiplock:bool?".into(),
        GuestKind::Lxc => "node:str vmid:int(100..999999999) disk:str size:str digest:str?".into(),
    })
}

/// Keys that are not config values but control the request.
const CONTROL: &[&str] = &[
    "node",
    "vmid",
    "delete",
    "digest",
    "revert",
    "skiplock",
    "force",
    "background_delay",
];

/// Config values arrive as strings from a form; store numbers as numbers where PVE does.
fn stored_value(kind: GuestKind, key: &str, v: &Value) -> Value {
    let numeric = matches!(
        key,
        "cores"
            | "sockets"
            | "cpuunits"
            | "vcpus"
            | "balloon"
            | "onboot"
            | "numa"
            | "protection"
            | "kvm"
            | "localtime"
            | "tablet"
            | "swap"
            | "tty"
            | "console"
            | "unprivileged"
            | "template"
    ) || (key == "memory" && kind == GuestKind::Lxc);
    match v {
        Value::String(s) if numeric => s.parse::<i64>().map(Value::from).unwrap_or_else(|_| v.clone()),
        Value::Bool(b) if numeric => Value::from(i64::from(*b)),
        other => other.clone(),
    }
}

/// The config digest PVE hands out (SHA-1 of the file there; a stable hash here).
pub(super) fn digest(config: &Map<String, Value>) -> String {
    let text = serde_json::to_string(config).unwrap_or_default();
    let h = text.bytes().fold(0x6c62272e07bb014262b821756295c58d_u128, |h, b| {
        (h ^ u128::from(b)).wrapping_mul(0x0000000001000000000000000000013B)
    });
    format!("{h:040x}")
}

fn next_unused(config: &Map<String, Value>) -> String {
    (0..)
        .map(|i| format!("unused{i}"))
        .find(|k| !config.contains_key(k))
        .unwrap_or_else(|| "unused0".into())
}

/// The config value as PVE compares it (`cleanup_pending` compares strings).
fn text_of(v: &Value) -> String {
    v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())
}

/// Remove `key` from the config; a detached disk becomes `unusedN` unless `force`
/// (`vmconfig_delete_or_detach_drive`); an `unusedN` volume is destroyed.
fn remove_key(g: &mut Guest, key: &str, force: bool) {
    let Some(old) = g.config.remove(key) else { return };
    if is_disk_key(key) && !key.starts_with("unused") && !force {
        let text = old.as_str().unwrap_or("");
        let volume = text.split(',').next().unwrap_or("").to_string();
        if !volume.is_empty() && volume != "none" && !text.contains("media=cdrom") {
            let slot = next_unused(&g.config);
            g.config.insert(slot, Value::String(volume));
        }
    }
}

/// Keep the derived fields in step with the config.
fn sync_derived(g: &mut Guest) {
    g.tags = g
        .config
        .get("tags")
        .and_then(Value::as_str)
        .map(crate::pve::lists::split_list)
        .unwrap_or_default();
    if let Some(t) = g.config.get("template") {
        g.template = t == 1;
    }
}

/// Write every pending change into the config (`vmconfig_apply_pending`): what a stopped
/// guest gets at once, a VM when it starts, a container when it starts or stops.
pub(super) fn apply_pending(g: &mut Guest) {
    for (key, force) in std::mem::take(&mut g.pending_delete) {
        remove_key(g, &key, force);
    }
    for (key, value) in std::mem::take(&mut g.pending) {
        if is_disk_key(&key)
            && let Some(old) = g.config.get(&key).and_then(Value::as_str)
        {
            // The replaced volume stays as an unused disk (`vmconfig_register_unused_drive`).
            let volume = old.split(',').next().unwrap_or("").to_string();
            let new_volume = value.as_str().unwrap_or("").split(',').next().unwrap_or("");
            if !old.contains("media=cdrom") && volume != "none" && !volume.is_empty() && volume != new_volume {
                let slot = next_unused(&g.config);
                g.config.insert(slot, Value::String(volume));
            }
        }
        g.config.insert(key, value);
    }
    sync_derived(g);
}

/// Options a running VM takes at once (qemu-server `$fast_plug_option`, with the
/// cloud-init options).
const QEMU_FAST_PLUG: &[&str] = &[
    "description",
    "hookscript",
    "lock",
    "migrate_downtime",
    "migrate_speed",
    "name",
    "onboot",
    "protection",
    "shares",
    "startup",
    "tags",
    "vmstatestorage",
    "cicustom",
    "cipassword",
    "citype",
    "ciupgrade",
    "ciuser",
    "nameserver",
    "searchdomain",
    "sshkeys",
];

/// Options a running container takes at once (pve-container `$LXC_FASTPLUG_OPTIONS`).
const LXC_FAST_PLUG: &[&str] = &[
    "description",
    "onboot",
    "startup",
    "protection",
    "hostname",
    "hookscript",
    "cores",
    "tags",
    "lock",
];

fn indexed(key: &str, prefix: &str) -> bool {
    key.strip_prefix(prefix)
        .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
}

/// The VM's hotplug features (`parse_hotplug_features`; default `network,disk,usb`).
fn hotplug_features(g: &Guest) -> Vec<String> {
    let value = g.config.get("hotplug").map(text_of).unwrap_or_else(|| "1".into());
    match value.as_str() {
        "0" => Vec::new(),
        "1" => vec!["network".into(), "disk".into(), "usb".into()],
        v => crate::pve::lists::split_list(v),
    }
}

/// Would qemu-server hot-plug deleting (`value` is `None`) or setting this key on the
/// running VM? (`vmconfig_hotplug_pending`; everything it answers "skip" for stays pending.)
fn qemu_hotplugs(g: &Guest, key: &str, value: Option<&Value>) -> bool {
    let f = hotplug_features(g);
    let has = |x: &str| f.iter().any(|y| y == x);
    let current_hotplug = g.config.get("hotplug").map(text_of).unwrap_or_default();
    if QEMU_FAST_PLUG.contains(&key) {
        return true;
    }
    match key {
        "hotplug" => {
            let new = value.map(text_of).unwrap_or_default();
            !(new.contains("memory")
                || new.contains("cpu")
                || current_hotplug.contains("memory")
                || current_hotplug.contains("cpu"))
        }
        "tablet" => has("usb"),
        "vcpus" => has("cpu"),
        "memory" => has("memory"),
        "cpuunits" | "cpulimit" => true,
        "balloon" => {
            let enabled = |v: Option<&Value>| v.is_none_or(|v| text_of(v) != "0");
            match value {
                None => enabled(g.config.get("balloon")),
                Some(v) => enabled(g.config.get("balloon")) == enabled(Some(v)),
            }
        }
        k if indexed(k, "net") => has("network"),
        k if is_disk_key(k) && !k.starts_with("unused") => {
            let slot_fixed = ["efidisk", "tpmstate"].iter().any(|p| indexed(k, p));
            match value {
                None => has("disk") && !slot_fixed && !indexed(k, "ide") && !indexed(k, "sata"),
                Some(_) if slot_fixed => false,
                Some(_) => {
                    let old = g.config.get(k).map(text_of);
                    match old {
                        // Changing the medium of a CD-ROM drive needs no hotplug.
                        Some(o) if o.contains("media=cdrom") => true,
                        Some(_) => has("disk"),
                        None => has("disk") && !indexed(k, "ide") && !indexed(k, "sata"),
                    }
                }
            }
        }
        _ => false,
    }
}

/// The same for a running container (pve-container `vmconfig_hotplug_pending`).
fn lxc_hotplugs(g: &Guest, key: &str, value: Option<&Value>) -> bool {
    if LXC_FAST_PLUG.contains(&key) {
        return true;
    }
    match (key, value) {
        ("swap" | "cpulimit" | "cpuunits", _) => true,
        ("memory", Some(_)) => true,
        (k, _) if indexed(k, "net") => true,
        (k, None) => indexed(k, "unused"),
        (k, Some(_)) if indexed(k, "mp") || indexed(k, "dev") => !g.config.contains_key(k),
        _ => false,
    }
}

/// Apply to a running guest what it can take while running; the rest stays pending.
fn hotplug_pending(g: &mut Guest) {
    let can = |g: &Guest, key: &str, value: Option<&Value>| match g.kind {
        GuestKind::Qemu => qemu_hotplugs(g, key, value),
        GuestKind::Lxc => lxc_hotplugs(g, key, value),
    };
    let deletes: Vec<(String, bool)> = g.pending_delete.iter().map(|(k, f)| (k.clone(), *f)).collect();
    for (key, force) in deletes {
        if can(g, &key, None) {
            g.pending_delete.remove(&key);
            remove_key(g, &key, force);
        }
    }
    let sets: Vec<(String, Value)> = g.pending.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    for (key, value) in sets {
        if can(g, &key, Some(&value)) {
            g.pending.remove(&key);
            g.config.insert(key, value);
        }
    }
    sync_derived(g);
}

/// A config change as qemu-server's `update_vm_api` and pve-container's
/// `update_pct_config` make it: every change goes to the pending section first, unchanged
/// values are dropped (`cleanup_pending`), then a stopped guest applies everything and a
/// running one what it can hot-plug; the rest waits for a restart (`GET …/pending`).
pub(super) fn apply(g: &mut Guest, params: &Map<String, Value>) -> Result<(), String> {
    let kind = g.kind;
    let force = params::flag(params, "force");
    for key in params::list(params, "revert").unwrap_or_default() {
        g.pending.remove(&key);
        g.pending_delete.remove(&key);
    }
    for key in params::list(params, "delete").unwrap_or_default() {
        if !g.config.contains_key(&key) && !g.pending.contains_key(&key) {
            // PVE warns "cannot delete 'KEY' - not set in current configuration!" and goes on.
            continue;
        }
        if kind == GuestKind::Lxc {
            if matches!(key.as_str(), "memory" | "rootfs" | "ostype") {
                return Err(format!("unable to delete required option '{key}'"));
            }
            if key == "unprivileged" {
                return Err(format!("unable to delete read-only option: '{key}'"));
            }
        }
        g.pending.remove(&key);
        // qemu-server deletes an unused disk and the tags at once, not through pending.
        if kind == GuestKind::Qemu && (indexed(&key, "unused") || key == "tags") {
            g.config.remove(&key);
            continue;
        }
        g.pending_delete.insert(key, force);
    }
    for (k, v) in params {
        if CONTROL.contains(&k.as_str()) || k == "revert" {
            continue;
        }
        if k == "name" || k == "hostname" {
            let name = v.as_str().unwrap_or("");
            let ok = !name.is_empty()
                && name
                    .split('.')
                    .all(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
            if !ok {
                return Err(format!(
                    "invalid format - value '{name}' does not look like a valid DNS name"
                ));
            }
        }
        g.pending.insert(k.clone(), stored_value(kind, k, v));
        g.pending_delete.remove(k);
    }
    // cleanup_pending
    let config = g.config.clone();
    g.pending
        .retain(|k, v| config.get(k).is_none_or(|cur| text_of(cur) != text_of(v)));
    g.pending_delete.retain(|k, _| config.contains_key(k));
    if g.running() {
        hotplug_pending(g);
    } else {
        apply_pending(g);
    }
    Ok(())
}

/// The config as `GET …/config` shows it: with the pending values taken in unless
/// `current` (`AbstractConfig::load_current_config`).
pub(super) fn effective(g: &Guest, current: bool) -> Map<String, Value> {
    let mut cfg = g.config.clone();
    if !current {
        for (k, v) in &g.pending {
            cfg.insert(k.clone(), v.clone());
        }
        for k in g.pending_delete.keys() {
            cfg.remove(k);
        }
    }
    cfg
}

pub(super) fn set(call: &mut Call<'_>) -> Reply {
    let g = match call.guest() {
        Ok(g) => g.clone(),
        Err(r) => return r,
    };
    let p = &call.req.params;
    if let Some(d) = params::text(p, "digest")
        && d != digest(&g.config)
    {
        return Reply::error(
            500,
            "detected modified configuration - file changed by other user? Try again.",
        );
    }
    if params::flag(p, "force") && params::text(p, "delete").is_none() {
        return Reply::param_error("force", "missing property required by 'force'");
    }
    let skip = match super::skiplock(call) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let changes = p.clone();
    let vmid = g.vmid;
    if call.req.method == crate::api::Method::Post {
        // QEMU's asynchronous config update: a qmconfig task, whose update (with its lock
        // check) runs in the worker (qemu-server `update_vm_api`).
        return call.guest_task(
            &g,
            "qmconfig",
            vec![format!("update VM {vmid}: {}", summary(&changes))],
            move |g| {
                if !skip {
                    super::check_lock(g)?;
                }
                apply(g, &changes)?;
                Ok(vec![])
            },
        );
    }
    // The synchronous update checks the lock before changing anything (qemu-server
    // `update_vm_api`, pve-container `API2::LXC::Config` update_vm).
    if !skip && let Err(e) = super::check_lock(&g) {
        return Reply::error(500, e);
    }
    let Some(g) = call.st.guests.get_mut(&vmid) else {
        return Reply::error(500, "guest disappeared");
    };
    match apply(g, &changes) {
        Ok(()) => Reply::data(Value::Null),
        Err(e) => Reply::error(500, e),
    }
}

fn summary(changes: &Map<String, Value>) -> String {
    changes
        .iter()
        .filter(|(k, _)| !CONTROL.contains(&k.as_str()) || k.as_str() == "delete")
        .map(|(k, v)| {
            format!(
                "-{k} {}",
                v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// `GET …/pending`: every key with its current value, its pending value and whether it is
/// to be deleted (`GuestHelpers::config_with_pending_array`; `delete` is 2 when forced).
pub(super) fn pending(call: &mut Call<'_>) -> Reply {
    let g = match call.guest() {
        Ok(g) => g,
        Err(r) => return r,
    };
    let mut rows: Vec<Value> = Vec::new();
    for (k, v) in &g.config {
        let mut row = json!({"key": k, "value": v});
        if let Some(p) = g.pending.get(k) {
            row["pending"] = p.clone();
        }
        if let Some(force) = g.pending_delete.get(k) {
            row["delete"] = json!(if *force { 2 } else { 1 });
        }
        rows.push(row);
    }
    for (k, p) in g.pending.iter().filter(|(k, _)| !g.config.contains_key(*k)) {
        rows.push(json!({"key": k, "pending": p}));
    }
    for (k, force) in g.pending_delete.iter().filter(|(k, _)| !g.config.contains_key(*k)) {
        rows.push(json!({"key": k, "delete": if *force { 2 } else { 1 }}));
    }
    Reply::data(Value::Array(rows))
}

pub(super) fn resize(call: &mut Call<'_>) -> Reply {
    let g = match call.guest() {
        Ok(g) => g.clone(),
        Err(r) => return r,
    };
    let skip = match super::skiplock(call) {
        Ok(s) => s,
        Err(r) => return r,
    };
    // pve-container `resize_vm` checks the lock before the disk (`$load_and_check`);
    // qemu-server's `resize_vm` does it in the worker.
    if g.kind == GuestKind::Lxc
        && let Err(e) = super::check_lock(&g)
    {
        return Reply::error(500, e);
    }
    let p = &call.req.params;
    let disk = params::text(p, "disk").unwrap_or_default();
    let size = params::text(p, "size").unwrap_or_default();
    let allowed = match g.kind {
        GuestKind::Qemu => {
            is_disk_key(&disk) && !disk.starts_with("unused") && disk != "rootfs" && !disk.starts_with("mp")
        }
        GuestKind::Lxc => {
            disk == "rootfs"
                || disk
                    .strip_prefix("mp")
                    .is_some_and(|n| n.parse::<u32>().is_ok_and(|n| n <= 255))
        }
    };
    if !allowed {
        let what = if g.kind == GuestKind::Qemu {
            "ide0..3, scsi0..30, virtio0..15, sata0..5, efidisk0, tpmstate0"
        } else {
            "rootfs, mp0..255"
        };
        return Reply::param_error(
            "disk",
            format!("value '{disk}' does not have a value in the enumeration '{what}'"),
        );
    }
    let grow = size.starts_with('+');
    let Some(amount) = parse_size(size.trim_start_matches('+')).filter(|_| {
        let s = size.trim_start_matches('+');
        !s.is_empty() && s.chars().next().is_some_and(|c| c.is_ascii_digit())
    }) else {
        return Reply::param_error("size", "value does not match the regex pattern");
    };
    let Some(current) = g.config.get(&disk).and_then(Value::as_str).map(str::to_string) else {
        return Reply::error(500, format!("disk '{disk}' does not exist"));
    };
    if current.contains("media=cdrom") {
        return Reply::error(500, "you can't resize a cdrom");
    }
    let old = crate::sim::state::disk_size(&current).unwrap_or(0);
    let new = if grow { old + amount } else { amount };
    if new < old {
        return Reply::error(
            500,
            format!("unable to resize disk '{disk}' - shrinking disks is not supported"),
        );
    }
    call.guest_task(
        &g,
        "resize",
        vec![format!("resize {disk} to {}", format_size(new))],
        move |g| {
            if !skip {
                super::check_lock(g)?;
            }
            let value = g.config.get(&disk).and_then(Value::as_str).unwrap_or("").to_string();
            let parts: Vec<String> = value
                .split(',')
                .map(|part| {
                    if part.starts_with("size=") {
                        format!("size={}", format_size(new))
                    } else {
                        part.to_string()
                    }
                })
                .collect();
            g.config.insert(disk.clone(), Value::String(parts.join(",")));
            Ok(vec![format!("Size of logical volume changed to {}.", format_size(new))])
        },
    )
}
