//! The `pve` module scripts call: `pve::get(path, params)`, `pve::post`, `pve::put`,
//! `pve::delete`, `pve::wait_task(upid)`, `pve::resolve_vmid(vmid)`, `pve::next_vmid()`,
//! `pve::pick(map, fields)`, `pve::human_bytes(n)`, `pve::iso_time(epoch)`, `pve::log(msg)`, `pve::is_plan()`,
//! `pve::sleep(seconds)`, `pve::now()`, `pve::task_wait()`; the helpers of the submodules
//! (`exec`, `guests`, `call_tool`, `progress`, time formatting and rounding).
//!
//! Every request goes through the call's gate. A refusal, a timeout or a cancellation stops
//! the script with an error it cannot catch; a PVE error is thrown as a catchable map
//! `#{kind, status, message, reason, errors, method, path}` whose `message` is the
//! actionable sentence.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use rhai::{Array, Dynamic, EvalAltResult, FuncRegistration, Map as RMap, Module, NativeCallContext, Position, Shared};
use serde_json::{Map, Value, json};

use super::context::{CallContext, Interrupt, SendError};
use super::kinds::ErrorKind;
use super::resolve::resolve_vmid;
use super::{budget, sandbox};
use crate::api::{ApiPath, Method};
use crate::gate::Verdict;
use crate::human;
use crate::pve::{PveError, Upid};

pub(super) type R = Result<Dynamic, Box<EvalAltResult>>;

mod exec;
mod format;
mod guests;
mod nested;
mod rows;

/// Lines of a failed task's log returned by `wait_task`.
pub(crate) const LOG_TAIL_LINES: usize = 20;

/// The `pve` module, built once. Its functions find their call through the engine's tag
/// (see [`tag`]), which scripts cannot read or change.
pub fn module() -> Shared<Module> {
    static MODULE: LazyLock<Shared<Module>> = LazyLock::new(|| Shared::new(build()));
    MODULE.clone()
}

/// The engine tag that binds `pve::` functions to one call.
pub(crate) fn tag(cx: Arc<CallContext>) -> Dynamic {
    Dynamic::from(cx)
}

pub(super) fn call(n: &NativeCallContext) -> Result<Arc<CallContext>, Box<EvalAltResult>> {
    n.tag()
        .and_then(|t| t.read_lock::<Arc<CallContext>>().map(|c| c.clone()))
        .ok_or_else(|| {
            usage(
                n,
                "pve:: functions are only available while a tool runs, not at the top level of a module".into(),
            )
        })
}

fn build() -> Module {
    let mut m = Module::new();
    for (name, method) in [
        ("get", Method::Get),
        ("post", Method::Post),
        ("put", Method::Put),
        ("delete", Method::Delete),
    ] {
        reg(&mut m, name, move |n: NativeCallContext, path: Dynamic| -> R {
            api(&*call(&n)?, &n, method, path, Dynamic::UNIT)
        });
        reg(
            &mut m,
            name,
            move |n: NativeCallContext, path: Dynamic, params: Dynamic| -> R {
                api(&*call(&n)?, &n, method, path, params)
            },
        );
    }
    super::fanout::register(&mut m);
    reg(&mut m, "wait_task", |n: NativeCallContext, upid: Dynamic| -> R {
        let cx = call(&n)?;
        wait_task(&cx, &n, upid, cx.task_wait)
    });
    reg(
        &mut m,
        "wait_task",
        |n: NativeCallContext, upid: Dynamic, secs: Dynamic| -> R {
            let cx = call(&n)?;
            let wait = format::wait_seconds(&n, &cx, &secs)?;
            wait_task(&cx, &n, upid, wait)
        },
    );
    reg(&mut m, "resolve_vmid", |n: NativeCallContext, vmid: Dynamic| -> R {
        resolve_vmid(&*call(&n)?, &n, vmid)
    });
    reg(&mut m, "next_vmid", |n: NativeCallContext| -> R {
        next_vmid(&*call(&n)?, &n)
    });
    reg(
        &mut m,
        "pick",
        |n: NativeCallContext, obj: Dynamic, fields: Array| -> R { pick(&n, obj, fields) },
    );
    reg(&mut m, "human_bytes", |n: NativeCallContext, v: Dynamic| -> R {
        Ok(human::human_bytes(number(&n, &v, "human_bytes")?).into())
    });
    reg(&mut m, "log", |n: NativeCallContext, msg: Dynamic| -> R {
        call(&n)?.log(&msg.to_string());
        Ok(Dynamic::UNIT)
    });
    reg(&mut m, "is_plan", |n: NativeCallContext| -> R {
        Ok(call(&n)?.is_plan().into())
    });
    reg(&mut m, "sleep", |n: NativeCallContext, secs: Dynamic| -> R {
        let s = number(&n, &secs, "sleep")?;
        if !(0.0..=3600.0).contains(&s) {
            return Err(usage(&n, format!("pve::sleep takes 0 to 3600 seconds, got {s}")));
        }
        call(&n)?.sleep(Duration::from_secs_f64(s)).map_err(|i| stop(&n, i))?;
        Ok(Dynamic::UNIT)
    });
    reg(&mut m, "iso_time", |n: NativeCallContext, v: Dynamic| -> R {
        Ok(human::iso_time(number(&n, &v, "iso_time")? as i64).into())
    });
    reg(&mut m, "now", |_: NativeCallContext| -> R {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        Ok(Dynamic::from_int(secs as rhai::INT))
    });
    reg(&mut m, "task_wait", |n: NativeCallContext| -> R {
        Ok(Dynamic::from_float(call(&n)?.task_wait.as_secs_f64()))
    });
    exec::register(&mut m);
    format::register(&mut m);
    guests::register(&mut m);
    nested::register(&mut m);
    rows::register(&mut m);
    // Named and indexed once: an engine takes a module that is neither by copying and
    // indexing it, which every call's engine would otherwise do.
    m.set_id("pve");
    m.build_index();
    m
}

fn reg<A: 'static, const N: usize, const X: bool, F>(m: &mut Module, name: &str, f: F)
where
    F: rhai::RhaiNativeFunc<A, N, X, Dynamic, true> + Send + Sync + 'static,
{
    // Volatile: never evaluated ahead of time by the optimizer.
    FuncRegistration::new(name).with_volatility(true).set_into_module(m, f);
}

fn pos(n: &NativeCallContext) -> Position {
    n.call_position()
}

/// The engine a call's script runs in (a tool's, or a `call_tool` callee's): the sandbox,
/// this binding with the call's context, and the progress callback that stops it when the
/// memory budget is exceeded (setting `over_budget`), the gate has refused a request, or
/// the call was cancelled or timed out.
pub(crate) fn call_engine(cx: &Arc<CallContext>, over_budget: Arc<AtomicBool>) -> rhai::Engine {
    let log_cx = cx.clone();
    let mut engine = sandbox::engine(Arc::new(move |s| log_cx.log(s)));
    engine.register_static_module("pve", module());
    engine.set_default_tag(tag(cx.clone()));
    let stop_cx = cx.clone();
    engine.on_progress(move |ops| {
        if budget::exceeded() {
            over_budget.store(true, Ordering::Relaxed);
            return Some("memory".into());
        }
        if ops % 512 != 0 {
            return None;
        }
        if stop_cx.violation().is_some() {
            return Some("refused".into());
        }
        stop_cx.should_stop().map(|_| Dynamic::from("stopped"))
    });
    engine
}

/// A misuse of a `pve::` function: catchable, with the script position.
pub(super) fn usage(n: &NativeCallContext, msg: String) -> Box<EvalAltResult> {
    EvalAltResult::ErrorRuntime(msg.into(), pos(n)).into()
}

/// Stop the script; it cannot catch this.
pub(super) fn stop(n: &NativeCallContext, i: Interrupt) -> Box<EvalAltResult> {
    let why = match i {
        Interrupt::Cancelled => "cancelled",
        Interrupt::TimedOut => "timed out",
        Interrupt::TooManyRequests => "too many requests",
        Interrupt::AnswerTooLarge => "an answer larger than the memory budget",
    };
    EvalAltResult::ErrorTerminated(why.into(), pos(n)).into()
}

pub(super) fn refused(n: &NativeCallContext, msg: String) -> Box<EvalAltResult> {
    EvalAltResult::ErrorTerminated(msg.into(), pos(n)).into()
}

fn number(n: &NativeCallContext, v: &Dynamic, f: &str) -> Result<f64, Box<EvalAltResult>> {
    v.as_int()
        .map(|i| i as f64)
        .or_else(|_| v.as_float())
        .map_err(|t| type_mismatch(n, format!("pve::{f} takes a number, got {t}")))
}

/// A `pve::` helper given a value of the wrong type, which is often a PVE answer of an
/// unexpected shape: reported like Rhai's own type errors (see [`super::answers`]).
fn type_mismatch(n: &NativeCallContext, message: String) -> Box<EvalAltResult> {
    thrown(n, ErrorKind::TypeMismatch, message)
}

/// PVE answered `path` with something a `pve::` helper cannot use.
pub(super) fn unexpected(
    cx: &CallContext,
    n: &NativeCallContext,
    path: &ApiPath,
    v: &Value,
    expected: &str,
) -> Box<EvalAltResult> {
    let answer = super::answers::Answer::of(Method::Get, path, v);
    thrown(
        n,
        ErrorKind::UnexpectedAnswer,
        super::answers::sentence(&cx.tool, &answer, Some(expected)),
    )
}

pub(super) fn to_path(
    n: &NativeCallContext,
    cx: &CallContext,
    method: Method,
    path: &Dynamic,
) -> Result<ApiPath, Box<EvalAltResult>> {
    let parsed = if let Some(s) = path.read_lock::<rhai::ImmutableString>() {
        ApiPath::parse(s.as_str()).map_err(|e| (s.to_string(), e))
    } else if let Some(a) = path.read_lock::<Array>() {
        let mut segs = Vec::with_capacity(a.len());
        for item in a.iter() {
            if item.is_string() || item.is_int() {
                segs.push(item.to_string());
            } else {
                return Err(usage(
                    n,
                    format!("path segments must be strings or integers, got {}", item.type_name()),
                ));
            }
        }
        let shown = format!("/{}", segs.join("/"));
        ApiPath::from_segments(segs).map_err(|e| (shown, e))
    } else {
        return Err(usage(
            n,
            format!(
                "a path is a string like \"/cluster/resources\" or an array of segments, got {}",
                path.type_name()
            ),
        ));
    };
    parsed.map_err(|(raw, e)| refused(n, cx.refuse_path(method, raw, e).to_string()))
}

pub(super) fn to_params(n: &NativeCallContext, params: &Dynamic) -> Result<Map<String, Value>, Box<EvalAltResult>> {
    if params.is_unit() {
        return Ok(Map::new());
    }
    if !params.is_map() {
        return Err(usage(
            n,
            format!(
                "request parameters are an object map like #{{vmid: 100}}, got {}",
                params.type_name()
            ),
        ));
    }
    match super::convert::to_json(params, super::convert::MAX_PARAMS_BYTES) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(usage(n, "request parameters must be an object map".into())),
        Err(e) => Err(usage(n, format!("request parameters cannot be sent: {e}"))),
    }
}

/// One request through the gate. `Ok(None)` means it was recorded for the plan, not sent.
pub(super) fn request(
    cx: &CallContext,
    n: &NativeCallContext,
    method: Method,
    path: &ApiPath,
    params: &Map<String, Value>,
) -> Result<Option<Value>, Box<EvalAltResult>> {
    match try_request(cx, n, method, path, params)? {
        None => Ok(None),
        Some(result) => result.map(Some).map_err(|e| pve_error(n, &e)),
    }
}

/// One request through the gate, PVE's error returned rather than thrown. The outer error
/// is a refusal, a timeout or a cancellation, which stop the script.
pub(super) fn try_request(
    cx: &CallContext,
    n: &NativeCallContext,
    method: Method,
    path: &ApiPath,
    params: &Map<String, Value>,
) -> Result<Option<Result<Value, PveError>>, Box<EvalAltResult>> {
    cx.count_request().map_err(|i| stop(n, i))?;
    let first = cx.violation().is_none();
    match cx.check(method, path.clone(), params.clone()) {
        Err(v) => {
            if first {
                cx.audit_refusal(&v, path, params);
            }
            Err(refused(n, v.to_string()))
        }
        Ok(Verdict::Record(_)) => Ok(None),
        Ok(Verdict::Send(permit)) => {
            let result = cx.send(permit).map_err(|e| match e {
                SendError::Interrupted(i) => stop(n, i),
                SendError::Refused(v) => refused(n, v.to_string()),
            })?;
            if let Ok(value) = &result {
                cx.note_read(method, path, value);
            }
            Ok(Some(result))
        }
    }
}

/// A failure worth polling again: the proxy, the node or the network, not the request.
fn transient(e: &PveError) -> bool {
    match e {
        PveError::Api(a) => matches!(a.status, 500 | 502 | 503 | 504 | 595 | 596),
        PveError::Transport(_) => true,
        PveError::BadResponse { .. } | PveError::InvalidParam { .. } | PveError::TooLarge { .. } => false,
    }
}

fn api(cx: &CallContext, n: &NativeCallContext, method: Method, path: Dynamic, params: Dynamic) -> R {
    let path = to_path(n, cx, method, &path)?;
    let params = to_params(n, &params)?;
    match request(cx, n, method, &path, &params)? {
        None => Ok(Dynamic::UNIT),
        Some(v) => to_dynamic(n, v),
    }
}

pub(super) fn to_dynamic(n: &NativeCallContext, v: Value) -> R {
    super::convert::to_dynamic(v).map_err(|e| usage(n, format!("PVE's answer could not be converted: {e}")))
}

/// A PVE error as a catchable map whose `message` is the actionable sentence.
pub(super) fn pve_error(n: &NativeCallContext, e: &PveError) -> Box<EvalAltResult> {
    let mut m = RMap::new();
    m.insert("message".into(), e.to_string().into());
    match e {
        PveError::Api(a) => {
            m.insert("kind".into(), ErrorKind::Pve.as_str().into());
            m.insert("status".into(), Dynamic::from_int(a.status.into()));
            m.insert("reason".into(), a.pve_message().into());
            m.insert("method".into(), a.method.into());
            m.insert("path".into(), a.path.clone().into());
            let errors: RMap = a
                .errors
                .iter()
                .map(|(k, v)| (k.as_str().into(), v.clone().into()))
                .collect();
            m.insert("errors".into(), errors.into());
        }
        PveError::Transport(t) => {
            m.insert("kind".into(), ErrorKind::Transport.as_str().into());
            m.insert("status".into(), Dynamic::from_int(0));
            m.insert("method".into(), t.method.into());
            m.insert("path".into(), t.path.clone().into());
        }
        PveError::BadResponse { status, .. } => {
            m.insert("kind".into(), ErrorKind::BadResponse.as_str().into());
            m.insert("status".into(), Dynamic::from_int((*status).into()));
        }
        PveError::InvalidParam { .. } => {
            m.insert("kind".into(), ErrorKind::InvalidParam.as_str().into());
            m.insert("status".into(), Dynamic::from_int(0));
        }
        // Not thrown: the call stops (`Interrupt::AnswerTooLarge`).
        PveError::TooLarge { .. } => {
            m.insert("kind".into(), ErrorKind::OutOfMemory.as_str().into());
            m.insert("status".into(), Dynamic::from_int(0));
        }
    }
    EvalAltResult::ErrorRuntime(m.into(), pos(n)).into()
}

pub(super) fn thrown(n: &NativeCallContext, kind: ErrorKind, message: String) -> Box<EvalAltResult> {
    let mut m = RMap::new();
    m.insert("kind".into(), kind.as_str().into());
    m.insert("message".into(), message.into());
    EvalAltResult::ErrorRuntime(m.into(), pos(n)).into()
}

fn segs(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|s| s.to_string()).collect()
}

fn wait_task(cx: &CallContext, n: &NativeCallContext, upid: Dynamic, wait: Duration) -> R {
    if upid.is_unit() && cx.is_plan() {
        return to_dynamic(n, json!({"status": "planned"}));
    }
    let raw = upid
        .read_lock::<rhai::ImmutableString>()
        .map(|s| s.to_string())
        .ok_or_else(|| {
            type_mismatch(
                n,
                format!(
                    "pve::wait_task takes the UPID string a PVE call returned, got {}",
                    upid.type_name()
                ),
            )
        })?;
    let u = Upid::parse(&raw).map_err(|e| usage(n, e.to_string()))?;
    let status_path = ApiPath::from_segments(segs(&["nodes", &u.node, "tasks", &raw, "status"]))
        .map_err(|e| usage(n, e.to_string()))?;
    let started = tokio::time::Instant::now();
    let mut interval = Duration::from_millis(200);
    let mut last_failure: Option<String> = None;
    let started_task = |what: String| {
        thrown(
            n,
            ErrorKind::TaskWait,
            format!(
                "task {raw} was started, but {what}. The task may still be running or done: follow it with pve_task_status (upid {raw}) rather than starting it again."
            ),
        )
    };
    loop {
        let st = match try_request(cx, n, Method::Get, &status_path, &Map::new())? {
            None => Value::Null,
            Some(Ok(v)) => v,
            Some(Err(e)) if transient(&e) && started.elapsed() < wait => {
                last_failure = Some(e.to_string());
                cx.sleep(interval.min(wait.saturating_sub(started.elapsed())))
                    .map_err(|i| stop(n, i))?;
                interval = (interval * 3 / 2).min(Duration::from_secs(2));
                continue;
            }
            Some(Err(e)) => return Err(started_task(format!("reading its status failed: {e}"))),
        };
        let state = st.get("status").and_then(Value::as_str);
        if state.is_none() {
            let shown: String = st.to_string().chars().take(120).collect();
            return Err(started_task(format!(
                "PVE (or a proxy in front of it) answered GET {status_path} with {shown}, which is not a task status"
            )));
        }
        if state == Some("stopped") {
            let exit = st
                .get("exitstatus")
                .and_then(Value::as_str)
                .unwrap_or("unknown")
                .to_string();
            let status = if exit == "OK" {
                "ok"
            } else if exit.starts_with("WARNINGS") {
                "warnings"
            } else {
                "failed"
            };
            let mut out = json!({
                "status": status, "exitstatus": exit, "upid": raw, "node": u.node,
                "type": u.task_type, "id": u.id,
                "waited_seconds": round1(started.elapsed().as_secs_f64()),
            });
            if status != "ok" {
                out["log_tail"] = Value::Array(log_tail(cx, n, &u)?);
            }
            return to_dynamic(n, out);
        }
        let waited = started.elapsed();
        if waited >= wait {
            return to_dynamic(
                n,
                json!({
                    "status": "running", "upid": raw, "node": u.node, "type": u.task_type, "id": u.id,
                    "waited_seconds": round1(waited.as_secs_f64()),
                    "hint": match &last_failure {
                        None => "the task is still running in PVE; follow it with pve_task_status".to_string(),
                        Some(f) => format!("the task was started; its status could not be read lately ({f}); follow it with pve_task_status"),
                    },
                }),
            );
        }
        cx.report_progress(format!(
            "waiting for task {} {} on {} ({:.0}s)",
            u.task_type,
            u.id,
            u.node,
            waited.as_secs_f64()
        ));
        cx.sleep(interval.min(wait - waited)).map_err(|i| stop(n, i))?;
        interval = (interval * 3 / 2).min(Duration::from_secs(2));
    }
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn log_tail(cx: &CallContext, n: &NativeCallContext, u: &Upid) -> Result<Vec<Value>, Box<EvalAltResult>> {
    let path = ApiPath::from_segments(segs(&["nodes", &u.node, "tasks", u.as_str(), "log"]))
        .map_err(|e| usage(n, e.to_string()))?;
    let params = json!({"start": 0, "limit": 10000});
    let lines = request(cx, n, Method::Get, &path, params.as_object().unwrap_or(&Map::new()))?.unwrap_or(Value::Null);
    let texts: Vec<Value> = lines
        .as_array()
        .map(|a| a.iter().filter_map(|l| l.get("t").cloned()).collect())
        .unwrap_or_default();
    let skip = texts.len().saturating_sub(LOG_TAIL_LINES);
    Ok(texts.into_iter().skip(skip).collect())
}

fn next_vmid(cx: &CallContext, n: &NativeCallContext) -> R {
    let path = ApiPath::parse("/cluster/nextid").map_err(|e| usage(n, e.to_string()))?;
    let v = request(cx, n, Method::Get, &path, &Map::new())?.unwrap_or(Value::Null);
    let id = v.as_i64().or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()));
    id.map(Dynamic::from_int)
        .ok_or_else(|| unexpected(cx, n, &path, &v, "a free vmid"))
}

/// Keep only `fields` of a map; byte fields gain a `*_human` companion and epoch fields an
/// `*_iso` one.
fn pick(n: &NativeCallContext, obj: Dynamic, fields: Array) -> R {
    let Some(src) = obj.read_lock::<RMap>() else {
        return Err(type_mismatch(
            n,
            format!("pve::pick takes an object map, got {}", obj.type_name()),
        ));
    };
    let mut out = RMap::new();
    for f in fields {
        let Some(key) = f.read_lock::<rhai::ImmutableString>().map(|s| s.to_string()) else {
            return Err(usage(
                n,
                format!("pve::pick field names are strings, got {}", f.type_name()),
            ));
        };
        if let Some(v) = src.get(key.as_str()) {
            let number = v.as_int().map(|i| i as f64).or_else(|_| v.as_float()).ok();
            for (k, text) in human::companions(&key, number, v.as_int().ok()) {
                out.insert(k.into(), text.into());
            }
            out.insert(key.into(), v.clone());
        }
    }
    Ok(out.into())
}
