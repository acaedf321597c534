//! PVE's built-in roles and their privileges, exactly as pve-access-control builds them
//! (`PVE::AccessControl`'s `$privgroups` and `create_roles`): each category's privileges
//! are split into root/admin/user/audit groups, and `PVE<Cat>Admin` (admin+user+audit),
//! `PVE<Cat>User` (user+audit, when the category has user privileges), `PVEAdmin` (every
//! category's admin+user+audit, less `Mapping.Modify`), `PVEAuditor` (every audit group),
//! `PVETemplateUser`, `NoAccess` and `Administrator` (every privilege) are derived from
//! them.
//!
//! The groups are those of libpve-access-control 8.2.2 (PVE 8.x; `Sys.AccessNetwork`
//! since 8.1.2) and 9.1.1 (PVE 9.x), which added the `VM.GuestAgent.*` privileges (audit
//! in the audit group, file and file-system ones in the user group, `Unrestricted` in the
//! admin group) and `VM.Replicate`, and dropped `VM.Monitor`.

use std::collections::{BTreeMap, BTreeSet};

/// The PVE major version whose privilege set applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PveMajor {
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

/// `$privgroups` of libpve-access-control 8.2.2.
const GROUPS_8: &[Category] = &[
    Category {
        name: "VM",
        root: &[],
        admin: &[
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
        ],
        user: &[
            "VM.Config.CDROM",
            "VM.Config.Cloudinit",
            "VM.Console",
            "VM.Backup",
            "VM.PowerMgmt",
        ],
        audit: &["VM.Audit"],
    },
    SYS,
    DATASTORE,
    SDN,
    USER,
    POOL,
    MAPPING,
];

/// `$privgroups` of libpve-access-control 9.1.1.
const GROUPS_9: &[Category] = &[
    Category {
        name: "VM",
        root: &[],
        admin: &[
            "VM.Config.Disk",
            "VM.Config.CPU",
            "VM.Config.Memory",
            "VM.Config.Network",
            "VM.Config.HWType",
            "VM.Config.Options",
            "VM.Allocate",
            "VM.Clone",
            "VM.GuestAgent.Unrestricted",
            "VM.Migrate",
            "VM.Replicate",
            "VM.Snapshot",
            "VM.Snapshot.Rollback",
        ],
        user: &[
            "VM.Config.CDROM",
            "VM.Config.Cloudinit",
            "VM.Console",
            "VM.Backup",
            "VM.GuestAgent.FileRead",
            "VM.GuestAgent.FileSystemMgmt",
            "VM.GuestAgent.FileWrite",
            "VM.PowerMgmt",
        ],
        audit: &["VM.Audit", "VM.GuestAgent.Audit"],
    },
    SYS,
    DATASTORE,
    SDN,
    USER,
    POOL,
    MAPPING,
];

// The categories both versions share unchanged.
const SYS: Category = Category {
    name: "Sys",
    root: &["Sys.PowerMgmt", "Sys.Modify", "Sys.Incoming", "Sys.AccessNetwork"],
    admin: &["Sys.Console", "Sys.Syslog"],
    user: &[],
    audit: &["Sys.Audit"],
};
const DATASTORE: Category = Category {
    name: "Datastore",
    root: &[],
    admin: &["Datastore.Allocate", "Datastore.AllocateTemplate"],
    user: &["Datastore.AllocateSpace"],
    audit: &["Datastore.Audit"],
};
const SDN: Category = Category {
    name: "SDN",
    root: &[],
    admin: &["SDN.Allocate", "SDN.Audit"],
    user: &["SDN.Use"],
    audit: &["SDN.Audit"],
};
const USER: Category = Category {
    name: "User",
    root: &["Realm.Allocate"],
    admin: &["User.Modify", "Group.Allocate", "Realm.AllocateUser"],
    user: &[],
    audit: &[],
};
const POOL: Category = Category {
    name: "Pool",
    root: &[],
    admin: &["Pool.Allocate"],
    user: &["Pool.Audit"],
    audit: &["Pool.Audit"],
};
const MAPPING: Category = Category {
    name: "Mapping",
    root: &[],
    admin: &["Mapping.Modify"],
    user: &["Mapping.Use"],
    audit: &["Mapping.Audit"],
};

/// Role name → privileges, for one PVE major version (`create_roles`).
pub(crate) fn builtin_roles(major: PveMajor) -> BTreeMap<String, BTreeSet<&'static str>> {
    let groups = match major {
        PveMajor::V8 => GROUPS_8,
        PveMajor::V9 => GROUPS_9,
    };
    let mut roles: BTreeMap<String, BTreeSet<&'static str>> = BTreeMap::new();
    // `Permissions.Modify` is in no group.
    let mut all: BTreeSet<&'static str> = BTreeSet::from(["Permissions.Modify"]);
    for cat in groups {
        all.extend(cat.root.iter().chain(cat.admin).chain(cat.user).chain(cat.audit));
        for p in cat.admin.iter().chain(cat.user).chain(cat.audit) {
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

/// Is `privilege` one this version knows (`$valid_privs`)?
#[cfg(test)]
fn is_privilege(privilege: &str, major: PveMajor) -> bool {
    builtin_roles(major)
        .get("Administrator")
        .is_some_and(|all| all.contains(privilege))
}

/// The smallest built-in roles that grant `privilege` (excluding Administrator unless
/// nothing else does), smallest first.
pub(crate) fn roles_granting(privilege: &str, major: PveMajor) -> Vec<String> {
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

    fn joined(r: &BTreeMap<String, BTreeSet<&'static str>>, role: &str) -> String {
        r[role].iter().copied().collect::<Vec<_>>().join(",")
    }

    /// The expectations of pve-access-control's own `src/test/perm-test1.pl` (PVEVMAdmin and
    /// Administrator on `/vms/300` and `/vms/400`), 8.2.2 and 9.1.1.
    #[test]
    fn roles_as_pve_access_controls_tests_expect() {
        let vm_admin_8 = "VM.Allocate,VM.Audit,VM.Backup,VM.Clone,VM.Config.CDROM,VM.Config.CPU,VM.Config.Cloudinit,\
            VM.Config.Disk,VM.Config.HWType,VM.Config.Memory,VM.Config.Network,VM.Config.Options,\
            VM.Console,VM.Migrate,VM.Monitor,VM.PowerMgmt,VM.Snapshot,VM.Snapshot.Rollback";
        let vm_admin_9 = "VM.Allocate,VM.Audit,VM.Backup,VM.Clone,VM.Config.CDROM,VM.Config.CPU,VM.Config.Cloudinit,\
            VM.Config.Disk,VM.Config.HWType,VM.Config.Memory,VM.Config.Network,VM.Config.Options,\
            VM.Console,VM.GuestAgent.Audit,VM.GuestAgent.FileRead,VM.GuestAgent.FileSystemMgmt,\
            VM.GuestAgent.FileWrite,VM.GuestAgent.Unrestricted,VM.Migrate,VM.PowerMgmt,VM.Replicate,\
            VM.Snapshot,VM.Snapshot.Rollback";
        let others = "Datastore.Allocate,Datastore.AllocateSpace,Datastore.AllocateTemplate,Datastore.Audit,\
            Group.Allocate,Mapping.Audit,Mapping.Modify,Mapping.Use,Permissions.Modify,\
            Pool.Allocate,Pool.Audit,Realm.Allocate,Realm.AllocateUser,SDN.Allocate,SDN.Audit,SDN.Use,\
            Sys.AccessNetwork,Sys.Audit,Sys.Console,Sys.Incoming,Sys.Modify,Sys.PowerMgmt,Sys.Syslog,\
            User.Modify";
        let (r8, r9) = (builtin_roles(PveMajor::V8), builtin_roles(PveMajor::V9));
        assert_eq!(joined(&r8, "PVEVMAdmin"), vm_admin_8);
        assert_eq!(joined(&r9, "PVEVMAdmin"), vm_admin_9);
        assert_eq!(joined(&r8, "Administrator"), format!("{others},{vm_admin_8}"));
        assert_eq!(joined(&r9, "Administrator"), format!("{others},{vm_admin_9}"));

        assert_eq!(
            joined(&r9, "PVEAuditor"),
            "Datastore.Audit,Mapping.Audit,Pool.Audit,SDN.Audit,Sys.Audit,VM.Audit,VM.GuestAgent.Audit"
        );
        assert_eq!(
            joined(&r9, "PVEVMUser"),
            "VM.Audit,VM.Backup,VM.Config.CDROM,VM.Config.Cloudinit,VM.Console,VM.GuestAgent.Audit,\
             VM.GuestAgent.FileRead,VM.GuestAgent.FileSystemMgmt,VM.GuestAgent.FileWrite,VM.PowerMgmt"
                .replace(' ', "")
        );
        assert!(r9["PVEAdmin"].contains("VM.Replicate") && !r9["PVEAdmin"].contains("Sys.AccessNetwork"));
        assert!(!r9["PVEAdmin"].contains("Mapping.Modify") && r9["PVEMappingAdmin"].contains("Mapping.Modify"));
        assert!(is_privilege("VM.Monitor", PveMajor::V8) && !is_privilege("VM.Monitor", PveMajor::V9));
        assert!(!is_privilege("VM.Replicate", PveMajor::V8) && is_privilege("VM.Replicate", PveMajor::V9));
        let names: Vec<&String> = r9.keys().collect();
        assert_eq!(
            names,
            [
                "Administrator",
                "NoAccess",
                "PVEAdmin",
                "PVEAuditor",
                "PVEDatastoreAdmin",
                "PVEDatastoreUser",
                "PVEMappingAdmin",
                "PVEMappingUser",
                "PVEPoolAdmin",
                "PVEPoolUser",
                "PVESDNAdmin",
                "PVESDNUser",
                "PVESysAdmin",
                "PVETemplateUser",
                "PVEUserAdmin",
                "PVEVMAdmin",
                "PVEVMUser"
            ]
        );
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
