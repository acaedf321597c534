//! Where each guest lives: vmid → node and type, shared by every call of one server.
//!
//! Filled from every `/cluster/resources` answer the server reads (a guest listing refreshes
//! it for free), so that resolving a vmid usually needs no request of its own. An entry is a
//! hint, never trusted for a decision: `pve::resolve_vmid` reads the guest at the cached
//! place, and when PVE answers anything but the guest (it moved, it is gone, the node does
//! not answer) it reads `/cluster/resources` again and answers from that.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use serde_json::Value;

/// One guest's place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Place {
    pub(crate) node: String,
    /// `qemu` or `lxc`.
    pub(crate) kind: &'static str,
}

#[derive(Debug, Default)]
pub(crate) struct VmidMap {
    places: RwLock<Arc<HashMap<i64, Place>>>,
}

impl VmidMap {
    pub(crate) fn new() -> VmidMap {
        VmidMap::default()
    }

    pub(crate) fn get(&self, vmid: i64) -> Option<Place> {
        self.places
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&vmid)
            .cloned()
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.places.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Replace the map with the guests of a `/cluster/resources` answer (`type=vm` or
    /// unfiltered). Rows that are not guests are skipped; an answer that is not a list
    /// changes nothing.
    pub(crate) fn refresh(&self, rows: &Value) {
        let Some(rows) = rows.as_array() else { return };
        let mut next = HashMap::with_capacity(rows.len());
        for r in rows {
            let kind = match r.get("type").and_then(Value::as_str) {
                Some("qemu") => "qemu",
                Some("lxc") => "lxc",
                _ => continue,
            };
            let vmid = r
                .get("vmid")
                .and_then(|v| v.as_i64().or_else(|| v.as_str().and_then(|s| s.trim().parse().ok())));
            let node = r.get("node").and_then(Value::as_str);
            if let (Some(vmid), Some(node)) = (vmid, node) {
                next.insert(
                    vmid,
                    Place {
                        node: node.to_string(),
                        kind,
                    },
                );
            }
        }
        *self.places.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(next);
    }

    /// Does a GET of this path with these parameters answer the cluster's guests?
    pub(crate) fn lists_guests(segments: &[String], params: &serde_json::Map<String, Value>) -> bool {
        segments.len() == 2
            && segments[0] == "cluster"
            && segments[1] == "resources"
            && params.get("type").is_none_or(|t| t.as_str() == Some("vm"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn refresh_keeps_guests_only_and_replaces() {
        let m = VmidMap::new();
        m.refresh(&json!([
            {"type": "qemu", "vmid": 100, "node": "a"},
            {"type": "lxc", "vmid": "200", "node": "b"},
            {"type": "node", "node": "a"},
            {"type": "storage", "node": "a", "storage": "local"},
        ]));
        assert_eq!(m.len(), 2);
        assert_eq!(
            m.get(200),
            Some(Place {
                node: "b".into(),
                kind: "lxc"
            })
        );
        m.refresh(&json!([{"type": "qemu", "vmid": 100, "node": "c"}]));
        assert_eq!(m.get(100).map(|p| p.node), Some("c".into()));
        assert_eq!(m.get(200), None);
        m.refresh(&json!({"not": "a list"}));
        assert_eq!(m.len(), 1);
    }

    #[test]
    fn which_reads_list_guests() {
        let p = |v: Value| v.as_object().cloned().unwrap_or_default();
        let res = ["cluster".to_string(), "resources".to_string()];
        assert!(VmidMap::lists_guests(&res, &p(json!({}))));
        assert!(VmidMap::lists_guests(&res, &p(json!({"type": "vm"}))));
        assert!(!VmidMap::lists_guests(&res, &p(json!({"type": "node"}))));
        assert!(!VmidMap::lists_guests(&["nodes".to_string()], &p(json!({}))));
    }
}
