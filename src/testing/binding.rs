//! What a test function calls besides `pve::`: the `test::` module (`run`, `run_tool`,
//! `fails`, `fails_tool`, `requests`) and the global `assert`, `assert_eq`, `assert_ne` and
//! `fail`. (`call` is a Rhai keyword, hence `run`.)
//!
//! `test::run` runs the tool under test the way the server runs a host's call: the
//! registry's compiled tool, `invoke` with its argument validation, gate, confirmation (as
//! for a client without elicitation, like `pve-mcp call`), limits and audit log. A failed
//! call is thrown as the map a host gets (`#{error, tool, message}`), which a test may catch.
//! Assertions are not catchable: a `try` in a test cannot hide a failed one.

use std::path::PathBuf;
use std::sync::Arc;

use rhai::{Dynamic, Engine, EvalAltResult, FuncRegistration, Module, NativeCallContext};
use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

use crate::registry::Registry;
use crate::script::invoke::{Approving, CallRequest};
use crate::script::{CallOutcome, ErrorKind, Services, convert, invoke};
use crate::server::result;

type R = Result<Dynamic, Box<EvalAltResult>>;

/// Characters of a value shown in a failed assertion.
const SHOWN: usize = 300;

/// What the `test::` functions of one test work with.
pub(crate) struct TestEnv {
    /// The server's parts, connected to this test's own simulated cluster.
    pub services: Services,
    pub registry: Arc<Registry>,
    /// The tool under test (the test file's name).
    pub tool: String,
    /// The simulated cluster's request log (JSON lines), read by `test::requests()`.
    pub requests: PathBuf,
    pub handle: tokio::runtime::Handle,
}

/// A test failure: not catchable. Rhai moves an uncatchable error's position to the
/// outermost call, so the place of the failing call travels in the value (see [`place`]).
fn failure(n: &NativeCallContext, message: String) -> Box<EvalAltResult> {
    let pos = n.call_position();
    let mut m = rhai::Map::new();
    m.insert(FAILURE.into(), message.into());
    m.insert("source".into(), n.call_source().unwrap_or_default().into());
    m.insert("line".into(), Dynamic::from_int(pos.line().unwrap_or(0) as rhai::INT));
    m.insert(
        "col".into(),
        Dynamic::from_int(pos.position().unwrap_or(0) as rhai::INT),
    );
    EvalAltResult::ErrorTerminated(m.into(), pos).into()
}

/// The key of a test failure's value.
const FAILURE: &str = "test_failure";

/// A test failure as `FILE:LINE:COL: message`, if `e` is one.
pub(crate) fn place(e: &EvalAltResult, default_origin: &str) -> Option<String> {
    let mut e = e;
    while let EvalAltResult::ErrorInFunctionCall(_, _, inner, _) | EvalAltResult::ErrorInModule(_, inner, _) = e {
        e = inner;
    }
    let EvalAltResult::ErrorTerminated(v, _) = e else {
        return None;
    };
    let m = v.read_lock::<rhai::Map>()?;
    let message = m.get(FAILURE)?.to_string();
    let source = m.get("source").map(|s| s.to_string()).filter(|s| !s.is_empty());
    let origin = source.as_deref().unwrap_or(default_origin);
    let int = |k: &str| m.get(k).and_then(|v| v.as_int().ok()).unwrap_or(0);
    Some(match (int("line"), int("col")) {
        (0, _) => format!("{origin}: {message}"),
        (l, 0) => format!("{origin}:{l}: {message}"),
        (l, c) => format!("{origin}:{l}:{c}: {message}"),
    })
}

/// A catchable error map, as `test::run` throws a failed call.
fn thrown(n: &NativeCallContext, map: Value) -> Box<EvalAltResult> {
    let value = convert::to_dynamic(map).unwrap_or_else(|e| Dynamic::from(e.to_string()));
    EvalAltResult::ErrorRuntime(value, n.call_position()).into()
}

fn reg<A: 'static, const N: usize, const X: bool, F>(m: &mut Module, name: &str, f: F)
where
    F: rhai::RhaiNativeFunc<A, N, X, Dynamic, true> + Send + Sync + 'static,
{
    FuncRegistration::new(name).with_volatility(true).set_into_module(m, f);
}

/// Whether a call is expected to succeed or to fail.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Expect {
    Answer,
    Failure,
}

/// The `test::` module of one test.
pub(crate) fn module(env: Arc<TestEnv>) -> Module {
    let mut m = Module::new();
    for (name, expect) in [("run", Expect::Answer), ("fails", Expect::Failure)] {
        let e = env.clone();
        reg(&mut m, name, move |n: NativeCallContext| -> R {
            call(&e, &n, e.tool.clone(), Dynamic::from_map(rhai::Map::new()), expect)
        });
        let e = env.clone();
        reg(&mut m, name, move |n: NativeCallContext, args: Dynamic| -> R {
            call(&e, &n, e.tool.clone(), args, expect)
        });
    }
    for (name, expect) in [("run_tool", Expect::Answer), ("fails_tool", Expect::Failure)] {
        let e = env.clone();
        reg(
            &mut m,
            name,
            move |n: NativeCallContext, tool: Dynamic, args: Dynamic| -> R {
                let Some(tool) = tool.read_lock::<rhai::ImmutableString>().map(|s| s.to_string()) else {
                    return Err(failure(
                        &n,
                        format!(
                            "test::{name} takes a tool name like \"pve_list_vms\" and a map of arguments, got {}",
                            tool.type_name()
                        ),
                    ));
                };
                call(&e, &n, tool, args, expect)
            },
        );
    }
    let e = env.clone();
    reg(&mut m, "requests", move |n: NativeCallContext| -> R {
        requests(&e, &n)
    });
    m
}

/// Run one tool through the core, as a host's call.
fn call(env: &TestEnv, n: &NativeCallContext, tool: String, args: Dynamic, expect: Expect) -> R {
    let args = match convert::to_json(&args, convert::MAX_PARAMS_BYTES) {
        Ok(Value::Object(m)) => m,
        Ok(_) | Err(_) => {
            return Err(failure(
                n,
                format!(
                    "test::run takes the tool's arguments as a map like #{{vmid: 100}}, got {}",
                    args.type_name()
                ),
            ));
        }
    };
    let snap = env.registry.snapshot();
    let mode = env.services.settings.mode;
    let Some(compiled) = snap.get_visible(&tool, mode).cloned() else {
        // As a host would hear it: a tool that never compiled answers with its error; one
        // the mode does not list, or that does not exist, is unknown.
        let (kind, message) = if let Some(m) = crate::server::scripts::not_in_service(&snap, &tool) {
            (ErrorKind::ScriptError, m)
        } else if let Some(t) = snap.tools.get(&tool) {
            let message = format!(
                "tool '{tool}' is declared '{}', which the server's mode does not list, so a host cannot call it; a test enables it in its file, e.g. const TEST = #{{ env: #{{ PVE_MCP_ENABLE_EXEC: \"true\" }} }} (or PVE_MCP_ENABLE_ADMIN, PVE_MCP_READ_ONLY)",
                t.manifest.class.label()
            );
            (ErrorKind::UnknownTool, message)
        } else if let Some(lib) = tool.strip_prefix("lib/") {
            let message = format!(
                "a library's tests (tests/lib/{lib}.rhai) have no tool of their own to run: call the library's functions, or a tool by name with test::run_tool(NAME, args)"
            );
            (ErrorKind::UnknownTool, message)
        } else {
            let message = format!(
                "there is no tool '{tool}' (a test file tests/NAME.rhai tests the tool NAME.rhai of the directory above tests/; `pve-mcp tools` lists the built-in ones)"
            );
            (ErrorKind::UnknownTool, message)
        };
        let map = serde_json::json!({"error": kind.as_str(), "tool": tool, "message": message});
        return match expect {
            Expect::Failure => convert::to_dynamic(map).map_err(|e| failure(n, e.to_string())),
            Expect::Answer => Err(thrown(n, map)),
        };
    };
    let call = CallRequest {
        tool: compiled,
        args: args.clone(),
        client: env.services.settings.confirm.for_client(false),
        approving: Approving::Arguments,
        cancel: CancellationToken::new(),
        progress: None,
    };
    let outcome = env.handle.block_on(invoke(&env.services, call));
    let answer = match outcome {
        CallOutcome::Done(v) => v,
        CallOutcome::Plan {
            explanation,
            requests,
            confirm_token,
            ttl,
        } => result::plan_json(&tool, explanation, &requests, &confirm_token, ttl),
        CallOutcome::Failed(e) => {
            let map = result::error_json(&tool, &e);
            return match expect {
                Expect::Failure => convert::to_dynamic(map).map_err(|e| failure(n, e.to_string())),
                Expect::Answer => Err(thrown(n, map)),
            };
        }
    };
    if expect == Expect::Failure {
        return Err(failure(
            n,
            format!(
                "expected {tool} {} to fail, but it answered {}",
                Value::Object(args),
                shown(&answer)
            ),
        ));
    }
    convert::to_dynamic(answer).map_err(|e| failure(n, format!("{tool}'s answer cannot be read: {e}")))
}

/// The requests the simulated cluster received during this test, oldest first.
fn requests(env: &TestEnv, n: &NativeCallContext) -> R {
    let text = std::fs::read_to_string(&env.requests).unwrap_or_default();
    let mut out = Vec::new();
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let mut m = Map::new();
        for key in ["method", "path", "params"] {
            m.insert(key.into(), v.get(key).cloned().unwrap_or(Value::Null));
        }
        out.push(Value::Object(m));
    }
    convert::to_dynamic(Value::Array(out)).map_err(|e| failure(n, e.to_string()))
}

/// A value as JSON, shortened.
fn shown(v: &Value) -> String {
    let text = v.to_string();
    match text.char_indices().nth(SHOWN) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

fn as_json(v: &Dynamic) -> Value {
    convert::to_json(v, convert::MAX_PARAMS_BYTES).unwrap_or_else(|_| Value::String(v.to_string()))
}

/// Equal as JSON carries them: numbers by value (`1 == 1.0`), maps whatever their order.
pub(crate) fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

fn with_message(what: &str, msg: Option<&Dynamic>) -> String {
    match msg {
        Some(m) => format!("{what}: {m}"),
        None => what.to_string(),
    }
}

/// `assert`, `assert_eq`, `assert_ne` and `fail`, global in test files.
pub(crate) fn register_asserts(engine: &mut Engine) {
    fn check(n: &NativeCallContext, cond: &Dynamic, msg: Option<&Dynamic>) -> Result<(), Box<EvalAltResult>> {
        match cond.as_bool() {
            Ok(true) => Ok(()),
            Ok(false) => Err(failure(n, with_message("assertion failed", msg))),
            Err(t) => Err(failure(
                n,
                format!(
                    "assert takes a condition that is true or false, got {}",
                    crate::script::error::type_words(t)
                ),
            )),
        }
    }
    fn eq(n: &NativeCallContext, a: &Dynamic, b: &Dynamic, msg: Option<&Dynamic>) -> Result<(), Box<EvalAltResult>> {
        let (x, y) = (as_json(a), as_json(b));
        if same(&x, &y) {
            return Ok(());
        }
        Err(failure(
            n,
            format!(
                "{}: left is {}, right is {}",
                with_message("assert_eq failed", msg),
                shown(&x),
                shown(&y)
            ),
        ))
    }
    fn ne(n: &NativeCallContext, a: &Dynamic, b: &Dynamic, msg: Option<&Dynamic>) -> Result<(), Box<EvalAltResult>> {
        let (x, y) = (as_json(a), as_json(b));
        if !same(&x, &y) {
            return Ok(());
        }
        Err(failure(
            n,
            format!("{}: both are {}", with_message("assert_ne failed", msg), shown(&x)),
        ))
    }
    engine.register_fn("assert", |n: NativeCallContext, c: Dynamic| check(&n, &c, None));
    engine.register_fn("assert", |n: NativeCallContext, c: Dynamic, m: Dynamic| {
        check(&n, &c, Some(&m))
    });
    engine.register_fn("assert_eq", |n: NativeCallContext, a: Dynamic, b: Dynamic| {
        eq(&n, &a, &b, None)
    });
    engine.register_fn(
        "assert_eq",
        |n: NativeCallContext, a: Dynamic, b: Dynamic, m: Dynamic| eq(&n, &a, &b, Some(&m)),
    );
    engine.register_fn("assert_ne", |n: NativeCallContext, a: Dynamic, b: Dynamic| {
        ne(&n, &a, &b, None)
    });
    engine.register_fn(
        "assert_ne",
        |n: NativeCallContext, a: Dynamic, b: Dynamic, m: Dynamic| ne(&n, &a, &b, Some(&m)),
    );
    engine.register_fn(
        "fail",
        |n: NativeCallContext, m: Dynamic| -> Result<(), Box<EvalAltResult>> { Err(failure(&n, m.to_string())) },
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sameness_is_json_equality() {
        assert!(same(&json!(1), &json!(1.0)));
        assert!(same(
            &json!({"a": [1, "x"], "b": null}),
            &json!({"b": null, "a": [1.0, "x"]})
        ));
        assert!(!same(&json!([1, 2]), &json!([2, 1])));
        assert!(!same(&json!({"a": 1}), &json!({"a": 1, "b": 2})));
        assert!(!same(&json!("1"), &json!(1)));
    }

    #[test]
    fn failures_keep_their_place() {
        let mut e = crate::script::sandbox::engine(std::sync::Arc::new(|_| {}));
        register_asserts(&mut e);
        let mut ast = e
            .compile("fn helper() {\n    fail(\"in helper\");\n}\nfn t() {\n  try { assert_eq(1, 2); } catch (e) { }\n}\nfn u() { helper(); }")
            .unwrap();
        ast.set_source("t.rhai");
        let err = e
            .call_fn::<Dynamic>(&mut rhai::Scope::new(), &ast, "t", ())
            .unwrap_err();
        assert_eq!(
            place(&err, "t.rhai").unwrap(),
            "t.rhai:5:9: assert_eq failed: left is 1, right is 2"
        );
        let err = e
            .call_fn::<Dynamic>(&mut rhai::Scope::new(), &ast, "u", ())
            .unwrap_err();
        assert_eq!(place(&err, "t.rhai").unwrap(), "t.rhai:2:5: in helper");
    }
}
