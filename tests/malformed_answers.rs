//! Every built-in tool against PVE answers of the wrong shape: `{"data": null}`, a string
//! where a list or an object belongs, a list of strings, missing fields, and a proxy's HTML
//! error page, each injected on every endpoint the tool reads. The tool must say which
//! endpoint answered what and that PVE or a proxy sent something unexpected, never show
//! the script engine's internals.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stderr,
    reason = "test code: a panic is the failure report"
)]
#![cfg(feature = "simulator")]

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::*;
use pve_mcp::api::Method;
use pve_mcp::sim::faults::{Fault, FaultAction};
use serde_json::{Value, json};

/// Words of the script engine that a user must never see as the explanation.
const INTERNALS: [&str; 10] = [
    "For loop expects",
    "Function not found",
    "got char",
    "Data type incorrect",
    "Output type incorrect",
    "cannot be indexed",
    "Property not found",
    "takes an object map",
    "Indexing",
    "Runtime error",
];

/// The GET paths the simulator logged after byte `from` of its request log.
fn gets_since(log: &Path, from: usize) -> Vec<String> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for line in text[from.min(text.len())..].lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        if v["method"] == "GET" {
            let p = v["path"].as_str().unwrap().to_string();
            if seen.insert(p.clone()) {
                out.push(p);
            }
        }
    }
    out
}

fn log_len(log: &Path) -> usize {
    std::fs::metadata(log).map(|m| m.len() as usize).unwrap_or(0)
}

/// The tools and arguments to try; `{i}` in a string becomes the attempt's number, so that
/// a write can be repeated (a new snapshot name each time).
fn cases() -> Vec<(&'static str, Value)> {
    vec![
        ("pve_cluster_status", json!({})),
        ("pve_list_nodes", json!({})),
        ("pve_node_status", json!({"node": "pve1"})),
        ("pve_list_vms", json!({})),
        ("pve_list_vms", json!({"status": "paused"})),
        ("pve_vm_status", json!({"vmid": 100})),
        ("pve_vm_status", json!({"vmid": 200})),
        ("pve_vm_config", json!({"vmid": 100})),
        ("pve_vm_config", json!({"vmid": 201})),
        ("pve_list_storage", json!({})),
        ("pve_storage_content", json!({"storage": "local"})),
        ("pve_list_backups", json!({})),
        ("pve_list_snapshots", json!({"vmid": 100})),
        ("pve_list_tasks", json!({})),
        ("pve_task_status", json!({"upid": "{upid}"})),
        ("pve_vm_power", json!({"vmid": 100, "action": "reboot"})),
        ("pve_vm_migrate", json!({"vmid": 102, "target": "pve1"})),
        ("pve_vm_set_config", json!({"vmid": 101, "config": {"cores": 2}})),
        (
            "pve_vm_resize_disk",
            json!({"vmid": 101, "disk": "scsi0", "size": "+1G"}),
        ),
        ("pve_vm_clone", json!({"vmid": 9000, "name": "c{i}", "full": false})),
        ("pve_vm_exec", json!({"vmid": 101, "command": "id"})),
        ("pve_snapshot_create", json!({"vmid": 100, "snapname": "s{i}"})),
        ("pve_snapshot_rollback", json!({"vmid": 100, "snapname": "s0"})),
        ("pve_snapshot_delete", json!({"vmid": 100, "snapname": "s0"})),
        ("pve_vm_delete", json!({"vmid": 202})),
        ("pve_backup_create", json!({"vmid": 100, "storage": "nfs-backup"})),
        ("pve_backup_restore", json!({"archive": "{archive}", "vmid": 400})),
    ]
}

fn fill(v: &Value, i: usize, upid: &str, archive: &str) -> Value {
    match v {
        Value::String(s) => Value::String(
            s.replace("{i}", &i.to_string())
                .replace("{upid}", upid)
                .replace("{archive}", archive),
        ),
        Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), fill(v, i, upid, archive))).collect()),
        other => other.clone(),
    }
}

/// Arguments that work again after the last attempt changed the cluster: a migration to
/// the node the guest is not on, a restore to a free vmid.
fn repeatable(sim: &pve_mcp::sim::Simulator, tool: &str, args: &mut Value, attempt: usize) {
    match tool {
        "pve_vm_migrate" => {
            let on = sim.with_state(|st| st.guests[&102].node.clone());
            args["target"] = json!(if on == "pve1" { "pve2" } else { "pve1" });
        }
        "pve_backup_restore" => args["vmid"] = json!(5_000 + attempt),
        _ => {}
    }
}

fn faults() -> Vec<(&'static str, FaultAction)> {
    vec![
        ("null", FaultAction::Data(Value::Null)),
        ("a string", FaultAction::Data(json!("unexpected"))),
        ("a list of strings", FaultAction::Data(json!(["a", "b"]))),
        ("an object", FaultAction::Data(json!({"unexpected": 1}))),
        (
            "missing fields",
            FaultAction::Omit(
                [
                    "vmid", "node", "type", "status", "name", "storage", "volid", "upid", "content", "snaptime",
                ]
                .map(String::from)
                .to_vec(),
            ),
        ),
        ("an HTML page", FaultAction::HtmlPage(502)),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn every_tool_explains_a_malformed_answer_on_every_endpoint_it_reads() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("requests.jsonl");
    let mut opts = pve_mcp::sim::SimOptions::new(pve_mcp::sim::spec::ClusterSpec::default_cluster());
    opts.request_log = Some(log.clone());
    let sim = pve_mcp::sim::Simulator::start(opts).await.unwrap();
    let s = start_on(
        &sim,
        None,
        &[("PVE_MCP_TASK_WAIT", "3"), ("PVE_MCP_ENABLE_EXEC", "true")],
    )
    .await;
    // A finished task to look at, and a backup archive of the built-in cluster.
    let started = s
        .ok("pve_snapshot_create", json!({"vmid": 100, "snapname": "s0"}))
        .await;
    let upid = started["upid"].as_str().unwrap_or_default().to_string();
    assert!(upid.starts_with("UPID:"), "{started}");
    let archive = "nfs-backup:backup/vzdump-qemu-100-2026_01_15-01_00_02.vma.zst";
    let mut failures = Vec::new();
    let (mut tried, mut explained) = (0, 0);
    let mut attempt = 1;
    for (tool, args) in cases() {
        let from = log_len(&log);
        let mut first = fill(&args, attempt, &upid, archive);
        attempt += 1;
        repeatable(&sim, tool, &mut first, attempt);
        let plain = s.call(tool, first).await;
        let reads = gets_since(&log, from);
        assert!(!reads.is_empty(), "{tool} reads something: {}", text(&plain));
        for path in &reads {
            for (what, action) in faults() {
                sim.add_fault(Fault::new(path, action.clone()).method(Method::Get));
                let mut args = fill(&args, attempt, &upid, archive);
                attempt += 1;
                repeatable(&sim, tool, &mut args, attempt);
                let r = s.call(tool, args.clone()).await;
                sim.clear_faults();
                tried += 1;
                if !is_error(&r) {
                    continue;
                }
                let t = text(&r);
                let mut problems = Vec::new();
                if let Some(w) = INTERNALS.iter().find(|w| t.contains(*w)) {
                    problems.push(format!("shows the engine's '{w}'"));
                }
                match &action {
                    FaultAction::HtmlPage(_) if !t.contains("proxy") || !t.contains(path.as_str()) => {
                        problems.push("does not say a proxy answered that endpoint".into());
                    }
                    // An object with other keys, or rows without some fields, may still
                    // be read as an answer (a guest config without disks): the tool may
                    // then fail on what it found, in its own words.
                    FaultAction::Data(v) if v.is_object() => {}
                    FaultAction::Omit(_) => {}
                    FaultAction::Data(_) => {
                        let says = t.contains("unexpected") || t.contains("proxy");
                        // The tool may fail on a later request (a write PVE refused) rather
                        // than on the malformed answer; then it is PVE's own error.
                        let pve_error = t.contains("PVE failed")
                            || t.contains("PVE rejected")
                            || t.contains("No guest has vmid")
                            || t.contains("does not exist");
                        if !pve_error && (!says || !t.contains(path.as_str())) {
                            problems.push("does not name the endpoint and say its answer was unexpected".into());
                        } else if says {
                            explained += 1;
                        }
                    }
                    _ => {}
                }
                if !problems.is_empty() {
                    failures.push(format!(
                        "{tool} {args} with {what} from GET {path}: {}:\n  {t}",
                        problems.join(", ")
                    ));
                }
            }
        }
    }
    eprintln!("{tried} malformed answers tried, {explained} explained as unexpected");
    assert!(
        failures.is_empty(),
        "{} of {tried}:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(explained > 50, "most malformed answers stop a tool: {explained}");
    // The server is still fine.
    s.ok("pve_list_vms", json!({})).await;
}

/// The sentence itself, for one tool: endpoint, what came back, who sent it.
#[tokio::test(flavor = "multi_thread")]
async fn a_null_answer_names_the_endpoint_and_what_it_returned() {
    let sim = simulator(0).await;
    let s = start_on(&sim, None, &[]).await;
    sim.add_fault(Fault::new("/cluster/resources", FaultAction::Data(Value::Null)));
    let r = s.call("pve_list_vms", json!({})).await;
    assert!(is_error(&r));
    let t = text(&r);
    assert!(
        t.contains("PVE, or a proxy in front of it, sent something unexpected: GET /cluster/resources answered with null (no data)"),
        "{t}"
    );
    assert!(t.contains("PVE_HOST"), "{t}");
    let st = structured(&r);
    assert_eq!(st["error"], "unexpected_answer", "{st}");
    assert!(st["script_detail"].as_str().is_some(), "{st}");
    // The same from a helper (resolve_vmid) the script lets through: still the answer's
    // fault, not the script's.
    sim.clear_faults();
    sim.add_fault(Fault::new("/cluster/resources", FaultAction::Data(json!("not a list"))));
    let r = s.call("pve_vm_status", json!({"vmid": 100})).await;
    let st = structured(&r);
    assert_eq!(st["error"], "unexpected_answer", "{st}");
    assert!(text(&r).contains("GET /cluster/resources"), "{}", text(&r));
    sim.clear_faults();
    sim.add_fault(Fault::new("/cluster/resources", FaultAction::HtmlPage(502)));
    let t = s.fails("pve_vm_status", json!({"vmid": 100})).await;
    assert!(
        t.contains("A proxy in front of PVE, not PVE itself, answered GET /cluster/resources with HTTP 502"),
        "{t}"
    );
}
