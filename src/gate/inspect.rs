//! Inspectors: endpoints whose class depends on their parameters (`@name` in
//! `endpoints.txt`). Each has an explicit key table; a key that is not in it is refused, so
//! a parameter a future PVE adds is never sent unreviewed.
//!
//! The guest tables follow qemu-server's `check_vm_modify_config_perm` and pve-container's
//! `check_ct_modify_config_perm`: what PVE lets only root set is forbidden here too (defence
//! in depth), credentials and code that reach inside a guest need `exec`, and whatever loses
//! data needs `destructive`.

use serde_json::{Map, Value};

use super::capability::{Capabilities, Capability};
use super::truthy;
use crate::pve::lists;

/// Why an inspector refused a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Deny {
    /// Never allowed from a tool.
    Forbidden(String),
    /// A parameter the table does not list.
    UnknownKey(String),
    /// A value the gate cannot read unambiguously.
    Malformed { key: String, why: String },
}

type Found = Result<Capabilities, Deny>;

/// What an inspector is given: the decoded path segments and the parameters.
pub(crate) struct Request<'a> {
    pub segments: &'a [String],
    pub params: &'a Map<String, Value>,
}

const NAMES: &[&str] = &[
    "qemu-config",
    "lxc-config",
    "qemu-create",
    "lxc-create",
    "clone",
    "move-volume",
    "volume-attributes",
    "vzdump",
    "backup-job",
    "replication-update",
    "replication-delete",
    "storage-create",
    "storage-update",
    "cluster-options",
    "guest-power",
    "guest-migrate",
];

pub(crate) fn exists(name: &str) -> bool {
    NAMES.contains(&name)
}

pub(crate) fn run(name: &str, r: &Request<'_>) -> Found {
    match name {
        "qemu-config" => guest(Kind::Qemu, Scope::Config, r),
        "lxc-config" => guest(Kind::Lxc, Scope::Config, r),
        "qemu-create" => guest(Kind::Qemu, Scope::Create, r),
        "lxc-create" => guest(Kind::Lxc, Scope::Create, r),
        "clone" => clone(r),
        "move-volume" => move_volume(r),
        "volume-attributes" => volume_attributes(r),
        "vzdump" => vzdump(r, false),
        "backup-job" => vzdump(r, true),
        "replication-update" => replication_update(r),
        "replication-delete" => replication_delete(r),
        "storage-create" | "storage-update" => storage(r),
        "cluster-options" => cluster_options(r),
        "guest-power" => guest_power(r),
        "guest-migrate" => guest_migrate(r),
        other => Err(Deny::Forbidden(format!("no inspector named {other}"))),
    }
}

fn needs(c: Capability) -> Capabilities {
    Capabilities::READ.with(c)
}
fn write() -> Capabilities {
    needs(Capability::Write)
}

/// A table key matches `name`, or `name[n]` matches `name` followed by digits.
fn key_matches(pattern: &str, key: &str) -> bool {
    match pattern.strip_suffix("[n]") {
        Some(stem) => key
            .strip_prefix(stem)
            .is_some_and(|n| !n.is_empty() && n.len() <= 3 && n.bytes().all(|b| b.is_ascii_digit())),
        None => pattern == key,
    }
}

fn lookup<T: Copy>(table: &[(&'static str, T)], key: &str) -> Option<T> {
    table.iter().find(|(p, _)| key_matches(p, key)).map(|(_, t)| *t)
}

/// A value the gate reads must be plain printable ASCII (no control characters, no
/// look-alike Unicode separators), so that PVE cannot read it differently.
fn plain(key: &str, v: &Value) -> Result<(), Deny> {
    let bad = |s: &str| s.chars().any(|c| !c.is_ascii() || c.is_ascii_control());
    let offending = match v {
        Value::String(s) => bad(s),
        Value::Array(items) => items
            .iter()
            .any(|i| i.as_str().is_some_and(bad) || i.is_array() || i.is_object()),
        Value::Object(_) => true,
        _ => false,
    };
    if offending {
        return Err(Deny::Malformed {
            key: key.to_string(),
            why: "holds control or non-ASCII characters, or a nested value".into(),
        });
    }
    Ok(())
}

/// The items of a list parameter (`delete`, `revert`), read as PVE reads them; every item
/// must look like a configuration key.
fn list_items(key: &str, v: &Value) -> Result<Vec<String>, Deny> {
    plain(key, v)?;
    let items = lists::items(v);
    for i in &items {
        let ok = i.len() <= 64
            && i.starts_with(|c: char| c.is_ascii_lowercase())
            && i.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
        if !ok {
            return Err(Deny::Malformed {
                key: key.to_string(),
                why: format!("item {i:?} is not a configuration key"),
            });
        }
    }
    Ok(items)
}

fn text(v: &Value) -> String {
    lists::wire_text(v)
}

// ---------------------------------------------------------------------------------------
// Guests: configuration, create and restore.

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Qemu,
    Lxc,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Scope {
    Config,
    Create,
}

/// What a guest key is.
#[derive(Clone, Copy)]
enum Key {
    Write,
    /// Credentials or code that reach inside the guest.
    Exec,
    /// Host behaviour or host networks: start order and delays, bridges and VLANs.
    Admin,
    /// QEMU random number source: never the host's hardware RNG.
    Rng,
    /// Root-only in PVE, or hands host resources to the guest.
    Forbidden(&'static str),
    /// A disk or mount point: host paths are forbidden, another guest's volume is destructive.
    Disk,
    /// QEMU serial port: only `socket`.
    Serial,
    /// QEMU USB: only `spice`.
    Usb,
    /// `protection=0` removes the guard against deletion.
    Protection,
    /// `template=1` makes the guest a template.
    Template,
    /// LXC features: `nesting` alone; the rest is root-only in PVE.
    Features,
    /// LXC `unprivileged`: a privileged container is host administration and destructive.
    Unprivileged,
    /// Putting the new guest under HA.
    HaManaged,
    /// An archive or template: a volume id, never a host path.
    Archive,
    /// `force`: physical removal, or replacing an existing guest.
    Force,
    /// `delete` / `revert` lists.
    List,
    /// Routing and concurrency parameters with no effect of their own.
    Meta,
}

const ROOT_ONLY: &str = "PVE lets only root@pam set it";
const HOST: &str = "it hands a host device, directory or resource to the guest";
const LOCK: &str = "locks guard running tasks; only root@pam may set them";
const HOOK: &str = "a hookscript runs on the host as root";

/// QEMU keys, config and create alike (qemu-server `check_vm_modify_config_perm`).
const QEMU: &[(&str, Key)] = &[
    ("acpi", Key::Write),
    ("affinity", Key::Forbidden(ROOT_ONLY)),
    ("agent", Key::Write),
    ("allow-ksm", Key::Write),
    ("amd-sev", Key::Forbidden(ROOT_ONLY)),
    ("arch", Key::Forbidden(ROOT_ONLY)),
    ("args", Key::Forbidden("raw QEMU arguments run anything on the host")),
    ("audio[n]", Key::Write),
    ("autostart", Key::Write),
    ("balloon", Key::Write),
    ("bios", Key::Write),
    ("boot", Key::Write),
    ("bootdisk", Key::Write),
    ("cdrom", Key::Disk),
    ("cicustom", Key::Exec),
    ("cipassword", Key::Exec),
    ("citype", Key::Write),
    ("ciupgrade", Key::Write),
    ("ciuser", Key::Exec),
    ("cores", Key::Write),
    ("cpu", Key::Write),
    ("cpulimit", Key::Write),
    ("cpuunits", Key::Write),
    ("description", Key::Write),
    ("efidisk[n]", Key::Disk),
    ("freeze", Key::Write),
    ("hookscript", Key::Forbidden(HOOK)),
    ("hostpci[n]", Key::Forbidden(HOST)),
    ("hotplug", Key::Write),
    ("hugepages", Key::Forbidden(ROOT_ONLY)),
    ("ide[n]", Key::Disk),
    ("import-working-storage", Key::Write),
    ("intel-tdx", Key::Forbidden(ROOT_ONLY)),
    ("ipconfig[n]", Key::Write),
    ("ivshmem", Key::Forbidden(ROOT_ONLY)),
    ("keephugepages", Key::Forbidden(ROOT_ONLY)),
    ("keyboard", Key::Write),
    ("kvm", Key::Write),
    ("localtime", Key::Write),
    ("lock", Key::Forbidden(LOCK)),
    ("machine", Key::Write),
    ("memory", Key::Write),
    ("migrate_downtime", Key::Write),
    ("migrate_speed", Key::Write),
    ("name", Key::Write),
    ("nameserver", Key::Write),
    ("net[n]", Key::Admin),
    ("numa", Key::Write),
    ("numa[n]", Key::Write),
    ("onboot", Key::Write),
    ("ostype", Key::Write),
    ("parallel[n]", Key::Forbidden(HOST)),
    ("protection", Key::Protection),
    ("reboot", Key::Write),
    ("rng[n]", Key::Rng),
    ("sata[n]", Key::Disk),
    ("scsi[n]", Key::Disk),
    ("scsihw", Key::Write),
    ("searchdomain", Key::Write),
    ("serial[n]", Key::Serial),
    ("shares", Key::Write),
    ("smbios[n]", Key::Write),
    ("smp", Key::Write),
    ("sockets", Key::Write),
    ("spice_enhancements", Key::Forbidden(ROOT_ONLY)),
    ("sshkeys", Key::Exec),
    ("startdate", Key::Write),
    ("startup", Key::Admin),
    ("tablet", Key::Write),
    ("tags", Key::Write),
    ("tdf", Key::Write),
    ("template", Key::Template),
    ("tpmstate[n]", Key::Disk),
    ("unused[n]", Key::Forbidden("PVE manages unused disks itself")),
    ("usb[n]", Key::Usb),
    ("vcpus", Key::Write),
    ("vga", Key::Write),
    ("virtio[n]", Key::Disk),
    ("virtiofs[n]", Key::Forbidden(HOST)),
    ("vmgenid", Key::Forbidden(ROOT_ONLY)),
    ("vmstatestorage", Key::Write),
    ("watchdog", Key::Write),
];

/// LXC keys, config and create alike (pve-container `check_ct_modify_config_perm`).
const LXC: &[(&str, Key)] = &[
    ("arch", Key::Write),
    ("cmode", Key::Write),
    ("console", Key::Write),
    ("cores", Key::Write),
    ("cpulimit", Key::Write),
    ("cpuunits", Key::Write),
    ("debug", Key::Write),
    ("description", Key::Write),
    ("dev[n]", Key::Forbidden(HOST)),
    ("entrypoint", Key::Exec),
    ("env", Key::Exec),
    ("features", Key::Features),
    ("hookscript", Key::Forbidden(HOOK)),
    ("hostname", Key::Write),
    ("lock", Key::Forbidden(LOCK)),
    ("memory", Key::Write),
    ("mp[n]", Key::Disk),
    ("nameserver", Key::Write),
    ("net[n]", Key::Admin),
    ("onboot", Key::Write),
    ("ostype", Key::Write),
    ("protection", Key::Protection),
    ("rootfs", Key::Disk),
    ("searchdomain", Key::Write),
    ("startup", Key::Admin),
    ("swap", Key::Write),
    ("tags", Key::Write),
    ("template", Key::Template),
    ("timezone", Key::Write),
    ("tty", Key::Write),
    ("unprivileged", Key::Unprivileged),
    ("unused[n]", Key::Forbidden("PVE manages unused volumes itself")),
];

/// Parameters of the change itself rather than of the guest.
const CONFIG_ONLY: &[(&str, Key)] = &[
    ("background_delay", Key::Meta),
    ("delete", Key::List),
    ("digest", Key::Meta),
    ("force", Key::Force),
    ("node", Key::Meta),
    ("revert", Key::List),
    ("vmid", Key::Meta),
];

const QEMU_CREATE: &[(&str, Key)] = &[
    ("archive", Key::Archive),
    ("bwlimit", Key::Write),
    ("force", Key::Force),
    ("ha-managed", Key::HaManaged),
    ("live-restore", Key::Write),
    ("node", Key::Meta),
    (
        "pool",
        Key::Forbidden("adding a guest to a pool hands it to whoever holds rights on the pool"),
    ),
    ("start", Key::Write),
    ("storage", Key::Write),
    ("unique", Key::Write),
    ("vmid", Key::Meta),
];

const LXC_CREATE: &[(&str, Key)] = &[
    ("bwlimit", Key::Write),
    ("force", Key::Force),
    ("ha-managed", Key::HaManaged),
    ("ignore-unpack-errors", Key::Write),
    ("node", Key::Meta),
    ("ostemplate", Key::Archive),
    ("password", Key::Exec),
    (
        "pool",
        Key::Forbidden("adding a guest to a pool hands it to whoever holds rights on the pool"),
    ),
    ("restore", Key::Write),
    ("ssh-public-keys", Key::Exec),
    ("start", Key::Write),
    ("storage", Key::Write),
    ("unique", Key::Write),
    ("vmid", Key::Meta),
];

fn guest_key(kind: Kind, scope: Scope, key: &str) -> Option<Key> {
    let own = match (kind, scope) {
        (_, Scope::Config) => CONFIG_ONLY,
        (Kind::Qemu, Scope::Create) => QEMU_CREATE,
        (Kind::Lxc, Scope::Create) => LXC_CREATE,
    };
    let common = match kind {
        Kind::Qemu => QEMU,
        Kind::Lxc => LXC,
    };
    lookup(own, key).or_else(|| lookup(common, key))
}

fn guest(kind: Kind, scope: Scope, r: &Request<'_>) -> Found {
    let p = r.params;
    // The guest the change is for: the path's vmid, or the new guest's.
    let vmid = match scope {
        Scope::Config => r.segments.get(3).cloned(),
        Scope::Create => p.get("vmid").map(text),
    };
    let mut caps = write();
    for (k, v) in p {
        let Some(key) = guest_key(kind, scope, k) else {
            return Err(Deny::UnknownKey(k.clone()));
        };
        caps = caps.union(guest_value(kind, key, k, v, vmid.as_deref())?);
    }
    if kind == Kind::Lxc && scope == Scope::Create && !p.contains_key("unprivileged") {
        // PVE 8's default is a privileged container, and a restore keeps the archive's
        // setting, which may be privileged: only an explicit unprivileged=1 is a write.
        caps = caps.union(privileged());
    }
    if scope == Scope::Config {
        for list in ["delete", "revert"] {
            if let Some(v) = p.get(list) {
                for item in list_items(list, v)? {
                    let item = if kind == Kind::Qemu && item == "cdrom" {
                        "ide2".to_string()
                    } else {
                        item
                    };
                    let Some(key) = guest_key(kind, Scope::Config, &item) else {
                        return Err(Deny::UnknownKey(format!("{list}={item}")));
                    };
                    caps = caps.union(listed_key(list, &item, key)?);
                }
            }
        }
    }
    Ok(caps)
}

/// What removing (`delete`) or reverting (`revert`) a key needs: the same as setting it,
/// except that deleting `unusedN` destroys the volume and deleting `protection` lifts it.
fn listed_key(list: &str, item: &str, key: Key) -> Found {
    if list == "delete" && (key_matches("unused[n]", item) || item == "protection") {
        return Ok(needs(Capability::Destructive));
    }
    match key {
        Key::Forbidden(why) => Err(Deny::Forbidden(format!("{list} '{item}': {why}"))),
        Key::Exec => Ok(needs(Capability::Exec)),
        Key::Admin => Ok(needs(Capability::Admin)),
        _ => Ok(write()),
    }
}

fn privileged() -> Capabilities {
    Capabilities::of(&[Capability::Admin, Capability::Destructive])
}

fn guest_value(kind: Kind, key: Key, k: &str, v: &Value, vmid: Option<&str>) -> Found {
    match key {
        Key::Write | Key::Meta | Key::List => Ok(write()),
        Key::Exec => Ok(needs(Capability::Exec)),
        Key::Admin => Ok(needs(Capability::Admin)),
        Key::Forbidden(why) => Err(Deny::Forbidden(format!("'{k}': {why}"))),
        Key::Rng => {
            plain(k, v)?;
            let props = PropertyString::parse(&text(v), "source", &[]).map_err(|why| Deny::Malformed {
                key: k.to_string(),
                why,
            })?;
            match props.get("source") {
                Some("/dev/urandom" | "/dev/random") => Ok(write()),
                _ => Err(Deny::Forbidden(format!(
                    "'{k}': only /dev/urandom or /dev/random; {HOST}"
                ))),
            }
        }
        Key::Force => Ok(if truthy(Some(v)) {
            needs(Capability::Destructive)
        } else {
            write()
        }),
        Key::Protection => Ok(if truthy(Some(v)) {
            write()
        } else {
            needs(Capability::Destructive)
        }),
        Key::Template => Ok(if truthy(Some(v)) {
            needs(Capability::Destructive)
        } else {
            write()
        }),
        Key::HaManaged => Ok(if truthy(Some(v)) {
            needs(Capability::Admin)
        } else {
            write()
        }),
        Key::Unprivileged => Ok(if truthy(Some(v)) { write() } else { privileged() }),
        Key::Archive => {
            plain(k, v)?;
            if text(v).starts_with('/') {
                Err(Deny::Forbidden(format!(
                    "'{k}': a host path; name a volume (storage:backup/…) instead"
                )))
            } else {
                Ok(write())
            }
        }
        Key::Serial => {
            plain(k, v)?;
            if text(v) == "socket" {
                Ok(write())
            } else {
                Err(Deny::Forbidden(format!("'{k}': only 'socket'; {HOST}")))
            }
        }
        Key::Usb => {
            plain(k, v)?;
            let props = PropertyString::parse(&text(v), "host", &[]).map_err(|why| Deny::Malformed {
                key: k.to_string(),
                why,
            })?;
            if props.get("host").is_some_and(|h| h.eq_ignore_ascii_case("spice")) && props.get("mapping").is_none() {
                Ok(write())
            } else {
                Err(Deny::Forbidden(format!("'{k}': only 'spice'; {HOST}")))
            }
        }
        Key::Features => {
            plain(k, v)?;
            let props = PropertyString::parse(&text(v), "", &[]).map_err(|why| Deny::Malformed {
                key: k.to_string(),
                why,
            })?;
            if props.pairs.iter().all(|(name, _)| name == "nesting") {
                Ok(write())
            } else {
                Err(Deny::Forbidden(format!(
                    "'{k}': only 'nesting'; {ROOT_ONLY} for other features"
                )))
            }
        }
        Key::Disk => disk(kind, k, v, vmid),
    }
}

/// A PVE property string: `value,key=value,…`, the first bare value under `default_key`.
/// `aliases` name keys PVE reads as another (`volume` is `file` for a QEMU drive). A key
/// given twice, after aliases, is refused: PVE 8's parser lets the second win, so the gate
/// could read one and PVE act on the other. So is whitespace, which no value needs.
struct PropertyString {
    pairs: Vec<(String, String)>,
}

impl PropertyString {
    fn parse(s: &str, default_key: &str, aliases: &[(&str, &str)]) -> Result<PropertyString, String> {
        if s.chars().any(char::is_whitespace) {
            return Err("holds whitespace".into());
        }
        let mut pairs: Vec<(String, String)> = Vec::new();
        for p in s.split(',').filter(|p| !p.is_empty()) {
            let (k, v) = match p.split_once('=') {
                Some((k, v)) => (k, v),
                None => (default_key, p),
            };
            let k = aliases.iter().find(|(a, _)| *a == k).map_or(k, |(_, to)| *to);
            if pairs.iter().any(|(seen, _)| seen == k) {
                return Err(format!("gives '{k}' twice"));
            }
            pairs.push((k.to_string(), v.to_string()));
        }
        Ok(PropertyString { pairs })
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

/// A disk (QEMU drive) or mount point (LXC) value.
fn disk(kind: Kind, k: &str, v: &Value, vmid: Option<&str>) -> Found {
    plain(k, v)?;
    let default_key = match kind {
        Kind::Qemu => "file",
        Kind::Lxc => "volume",
    };
    let aliases: &[(&str, &str)] = match kind {
        Kind::Qemu => &[("volume", "file")],
        Kind::Lxc => &[],
    };
    let props = PropertyString::parse(&text(v), default_key, aliases).map_err(|why| Deny::Malformed {
        key: k.to_string(),
        why,
    })?;
    let mut caps = write();
    for source in [default_key, "import-from"] {
        let Some(vol) = props.get(source) else { continue };
        caps = caps.union(volume_use(k, source, vol, vmid)?);
    }
    if props.get(default_key).is_none() {
        return Err(Deny::Malformed {
            key: k.to_string(),
            why: format!("names no {default_key}"),
        });
    }
    Ok(caps)
}

fn volume_use(k: &str, what: &str, vol: &str, vmid: Option<&str>) -> Found {
    if vol == "none" {
        return Ok(write());
    }
    if vol == "cdrom" {
        return Err(Deny::Forbidden(format!(
            "'{k}': 'cdrom' is the host's physical drive; {HOST}"
        )));
    }
    if vol.starts_with('/') {
        return Err(Deny::Forbidden(format!(
            "'{k}': {what} '{vol}' is a host path (a device, file or bind mount); {HOST}"
        )));
    }
    let Some((storage, volname)) = vol.split_once(':') else {
        // A bare size allocates a new volume on the default storage.
        return if is_size(vol) {
            Ok(write())
        } else {
            Err(Deny::Malformed {
                key: k.to_string(),
                why: format!("{what} '{vol}' is neither storage:volume nor storage:size"),
            })
        };
    };
    if storage.is_empty() || volname.is_empty() || volname.split('/').any(|s| s == "..") {
        return Err(Deny::Malformed {
            key: k.to_string(),
            why: format!("{what} '{vol}' is not a volume id"),
        });
    }
    if is_size(volname) || volname == "cloudinit" {
        return Ok(write());
    }
    match (volume_owner(volname), vmid) {
        (Some(owner), Some(me)) if owner != me => Ok(needs(Capability::Destructive)),
        (Some(_), None) => Ok(needs(Capability::Destructive)),
        (Some(_), Some(_)) => Ok(write()),
        // ISO images and import sources belong to no guest and are read, not written.
        (None, _) if volname.starts_with("iso/") || volname.starts_with("import/") => Ok(write()),
        (None, _) => Err(Deny::Forbidden(format!(
            "'{k}': {what} '{vol}' belongs to no guest (a raw LUN or device, often under other guests' disks); {HOST}"
        ))),
    }
}

fn is_size(s: &str) -> bool {
    let mut parts = s.splitn(2, '.');
    let int = parts.next().unwrap_or("");
    let frac = parts.next();
    !int.is_empty()
        && int.bytes().all(|b| b.is_ascii_digit())
        && frac.is_none_or(|f| f.bytes().all(|b| b.is_ascii_digit()))
}

/// The guest a volume belongs to, as pve-storage's `parse_volname` names it: the last
/// `vm-N-`, `base-N-`, `subvol-N-` or `basevol-N-` (a linked clone `base-1-disk-0/vm-2-disk-0`
/// belongs to 2), else a directory storage's `images/N/` or `N/`.
pub(crate) fn volume_owner(volname: &str) -> Option<String> {
    // Directory storages: `N/file` or `images/N/file`, and linked clones
    // `BASE/base-file/N/file`; the last folder named by a number owns the file.
    let parts: Vec<&str> = volname.split('/').collect();
    let folder = parts[..parts.len().saturating_sub(1)]
        .iter()
        .rev()
        .find(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    if let Some(n) = folder {
        return Some((*n).to_string());
    }
    let mut owner = None;
    for part in volname.split('/') {
        for prefix in ["vm-", "base-", "subvol-", "basevol-"] {
            if let Some(rest) = part.strip_prefix(prefix) {
                let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                if !digits.is_empty() && rest[digits.len()..].starts_with('-') {
                    owner = Some(digits);
                }
            }
        }
    }
    owner
}

// ---------------------------------------------------------------------------------------
// Other guest operations.

fn allow_keys(r: &Request<'_>, keys: &[&str]) -> Result<(), Deny> {
    match r.params.keys().find(|k| !keys.contains(&k.as_str())) {
        Some(k) => Err(Deny::UnknownKey(k.clone())),
        None => Ok(()),
    }
}

fn clone(r: &Request<'_>) -> Found {
    if r.params.contains_key("pool") {
        return Err(Deny::Forbidden(
            "'pool': adding a guest to a pool hands it to whoever holds rights on the pool".into(),
        ));
    }
    allow_keys(
        r,
        &[
            "bwlimit",
            "description",
            "format",
            "full",
            "hostname",
            "name",
            "newid",
            "node",
            "pool",
            "snapname",
            "storage",
            "target",
            "vmid",
        ],
    )?;
    Ok(write())
}

fn move_volume(r: &Request<'_>) -> Found {
    allow_keys(
        r,
        &[
            "bwlimit",
            "delete",
            "digest",
            "disk",
            "format",
            "node",
            "storage",
            "target-digest",
            "target-disk",
            "target-vmid",
            "target-volume",
            "vmid",
            "volume",
        ],
    )?;
    // `delete` removes the source; `target-vmid` takes the disk away from this guest.
    if truthy(r.params.get("delete")) || r.params.contains_key("target-vmid") {
        Ok(needs(Capability::Destructive))
    } else {
        Ok(write())
    }
}

fn volume_attributes(r: &Request<'_>) -> Found {
    allow_keys(r, &["node", "notes", "protected", "storage", "volume"])?;
    match r.params.get("protected") {
        Some(v) if !truthy(Some(v)) => Ok(needs(Capability::Destructive)),
        _ => Ok(write()),
    }
}

fn replication_update(r: &Request<'_>) -> Found {
    allow_keys(
        r,
        &[
            "comment",
            "delete",
            "digest",
            "disable",
            "id",
            "rate",
            "remove_job",
            "schedule",
            "source",
        ],
    )?;
    if let Some(v) = r.params.get("delete") {
        list_items("delete", v)?;
    }
    // Removing or pausing a job leaves the replica stale: HA would start an old copy.
    if r.params.contains_key("remove_job") || truthy(r.params.get("disable")) {
        Ok(needs(Capability::Destructive))
    } else {
        Ok(write())
    }
}

/// Ending replication leaves a stale replica (and without `keep` removes it): destructive.
fn replication_delete(r: &Request<'_>) -> Found {
    allow_keys(r, &["force", "id", "keep"])?;
    Ok(needs(Capability::Destructive))
}

// ---------------------------------------------------------------------------------------
// Power and migration: PVE's own migration-internal and root-only parameters are forbidden.

const INTERNAL: &str = "migration-internal or root-only in PVE";

fn guest_power(r: &Request<'_>) -> Found {
    let forbidden = [
        "force-cpu",
        "keepActive",
        "machine",
        "migratedfrom",
        "migration_network",
        "migration_type",
        "nets-host-mtu",
        "nocheck",
        "stateuri",
        "targetstorage",
        "with-conntrack-state",
    ];
    if let Some(k) = r.params.keys().find(|k| forbidden.contains(&k.as_str())) {
        return Err(Deny::Forbidden(format!("'{k}': {INTERNAL}")));
    }
    allow_keys(
        r,
        &[
            "debug",
            "forceStop",
            "node",
            "overrule-shutdown",
            "statestorage",
            "timeout",
            "todisk",
            "vmid",
        ],
    )?;
    Ok(write())
}

fn guest_migrate(r: &Request<'_>) -> Found {
    let forbidden = ["force", "migration_network", "migration_type", "with-conntrack-state"];
    if let Some(k) = r.params.keys().find(|k| forbidden.contains(&k.as_str())) {
        return Err(Deny::Forbidden(format!("'{k}': {INTERNAL}")));
    }
    allow_keys(
        r,
        &[
            "bwlimit",
            "node",
            "online",
            "restart",
            "target",
            "target-storage",
            "targetstorage",
            "timeout",
            "vmid",
            "with-local-disks",
        ],
    )?;
    Ok(write())
}

// ---------------------------------------------------------------------------------------
// Backups.

#[derive(Clone, Copy)]
enum Dump {
    Write,
    /// Host-wide tuning or outgoing mail: PVE wants Sys.Modify on /.
    Admin,
    /// Sets a retention: pruning deletes older backups.
    Retention,
    /// `stop=1` aborts every running backup on the host.
    Stop,
    Forbidden(&'static str),
    /// Job selection or state: on an existing job, a change can leave guests without backups.
    Selection,
    List,
}

const VZDUMP: &[(&str, Dump)] = &[
    ("all", Dump::Selection),
    ("bwlimit", Dump::Admin),
    ("comment", Dump::Write),
    ("compress", Dump::Write),
    ("delete", Dump::List),
    ("digest", Dump::Write),
    ("dow", Dump::Selection),
    ("dumpdir", Dump::Forbidden("a host directory; only root@pam may set it")),
    ("enabled", Dump::Selection),
    ("exclude", Dump::Selection),
    ("exclude-path", Dump::Selection),
    ("fleecing", Dump::Write),
    ("id", Dump::Write),
    ("ionice", Dump::Admin),
    ("job-id", Dump::Forbidden("only root@pam may set it")),
    ("lockwait", Dump::Write),
    ("mailnotification", Dump::Selection),
    ("mailto", Dump::Admin),
    ("maxfiles", Dump::Retention),
    ("mode", Dump::Write),
    ("node", Dump::Selection),
    ("notes-template", Dump::Write),
    ("notification-mode", Dump::Selection),
    ("notification-policy", Dump::Selection),
    ("notification-target", Dump::Selection),
    ("pbs-change-detection-mode", Dump::Write),
    ("performance", Dump::Admin),
    ("pigz", Dump::Write),
    ("pool", Dump::Selection),
    ("protected", Dump::Write),
    ("prune-backups", Dump::Retention),
    ("quiet", Dump::Write),
    ("remove", Dump::Write),
    ("repeat-missed", Dump::Write),
    ("schedule", Dump::Selection),
    ("script", Dump::Forbidden("a hook script runs on the host as root")),
    ("starttime", Dump::Selection),
    ("stdexcludes", Dump::Write),
    (
        "stdout",
        Dump::Forbidden("streams the archive to the API worker's stdout"),
    ),
    ("stop", Dump::Stop),
    ("stopwait", Dump::Write),
    ("storage", Dump::Selection),
    ("tmpdir", Dump::Forbidden("a host directory; only root@pam may set it")),
    ("vmid", Dump::Selection),
    ("zstd", Dump::Write),
];

const JOB_ONLY: &[&str] = &[
    "comment",
    "delete",
    "digest",
    "dow",
    "enabled",
    "id",
    "repeat-missed",
    "schedule",
    "starttime",
];

/// `job`: a backup job (`/cluster/backup`), created (POST) or changed (PUT, with an id in the path).
fn vzdump(r: &Request<'_>, job: bool) -> Found {
    let existing = job && r.segments.len() > 2;
    // Backup jobs are datacenter configuration: PVE wants Sys.Modify on /.
    let mut caps = if job { write().with(Capability::Admin) } else { write() };
    for (k, v) in r.params {
        let Some(d) = lookup(VZDUMP, k) else {
            return Err(Deny::UnknownKey(k.clone()));
        };
        if !job && JOB_ONLY.contains(&k.as_str()) {
            return Err(Deny::UnknownKey(k.clone()));
        }
        match d {
            Dump::Write => {}
            Dump::Admin => caps = caps.with(Capability::Admin),
            Dump::Retention => caps = caps.with(Capability::Destructive),
            Dump::Stop if truthy(Some(v)) => caps = caps.with(Capability::Destructive).with(Capability::Admin),
            Dump::Stop => {}
            Dump::Forbidden(why) => return Err(Deny::Forbidden(format!("'{k}': {why}"))),
            Dump::Selection if k == "enabled" && !truthy(Some(v)) => caps = caps.with(Capability::Destructive),
            Dump::Selection if existing && k != "enabled" => caps = caps.with(Capability::Destructive),
            Dump::Selection => {}
            Dump::List => {
                for item in list_items(k, v)? {
                    match lookup(VZDUMP, &item) {
                        None => return Err(Deny::UnknownKey(format!("delete={item}"))),
                        Some(_) if matches!(item.as_str(), "comment" | "mailto" | "notes-template") => {}
                        Some(_) => caps = caps.with(Capability::Destructive),
                    }
                }
            }
        }
    }
    Ok(caps)
}

// ---------------------------------------------------------------------------------------
// Storage definitions and datacenter options (administration).

#[derive(Clone, Copy)]
enum Store {
    Admin,
    /// Losing it makes backups unreadable, or pruning deletes them.
    Destructive,
    Forbidden(&'static str),
    List,
}

const HOST_PATH: &str = "a host path or mount: with content-dirs or snippets it exposes host files to guests";

const STORAGE: &[(&str, Store)] = &[
    ("authsupported", Store::Admin),
    (
        "base",
        Store::Forbidden("an LVM base volume is initialised with pvcreate, wiping it"),
    ),
    ("blocksize", Store::Admin),
    ("bwlimit", Store::Admin),
    ("comstar_hg", Store::Admin),
    ("comstar_tg", Store::Admin),
    ("content", Store::Admin),
    ("content-dirs", Store::Forbidden(HOST_PATH)),
    ("create-base-path", Store::Forbidden(HOST_PATH)),
    ("create-subdirs", Store::Forbidden(HOST_PATH)),
    ("data-pool", Store::Admin),
    ("datastore", Store::Admin),
    ("delete", Store::List),
    ("digest", Store::Admin),
    ("disable", Store::Admin),
    ("domain", Store::Admin),
    ("encryption-key", Store::Destructive),
    ("export", Store::Admin),
    ("fingerprint", Store::Admin),
    ("format", Store::Admin),
    ("fs-name", Store::Admin),
    ("fuse", Store::Admin),
    ("is_mountpoint", Store::Forbidden(HOST_PATH)),
    ("iscsiprovider", Store::Admin),
    ("keyring", Store::Forbidden("writes a Ceph keyring file on the host")),
    ("krbd", Store::Admin),
    ("lio_tpg", Store::Admin),
    ("master-pubkey", Store::Destructive),
    ("max-protected-backups", Store::Admin),
    ("maxfiles", Store::Destructive),
    ("mkdir", Store::Forbidden(HOST_PATH)),
    ("monhost", Store::Admin),
    ("mountpoint", Store::Forbidden(HOST_PATH)),
    ("namespace", Store::Admin),
    ("nocow", Store::Admin),
    ("nodes", Store::Admin),
    ("nowritecache", Store::Admin),
    ("options", Store::Forbidden("raw mount options for the host")),
    ("password", Store::Admin),
    ("path", Store::Forbidden(HOST_PATH)),
    ("pool", Store::Admin),
    ("port", Store::Admin),
    ("portal", Store::Admin),
    ("preallocation", Store::Admin),
    ("prune-backups", Store::Destructive),
    ("saferemove", Store::Admin),
    ("saferemove-stepsize", Store::Admin),
    ("saferemove_throughput", Store::Admin),
    ("server", Store::Admin),
    ("server2", Store::Admin),
    ("share", Store::Admin),
    ("shared", Store::Destructive),
    ("skip-cert-verification", Store::Admin),
    ("smbversion", Store::Admin),
    ("snapshot-as-volume-chain", Store::Admin),
    ("sparse", Store::Admin),
    ("storage", Store::Admin),
    ("subdir", Store::Admin),
    ("tagged_only", Store::Admin),
    ("target", Store::Admin),
    ("thinpool", Store::Admin),
    ("transport", Store::Admin),
    ("type", Store::Admin),
    ("username", Store::Admin),
    ("vgname", Store::Admin),
    ("volume", Store::Admin),
    ("zfs-base-path", Store::Forbidden(HOST_PATH)),
];

fn storage(r: &Request<'_>) -> Found {
    settings(r, STORAGE)
}

const OPTIONS: &[(&str, Store)] = &[
    ("bwlimit", Store::Admin),
    ("consent-text", Store::Admin),
    ("console", Store::Admin),
    ("crs", Store::Admin),
    ("delete", Store::List),
    ("description", Store::Admin),
    ("digest", Store::Admin),
    ("email_from", Store::Admin),
    ("fencing", Store::Forbidden("changes how HA fences nodes")),
    ("ha", Store::Admin),
    (
        "http_proxy",
        Store::Forbidden("routes the nodes' outgoing HTTP through any proxy"),
    ),
    ("keyboard", Store::Admin),
    ("language", Store::Admin),
    ("mac_prefix", Store::Admin),
    ("max_workers", Store::Admin),
    (
        "migration",
        Store::Forbidden("sets the migration network and transport"),
    ),
    ("migration_unsecure", Store::Forbidden("sends migrations unencrypted")),
    ("next-id", Store::Admin),
    ("notify", Store::Admin),
    ("registered-tags", Store::Admin),
    ("replication", Store::Admin),
    ("tag-style", Store::Admin),
    ("u2f", Store::Forbidden("changes second-factor authentication")),
    ("user-tag-access", Store::Forbidden("changes who may set tags")),
    ("webauthn", Store::Forbidden("changes second-factor authentication")),
];

fn cluster_options(r: &Request<'_>) -> Found {
    settings(r, OPTIONS)
}

fn settings(r: &Request<'_>, table: &[(&'static str, Store)]) -> Found {
    let mut caps = needs(Capability::Admin);
    let mut judge = |k: &str, s: Store| -> Result<(), Deny> {
        match s {
            Store::Admin | Store::List => Ok(()),
            Store::Destructive => {
                caps = caps.with(Capability::Destructive);
                Ok(())
            }
            Store::Forbidden(why) => Err(Deny::Forbidden(format!("'{k}': {why}"))),
        }
    };
    for (k, v) in r.params {
        let Some(s) = lookup(table, k) else {
            return Err(Deny::UnknownKey(k.clone()));
        };
        judge(k, s)?;
        if let Store::List = s {
            for item in list_items(k, v)? {
                let Some(s) = lookup(table, &item) else {
                    return Err(Deny::UnknownKey(format!("{k}={item}")));
                };
                judge(&item, s)?;
            }
        }
    }
    Ok(caps)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run_on(name: &str, path: &str, params: Value) -> Found {
        let segments: Vec<String> = path.trim_start_matches('/').split('/').map(str::to_string).collect();
        let params = params.as_object().cloned().unwrap_or_default();
        run(
            name,
            &Request {
                segments: &segments,
                params: &params,
            },
        )
    }
    fn caps(c: &[Capability]) -> Found {
        Ok(Capabilities::of(c))
    }
    fn forbidden(f: Found) -> bool {
        matches!(f, Err(Deny::Forbidden(_)))
    }
    fn malformed(f: Found) -> bool {
        matches!(f, Err(Deny::Malformed { .. }))
    }
    use Capability::*;

    #[test]
    fn every_name_runs() {
        for n in NAMES {
            assert!(
                !matches!(run_on(n, "/x", json!({})), Err(Deny::Forbidden(ref w)) if w.starts_with("no inspector"))
            );
        }
    }

    #[test]
    fn qemu_config_keys() {
        let cfg = |p: Value| run_on("qemu-config", "/nodes/n/qemu/100/config", p);
        assert_eq!(cfg(json!({"cores": 2, "memory": 2048, "name": "web"})), caps(&[Write]));
        // A bridge or VLAN is network administration; so is the host's start order.
        assert_eq!(cfg(json!({"net0": "virtio,bridge=vmbr0,tag=1"})), caps(&[Write, Admin]));
        assert_eq!(cfg(json!({"startup": "order=1,up=86400"})), caps(&[Write, Admin]));
        assert_eq!(cfg(json!({"rng0": "source=/dev/urandom"})), caps(&[Write]));
        assert!(forbidden(cfg(json!({"rng0": "source=/dev/hwrng"}))));
        assert_eq!(cfg(json!({"import-working-storage": "local-lvm"})), caps(&[Write]));
        assert_eq!(cfg(json!({"cipassword": "x"})), caps(&[Write, Exec]));
        assert_eq!(cfg(json!({"sshkeys": "ssh-ed25519 AAAA"})), caps(&[Write, Exec]));
        for bad in [
            json!({"args": "-x"}),
            json!({"hookscript": "local:snippets/h.sh"}),
            json!({"hostpci0": "mapping=gpu"}),
            json!({"virtiofs0": "dirid=etc"}),
            json!({"usb0": "mapping=key"}),
            json!({"usb0": "spice,mapping=key"}),
            json!({"serial0": "/dev/ttyS0"}),
        ] {
            assert!(forbidden(cfg(bad.clone())), "{bad}");
        }
        assert_eq!(cfg(json!({"usb0": "spice"})), caps(&[Write]));
        assert_eq!(cfg(json!({"serial0": "socket"})), caps(&[Write]));
        assert_eq!(
            cfg(json!({"brand-new-key": 1})),
            Err(Deny::UnknownKey("brand-new-key".into()))
        );
        assert_eq!(cfg(json!({"protection": 0})), caps(&[Write, Destructive]));
        assert_eq!(cfg(json!({"protection": 1})), caps(&[Write]));
    }

    #[test]
    fn qemu_disks() {
        let cfg = |p: Value| run_on("qemu-config", "/nodes/n/qemu/100/config", p);
        assert_eq!(cfg(json!({"scsi1": "local-lvm:32"})), caps(&[Write]));
        assert_eq!(cfg(json!({"scsi1": "local-lvm:vm-100-disk-3,size=4G"})), caps(&[Write]));
        assert_eq!(cfg(json!({"ide2": "local:iso/debian.iso,media=cdrom"})), caps(&[Write]));
        assert_eq!(cfg(json!({"ide2": "none,media=cdrom"})), caps(&[Write]));
        assert_eq!(cfg(json!({"ide2": "local-lvm:cloudinit"})), caps(&[Write]));
        assert!(forbidden(cfg(json!({"ide2": "cdrom,media=cdrom"}))));
        assert_eq!(
            cfg(json!({"scsi1": "local-lvm:vm-101-disk-0"})),
            caps(&[Write, Destructive])
        );
        assert_eq!(
            cfg(json!({"scsi1": "file=local:101/vm-101-disk-0.qcow2"})),
            caps(&[Write, Destructive])
        );
        assert_eq!(
            cfg(json!({"scsi1": "local-lvm:0,import-from=local-lvm:vm-101-disk-0"})),
            caps(&[Write, Destructive])
        );
        assert!(forbidden(cfg(json!({"scsi1": "/dev/sda"}))));
        assert!(forbidden(cfg(
            json!({"scsi1": "local-lvm:0,import-from=/etc/pve/priv/authkey.key"})
        )));
        assert!(malformed(cfg(json!({"scsi1": "local-lvm:vm-100-disk-0\n"}))));
        // `volume` is PVE's alias of `file`: a second name for the disk is refused.
        assert!(malformed(cfg(
            json!({"scsi1": "local-lvm:vm-100-disk-9,volume=local-lvm:vm-101-disk-0"})
        )));
        assert_eq!(
            cfg(json!({"scsi1": "volume=local-lvm:vm-101-disk-0"})),
            caps(&[Write, Destructive])
        );
        assert!(malformed(cfg(json!({"scsi1": "local-lvm:vm-100-disk-9, size=4G"}))));
        assert!(malformed(cfg(
            json!({"scsi1": "local-lvm:vm-100-disk-9,size=4G,size=8G"})
        )));
        // A volume that belongs to no guest: a raw LUN, possibly under other guests' disks.
        assert!(forbidden(cfg(json!({"scsi1": "iscsi:0.0.1.scsi-36001405"}))));
        assert!(forbidden(cfg(
            json!({"scsi1": "local-lvm:0,import-from=iscsi:0.0.1.scsi-36001405"})
        )));
        assert_eq!(
            cfg(json!({"scsi1": "local:0,import-from=local:import/disk.vmdk"})),
            caps(&[Write])
        );
        // On a directory storage the folder decides whose file it is.
        assert_eq!(
            cfg(json!({"scsi1": "local:101/vm-100-disk-7.qcow2"})),
            caps(&[Write, Destructive])
        );
    }

    #[test]
    fn delete_lists_read_as_pve_reads_them() {
        let cfg = |p: Value| run_on("qemu-config", "/nodes/n/qemu/100/config", p);
        for hidden in [
            json!("onboot,unused0"),
            json!("onboot unused0"),
            json!("onboot;unused0"),
            json!(["onboot", "unused0"]),
        ] {
            assert_eq!(
                cfg(json!({"delete": hidden.clone()})),
                caps(&[Write, Destructive]),
                "{hidden}"
            );
        }
        for bad in [
            json!("onboot\tunused0"),
            json!("unused0\n"),
            json!("\tunused0"),
            json!("onboot\u{0}unused0"),
            json!(["onboot", "unused0\r"]),
            json!("onboot\u{a0}unused0"),
        ] {
            assert!(malformed(cfg(json!({"delete": bad.clone()}))), "{bad:?}");
        }
        assert_eq!(cfg(json!({"delete": "onboot,scsi1"})), caps(&[Write]));
        assert_eq!(cfg(json!({"delete": "scsi1", "force": 1})), caps(&[Write, Destructive]));
        assert_eq!(cfg(json!({"delete": "protection"})), caps(&[Write, Destructive]));
        assert_eq!(
            cfg(json!({"delete": "nosuchkey"})),
            Err(Deny::UnknownKey("delete=nosuchkey".into()))
        );
        // Deleting or reverting a key needs what setting it needs.
        assert!(forbidden(cfg(json!({"delete": "hookscript"}))));
        assert!(forbidden(cfg(json!({"revert": "args"}))));
        assert_eq!(cfg(json!({"delete": "sshkeys"})), caps(&[Write, Exec]));
        assert_eq!(cfg(json!({"revert": "net0"})), caps(&[Write, Admin]));
    }

    #[test]
    fn containers() {
        let cfg = |p: Value| run_on("lxc-config", "/nodes/n/lxc/200/config", p);
        assert_eq!(cfg(json!({"cores": 2, "hostname": "ct"})), caps(&[Write]));
        assert!(forbidden(cfg(json!({"mp0": "/srv,mp=/mnt/srv"}))));
        assert!(forbidden(cfg(json!({"dev0": "/dev/kvm"}))));
        assert_eq!(
            cfg(json!({"mp0": "local-lvm:vm-201-disk-0,mp=/x"})),
            caps(&[Write, Destructive])
        );
        assert_eq!(cfg(json!({"features": "nesting=1"})), caps(&[Write]));
        assert!(forbidden(cfg(json!({"features": "nesting=1,mount=nfs"}))));
        assert!(forbidden(cfg(json!({"delete": "features,dev0"}))));
        assert_eq!(cfg(json!({"unprivileged": 0})), caps(&[Write, Admin, Destructive]));
        let create = |p: Value| run_on("lxc-create", "/nodes/n/lxc", p);
        let base = json!({"vmid": 300, "ostemplate": "local:vztmpl/debian.tar.zst", "unprivileged": 1});
        assert_eq!(create(base), caps(&[Write]));
        assert_eq!(
            create(json!({"vmid": 300, "ostemplate": "local:vztmpl/d.tar.zst"})),
            caps(&[Write, Admin, Destructive])
        );
        assert_eq!(
            create(
                json!({"vmid": 300, "ostemplate": "local:vztmpl/d.tar.zst", "unprivileged": 1, "ssh-public-keys": "k"})
            ),
            caps(&[Write, Exec])
        );
        assert!(forbidden(create(
            json!({"vmid": 300, "ostemplate": "/tmp/x.tar", "unprivileged": 1})
        )));
        let restore = json!({"vmid": 300, "ostemplate": "pbs:backup/ct/300/2024", "restore": 1, "unprivileged": 1});
        assert_eq!(create(restore), caps(&[Write]));
        // A restore keeps the archive's setting, which may be privileged.
        assert_eq!(
            create(json!({"vmid": 300, "ostemplate": "pbs:backup/ct/300/2024", "restore": 1})),
            caps(&[Write, Admin, Destructive])
        );
        assert_eq!(
            create(json!({"vmid": 300, "ostemplate": "pbs:backup/x", "restore": 1, "force": 1, "unprivileged": 1})),
            caps(&[Write, Destructive])
        );
        assert!(forbidden(create(
            json!({"vmid": 300, "ostemplate": "pbs:backup/x", "restore": 1, "unprivileged": 1, "pool": "p"})
        )));
        assert!(forbidden(run_on(
            "clone",
            "/nodes/n/qemu/100/clone",
            json!({"newid": 999, "pool": "outsiders"})
        )));
    }

    #[test]
    fn backups_and_storage() {
        let dump = |p: Value| run_on("vzdump", "/nodes/n/vzdump", p);
        assert_eq!(
            dump(json!({"vmid": "100", "mode": "snapshot", "storage": "local"})),
            caps(&[Write])
        );
        assert_eq!(
            dump(json!({"vmid": "100", "prune-backups": "keep-last=1"})),
            caps(&[Write, Destructive])
        );
        assert_eq!(dump(json!({"stop": 1})), caps(&[Destructive, Admin]));
        assert_eq!(dump(json!({"vmid": "100", "bwlimit": 0})), caps(&[Write, Admin]));
        assert!(forbidden(dump(json!({"vmid": "100", "job-id": "x"}))));
        assert!(forbidden(dump(json!({"vmid": "100", "script": "/tmp/x"}))));
        assert_eq!(dump(json!({"enabled": 1})), Err(Deny::UnknownKey("enabled".into())));
        let job = |p: Value| run_on("backup-job", "/cluster/backup/job1", p);
        assert_eq!(job(json!({"enabled": 0})), caps(&[Destructive, Admin]));
        assert_eq!(job(json!({"comment": "x"})), caps(&[Write, Admin]));
        assert_eq!(job(json!({"vmid": "100"})), caps(&[Destructive, Admin]));
        assert_eq!(job(json!({"dow": "sun"})), caps(&[Destructive, Admin]));
        assert_eq!(job(json!({"exclude-path": "/**"})), caps(&[Destructive, Admin]));
        let st = |p: Value| run_on("storage-update", "/storage/pbs", p);
        assert_eq!(st(json!({"delete": "encryption-key"})), caps(&[Admin, Destructive]));
        assert_eq!(st(json!({"disable": 1})), caps(&[Admin]));
        let create = |p: Value| run_on("storage-create", "/storage", p);
        assert!(forbidden(create(
            json!({"storage": "x", "type": "dir", "path": "/etc/pve"})
        )));
        let opts = |p: Value| run_on("cluster-options", "/cluster/options", p);
        assert!(forbidden(opts(json!({"http_proxy": "http://x"}))));
        assert!(forbidden(opts(json!({"delete": "webauthn"}))));
        assert_eq!(opts(json!({"keyboard": "de"})), caps(&[Admin]));
        let vol = |p: Value| run_on("volume-attributes", "/nodes/n/storage/s/content/s:backup/x", p);
        assert_eq!(vol(json!({"protected": 0})), caps(&[Write, Destructive]));
        assert_eq!(vol(json!({"notes": "x"})), caps(&[Write]));
        let rep = |p: Value| run_on("replication-delete", "/cluster/replication/100-0", p);
        assert_eq!(rep(json!({})), caps(&[Destructive]));
        assert_eq!(rep(json!({"keep": 1})), caps(&[Destructive]));
        let upd = |p: Value| run_on("replication-update", "/cluster/replication/100-0", p);
        assert_eq!(upd(json!({"disable": 1})), caps(&[Destructive]));
        assert_eq!(upd(json!({"rate": 10})), caps(&[Write]));
    }

    #[test]
    fn power_and_migration() {
        let power = |p: Value| run_on("guest-power", "/nodes/n/qemu/100/status/start", p);
        assert_eq!(power(json!({"timeout": 30})), caps(&[Write]));
        assert_eq!(power(json!({})), caps(&[Write]));
        assert!(forbidden(power(json!({"stateuri": "tcp"}))));
        assert!(forbidden(power(json!({"keepActive": 1}))));
        assert_eq!(
            power(json!({"brand-new": 1})),
            Err(Deny::UnknownKey("brand-new".into()))
        );
        let migrate = |p: Value| run_on("guest-migrate", "/nodes/n/qemu/100/migrate", p);
        assert_eq!(
            migrate(json!({"target": "b", "online": 1, "with-local-disks": 1})),
            caps(&[Write])
        );
        assert!(forbidden(migrate(json!({"target": "b", "migration_type": "insecure"}))));
        assert!(forbidden(migrate(json!({"target": "b", "force": 1}))));
    }

    #[test]
    fn owners() {
        assert_eq!(volume_owner("vm-100-disk-0").as_deref(), Some("100"));
        assert_eq!(volume_owner("base-100-disk-0/vm-101-disk-0").as_deref(), Some("101"));
        assert_eq!(volume_owner("images/102/vm-102-disk-0.qcow2").as_deref(), Some("102"));
        assert_eq!(volume_owner("103/x.raw").as_deref(), Some("103"));
        assert_eq!(volume_owner("101/vm-100-disk-0.qcow2").as_deref(), Some("101"));
        assert_eq!(
            volume_owner("100/base-100-disk-0.qcow2/101/vm-101-disk-0.qcow2").as_deref(),
            Some("101")
        );
        assert_eq!(volume_owner("iso/debian.iso"), None);
        assert_eq!(volume_owner("0.0.1.scsi-36001405"), None);
        assert_eq!(volume_owner("subvol-104-disk-0").as_deref(), Some("104"));
    }
}
