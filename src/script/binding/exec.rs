//! `pve::exec(vmid, command, timeout)`: run a command in a QEMU VM through the guest agent
//! and wait for it. Its requests go through the call's gate like any other, so a tool
//! without the `exec` capability (or a server without `PVE_MCP_ENABLE_EXEC`) is refused
//! before anything is sent.

use std::time::Duration;

use rhai::{Array, Dynamic, Map as RMap, Module, NativeCallContext};
use serde_json::{Map, Value, json};

use super::{R, call, number, pve_error, reg, resolve_vmid, segs, stop, thrown, to_dynamic, try_request, usage};
use crate::api::{ApiPath, Method};
use crate::script::ErrorKind;
use crate::script::context::CallContext;

/// Longest `timeout` of `pve::exec`, in seconds.
pub(super) const MAX_TIMEOUT_SECS: f64 = 3600.0;

pub(super) fn register(m: &mut Module) {
    reg(
        m,
        "exec",
        |n: NativeCallContext, vmid: Dynamic, command: Dynamic, timeout: Dynamic| -> R {
            exec(&*call(&n)?, &n, vmid, command, timeout)
        },
    );
    reg(
        m,
        "exec",
        |n: NativeCallContext, vmid: Dynamic, command: Dynamic| -> R {
            exec(&*call(&n)?, &n, vmid, command, Dynamic::from_int(30))
        },
    );
}

fn text(g: &RMap, key: &str) -> String {
    g.get(key).map(|v| v.to_string()).unwrap_or_default()
}

/// PVE sends the agent's booleans as 1/0; JSON booleans and "1" count too.
fn yes(v: Option<&Value>) -> bool {
    match v {
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_f64().is_some_and(|x| x != 0.0),
        Some(Value::String(s)) => s == "1" || s == "true",
        _ => false,
    }
}

fn argv(n: &NativeCallContext, command: &Dynamic) -> Result<Vec<Value>, Box<rhai::EvalAltResult>> {
    if let Some(s) = command.read_lock::<rhai::ImmutableString>() {
        if s.trim().is_empty() {
            return Err(usage(n, "pve::exec needs a command".into()));
        }
        return Ok(vec![json!("/bin/sh"), json!("-c"), json!(s.as_str())]);
    }
    if let Some(a) = command.read_lock::<Array>() {
        let words: Option<Vec<Value>> = a
            .iter()
            .map(|w| w.read_lock::<rhai::ImmutableString>().map(|s| json!(s.as_str())))
            .collect();
        return match words {
            Some(w) if !w.is_empty() => Ok(w),
            _ => Err(usage(
                n,
                "pve::exec takes a command as a string (run by /bin/sh -c) or a non-empty list of strings".into(),
            )),
        };
    }
    Err(usage(
        n,
        format!(
            "pve::exec takes a command as a string (run by /bin/sh -c) or a list of strings, got {}",
            command.type_name()
        ),
    ))
}

fn exec(cx: &CallContext, n: &NativeCallContext, vmid: Dynamic, command: Dynamic, timeout: Dynamic) -> R {
    let timeout = number(n, &timeout, "exec")?;
    if !(1.0..=MAX_TIMEOUT_SECS).contains(&timeout) {
        return Err(usage(
            n,
            format!("pve::exec waits 1 to {MAX_TIMEOUT_SECS} seconds for the command, got {timeout}"),
        ));
    }
    let words = argv(n, &command)?;
    let g = resolve_vmid(cx, n, vmid)?;
    let g = g
        .read_lock::<RMap>()
        .map(|m| m.clone())
        .ok_or_else(|| usage(n, "pve::exec could not read the guest".into()))?;
    let (node, kind, id, status) = (text(&g, "node"), text(&g, "type"), text(&g, "vmid"), text(&g, "status"));
    let label = format!("{kind} {id} ({})", text(&g, "name"));
    if kind != "qemu" {
        return Err(thrown(
            n,
            ErrorKind::Unsupported,
            format!(
                "{label} is a container; PVE offers no API to run commands in containers, only QEMU VMs through the guest agent"
            ),
        ));
    }
    if status != "running" {
        return Err(thrown(
            n,
            ErrorKind::NotRunning,
            format!("{label} is {status}; start it first to run commands in it"),
        ));
    }
    let base = ["nodes", node.as_str(), "qemu", id.as_str(), "agent"];
    let exec_path =
        ApiPath::from_segments(segs(&[&base[..], &["exec"]].concat())).map_err(|e| usage(n, e.to_string()))?;
    let params = json!({"command": words});
    let started = match try_request(
        cx,
        n,
        Method::Post,
        &exec_path,
        params.as_object().unwrap_or(&Map::new()),
    )? {
        None => {
            return to_dynamic(
                n,
                json!({"planned": true, "vmid": g.get("vmid").map(|v| v.to_string()), "command": words}),
            );
        }
        Some(Ok(v)) => v,
        Some(Err(e)) => return Err(agent_error(n, &label, &e)),
    };
    let pid = started
        .get("pid")
        .and_then(|p| p.as_i64().or_else(|| p.as_str().and_then(|s| s.parse().ok())))
        .ok_or_else(|| {
            usage(
                n,
                format!("PVE answered the agent's exec with {started}, which has no pid"),
            )
        })?;
    let status_path =
        ApiPath::from_segments(segs(&[&base[..], &["exec-status"]].concat())).map_err(|e| usage(n, e.to_string()))?;
    let t0 = tokio::time::Instant::now();
    let limit = Duration::from_secs_f64(timeout);
    let mut interval = Duration::from_millis(200);
    let query = json!({"pid": pid});
    loop {
        let st = match try_request(
            cx,
            n,
            Method::Get,
            &status_path,
            query.as_object().unwrap_or(&Map::new()),
        )? {
            None => Value::Null,
            Some(Ok(v)) => v,
            Some(Err(e)) => return Err(pve_error(n, &e)),
        };
        if yes(st.get("exited")) {
            let s = |k: &str| st.get(k).and_then(Value::as_str).unwrap_or("").to_string();
            let mut out = json!({
                "vmid": id.parse::<i64>().unwrap_or(0), "pid": pid, "exited": true, "timed_out": false,
                "exit_code": st.get("exitcode").cloned().unwrap_or(Value::Null),
                "stdout": s("out-data"), "stderr": s("err-data"),
                "stdout_truncated": yes(st.get("out-truncated")),
                "stderr_truncated": yes(st.get("err-truncated")),
            });
            if let Some(sig) = st.get("signal") {
                out["signal"] = sig.clone();
            }
            return to_dynamic(n, out);
        }
        let waited = t0.elapsed();
        if waited >= limit {
            return to_dynamic(
                n,
                json!({
                    "vmid": id.parse::<i64>().unwrap_or(0), "pid": pid, "exited": false, "timed_out": true,
                    "exit_code": Value::Null, "stdout": "", "stderr": "",
                    "note": format!("the command was still running after {timeout}s; it keeps running in the VM (agent pid {pid})"),
                }),
            );
        }
        cx.sleep(interval.min(limit - waited)).map_err(|i| stop(n, i))?;
        interval = (interval * 2).min(Duration::from_secs(1));
    }
}

/// The agent's usual failures, said with what to do.
fn agent_error(n: &NativeCallContext, label: &str, e: &crate::pve::PveError) -> Box<rhai::EvalAltResult> {
    let text = e.to_string();
    if text.contains("No QEMU guest agent configured") {
        return thrown(
            n,
            ErrorKind::Agent,
            format!(
                "{label} has the guest agent disabled in its config: set agent: 1, install and start qemu-guest-agent in the VM, then restart it"
            ),
        );
    }
    if text.contains("guest agent is not running") {
        return thrown(
            n,
            ErrorKind::Agent,
            format!("the QEMU guest agent is not running in {label}: install and start qemu-guest-agent inside the VM"),
        );
    }
    pve_error(n, e)
}
