//! API tokens and ACLs, with PVE's rules: a missing header is `401 No ticket`, a bad token
//! `401 Authentication failed!`, and a privilege is granted by the deepest ACL entry on the
//! path that applies (an entry on a parent applies to children only when it propagates).

use std::collections::{BTreeMap, BTreeSet};

use super::http::Reply;
use super::spec::{AclSpec, TokenSpec};
use crate::pve::roles::{PveMajor, builtin_roles};

pub(crate) struct Tokens {
    tokens: Vec<TokenSpec>,
    roles: BTreeMap<String, BTreeSet<&'static str>>,
}

/// The caller of one request.
#[derive(Debug, Clone)]
pub(crate) struct Identity {
    pub token_id: String,
    acl: Vec<AclSpec>,
}

impl Identity {
    /// The paths this caller has ACL entries on.
    pub(crate) fn acl_paths(&self) -> Vec<String> {
        let mut v: Vec<String> = self.acl.iter().map(|a| normalize(&a.path)).collect();
        v.sort();
        v.dedup();
        v
    }
}

impl Tokens {
    pub(crate) fn new(tokens: Vec<TokenSpec>, major: PveMajor) -> Tokens {
        Tokens {
            tokens,
            roles: builtin_roles(major),
        }
    }

    /// Check the `Authorization: PVEAPIToken=ID=SECRET` header (PVE also accepts a space
    /// after `PVEAPIToken`).
    pub(crate) fn authenticate(&self, header: Option<&str>) -> Result<Identity, Reply> {
        let Some(value) = header else {
            return Err(Reply::bare(401, "No ticket"));
        };
        let failed = || Reply::bare(401, "Authentication failed!");
        let rest = value
            .strip_prefix("PVEAPIToken=")
            .or_else(|| value.strip_prefix("PVEAPIToken "))
            .ok_or_else(|| Reply::bare(401, "No ticket"))?;
        let (id, secret) = rest.rsplit_once('=').ok_or_else(failed)?;
        let token = self
            .tokens
            .iter()
            .find(|t| t.id == id && t.secret == secret)
            .ok_or_else(failed)?;
        Ok(Identity {
            token_id: token.id.clone(),
            acl: token.acl.clone(),
        })
    }

    /// The privileges the caller holds on `path` (`/`, `/vms/100`, `/storage/local`, …).
    pub(crate) fn privileges(&self, who: &Identity, path: &str) -> BTreeSet<&'static str> {
        let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        let mut roles: Vec<&str> = Vec::new();
        // Walk from "/" down; at each level, entries that apply replace what came before.
        for depth in 0..=parts.len() {
            let here = format!("/{}", parts[..depth].join("/"));
            let last = depth == parts.len();
            let applying: Vec<&str> = who
                .acl
                .iter()
                .filter(|a| normalize(&a.path) == here && (last || a.propagate))
                .map(|a| a.role.as_str())
                .collect();
            if !applying.is_empty() {
                roles = applying;
            }
        }
        if roles.contains(&"NoAccess") {
            return BTreeSet::new();
        }
        roles
            .iter()
            .filter_map(|r| self.roles.get(*r))
            .flatten()
            .copied()
            .collect()
    }

    /// Does the caller hold any of `privs` on `path`?
    pub(crate) fn has_any(&self, who: &Identity, path: &str, privs: &[&str]) -> bool {
        let held = self.privileges(who, path);
        privs.iter().any(|p| held.contains(p))
    }

    /// `Ok` or PVE's 403 naming the path and the privileges.
    pub(crate) fn require(&self, who: &Identity, path: &str, privs: &[&str]) -> Result<(), Reply> {
        if self.has_any(who, path, privs) {
            Ok(())
        } else {
            Err(Reply::error(
                403,
                format!("Permission check failed ({path}, {})", privs.join("|")),
            ))
        }
    }
}

fn normalize(path: &str) -> String {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    format!("/{}", parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> Tokens {
        let t = |id: &str, acl: &[(&str, &str, bool)]| TokenSpec {
            id: id.into(),
            secret: "s".into(),
            acl: acl
                .iter()
                .map(|(p, r, prop)| AclSpec {
                    path: p.to_string(),
                    role: r.to_string(),
                    propagate: *prop,
                })
                .collect(),
        };
        Tokens::new(
            vec![
                t("a@pve!audit", &[("/", "PVEAuditor", true)]),
                t(
                    "o@pve!ops",
                    &[("/vms", "PVEVMUser", true), ("/vms/101", "NoAccess", true)],
                ),
                t("n@pve!flat", &[("/", "PVEVMAdmin", false)]),
            ],
            PveMajor::V8,
        )
    }

    #[test]
    fn authentication() {
        let t = tokens();
        assert_eq!(t.authenticate(None).unwrap_err().reason.as_deref(), Some("No ticket"));
        assert_eq!(
            t.authenticate(Some("PVEAPIToken=a@pve!audit=wrong"))
                .unwrap_err()
                .reason
                .as_deref(),
            Some("Authentication failed!")
        );
        assert_eq!(
            t.authenticate(Some("PVEAPIToken a@pve!audit=s")).unwrap().token_id,
            "a@pve!audit"
        );
    }

    #[test]
    fn acl_paths() {
        let t = tokens();
        let who = |h: &str| t.authenticate(Some(&format!("PVEAPIToken={h}=s"))).unwrap();
        let audit = who("a@pve!audit");
        assert!(t.has_any(&audit, "/vms/100", &["VM.Audit"]) && !t.has_any(&audit, "/vms/100", &["VM.PowerMgmt"]));
        let ops = who("o@pve!ops");
        assert!(t.has_any(&ops, "/vms/100", &["VM.PowerMgmt"]));
        assert!(!t.has_any(&ops, "/vms/101", &["VM.Audit"]), "a deeper NoAccess wins");
        assert!(!t.has_any(&ops, "/", &["Sys.Audit"]));
        let flat = who("n@pve!flat");
        assert!(
            t.has_any(&flat, "/", &["VM.Allocate"]) && !t.has_any(&flat, "/vms/100", &["VM.Allocate"]),
            "no propagation"
        );
        let err = t.require(&ops, "/vms/101", &["VM.PowerMgmt"]).unwrap_err();
        assert_eq!(err.status, 403);
        assert_eq!(
            err.reason.as_deref(),
            Some("Permission check failed (/vms/101, VM.PowerMgmt)")
        );
    }
}
