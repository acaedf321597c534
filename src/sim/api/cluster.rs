//! Cluster-wide and node endpoints: version, nodes, node status, cluster status,
//! resources, next free vmid.

use serde_json::{Value, json};

use super::Call;
use crate::sim::http::Reply;
use crate::sim::params;
use crate::sim::state::{Guest, State, disk_size, now_secs};

/// A stable pseudo-random fraction for usage figures: the same object gives the same
/// numbers within a minute.
pub(super) fn fraction(seed: u64) -> f64 {
    let minute = (now_secs() / 60.0) as u64;
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ minute.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 31;
    x = x.wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 29;
    (x % 10_000) as f64 / 10_000.0
}

pub(super) fn version(call: &mut Call<'_>) -> Reply {
    let v = call.st.version.clone();
    let release: String = v.split('.').take(2).collect::<Vec<_>>().join(".");
    Reply::data(json!({"version": v, "release": release, "repoid": "c2b5a8f7d1e3b4a6"}))
}

/// Memory and CPU in use on a node: its running guests plus a base load.
fn node_load(st: &State, node: &str) -> (f64, u64) {
    let guests: Vec<&Guest> = st.guests.values().filter(|g| g.node == node && g.running()).collect();
    let mem: u64 = guests.iter().map(|g| guest_mem(g)).sum::<u64>() + 2 * 1024 * 1024 * 1024;
    let cpu = guests.iter().map(|g| guest_cpu(g) * g.cores() as f64).sum::<f64>();
    (cpu, mem)
}

pub(super) fn guest_mem(g: &Guest) -> u64 {
    if !g.running() {
        return 0;
    }
    (g.maxmem() as f64 * (0.25 + 0.5 * fraction(u64::from(g.vmid)))) as u64
}

pub(super) fn guest_cpu(g: &Guest) -> f64 {
    if !g.running() || g.status == crate::sim::spec::GuestStatus::Paused {
        return 0.0;
    }
    if let Some(cpu) = g.cpu {
        return cpu;
    }
    (0.01 + 0.2 * fraction(u64::from(g.vmid) + 7) * 1000.0).round() / 1000.0
}

/// Disk bytes used on a storage (on one node for local storage).
pub(super) fn storage_used(st: &State, storage: &str, node: &str, shared: bool) -> u64 {
    let volumes: u64 = st
        .volumes
        .iter()
        .filter(|v| v.volid.starts_with(&format!("{storage}:")) && (shared || v.node.as_deref() == Some(node)))
        .map(|v| v.size)
        .sum();
    let disks: u64 = st
        .guests
        .values()
        .filter(|g| shared || g.node == node)
        .flat_map(|g| g.disks())
        .filter(|(_, d)| d.starts_with(&format!("{storage}:")))
        .filter_map(|(_, d)| disk_size(&d))
        .map(|size| size / 3)
        .sum();
    let other = st.storages.get(storage).map_or(0, |s| s.spec.other_used);
    volumes + disks + other
}

fn node_row(st: &State, name: &str) -> Value {
    let n = &st.nodes[name];
    if !n.online {
        return json!({"node": name, "id": format!("node/{name}"), "type": "node", "status": "offline", "level": ""});
    }
    let (cpu, mem) = node_load(st, name);
    json!({
        "node": name, "id": format!("node/{name}"), "type": "node", "status": "online", "level": "",
        "cpu": (cpu / f64::from(n.cpus)).min(1.0), "maxcpu": n.cpus, "mem": mem.min(n.memory), "maxmem": n.memory,
        "disk": n.rootfs / 5, "maxdisk": n.rootfs, "uptime": 1_209_600,
        "ssl_fingerprint": "3A:9F:0C:62:11:5E:8B:D4:7A:21:C3:90:44:F1:6E:2B:77:5D:08:AA:C1:3E:99:BF:12:40:67:DE:F3:58:2C:0A",
    })
}

pub(super) fn nodes(call: &mut Call<'_>) -> Reply {
    let names: Vec<String> = call.st.nodes.keys().cloned().collect();
    let rows: Vec<Value> = names.iter().map(|n| node_row(call.st, n)).collect();
    Reply::data(Value::Array(rows))
}

pub(super) fn node_status(call: &mut Call<'_>) -> Reply {
    let name = call.node().to_string();
    let n = call.st.nodes[&name].clone();
    let (cpu, mem) = node_load(call.st, &name);
    let mem = mem.min(n.memory);
    let kernel = "6.8.12-8-pve";
    let la = |f: f64| format!("{:.2}", cpu * f);
    let mut out = json!({
        "cpu": (cpu / f64::from(n.cpus)).min(1.0), "wait": 0.0012, "idle": 0, "uptime": 1_209_600,
        "loadavg": [la(1.0), la(0.9), la(0.8)],
        "memory": {"total": n.memory, "used": mem, "free": n.memory - mem},
        "swap": {"total": 8_589_934_592u64, "used": 0, "free": 8_589_934_592u64},
        "rootfs": {"total": n.rootfs, "used": n.rootfs / 5, "free": n.rootfs - n.rootfs / 5, "avail": n.rootfs - n.rootfs / 5},
        "ksm": {"shared": 0},
        "cpuinfo": {"model": "AMD Ryzen 9 7950X 16-Core Processor", "cpus": n.cpus, "cores": n.cpus / 2, "sockets": 1, "mhz": "4500.000", "hvm": "1", "flags": "fpu vme de pse tsc msr pae mce svm"},
        "kversion": format!("Linux {kernel} #1 SMP PREEMPT_DYNAMIC PMX 6.8.12-8 (2025-01-24T12:32Z) x86_64"),
        "current-kernel": {"sysname": "Linux", "release": kernel, "version": "#1 SMP PREEMPT_DYNAMIC PMX 6.8.12-8 (2025-01-24T12:32Z)", "machine": "x86_64"},
        "boot-info": {"mode": "efi", "secureboot": 0},
        "pveversion": format!("pve-manager/{}/c2b5a8f7d1e3b4a6", call.st.version),
    });
    if call.st.version.starts_with('9') {
        out["memory"]["available"] = json!(n.memory - mem);
    }
    // pve-manager 8.1.0 added `current-kernel` and `boot-info` (API2::Nodes status).
    let mut parts = call.st.version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    if (parts.next().unwrap_or(0), parts.next().unwrap_or(0)) < (8, 1)
        && let Some(o) = out.as_object_mut()
    {
        o.remove("current-kernel");
        o.remove("boot-info");
    }
    Reply::data(out)
}

pub(super) fn status(call: &mut Call<'_>) -> Reply {
    let st = &call.st;
    let online = st.nodes.values().filter(|n| n.online).count();
    let mut rows = Vec::new();
    if let Some(name) = &st.cluster_name {
        rows.push(json!({"type": "cluster", "id": "cluster", "name": name, "nodes": st.nodes.len(), "quorate": i32::from(online * 2 > st.nodes.len()), "version": 7}));
    }
    let first = st.nodes.keys().next().cloned().unwrap_or_default();
    for (i, n) in st.nodes.values().enumerate() {
        rows.push(
            json!({"type": "node", "id": format!("node/{}", n.name), "name": n.name, "nodeid": i + 1, "ip": n.ip,
                         "online": i32::from(n.online), "local": i32::from(n.name == first), "level": ""}),
        );
    }
    Reply::data(Value::Array(rows))
}

pub(super) fn guest_row(g: &Guest) -> Value {
    let running = g.running();
    let seed = u64::from(g.vmid);
    let mut row = json!({
        "id": format!("{}/{}", g.kind.as_str(), g.vmid), "type": g.kind.as_str(), "vmid": g.vmid, "name": g.name(),
        "node": g.node, "status": if running { "running" } else { "stopped" }, "template": i32::from(g.template),
        "maxcpu": g.cores(), "cpu": guest_cpu(g), "maxmem": g.maxmem(), "mem": guest_mem(g),
        "maxdisk": g.maxdisk(), "disk": if g.kind == crate::sim::spec::GuestKind::Lxc && running { g.maxdisk() / 4 } else { 0 },
        "uptime": g.uptime(),
        "netin": if running { (fraction(seed + 1) * 9e9) as u64 } else { 0 },
        "netout": if running { (fraction(seed + 2) * 3e9) as u64 } else { 0 },
        "diskread": if running { (fraction(seed + 3) * 5e9) as u64 } else { 0 },
        "diskwrite": if running { (fraction(seed + 4) * 5e9) as u64 } else { 0 },
    });
    if !g.tags.is_empty() {
        row["tags"] = json!(g.tags.join(";"));
    }
    if let Some(lock) = &g.lock {
        row["lock"] = json!(lock);
    }
    row
}

pub(super) fn resources(call: &mut Call<'_>) -> Reply {
    let filter = params::text(&call.req.params, "type");
    let want = |t: &str| filter.as_deref().is_none_or(|f| f == t);
    let mut rows = Vec::new();
    if want("vm") {
        for g in call.st.guests.values() {
            if call.can(&format!("/vms/{}", g.vmid), &["VM.Audit"]) {
                rows.push(guest_row(g));
            }
        }
    }
    if want("node") {
        for name in call.st.nodes.keys() {
            if call.can(&format!("/nodes/{name}"), &["Sys.Audit"]) {
                rows.push(node_row(call.st, name));
            }
        }
    }
    if want("storage") {
        for (id, s) in &call.st.storages {
            if !call.can(
                &format!("/storage/{id}"),
                &["Datastore.Audit", "Datastore.AllocateSpace"],
            ) {
                continue;
            }
            for node in call.st.nodes.values().filter(|n| s.on_node(&n.name)) {
                let used = storage_used(call.st, id, &node.name, s.spec.shared);
                let mut row = json!({
                    "id": format!("storage/{}/{id}", node.name), "type": "storage", "storage": id, "node": node.name,
                    "status": if node.online { "available" } else { "unknown" }, "plugintype": s.spec.kind,
                    "content": s.spec.content.join(","), "shared": i32::from(s.spec.shared),
                });
                if node.online {
                    row["disk"] = json!(used);
                    row["maxdisk"] = json!(s.spec.total);
                }
                rows.push(row);
            }
        }
    }
    Reply::data(Value::Array(rows))
}

pub(super) fn nextid(call: &mut Call<'_>) -> Reply {
    match params::int(&call.req.params, "vmid") {
        Some(id) if call.st.guests.contains_key(&(id as u32)) => {
            Reply::param_error("vmid", format!("VM {id} already exists"))
        }
        Some(id) => Reply::data(json!(id.to_string())),
        None => Reply::data(json!(call.st.next_free_vmid().to_string())),
    }
}

/// `GET /access/permissions`: the caller's own privileges, per ACL path.
pub(super) fn permissions(call: &mut Call<'_>) -> Reply {
    let mut paths: Vec<String> = call.who.acl_paths();
    if let Some(p) = params::text(&call.req.params, "path") {
        paths = vec![p];
    }
    let mut out = serde_json::Map::new();
    for path in paths {
        let privs: serde_json::Map<String, Value> = call
            .tokens
            .privileges(call.who, &path)
            .into_iter()
            .map(|p| (p.to_string(), json!(1)))
            .collect();
        if !privs.is_empty() {
            out.insert(path, Value::Object(privs));
        }
    }
    Reply::data(Value::Object(out))
}
