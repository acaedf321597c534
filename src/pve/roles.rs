//! PVE's built-in roles and their privileges, built the way pve-access-control builds them:
//! privileges are grouped per category into root/admin/user/audit, and the roles
//! `PVE<Cat>Admin`, `PVE<Cat>User`, `PVEAdmin`, `PVEAuditor` and `PVETemplateUser` are
//! derived from those groups. PVE 9 adds the `VM.GuestAgent.*` privileges (guest exec needs
//! `VM.GuestAgent.Unrestricted` there; PVE 8 needs `VM.Monitor`).

use std::collections::{BTreeMap, BTreeSet};

/// The PVE major version whose privilege set applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PveMajor {
    V8,
    V9,
}

struct Category {
    name: &'static str,
    root: &'static [&'static str],
    admin: &'static [&'static str],
    user: &'static [&'static str],
    audit: &'static [&'static str],
}

const VM_ADMIN: &[&str] = &[
    "VM.Config.Disk",
    "VM.Config.CPU",
    "VM.Config.Memory",
    "VM.Config.Network",
    "VM.Config.HWType",
    "VM.Config.Options",
    "VM.Allocate",
    "VM.Clone",
    "VM.Migrate",
    "VM.Monitor",
    "VM.Snapshot",
    "VM.Snapshot.Rollback",
];
const VM_GUEST_AGENT: &[&str] = &[
    "VM.GuestAgent.Audit",
    "VM.GuestAgent.FileRead",
    "VM.GuestAgent.FileWrite",
    "VM.GuestAgent.FileSystemMgmt",
    "VM.GuestAgent.Unrestricted",
];

const CATEGORIES: &[Category] = &[
    Category {
        name: "VM",
        root: &[],
        admin: VM_ADMIN,
        user: &[
            "VM.Config.CDROM",
            "VM.Config.Cloudinit",
            "VM.Console",
            "VM.Backup",
            "VM.PowerMgmt",
        ],
        audit: &["VM.Audit"],
    },
    Category {
        name: "Sys",
        root: &["Sys.PowerMgmt", "Sys.Modify", "Sys.Incoming"],
        admin: &["Sys.Console", "Sys.Syslog"],
        user: &[],
        audit: &["Sys.Audit"],
    },
    Category {
        name: "Datastore",
        root: &[],
        admin: &["Datastore.Allocate", "Datastore.AllocateTemplate"],
        user: &["Datastore.AllocateSpace"],
        audit: &["Datastore.Audit"],
    },
    Category {
        name: "SDN",
        root: &[],
        admin: &["SDN.Allocate", "SDN.Audit"],
        user: &["SDN.Use"],
        audit: &["SDN.Audit"],
    },
    Category {
        name: "User",
        root: &["Realm.Allocate"],
        admin: &["User.Modify", "Group.Allocate", "Realm.AllocateUser"],
        user: &[],
        audit: &[],
    },
    Category {
        name: "Pool",
        root: &[],
        admin: &["Pool.Allocate"],
        user: &["Pool.Audit"],
        audit: &["Pool.Audit"],
    },
    Category {
        name: "Mapping",
        root: &[],
        admin: &["Mapping.Modify"],
        user: &["Mapping.Use"],
        audit: &["Mapping.Audit"],
    },
];

/// Role name → privileges, for one PVE major version.
pub fn builtin_roles(major: PveMajor) -> BTreeMap<String, BTreeSet<&'static str>> {
    let mut roles: BTreeMap<String, BTreeSet<&'static str>> = BTreeMap::new();
    let mut all: BTreeSet<&'static str> = BTreeSet::from(["Permissions.Modify"]);
    for cat in CATEGORIES {
        let extra: &[&str] = if cat.name == "VM" && major == PveMajor::V9 {
            VM_GUEST_AGENT
        } else {
            &[]
        };
        let admin: Vec<&'static str> = cat.admin.iter().chain(extra).copied().collect();
        all.extend(cat.root.iter().chain(&admin).chain(cat.user).chain(cat.audit));
        for p in admin.iter().chain(cat.user).chain(cat.audit) {
            roles.entry(format!("PVE{}Admin", cat.name)).or_default().insert(p);
            roles.entry("PVEAdmin".into()).or_default().insert(p);
        }
        if !cat.user.is_empty() {
            for p in cat.user.iter().chain(cat.audit) {
                roles.entry(format!("PVE{}User", cat.name)).or_default().insert(p);
            }
        }
        for p in cat.audit {
            roles.entry("PVEAuditor".into()).or_default().insert(p);
        }
    }
    if let Some(admin) = roles.get_mut("PVEAdmin") {
        admin.remove("Mapping.Modify");
    }
    roles.insert("PVETemplateUser".into(), BTreeSet::from(["VM.Clone", "VM.Audit"]));
    roles.insert("NoAccess".into(), BTreeSet::new());
    roles.insert("Administrator".into(), all);
    roles
}

/// The smallest built-in roles that grant `privilege` (excluding Administrator unless
/// nothing else does), smallest first.
pub fn roles_granting(privilege: &str, major: PveMajor) -> Vec<String> {
    let roles = builtin_roles(major);
    let mut granting: Vec<(&String, usize)> = roles
        .iter()
        .filter(|(name, privs)| privs.contains(privilege) && name.as_str() != "Administrator")
        .map(|(name, privs)| (name, privs.len()))
        .collect();
    granting.sort_by_key(|(name, len)| (*len, name.to_string()));
    let mut out: Vec<String> = granting.into_iter().map(|(n, _)| n.clone()).collect();
    if out.is_empty() && roles.get("Administrator").is_some_and(|p| p.contains(privilege)) {
        out.push("Administrator".into());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_well_known_roles() {
        let r = builtin_roles(PveMajor::V8);
        let set = |n: &str| r[n].iter().copied().collect::<Vec<_>>();
        assert_eq!(
            set("PVEAuditor"),
            vec![
                "Datastore.Audit",
                "Mapping.Audit",
                "Pool.Audit",
                "SDN.Audit",
                "Sys.Audit",
                "VM.Audit"
            ]
        );
        assert_eq!(
            set("PVEDatastoreUser"),
            vec!["Datastore.AllocateSpace", "Datastore.Audit"]
        );
        assert_eq!(
            set("PVEVMUser"),
            vec![
                "VM.Audit",
                "VM.Backup",
                "VM.Config.CDROM",
                "VM.Config.Cloudinit",
                "VM.Console",
                "VM.PowerMgmt"
            ]
        );
        assert!(r["PVEVMAdmin"].contains("VM.Snapshot.Rollback") && r["PVEVMAdmin"].contains("VM.PowerMgmt"));
        assert!(!r["PVEAdmin"].contains("Sys.PowerMgmt") && !r["PVEAdmin"].contains("Mapping.Modify"));
        assert!(r["Administrator"].contains("Sys.PowerMgmt") && r["Administrator"].contains("Permissions.Modify"));
        assert!(r["NoAccess"].is_empty());
        assert!(!r["PVEVMAdmin"].contains("VM.GuestAgent.Unrestricted"));
        assert!(builtin_roles(PveMajor::V9)["PVEVMAdmin"].contains("VM.GuestAgent.Unrestricted"));
    }

    #[test]
    fn which_role_grants() {
        assert_eq!(roles_granting("VM.PowerMgmt", PveMajor::V8)[0], "PVEVMUser");
        let audit = roles_granting("Datastore.Audit", PveMajor::V8);
        assert_eq!(audit[0], "PVEDatastoreUser", "least privilege first: {audit:?}");
        assert!(audit.contains(&"PVEAuditor".to_string()));
        assert_eq!(roles_granting("VM.Monitor", PveMajor::V8)[0], "PVEVMAdmin");
        assert_eq!(roles_granting("Sys.PowerMgmt", PveMajor::V8), vec!["Administrator"]);
        assert_eq!(
            roles_granting("VM.GuestAgent.Unrestricted", PveMajor::V9)[0],
            "PVEVMAdmin"
        );
        assert!(roles_granting("No.Such", PveMajor::V8).is_empty());
    }
}
