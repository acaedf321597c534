//! Task endpoints: status, log, and the task lists of the cluster and of a node.

use serde_json::{Map, Value, json};

use super::Call;
use crate::sim::http::Reply;
use crate::sim::params;
use crate::sim::state::Task;

/// Split `user@realm!token` into PVE's `user` and `tokenid` fields.
fn owner(t: &Task) -> (String, Option<String>) {
    match t.user.split_once('!') {
        Some((u, tok)) => (u.to_string(), Some(tok.to_string())),
        None => (t.user.clone(), None),
    }
}

fn visible(call: &Call<'_>, t: &Task) -> bool {
    t.user == call.who.token_id || call.can(&format!("/nodes/{}", t.node), &["Sys.Audit"])
}

fn find<'a>(call: &'a Call<'_>) -> Result<&'a Task, Reply> {
    let upid = call.arg("upid");
    if crate::pve::Upid::parse(upid).is_err() {
        return Err(Reply::param_error("upid", "unable to parse worker upid"));
    }
    match call.st.task(upid) {
        Some(t) if t.node == call.node() => {
            if visible(call, t) {
                Ok(t)
            } else {
                Err(Reply::error(
                    403,
                    format!("Permission check failed (/nodes/{}, Sys.Audit)", t.node),
                ))
            }
        }
        _ => Err(Reply::param_error("upid", "no such task")),
    }
}

fn row(t: &Task, with_status: bool) -> Value {
    let (user, tokenid) = owner(t);
    let mut r = json!({
        "upid": t.upid, "node": t.node, "pid": t.pid, "pstart": t.pstart, "starttime": t.starttime as u64,
        "type": t.task_type, "id": t.id, "user": user,
    });
    if let Some(tok) = tokenid {
        r["tokenid"] = json!(tok);
    }
    match &t.exitstatus {
        Some(exit) => {
            r["endtime"] = json!(t.endtime as u64);
            r["status"] = json!(exit);
        }
        None if with_status => r["status"] = json!("RUNNING"),
        None => {}
    }
    r
}

pub(super) fn status(call: &mut Call<'_>) -> Reply {
    let t = match find(call) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let mut r = row(t, false);
    match &t.exitstatus {
        Some(exit) => {
            r["status"] = json!("stopped");
            r["exitstatus"] = json!(exit);
        }
        None => r["status"] = json!("running"),
    }
    if let Some(o) = r.as_object_mut() {
        o.remove("endtime");
    }
    Reply::data(r)
}

pub(super) fn log(call: &mut Call<'_>) -> Reply {
    let t = match find(call) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let start = params::int(&call.req.params, "start").unwrap_or(0).max(0) as usize;
    let limit = params::int(&call.req.params, "limit").unwrap_or(50).max(0) as usize;
    let total = t.log.len();
    let take = if limit == 0 { total } else { limit };
    let lines: Vec<Value> = if total == 0 {
        vec![json!({"n": 1, "t": "no content"})]
    } else {
        t.log
            .iter()
            .enumerate()
            .skip(start)
            .take(take)
            .map(|(i, l)| json!({"n": i + 1, "t": l}))
            .collect()
    };
    let mut extra = Map::new();
    extra.insert("total".into(), json!(total.max(1)));
    Reply::data_with(Value::Array(lines), extra)
}

/// Finished tasks a node keeps in the cluster-wide list, running ones included
/// (pve-common `RESTEnvironment::active_workers`, `$MAX_FINISHED`).
const MAX_FINISHED: usize = 25;

/// Recent tasks of all nodes, running ones included (without a status): what each node
/// broadcasts, as pve-manager's `API2::Cluster` `tasks` reads it from
/// `PVE::Cluster::get_tasklist`. A node broadcasts all its running tasks and then its
/// newest finished ones up to [`MAX_FINISHED`] in all (`active_workers`), so a long history
/// is not listed here; `/nodes/{node}/tasks` pages through it.
pub(super) fn cluster_tasks(call: &mut Call<'_>) -> Reply {
    let mut tasks: Vec<&Task> = call.st.tasks.iter().filter(|t| visible(call, t)).collect();
    tasks.sort_by(|a, b| b.starttime.total_cmp(&a.starttime));
    let mut kept: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
    for t in tasks.iter().filter(|t| t.running()) {
        *kept.entry(t.node.as_str()).or_default() += 1;
    }
    let mut out = Vec::new();
    for t in tasks {
        if !t.running() {
            let n = kept.entry(t.node.as_str()).or_default();
            if *n >= MAX_FINISHED {
                continue;
            }
            *n += 1;
        }
        out.push(row(t, false));
    }
    Reply::data(Value::Array(out))
}

fn status_class(t: &Task) -> &'static str {
    match t.exitstatus.as_deref() {
        None => "running",
        Some("OK") => "ok",
        Some(s) if s.starts_with("WARNINGS") => "warning",
        Some(_) => "error",
    }
}

/// One node's tasks: finished ones by default (`source=archive`), with PVE's filters.
pub(super) fn node_tasks(call: &mut Call<'_>) -> Reply {
    let p = &call.req.params;
    let source = params::text(p, "source").unwrap_or_else(|| "archive".into());
    let errors = params::flag(p, "errors");
    let vmid = params::int(p, "vmid").map(|v| v.to_string());
    let typefilter = params::text(p, "typefilter");
    let userfilter = params::text(p, "userfilter");
    let statusfilter = params::text(p, "statusfilter");
    let since = params::int(p, "since");
    let until = params::int(p, "until");
    let start = params::int(p, "start").unwrap_or(0).max(0) as usize;
    let limit = params::int(p, "limit").unwrap_or(50).max(0) as usize;
    let mut tasks: Vec<&Task> = call
        .st
        .tasks
        .iter()
        .filter(|t| t.node == call.node() && visible(call, t))
        .filter(|t| match source.as_str() {
            "active" => t.running(),
            "all" => true,
            _ => !t.running(),
        })
        .filter(|t| !errors || status_class(t) == "error")
        .filter(|t| vmid.as_ref().is_none_or(|v| &t.id == v))
        .filter(|t| typefilter.as_ref().is_none_or(|f| t.task_type.contains(f.as_str())))
        .filter(|t| userfilter.as_ref().is_none_or(|f| t.user.contains(f.as_str())))
        .filter(|t| {
            statusfilter
                .as_ref()
                .is_none_or(|f| crate::pve::lists::split_list(f).iter().any(|s| s == status_class(t)))
        })
        .filter(|t| since.is_none_or(|s| t.starttime as i64 >= s) && until.is_none_or(|u| t.starttime as i64 <= u))
        .collect();
    tasks.sort_by(|a, b| b.starttime.total_cmp(&a.starttime));
    let total = tasks.len();
    let rows: Vec<Value> = tasks
        .into_iter()
        .skip(start)
        .take(limit)
        .map(|t| row(t, true))
        .collect();
    let mut extra = Map::new();
    extra.insert("total".into(), json!(total));
    Reply::data_with(Value::Array(rows), extra)
}
