//! Everything one tool invocation carries: its gate, deadline, cancellation, progress sink
//! and counters. Host functions send PVE requests through [`CallContext::send`] (which only
//! takes the gate's permit) and sleep through [`CallContext::sleep`]; both give up on
//! cancellation or at the deadline.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use serde_json::{Map, Value};

use crate::api::{ApiPath, Method, PathError};
use crate::audit::CallAudit;
use crate::gate::{Gate, Permit, PlannedRequest, Refusal, Verdict, Violation};
use crate::pve::client::{BodyAllowance, Reply};
use crate::pve::{PveClient, PveError};
use crate::registry::Snapshot;

use super::answers::{Answer, Answers};
use super::budget;
use super::sandbox::limits;

/// Receives progress while a script waits: (progress so far, total if known, message).
pub(crate) type ProgressFn = Arc<dyn Fn(f64, Option<f64>, String) + Send + Sync>;

/// Requests one call may make before it is stopped.
pub(crate) const MAX_REQUESTS: usize = 2_000;

/// Requests of one `pve::get_all` in flight at once.
pub(crate) const MAX_PARALLEL: usize = 16;

/// Why a script was stopped from outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Interrupt {
    Cancelled,
    TimedOut,
    TooManyRequests,
    /// A PVE answer was larger than the call's memory budget had left (not read).
    AnswerTooLarge,
}

/// Why [`CallContext::send`] sent nothing or got no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SendError {
    /// Stopped from outside (cancelled, timed out, too many requests).
    Interrupted(Interrupt),
    /// Refused before sending: the audit log could not be written. The gate holds the
    /// violation, so the rest of the call is refused too.
    Refused(Violation),
}

/// What a call is made of; [`CallContext::new`] takes it whole.
pub(crate) struct CallParts {
    pub tool: String,
    pub client: PveClient,
    pub gate: Gate,
    /// Where the requests that change something are logged (see [`crate::audit`]).
    pub audit: CallAudit,
    pub cancel: CancellationToken,
    pub deadline: Instant,
    pub task_wait: Duration,
    pub progress: Option<ProgressFn>,
    pub rt: Handle,
    /// The tools in service when the call started, for `pve::call_tool`.
    pub tools: Option<Arc<Snapshot>>,
}

/// The client and the gate are private: a script's request reaches PVE only through
/// [`CallContext::check`] (the gate) and [`CallContext::send`], which takes the gate's
/// [`Permit`].
pub(crate) struct CallContext {
    pub tool: String,
    client: PveClient,
    gate: Gate,
    audit: CallAudit,
    pub cancel: CancellationToken,
    pub deadline: Instant,
    pub task_wait: Duration,
    pub progress: Option<ProgressFn>,
    rt: Handle,
    pub tools: Option<Arc<Snapshot>>,
    requests: AtomicUsize,
    log_lines: AtomicUsize,
    progress_step: AtomicUsize,
    interrupt: Mutex<Option<Interrupt>>,
    /// Guest config path → digest, for every guest config this call read.
    digests: Mutex<BTreeMap<String, String>>,
    /// What PVE answered lately, in short (see [`super::answers`]).
    answers: Mutex<Answers>,
}

impl CallContext {
    pub(crate) fn new(parts: CallParts) -> CallContext {
        let CallParts {
            tool,
            client,
            gate,
            audit,
            cancel,
            deadline,
            task_wait,
            progress,
            rt,
            tools,
        } = parts;
        CallContext {
            tool,
            client,
            gate,
            audit,
            cancel,
            deadline,
            task_wait,
            progress,
            rt,
            tools,
            requests: AtomicUsize::new(0),
            log_lines: AtomicUsize::new(0),
            progress_step: AtomicUsize::new(0),
            interrupt: Mutex::new(None),
            digests: Mutex::new(BTreeMap::new()),
            answers: Mutex::new(Answers::default()),
        }
    }

    pub(crate) fn interrupt(&self) -> Option<Interrupt> {
        *self.interrupt.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn set_interrupt(&self, i: Interrupt) {
        let mut slot = self.interrupt.lock().unwrap_or_else(|p| p.into_inner());
        slot.get_or_insert(i);
    }

    /// Checked by the engine's progress callback: should the script stop now?
    pub(crate) fn should_stop(&self) -> Option<Interrupt> {
        if let Some(i) = self.interrupt() {
            return Some(i);
        }
        let now = if self.cancel.is_cancelled() {
            Some(Interrupt::Cancelled)
        } else if Instant::now() >= self.deadline {
            Some(Interrupt::TimedOut)
        } else {
            None
        };
        if let Some(i) = now {
            self.set_interrupt(i);
        }
        now
    }

    /// Count one request; past the limit the call is stopped.
    pub(crate) fn count_request(&self) -> Result<(), Interrupt> {
        if self.requests.fetch_add(1, Ordering::Relaxed) >= MAX_REQUESTS {
            self.set_interrupt(Interrupt::TooManyRequests);
            return Err(Interrupt::TooManyRequests);
        }
        Ok(())
    }

    /// Run a future to completion from the script's (blocking) thread, unless the call is
    /// cancelled or its deadline passes first.
    pub(crate) fn block<F: std::future::Future>(&self, fut: F) -> Result<F::Output, Interrupt> {
        let result = self.rt.block_on(async {
            tokio::select! {
                out = fut => Ok(out),
                _ = self.cancel.cancelled() => Err(Interrupt::Cancelled),
                _ = tokio::time::sleep_until(self.deadline) => Err(Interrupt::TimedOut),
            }
        });
        if let Err(i) = result {
            self.set_interrupt(i);
        }
        result
    }

    /// Where each guest lives, shared by the server's calls (a hint; see [`crate::pve::VmidMap`]).
    pub(crate) fn vmids(&self) -> &crate::pve::VmidMap {
        self.client.vmids()
    }

    /// The call's gate: decide about one request.
    pub(crate) fn check(
        &self,
        method: Method,
        path: ApiPath,
        params: Map<String, Value>,
    ) -> Result<Verdict, Violation> {
        self.gate.check(method, path, params)
    }

    /// Record a path that failed the hygiene rules (and log it, if it is the call's first
    /// refusal).
    pub(crate) fn refuse_path(&self, method: Method, raw: String, err: PathError) -> Violation {
        let first = self.gate.violation().is_none();
        let v = self.gate.refuse_path(method, raw, err);
        if first {
            self.audit.refused(&v, None);
        }
        v
    }

    /// Log a request the gate refused. Only the call's first refusal is logged: after it,
    /// the gate refuses everything with the same violation.
    pub(crate) fn audit_refusal(&self, v: &Violation, path: &ApiPath, params: &Map<String, Value>) {
        self.audit.refused(v, Some((path, params)));
    }

    pub(crate) fn is_plan(&self) -> bool {
        self.gate.is_plan()
    }

    /// The capabilities the running tool declared (the gate holds every request to them).
    pub(crate) fn class(&self) -> crate::gate::Capabilities {
        self.gate.tool_class()
    }

    pub(crate) fn violation(&self) -> Option<Violation> {
        self.gate.violation()
    }

    pub(crate) fn planned(&self) -> Vec<PlannedRequest> {
        self.gate.planned()
    }

    /// Remember what PVE answered, in short, and the digest of a guest config this call
    /// read (a plan binds it).
    pub(crate) fn note_read(&self, method: Method, path: &ApiPath, answer: &Value) {
        self.answers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .record(Answer::of(method, path, answer));
        let routed = path.routed();
        let is_config = routed.len() == 5
            && routed[0] == "nodes"
            && (routed[2] == "qemu" || routed[2] == "lxc")
            && routed[4] == "config";
        if method == Method::Get
            && is_config
            && let Some(d) = answer.get("digest").and_then(Value::as_str)
        {
            let mut digests = self.digests.lock().unwrap_or_else(|p| p.into_inner());
            digests.entry(path.to_string()).or_insert_with(|| d.to_string());
        }
    }

    /// The answer a type error in the script is most likely about, if PVE answered at all.
    pub(crate) fn suspect_answer(&self) -> Option<Answer> {
        self.answers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .suspect()
            .cloned()
    }

    pub(crate) fn digests(&self) -> BTreeMap<String, String> {
        self.digests.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Send one request the gate allowed, from the script's thread. The request runs as a
    /// task on the runtime's workers (where its connection's I/O is driven); the script
    /// thread only waits for the answer, which saves a wake-up per I/O event over polling it
    /// here.
    ///
    /// A request that changes something is logged, and the line synced, before it is sent;
    /// if it cannot be, the request is refused and nothing is sent. Its outcome is logged
    /// after.
    pub(crate) fn send(&self, permit: Permit) -> Result<Result<Value, PveError>, SendError> {
        let logged = self.log_before_send(&permit)?;
        let result = self.send_permit(permit);
        if let Some((seq, method, path)) = logged {
            self.audit.after_send(seq, method, &path, &result);
        }
        result.map_err(SendError::Interrupted)
    }

    /// Log a request that changes something to the audit log before it is sent: its line's
    /// number, method and path for the outcome line (`None` when it is not logged). If the
    /// line cannot be written, the request is refused and must not be sent.
    fn log_before_send(&self, permit: &Permit) -> Result<Option<(u64, Method, String)>, SendError> {
        match self.audit.before_send(permit) {
            Ok(seq) => Ok(seq.map(|seq| (seq, permit.method(), permit.path().to_string()))),
            Err(e) => {
                let refusal = Refusal::AuditLog {
                    path: self.audit.place(),
                    why: e.to_string(),
                };
                tracing::error!("{}: {} {}: {refusal}", self.tool, permit.method(), permit.path());
                let v = self.gate.refuse(permit.method(), permit.path().to_string(), refusal);
                Err(SendError::Refused(v))
            }
        }
    }

    /// The answer is read on the runtime and decoded here, on the script's thread, uncounted:
    /// like everything made elsewhere, it is charged by what keeps it.
    fn send_permit(&self, permit: Permit) -> Result<Result<Value, PveError>, Interrupt> {
        let client = self.client.clone();
        let allowance = BodyAllowance::new(budget::remaining());
        let fetched = self.on_runtime(async move {
            let reply = client.fetch(&permit, &allowance).await;
            (permit, reply)
        });
        match fetched {
            Ok((_, Err(PveError::TooLarge { .. }))) => self.interrupted(Interrupt::AnswerTooLarge),
            Ok((permit, reply)) => Ok(reply.and_then(|r| budget::uncounted(|| self.client.decode(&permit, r)))),
            Err(i) => self.interrupted(i),
        }
    }

    fn interrupted<T>(&self, i: Interrupt) -> Result<T, Interrupt> {
        self.set_interrupt(i);
        Err(i)
    }

    /// Run `fut` as a task on the runtime's workers (where connections' I/O is driven) and
    /// wait for it on this thread. The task ends at the call's deadline or cancellation; the
    /// wait ends then too, whatever the runtime's state, so a call can never hang on an
    /// answer that does not come.
    fn on_runtime<T: Send + 'static>(
        &self,
        fut: impl std::future::Future<Output = T> + Send + 'static,
    ) -> Result<T, Interrupt> {
        let (cancel, deadline) = (self.cancel.clone(), self.deadline);
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.rt.spawn(async move {
            let out = tokio::select! {
                out = fut => Ok(out),
                _ = cancel.cancelled() => Err(Interrupt::Cancelled),
                _ = tokio::time::sleep_until(deadline) => Err(Interrupt::TimedOut),
            };
            let _ = tx.send(out);
        });
        let grace = Duration::from_secs(1);
        let wait = self.deadline.saturating_duration_since(Instant::now()) + grace;
        match rx.recv_timeout(wait) {
            Ok(out) => out,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => Err(Interrupt::TimedOut),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => Err(Interrupt::Cancelled),
        }
    }

    /// Send several requests the gate allowed at once (at most [`MAX_PARALLEL`] in flight),
    /// from the script's thread; the answers come back in the permits' order. Each is logged
    /// to the audit log first when it changes something, as [`CallContext::send`] does; if
    /// that fails, nothing is sent.
    pub(crate) fn send_all(&self, permits: Vec<Permit>) -> Result<Vec<Result<Value, PveError>>, SendError> {
        let mut logged = Vec::with_capacity(permits.len());
        for permit in &permits {
            logged.push(self.log_before_send(permit)?);
        }
        let count = permits.len();
        let paths: Vec<String> = permits.iter().map(|p| p.path().to_string()).collect();
        let lost = |i: usize| PveError::BadResponse {
            method: "GET",
            path: paths.get(i).cloned().unwrap_or_default(),
            status: 0,
            detail: "the request ended without an answer".into(),
        };
        let client = self.client.clone();
        // One allowance for all: together the answers stay within the budget's remainder.
        let allowance = BodyAllowance::new(budget::remaining());
        let result = self.on_runtime(async move {
            let slots = Arc::new(tokio::sync::Semaphore::new(MAX_PARALLEL));
            let mut set = tokio::task::JoinSet::new();
            for (i, permit) in permits.into_iter().enumerate() {
                let (client, slots, allowance) = (client.clone(), slots.clone(), allowance.clone());
                set.spawn(async move {
                    let _slot = slots.acquire_owned().await;
                    let reply = client.fetch(&permit, &allowance).await;
                    (i, permit, reply)
                });
            }
            let mut out: Vec<Option<(Permit, Result<Reply, PveError>)>> = (0..count).map(|_| None).collect();
            while let Some(joined) = set.join_next().await {
                if let Ok((i, permit, reply)) = joined
                    && let Some(slot) = out.get_mut(i)
                {
                    *slot = Some((permit, reply));
                }
            }
            out
        });
        let result = result.and_then(|answers| {
            if answers
                .iter()
                .flatten()
                .any(|(_, r)| matches!(r, Err(PveError::TooLarge { .. })))
            {
                return Err(Interrupt::AnswerTooLarge);
            }
            Ok(answers
                .into_iter()
                .enumerate()
                .map(|(i, a)| match a {
                    // Decoded here, on the script's thread, not on the runtime.
                    Some((permit, reply)) => reply.and_then(|r| budget::uncounted(|| self.client.decode(&permit, r))),
                    None => Err(lost(i)),
                })
                .collect::<Vec<_>>())
        });
        if let Err(i) = &result {
            self.set_interrupt(*i);
        }
        for (i, entry) in logged.into_iter().enumerate() {
            if let Some((seq, method, path)) = entry {
                let one = match &result {
                    Ok(all) => Ok(all.get(i).cloned().unwrap_or_else(|| Err(lost(i)))),
                    Err(stop) => Err(*stop),
                };
                self.audit.after_send(seq, method, &path, &one);
            }
        }
        result.map_err(SendError::Interrupted)
    }

    /// Sleep, waking early on cancellation or at the deadline.
    pub(crate) fn sleep(&self, d: Duration) -> Result<(), Interrupt> {
        self.block(tokio::time::sleep(d))
    }

    /// A script log line, bounded in count and length.
    pub(crate) fn log(&self, line: &str) {
        let n = self.log_lines.fetch_add(1, Ordering::Relaxed);
        if n < limits::MAX_LOG_LINES {
            let line: String = line.chars().take(limits::MAX_LOG_LINE).collect();
            tracing::info!(target: "script", "{}: {line}", self.tool);
        } else if n == limits::MAX_LOG_LINES {
            tracing::warn!(target: "script", "{}: more than {} log lines; the rest of this call's output is dropped", self.tool, limits::MAX_LOG_LINES);
        }
    }

    pub(crate) fn report_progress(&self, message: String) {
        if let Some(p) = &self.progress {
            let step = self.progress_step.fetch_add(1, Ordering::Relaxed) + 1;
            p(step as f64, None, message);
        }
    }
}
