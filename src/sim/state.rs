//! The simulated cluster's live state, and its tasks.
//!
//! A task runs for the configured time; its effect on the state (a guest starting, a
//! snapshot appearing) and its log's last line are applied when it finishes. Finishing is
//! lazy: every request first calls [`State::advance`], so the state is exact at the moment
//! a client looks, with no background timers.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

use super::spec::{AgentCommandSpec, ClusterSpec, GuestKind, GuestStatus, SnapshotSpec, StorageSpec, VolumeSpec};

pub(crate) fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

#[derive(Debug, Clone)]
pub struct Node {
    pub name: String,
    pub online: bool,
    pub ip: String,
    pub cpus: u32,
    pub memory: u64,
    pub rootfs: u64,
    /// `pstart` of the UPIDs this node issues.
    pub pstart: u32,
    /// RRD rows given by the cluster file (times absolute).
    pub rrddata: Option<Vec<Map<String, Value>>>,
}

#[derive(Debug, Clone)]
pub struct Guest {
    pub vmid: u32,
    pub kind: GuestKind,
    pub node: String,
    pub status: GuestStatus,
    pub template: bool,
    pub tags: Vec<String>,
    pub config: Map<String, Value>,
    pub snapshots: Vec<SnapshotSpec>,
    pub agent_running: bool,
    /// Epoch seconds when it started (running or paused guests).
    pub started_at: Option<f64>,
    pub lock: Option<String>,
    /// The snapshot the current state derives from.
    pub parent: Option<String>,
    /// Config saved with each snapshot taken here (rollback restores it).
    pub snap_configs: BTreeMap<String, Map<String, Value>>,
    /// Changes waiting for a restart (the config's `[PENDING]` section): new values...
    pub pending: Map<String, Value>,
    /// ...and keys to delete, with their `force` flag.
    pub pending_delete: BTreeMap<String, bool>,
    /// CPU load while running, as a fraction of its vCPUs (`None`: derived from the vmid).
    pub cpu: Option<f64>,
    /// Guest-agent commands with their given output.
    pub agent_commands: Vec<AgentCommandSpec>,
    /// RRD rows given by the cluster file (times absolute).
    pub rrddata: Option<Vec<Map<String, Value>>>,
}

impl Guest {
    /// A new guest (from a clone, a restore or a create): stopped, no snapshots; its tags
    /// come from the config.
    pub fn fresh(vmid: u32, kind: GuestKind, node: &str, config: Map<String, Value>) -> Guest {
        let tags = config
            .get("tags")
            .and_then(Value::as_str)
            .map(crate::pve::lists::split_list)
            .unwrap_or_default();
        Guest {
            vmid,
            kind,
            node: node.to_string(),
            status: GuestStatus::Stopped,
            template: false,
            tags,
            config,
            snapshots: Vec::new(),
            agent_running: false,
            started_at: None,
            lock: None,
            parent: None,
            snap_configs: BTreeMap::new(),
            pending: Map::new(),
            pending_delete: BTreeMap::new(),
            cpu: None,
            agent_commands: Vec::new(),
            rrddata: None,
        }
    }

    pub fn name(&self) -> String {
        let key = if self.kind == GuestKind::Qemu {
            "name"
        } else {
            "hostname"
        };
        match self.config.get(key) {
            Some(Value::String(s)) => s.clone(),
            Some(v) => v.to_string(),
            None => format!(
                "{}{}",
                if self.kind == GuestKind::Qemu { "VM " } else { "CT " },
                self.vmid
            ),
        }
    }

    pub fn running(&self) -> bool {
        self.status != GuestStatus::Stopped
    }

    pub fn uptime(&self) -> u64 {
        self.started_at.map(|t| (now_secs() - t).max(0.0) as u64).unwrap_or(0)
    }

    /// "VM" or "CT", as PVE's messages say.
    pub(crate) fn word(&self) -> &'static str {
        if self.kind == GuestKind::Qemu { "VM" } else { "CT" }
    }

    /// Memory in bytes from the config (MiB there; QEMU gives it as a string).
    pub fn maxmem(&self) -> u64 {
        let mib = match self.config.get("memory") {
            Some(Value::Number(n)) => n.as_u64().unwrap_or(512),
            Some(Value::String(s)) => s
                .trim_start_matches("current=")
                .split(',')
                .next()
                .and_then(|v| v.parse().ok())
                .unwrap_or(512),
            _ => 512,
        };
        mib * 1024 * 1024
    }

    pub fn cores(&self) -> u64 {
        let n = |k: &str| {
            self.config
                .get(k)
                .and_then(|v| v.as_u64().or_else(|| v.as_str().and_then(|s| s.parse().ok())))
        };
        n("cores").unwrap_or(1) * n("sockets").unwrap_or(1)
    }

    /// Disk keys and their volume strings, without CD-ROMs.
    pub fn disks(&self) -> Vec<(String, String)> {
        self.config
            .iter()
            .filter(|(k, _)| is_disk_key(k))
            .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
            .filter(|(_, v)| !v.contains("media=cdrom") && v != "none")
            .collect()
    }

    /// Sum of the disk sizes, bytes.
    pub fn maxdisk(&self) -> u64 {
        self.disks().iter().filter_map(|(_, v)| disk_size(v)).sum()
    }
}

pub(crate) fn is_disk_key(key: &str) -> bool {
    if key == "rootfs" {
        return true;
    }
    ["scsi", "virtio", "sata", "ide", "efidisk", "tpmstate", "mp", "unused"]
        .iter()
        .any(|p| {
            key.strip_prefix(p)
                .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
        })
}

/// `size=32G` of a disk string, in bytes.
pub(crate) fn disk_size(disk: &str) -> Option<u64> {
    let size = disk.split(',').find_map(|p| p.strip_prefix("size="))?;
    parse_size(size)
}

/// `32G`, `512M`, `4096` (bytes) → bytes.
pub(crate) fn parse_size(s: &str) -> Option<u64> {
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(s.len()));
    let n: f64 = num.parse().ok()?;
    let mult = match unit {
        "" => 1.0,
        "K" => 1024.0,
        "M" => 1024.0 * 1024.0,
        "G" => 1024.0 * 1024.0 * 1024.0,
        "T" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    Some((n * mult) as u64)
}

/// A size in PVE's config notation: whole G when possible, else M.
pub(crate) fn format_size(bytes: u64) -> String {
    const G: u64 = 1024 * 1024 * 1024;
    const M: u64 = 1024 * 1024;
    if bytes.is_multiple_of(G) {
        format!("{}G", bytes / G)
    } else {
        format!("{}M", bytes.div_ceil(M))
    }
}

/// RRD rows with relative (negative) `time`s made absolute, oldest first.
fn absolute_rows(rows: &[Map<String, Value>], now: i64) -> Vec<Map<String, Value>> {
    let mut out: Vec<Map<String, Value>> = rows
        .iter()
        .map(|r| {
            let mut r = r.clone();
            if let Some(t) = r.get("time").and_then(Value::as_i64)
                && t < 0
            {
                r.insert("time".into(), Value::from(now + t));
            }
            r
        })
        .collect();
    out.sort_by_key(|r| r.get("time").and_then(Value::as_i64).unwrap_or(0));
    out
}

/// A volume with a relative `ctime` made absolute, and its volid's date placeholders filled.
fn dated(v: &VolumeSpec, now: i64) -> VolumeSpec {
    let mut v = v.clone();
    if v.ctime < 0 {
        v.ctime += now;
    }
    let (y, m, d, h, mi, s) = crate::human::utc_parts(v.ctime);
    v.volid = v
        .volid
        .replace("{date}", &format!("{y:04}_{m:02}_{d:02}-{h:02}_{mi:02}_{s:02}"))
        .replace("{iso}", &crate::human::iso_time(v.ctime));
    v
}

#[derive(Debug, Clone)]
pub struct Storage {
    pub spec: StorageSpec,
}

impl Storage {
    pub(crate) fn on_node(&self, node: &str) -> bool {
        self.spec.nodes.as_ref().is_none_or(|n| n.iter().any(|x| x == node))
    }
}

/// What a finished task does to the state. It may fail, with PVE's message.
pub(crate) type Effect = Box<dyn FnOnce(&mut State) -> Result<Vec<String>, String> + Send>;

pub struct Task {
    pub upid: String,
    pub node: String,
    pub task_type: String,
    pub id: String,
    pub user: String,
    pub starttime: f64,
    pub endtime: f64,
    pub pid: u32,
    pub pstart: u32,
    /// `None` while running, else the exit status (`OK`, `WARNINGS: n` or the error).
    pub exitstatus: Option<String>,
    pub log: Vec<String>,
    effect: Option<Effect>,
}

impl Task {
    pub fn running(&self) -> bool {
        self.exitstatus.is_none()
    }
}

/// A command started through the guest agent.
#[derive(Debug, Clone)]
pub struct ExecJob {
    pub vmid: u32,
    pub pid: u32,
    pub out: String,
    pub err: String,
    pub exitcode: i64,
    /// Epoch seconds when it exits.
    pub done_at: f64,
}

pub struct State {
    pub cluster_name: Option<String>,
    pub version: String,
    pub task_duration: Duration,
    /// Agent exec-status booleans as JSON `true`/`false` instead of PVE's `1`/`0`.
    pub agent_json_booleans: bool,
    pub nodes: BTreeMap<String, Node>,
    pub storages: BTreeMap<String, Storage>,
    /// Volumes that are not guest disks: ISOs, templates, backups (disks come from configs).
    pub volumes: Vec<VolumeSpec>,
    pub guests: BTreeMap<u32, Guest>,
    pub tasks: Vec<Task>,
    pub exec_jobs: Vec<ExecJob>,
    /// Log lines the finishing task's effect wrote before it failed (a vzdump job's
    /// per-guest errors); appended to that task's log.
    pub effect_log: Vec<String>,
    next_pid: u32,
    next_exec_pid: u32,
}

impl State {
    pub fn new(spec: &ClusterSpec) -> State {
        let now = now_secs();
        let nodes = spec
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| {
                (
                    n.name.clone(),
                    Node {
                        name: n.name.clone(),
                        online: n.online,
                        ip: n.ip.clone(),
                        cpus: n.cpus,
                        memory: n.memory,
                        rootfs: n.rootfs,
                        pstart: 0x05E3_1C50 + (i as u32) * 0x1000,
                        rrddata: n.rrddata.as_ref().map(|rows| absolute_rows(rows, now as i64)),
                    },
                )
            })
            .collect();
        let storages = spec
            .storages
            .iter()
            .map(|s| (s.storage.clone(), Storage { spec: s.clone() }))
            .collect();
        let volumes = spec
            .storages
            .iter()
            .flat_map(|s| s.volumes.iter().map(|v| dated(v, now as i64)))
            .collect();
        let guests = spec
            .guests
            .iter()
            .map(|g| {
                let mut config = g.config.clone();
                if !g.tags.is_empty() {
                    config.insert("tags".into(), Value::String(g.tags.join(";")));
                }
                (
                    g.vmid,
                    Guest {
                        vmid: g.vmid,
                        kind: g.kind,
                        node: g.node.clone(),
                        status: g.status,
                        template: g.template,
                        tags: g.tags.clone(),
                        config,
                        snapshots: g.snapshots.clone(),
                        agent_running: g.agent_running,
                        started_at: (g.status != GuestStatus::Stopped).then_some(now - g.uptime as f64),
                        lock: g.lock.clone(),
                        parent: g.snapshots.iter().max_by_key(|s| s.snaptime).map(|s| s.name.clone()),
                        snap_configs: BTreeMap::new(),
                        pending: Map::new(),
                        pending_delete: BTreeMap::new(),
                        cpu: g.cpu,
                        agent_commands: g.agent_commands.clone(),
                        rrddata: g.rrddata.as_ref().map(|rows| absolute_rows(rows, now as i64)),
                    },
                )
            })
            .collect();
        let mut state = State {
            cluster_name: spec.cluster_name.clone(),
            version: spec.version.clone(),
            task_duration: Duration::from_millis(spec.task_duration_ms),
            agent_json_booleans: spec.agent_json_booleans,
            nodes,
            storages,
            volumes,
            guests,
            tasks: Vec::new(),
            exec_jobs: Vec::new(),
            effect_log: Vec::new(),
            next_pid: 0x0012_EBC1,
            next_exec_pid: 4180,
        };
        for t in &spec.tasks {
            state.add_history(t, now);
        }
        state
    }

    /// A task of the cluster file's history, finished or running, with PVE's final log line
    /// (`PVE::RESTEnvironment` worker exit: `TASK OK`, `TASK WARNINGS: n`, `TASK ERROR: …`).
    fn add_history(&mut self, t: &super::spec::TaskSpec, now: f64) {
        let starttime = if t.starttime < 0 {
            now + t.starttime as f64
        } else {
            t.starttime as f64
        };
        let pid = self.next_pid;
        self.next_pid += 1;
        let pstart = self.nodes.get(&t.node).map(|n| n.pstart).unwrap_or(0x05E3_1C50);
        let upid = format!(
            "UPID:{}:{pid:08X}:{pstart:08X}:{:08X}:{}:{}:{}:",
            t.node, starttime as u64, t.kind, t.id, t.user
        );
        let mut log = t.log.clone();
        let exitstatus = t.status.as_ref().map(|s| {
            let s = s.trim().to_string();
            log.push(if s == "OK" {
                "TASK OK".to_string()
            } else if let Some(n) = s.strip_prefix("WARNINGS: ") {
                format!("TASK WARNINGS: {n}")
            } else {
                format!("TASK ERROR: {s}")
            });
            s
        });
        self.tasks.push(Task {
            upid,
            node: t.node.clone(),
            task_type: t.kind.clone(),
            id: t.id.clone(),
            user: t.user.clone(),
            starttime,
            endtime: if exitstatus.is_some() {
                starttime + t.duration as f64
            } else {
                f64::INFINITY
            },
            pid,
            pstart,
            exitstatus,
            log,
            effect: None,
        });
    }

    /// Finish every task whose time has come, in order, applying its effect.
    pub(crate) fn advance(&mut self) {
        let now = now_secs();
        loop {
            let next = self
                .tasks
                .iter()
                .enumerate()
                .filter(|(_, t)| t.running() && t.endtime <= now)
                .min_by(|a, b| a.1.endtime.total_cmp(&b.1.endtime))
                .map(|(i, _)| i);
            let Some(i) = next else { break };
            let effect = self.tasks[i].effect.take();
            let result = match effect {
                Some(f) => f(self),
                None => Ok(Vec::new()),
            };
            let written = std::mem::take(&mut self.effect_log);
            let task = &mut self.tasks[i];
            task.log.extend(written);
            match result {
                Ok(lines) => {
                    task.log.extend(lines);
                    task.log.push("TASK OK".into());
                    task.exitstatus = Some("OK".into());
                }
                Err(msg) => {
                    task.log.push(msg.clone());
                    task.log.push(format!("TASK ERROR: {msg}"));
                    task.exitstatus = Some(msg);
                }
            }
        }
    }

    /// Start a task on `node` and return its UPID. `first_lines` are logged at once; the
    /// effect runs when the task finishes.
    pub fn start_task(
        &mut self,
        node: &str,
        task_type: &str,
        id: &str,
        user: &str,
        first_lines: Vec<String>,
        effect: Effect,
    ) -> String {
        let now = now_secs();
        let pid = self.next_pid;
        self.next_pid += 1;
        let pstart = self.nodes.get(node).map(|n| n.pstart).unwrap_or(0x05E3_1C50);
        let upid = format!(
            "UPID:{node}:{pid:08X}:{pstart:08X}:{:08X}:{task_type}:{id}:{user}:",
            now as u64
        );
        self.tasks.push(Task {
            upid: upid.clone(),
            node: node.to_string(),
            task_type: task_type.to_string(),
            id: id.to_string(),
            user: user.to_string(),
            starttime: now,
            endtime: now + self.task_duration.as_secs_f64(),
            pid,
            pstart,
            exitstatus: None,
            log: first_lines,
            effect: Some(effect),
        });
        upid
    }

    pub fn task(&self, upid: &str) -> Option<&Task> {
        self.tasks.iter().find(|t| t.upid == upid)
    }

    pub(crate) fn next_exec_pid(&mut self) -> u32 {
        self.next_exec_pid += 1;
        self.next_exec_pid
    }

    /// The lowest free vmid from 100.
    pub(crate) fn next_free_vmid(&self) -> u32 {
        (100..).find(|id| !self.guests.contains_key(id)).unwrap_or(100)
    }

    /// The PVE major version whose privileges and behaviour apply.
    pub(crate) fn major(&self) -> crate::pve::roles::PveMajor {
        super::spec::major_of(&self.version)
    }

    pub fn node_online(&self, node: &str) -> bool {
        self.nodes.get(node).is_some_and(|n| n.online)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("32G"), Some(32 * 1024 * 1024 * 1024));
        assert_eq!(parse_size("4M"), Some(4 * 1024 * 1024));
        assert_eq!(parse_size("1.5G"), Some(1610612736));
        assert_eq!(parse_size("12X"), None);
        assert_eq!(format_size(parse_size("42G").unwrap()), "42G");
        assert_eq!(format_size(parse_size("4M").unwrap()), "4M");
        assert_eq!(
            disk_size("local-lvm:vm-100-disk-0,iothread=1,size=32G"),
            parse_size("32G")
        );
        assert!(
            is_disk_key("scsi0")
                && is_disk_key("rootfs")
                && is_disk_key("mp10")
                && !is_disk_key("net0")
                && !is_disk_key("scsihw")
        );
    }

    #[test]
    fn tasks_finish_lazily_with_their_effect() {
        let mut spec = ClusterSpec::default_cluster();
        spec.task_duration_ms = 0;
        let mut s = State::new(&spec);
        let upid = s.start_task(
            "pve1",
            "qmstart",
            "102",
            "root@pam!sim",
            vec![],
            Box::new(|st: &mut State| {
                if let Some(g) = st.guests.get_mut(&102) {
                    g.status = GuestStatus::Running;
                }
                Ok(vec!["started".into()])
            }),
        );
        assert!(upid.starts_with("UPID:pve1:0012EBC1:05E31C50:") && upid.ends_with(":qmstart:102:root@pam!sim:"));
        assert!(crate::pve::Upid::parse(&upid).is_ok());
        s.advance();
        let t = s.task(&upid).unwrap();
        assert_eq!(t.exitstatus.as_deref(), Some("OK"));
        assert_eq!(t.log.last().map(String::as_str), Some("TASK OK"));
        assert_eq!(s.guests[&102].status, GuestStatus::Running);

        let failing = s.start_task(
            "pve1",
            "qmstart",
            "100",
            "u@pve!t",
            vec![],
            Box::new(|_: &mut State| Err("VM 100 already running".into())),
        );
        s.advance();
        let t = s.task(&failing).unwrap();
        assert_eq!(t.exitstatus.as_deref(), Some("VM 100 already running"));
        assert_eq!(
            t.log.last().map(String::as_str),
            Some("TASK ERROR: VM 100 already running")
        );
    }
}
