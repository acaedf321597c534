//! The description of a simulated cluster, loadable from JSON or TOML. The built-in
//! default (`default_cluster.json`) is a realistic home-lab cluster and a template for
//! writing your own.

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

#[derive(Debug, Clone, Serialize, Deserialize)]
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
    /// Finished tasks in the nodes' task history (`/var/log/pve/tasks/index`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tasks: Vec<TaskSpec>,
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

#[derive(Debug, Clone, Serialize, Deserialize)]
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
}

#[derive(Debug, Clone, Serialize, Deserialize)]
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

#[derive(Debug, Clone, Serialize, Deserialize)]
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GuestStatus {
    Running,
    Stopped,
    /// QEMU: running but paused (`qmpstatus: paused`).
    Paused,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
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
}

#[derive(Debug, Clone, Serialize, Deserialize)]
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

/// A finished task of a node's history.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskSpec {
    pub node: String,
    /// `qmstart`, `vzdump`, …
    #[serde(rename = "type")]
    pub task_type: String,
    /// The guest's vmid or another id; empty for none.
    #[serde(default)]
    pub id: String,
    /// `user@realm` or `user@realm!token`.
    pub user: String,
    /// Epoch seconds.
    pub starttime: u64,
    /// Seconds it ran.
    #[serde(default)]
    pub duration: u64,
    /// The exit status: `OK`, `WARNINGS: n` or the error.
    #[serde(default = "task_ok")]
    pub status: String,
}

fn task_ok() -> String {
    "OK".into()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenSpec {
    /// `user@realm!name`.
    pub id: String,
    pub secret: String,
    #[serde(default)]
    pub acl: Vec<AclSpec>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
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
    pub fn default_cluster() -> ClusterSpec {
        serde_json::from_str(include_str!("default_cluster.json")).expect("the built-in cluster description is valid")
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
        for t in &self.tokens {
            if !t.id.contains('@') || !t.id.contains('!') {
                return bad(format!("token id '{}' is not USER@REALM!NAME", t.id));
            }
        }
        Ok(())
    }

    pub fn major(&self) -> crate::pve::roles::PveMajor {
        if self.version.starts_with('9') {
            crate::pve::roles::PveMajor::V9
        } else {
            crate::pve::roles::PveMajor::V8
        }
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
