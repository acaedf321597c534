//! RRD statistics: `GET /nodes/{node}/rrddata` and `GET /nodes/{node}/{qemu|lxc}/{vmid}/rrddata`,
//! shaped as `PVE::RRD::create_rrd_data` (pve-cluster) returns them: one row per step of
//! the time frame, each `{time, <data source>: value, …}`, oldest first.
//!
//! PVE 8 reads the `pve2-node`/`pve2-vm` files (12 and 10 data sources; every time frame 70
//! steps: hour 1 min, day 30 min, week 3 h, month 12 h, year 7 days). PVE 9 reads
//! `pve-node-9.0`/`pve-vm-9.0` (with `memavailable`, `arcsize`, `memhost` and the pressure
//! sources of pmxcfs `status.c`; hour 60 × 1 min, day 1440 × 1 min, week 336 × 30 min,
//! month 1440 × 30 min, year 1440 × 6 h, decade 570 × 1 week, nodes only).

use serde_json::{Map, Value, json};

use super::Call;
use super::cluster::{fraction, guest_cpu, guest_mem};
use crate::pve::roles::PveMajor;
use crate::sim::http::Reply;
use crate::sim::params;
use crate::sim::state::{Guest, Node, now_secs};

pub(super) const PARAMS: &str = "node:str timeframe:enum(hour|day|week|month|year|decade) cf:enum(AVERAGE|MAX)?";
pub(super) const GUEST_PARAMS: &str =
    "node:str vmid:int(100..999999999) timeframe:enum(hour|day|week|month|year) cf:enum(AVERAGE|MAX)?";

/// (resolution in seconds, rows) of a time frame.
fn setup(major: PveMajor, timeframe: &str) -> Option<(i64, i64)> {
    Some(match (major, timeframe) {
        (PveMajor::V8, "hour") => (60, 70),
        (PveMajor::V8, "day") => (60 * 30, 70),
        (PveMajor::V8, "week") => (60 * 180, 70),
        (PveMajor::V8, "month") => (60 * 720, 70),
        (PveMajor::V8, "year") => (60 * 10080, 70),
        (PveMajor::V9, "hour") => (60, 60),
        (PveMajor::V9, "day") => (60, 1440),
        (PveMajor::V9, "week") => (60 * 30, 336),
        (PveMajor::V9, "month") => (60 * 30, 1440),
        (PveMajor::V9, "year") => (3600 * 6, 1440),
        (PveMajor::V9, "decade") => (86400 * 7, 570),
        _ => return None,
    })
}

/// The time window of a request: (first row's time, resolution, rows).
fn window(call: &Call<'_>) -> Result<(i64, i64, i64), Reply> {
    let major = call.st.major();
    let timeframe = params::text(&call.req.params, "timeframe").unwrap_or_default();
    let Some((reso, count)) = setup(major, &timeframe) else {
        return Err(Reply::param_error(
            "timeframe",
            format!("value '{timeframe}' does not have a value in the enumeration 'hour, day, week, month, year'"),
        ));
    };
    let ctime = reso * (now_secs() as i64 / reso);
    Ok((ctime - reso * count, reso, count))
}

/// Rows the cluster file gave, within the window.
fn given(rows: &[Map<String, Value>], start: i64, reso: i64, count: i64) -> Vec<Value> {
    let end = start + reso * count;
    rows.iter()
        .filter(|r| {
            r.get("time")
                .and_then(Value::as_i64)
                .is_none_or(|t| t >= start && t < end)
        })
        .map(|r| Value::Object(r.clone()))
        .collect()
}

/// A smooth variation around `base` for row `i` (MAX rows a little higher).
fn wave(seed: u64, i: i64, max: bool) -> f64 {
    let phase = (i as f64 / 9.0 + fraction(seed) * 6.0).sin();
    0.85 + 0.15 * phase + if max { 0.1 } else { 0.0 }
}

fn cf_max(call: &Call<'_>) -> bool {
    params::text(&call.req.params, "cf").as_deref() == Some("MAX")
}

pub(super) fn node(call: &mut Call<'_>) -> Reply {
    let (start, reso, count) = match window(call) {
        Ok(w) => w,
        Err(r) => return r,
    };
    let name = call.node().to_string();
    let Some(n) = call.st.nodes.get(&name).cloned() else {
        return Reply::error(500, format!("no such node '{name}'"));
    };
    if let Some(rows) = &n.rrddata {
        return Reply::data(Value::Array(given(rows, start, reso, count)));
    }
    let guests: Vec<Guest> = call
        .st
        .guests
        .values()
        .filter(|g| g.node == name && g.running())
        .cloned()
        .collect();
    let v9 = call.st.major() == PveMajor::V9;
    let max = cf_max(call);
    Reply::data(Value::Array(
        (0..count)
            .map(|i| node_row(&n, &guests, start + i * reso, i, max, v9))
            .collect(),
    ))
}

fn node_row(n: &Node, guests: &[Guest], time: i64, i: i64, max: bool, v9: bool) -> Value {
    let w = wave(n.pstart.into(), i, max);
    let busy: f64 = guests.iter().map(|g| guest_cpu(g) * g.cores() as f64).sum();
    let cpu = (busy / f64::from(n.cpus.max(1)) * w).min(1.0);
    let mem = ((guests.iter().map(guest_mem).sum::<u64>() + 2 * 1024 * 1024 * 1024) as f64 * w) as u64;
    let memused = mem.min(n.memory);
    let mut r = json!({
        "time": time, "loadavg": (busy * w * 100.0).round() / 100.0, "maxcpu": n.cpus, "cpu": cpu,
        "iowait": 0.002 * w, "memtotal": n.memory, "memused": memused,
        "swaptotal": 8_589_934_592u64, "swapused": 0, "roottotal": n.rootfs, "rootused": n.rootfs / 5,
        "netin": 18_000.0 * w * guests.len().max(1) as f64, "netout": 9_000.0 * w * guests.len().max(1) as f64,
    });
    if v9 {
        r["memavailable"] = json!(n.memory - memused);
        r["arcsize"] = json!(0);
        for k in [
            "pressurecpusome",
            "pressureiosome",
            "pressureiofull",
            "pressurememorysome",
            "pressurememoryfull",
        ] {
            r[k] = json!(0.0);
        }
    }
    r
}

pub(super) fn guest(call: &mut Call<'_>) -> Reply {
    let (start, reso, count) = match window(call) {
        Ok(w) => w,
        Err(r) => return r,
    };
    let g = match call.guest() {
        Ok(g) => g.clone(),
        Err(r) => return r,
    };
    if let Some(rows) = &g.rrddata {
        return Reply::data(Value::Array(given(rows, start, reso, count)));
    }
    let v9 = call.st.major() == PveMajor::V9;
    let max = cf_max(call);
    Reply::data(Value::Array(
        (0..count)
            .map(|i| guest_row(&g, start + i * reso, i, max, v9))
            .collect(),
    ))
}

fn guest_row(g: &Guest, time: i64, i: i64, max: bool, v9: bool) -> Value {
    let w = if g.running() {
        wave(u64::from(g.vmid), i, max)
    } else {
        0.0
    };
    let mem = (guest_mem(g) as f64 * w.min(1.0)) as u64;
    let mut r = json!({
        "time": time, "maxcpu": g.cores(), "cpu": guest_cpu(g) * w, "maxmem": g.maxmem(), "mem": mem,
        "maxdisk": g.maxdisk(), "disk": 0,
        "netin": 12_000.0 * w, "netout": 6_000.0 * w, "diskread": 40_000.0 * w, "diskwrite": 25_000.0 * w,
    });
    if v9 {
        r["memhost"] = json!(mem);
        for k in [
            "pressurecpusome",
            "pressurecpufull",
            "pressureiosome",
            "pressureiofull",
            "pressurememorysome",
            "pressurememoryfull",
        ] {
            r[k] = json!(0.0);
        }
    }
    r
}
