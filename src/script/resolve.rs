//! `pve::resolve_vmid(vmid)`: a guest's node, type, name, state and template flag, found
//! by vmid alone.
//!
//! The server keeps where each guest lives ([`crate::pve::VmidMap`], filled from every
//! `/cluster/resources` answer). With a known place, the guest's `status/current` is read
//! there: one GET that proves the place and gives the live state, and whose answer the
//! facts carry as `current` (so a status tool needs no second request). When that read
//! answers anything but the guest (it was migrated, deleted, or its node does not answer),
//! the place is looked up again in `/cluster/resources` and the facts come from there, as
//! they do for a vmid the map does not know. Only GETs are sent here, each through the gate.

use rhai::{Dynamic, NativeCallContext};
use serde_json::{Map, Value, json};

use super::ErrorKind;
use super::binding::{R, request, thrown, to_dynamic, try_request, unexpected, usage};
use super::context::CallContext;
use crate::api::{ApiPath, Method};
use crate::pve::Place;

pub(super) fn vmid_arg(n: &NativeCallContext, v: &Dynamic) -> Result<i64, Box<rhai::EvalAltResult>> {
    if let Ok(i) = v.as_int() {
        return Ok(i);
    }
    v.read_lock::<rhai::ImmutableString>()
        .and_then(|s| s.trim().parse::<i64>().ok())
        .ok_or_else(|| usage(n, format!("a vmid is an integer like 100, got {v}")))
}

pub(super) fn resolve_vmid(cx: &CallContext, n: &NativeCallContext, vmid: Dynamic) -> R {
    let vmid = vmid_arg(n, &vmid)?;
    if let Some(place) = cx.vmids().get(vmid) {
        let segs = vec![
            "nodes".to_string(),
            place.node.clone(),
            place.kind.to_string(),
            vmid.to_string(),
            "status".to_string(),
            "current".to_string(),
        ];
        let path = ApiPath::from_segments(segs).map_err(|e| usage(n, e.to_string()))?;
        match try_request(cx, n, Method::Get, &path, &Map::new())? {
            Some(Ok(cur)) if cur.is_object() => return to_dynamic(n, from_current(vmid, &place, cur)),
            Some(Ok(other)) => tracing::debug!("vmid {vmid}: GET {path} answered {other}; looking it up again"),
            Some(Err(e)) => tracing::debug!("vmid {vmid}: {e}; looking it up again"),
            None => {}
        }
    }
    from_resources(cx, n, vmid)
}

/// The facts from the guest's own `status/current` answer, which they carry as `current`.
fn from_current(vmid: i64, place: &Place, cur: Value) -> Value {
    let s = |k: &str| cur.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    json!({
        "vmid": vmid, "node": place.node, "type": place.kind, "name": s("name"), "status": s("status"),
        "template": crate::gate::truthy(cur.get("template")),
        "current": cur,
    })
}

/// The facts from `/cluster/resources` (which also refreshes the server's map).
fn from_resources(cx: &CallContext, n: &NativeCallContext, vmid: i64) -> R {
    let path = ApiPath::parse("/cluster/resources").map_err(|e| usage(n, e.to_string()))?;
    let params = json!({"type": "vm"});
    let rows = request(cx, n, Method::Get, &path, params.as_object().unwrap_or(&Map::new()))?.unwrap_or(Value::Null);
    let Some(rows) = rows.as_array().cloned() else {
        return Err(unexpected(cx, n, &path, &rows, "a list of guests"));
    };
    let row_vmid = |r: &Value| {
        r.get("vmid")
            .and_then(|v| v.as_i64().or_else(|| v.as_str().and_then(|s| s.parse().ok())))
    };
    if let Some(r) = rows.iter().find(|r| row_vmid(r) == Some(vmid)) {
        let s = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        if s("node").is_empty() || !matches!(s("type").as_str(), "qemu" | "lxc") {
            return Err(unexpected(
                cx,
                n,
                &path,
                r,
                "a guest with its node and type (qemu or lxc)",
            ));
        }
        return to_dynamic(
            n,
            json!({
                "vmid": vmid, "node": s("node"), "type": s("type"), "name": s("name"), "status": s("status"),
                "template": crate::gate::truthy(r.get("template")),
            }),
        );
    }
    if rows.is_empty() {
        return Err(thrown(
            n,
            ErrorKind::NotFound,
            format!(
                "No guest has vmid {vmid}: PVE listed no guests at all. Either the cluster has none, or the token lacks VM.Audit (grant PVEAuditor on / to see guests)."
            ),
        ));
    }
    let mut known: Vec<(i64, String)> = rows
        .iter()
        .filter_map(|r| {
            Some((
                row_vmid(r)?,
                r.get("name").and_then(Value::as_str).unwrap_or("").to_string(),
            ))
        })
        .collect();
    known.sort();
    let total = known.len();
    let listed: Vec<String> = known
        .iter()
        .take(50)
        .map(|(id, name)| {
            if name.is_empty() {
                id.to_string()
            } else {
                format!("{id} ({name})")
            }
        })
        .collect();
    let more = if total > 50 {
        format!(" and {} more", total - 50)
    } else {
        String::new()
    };
    Err(thrown(
        n,
        ErrorKind::NotFound,
        format!("No guest has vmid {vmid}. Existing vmids: {}{more}.", listed.join(", ")),
    ))
}
