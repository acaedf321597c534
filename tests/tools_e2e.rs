//! All 24 tools end to end: the real binary, rmcp's client, the simulated cluster over
//! HTTPS; QEMU and LXC wherever both apply. Every request is logged for check-log. The
//! second half is how a call behaves as an MCP tool call: filters, argument validation,
//! progress, task waits, plans, and the errors a host sees.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stderr,
    reason = "test code: a panic is the failure report"
)]
#![cfg(feature = "simulator")]

mod common;

use common::*;
use pve_mcp::sim::spec::GuestStatus;
use serde_json::{Value, json};

const WRITE: [&str; 7] = [
    "pve_vm_power",
    "pve_vm_migrate",
    "pve_vm_set_config",
    "pve_vm_resize_disk",
    "pve_vm_clone",
    "pve_snapshot_create",
    "pve_backup_create",
];
const DESTRUCTIVE: [&str; 4] = [
    "pve_snapshot_rollback",
    "pve_snapshot_delete",
    "pve_vm_delete",
    "pve_backup_restore",
];

#[tokio::test(flavor = "multi_thread")]
async fn every_tool_is_listed_with_its_annotations() {
    let sim = simulator(0).await;
    let s = start_on(&sim, None, &[("PVE_MCP_ENABLE_EXEC", "true")]).await;
    let tools = s.client.list_all_tools().await.unwrap();
    assert_eq!(
        tools.len(),
        24,
        "{:?}",
        tools.iter().map(|t| t.name.to_string()).collect::<Vec<_>>()
    );
    for t in &tools {
        let name = t.name.as_ref();
        let a = serde_json::to_value(t.annotations.clone().unwrap()).unwrap();
        assert_eq!(a["openWorldHint"], true, "{name}");
        let schema = serde_json::to_value(&*t.input_schema).unwrap();
        assert!(
            t.description.as_ref().is_some_and(|d| d.len() > 80),
            "{name} needs a description a host can act on"
        );
        if READ_TOOLS.contains(&name) {
            assert_eq!(a["readOnlyHint"], true, "{name}");
        } else if WRITE.contains(&name) {
            assert_eq!(
                (a["readOnlyHint"].as_bool(), a["destructiveHint"].as_bool()),
                (Some(false), Some(false)),
                "{name}"
            );
            assert!(schema["properties"].get("confirm").is_none(), "{name}");
        } else if DESTRUCTIVE.contains(&name) {
            assert_eq!(
                (a["readOnlyHint"].as_bool(), a["destructiveHint"].as_bool()),
                (Some(false), Some(true)),
                "{name}"
            );
            assert_eq!(schema["properties"]["confirm"]["type"], "boolean", "{name}");
        } else {
            assert_eq!(name, "pve_vm_exec");
            assert_eq!(a["destructiveHint"], true);
        }
    }
    let by_name = |n: &str| {
        let t = tools.iter().find(|t| t.name == n).unwrap();
        serde_json::to_value(&*t.input_schema).unwrap()
    };
    assert_eq!(by_name("pve_vm_delete")["required"], json!(["vmid"]));
    assert_eq!(
        by_name("pve_vm_power")["properties"]["action"]["enum"],
        json!(["start", "shutdown", "stop", "reboot", "suspend", "resume"])
    );
    // Without exec: 23. Read-only: exactly the 12 read tools.
    let plain = start_on(&sim, None, &[]).await;
    assert_eq!(plain.tool_names().await.len(), 23);
    let ro = start_on(
        &sim,
        None,
        &[("PVE_MCP_READ_ONLY", "true"), ("PVE_MCP_ENABLE_EXEC", "true")],
    )
    .await;
    let mut read: Vec<String> = READ_TOOLS.iter().map(|s| s.to_string()).collect();
    read.sort();
    assert_eq!(ro.tool_names().await, read);
}

#[tokio::test(flavor = "multi_thread")]
async fn read_only_mode_sends_nothing_but_gets() {
    let sim = simulator(0).await;
    let s = start_on(&sim, None, &[("PVE_MCP_READ_ONLY", "true")]).await;
    let upid = sim.with_state(|st| {
        st.start_task(
            "pve1",
            "qmstart",
            "100",
            "root@pam!sim",
            vec![],
            Box::new(|_| Err("boom".into())),
        )
    });
    for (tool, args) in [
        ("pve_cluster_status", json!({})),
        ("pve_list_nodes", json!({})),
        ("pve_node_status", json!({"node": "pve2"})),
        ("pve_list_vms", json!({"status": "paused"})),
        ("pve_vm_status", json!({"vmid": 201})),
        ("pve_vm_config", json!({"vmid": 100})),
        ("pve_list_storage", json!({})),
        ("pve_storage_content", json!({"storage": "nfs-backup"})),
        ("pve_list_backups", json!({})),
        ("pve_list_snapshots", json!({"vmid": 201})),
        ("pve_list_tasks", json!({"node": "pve1"})),
        ("pve_task_status", json!({"upid": upid})),
    ] {
        s.ok(tool, args).await;
    }
    assert!(sim.request_count() > 20);
    assert_eq!(sim.write_count(), 0, "read-only mode sends nothing but GETs");
}

#[tokio::test(flavor = "multi_thread")]
async fn cluster_and_node_reads() {
    let sim = simulator(0).await;
    let s = start_on(&sim, None, &[]).await;
    let c = s.ok("pve_cluster_status", json!({})).await;
    assert_eq!(
        (
            c["cluster"]["name"].as_str(),
            c["quorate"].as_bool(),
            c["standalone"].as_bool()
        ),
        (Some("homelab"), Some(true), Some(false))
    );
    assert_eq!(c["offline_nodes"], json!(["pve3"]));
    let n = s.ok("pve_list_nodes", json!({})).await;
    assert_eq!(n["count"], 3);
    assert_eq!(n["nodes"][0]["maxmem_human"], "64.00 GiB");
    assert_eq!(n["offline_nodes"], json!(["pve3"]));
    let st = s.ok("pve_node_status", json!({"node": "pve1"})).await;
    assert_eq!(st["memory"]["total_human"], "64.00 GiB");
    assert!(st["pve_version"].as_str().unwrap().starts_with("pve-manager/8.4"));
    let err = s.fails("pve_node_status", json!({"node": "pve3"})).await;
    assert!(err.contains("595") && err.contains("offline"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn guest_reads_for_vms_and_containers() {
    let sim = simulator(0).await;
    let s = start_on(&sim, None, &[]).await;
    let vm = s.ok("pve_vm_config", json!({"vmid": 100})).await;
    assert_eq!(
        (vm["type"].as_str(), vm["memory_mib"].as_i64()),
        (Some("qemu"), Some(4096))
    );
    assert_eq!(vm["nics"][0]["bridge"], "vmbr0");
    // NICs parsed into what a person asks about: model, MAC, bridge, VLAN tag, firewall.
    let nic = &vm["nics"][0];
    assert_eq!(
        (&nic["key"], &nic["model"], &nic["mac"], &nic["firewall"], &nic["tag"]),
        (
            &json!("net0"),
            &json!("virtio"),
            &json!("BC:24:11:00:01:00"),
            &json!(true),
            &Value::Null
        ),
        "{nic}"
    );
    let keys: Vec<&str> = vm["disks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, vec!["efidisk0", "scsi0"], "the CD-ROM is not a disk");
    let ct = s.ok("pve_vm_config", json!({"vmid": 201})).await;
    assert_eq!(
        (
            ct["type"].as_str(),
            ct["memory_mib"].as_i64(),
            ct["config"]["hostname"].as_str()
        ),
        (Some("lxc"), Some(1024), Some("proxy"))
    );
    assert_eq!(ct["disks"].as_array().unwrap().len(), 2);
    let nic = &ct["nics"][0];
    assert_eq!(
        (
            &nic["model"],
            &nic["mac"],
            &nic["bridge"],
            &nic["name"],
            &nic["firewall"],
            &nic["ip"]
        ),
        (
            &json!("veth"),
            &json!("BC:24:11:00:02:01"),
            &json!("vmbr0"),
            &json!("eth0"),
            &json!(false),
            &json!("dhcp")
        ),
        "{nic}"
    );
    let snaps = s.ok("pve_list_snapshots", json!({"vmid": 100})).await;
    let names: Vec<&str> = snaps["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["before-upgrade", "after-upgrade"]);
    assert_eq!(snaps["snapshots"][0]["children"], json!(["after-upgrade"]));
    assert_eq!(snaps["current_parent"], "after-upgrade");
    assert!(snaps["snapshots"][0]["snaptime_iso"].as_str().unwrap().ends_with('Z'));
    let ct_snaps = s.ok("pve_list_snapshots", json!({"vmid": 201})).await;
    assert_eq!(ct_snaps["count"], 1);
    assert!(
        ct_snaps["snapshots"][0].get("vmstate").is_none(),
        "containers have no RAM snapshots"
    );
    let st = s.ok("pve_vm_status", json!({"vmid": 103})).await;
    assert_eq!(st["qmpstatus"], "paused");
}

#[tokio::test(flavor = "multi_thread")]
async fn storage_and_backup_reads() {
    let sim = simulator(0).await;
    let s = start_on(&sim, None, &[]).await;
    let st = s.ok("pve_list_storage", json!({})).await;
    assert_eq!(st["skipped_nodes"], json!(["pve3"]));
    let nfs = st["storages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["storage"] == "nfs-backup")
        .unwrap()
        .clone();
    assert_eq!(
        (nfs["shared"].as_bool(), nfs["nodes"].as_array().unwrap().len()),
        (Some(true), 2),
        "shared storage once, seen from both nodes"
    );
    assert!(nfs["used_human"].as_str().is_some() && nfs["used_percent"].as_f64().is_some());
    let one = s.ok("pve_list_storage", json!({"node": "pve2"})).await;
    assert!(one.get("skipped_nodes").is_none());
    let isos = s
        .ok("pve_storage_content", json!({"storage": "local", "content": "iso"}))
        .await;
    assert_eq!(isos["count"], 2);
    assert_eq!(isos["items"][0]["node"], "pve1");
    let err = s.fails("pve_storage_content", json!({"storage": "nope"})).await;
    assert!(err.contains("No node has a storage called 'nope'"), "{err}");
    let b = s.ok("pve_list_backups", json!({"vmid": 100})).await;
    assert_eq!(b["count"], 3);
    assert_eq!(b["backups"][0]["storage"], "pbs", "newest first");
    assert_eq!(b["backups"][1]["protected"], true);
    let all = s.ok("pve_list_backups", json!({})).await;
    assert_eq!(all["count"], 10, "every backup once, shared storages read once");
    let local = s.ok("pve_list_backups", json!({"storage": "local"})).await;
    assert_eq!(
        (local["count"].as_i64(), local["backups"][0]["node"].as_str()),
        (Some(1), Some("pve2"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_empty_list_says_whether_rights_are_missing() {
    let mut spec = pve_mcp::sim::spec::ClusterSpec::default_cluster();
    spec.tokens.push(pve_mcp::sim::spec::TokenSpec {
        id: "nobody@pve!none".into(),
        secret: "22222222-3333-4444-8555-666666666666".into(),
        acl: vec![],
    });
    let sim = simulator_with(spec.clone()).await;
    let s = start_on(
        &sim,
        Some(("nobody@pve!none", "22222222-3333-4444-8555-666666666666")),
        &[],
    )
    .await;
    let v = s.ok("pve_list_vms", json!({})).await;
    assert_eq!(v["count"], 0);
    assert!(v["note"].as_str().unwrap().contains("holds VM.Audit nowhere"), "{v}");
    // A cluster that is really empty says so differently.
    spec.guests.clear();
    let empty = simulator_with(spec).await;
    let s = start_on(&empty, None, &[]).await;
    let v = s.ok("pve_list_vms", json!({})).await;
    assert!(v["note"].as_str().unwrap().starts_with("There are no guests"), "{v}");
}

#[tokio::test(flavor = "multi_thread")]
async fn tasks_and_task_status() {
    let sim = simulator(0).await;
    let s = start_on(&sim, None, &[]).await;
    let failed = s.fails("pve_vm_power", json!({"vmid": 100, "action": "start"})).await;
    assert!(failed.contains("already running"));
    s.ok("pve_vm_power", json!({"vmid": 202, "action": "start"})).await;
    let all = s.ok("pve_list_tasks", json!({})).await;
    assert_eq!(all["count"], 2);
    let errors = s.ok("pve_list_tasks", json!({"errors_only": true})).await;
    assert_eq!(errors["count"], 1);
    let upid = errors["tasks"][0]["upid"].as_str().unwrap().to_string();
    assert_eq!(errors["tasks"][0]["ok"], false);
    assert!(errors["tasks"][0]["starttime_iso"].as_str().is_some());
    let by_node = s.ok("pve_list_tasks", json!({"node": "pve2", "vmid": 202})).await;
    assert_eq!(by_node["count"], 1);
    let st = s.ok("pve_task_status", json!({"upid": upid})).await;
    assert_eq!(
        (st["status"].as_str(), st["exitstatus"].as_str()),
        (Some("failed"), Some("VM 100 already running"))
    );
    assert_eq!(
        st["log_tail"].as_array().unwrap().last().unwrap(),
        "TASK ERROR: VM 100 already running"
    );
    let bad = s.fails("pve_task_status", json!({"upid": "nope"})).await;
    assert!(bad.contains("'upid'"), "{bad}");
}

#[tokio::test(flavor = "multi_thread")]
async fn migrate_vms_and_containers() {
    let sim = simulator(0).await;
    let s = start_on(&sim, None, &[]).await;
    let err = s.fails("pve_vm_migrate", json!({"vmid": 100, "target": "pve2"})).await;
    assert!(err.contains("online=true"), "{err}");
    let live = s
        .ok("pve_vm_migrate", json!({"vmid": 100, "target": "pve2", "online": true}))
        .await;
    assert_eq!(
        (live["mode"].as_str(), live["task"]["type"].as_str()),
        (Some("live"), Some("qmigrate"))
    );
    let ct = s
        .ok("pve_vm_migrate", json!({"vmid": 201, "target": "pve1", "online": true}))
        .await;
    assert_eq!(ct["mode"], "restart");
    s.ok("pve_vm_migrate", json!({"vmid": 202, "target": "pve1"})).await;
    sim.with_state(|st| {
        assert_eq!(
            (
                st.guests[&100].node.as_str(),
                st.guests[&201].node.as_str(),
                st.guests[&202].node.as_str()
            ),
            ("pve2", "pve1", "pve1")
        );
    });
    let err = s.fails("pve_vm_migrate", json!({"vmid": 102, "target": "pve3"})).await;
    assert!(err.contains("not online"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn set_config_and_resize_for_both_kinds() {
    let sim = simulator(0).await;
    let s = start_on(&sim, None, &[]).await;
    let vm = s
        .ok(
            "pve_vm_set_config",
            json!({"vmid": 101, "config": {"cores": 8, "onboot": false, "description": "database"}}),
        )
        .await;
    assert_eq!(
        vm["pending"]["cores"],
        json!({"current": 4, "pending": 8}),
        "a running VM takes new cores at its next start"
    );
    assert_eq!(vm["changed"]["onboot"], json!({"before": 1, "after": 0}));
    assert_eq!(vm["task"]["type"], "qmconfig");
    assert_eq!(vm["restart_needed"], true);
    let ct = s
        .ok(
            "pve_vm_set_config",
            json!({"vmid": 200, "config": {"name": "resolver", "memory": 768}, "delete": ["swap"]}),
        )
        .await;
    assert_eq!(
        ct["changed"]["hostname"]["after"], "resolver",
        "name maps to hostname for containers"
    );
    sim.with_state(|st| {
        assert_eq!(st.guests[&200].config["memory"], 768);
        assert!(!st.guests[&200].config.contains_key("swap"));
        assert_eq!(st.guests[&101].config["onboot"], 0);
    });
    let err = s
        .fails("pve_vm_set_config", json!({"vmid": 100, "delete": ["unused0"]}))
        .await;
    assert!(err.contains("destroy"), "{err}");
    let err = s.fails("pve_vm_set_config", json!({"vmid": 100})).await;
    assert!(err.contains("Nothing to change"), "{err}");

    let r = s
        .ok(
            "pve_vm_resize_disk",
            json!({"vmid": 101, "disk": "scsi0", "size": "+16G"}),
        )
        .await;
    assert_eq!(
        (r["size_before"].as_str(), r["size_after"].as_str()),
        (Some("64G"), Some("80G"))
    );
    let r = s
        .ok(
            "pve_vm_resize_disk",
            json!({"vmid": 200, "disk": "rootfs", "size": "10G"}),
        )
        .await;
    assert_eq!(r["size_after"], "10G");
    let writes = sim.write_count();
    let err = s
        .fails(
            "pve_vm_resize_disk",
            json!({"vmid": 101, "disk": "scsi0", "size": "10G"}),
        )
        .await;
    assert!(err.contains("shrinking"), "{err}");
    let err = s
        .fails(
            "pve_vm_resize_disk",
            json!({"vmid": 101, "disk": "scsi9", "size": "+1G"}),
        )
        .await;
    assert!(err.contains("Its disks: scsi0, scsi1"), "{err}");
    assert_eq!(sim.write_count(), writes, "refused before anything is sent");
}

#[tokio::test(flavor = "multi_thread")]
async fn clone_vms_templates_and_containers() {
    let sim = simulator(0).await;
    let s = start_on(&sim, None, &[]).await;
    let linked = s
        .ok("pve_vm_clone", json!({"vmid": 9000, "name": "app-1", "full": false}))
        .await;
    assert_eq!(linked["newid"], 105, "the next free vmid");
    assert_eq!(
        (linked["clone"]["name"].as_str(), linked["clone"]["status"].as_str()),
        (Some("app-1"), Some("stopped"))
    );
    let full = s
        .ok(
            "pve_vm_clone",
            json!({"vmid": 101, "newid": 300, "name": "db-copy", "target": "pve2"}),
        )
        .await;
    assert_eq!(full["clone"]["node"], "pve2");
    let ct = s
        .ok("pve_vm_clone", json!({"vmid": 202, "newid": 301, "name": "test-ct-b"}))
        .await;
    assert_eq!(
        (ct["clone"]["name"].as_str(), ct["clone"]["type"].as_str()),
        (Some("test-ct-b"), Some("lxc"))
    );
    let err = s.fails("pve_vm_clone", json!({"vmid": 200})).await;
    assert!(err.contains("running"), "{err}");
    let err = s.fails("pve_vm_clone", json!({"vmid": 100, "newid": 101})).await;
    assert!(err.contains("already exists"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn snapshots_for_both_kinds_with_confirmation() {
    let sim = simulator(0).await;
    let s = start_on(&sim, None, &[]).await;
    s.ok(
        "pve_snapshot_create",
        json!({"vmid": 101, "snapname": "pre-upgrade", "vmstate": true, "description": "before apt upgrade"}),
    )
    .await;
    s.ok("pve_snapshot_create", json!({"vmid": 200, "snapname": "pre-upgrade"}))
        .await;
    let err = s
        .fails(
            "pve_snapshot_create",
            json!({"vmid": 200, "snapname": "with-ram", "vmstate": true}),
        )
        .await;
    assert!(err.contains("containers have no RAM snapshots"), "{err}");
    s.ok("pve_vm_set_config", json!({"vmid": 101, "config": {"cores": 6}}))
        .await;

    // Rollback: a plan first, nothing sent; then confirmed.
    let writes = sim.write_count();
    let plan = s
        .ok("pve_snapshot_rollback", json!({"vmid": 101, "snapname": "pre-upgrade"}))
        .await;
    assert_eq!(plan["status"], "confirmation_required");
    assert!(
        plan["explanation"]["will_be_lost"]
            .as_str()
            .unwrap()
            .contains("every change")
    );
    assert_eq!(
        plan["explanation"]["guest_after"], "running",
        "a RAM snapshot resumes running"
    );
    assert_eq!(
        plan["requests"][0]["path"],
        "/nodes/pve1/qemu/101/snapshot/pre-upgrade/rollback"
    );
    assert_eq!(sim.write_count(), writes);
    s.ok(
        "pve_snapshot_rollback",
        json!({"vmid": 101, "snapname": "pre-upgrade", "confirm": true}),
    )
    .await;
    assert_eq!(sim.with_state(|st| st.guests[&101].config["cores"].clone()), json!(4));
    let ct = s
        .ok("pve_snapshot_rollback", json!({"vmid": 200, "snapname": "pre-upgrade"}))
        .await;
    assert_eq!(
        ct["explanation"]["downtime"],
        "CT 200 (dns) is running and will be stopped by the rollback."
    );
    let err = s
        .fails("pve_snapshot_rollback", json!({"vmid": 201, "snapname": "nope"}))
        .await;
    assert!(err.contains("Its snapshots: clean-install"), "{err}");

    // Delete: planned, then confirmed; children move up.
    let plan = s
        .ok(
            "pve_snapshot_delete",
            json!({"vmid": 100, "snapname": "before-upgrade"}),
        )
        .await;
    assert!(
        plan["explanation"]["reattached"]
            .as_str()
            .unwrap()
            .contains("after-upgrade")
    );
    s.ok(
        "pve_snapshot_delete",
        json!({"vmid": 100, "snapname": "before-upgrade", "confirm": true}),
    )
    .await;
    s.ok(
        "pve_snapshot_delete",
        json!({"vmid": 201, "snapname": "clean-install", "confirm": true}),
    )
    .await;
    let left = s.ok("pve_list_snapshots", json!({"vmid": 100})).await;
    assert_eq!(left["count"], 1);
    assert!(left["snapshots"][0].get("parent").is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn backup_then_restore() {
    let sim = simulator(0).await;
    let s = start_on(&sim, None, &[]).await;
    let b = s
        .ok(
            "pve_backup_create",
            json!({"vmid": 202, "storage": "nfs-backup", "mode": "stop", "compress": "zstd"}),
        )
        .await;
    assert_eq!(b["task"]["type"], "vzdump");
    let list = s.ok("pve_list_backups", json!({"vmid": 202})).await;
    let newest = list["backups"][0]["volid"].as_str().unwrap().to_string();
    assert!(
        newest.starts_with("nfs-backup:backup/vzdump-lxc-202-") && newest.ends_with(".tar.zst"),
        "{newest}"
    );
    s.ok("pve_backup_create", json!({"vmid": 101, "storage": "pbs"})).await;

    // To a free vmid: no confirmation needed.
    let r = s
        .ok("pve_backup_restore", json!({"archive": newest, "vmid": 400}))
        .await;
    assert_eq!(
        (r["type"].as_str(), r["replaced"].as_bool()),
        (Some("lxc"), Some(false))
    );
    assert_eq!(sim.with_state(|st| st.guests[&400].status), GuestStatus::Stopped);
    // Over an existing guest: force, then confirm.
    let vm_backup = "nfs-backup:backup/vzdump-qemu-100-2026_01_15-01_00_02.vma.zst";
    let err = s
        .fails("pve_backup_restore", json!({"archive": vm_backup, "vmid": 102}))
        .await;
    assert!(err.contains("force=true"), "{err}");
    let err = s
        .fails(
            "pve_backup_restore",
            json!({"archive": vm_backup, "vmid": 101, "force": true}),
        )
        .await;
    assert!(err.contains("must be stopped"), "{err}");
    let writes = sim.write_count();
    let plan = s
        .ok(
            "pve_backup_restore",
            json!({"archive": vm_backup, "vmid": 102, "force": true}),
        )
        .await;
    assert_eq!(plan["status"], "confirmation_required");
    assert_eq!(plan["explanation"]["replaces"]["name"], "win11");
    assert_eq!(
        plan["explanation"]["will_be_lost"]["disks"].as_array().unwrap().len(),
        3
    );
    assert_eq!(plan["requests"][0]["params"]["force"], true);
    assert_eq!(sim.write_count(), writes);
    let done = s
        .ok(
            "pve_backup_restore",
            json!({"archive": vm_backup, "vmid": 102, "force": true, "confirm": true}),
        )
        .await;
    assert_eq!(done["replaced"], true);
    let err = s
        .fails(
            "pve_backup_restore",
            json!({"archive": newest, "vmid": 101, "force": true}),
        )
        .await;
    assert!(err.contains("stopped") || err.contains("lxc backup"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn delete_plans_for_containers_and_templates() {
    let sim = simulator(0).await;
    let s = start_on(&sim, None, &[]).await;
    let plan = s.ok("pve_vm_delete", json!({"vmid": 202})).await;
    assert_eq!(plan["explanation"]["guest"]["type"], "lxc");
    assert_eq!(plan["explanation"]["will_be_lost"]["disks"][0]["key"], "rootfs");
    s.ok("pve_vm_delete", json!({"vmid": 202, "confirm": true})).await;
    let plan = s.ok("pve_vm_delete", json!({"vmid": 9000, "purge": true})).await;
    assert_eq!(plan["explanation"]["guest"]["template"], true);
    assert!(sim.with_state(|st| !st.guests.contains_key(&202) && st.guests.contains_key(&9000)));
}

#[tokio::test(flavor = "multi_thread")]
async fn exec_in_a_vm() {
    let sim = simulator(0).await;
    let s = start_on(&sim, None, &[("PVE_MCP_ENABLE_EXEC", "true")]).await;
    let r = s
        .ok("pve_vm_exec", json!({"vmid": 101, "command": "echo ok; hostname"}))
        .await;
    assert_eq!(
        (
            r["exitcode"].as_i64(),
            r["stdout"].as_str(),
            r["stdout_truncated"].as_bool()
        ),
        (Some(0), Some("ok\ndb\n"), Some(false))
    );
    let r = s
        .ok("pve_vm_exec", json!({"vmid": 101, "command": "ls /nope; exit 3"}))
        .await;
    assert_eq!(r["exitcode"], 3);
    let r = s
        .ok("pve_vm_exec", json!({"vmid": 101, "command": "sleep 30", "timeout": 1}))
        .await;
    assert_eq!(r["timed_out"], true);
    let err = s.fails("pve_vm_exec", json!({"vmid": 200, "command": "id"})).await;
    assert!(err.contains("container"), "{err}");
    let err = s.fails("pve_vm_exec", json!({"vmid": 103, "command": "id"})).await;
    assert!(err.contains("guest agent disabled"), "{err}");
    let err = s.fails("pve_vm_exec", json!({"vmid": 102, "command": "id"})).await;
    assert!(err.contains("stopped"), "{err}");
    // Enabled in the config, but not running inside the guest.
    sim.with_state(|st| st.guests.get_mut(&101).unwrap().agent_running = false);
    let err = s.fails("pve_vm_exec", json!({"vmid": 101, "command": "id"})).await;
    assert!(
        err.contains("guest agent is not running") && err.contains("qemu-guest-agent"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn permission_errors_name_the_role() {
    let sim = simulator(0).await;
    let s = start_on(&sim, Some(sim_tokens::AUDITOR), &[]).await;
    let err = s
        .fails("pve_snapshot_create", json!({"vmid": 100, "snapname": "x1"}))
        .await;
    assert!(
        err.contains("lacks VM.Snapshot on /vms/100") && err.contains("PVEVMAdmin"),
        "{err}"
    );
    let err = s
        .fails("pve_backup_create", json!({"vmid": 100, "storage": "nfs-backup"}))
        .await;
    assert!(err.contains("VM.Backup") && err.contains("PVEVMUser"), "{err}");
    let ok: Value = s.ok("pve_list_vms", json!({})).await;
    assert_eq!(ok["count"], 9);
}

#[tokio::test(flavor = "multi_thread")]
async fn write_tools_report_task_state_at_the_top() {
    let sim = simulator(3000).await;
    let s = start_on(&sim, None, &[("PVE_MCP_TASK_WAIT", "1")]).await;
    let r = s
        .ok("pve_snapshot_create", json!({"vmid": 201, "snapname": "slow"}))
        .await;
    assert_eq!(r["status"], "running");
    assert!(r["upid"].as_str().unwrap().contains(":vzsnapshot:201:"));
    assert!(r["task"]["note"].as_str().unwrap().contains("pve_task_status"));
    let fast = simulator(0).await;
    let s = start_on(&fast, None, &[]).await;
    let r = s.ok("pve_vm_power", json!({"vmid": 202, "action": "start"})).await;
    assert_eq!(r["status"], "ok");
    let bad = start_on(
        &fast,
        Some(("root@pam!sim", "00000000-0000-4000-8000-000000000000")),
        &[],
    )
    .await;
    let err = bad.fails("pve_list_vms", json!({})).await;
    assert!(
        err.contains("PVE_TOKEN_SECRET") && err.contains("privilege separation"),
        "{err}"
    );
}

/// The default cluster plus two storages that only some nodes have: `usb`, a local
/// directory on pve2, and `cephfs`, shared by pve2 and pve3.
fn restricted_storage_cluster() -> pve_mcp::sim::spec::ClusterSpec {
    let mut spec = pve_mcp::sim::spec::ClusterSpec::default_cluster();
    spec.task_duration_ms = 0;
    spec.storages.push(
        serde_json::from_value(json!({
            "storage": "usb", "type": "dir", "path": "/mnt/usb", "content": ["iso", "backup"], "nodes": ["pve2"],
            "total": 500000000000u64,
            "volumes": [{"volid": "usb:iso/memtest86-7.0.iso", "content": "iso", "format": "iso", "size": 20000000,
                         "ctime": 1767000000, "node": "pve2"}]
        }))
        .unwrap(),
    );
    spec.storages.push(
        serde_json::from_value(json!({
            "storage": "cephfs", "type": "cephfs", "shared": true, "content": ["iso", "vztmpl"], "nodes": ["pve2", "pve3"],
            "total": 2000000000000u64,
            "volumes": [{"volid": "cephfs:iso/alpine-3.21.iso", "content": "iso", "format": "iso", "size": 60000000,
                         "ctime": 1767000000}]
        }))
        .unwrap(),
    );
    spec
}

fn storage_rows<'a>(list: &'a Value, id: &str) -> Vec<&'a Value> {
    list["storages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["storage"] == id)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn storage_restricted_to_some_nodes_is_used_where_it_is_enabled() {
    let sim = simulator_with(restricted_storage_cluster()).await;
    let s = start_on(&sim, None, &[]).await;
    let list = s.ok("pve_list_storage", json!({})).await;
    let usb = storage_rows(&list, "usb");
    assert_eq!(usb.len(), 1, "listed once, not once per node: {list}");
    assert_eq!(
        (usb[0]["nodes"].clone(), usb[0]["total"].as_u64()),
        (json!(["pve2"]), Some(500000000000))
    );
    let ceph = storage_rows(&list, "cephfs");
    assert_eq!(ceph.len(), 1);
    assert_eq!(ceph[0]["nodes"], json!(["pve2"]), "only where it is enabled");
    assert_eq!(ceph[0]["active"], true);
    let pve1 = s.ok("pve_list_storage", json!({"node": "pve1"})).await;
    assert!(storage_rows(&pve1, "usb").is_empty(), "{pve1}");

    let usb = s.ok("pve_storage_content", json!({"storage": "usb"})).await;
    assert_eq!(
        (usb["count"].as_i64(), usb["nodes"].clone()),
        (Some(1), json!(["pve2"]))
    );
    assert_eq!(usb["items"][0]["node"], "pve2");
    let ceph = s
        .ok("pve_storage_content", json!({"storage": "cephfs", "content": "iso"}))
        .await;
    assert_eq!(ceph["count"], 1);
    let err = s
        .fails("pve_storage_content", json!({"storage": "usb", "node": "pve1"}))
        .await;
    assert!(err.contains("not available on pve1") && err.contains("pve2"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_storage_is_an_error_that_names_the_storages() {
    let sim = simulator(0).await;
    let s = start_on(&sim, None, &[]).await;
    for args in [json!({"storage": "nope"}), json!({"storage": "nope", "node": "pve2"})] {
        let err = s.fails("pve_storage_content", args).await;
        assert!(
            err.contains("'nope'") && err.contains("local, local-lvm, nfs-backup, pbs"),
            "{err}"
        );
        assert!(!err.contains("did not answer"), "{err}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_that_answers_with_an_error_is_not_offline() {
    use pve_mcp::sim::faults::{Fault, FaultAction};
    let sim = simulator(0).await;
    let s = start_on(&sim, None, &[]).await;
    sim.add_fault(Fault::new(
        "/nodes/pve1/storage",
        FaultAction::Status(500, "unable to read storage status - got timeout".into()),
    ));
    for tool in ["pve_list_storage", "pve_list_backups"] {
        let r = s.ok(tool, json!({})).await;
        assert_eq!(
            r["skipped_nodes"],
            json!(["pve3"]),
            "{tool}: only the offline node: {r}"
        );
        assert_eq!(r["node_errors"][0]["node"], "pve1", "{tool}: {r}");
        assert!(
            r["node_errors"][0]["error"].as_str().unwrap().contains("got timeout"),
            "{tool}: {r}"
        );
    }
    let r = s.ok("pve_storage_content", json!({"storage": "nfs-backup"})).await;
    assert_eq!(
        r["nodes"],
        json!(["pve2"]),
        "the shared storage is read through pve2: {r}"
    );
    assert!(
        r["node_errors"][0]["error"].as_str().unwrap().contains("got timeout"),
        "{r}"
    );
    // A node that cannot be reached is offline, and named as such.
    sim.clear_faults();
    sim.add_fault(Fault::new("/nodes/pve2/*", FaultAction::NodeOffline));
    let r = s.ok("pve_list_storage", json!({})).await;
    assert_eq!(r["skipped_nodes"], json!(["pve2", "pve3"]), "{r}");
    assert!(r.get("node_errors").is_none(), "{r}");
    // Every node refuses: the call fails with PVE's reason, not with the empty-list helper's.
    sim.clear_faults();
    sim.add_fault(Fault::new(
        "/nodes/*/storage",
        FaultAction::Status(403, "Permission check failed (/storage, Datastore.Audit)".into()),
    ));
    sim.add_fault(Fault::new(
        "/access/permissions",
        FaultAction::Status(500, "cluster not ready - no quorum?".into()),
    ));
    for tool in ["pve_list_storage", "pve_list_backups"] {
        let err = s.fails(tool, json!({})).await;
        assert!(
            err.contains("Datastore.Audit") && err.contains("pve1") && !err.contains("/access/permissions"),
            "{tool}: {err}"
        );
    }
    let err = s.fails("pve_storage_content", json!({"storage": "local"})).await;
    assert!(err.contains("Datastore.Audit"), "{err}");
    // The helper's own failure does not turn a real empty list into an error.
    sim.clear_faults();
    sim.add_fault(Fault::new(
        "/access/permissions",
        FaultAction::Status(500, "cluster not ready - no quorum?".into()),
    ));
    let r = s.ok("pve_list_backups", json!({})).await;
    assert!(r["count"].as_i64().unwrap() > 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn restore_reports_why_the_archive_could_not_be_read() {
    use pve_mcp::sim::faults::{Fault, FaultAction};
    let mut spec = pve_mcp::sim::spec::ClusterSpec::default_cluster();
    spec.task_duration_ms = 0;
    spec.tokens.push(pve_mcp::sim::spec::TokenSpec {
        id: "vmadmin@pve!vms".into(),
        secret: "33333333-4444-4555-8666-777777777777".into(),
        acl: vec![pve_mcp::sim::spec::AclSpec {
            path: "/vms".into(),
            role: "PVEVMAdmin".into(),
            propagate: true,
        }],
    });
    let sim = simulator_with(spec).await;
    let archive = "nfs-backup:backup/vzdump-qemu-100-2026_01_15-01_00_02.vma.zst";
    let s = start_on(
        &sim,
        Some(("vmadmin@pve!vms", "33333333-4444-4555-8666-777777777777")),
        &[],
    )
    .await;
    let err = s
        .fails("pve_backup_restore", json!({"archive": archive, "vmid": 400}))
        .await;
    assert!(
        err.contains("Datastore.Audit") && err.contains("/storage/nfs-backup") && !err.contains("not found"),
        "{err}"
    );
    let root = start_on(&sim, None, &[]).await;
    sim.add_fault(Fault::new(
        "/nodes/*/storage/nfs-backup/content",
        FaultAction::Status(
            501,
            "Method 'GET /nodes/pve1/storage/nfs-backup/content' not implemented".into(),
        ),
    ));
    let err = root
        .fails("pve_backup_restore", json!({"archive": archive, "vmid": 400}))
        .await;
    assert!(err.contains("not implemented") && !err.contains("not found"), "{err}");
    sim.clear_faults();
    let err = root
        .fails(
            "pve_backup_restore",
            json!({"archive": "nfs-backup:backup/vzdump-qemu-100-2020_01_01-00_00_00.vma.zst", "vmid": 400}),
        )
        .await;
    assert!(
        err.contains("not found"),
        "a missing archive is still named as such: {err}"
    );
    assert_eq!(sim.write_count(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn same_named_files_on_two_nodes_are_listed_with_their_node() {
    let mut spec = pve_mcp::sim::spec::ClusterSpec::default_cluster();
    spec.task_duration_ms = 0;
    let local = spec.storages.iter_mut().find(|s| s.storage == "local").unwrap();
    let mut copy = local.volumes.iter().find(|v| v.content == "backup").unwrap().clone();
    copy.node = Some("pve1".into());
    local.volumes.push(copy);
    let sim = simulator_with(spec).await;
    let s = start_on(&sim, None, &[]).await;
    let t = s
        .ok("pve_storage_content", json!({"storage": "local", "content": "vztmpl"}))
        .await;
    let nodes: Vec<&str> = t["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["node"].as_str().unwrap())
        .collect();
    assert_eq!(nodes, vec!["pve1", "pve2"], "{t}");
    let b = s.ok("pve_list_backups", json!({"storage": "local"})).await;
    let mut nodes: Vec<&str> = b["backups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["node"].as_str().unwrap())
        .collect();
    nodes.sort();
    assert_eq!(nodes, vec!["pve1", "pve2"], "{b}");
}

#[tokio::test(flavor = "multi_thread")]
async fn node_status_leaves_out_what_pve_did_not_send() {
    use pve_mcp::sim::faults::{Fault, FaultAction};
    let sim = simulator(0).await;
    let s = start_on(&sim, None, &[]).await;
    let st = s.ok("pve_node_status", json!({"node": "pve1"})).await;
    assert_eq!(
        (
            st["current_kernel"]["release"].as_str(),
            st["current_kernel"]["machine"].as_str()
        ),
        (Some("6.8.12-8-pve"), Some("x86_64"))
    );
    sim.add_fault(Fault::new(
        "/nodes/pve1/status",
        FaultAction::Omit(vec![
            "swap".into(),
            "rootfs".into(),
            "kversion".into(),
            "cpuinfo".into(),
        ]),
    ));
    let st = s.ok("pve_node_status", json!({"node": "pve1"})).await;
    for gone in ["swap", "rootfs", "cpu_model"] {
        assert!(st.get(gone).is_none(), "{gone}: {st}");
    }
    assert_eq!(st["memory"]["total_human"], "64.00 GiB");
    assert!(st["kernel"].as_str().unwrap().contains("6.8.12-8-pve"), "{st}");
    // PVE before 8.1 has no current-kernel.
    let mut spec = pve_mcp::sim::spec::ClusterSpec::default_cluster();
    spec.version = "8.0.4".into();
    let old = simulator_with(spec).await;
    let s = start_on(&old, None, &[]).await;
    let st = s.ok("pve_node_status", json!({"node": "pve2"})).await;
    assert!(
        st.get("current_kernel").is_none() && st.get("boot_mode").is_none(),
        "{st}"
    );
    assert!(st["kernel"].as_str().unwrap().starts_with("Linux 6.8.12-8-pve"), "{st}");
}

#[tokio::test(flavor = "multi_thread")]
async fn exec_accepts_the_agents_json_booleans() {
    let mut spec = pve_mcp::sim::spec::ClusterSpec::default_cluster();
    spec.task_duration_ms = 0;
    spec.agent_json_booleans = true;
    let sim = simulator_with(spec).await;
    let s = start_on(&sim, None, &[("PVE_MCP_ENABLE_EXEC", "true")]).await;
    let r = s
        .ok("pve_vm_exec", json!({"vmid": 101, "command": "echo ok", "timeout": 2}))
        .await;
    assert!(r.get("timed_out").is_none(), "{r}");
    assert_eq!((r["exitcode"].as_i64(), r["stdout"].as_str()), (Some(0), Some("ok\n")));
    assert_eq!(r["stdout_truncated"], false);
    let r = s
        .ok("pve_vm_exec", json!({"vmid": 101, "command": "exit 3", "timeout": 2}))
        .await;
    assert_eq!(r["exitcode"], 3, "{r}");
}

#[tokio::test(flavor = "multi_thread")]
async fn list_vms_keeps_only_guests_whatever_the_answer_holds() {
    use pve_mcp::sim::faults::{Fault, FaultAction};
    let sim = simulator(0).await;
    let s = start_on(&sim, None, &[]).await;
    // An answer that ignored ?type=vm holds nodes and storages too.
    sim.add_fault(Fault::new("/cluster/resources", FaultAction::IgnoreParams));
    let r = s.ok("pve_list_vms", json!({})).await;
    assert_eq!(r["count"], 9, "{r}");
    assert!(
        r["guests"]
            .as_array()
            .unwrap()
            .iter()
            .all(|g| g["type"] == "qemu" || g["type"] == "lxc")
    );
    let ct = s.ok("pve_list_vms", json!({"type": "lxc"})).await;
    assert_eq!(ct["count"], 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn set_config_reports_what_changed_and_what_waits_for_a_restart() {
    let sim = simulator(0).await;
    let s = start_on(&sim, None, &[]).await;
    // A running VM takes the description at once; cores wait for a restart.
    let r = s
        .ok(
            "pve_vm_set_config",
            json!({"vmid": 101, "config": {"cores": 8, "description": "database"}, "delete": ["vga"]}),
        )
        .await;
    assert_eq!(r["changed"]["description"]["after"], "database", "{r}");
    assert!(r["changed"].get("cores").is_none(), "{r}");
    assert_eq!(r["pending"]["cores"], json!({"current": 4, "pending": 8}), "{r}");
    assert_eq!(r["restart_needed"], true);
    assert!(r["not_applied"]["vga"].as_str().unwrap().contains("not set"), "{r}");
    assert!(r["note"].as_str().unwrap().contains("cores"), "{r}");
    sim.with_state(|st| assert_eq!(st.guests[&101].config["cores"], 4));
    // The restart applies it.
    s.ok("pve_vm_power", json!({"vmid": 101, "action": "reboot"})).await;
    sim.with_state(|st| assert_eq!(st.guests[&101].config["cores"], 8));
    // A stopped guest changes at once.
    let r = s
        .ok("pve_vm_set_config", json!({"vmid": 102, "config": {"cores": 2}}))
        .await;
    assert_eq!(r["changed"]["cores"], json!({"before": 4, "after": 2}), "{r}");
    assert!(r.get("pending").is_none() && r.get("restart_needed").is_none(), "{r}");
    // A running container takes memory and cores at once; the OS type waits.
    let r = s
        .ok(
            "pve_vm_set_config",
            json!({"vmid": 201, "config": {"memory": 2048, "cores": 4, "ostype": "ubuntu"}}),
        )
        .await;
    assert_eq!(r["changed"]["memory"]["after"], 2048, "{r}");
    assert_eq!(r["changed"]["cores"]["after"], 4, "{r}");
    assert_eq!(r["pending"]["ostype"]["pending"], "ubuntu", "{r}");
    // Setting a value it already has changes nothing, and says so.
    let r = s
        .ok("pve_vm_set_config", json!({"vmid": 200, "config": {"cores": 1}}))
        .await;
    assert!(r["not_applied"]["cores"].as_str().unwrap().contains("already"), "{r}");
}

#[tokio::test(flavor = "multi_thread")]
async fn task_status_speaks_the_write_tools_vocabulary() {
    let sim = simulator(0).await;
    let s = start_on(&sim, None, &[]).await;
    let (failed, ok, running) = sim.with_state(|st| {
        let failed = st.start_task(
            "pve1",
            "qmstart",
            "100",
            "root@pam!sim",
            vec![],
            Box::new(|_| Err("VM 100 already running".into())),
        );
        let ok = st.start_task(
            "pve1",
            "qmstart",
            "102",
            "root@pam!sim",
            vec![],
            Box::new(|_| Ok(vec![])),
        );
        st.task_duration = std::time::Duration::from_secs(3600);
        let running = st.start_task(
            "pve2",
            "vzdump",
            "201",
            "root@pam!sim",
            vec![],
            Box::new(|_| Ok(vec![])),
        );
        (failed, ok, running)
    });
    let f = s.ok("pve_task_status", json!({"upid": failed})).await;
    assert_eq!(
        (f["status"].as_str(), f["pve_status"].as_str(), f["exitstatus"].as_str()),
        (Some("failed"), Some("stopped"), Some("VM 100 already running"))
    );
    let o = s.ok("pve_task_status", json!({"upid": ok})).await;
    assert_eq!(
        (o["status"].as_str(), o["pve_status"].as_str()),
        (Some("ok"), Some("stopped"))
    );
    let r = s.ok("pve_task_status", json!({"upid": running})).await;
    assert_eq!(
        (r["status"].as_str(), r["pve_status"].as_str()),
        (Some("running"), Some("running"))
    );
    let list = s.ok("pve_list_tasks", json!({})).await;
    let mut statuses: Vec<&str> = list["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["status"].as_str().unwrap())
        .collect();
    statuses.sort();
    assert_eq!(statuses, vec!["failed", "ok", "running"], "{list}");
}

#[tokio::test(flavor = "multi_thread")]
async fn resize_without_disks_and_migrate_to_an_offline_node() {
    let mut spec = pve_mcp::sim::spec::ClusterSpec::default_cluster();
    spec.task_duration_ms = 0;
    spec.guests.push(
        serde_json::from_value(json!({"vmid": 500, "type": "qemu", "node": "pve1", "status": "stopped",
                                      "config": {"name": "diskless", "cores": 1, "memory": "512"}}))
        .unwrap(),
    );
    let sim = simulator_with(spec).await;
    let s = start_on(&sim, None, &[]).await;
    let err = s
        .fails(
            "pve_vm_resize_disk",
            json!({"vmid": 500, "disk": "scsi0", "size": "+1G"}),
        )
        .await;
    assert!(err.contains("has no disks") && !err.contains("Its disks: ."), "{err}");
    let writes = sim.write_count();
    let err = s.fails("pve_vm_migrate", json!({"vmid": 102, "target": "pve3"})).await;
    assert!(err.contains("pve3 is offline") && err.contains("pve1"), "{err}");
    let err = s.fails("pve_vm_migrate", json!({"vmid": 102, "target": "pve9"})).await;
    assert!(
        err.contains("no node pve9") && err.contains("pve1, pve2, pve3"),
        "{err}"
    );
    assert_eq!(sim.write_count(), writes, "nothing is sent");
}

// How calls behave as MCP tool calls.

#[tokio::test(flavor = "multi_thread")]
async fn list_vms_filters() {
    let sim = simulator(0).await;
    let s = start_on(&sim, None, &[]).await;
    let all = structured(&s.call("pve_list_vms", json!({})).await);
    assert_eq!(all["count"], 9);
    let web = &all["guests"][0];
    assert_eq!((web["vmid"].as_u64(), web["name"].as_str()), (Some(100), Some("web")));
    assert_eq!(web["maxmem_human"], "4.00 GiB");
    assert_eq!(web["tags"], json!(["prod", "web"]));
    let tmpl = all["guests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["vmid"] == 9000)
        .unwrap();
    assert_eq!(tmpl["template"], true);

    let lxc = structured(&s.call("pve_list_vms", json!({"type": "lxc"})).await);
    assert_eq!(lxc["count"], 3);
    let stopped = structured(
        &s.call("pve_list_vms", json!({"status": "stopped", "node": "pve2"}))
            .await,
    );
    let ids: Vec<u64> = stopped["guests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["vmid"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, vec![102, 202]);
    let paused = structured(&s.call("pve_list_vms", json!({"status": "paused"})).await);
    assert_eq!(paused["guests"][0]["vmid"], 103);
    assert_eq!(paused["guests"][0]["qmpstatus"], "paused");
    assert_eq!(
        paused["skipped_nodes"],
        json!(["pve3"]),
        "the offline node is named, not fatal"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn vm_status_resolves_node_and_type_from_vmid() {
    let sim = simulator(0).await;
    let s = start_on(&sim, None, &[]).await;
    let r = s.call("pve_vm_status", json!({"vmid": 201})).await;
    assert!(!is_error(&r), "{}", text(&r));
    let v = structured(&r);
    assert_eq!(
        (v["node"].as_str(), v["type"].as_str(), v["name"].as_str()),
        (Some("pve2"), Some("lxc"), Some("proxy"))
    );
    assert_eq!(v["maxmem_human"], "1.00 GiB");
    assert_eq!(text(&r), v.to_string(), "the text content carries the same JSON");

    let missing = s.call("pve_vm_status", json!({"vmid": 999})).await;
    assert!(is_error(&missing));
    let msg = text(&missing);
    assert!(
        msg.contains("No guest has vmid 999")
            && msg.contains("100 (web), 101 (db)")
            && msg.contains("9000 (debian-12-cloud)"),
        "{msg}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn arguments_are_validated_before_the_script_runs() {
    let sim = simulator(0).await;
    let s = start_on(&sim, None, &[]).await;
    let r = s.call("pve_vm_power", json!({"vmid": 100, "action": "explode"})).await;
    assert!(is_error(&r));
    let msg = text(&r);
    assert!(msg.contains("'action'") && msg.contains("shutdown"), "{msg}");
    let r = s.call("pve_vm_status", json!({"vmid": "abc"})).await;
    assert!(text(&r).contains("'vmid'"), "{}", text(&r));
    let r = s.call("pve_vm_status", json!({"vmid": 100, "nmae": "x"})).await;
    assert!(is_error(&r) && text(&r).contains("nmae"), "{}", text(&r));
    let r = s.call("pve_vm_status", json!({})).await;
    assert!(is_error(&r) && text(&r).contains("vmid"), "{}", text(&r));
    assert_eq!(sim.request_count(), 0, "nothing may reach PVE for invalid arguments");
}

#[tokio::test(flavor = "multi_thread")]
async fn power_waits_for_the_task_and_reports_progress() {
    let sim = simulator(600).await;
    let s = start_on(&sim, None, &[]).await;
    let r = s.call("pve_vm_power", json!({"vmid": 101, "action": "shutdown"})).await;
    assert!(!is_error(&r), "{}", text(&r));
    let v = structured(&r);
    assert_eq!(v["task"]["status"], "ok");
    assert_eq!(v["task"]["type"], "qmshutdown");
    assert!(v["task"]["waited_seconds"].as_f64().unwrap() >= 0.5);
    assert!(
        !s.events.lock().unwrap().progress.is_empty(),
        "progress is reported while waiting"
    );
    assert_eq!(sim.with_state(|st| st.guests[&101].status), GuestStatus::Stopped);

    // Containers too.
    let r = s.call("pve_vm_power", json!({"vmid": 202, "action": "start"})).await;
    assert!(!is_error(&r), "{}", text(&r));
    assert_eq!(structured(&r)["task"]["type"], "vzstart");
    assert_eq!(sim.with_state(|st| st.guests[&202].status), GuestStatus::Running);
}

#[tokio::test(flavor = "multi_thread")]
async fn failures_in_task_or_at_once_are_failed_results() {
    let sim = simulator(0).await;
    let s = start_on(&sim, None, &[]).await;
    // QEMU accepts the start of a running VM; its task fails.
    let r = s.call("pve_vm_power", json!({"vmid": 100, "action": "start"})).await;
    assert!(is_error(&r));
    let msg = text(&r);
    assert!(
        msg.contains("VM 100 already running") && msg.contains("TASK ERROR"),
        "{msg}"
    );
    // LXC refuses at once.
    let r = s.call("pve_vm_power", json!({"vmid": 202, "action": "stop"})).await;
    assert!(is_error(&r));
    assert!(text(&r).contains("CT 202 not running"), "{}", text(&r));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_task_still_running_returns_its_upid() {
    let sim = simulator(5000).await;
    let s = start_on(&sim, None, &[("PVE_MCP_TASK_WAIT", "1")]).await;
    let r = s.call("pve_vm_power", json!({"vmid": 200, "action": "reboot"})).await;
    assert!(!is_error(&r), "{}", text(&r));
    let v = structured(&r);
    assert_eq!(v["task"]["status"], "running");
    let upid = v["task"]["upid"].as_str().unwrap();
    assert!(
        upid.starts_with("UPID:pve1:") && upid.contains(":vzreboot:200:root@pam!sim:"),
        "{upid}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn delete_without_confirm_is_a_plan_and_sends_nothing() {
    let sim = simulator(0).await;
    let s = start_on(&sim, None, &[]).await;

    let r = s.call("pve_vm_delete", json!({"vmid": 102, "purge": true})).await;
    assert!(!is_error(&r), "{}", text(&r));
    let plan = structured(&r);
    assert_eq!(plan["status"], "confirmation_required");
    assert_eq!(plan["performed"], false);
    assert_eq!(plan["explanation"]["guest"]["name"], "win11");
    assert_eq!(plan["explanation"]["guest"]["node"], "pve2");
    assert_eq!(plan["explanation"]["guest"]["status"], "stopped");
    let disks: Vec<&str> = plan["explanation"]["will_be_lost"]["disks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["volume"].as_str().unwrap())
        .collect();
    assert_eq!(
        disks,
        vec![
            "local-lvm:vm-102-disk-1",
            "local-lvm:vm-102-disk-0",
            "local-lvm:vm-102-disk-2"
        ]
    );
    assert_eq!(
        plan["requests"],
        json!([{"method": "DELETE", "path": "/nodes/pve2/qemu/102", "params": {"purge": true}, "class": "destructive"}])
    );
    assert!(text(&r).contains("confirm=true"));
    assert_eq!(sim.write_count(), 0, "a plan sends nothing");
    assert!(sim.with_state(|st| st.guests.contains_key(&102)));

    let r = s
        .call("pve_vm_delete", json!({"vmid": 102, "purge": true, "confirm": true}))
        .await;
    assert!(!is_error(&r), "{}", text(&r));
    assert_eq!(structured(&r)["deleted"]["vmid"], 102);
    assert_eq!(sim.write_count(), 1);
    assert!(sim.with_state(|st| !st.guests.contains_key(&102)));
    let gone = s.call("pve_vm_status", json!({"vmid": 102})).await;
    assert!(text(&gone).contains("No guest has vmid 102"));
}

#[tokio::test(flavor = "multi_thread")]
async fn deleting_a_running_guest_explains_it_must_be_stopped() {
    let sim = simulator(0).await;
    let s = start_on(&sim, None, &[]).await;
    for confirm in [false, true] {
        let r = s.call("pve_vm_delete", json!({"vmid": 200, "confirm": confirm})).await;
        assert!(is_error(&r));
        assert!(text(&r).contains("must be stopped"), "{}", text(&r));
    }
    assert_eq!(sim.write_count(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_privileges_are_explained() {
    let sim = simulator(0).await;
    let s = start_on(&sim, Some(sim_tokens::AUDITOR), &[]).await;
    let r = s.call("pve_vm_power", json!({"vmid": 100, "action": "stop"})).await;
    assert!(is_error(&r));
    let msg = text(&r);
    assert!(msg.contains("lacks VM.PowerMgmt on /vms/100"), "{msg}");
    assert!(
        msg.contains("builtin:pve_vm_power.rhai:"),
        "the script location is given: {msg}"
    );
    assert!(!msg.contains(sim_tokens::AUDITOR.1) && !s.stderr_text().contains(sim_tokens::AUDITOR.1));
    assert_eq!(sim.with_state(|st| st.guests[&100].status), GuestStatus::Running);
}

#[tokio::test(flavor = "multi_thread")]
async fn verifying_the_self_signed_certificate_fails_with_a_hint() {
    let sim = simulator(0).await;
    let s = start_on(&sim, None, &[("PVE_VERIFY_SSL", "true")]).await;
    let r = s.call("pve_list_vms", json!({})).await;
    assert!(is_error(&r));
    let msg = text(&r);
    assert!(
        msg.contains("TLS handshake with 127.0.0.1:") && msg.contains("PVE_VERIFY_SSL=false"),
        "{msg}"
    );
}

/// A transient failure while polling a task is retried until the wait ends; a malformed
/// status answer is an immediate, clear error; both name the UPID of the task that was started.
#[tokio::test(flavor = "multi_thread")]
async fn task_waits_survive_transient_failures_and_name_the_task() {
    use pve_mcp::sim::faults::{Fault, FaultAction};
    let sim = simulator(300).await;
    let s = start_on(&sim, None, &[]).await;
    sim.add_fault(
        Fault::new(
            "/nodes/*/tasks/*/status",
            FaultAction::Status(502, "Bad Gateway".into()),
        )
        .times(2),
    );
    let r = s
        .call("pve_snapshot_create", json!({"vmid": 100, "snapname": "wait1"}))
        .await;
    assert!(!is_error(&r), "two 502s while polling are retried: {}", text(&r));
    assert_eq!(structured(&r)["status"], "ok", "{}", text(&r));

    sim.clear_faults();
    sim.add_fault(Fault::new("/nodes/*/tasks/*/status", FaultAction::MalformedJson));
    let r = s
        .call("pve_snapshot_create", json!({"vmid": 100, "snapname": "wait2"}))
        .await;
    assert!(is_error(&r), "{}", text(&r));
    let t = text(&r);
    assert!(t.contains("UPID:"), "the started task is named: {t}");
    assert!(t.contains("pve_task_status"), "{t}");

    sim.clear_faults();
    sim.add_fault(Fault::new(
        "/nodes/*/tasks/*/status",
        FaultAction::Status(403, "Permission check failed (/nodes/pve1, Sys.Audit)".into()),
    ));
    let r = s
        .call("pve_snapshot_create", json!({"vmid": 100, "snapname": "wait3"}))
        .await;
    assert!(is_error(&r), "{}", text(&r));
    let t = text(&r);
    assert!(t.contains("UPID:") && t.contains("was started"), "{t}");
}
