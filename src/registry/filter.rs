//! `PVE_MCP_TOOLS` (allow) and `PVE_MCP_DISABLE_TOOLS` (deny): which of the tools the mode
//! lists are served. Comma-separated names or globs (`*` any run of characters, `?` one).
//! They narrow the mode's listing and never widen it: a tool the mode hides (read-only,
//! exec or admin off) stays hidden whatever the lists say.

use thiserror::Error;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ToolFilter {
    /// Empty: every tool. Otherwise only tools matching one of these.
    allow: Vec<String>,
    /// Tools matching one of these are never served.
    deny: Vec<String>,
}

#[derive(Debug, Error, PartialEq, Eq)]
#[error("'{0}' is not a tool name or glob (letters, digits, '_', '-', '*' and '?')")]
pub(crate) struct PatternError(pub String);

impl ToolFilter {
    /// Parse the two lists; `None` or an empty list means "not set".
    pub(crate) fn parse(allow: Option<&str>, deny: Option<&str>) -> Result<ToolFilter, PatternError> {
        Ok(ToolFilter {
            allow: patterns(allow)?,
            deny: patterns(deny)?,
        })
    }

    /// Is a tool of this name served (as far as the lists go)?
    pub(crate) fn allows(&self, name: &str) -> bool {
        let allowed = self.allow.is_empty() || self.allow.iter().any(|p| glob(p.as_bytes(), name.as_bytes()));
        allowed && !self.deny.iter().any(|p| glob(p.as_bytes(), name.as_bytes()))
    }

    #[cfg(test)]
    fn is_set(&self) -> bool {
        !self.allow.is_empty() || !self.deny.is_empty()
    }
}

fn patterns(raw: Option<&str>) -> Result<Vec<String>, PatternError> {
    let Some(raw) = raw else { return Ok(Vec::new()) };
    raw.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            let ok = p.len() <= 128
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '*' | '?'));
            if ok {
                Ok(p.to_string())
            } else {
                Err(PatternError(p.chars().take(40).collect()))
            }
        })
        .collect()
}

/// `*` matches any run (also empty), `?` one character; everything else itself.
fn glob(p: &[u8], s: &[u8]) -> bool {
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() && (p[pi] == b'?' || p[pi] == s[si]) {
            pi += 1;
            si += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, si));
            pi += 1;
        } else if let Some((sp, ss)) = star {
            pi = sp + 1;
            si = ss + 1;
            star = Some((sp, ss + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        let g = |p: &str, s: &str| glob(p.as_bytes(), s.as_bytes());
        assert!(g("pve_list_*", "pve_list_vms"));
        assert!(g("*", "anything"));
        assert!(g("pve_vm_?tatus", "pve_vm_status"));
        assert!(g("*snapshot*", "pve_snapshot_delete"));
        assert!(!g("pve_list_*", "pve_vm_status"));
        assert!(!g("pve_vm", "pve_vm_status"));
        assert!(g("pve_*_*e", "pve_vm_delete"));
    }

    #[test]
    fn allow_then_deny() {
        let f = ToolFilter::parse(Some("pve_list_*, pve_vm_status"), Some("pve_list_tasks")).unwrap();
        assert!(f.allows("pve_list_vms") && f.allows("pve_vm_status"));
        assert!(!f.allows("pve_list_tasks") && !f.allows("pve_vm_delete"));
        let f = ToolFilter::parse(None, Some("*delete*,")).unwrap();
        assert!(f.allows("pve_vm_status") && !f.allows("pve_vm_delete"));
        assert!(!ToolFilter::parse(Some(""), Some(" , ")).unwrap().is_set());
        assert_eq!(
            ToolFilter::parse(Some("pve_vm/../x"), None),
            Err(PatternError("pve_vm/../x".into()))
        );
    }
}
