//! `pve::get_all(requests)`: several GETs at once, for fan-out over nodes and storages.
//!
//! Each item is a path (a string or an array of segments, as for `pve::get`) or a map
//! `#{path: …, params: #{…}}`. Every request is counted and checked by the call's gate
//! exactly as `pve::get` checks it, in order, before any is sent; a refusal stops the script
//! and nothing of the batch is sent. The allowed requests then go out together (at most
//! `context::MAX_PARALLEL` at once), so the wall time is about that of the slowest. The answer is an
//! array in the items' order: `#{data: answer}` for a success, `#{error: map}` for a PVE
//! error (the map `pve::get` would have thrown, so `try`/`catch` code reads it the same way).

use rhai::{Array, Dynamic, Map as RMap, Module, NativeCallContext};
use serde_json::{Map, Value};

use super::binding::{R, call, pve_error, refused, stop, to_dynamic, to_params, to_path, usage};
use super::context::{CallContext, SendError};
use crate::api::Method;
use crate::gate::Verdict;

/// Items one `pve::get_all` may hold (the call's request limit applies too).
pub(crate) const MAX_ITEMS: usize = 1_000;

pub(super) fn register(m: &mut Module) {
    rhai::FuncRegistration::new("get_all")
        .with_volatility(true)
        .set_into_module(m, |n: NativeCallContext, items: Array| -> R {
            get_all(&*call(&n)?, &n, items)
        });
}

fn get_all(cx: &CallContext, n: &NativeCallContext, items: Array) -> R {
    if items.len() > MAX_ITEMS {
        return Err(usage(
            n,
            format!("pve::get_all takes at most {MAX_ITEMS} requests, got {}", items.len()),
        ));
    }
    let mut permits = Vec::with_capacity(items.len());
    for item in &items {
        let (path, params) = match item.read_lock::<RMap>() {
            Some(m) => {
                let path = m
                    .get("path")
                    .cloned()
                    .ok_or_else(|| usage(n, "a pve::get_all item that is a map needs a `path`".into()))?;
                (path, m.get("params").cloned().unwrap_or(Dynamic::UNIT))
            }
            None => (item.clone(), Dynamic::UNIT),
        };
        let path = to_path(n, cx, Method::Get, &path)?;
        let params: Map<String, Value> = to_params(n, &params)?;
        cx.count_request().map_err(|i| stop(n, i))?;
        let first = cx.violation().is_none();
        match cx.check(Method::Get, path.clone(), params.clone()) {
            Err(v) => {
                if first {
                    cx.audit_refusal(&v, &path, &params);
                }
                return Err(refused(n, v.to_string()));
            }
            Ok(Verdict::Send(permit)) => permits.push((path, permit)),
            // Reads are sent in every mode; a gate that records a GET gets no answer for it.
            Ok(Verdict::Record(_)) => return Err(usage(n, format!("GET {path} was recorded, not sent"))),
        }
    }
    let (paths, permits): (Vec<_>, Vec<_>) = permits.into_iter().unzip();
    let answers = cx.send_all(permits).map_err(|e| match e {
        SendError::Interrupted(i) => stop(n, i),
        SendError::Refused(v) => refused(n, v.to_string()),
    })?;
    let mut out = Array::with_capacity(answers.len());
    for (path, answer) in paths.iter().zip(answers) {
        let mut entry = RMap::new();
        match answer {
            Ok(value) => {
                cx.note_read(Method::Get, path, &value);
                entry.insert("data".into(), to_dynamic(n, value)?);
            }
            Err(e) => {
                let thrown = pve_error(n, &e);
                let value = match *thrown {
                    rhai::EvalAltResult::ErrorRuntime(v, _) => v,
                    other => Dynamic::from(other.to_string()),
                };
                entry.insert("error".into(), value);
            }
        }
        out.push(entry.into());
    }
    Ok(out.into())
}
