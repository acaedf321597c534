//! `pve::call_tool(name, args)`: run another tool's `run(args)` inside this call.
//!
//! The callee is a guest of the caller's call: it runs on the same thread, under the same
//! gate (the caller's declared capabilities, the server's mode and the caller's confirmation
//! or plan), the same audit record, deadline, request count and memory budget. On top of
//! that, the callee's declared class must lie within the caller's: a read tool cannot call a
//! write or destructive tool at all. `confirm` and `confirm_token` cannot be passed: only the
//! caller's own confirmation counts. Nesting is bounded by [`MAX_DEPTH`].

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use rhai::{Dynamic, EvalAltResult, Map as RMap, Module, NativeCallContext, Scope};
use serde_json::Value;

use super::{R, call, refused, reg, thrown, usage};
use crate::script::ErrorKind;
use crate::script::compile::ENTRY;
use crate::script::context::CallContext;
use crate::script::convert;

/// How deep tools may call tools (the caller is depth 0).
pub(super) const MAX_DEPTH: usize = 4;

thread_local! {
    /// The tools calling each other on this script thread, outermost first.
    static CHAIN: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

/// Pops the chain when the callee is done, however it ends.
struct Enter;

impl Drop for Enter {
    fn drop(&mut self) {
        CHAIN.with(|c| c.borrow_mut().pop());
    }
}

pub(super) fn register(m: &mut Module) {
    reg(m, "call_tool", |n: NativeCallContext, name: Dynamic| -> R {
        call_tool(call(&n)?, &n, name, Dynamic::from_map(RMap::new()))
    });
    reg(
        m,
        "call_tool",
        |n: NativeCallContext, name: Dynamic, args: Dynamic| -> R { call_tool(call(&n)?, &n, name, args) },
    );
}

fn call_tool(cx: Arc<CallContext>, n: &NativeCallContext, name: Dynamic, args: Dynamic) -> R {
    let Some(name) = name.read_lock::<rhai::ImmutableString>().map(|s| s.to_string()) else {
        return Err(usage(
            n,
            format!(
                "pve::call_tool takes a tool name like \"pve_list_vms\", got {}",
                name.type_name()
            ),
        ));
    };
    let Some(tools) = cx.tools.clone() else {
        return Err(usage(n, "pve::call_tool is not available in this call".into()));
    };
    let Some(callee) = tools.tools.get(&name).cloned() else {
        return Err(thrown(
            n,
            ErrorKind::NotFound,
            format!("pve::call_tool: there is no tool '{name}' (pve-mcp tools lists them)"),
        ));
    };
    // The caller is the innermost tool running on this thread.
    let caller_name = CHAIN
        .with(|c| c.borrow().last().cloned())
        .unwrap_or_else(|| cx.tool.clone());
    let caller_class = if caller_name == cx.tool {
        cx.class()
    } else {
        tools
            .tools
            .get(&caller_name)
            .map(|t| t.manifest.class)
            .unwrap_or(cx.class())
    };
    let callee_class = callee.manifest.class;
    // Whatever a nested caller declared, the gate holds everything to the outermost tool's class.
    if !caller_class.covers(callee_class) || !cx.class().covers(callee_class) {
        return Err(refused(
            n,
            format!(
                "pve::call_tool(\"{name}\") refused: {name} is declared '{}' and {caller_name} is declared '{}'; a tool may call only tools whose class lies within its own. Nothing was sent for it.",
                callee_class.label(),
                caller_class.label()
            ),
        ));
    }
    // A callee that plans every write (`confirm: true`) keeps that only under a caller that
    // plans every write too; otherwise its writes would go out unconfirmed.
    let root_plans_writes = tools.tools.get(&cx.tool).is_some_and(|t| t.manifest.confirm_writes);
    if callee.manifest.confirm_writes && !root_plans_writes {
        return Err(refused(
            n,
            format!(
                "pve::call_tool(\"{name}\") refused: {name} plans every write and asks first (confirm: true), and {} does not; declare confirm: true in {} to call it",
                cx.tool, cx.tool
            ),
        ));
    }
    let depth = CHAIN.with(|c| c.borrow().len());
    if depth >= MAX_DEPTH {
        return Err(refused(
            n,
            format!("pve::call_tool(\"{name}\") refused: tools call tools more than {MAX_DEPTH} deep"),
        ));
    }
    if CHAIN.with(|c| c.borrow().contains(&name)) || name == cx.tool {
        return Err(refused(
            n,
            format!(
                "pve::call_tool(\"{name}\") refused: {name} is already running in this call (tools calling each other in a loop)"
            ),
        ));
    }

    // The arguments: a fresh copy, without confirmation, checked against the callee's schema.
    let json = convert::to_json(&args, convert::MAX_PARAMS_BYTES).map_err(|e| {
        usage(
            n,
            format!("pve::call_tool(\"{name}\"): the arguments cannot be passed: {e}"),
        )
    })?;
    let Value::Object(map) = json else {
        return Err(usage(
            n,
            format!("pve::call_tool(\"{name}\") takes the arguments as a map like #{{vmid: 100}}"),
        ));
    };
    if map.contains_key("confirm") || map.contains_key("confirm_token") {
        return Err(usage(
            n,
            format!(
                "pve::call_tool(\"{name}\") passes no confirm or confirm_token: the called tool runs under this call's own confirmation (or plan)"
            ),
        ));
    }
    if let Err(e) = crate::script::invoke::validate_args(&callee, &map) {
        return Err(thrown(
            n,
            ErrorKind::InvalidArguments,
            format!("pve::call_tool(\"{name}\"): {e}"),
        ));
    }
    let mut map = map;
    crate::script::defaults::fill(&callee.manifest.input_schema, &mut map);
    let args = convert::to_dynamic(Value::Object(map)).map_err(|e| usage(n, e.to_string()))?;

    CHAIN.with(|c| {
        let mut c = c.borrow_mut();
        if c.is_empty() {
            c.push(cx.tool.clone());
        }
        c.push(name.clone());
    });
    let _leave = Enter;
    let _root = RootGuard(depth == 0);
    cx.log(&format!("calls tool {name} ({})", callee.origin));

    let over_budget = Arc::new(AtomicBool::new(false));
    let engine = super::call_engine(&cx, over_budget.clone());
    let ast = &callee
        .body()
        .map_err(|e| thrown(n, ErrorKind::ScriptError, format!("pve::call_tool(\"{name}\"): {e}")))?
        .ast;
    let result = engine.call_fn::<Dynamic>(&mut Scope::new(), ast, ENTRY, (args,));
    match result {
        Ok(v) => Ok(v),
        Err(e) if over_budget.load(Ordering::Relaxed) => Err(refused(
            n,
            format!(
                "{name} (called by pve::call_tool) held more than the call's memory budget (PVE_MCP_SCRIPT_MEMORY): {e}"
            ),
        )),
        Err(e) => Err(rethrow(n, &name, &callee.origin, *e)),
    }
}

/// At depth 0 the chain also holds the outermost caller; clear it when its call returns.
struct RootGuard(bool);

impl Drop for RootGuard {
    fn drop(&mut self) {
        if self.0 {
            CHAIN.with(|c| c.borrow_mut().clear());
        }
    }
}

/// A callee's failure, in the caller: what stops the call stays uncatchable; a thrown value
/// (a PVE error map, say) is thrown again as it was; anything else becomes a
/// `#{kind: "tool_failed", tool, message}` map naming the callee's file, line and column.
fn rethrow(n: &NativeCallContext, name: &str, origin: &str, e: EvalAltResult) -> Box<EvalAltResult> {
    let mut inner = &e;
    while let EvalAltResult::ErrorInFunctionCall(_, _, i, _) | EvalAltResult::ErrorInModule(_, i, _) = inner {
        inner = i;
    }
    match inner {
        EvalAltResult::ErrorTerminated(why, _) => EvalAltResult::ErrorTerminated(why.clone(), n.call_position()).into(),
        EvalAltResult::ErrorRuntime(value, _) if value.is_map() => {
            let mut m = value.read_lock::<RMap>().map(|m| m.clone()).unwrap_or_default();
            m.entry("tool".into()).or_insert_with(|| name.into());
            EvalAltResult::ErrorRuntime(m.into(), n.call_position()).into()
        }
        _ => {
            let at = crate::script::ScriptError::from_eval(origin, &e);
            thrown(n, ErrorKind::ToolFailed, format!("{name} failed: {at}"))
        }
    }
}
