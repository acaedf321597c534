//! The description of a simulated cluster, loadable from JSON or TOML. The built-in
//! default (`default_cluster.json`) is a realistic home-lab cluster and a template for
//! writing your own.

use std::path::Path;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::pve::roles::PveMajor;

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClusterSpec {
    /// `None`: a standalone node (no cluster row in `/cluster/status`).
    #[serde(default)]
    pub cluster_name: Option<String>,
    /// PVE version reported; `9.x` switches guest exec to `VM.GuestAgent.Unrestricted`.
    #[serde(default = "default_version")]
    pub version: String,
    /// How long a task runs before it finishes.
    #[serde(default = "default_task_ms")]
    pub task_duration_ms: u64,
    /// Delay before a 401 answer (PVE waits about 3 s).
    #[serde(default)]
    pub auth_failure_delay_ms: u64,
    /// Guest-agent `exec-status` booleans (`exited`, `*-truncated`) as JSON `true`/`false`,
    /// as qemu-ga itself sends them. PVE turns them into `1`/`0` (qemu-server
    /// `Agent::qemu_exec_status`); this is for clients that must accept both.
    #[serde(default)]
    pub agent_json_booleans: bool,
    pub nodes: Vec<NodeSpec>,
    #[serde(default)]
    pub storages: Vec<StorageSpec>,
    #[serde(default)]
    pub guests: Vec<GuestSpec>,
    #[serde(default)]
    pub tokens: Vec<TokenSpec>,
    /// Faults injected into matching requests, in order (the first match applies).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub faults: Vec<super::faults::FaultSpec>,
    /// Tasks that ran before the simulator started (the nodes' task history).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tasks: Vec<TaskSpec>,
}

/// A task of the history: finished (`status` `OK`, `WARNINGS: n` or the error message,
/// as PVE's `exitstatus`), or still running (no `status`).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskSpec {
    pub node: String,
    /// PVE's worker type: `vzdump`, `qmstart`, `qmigrate`, `vzcreate`, …
    #[serde(rename = "type")]
    pub kind: String,
    /// The task's object, usually a vmid (`""` for none).
    #[serde(default)]
    pub id: String,
    #[serde(default = "default_task_user")]
    pub user: String,
    /// Epoch seconds; a negative value is that many seconds before the simulator starts.
    pub starttime: i64,
    /// Seconds it ran (finished tasks).
    #[serde(default)]
    pub duration: u64,
    #[serde(default)]
    pub status: Option<String>,
    /// Its log, without the final `TASK …` line (added from `status`).
    #[serde(default)]
    pub log: Vec<String>,
}

fn default_task_user() -> String {
    "root@pam".into()
}

/// What a guest-agent command prints and returns, for `agent/exec` and `exec-status`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentCommandSpec {
    /// The command: a list (matched against the exec `command` exactly) or a string
    /// (matched against the words joined by spaces, or the script of `sh -c SCRIPT`).
    pub command: Value,
    #[serde(default, rename = "out-data")]
    pub out_data: String,
    #[serde(default, rename = "err-data")]
    pub err_data: String,
    #[serde(default)]
    pub exitcode: i64,
    /// Seconds the command runs before `exec-status` reports it exited.
    #[serde(default)]
    pub seconds: f64,
}

impl AgentCommandSpec {
    pub fn matches(&self, argv: &[String]) -> bool {
        match &self.command {
            Value::String(s) => {
                let script = match argv {
                    [sh, c, script] if sh.ends_with("sh") && c == "-c" => Some(script),
                    _ => None,
                };
                *s == argv.join(" ") || script.is_some_and(|x| x == s)
            }
            Value::Array(words) => {
                words.len() == argv.len() && words.iter().zip(argv).all(|(w, a)| w.as_str() == Some(a.as_str()))
            }
            _ => false,
        }
    }
}

fn default_version() -> String {
    "8.4.14".into()
}
fn default_task_ms() -> u64 {
    800
}
fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeSpec {
    pub name: String,
    #[serde(default = "yes")]
    pub online: bool,
    #[serde(default)]
    pub ip: String,
    pub cpus: u32,
    /// Bytes.
    pub memory: u64,
    /// Bytes.
    pub rootfs: u64,
    /// `/nodes/{node}/rrddata` rows as PVE returns them (`time`, `cpu`, `memused`, …;
    /// a negative `time` is that many seconds before the simulator starts). Without it,
    /// rows are made from the node's current load.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rrddata: Option<Vec<Map<String, Value>>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StorageSpec {
    pub storage: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub content: Vec<String>,
    #[serde(default)]
    pub shared: bool,
    /// Nodes that have it (default: all).
    #[serde(default)]
    pub nodes: Option<Vec<String>>,
    #[serde(default)]
    pub path: Option<String>,
    /// Bytes, per node for local storage.
    pub total: u64,
    /// Bytes used by data the simulator does not list (per node for local storage), on top
    /// of its volumes and guest disks.
    #[serde(default)]
    pub other_used: u64,
    #[serde(default)]
    pub volumes: Vec<VolumeSpec>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VolumeSpec {
    pub volid: String,
    pub content: String,
    #[serde(default)]
    pub format: String,
    pub size: u64,
    /// Epoch seconds; a negative value is that many seconds before the simulator starts
    /// (a backup of last night). `{date}` in `volid` becomes this time as vzdump writes it
    /// (`2026_01_16-01_00_02`), `{iso}` as PBS writes it (`2026-01-16T01:00:02Z`).
    #[serde(default)]
    pub ctime: i64,
    #[serde(default)]
    pub vmid: Option<u32>,
    /// For local (not shared) storage: the node that holds it.
    #[serde(default)]
    pub node: Option<String>,
    #[serde(default)]
    pub notes: Option<String>,
    #[serde(default)]
    pub protected: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum GuestKind {
    Qemu,
    Lxc,
}

impl GuestKind {
    pub fn as_str(self) -> &'static str {
        match self {
            GuestKind::Qemu => "qemu",
            GuestKind::Lxc => "lxc",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum GuestStatus {
    Running,
    Stopped,
    /// QEMU: running but paused (`qmpstatus: paused`).
    Paused,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GuestSpec {
    pub vmid: u32,
    #[serde(rename = "type")]
    pub kind: GuestKind,
    pub node: String,
    pub status: GuestStatus,
    #[serde(default)]
    pub template: bool,
    #[serde(default)]
    pub tags: Vec<String>,
    /// The guest config as PVE returns it (name/hostname, cores, memory, disks, NICs, …).
    pub config: Map<String, Value>,
    #[serde(default)]
    pub snapshots: Vec<SnapshotSpec>,
    /// QEMU guest agent running inside the VM.
    #[serde(default)]
    pub agent_running: bool,
    /// Seconds the guest has been up (running guests).
    #[serde(default)]
    pub uptime: u64,
    /// CPU load of a running guest, as PVE's `cpu`: the fraction of its vCPUs in use
    /// (`0.5` = half of them). Without it, a small load derived from the vmid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<f64>,
    /// A config lock (`backup`, `migrate`, `snapshot`, `suspended`, …): operations PVE
    /// refuses on a locked guest fail with "VM is locked (backup)".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock: Option<String>,
    /// What guest-agent commands print, in order (the first match applies); commands not
    /// listed get the simulator's few built-in ones or "not found".
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub agent_commands: Vec<AgentCommandSpec>,
    /// `…/rrddata` rows as PVE returns them (`time`, `cpu`, `mem`, `netin`, …; a negative
    /// `time` is relative to the start). Without it, rows are made from the guest's load.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rrddata: Option<Vec<Map<String, Value>>>,
}

/// The config locks PVE knows: qemu-server's and pve-container's `lock` enum.
pub(crate) const QEMU_LOCKS: &[&str] = &[
    "backup",
    "clone",
    "create",
    "migrate",
    "rollback",
    "snapshot",
    "snapshot-delete",
    "suspending",
    "suspended",
];
pub(crate) const LXC_LOCKS: &[&str] = &[
    "backup",
    "create",
    "destroyed",
    "disk",
    "fstrim",
    "migrate",
    "mounted",
    "rollback",
    "snapshot",
    "snapshot-delete",
];

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SnapshotSpec {
    pub name: String,
    #[serde(default)]
    pub parent: Option<String>,
    #[serde(default)]
    pub description: String,
    pub snaptime: i64,
    #[serde(default)]
    pub vmstate: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenSpec {
    /// `user@realm!name`.
    pub id: String,
    pub secret: String,
    #[serde(default)]
    pub acl: Vec<AclSpec>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AclSpec {
    pub path: String,
    pub role: String,
    #[serde(default = "yes")]
    pub propagate: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{path} is not a valid cluster description: {why}")]
    Parse { path: String, why: String },
    #[error("cluster description: {0}")]
    Invalid(String),
}

impl ClusterSpec {
    /// The JSON Schema of a cluster description (`pve-mcp schema cluster`), derived from
    /// these types, so that it cannot drift from what [`ClusterSpec::load`] accepts; the
    /// checks across fields (known nodes, vmid ranges, locks) are [`ClusterSpec::validate`]'s.
    pub(crate) fn json_schema() -> Value {
        serde_json::to_value(schemars::schema_for!(ClusterSpec)).unwrap_or_default()
    }

    #[allow(
        clippy::expect_used,
        reason = "the built-in description is a constant, checked by the simulator's tests"
    )]
    pub fn default_cluster() -> ClusterSpec {
        serde_json::from_str(include_str!("default_cluster.json")).expect("the built-in cluster description is valid")
    }

    /// The guests replaced by `count` copies of the first one, vmids from `first_vmid`,
    /// named `guest-N`, without snapshots: a large cluster for benchmarks and tests.
    pub fn with_guest_copies(mut self, count: u32, first_vmid: u32) -> ClusterSpec {
        let Some(template) = self.guests.first().cloned() else {
            return self;
        };
        self.guests = (0..count)
            .map(|i| {
                let mut g = template.clone();
                g.vmid = first_vmid + i;
                g.snapshots.clear();
                g.config.insert("name".into(), Value::from(format!("guest-{i}")));
                g
            })
            .collect();
        self
    }

    /// The volumes of storage `storage` replaced by `count` ISO images (on node `pve1`),
    /// `STORAGE:iso/image-NNNNN.iso`: a storage with a large content listing.
    pub fn with_iso_volumes(mut self, storage: &str, count: u64) -> ClusterSpec {
        if let Some(st) = self.storages.iter_mut().find(|s| s.storage == storage) {
            st.volumes = (0..count)
                .map(|i| VolumeSpec {
                    volid: format!("{storage}:iso/image-{i:05}.iso"),
                    content: "iso".into(),
                    format: "iso".into(),
                    size: 1_000_000 + i,
                    ctime: 1_736_500_000,
                    vmid: None,
                    node: Some("pve1".into()),
                    notes: None,
                    protected: false,
                })
                .collect();
        }
        self
    }

    /// Load from a `.json` or `.toml` file.
    pub fn load(path: &Path) -> Result<ClusterSpec, SpecError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| SpecError::Read {
            path: shown.clone(),
            source,
        })?;
        let spec: ClusterSpec = if path.extension().is_some_and(|e| e == "toml") {
            toml::from_str(&text).map_err(|e| SpecError::Parse {
                path: shown.clone(),
                why: e.to_string(),
            })?
        } else {
            serde_json::from_str(&text).map_err(|e| SpecError::Parse {
                path: shown.clone(),
                why: e.to_string(),
            })?
        };
        spec.validate()?;
        Ok(spec)
    }

    pub fn validate(&self) -> Result<(), SpecError> {
        let bad = |s: String| Err(SpecError::Invalid(s));
        if self.nodes.is_empty() {
            return bad("at least one node is needed".into());
        }
        let known = |n: &str| self.nodes.iter().any(|x| x.name == n);
        let mut seen = std::collections::BTreeSet::new();
        for g in &self.guests {
            if !known(&g.node) {
                return bad(format!("guest {} is on unknown node '{}'", g.vmid, g.node));
            }
            if !(100..=999_999_999).contains(&g.vmid) || !seen.insert(g.vmid) {
                return bad(format!("vmid {} is out of range or used twice", g.vmid));
            }
            if g.status == GuestStatus::Paused && g.kind == GuestKind::Lxc {
                return bad(format!("container {} cannot be paused", g.vmid));
            }
            if let Some(lock) = &g.lock {
                let known = if g.kind == GuestKind::Qemu {
                    QEMU_LOCKS
                } else {
                    LXC_LOCKS
                };
                if !known.contains(&lock.as_str()) {
                    return bad(format!(
                        "guest {}: lock '{lock}' is not one of {}",
                        g.vmid,
                        known.join(", ")
                    ));
                }
            }
            if g.cpu.is_some_and(|c| !(0.0..=1.0).contains(&c)) {
                return bad(format!("guest {}: cpu is a fraction between 0 and 1", g.vmid));
            }
            if let Some(c) = g
                .agent_commands
                .iter()
                .find(|c| !matches!(c.command, Value::String(_) | Value::Array(_)))
            {
                return bad(format!(
                    "guest {}: agent command {} is not a string or a list",
                    g.vmid, c.command
                ));
            }
        }
        for s in &self.storages {
            if let Some(nodes) = &s.nodes
                && let Some(n) = nodes.iter().find(|n| !known(n))
            {
                return bad(format!("storage {} names unknown node '{n}'", s.storage));
            }
            for v in &s.volumes {
                if !v.volid.starts_with(&format!("{}:", s.storage)) {
                    return bad(format!("volume {} does not belong to storage {}", v.volid, s.storage));
                }
                if !s.shared && v.node.as_deref().is_none_or(|n| !known(n)) {
                    return bad(format!(
                        "volume {} on local storage {} needs a known node",
                        v.volid, s.storage
                    ));
                }
            }
        }
        for t in &self.tasks {
            if !known(&t.node) {
                return bad(format!("task {} {} is on unknown node '{}'", t.kind, t.id, t.node));
            }
            if t.kind.is_empty() || t.kind.contains(':') || t.id.contains(':') || t.user.contains(':') {
                return bad(format!(
                    "task '{}' '{}': type, id and user must not contain ':' (they are parts of the UPID)",
                    t.kind, t.id
                ));
            }
        }
        for (i, f) in self.faults.iter().enumerate() {
            if let Err(why) = f.fault() {
                return bad(format!("faults[{i}]: {why}"));
            }
        }
        let roles = crate::pve::roles::builtin_roles(self.major());
        for t in &self.tokens {
            if !t.id.contains('@') || !t.id.contains('!') {
                return bad(format!("token id '{}' is not USER@REALM!NAME", t.id));
            }
            // PVE::AccessControl: "role '$role' does not exist".
            if let Some(a) = t.acl.iter().find(|a| !roles.contains_key(&a.role)) {
                return bad(format!(
                    "token {}: role '{}' does not exist in PVE {} (built-in roles: {})",
                    t.id,
                    a.role,
                    if self.major() == PveMajor::V9 { 9 } else { 8 },
                    roles.keys().cloned().collect::<Vec<_>>().join(", ")
                ));
            }
        }
        Ok(())
    }

    pub(crate) fn major(&self) -> PveMajor {
        major_of(&self.version)
    }
}

/// `9.x` is PVE 9; anything else is taken as PVE 8.
pub(crate) fn major_of(version: &str) -> PveMajor {
    if version.starts_with('9') {
        PveMajor::V9
    } else {
        PveMajor::V8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_cluster_is_valid_and_realistic() {
        let c = ClusterSpec::default_cluster();
        c.validate().unwrap();
        assert_eq!(c.nodes.len(), 3);
        assert_eq!(c.nodes.iter().filter(|n| !n.online).count(), 1);
        assert!(c.guests.iter().any(|g| g.kind == GuestKind::Lxc) && c.guests.iter().any(|g| g.template));
        let types: Vec<&str> = c.storages.iter().map(|s| s.kind.as_str()).collect();
        assert_eq!(types, vec!["dir", "lvmthin", "nfs", "pbs"]);
    }

    #[test]
    fn toml_and_json_load_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let toml_path = dir.path().join("c.toml");
        std::fs::write(
            &toml_path,
            r#"
cluster_name = "lab"
[[nodes]]
name = "n1"
cpus = 4
memory = 8589934592
rootfs = 1000000000
[[guests]]
vmid = 100
type = "qemu"
node = "n1"
status = "stopped"
config = { name = "vm", memory = "1024" }
"#,
        )
        .unwrap();
        let c = ClusterSpec::load(&toml_path).unwrap();
        assert_eq!(c.guests[0].config["name"], "vm");
        let json_path = dir.path().join("c.json");
        std::fs::write(&json_path, r#"{"nodes": [{"name": "n1", "cpus": 1, "memory": 1, "rootfs": 1}], "guests": [{"vmid": 5, "type": "qemu", "node": "n1", "status": "stopped", "config": {}}]}"#).unwrap();
        let err = ClusterSpec::load(&json_path).unwrap_err().to_string();
        assert!(err.contains("vmid 5"), "{err}");
    }
}
