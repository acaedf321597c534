//! The gate: every request a script makes passes here before it can reach the HTTP client.
//!
//! It knows what the script cannot change: the server [`Mode`], the tool's declared
//! [`Capabilities`] and how this invocation runs ([`CallMode`]). An allowed request comes
//! back as a [`Permit`], the only value [`crate::pve::PveClient::send`] accepts, and only
//! this module can make one. Once a request is refused, the gate stays refused for the rest
//! of the call, and the call fails even if the script caught the error.

pub(crate) mod capability;
pub(crate) mod inspect;
pub(crate) mod policy;
pub mod table;

use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde_json::{Map, Value};
use thiserror::Error;

use crate::api::{ApiPath, Method, PathError};
use crate::config::Mode;
use crate::confirm::BoundPlan;
pub use capability::{Capabilities, Capability};
pub(crate) use policy::truthy;
pub use policy::{Classification, classify};

/// How one invocation runs.
#[derive(Debug, Clone, PartialEq)]
pub enum CallMode {
    /// Requests are sent; destructive ones only when the call carries `confirm=true`, and,
    /// when the confirmation came with a plan's token, only those the plan showed.
    Run {
        confirmed: bool,
        bound: Option<Arc<BoundPlan>>,
    },
    /// A destructive tool called without confirmation: reads are sent, every other request
    /// is recorded for the plan instead.
    Plan,
}

impl CallMode {
    /// Run, with or without `confirm=true`, bound to no plan.
    pub fn run(confirmed: bool) -> CallMode {
        CallMode::Run { confirmed, bound: None }
    }
}

/// Why a request was refused.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum Refusal {
    #[error("{template} is never allowed from a tool: {why}")]
    Forbidden { template: &'static str, why: String },
    #[error("{template}: {why}")]
    BadParam { template: &'static str, why: String },
    #[error(
        "no endpoint of the PVE API (8.4 or 9.1) has this method and path, so the gate does not know it and refuses it"
    )]
    Unknown,
    #[error(
        "the server is in read-only mode (PVE_MCP_READ_ONLY=true), which refuses every non-GET request and all administration"
    )]
    ReadOnly,
    #[error("guest command execution is disabled; set PVE_MCP_ENABLE_EXEC=true to allow exec tools")]
    ExecDisabled,
    #[error("host and cluster administration is disabled; set PVE_MCP_ENABLE_ADMIN=true to allow admin tools")]
    AdminDisabled,
    #[error(
        "{template} needs '{needs}' and the tool is declared '{tool}'; a tool that means to do this declares class {}",
        suggest(*.tool, *.needs)
    )]
    Lacks {
        template: &'static str,
        tool: Capabilities,
        needs: Capabilities,
    },
    #[error(
        "this request needs a confirmation (it is destructive, or guest exec or administration on a server that confirms those) and the call did not carry confirm=true"
    )]
    NotConfirmed,
    #[error(
        "this request is not one the approved plan showed ({planned} planned), so it is refused; call the tool again for a new plan"
    )]
    NotInPlan { planned: usize },
    #[error("{0}")]
    BadPath(PathError),
    #[error(
        "the audit log at {path} could not be written ({why}), so this request was not sent; fix the path or its permissions, or set PVE_MCP_AUDIT_LOG=off to run without an audit log"
    )]
    AuditLog { path: String, why: String },
}

fn suggest(tool: Capabilities, needs: Capabilities) -> String {
    let mut want = tool;
    for c in tool.missing(needs) {
        want = want.with(c);
    }
    let names: Vec<String> = want.iter().map(|c| format!("\"{c}\"")).collect();
    format!("[{}]", names.join(", "))
}

/// A refused request, as the caller sees it.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[error("{method} {path} refused: {refusal}")]
pub struct Violation {
    pub method: Method,
    pub path: String,
    pub refusal: Refusal,
}

/// Only this module can make one, so only the gate can make a [`Permit`].
#[derive(Debug)]
struct Seal;

/// An allowed request, exactly as the gate checked it. The HTTP client sends nothing else.
#[derive(Debug)]
pub struct Permit {
    method: Method,
    path: ApiPath,
    params: Map<String, Value>,
    needs: Capabilities,
    _seal: Seal,
}

impl Permit {
    pub fn method(&self) -> Method {
        self.method
    }
    pub fn path(&self) -> &ApiPath {
        &self.path
    }
    pub fn params(&self) -> &Map<String, Value> {
        &self.params
    }
    pub fn needs(&self) -> Capabilities {
        self.needs
    }
}

/// What to do with an allowed request.
#[derive(Debug)]
pub enum Verdict {
    Send(Permit),
    /// Plan mode: recorded for the answer, not sent.
    Record(PlannedRequest),
}

/// A request recorded in plan mode.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PlannedRequest {
    pub method: Method,
    pub path: String,
    pub params: Map<String, Value>,
    #[serde(rename = "class")]
    pub needs: Capabilities,
}

#[derive(Debug, Default)]
struct State {
    violation: Option<Violation>,
    planned: Vec<PlannedRequest>,
}

/// One gate per tool invocation.
#[derive(Debug)]
pub struct Gate {
    mode: Mode,
    tool: Capabilities,
    call: CallMode,
    /// Requests needing any of these need the call's approval: destructive always.
    approve: Capabilities,
    state: Mutex<State>,
}

impl Gate {
    pub fn new(mode: Mode, tool: Capabilities, call: CallMode) -> Gate {
        Gate {
            mode,
            tool,
            call,
            approve: Capabilities::of(&[Capability::Destructive]),
            state: Mutex::new(State::default()),
        }
    }

    /// Requests needing any of `caps` (besides destructive ones) need the call's approval
    /// too: exec and admin, where the server confirms those.
    pub(crate) fn approving(mut self, caps: Capabilities) -> Gate {
        self.approve = self.approve.union(caps);
        self
    }

    pub(crate) fn is_plan(&self) -> bool {
        matches!(self.call, CallMode::Plan)
    }

    /// The capabilities the running tool declared.
    pub(crate) fn tool_class(&self) -> Capabilities {
        self.tool
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A poisoned lock only means another thread panicked mid-update; the data is still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Decide about one request. A refusal is remembered: every later request is refused too.
    pub fn check(&self, method: Method, path: ApiPath, params: Map<String, Value>) -> Result<Verdict, Violation> {
        let mut state = self.state();
        if let Some(v) = &state.violation {
            return Err(v.clone());
        }
        match self.decide(method, &path, &params) {
            Ok(needs) if self.is_plan() && !needs.is_read() => {
                let planned = PlannedRequest {
                    method,
                    path: path.to_string(),
                    params,
                    needs,
                };
                state.planned.push(planned.clone());
                Ok(Verdict::Record(planned))
            }
            Ok(needs) => Ok(Verdict::Send(Permit {
                method,
                path,
                params,
                needs,
                _seal: Seal,
            })),
            Err(refusal) => {
                let v = Violation {
                    method,
                    path: path.to_string(),
                    refusal,
                };
                state.violation = Some(v.clone());
                Err(v)
            }
        }
    }

    fn decide(&self, method: Method, path: &ApiPath, params: &Map<String, Value>) -> Result<Capabilities, Refusal> {
        let (needs, template) = match classify(method, &path.routed(), params) {
            Classification::Needs { caps, template } => (caps, template),
            Classification::Forbidden { template, why } => return Err(Refusal::Forbidden { template, why }),
            Classification::BadParam { template, why } => return Err(Refusal::BadParam { template, why }),
            Classification::Unknown => return Err(Refusal::Unknown),
        };
        if self.mode.read_only && (method != Method::Get || needs.has(Capability::Admin)) {
            return Err(Refusal::ReadOnly);
        }
        if needs.has(Capability::Exec) && !self.mode.enables(Capability::Exec) {
            return Err(Refusal::ExecDisabled);
        }
        if needs.has(Capability::Admin) && !self.mode.enables(Capability::Admin) {
            return Err(Refusal::AdminDisabled);
        }
        if !self.tool.covers(needs) {
            return Err(Refusal::Lacks {
                template,
                tool: self.tool,
                needs,
            });
        }
        let approved_here = needs.calls_for_approval(self.approve);
        if let CallMode::Run { bound: Some(plan), .. } = &self.call {
            let bound_here = approved_here || (plan.binds_writes && !needs.is_read());
            if bound_here && !plan.allows(method, &path.to_string(), params) {
                return Err(Refusal::NotInPlan {
                    planned: plan.requests.len(),
                });
            }
        }
        if approved_here {
            match &self.call {
                CallMode::Plan => {}
                CallMode::Run { confirmed: false, .. } => return Err(Refusal::NotConfirmed),
                CallMode::Run { .. } => {}
            }
        }
        Ok(needs)
    }

    /// Record a path that failed the hygiene rules; the call is refused from now on.
    pub(crate) fn refuse_path(&self, method: Method, raw: String, err: PathError) -> Violation {
        self.refuse(method, raw, Refusal::BadPath(err))
    }

    /// Refuse a request for a reason found outside the gate (the audit log could not be
    /// written); the call is refused from now on. The first refusal of a call stands.
    pub fn refuse(&self, method: Method, path: String, refusal: Refusal) -> Violation {
        let mut state = self.state();
        let v = Violation { method, path, refusal };
        state.violation.get_or_insert(v).clone()
    }

    /// The refusal that ended this call, if any.
    pub(crate) fn violation(&self) -> Option<Violation> {
        self.state().violation.clone()
    }

    pub fn planned(&self) -> Vec<PlannedRequest> {
        self.state().planned.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::Capability::*;
    use super::*;
    use serde_json::json;

    fn p(s: &str) -> ApiPath {
        ApiPath::parse(s).unwrap()
    }
    fn none() -> Map<String, Value> {
        Map::new()
    }
    fn caps(c: &[Capability]) -> Capabilities {
        Capabilities::of(c)
    }
    const RW: Mode = Mode {
        read_only: false,
        exec_enabled: false,
        admin_enabled: false,
    };
    const RO: Mode = Mode {
        read_only: true,
        exec_enabled: false,
        admin_enabled: false,
    };
    const ALL: Mode = Mode {
        read_only: false,
        exec_enabled: true,
        admin_enabled: true,
    };
    const RUN: CallMode = CallMode::Run {
        confirmed: false,
        bound: None,
    };
    const CONFIRMED: CallMode = CallMode::Run {
        confirmed: true,
        bound: None,
    };

    fn refusal(g: &Gate, m: Method, path: &str, params: Value) -> Option<Refusal> {
        let params = params.as_object().cloned().unwrap_or_default();
        g.check(m, p(path), params).err().map(|v| v.refusal)
    }
    fn sent(g: &Gate, m: Method, path: &str) -> bool {
        matches!(g.check(m, p(path), none()), Ok(Verdict::Send(_)))
    }

    #[test]
    fn read_only_mode_refuses_every_non_get_and_all_administration() {
        for tool in [
            caps(&[]),
            caps(&[Write]),
            caps(&[Destructive]),
            caps(&[Exec]),
            caps(&[Admin, Destructive]),
        ] {
            let g = Gate::new(RO, tool, CONFIRMED);
            assert!(sent(&g, Method::Get, "/cluster/resources"));
            assert_eq!(
                refusal(&g, Method::Post, "/nodes/n/qemu/100/status/start", json!({})),
                Some(Refusal::ReadOnly),
                "{tool}"
            );
            let g = Gate::new(RO, tool, CONFIRMED);
            assert_eq!(
                refusal(&g, Method::Post, "/nodes/n/qemu/1/agent/ping", json!({})),
                Some(Refusal::ReadOnly)
            );
            let g = Gate::new(RO, tool, CONFIRMED);
            assert_eq!(
                refusal(&g, Method::Get, "/nodes/n/scan/nfs", json!({"server": "192.0.2.1"})),
                Some(Refusal::ReadOnly)
            );
        }
    }

    #[test]
    fn tool_capabilities_bound_requests() {
        let g = Gate::new(RW, caps(&[]), CONFIRMED);
        assert!(matches!(
            refusal(&g, Method::Post, "/nodes/n/qemu/100/status/stop", json!({})),
            Some(Refusal::Lacks { .. })
        ));
        let g = Gate::new(RW, caps(&[Write]), CONFIRMED);
        assert!(matches!(
            refusal(&g, Method::Delete, "/nodes/n/qemu/100", json!({})),
            Some(Refusal::Lacks { .. })
        ));
        let g = Gate::new(ALL, caps(&[Destructive]), CONFIRMED);
        let r = refusal(&g, Method::Post, "/nodes/n/qemu/100/agent/exec", json!({}));
        assert!(matches!(r, Some(Refusal::Lacks { .. })));
        let text = r.map(|r| r.to_string()).unwrap_or_default();
        assert!(text.contains(r#"["destructive", "exec"]"#), "{text}");
        // A composite tool: write and exec.
        let g = Gate::new(ALL, caps(&[Write, Exec]), RUN);
        assert!(sent(&g, Method::Post, "/nodes/n/qemu/100/snapshot"));
        assert!(sent(&g, Method::Post, "/nodes/n/qemu/100/agent/exec"));
    }

    #[test]
    fn exec_and_admin_need_their_switches() {
        let g = Gate::new(RW, caps(&[Exec]), RUN);
        assert_eq!(
            refusal(&g, Method::Post, "/nodes/n/qemu/100/agent/exec", json!({})),
            Some(Refusal::ExecDisabled)
        );
        let g = Gate::new(RW, caps(&[Admin, Destructive]), CONFIRMED);
        assert_eq!(
            refusal(&g, Method::Post, "/nodes/n/services/pveproxy/restart", json!({})),
            Some(Refusal::AdminDisabled)
        );
        let g = Gate::new(ALL, caps(&[Admin]), RUN);
        assert!(sent(&g, Method::Post, "/nodes/n/services/pveproxy/start"));
        assert_eq!(
            refusal(&g, Method::Post, "/nodes/n/services/pveproxy/stop", json!({})),
            Some(Refusal::Lacks {
                template: "/nodes/{node}/services/{service}/stop",
                tool: caps(&[Admin]),
                needs: caps(&[Admin, Destructive]),
            })
        );
        let g = Gate::new(ALL, caps(&[Admin, Destructive]), RUN);
        assert_eq!(
            refusal(&g, Method::Post, "/nodes/n/services/pveproxy/stop", json!({})),
            Some(Refusal::NotConfirmed)
        );
    }

    #[test]
    fn destructive_needs_confirm_and_plans_without_it() {
        let g = Gate::new(RW, caps(&[Destructive]), RUN);
        assert_eq!(
            refusal(&g, Method::Delete, "/nodes/n/qemu/100", json!({})),
            Some(Refusal::NotConfirmed)
        );
        let g = Gate::new(RW, caps(&[Destructive]), CallMode::Plan);
        assert!(sent(&g, Method::Get, "/nodes/n/qemu/100/config"));
        let params = json!({"purge": 1}).as_object().cloned().unwrap_or_default();
        assert!(matches!(
            g.check(Method::Delete, p("/nodes/n/qemu/100"), params.clone()),
            Ok(Verdict::Record(_))
        ));
        assert!(matches!(
            g.check(Method::Post, p("/nodes/n/qemu/100/status/stop"), none()),
            Ok(Verdict::Record(_))
        ));
        let planned = g.planned();
        assert_eq!(planned.len(), 2);
        assert_eq!(planned[0].path, "/nodes/n/qemu/100");
        assert_eq!(planned[0].params, params);
        assert_eq!(planned[0].needs, caps(&[Destructive]));
        let g = Gate::new(RW, caps(&[Destructive]), CONFIRMED);
        assert!(sent(&g, Method::Delete, "/nodes/n/qemu/100"));
    }

    #[test]
    fn where_the_server_confirms_exec_an_unconfirmed_command_is_refused_and_a_plan_binds_it() {
        use crate::confirm::BoundRequest;
        let exec = "/nodes/n/qemu/100/agent/exec";
        let cmd = json!({"command": ["/bin/sh", "-c", "ls"]});
        let g = Gate::new(ALL, caps(&[Exec]), RUN).approving(caps(&[Exec]));
        assert_eq!(
            refusal(&g, Method::Post, exec, cmd.clone()),
            Some(Refusal::NotConfirmed)
        );
        // Without the setting, exec needs no confirmation (the reference behaviour).
        let g = Gate::new(ALL, caps(&[Exec]), RUN);
        assert_eq!(refusal(&g, Method::Post, exec, cmd.clone()), None);
        let plan = BoundPlan {
            binds_writes: false,
            requests: vec![BoundRequest {
                method: Method::Post,
                path: exec.into(),
                params: cmd.as_object().cloned().unwrap_or_default(),
            }],
            digests: Default::default(),
            human: true,
            id: "t".into(),
            expires: 0,
        };
        let call = CallMode::Run {
            confirmed: true,
            bound: Some(Arc::new(plan)),
        };
        let g = Gate::new(ALL, caps(&[Exec]), call.clone()).approving(caps(&[Exec]));
        assert_eq!(refusal(&g, Method::Post, exec, cmd.clone()), None);
        // Its output may be read, whatever pid the agent gave.
        assert_eq!(
            refusal(
                &g,
                Method::Get,
                "/nodes/n/qemu/100/agent/exec-status",
                json!({"pid": 77})
            ),
            None
        );
        // Another command, or a file read, was not approved.
        assert!(matches!(
            refusal(&g, Method::Post, exec, json!({"command": ["rm", "-rf", "/"]})),
            Some(Refusal::NotInPlan { .. })
        ));
        let g = Gate::new(ALL, caps(&[Exec]), call.clone()).approving(caps(&[Exec]));
        assert!(matches!(
            refusal(
                &g,
                Method::Get,
                "/nodes/n/qemu/100/agent/file-read",
                json!({"file": "/etc/shadow"})
            ),
            Some(Refusal::NotInPlan { .. })
        ));
        // Output of a command on another guest neither.
        let g = Gate::new(ALL, caps(&[Exec]), call).approving(caps(&[Exec]));
        assert!(matches!(
            refusal(
                &g,
                Method::Get,
                "/nodes/n/qemu/101/agent/exec-status",
                json!({"pid": 1})
            ),
            Some(Refusal::NotInPlan { .. })
        ));
    }

    #[test]
    fn a_bound_plan_allows_only_its_own_destructive_requests() {
        use crate::confirm::BoundRequest;
        let plan = BoundPlan {
            binds_writes: false,
            requests: vec![BoundRequest {
                method: Method::Delete,
                path: "/nodes/n/qemu/100/snapshot/old".into(),
                params: Map::new(),
            }],
            digests: Default::default(),
            human: false,
            id: "t".into(),
            expires: 0,
        };
        let call = CallMode::Run {
            confirmed: true,
            bound: Some(Arc::new(plan)),
        };
        let g = Gate::new(RW, caps(&[Destructive]), call.clone());
        assert!(sent(&g, Method::Delete, "/nodes/n/qemu/100/snapshot/old"));
        assert!(
            sent(&g, Method::Post, "/nodes/n/qemu/100/status/stop"),
            "writes are not bound"
        );
        assert_eq!(
            refusal(&g, Method::Delete, "/nodes/n/qemu/101", json!({"purge": 1})),
            Some(Refusal::NotInPlan { planned: 1 })
        );
        let g = Gate::new(RW, caps(&[Destructive]), call);
        assert_eq!(
            refusal(
                &g,
                Method::Delete,
                "/nodes/n/qemu/100/snapshot/old",
                json!({"force": 1})
            ),
            Some(Refusal::NotInPlan { planned: 1 }),
            "the same path with other parameters is another request"
        );
    }

    #[test]
    fn a_refusal_poisons_the_call() {
        let g = Gate::new(RW, caps(&[]), RUN);
        assert!(refusal(&g, Method::Post, "/nodes/n/qemu/100/status/stop", json!({})).is_some());
        let again = g.check(Method::Get, p("/cluster/resources"), none());
        assert!(matches!(again, Err(Violation { ref path, .. }) if path == "/nodes/n/qemu/100/status/stop"));
        assert!(g.violation().is_some());
    }

    #[test]
    fn forbidden_and_unknown_whatever_the_class() {
        let everything = caps(&[Write, Destructive, Exec, Admin]);
        let g = Gate::new(ALL, everything, CONFIRMED);
        assert!(matches!(
            refusal(&g, Method::Post, "/nodes/n/execute", json!({})),
            Some(Refusal::Forbidden { .. })
        ));
        let g = Gate::new(ALL, everything, CONFIRMED);
        assert_eq!(
            refusal(&g, Method::Get, "/not/an/endpoint", json!({})),
            Some(Refusal::Unknown)
        );
    }
}
