//! The tools end to end: the real binary over stdio, rmcp's client, the simulated cluster
//! over HTTPS.

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
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn tools_list_carries_class_annotations_and_confirm() {
    let sim = simulator(0).await;
    let s = start_on(&sim, None, &[]).await;
    let tools = s.client.list_all_tools().await.unwrap();
    let get = |n: &str| {
        tools
            .iter()
            .find(|t| t.name == n)
            .unwrap_or_else(|| panic!("{n} missing"))
            .clone()
    };
    let ann = |n: &str| serde_json::to_value(get(n).annotations.unwrap()).unwrap();

    let read = ann("pve_list_vms");
    assert_eq!(read["readOnlyHint"], true);
    assert_eq!(read["openWorldHint"], true);
    let write = ann("pve_vm_power");
    assert_eq!(write["readOnlyHint"], false);
    assert_eq!(
        write["destructiveHint"], false,
        "write tools must say destructiveHint: false explicitly"
    );
    let destructive = ann("pve_vm_delete");
    assert_eq!(destructive["destructiveHint"], true);

    let schema = serde_json::to_value(&*get("pve_vm_delete").input_schema).unwrap();
    assert_eq!(schema["properties"]["confirm"]["type"], "boolean");
    assert_eq!(schema["required"], json!(["vmid"]));
    let power = serde_json::to_value(&*get("pve_vm_power").input_schema).unwrap();
    assert!(power["properties"].get("confirm").is_none());
    assert_eq!(
        power["properties"]["action"]["enum"],
        json!(["start", "shutdown", "stop", "reboot", "suspend", "resume"])
    );
}

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
