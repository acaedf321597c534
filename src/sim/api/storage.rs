//! Storage: the cluster's storage config, per-node status, and content listings. Guest
//! disks are listed from the guests' configs, so they follow clones, resizes and deletes.

use serde_json::{Value, json};

use super::Call;
use super::cluster::storage_used;
use crate::sim::http::Reply;
use crate::sim::params;
use crate::sim::spec::GuestKind;
use crate::sim::state::disk_size;

fn visible(call: &Call<'_>, storage: &str) -> bool {
    call.can(
        &format!("/storage/{storage}"),
        &["Datastore.Audit", "Datastore.AllocateSpace"],
    )
}

/// `GET /storage`: the cluster-wide storage configuration.
pub(super) fn config(call: &mut Call<'_>) -> Reply {
    let filter = params::text(&call.req.params, "type");
    let rows: Vec<Value> = call
        .st
        .storages
        .iter()
        .filter(|(id, s)| visible(call, id) && filter.as_ref().is_none_or(|t| *t == s.spec.kind))
        .map(|(id, s)| {
            let mut r = json!({"storage": id, "type": s.spec.kind, "content": s.spec.content.join(","),
                               "digest": "6b7cbd6fc1b3a86f7cd1f6e4c2fcb8d24e0a7a19"});
            if s.spec.shared {
                r["shared"] = json!(1);
            }
            if let Some(p) = &s.spec.path {
                r["path"] = json!(p);
            }
            if let Some(n) = &s.spec.nodes {
                r["nodes"] = json!(n.join(","));
            }
            r
        })
        .collect();
    Reply::data(Value::Array(rows))
}

/// `GET /nodes/{node}/storage`, as pve-storage's `API2::Storage::Status` index answers:
/// every storage of the cluster config, where a storage that is not available on this node
/// (its `nodes` list) is listed with `enabled: 0`, `active: 0` and no space
/// (`PVE::Storage::storage_info`). A `content` filter also drops the storages that are not
/// enabled here; `enabled=1` drops only storages disabled in the config. An unknown
/// `storage` (or one the `content` filter dropped) is 400 `No such storage.`.
pub(super) fn status(call: &mut Call<'_>) -> Reply {
    let node = call.node().to_string();
    let p = &call.req.params;
    let content: Option<Vec<String>> = params::list(p, "content");
    let only = params::text(p, "storage");
    let info: Vec<(&String, &crate::sim::state::Storage, bool)> = call
        .st
        .storages
        .iter()
        .map(|(id, s)| (id, s, s.on_node(&node)))
        .filter(|(_, s, enabled)| {
            content
                .as_ref()
                .is_none_or(|want| *enabled && want.iter().any(|c| s.spec.content.contains(c)))
        })
        .collect();
    if let Some(o) = &only
        && !info.iter().any(|(id, _, _)| *id == o)
    {
        return Reply::param_error("storage", "No such storage.");
    }
    let rows: Vec<Value> = info
        .into_iter()
        .filter(|(id, _, _)| visible(call, id))
        .filter(|(id, _, _)| only.as_ref().is_none_or(|o| o == *id))
        .map(|(id, s, enabled)| {
            let mut row = json!({
                "storage": id, "type": s.spec.kind, "content": s.spec.content.join(","), "shared": i32::from(s.spec.shared),
                "enabled": i32::from(enabled), "active": 0, "total": 0, "used": 0, "avail": 0,
            });
            if enabled {
                let used = storage_used(call.st, id, &node, s.spec.shared).min(s.spec.total);
                row["active"] = json!(1);
                row["total"] = json!(s.spec.total);
                row["used"] = json!(used);
                row["avail"] = json!(s.spec.total - used);
                if s.spec.total > 0 {
                    row["used_fraction"] = json!(used as f64 / s.spec.total as f64);
                }
            }
            row
        })
        .collect();
    Reply::data(Value::Array(rows))
}

fn backup_subtype(volid: &str) -> Option<&'static str> {
    if volid.contains("vzdump-qemu-") || volid.contains(":backup/vm/") {
        Some("qemu")
    } else if volid.contains("vzdump-lxc-") || volid.contains(":backup/ct/") {
        Some("lxc")
    } else {
        None
    }
}

/// `GET /nodes/{node}/storage/{storage}/content`.
pub(super) fn content(call: &mut Call<'_>) -> Reply {
    let node = call.node().to_string();
    let id = call.arg("storage").to_string();
    let Some(s) = call.st.storages.get(&id) else {
        return Reply::error(500, format!("storage '{id}' does not exist"));
    };
    if !s.on_node(&node) {
        return Reply::error(500, format!("storage '{id}' is not available on node '{node}'"));
    }
    let shared = s.spec.shared;
    let p = &call.req.params;
    let want = params::text(p, "content");
    let vmid = params::int(p, "vmid");
    let mut rows: Vec<Value> = call
        .st
        .volumes
        .iter()
        .filter(|v| v.volid.starts_with(&format!("{id}:")) && (shared || v.node.as_deref() == Some(node.as_str())))
        .map(|v| {
            let mut r =
                json!({"volid": v.volid, "content": v.content, "format": v.format, "size": v.size, "ctime": v.ctime});
            if let Some(id) = v.vmid {
                r["vmid"] = json!(id);
            }
            if let Some(n) = &v.notes {
                r["notes"] = json!(n);
            }
            if v.content == "backup" {
                r["protected"] = json!(i32::from(v.protected));
                if let Some(st) = backup_subtype(&v.volid) {
                    r["subtype"] = json!(st);
                }
                if v.format.starts_with("pbs-") {
                    r["verification"] =
                        json!({"state": "ok", "upid": "UPID:pbs:00000001:00000001:00000001:verify::root@pam:"});
                }
            }
            r
        })
        .collect();
    // Guest disks on this storage.
    for g in call.st.guests.values().filter(|g| shared || g.node == node) {
        for (_, d) in g.disks() {
            let volid = d.split(',').next().unwrap_or("");
            if !volid.starts_with(&format!("{id}:")) {
                continue;
            }
            let content = if g.kind == GuestKind::Qemu { "images" } else { "rootdir" };
            rows.push(
                json!({"volid": volid, "content": content, "format": "raw", "size": disk_size(&d).unwrap_or(0),
                             "vmid": g.vmid, "used": disk_size(&d).unwrap_or(0) / 3}),
            );
        }
    }
    rows.retain(|r| want.as_ref().is_none_or(|w| r["content"] == w.as_str()) && vmid.is_none_or(|id| r["vmid"] == id));
    rows.sort_by(|a, b| a["volid"].as_str().cmp(&b["volid"].as_str()));
    Reply::data(Value::Array(rows))
}
