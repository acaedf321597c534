//! Run one tool call: validate the arguments, run the script on its own thread under
//! its gate, and turn what happened into an [`CallOutcome`].
//!
//! A destructive tool called without `confirm=true` first runs as a plan: reads are sent,
//! writes are recorded. If the plan holds a destructive request, the answer is the plan;
//! otherwise (e.g. a restore to a new vmid) the tool runs again for real.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rhai::{Dynamic, Scope};
use serde_json::{Map, Value};
use thiserror::Error;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::ErrorKind;

use super::budget;
use super::compile::{CompiledTool, ENTRY};
use super::context::{CallContext, CallParts, Interrupt, MAX_REQUESTS, ProgressFn};
use super::convert::{self, ConvertError};
use super::error::ScriptError;
use super::thread;
use super::{answers, binding};
use crate::api::{ApiPath, Method};
use crate::audit::Audit;
use crate::config::Settings;
use crate::confirm::{self, Asked, BoundPlan, ClientApproval, ConfirmError, PlanKey, SpentPlans, ToolApproval};
use crate::gate::{CallMode, Capabilities, Gate, PlannedRequest, Verdict, Violation};
use crate::pve::PveClient;

/// The server's services a call uses: the client, the settings, the key that signs plans,
/// the plans already spent, the audit log and the tools in service.
#[derive(Debug, Clone)]
pub(crate) struct Services {
    pub client: PveClient,
    pub settings: Settings,
    pub plan_key: Arc<PlanKey>,
    /// Plans already carried out.
    pub spent: Arc<SpentPlans>,
    pub audit: Arc<Audit>,
    /// The tools in service, for `pve::call_tool` (none: it is unavailable).
    pub registry: crate::registry::slot::RegistrySlot,
}

#[derive(Debug)]
pub(crate) enum CallOutcome {
    Done(Value),
    /// Destructive requests that were not sent, with the script's explanation.
    Plan {
        explanation: Value,
        requests: Vec<PlannedRequest>,
        /// Binds a confirmation to this plan (see [`crate::confirm`]).
        confirm_token: String,
        ttl: Duration,
    },
    Failed(CallError),
}

#[derive(Debug, Error)]
pub(crate) enum CallError {
    #[error("invalid arguments: {}", .0.join("; "))]
    InvalidArguments(Vec<String>),
    #[error("refused by the safety gate: {0}. Nothing after this request was sent.")]
    Refused(Violation),
    #[error("{}{}", .0.message, location(.0))]
    Script(ScriptError),
    /// A PVE error the script did not catch: PVE's answer, not a bug of the script.
    #[error("{}{}", .0.message, location(.0))]
    Pve(ScriptError),
    #[error("the script did not finish within {0:?} and was stopped (PVE_MCP_SCRIPT_TIMEOUT)")]
    TimedOut(Duration),
    #[error("the call was cancelled by the client; any PVE task already started keeps running")]
    Cancelled,
    #[error("the script made more than {MAX_REQUESTS} PVE requests and was stopped")]
    TooManyRequests,
    #[error(
        "the script held more than {} MiB and was stopped (PVE_MCP_SCRIPT_MEMORY); ask for less at once, e.g. one node or one guest",
        .0 >> 20
    )]
    OutOfMemory(usize),
    #[error(
        "a PVE answer was larger than what the call's memory budget ({} MiB) had left, so it was not read and the script was stopped (PVE_MCP_SCRIPT_MEMORY); ask for less at once (a limit, one node or one storage)",
        .0 >> 20
    )]
    AnswerTooLarge(usize),
    #[error(
        "the result is larger than {0} bytes of JSON (PVE_MCP_MAX_RESULT_BYTES); narrow the request (one node, one guest, fewer items or fields) or raise PVE_MCP_MAX_RESULT_BYTES"
    )]
    ResultTooLarge(usize),
    /// The script tripped over a PVE answer of an unexpected shape.
    #[error("{message} (The script stopped at {at}.)")]
    UnexpectedAnswer {
        message: String,
        at: String,
        /// The script's own error, for authors.
        detail: String,
    },
    #[error("the script's result does not match its declared output schema: {0}")]
    BadOutput(String),
    #[error("{0}")]
    Confirm(ConfirmError),
    #[error(
        "the plan is stale: {path} changed since the plan was made (digest {planned} then, {now} now), so nothing was done; call the tool again without confirm for a new plan"
    )]
    StalePlan { path: String, planned: String, now: String },
    #[error(
        "the approval could not be written to the audit log at {place} ({why}), so nothing was done; fix the path or its permissions, or set PVE_MCP_AUDIT_LOG=off"
    )]
    AuditLog { place: String, why: String },
    #[error("internal error while running the script: {0}")]
    Internal(String),
}

fn location(e: &ScriptError) -> String {
    match (e.line, e.col) {
        (Some(l), Some(c)) => format!(" (at {}:{l}:{c})", e.origin),
        (Some(l), None) => format!(" (at {}:{l})", e.origin),
        _ => format!(" (in {})", e.origin),
    }
}

impl CallError {
    /// A short machine-readable kind for `structuredContent`.
    pub(crate) fn kind(&self) -> ErrorKind {
        match self {
            CallError::InvalidArguments(_) => ErrorKind::InvalidArguments,
            CallError::Refused(_) => ErrorKind::Refused,
            CallError::Script(_) => ErrorKind::ScriptError,
            CallError::Pve(_) => ErrorKind::PveError,
            CallError::TimedOut(_) => ErrorKind::Timeout,
            CallError::Cancelled => ErrorKind::Cancelled,
            CallError::TooManyRequests => ErrorKind::TooManyRequests,
            CallError::OutOfMemory(_) | CallError::AnswerTooLarge(_) => ErrorKind::OutOfMemory,
            CallError::ResultTooLarge(_) => ErrorKind::ResultTooLarge,
            CallError::UnexpectedAnswer { .. } => ErrorKind::UnexpectedAnswer,
            CallError::BadOutput(_) => ErrorKind::BadOutput,
            CallError::Confirm(_) => ErrorKind::Confirmation,
            CallError::StalePlan { .. } => ErrorKind::StalePlan,
            CallError::AuditLog { .. } => ErrorKind::AuditLog,
            CallError::Internal(_) => ErrorKind::Internal,
        }
    }
}

/// Check the arguments against the tool's schema; every problem names its field.
pub(crate) fn validate_args(tool: &CompiledTool, args: &Map<String, Value>) -> Result<(), CallError> {
    let value = Value::Object(args.clone());
    let body = tool.body().map_err(CallError::Script)?;
    let problems: Vec<String> = body
        .validator
        .iter_errors(&value)
        .map(|e| {
            let at = e.instance_path().to_string();
            let field = at.trim_start_matches('/');
            if field.is_empty() {
                e.to_string()
            } else {
                format!("'{field}': {e}")
            }
        })
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(CallError::InvalidArguments(problems))
    }
}

/// How a call that needs approval is to get it.
#[derive(Debug, Clone)]
pub(crate) enum Approving {
    /// From its own arguments: `confirm=true`, with a `confirm_token` where the mode is
    /// `plan` (or whenever one is given).
    Arguments,
    /// A person will be asked: this run only makes the plan, whatever the arguments say.
    PlanForPerson,
    /// A person approved this plan: the run may send only what it shows.
    Approved(Arc<BoundPlan>),
}

/// One tool call.
pub(crate) struct CallRequest {
    pub tool: Arc<CompiledTool>,
    pub args: Map<String, Value>,
    /// How the client approves calls ([`ClientApproval`]).
    pub client: ClientApproval,
    pub approving: Approving,
    pub cancel: CancellationToken,
    pub progress: Option<ProgressFn>,
}

/// Run a tool call to its outcome.
pub(crate) async fn invoke(services: &Services, req: CallRequest) -> CallOutcome {
    let CallRequest {
        tool,
        args,
        client,
        approving,
        cancel,
        progress,
    } = req;
    if let Err(e) = validate_args(&tool, &args) {
        return CallOutcome::Failed(e);
    }
    let approval = client.for_tool(tool.manifest.class, tool.manifest.confirm_writes);
    let approve = client.caps();
    let call = match confirmation(services, &tool, &args, approval, &approving) {
        Ok(c) => c,
        Err(e) => return CallOutcome::Failed(e),
    };
    let plan = call == CallMode::Plan;
    let writes = tool.manifest.confirm_writes;
    let first = run_once(services, &tool, &args, call, approve, cancel.clone(), progress.clone()).await;
    let outcome = match first {
        Err(e) => return CallOutcome::Failed(e),
        Ok(run) if !plan => CallOutcome::Done(run.value),
        Ok(run)
            if run
                .planned
                .iter()
                .any(|r| writes || r.needs.calls_for_approval(approve)) =>
        {
            let ttl = services.settings.plan_ttl;
            let to_sign = confirm::PlanToSign {
                tool: &tool.manifest.name,
                args: &args,
                planned: &run.planned,
                digests: &run.digests,
                writes,
                approve,
            };
            let confirm_token = confirm::sign(&services.plan_key, &to_sign, confirm::now(), ttl);
            CallOutcome::Plan {
                explanation: run.value,
                requests: run.planned,
                confirm_token,
                ttl,
            }
        }
        // The plan holds nothing that needs approval (e.g. a restore to a new vmid): run it.
        Ok(_) => match run_once(services, &tool, &args, CallMode::run(false), approve, cancel, progress).await {
            Ok(run) => CallOutcome::Done(run.value),
            Err(e) => return CallOutcome::Failed(e),
        },
    };
    if let CallOutcome::Done(value) = &outcome
        && claims_to_be_a_plan(value)
    {
        return CallOutcome::Failed(CallError::Script(ScriptError {
            origin: tool.origin.clone(),
            line: None,
            col: None,
            message: "the tool's result claims to be a confirmation plan (status \"confirmation_required\" or a confirm_token); only the core makes plans, so the result is refused".into(),
        }));
    }
    if let (CallOutcome::Done(value), Some(_)) = (&outcome, &tool.manifest.output_schema)
        && let Err(e) = check_output(&tool, value)
    {
        return CallOutcome::Failed(e);
    }
    outcome
}

/// A script's result that looks like a core plan, which a host could mistake for one.
fn claims_to_be_a_plan(v: &Value) -> bool {
    v.get("status").and_then(Value::as_str) == Some("confirmation_required")
        || v.get("confirm_token").is_some()
        || v.get("_meta").is_some()
}

/// How this call runs: a plan (approval needed and not given), a run bound to the plan a
/// token or a person approved, or, where `confirm=true` alone suffices (`flag`), a plain
/// confirmed run. Every plan is carried out at most once.
fn confirmation(
    services: &Services,
    tool: &CompiledTool,
    args: &Map<String, Value>,
    approval: Option<ToolApproval>,
    approving: &Approving,
) -> Result<CallMode, CallError> {
    let Some(approval) = approval else {
        return Ok(CallMode::run(false));
    };
    let bound = |plan: Arc<BoundPlan>| -> Result<CallMode, CallError> {
        if !services.spent.spend(&plan.id, plan.expires, confirm::now()) {
            return Err(CallError::Confirm(ConfirmError::Spent));
        }
        Ok(CallMode::Run {
            confirmed: true,
            bound: Some(plan),
        })
    };
    match approving {
        Approving::PlanForPerson => return Ok(CallMode::Plan),
        Approving::Approved(plan) => return bound(plan.clone()),
        Approving::Arguments if approval.asked == Asked::Human => {
            return Err(CallError::Confirm(ConfirmError::NeedsPerson));
        }
        Approving::Arguments => {}
    }
    if args.get("confirm") != Some(&Value::Bool(true)) {
        return Ok(CallMode::Plan);
    }
    match args.get("confirm_token").and_then(Value::as_str) {
        Some(token) => {
            let plan = confirm::verify(&services.plan_key, token, &tool.manifest.name, args, confirm::now())
                .map_err(CallError::Confirm)?;
            bound(Arc::new(plan))
        }
        None if approval.asked == Asked::Plan => Err(CallError::Confirm(ConfirmError::NeedsPlan)),
        None => Ok(CallMode::run(true)),
    }
}

/// Before a run bound to a plan sends anything: every guest config the plan read must still
/// have the digest it had then.
fn check_digests(cx: &CallContext, call: &CallMode) -> Result<(), CallError> {
    let CallMode::Run { bound: Some(plan), .. } = call else {
        return Ok(());
    };
    for (path, planned) in &plan.digests {
        let api = ApiPath::parse(path).map_err(|e| CallError::Internal(e.to_string()))?;
        let permit = match cx.check(Method::Get, api, Map::new()) {
            Ok(Verdict::Send(p)) => p,
            Ok(Verdict::Record(_)) => continue,
            Err(v) => return Err(CallError::Refused(v)),
        };
        let now = match cx.send(permit) {
            Ok(Ok(v)) => v.get("digest").and_then(Value::as_str).unwrap_or("").to_string(),
            Ok(Err(e)) => format!("unreadable ({e})"),
            // The interrupt is recorded on the call, and run_once reports it first.
            Err(_) => return Err(CallError::Cancelled),
        };
        if &now != planned {
            return Err(CallError::StalePlan {
                path: path.clone(),
                planned: planned.clone(),
                now,
            });
        }
    }
    Ok(())
}

fn check_output(tool: &CompiledTool, value: &Value) -> Result<(), CallError> {
    // Built once, with the tool's body.
    let Some(validator) = &tool.body().map_err(CallError::Script)?.output_validator else {
        return Ok(());
    };
    match validator.validate(value) {
        Ok(()) => Ok(()),
        Err(e) => Err(CallError::BadOutput(format!("{} at '{}'", e, e.instance_path()))),
    }
}

/// What one run of a script gave: its value, and in a plan, the requests it recorded and
/// the guest config digests it read.
struct Run {
    value: Value,
    planned: Vec<PlannedRequest>,
    digests: BTreeMap<String, String>,
}

async fn run_once(
    services: &Services,
    tool: &Arc<CompiledTool>,
    args: &Map<String, Value>,
    call: CallMode,
    approve: Capabilities,
    cancel: CancellationToken,
    progress: Option<ProgressFn>,
) -> Result<Run, CallError> {
    let timeout = services.settings.script_timeout;
    let bound = call.clone();
    let cx = Arc::new(CallContext::new(CallParts {
        tool: tool.manifest.name.clone(),
        client: services.client.clone(),
        audit: services.audit.call(tool, args, &bound),
        gate: Gate::new(services.settings.mode, tool.manifest.class, call).approving(approve),
        cancel,
        deadline: Instant::now() + timeout,
        task_wait: services.settings.task_wait,
        progress,
        rt: tokio::runtime::Handle::current(),
        tools: services.registry.current().map(|r| r.snapshot()),
    }));
    // The script blocks on PVE requests, so it runs on a thread of its own while the
    // runtime's workers drive the requests. Its value becomes JSON on that thread too: it is
    // measured, converted and dropped where it was made, on the script's stack.
    let limits = Limits {
        memory: services.settings.script_memory,
        result_bytes: services.settings.max_result_bytes,
    };
    let (cx2, tool2, args) = (cx.clone(), tool.clone(), args.clone());
    let joined = thread::run(move || {
        check_digests(&cx2, &bound)?;
        run_script(&cx2, &tool2, args, limits)
    })
    .await;
    // The gate and the interrupt decide first: a script cannot hide them by catching errors.
    if let Some(v) = cx.violation() {
        return Err(CallError::Refused(v));
    }
    match cx.interrupt() {
        Some(Interrupt::Cancelled) => return Err(CallError::Cancelled),
        Some(Interrupt::TimedOut) => return Err(CallError::TimedOut(timeout)),
        Some(Interrupt::TooManyRequests) => return Err(CallError::TooManyRequests),
        Some(Interrupt::AnswerTooLarge) => return Err(CallError::AnswerTooLarge(limits.memory)),
        None => {}
    }
    let value = joined.map_err(|e| CallError::Internal(e.to_string()))??;
    Ok(Run {
        value,
        planned: cx.planned(),
        digests: cx.digests(),
    })
}

/// A script's error as the call's failure. A type error (a loop over null, a field of a
/// string, …) after PVE answered is reported as an unexpected answer, naming the endpoint
/// and what it returned; the script's own words are kept as the detail.
fn script_failure(cx: &CallContext, tool: &CompiledTool, e: &rhai::EvalAltResult) -> CallError {
    let err = ScriptError::from_eval(&tool.origin, e);
    // A PVE error the script did not catch is PVE's answer, not a bug of the script.
    let at = || match (err.line, err.col) {
        (Some(l), Some(c)) => format!("{}:{l}:{c}", err.origin),
        (Some(l), None) => format!("{}:{l}", err.origin),
        _ => err.origin.clone(),
    };
    let thrown = super::error::thrown_kind(e).as_deref().and_then(ErrorKind::parse);
    if thrown == Some(ErrorKind::Pve) {
        return CallError::Pve(err);
    }
    // A helper's own verdict on PVE's answer (`resolve_vmid`, `next_vmid`, …) that the
    // script let through: the host hears it as such, not as the script's bug.
    if thrown == Some(ErrorKind::UnexpectedAnswer) {
        return CallError::UnexpectedAnswer {
            message: err.message.clone(),
            at: at(),
            detail: "an unexpected_answer error the script did not catch".into(),
        };
    }
    if tool.body().is_ok_and(|b| answers::is_type_error(e, &b.ast))
        && let Some(answer) = cx.suspect_answer()
    {
        let expected = answers::expected(e);
        return CallError::UnexpectedAnswer {
            message: answers::sentence(&tool.manifest.name, &answer, expected.as_deref()),
            at: at(),
            detail: err.message,
        };
    }
    CallError::Script(err)
}

/// What one script run may use.
#[derive(Debug, Clone, Copy)]
struct Limits {
    memory: usize,
    result_bytes: usize,
}

fn run_script(
    cx: &Arc<CallContext>,
    tool: &CompiledTool,
    args: Map<String, Value>,
    limits: Limits,
) -> Result<Value, CallError> {
    let _budget = budget::enter(limits.memory);
    let over_budget = Arc::new(AtomicBool::new(false));
    let engine = binding::call_engine(cx, over_budget.clone());
    let mut args = args;
    super::defaults::fill(&tool.manifest.input_schema, &mut args);
    let args =
        convert::to_dynamic(Value::Object(args)).map_err(|e| CallError::InvalidArguments(vec![e.to_string()]))?;
    let ast = &tool.body().map_err(CallError::Script)?.ast;
    let result = engine.call_fn::<Dynamic>(&mut Scope::new(), ast, ENTRY, (args,));
    if over_budget.load(Ordering::Relaxed) {
        return Err(CallError::OutOfMemory(limits.memory));
    }
    let value = result.map_err(|e| script_failure(cx, tool, &e))?;
    convert::into_json(value, limits.result_bytes).map_err(|e| match e {
        ConvertError::TooLarge { limit } => CallError::ResultTooLarge(limit),
        other => CallError::Script(ScriptError {
            origin: tool.origin.clone(),
            line: None,
            col: None,
            message: format!("fn {ENTRY} returned a value that cannot be sent as JSON: {other}"),
        }),
    })
}
