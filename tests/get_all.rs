//! `pve::get_all`: answers in the items' order, PVE errors as entries, every item checked by
//! the gate before any is sent, and the requests in flight together.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stderr,
    reason = "test code: a panic is the failure report"
)]
#![cfg(feature = "simulator")]

mod common;

use std::path::Path;
use std::time::Duration;

use pve_mcp::api::Method;
use pve_mcp::sim::faults::{Fault, FaultAction};
use serde_json::json;

const FANOUT: &str = r#"
const TOOL = #{ description: "Reads the given paths at once.", class: "read",
    params: #{ type: "object", properties: #{ paths: #{ type: "array" } }, required: ["paths"] } };
fn run(args) {
    let out = pve::get_all(args.paths);
    #{ answers: out }
}
"#;

use common::logged_simulator as logged_sim;

fn logged_paths(log: &Path) -> Vec<String> {
    common::logged_requests(log).into_iter().map(|(_, path)| path).collect()
}

async fn server(sim: &pve_mcp::sim::Simulator, extra: &[(&str, &str)]) -> common::Server {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("fanout.rhai"), FANOUT).unwrap();
    let (id, secret) = sim.token().unwrap();
    let mut env = vec![
        ("PVE_TOKEN_ID", id.as_str()),
        ("PVE_TOKEN_SECRET", secret.as_str()),
        ("PVE_VERIFY_SSL", "false"),
    ];
    env.extend_from_slice(extra);
    common::start(&sim.https_url().unwrap(), dir, &env).await
}

#[tokio::test]
async fn answers_come_in_order_with_errors_as_entries() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("requests.jsonl");
    let sim = logged_sim(&log).await;
    let s = server(&sim, &[]).await;
    let out = s
        .ok(
            "fanout",
            json!({"paths": [
                "/version",
                ["nodes", "pve1", "qemu", 100, "status", "current"],
                {"path": "/cluster/resources", "params": {"type": "vm"}},
                "/nodes/pve1/qemu/999/status/current"
            ]}),
        )
        .await;
    let answers = out["answers"].as_array().unwrap();
    assert_eq!(answers.len(), 4, "{out}");
    assert!(answers[0]["data"]["version"].is_string(), "{out}");
    assert_eq!(answers[1]["data"]["vmid"], 100, "{out}");
    let rows = answers[2]["data"].as_array().unwrap();
    assert!(
        !rows.is_empty() && rows.iter().all(|r| r["type"] == "qemu" || r["type"] == "lxc"),
        "{out}"
    );
    // A guest that does not exist: PVE's error, as the map pve::get would throw.
    assert_eq!(answers[3]["error"]["kind"], "pve", "{out}");
    assert!(answers[3].get("data").is_none(), "{out}");
    let sent = logged_paths(&log);
    assert!(sent.iter().any(|p| p.ends_with("/cluster/resources")), "{sent:?}");
}

#[tokio::test]
async fn a_refused_item_stops_the_batch_before_anything_is_sent() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("requests.jsonl");
    let sim = logged_sim(&log).await;
    let s = server(&sim, &[]).await;
    // Exec is off: reading a command's output is refused, and so the items before it, which
    // the gate allowed, must not leave the process either.
    let message = s
        .fails(
            "fanout",
            json!({"paths": [
                "/version",
                "/nodes/pve1/status",
                {"path": "/nodes/pve1/qemu/100/agent/exec-status", "params": {"pid": 1}}
            ]}),
        )
        .await;
    assert!(message.contains("exec-status"), "{message}");
    let sent = logged_paths(&log);
    assert!(
        !sent
            .iter()
            .any(|p| p.ends_with("/version") || p.ends_with("/nodes/pve1/status") || p.contains("agent")),
        "sent before or despite the refusal: {sent:?}"
    );
}

#[tokio::test]
async fn the_requests_are_in_flight_together() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("requests.jsonl");
    let sim = logged_sim(&log).await;
    let s = std::sync::Arc::new(server(&sim, &[("PVE_TIMEOUT", "5")]).await);
    // The first item never answers. One after another, nothing after it would be sent until
    // it times out; together, the others reach PVE while it hangs.
    sim.add_fault(Fault::new("/nodes/pve1/status", FaultAction::Hang).method(Method::Get));
    let call = {
        let s = s.clone();
        tokio::spawn(async move {
            s.call(
                "fanout",
                json!({"paths": ["/nodes/pve1/status", "/nodes/pve2/status", "/version"]}),
            )
            .await
        })
    };
    let mut seen = Vec::new();
    for _ in 0..80 {
        seen = logged_paths(&log);
        if seen.iter().any(|p| p.ends_with("/nodes/pve2/status")) && seen.iter().any(|p| p.ends_with("/version")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!call.is_finished(), "the hanging read had already ended: {seen:?}");
    assert!(
        seen.iter().any(|p| p.ends_with("/nodes/pve2/status")) && seen.iter().any(|p| p.ends_with("/version")),
        "the other reads waited for the hanging one: {seen:?}"
    );
    let r = call.await.unwrap();
    let out = common::structured(&r);
    // The hanging read ends as a timeout entry; the others have their answers.
    let answers = out["answers"]
        .as_array()
        .unwrap_or_else(|| panic!("{}", common::text(&r)));
    assert!(answers[0]["error"].is_object(), "{out}");
    assert!(
        answers[1]["data"].is_object() && answers[2]["data"]["version"].is_string(),
        "{out}"
    );
}
