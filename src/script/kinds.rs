//! The error vocabulary, one enum from the binding to the host: every `kind` a script can
//! catch (`try { … } catch (e) { e.kind }`) and every `error` a host finds in a failed
//! call's `structuredContent`. Each variant's sentence is written where it is raised (the
//! binding's throw, a [`super::CallError`]'s `Display`); this enum names them, and
//! SCRIPTING.md's two tables under "Errors" list exactly these kinds (a test holds them to
//! it).

/// Who sees a kind: the script that may catch it, the host whose call failed, or both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// Thrown inside the script as a map with this `kind`; catchable.
    Script,
    /// The `error` of a failed call's result.
    Host,
    /// Both: thrown to the script, and the call's `error` when it is not caught.
    Both,
}

macro_rules! kinds {
    ($($(#[$doc:meta])* $variant:ident = $name:literal, $audience:ident;)*) => {
        /// A kind of failure, by the name scripts and hosts see.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorKind {
            $($(#[$doc])* $variant,)*
        }

        impl ErrorKind {
            /// Every kind, in the order SCRIPTING.md lists them.
            pub const ALL: &'static [ErrorKind] = &[$(ErrorKind::$variant,)*];

            /// The name scripts compare `e.kind` with and hosts read in `error`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(ErrorKind::$variant => $name,)*
                }
            }

            pub(crate) fn audience(self) -> Audience {
                match self {
                    $(ErrorKind::$variant => Audience::$audience,)*
                }
            }
        }
    };
}

kinds! {
    /// PVE answered with an error status.
    Pve = "pve", Script;
    /// PVE could not be reached (refused, TLS, DNS, `PVE_TIMEOUT`).
    Transport = "transport", Script;
    /// The answer is not PVE's JSON (a proxy's page, a cut body).
    BadResponse = "bad_response", Script;
    /// A parameter could not be encoded for PVE.
    InvalidParam = "invalid_param", Script;
    /// No such guest (`resolve_vmid`) or tool (`call_tool`).
    NotFound = "not_found", Script;
    /// `wait_task`: the task started, its status could not be read.
    TaskWait = "task_wait", Script;
    /// A finished task that failed (`lib/guest`'s `task_outcome`).
    TaskFailed = "task_failed", Script;
    /// `exec` in a container.
    Unsupported = "unsupported", Script;
    /// `exec` in a VM that is not running.
    NotRunning = "not_running", Script;
    /// `exec`: the guest agent is off or not answering.
    Agent = "agent", Script;
    /// `call_tool`: the callee failed.
    ToolFailed = "tool_failed", Script;
    /// A helper got a value of the wrong type (often a PVE answer of an unexpected shape).
    TypeMismatch = "type_mismatch", Script;
    /// The arguments do not fit the schema (the call's, or a `call_tool` callee's).
    InvalidArguments = "invalid_arguments", Both;
    /// PVE answered with something of a shape the script could not use.
    UnexpectedAnswer = "unexpected_answer", Both;
    /// What a script threw or tripped over; a `call_tool` of a tool that did not compile.
    ScriptError = "script_error", Both;
    /// A PVE error the script did not catch.
    PveError = "pve_error", Host;
    /// The gate refused a request; nothing after it was sent.
    Refused = "refused", Host;
    /// `PVE_MCP_SCRIPT_TIMEOUT` passed.
    Timeout = "timeout", Host;
    /// The host cancelled the call.
    Cancelled = "cancelled", Host;
    /// More requests than one call may make.
    TooManyRequests = "too_many_requests", Host;
    /// `PVE_MCP_SCRIPT_MEMORY` was exceeded.
    OutOfMemory = "out_of_memory", Host;
    /// `PVE_MCP_MAX_RESULT_BYTES` was exceeded.
    ResultTooLarge = "result_too_large", Host;
    /// The result does not match the declared output schema.
    BadOutput = "bad_output", Host;
    /// A confirmation that cannot be taken (token, mode, client).
    Confirmation = "confirmation", Host;
    /// A guest changed between the plan and its confirmation.
    StalePlan = "stale_plan", Host;
    /// The approval could not be written to the audit log.
    AuditLog = "audit_log", Host;
    /// A failure of the server itself.
    Internal = "internal", Host;
    /// Every call slot was taken (`PVE_MCP_MAX_CALLS`).
    Busy = "busy", Host;
    /// A person declined the plan.
    Declined = "declined", Host;
    /// A person cancelled the approval request.
    CancelledByUser = "cancelled_by_user", Host;
    /// No approval came back.
    NotApproved = "not_approved", Host;
    /// `pve-mcp test` only: `test::run` of a tool that does not exist or is not listed
    /// (a host gets an MCP protocol error instead).
    UnknownTool = "unknown_tool", Host;
}

impl ErrorKind {
    /// The kind of this name, if it is one.
    pub fn parse(name: &str) -> Option<ErrorKind> {
        ErrorKind::ALL.iter().copied().find(|k| k.as_str() == name)
    }

    /// Can a script catch it?
    pub fn caught_by_scripts(self) -> bool {
        matches!(self.audience(), Audience::Script | Audience::Both)
    }

    /// Can a host find it in a failed call?
    pub fn seen_by_hosts(self) -> bool {
        matches!(self.audience(), Audience::Host | Audience::Both)
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_parse_back() {
        let mut seen = std::collections::BTreeSet::new();
        for k in ErrorKind::ALL {
            assert!(seen.insert(k.as_str()), "{k} twice");
            assert_eq!(ErrorKind::parse(k.as_str()), Some(*k));
            assert!(k.as_str().chars().all(|c| c.is_ascii_lowercase() || c == '_'), "{k}");
        }
        assert_eq!(ErrorKind::parse("no_such_kind"), None);
    }
}
