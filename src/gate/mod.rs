//! The gate: every request a script makes passes here before it can reach the HTTP client.
//!
//! It knows what the script cannot change: the server [`Mode`], the tool's declared
//! [`Class`] and whether this invocation carries `confirm=true`. Once a request is refused,
//! the gate stays refused for the rest of the call, and the call fails even if the script
//! caught the error.

pub mod path;
pub mod policy;

use std::sync::Mutex;

use serde::Serialize;
use serde_json::{Map, Value};
use thiserror::Error;

use crate::config::Mode;
pub use path::{ApiPath, PathError};
pub use policy::{Class, Classification, classify};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Method {
    Get,
    Post,
    Put,
    Delete,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
        }
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a request was refused.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum Refusal {
    #[error("this endpoint is never allowed from a tool: {0}")]
    Forbidden(&'static str),
    #[error("the endpoint is not in the core's policy table, so it is refused")]
    Unknown,
    #[error("the server is in read-only mode (PVE_MCP_READ_ONLY=true), which refuses every non-GET request")]
    ReadOnly,
    #[error("guest command execution is disabled; set PVE_MCP_ENABLE_EXEC=true to allow exec tools")]
    ExecDisabled,
    #[error("the tool is declared '{tool}' and may not make a '{request}' request")]
    ClassTooLow { tool: Class, request: Class },
    #[error("this is a destructive request and the call did not carry confirm=true")]
    NotConfirmed,
    #[error("{0}")]
    BadPath(PathError),
}

/// A refused request, as the caller sees it.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[error("{method} {path} refused: {refusal}")]
pub struct Violation {
    pub method: Method,
    pub path: String,
    pub refusal: Refusal,
}

/// What to do with an allowed request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Send(Class),
    /// Plan mode: recorded for the answer, not sent.
    Record(Class),
}

/// A request recorded in plan mode.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PlannedRequest {
    pub method: Method,
    pub path: String,
    pub params: Map<String, Value>,
    pub class: Class,
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
    tool: Class,
    confirmed: bool,
    plan: bool,
    state: Mutex<State>,
}

impl Gate {
    /// `plan`: record writes instead of sending them (a destructive tool called without confirm).
    pub fn new(mode: Mode, tool: Class, confirmed: bool, plan: bool) -> Gate {
        Gate {
            mode,
            tool,
            confirmed,
            plan,
            state: Mutex::new(State::default()),
        }
    }

    pub fn is_plan(&self) -> bool {
        self.plan
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A poisoned lock only means another thread panicked mid-update; the data is still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Decide about one request. A refusal is remembered: every later request is refused too.
    pub fn check(&self, method: Method, path: &ApiPath, params: &Map<String, Value>) -> Result<Verdict, Violation> {
        let mut state = self.state();
        if let Some(v) = &state.violation {
            return Err(v.clone());
        }
        match self.decide(method, path, params) {
            Ok(Verdict::Record(class)) => {
                state.planned.push(PlannedRequest {
                    method,
                    path: path.to_string(),
                    params: params.clone(),
                    class,
                });
                Ok(Verdict::Record(class))
            }
            Ok(v) => Ok(v),
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

    fn decide(&self, method: Method, path: &ApiPath, params: &Map<String, Value>) -> Result<Verdict, Refusal> {
        let class = match classify(method, &path.routed(), params) {
            Classification::Class(c) => c,
            Classification::Forbidden(why) => return Err(Refusal::Forbidden(why)),
            Classification::Unknown => return Err(Refusal::Unknown),
        };
        if method != Method::Get && self.mode.read_only {
            return Err(Refusal::ReadOnly);
        }
        if class == Class::Exec && !self.mode.exec_enabled {
            return Err(Refusal::ExecDisabled);
        }
        if !self.tool.permits(class) {
            return Err(Refusal::ClassTooLow {
                tool: self.tool,
                request: class,
            });
        }
        if self.plan && matches!(class, Class::Write | Class::Destructive) {
            return Ok(Verdict::Record(class));
        }
        if class == Class::Destructive && !self.confirmed {
            return Err(Refusal::NotConfirmed);
        }
        Ok(Verdict::Send(class))
    }

    /// Record a path that failed the hygiene rules; the call is refused from now on.
    pub fn refuse_path(&self, method: Method, raw: String, err: PathError) -> Violation {
        let mut state = self.state();
        let v = Violation {
            method,
            path: raw,
            refusal: Refusal::BadPath(err),
        };
        state.violation.get_or_insert(v).clone()
    }

    /// The refusal that ended this call, if any.
    pub fn violation(&self) -> Option<Violation> {
        self.state().violation.clone()
    }

    pub fn planned(&self) -> Vec<PlannedRequest> {
        self.state().planned.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn p(s: &str) -> ApiPath {
        ApiPath::parse(s).unwrap()
    }
    fn none() -> Map<String, Value> {
        Map::new()
    }
    const RW: Mode = Mode {
        read_only: false,
        exec_enabled: false,
    };
    const RO: Mode = Mode {
        read_only: true,
        exec_enabled: false,
    };
    const EXEC: Mode = Mode {
        read_only: false,
        exec_enabled: true,
    };

    #[test]
    fn read_only_mode_refuses_every_non_get() {
        for tool in [Class::Read, Class::Write, Class::Destructive, Class::Exec] {
            let g = Gate::new(RO, tool, true, false);
            assert_eq!(
                g.check(Method::Get, &p("/cluster/resources"), &none()),
                Ok(Verdict::Send(Class::Read))
            );
            let err = g
                .check(Method::Post, &p("/nodes/n/qemu/100/status/start"), &none())
                .unwrap_err();
            assert_eq!(err.refusal, Refusal::ReadOnly, "{tool}");
            // Even a read-class POST is refused in read-only mode.
            let g = Gate::new(RO, tool, true, false);
            assert_eq!(
                g.check(Method::Post, &p("/nodes/n/qemu/1/agent/ping"), &none())
                    .unwrap_err()
                    .refusal,
                Refusal::ReadOnly
            );
        }
    }

    #[test]
    fn tool_class_bounds_requests() {
        let g = Gate::new(RW, Class::Read, true, false);
        let err = g
            .check(Method::Post, &p("/nodes/n/qemu/100/status/stop"), &none())
            .unwrap_err();
        assert_eq!(
            err.refusal,
            Refusal::ClassTooLow {
                tool: Class::Read,
                request: Class::Write
            }
        );
        let g = Gate::new(RW, Class::Write, true, false);
        let err = g.check(Method::Delete, &p("/nodes/n/qemu/100"), &none()).unwrap_err();
        assert_eq!(
            err.refusal,
            Refusal::ClassTooLow {
                tool: Class::Write,
                request: Class::Destructive
            }
        );
        let g = Gate::new(EXEC, Class::Destructive, true, false);
        let err = g
            .check(Method::Post, &p("/nodes/n/qemu/100/agent/exec"), &none())
            .unwrap_err();
        assert_eq!(
            err.refusal,
            Refusal::ClassTooLow {
                tool: Class::Destructive,
                request: Class::Exec
            }
        );
    }

    #[test]
    fn exec_needs_the_switch() {
        let g = Gate::new(RW, Class::Exec, false, false);
        let err = g
            .check(Method::Post, &p("/nodes/n/qemu/100/agent/exec"), &none())
            .unwrap_err();
        assert_eq!(err.refusal, Refusal::ExecDisabled);
        let g = Gate::new(EXEC, Class::Exec, false, false);
        assert_eq!(
            g.check(Method::Post, &p("/nodes/n/qemu/100/agent/exec"), &none()),
            Ok(Verdict::Send(Class::Exec))
        );
        assert!(
            g.check(Method::Post, &p("/nodes/n/qemu/100/status/stop"), &none())
                .is_err()
        );
    }

    #[test]
    fn destructive_needs_confirm_and_plans_without_it() {
        let g = Gate::new(RW, Class::Destructive, false, false);
        assert_eq!(
            g.check(Method::Delete, &p("/nodes/n/qemu/100"), &none())
                .unwrap_err()
                .refusal,
            Refusal::NotConfirmed
        );
        let g = Gate::new(RW, Class::Destructive, false, true);
        assert_eq!(
            g.check(Method::Get, &p("/nodes/n/qemu/100/config"), &none()),
            Ok(Verdict::Send(Class::Read))
        );
        let params = json!({"purge": 1}).as_object().unwrap().clone();
        assert_eq!(
            g.check(Method::Delete, &p("/nodes/n/qemu/100"), &params),
            Ok(Verdict::Record(Class::Destructive))
        );
        assert_eq!(
            g.check(Method::Post, &p("/nodes/n/qemu/100/status/stop"), &none()),
            Ok(Verdict::Record(Class::Write))
        );
        let planned = g.planned();
        assert_eq!(planned.len(), 2);
        assert_eq!(planned[0].path, "/nodes/n/qemu/100");
        assert_eq!(planned[0].params, params);
        let g = Gate::new(RW, Class::Destructive, true, false);
        assert_eq!(
            g.check(Method::Delete, &p("/nodes/n/qemu/100"), &none()),
            Ok(Verdict::Send(Class::Destructive))
        );
    }

    #[test]
    fn a_refusal_poisons_the_call() {
        let g = Gate::new(RW, Class::Read, false, false);
        assert!(
            g.check(Method::Post, &p("/nodes/n/qemu/100/status/stop"), &none())
                .is_err()
        );
        let again = g.check(Method::Get, &p("/cluster/resources"), &none()).unwrap_err();
        assert_eq!(again.path, "/nodes/n/qemu/100/status/stop");
        assert!(g.violation().is_some());
    }

    #[test]
    fn forbidden_and_unknown_whatever_the_class() {
        let g = Gate::new(EXEC, Class::Exec, true, false);
        assert!(matches!(
            g.check(Method::Post, &p("/nodes/n/execute"), &none())
                .unwrap_err()
                .refusal,
            Refusal::Forbidden(_)
        ));
        let g = Gate::new(RW, Class::Destructive, true, false);
        assert_eq!(
            g.check(Method::Get, &p("/not/an/endpoint"), &none())
                .unwrap_err()
                .refusal,
            Refusal::Unknown
        );
    }
}
