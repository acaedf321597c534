//! PVE requests per call. The vmid → node/type map: one request per guest call in steady state, migrated
//! guests still found, deleted ones reported, writes never sent twice.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stderr,
    reason = "test code: a panic is the failure report"
)]
#![cfg(feature = "simulator")]

mod common;

use serde_json::json;

use common::{logged_requests as logged, logged_simulator as logged_sim};

#[tokio::test]
async fn a_guest_call_makes_one_request_in_steady_state() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("requests.jsonl");
    let sim = logged_sim(&log).await;
    let server = common::start_on(&sim, None, &[]).await;

    let first = server.ok("pve_vm_status", json!({"vmid": 100})).await;
    assert_eq!(first["node"], "pve1");
    for tool in ["pve_vm_status", "pve_vm_status", "pve_vm_status"] {
        let before = logged(&log).len();
        let out = server.ok(tool, json!({"vmid": 100})).await;
        assert_eq!(out["status"], "running");
        assert_eq!(out["node"], "pve1");
        let sent = &logged(&log)[before..];
        assert_eq!(sent.len(), 1, "{tool}: {sent:?}");
        assert!(sent[0].1.ends_with("/nodes/pve1/qemu/100/status/current"), "{sent:?}");
    }

    // A listing refreshes the map: the next guest call needs no lookup of its own.
    server.ok("pve_list_vms", json!({})).await;
    let before = logged(&log).len();
    let out = server.ok("pve_vm_status", json!({"vmid": 201})).await;
    assert_eq!(out["type"], "lxc");
    assert_eq!(logged(&log).len() - before, 1, "{:?}", &logged(&log)[before..]);
}

#[tokio::test]
async fn a_guest_migrated_between_calls_is_found_where_it_is_now() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("requests.jsonl");
    let sim = logged_sim(&log).await;
    let server = common::start_on(&sim, None, &[]).await;

    assert_eq!(server.ok("pve_vm_status", json!({"vmid": 102})).await["node"], "pve2");
    sim.with_state(|st| st.guests.get_mut(&102).unwrap().node = "pve1".into());

    let before = logged(&log).len();
    let out = server.ok("pve_vm_status", json!({"vmid": 102})).await;
    assert_eq!(out["node"], "pve1");
    assert_eq!(out["status"], "stopped");
    let sent: Vec<String> = logged(&log)[before..].iter().map(|(_, p)| p.clone()).collect();
    assert!(sent.iter().any(|p| p.ends_with("/cluster/resources")), "{sent:?}");
    assert!(
        sent.last().unwrap().ends_with("/nodes/pve1/qemu/102/status/current"),
        "{sent:?}"
    );

    // Found again at the new place: back to one request.
    let before = logged(&log).len();
    assert_eq!(server.ok("pve_vm_status", json!({"vmid": 102})).await["node"], "pve1");
    assert_eq!(logged(&log).len() - before, 1);

    // A write after a migration goes to the new node, and only once.
    sim.with_state(|st| st.guests.get_mut(&102).unwrap().node = "pve2".into());
    let before = logged(&log).len();
    let out = server.ok("pve_vm_power", json!({"vmid": 102, "action": "start"})).await;
    assert_eq!(out["node"], "pve2", "{out}");
    let writes: Vec<(String, String)> = logged(&log)[before..]
        .iter()
        .filter(|(m, _)| m != "GET")
        .cloned()
        .collect();
    assert_eq!(writes.len(), 1, "{writes:?}");
    assert!(writes[0].1.ends_with("/nodes/pve2/qemu/102/status/start"), "{writes:?}");
    assert!(sim.with_state(|st| st.guests[&102].running()));
}

#[tokio::test]
async fn a_guest_deleted_between_calls_is_reported_as_not_existing() {
    let sim = common::simulator(0).await;
    let server = common::start_on(&sim, None, &[]).await;
    server.ok("pve_vm_status", json!({"vmid": 202})).await;
    sim.with_state(|st| st.guests.remove(&202));
    let msg = server.fails("pve_vm_status", json!({"vmid": 202})).await;
    assert!(msg.contains("No guest has vmid 202"), "{msg}");
    let msg = server.fails("pve_vm_config", json!({"vmid": 202})).await;
    assert!(msg.contains("No guest has vmid 202"), "{msg}");
}

#[tokio::test]
async fn the_guest_list_is_one_request_and_still_names_offline_nodes() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("requests.jsonl");
    let sim = logged_sim(&log).await;
    let server = common::start_on(&sim, None, &[]).await;
    let before = logged(&log).len();
    let out = server.ok("pve_list_vms", json!({})).await;
    let sent = &logged(&log)[before..];
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(out["count"], 9);
    assert_eq!(out["offline_nodes"], json!(["pve3"]));
    let g104 = out["guests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["vmid"] == 104)
        .unwrap();
    assert_eq!(g104["node_online"], false);
    // Only guests, whatever else the list holds.
    assert!(
        out["guests"]
            .as_array()
            .unwrap()
            .iter()
            .all(|g| g["type"] == "qemu" || g["type"] == "lxc")
    );
}
