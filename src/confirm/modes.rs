//! How a call that needs approval gets it: `PVE_MCP_CONFIRM` for destructive requests (and
//! the writes of a `confirm: true` tool), `PVE_MCP_CONFIRM_EXEC` for guest commands and
//! `PVE_MCP_CONFIRM_ADMIN` for host and cluster administration.
//!
//! Each is `off`, `flag`, `plan`, `human` or `auto`; `auto` is resolved per client: `human`
//! when the client declared elicitation, otherwise `flag` for destructive requests (the
//! reference behaviour) and `off` for exec and admin (enabling them is the consent, as in the
//! reference). Destructive requests cannot be `off`.

use crate::gate::{Capabilities, Capability};

/// One setting as configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConfirmMode {
    /// No confirmation (exec and admin only).
    Off,
    /// `confirm=true` suffices; a `confirm_token`, when given, is enforced.
    Flag,
    /// `confirm=true` also needs the `confirm_token` of a plan made earlier.
    Plan,
    /// A person approves each call through MCP elicitation.
    Human,
    /// `human` for clients that declared elicitation, otherwise the class's fallback.
    Auto,
}

impl ConfirmMode {
    pub(crate) fn parse(s: &str) -> Option<ConfirmMode> {
        match s.trim().to_ascii_lowercase().as_str() {
            "off" => Some(ConfirmMode::Off),
            "flag" => Some(ConfirmMode::Flag),
            "plan" => Some(ConfirmMode::Plan),
            "human" => Some(ConfirmMode::Human),
            "auto" => Some(ConfirmMode::Auto),
            _ => None,
        }
    }
}

/// A mode resolved for one client, weakest first: where a tool's capabilities have different
/// modes, the strongest applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Asked {
    Flag,
    Plan,
    Human,
}

/// The three settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Confirmations {
    pub destructive: ConfirmMode,
    pub exec: ConfirmMode,
    pub admin: ConfirmMode,
}

impl Default for Confirmations {
    fn default() -> Confirmations {
        Confirmations {
            destructive: ConfirmMode::Auto,
            exec: ConfirmMode::Auto,
            admin: ConfirmMode::Auto,
        }
    }
}

fn resolve(mode: ConfirmMode, elicitation: bool, fallback: Option<Asked>) -> Option<Asked> {
    match mode {
        ConfirmMode::Off => None,
        ConfirmMode::Flag => Some(Asked::Flag),
        ConfirmMode::Plan => Some(Asked::Plan),
        ConfirmMode::Human => Some(Asked::Human),
        ConfirmMode::Auto if elicitation => Some(Asked::Human),
        ConfirmMode::Auto => fallback,
    }
}

impl Confirmations {
    /// The settings as they apply to a client that did or did not declare elicitation.
    pub(crate) fn for_client(&self, elicitation: bool) -> ClientApproval {
        ClientApproval {
            destructive: resolve(self.destructive, elicitation, Some(Asked::Flag)).unwrap_or(Asked::Flag),
            exec: resolve(self.exec, elicitation, None),
            admin: resolve(self.admin, elicitation, None),
            elicitation,
        }
    }
}

/// The settings resolved for one client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ClientApproval {
    pub destructive: Asked,
    pub exec: Option<Asked>,
    pub admin: Option<Asked>,
    /// The client declared elicitation, so a person can be asked.
    pub elicitation: bool,
}

/// What one tool's calls need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ToolApproval {
    /// Requests needing any of these wait for the approval (the gate's set).
    pub caps: Capabilities,
    /// Every write of the tool needs it too (`confirm: true` in the manifest).
    pub writes: bool,
    /// How it is given.
    pub asked: Asked,
}

impl ClientApproval {
    /// The capabilities whose requests need approval for this client: destructive always,
    /// exec and admin unless they are `off`.
    pub(crate) fn caps(&self) -> Capabilities {
        let mut caps = Capabilities::of(&[Capability::Destructive]);
        if self.exec.is_some() {
            caps = caps.with(Capability::Exec);
        }
        if self.admin.is_some() {
            caps = caps.with(Capability::Admin);
        }
        caps
    }

    /// How a tool declaring `class` is approved, or `None` when its calls need no approval.
    pub(crate) fn for_tool(&self, class: Capabilities, confirm_writes: bool) -> Option<ToolApproval> {
        let mut asked = None;
        if class.has(Capability::Destructive) || confirm_writes {
            asked = Some(self.destructive);
        }
        for (cap, mode) in [(Capability::Exec, self.exec), (Capability::Admin, self.admin)] {
            if class.has(cap) && mode.is_some() {
                asked = asked.max(mode);
            }
        }
        asked.map(|asked| ToolApproval {
            caps: self.caps(),
            writes: confirm_writes,
            asked,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::Capability::*;
    use super::*;

    fn caps(c: &[Capability]) -> Capabilities {
        Capabilities::of(c)
    }

    #[test]
    fn modes_parse() {
        assert_eq!(ConfirmMode::parse("Plan"), Some(ConfirmMode::Plan));
        assert_eq!(ConfirmMode::parse(" human "), Some(ConfirmMode::Human));
        assert_eq!(ConfirmMode::parse("auto"), Some(ConfirmMode::Auto));
        assert_eq!(ConfirmMode::parse("yes"), None);
    }

    #[test]
    fn auto_asks_a_person_only_when_the_client_can_be_asked() {
        let c = Confirmations::default();
        let old = c.for_client(false);
        assert_eq!(old.destructive, Asked::Flag);
        assert_eq!(old.for_tool(caps(&[Exec]), false), None, "exec as the reference");
        assert_eq!(old.for_tool(caps(&[Write]), false), None);
        let new = c.for_client(true);
        assert_eq!(
            new.for_tool(caps(&[Destructive]), false).map(|t| t.asked),
            Some(Asked::Human)
        );
        assert_eq!(new.for_tool(caps(&[Exec]), false).map(|t| t.asked), Some(Asked::Human));
        assert!(new.caps().has(Exec) && new.caps().has(Admin));
        assert!(!old.caps().has(Exec));
    }

    #[test]
    fn the_strongest_mode_of_a_tools_capabilities_applies() {
        let c = Confirmations {
            destructive: ConfirmMode::Flag,
            exec: ConfirmMode::Human,
            admin: ConfirmMode::Off,
        }
        .for_client(true);
        let t = c.for_tool(caps(&[Destructive, Exec]), false).unwrap();
        assert_eq!(t.asked, Asked::Human);
        assert_eq!(
            c.for_tool(caps(&[Destructive, Admin]), false).unwrap().asked,
            Asked::Flag
        );
        assert_eq!(c.for_tool(caps(&[Admin]), false), None);
        assert_eq!(c.for_tool(caps(&[Write]), true).unwrap().asked, Asked::Flag);
    }
}
