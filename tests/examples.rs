//! The example tools of `examples/scripts/`: their own tests pass under `pve-mcp test`, and a
//! host runs them over MCP (rmcp's client, the real binary, `examples/scripts` as the user
//! script directory) against the simulated cluster they are written for.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stderr,
    reason = "test code: a panic is the failure report"
)]
#![cfg(feature = "simulator")]

mod common;

use std::path::{Path, PathBuf};

use common::*;
use pve_mcp::sim::spec::{ClusterSpec, GuestStatus};
use serde_json::{Value, json};

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/scripts")
}

const EXAMPLES: [&str; 5] = [
    "backup_audit",
    "cluster_report",
    "safe_upgrade",
    "snapshot_tagged",
    "stop_idle",
];

#[tokio::test(flavor = "multi_thread")]
async fn the_examples_pass_their_own_tests() {
    let home = tempfile::tempdir().unwrap();
    let mut cmd = tokio::process::Command::new(bin());
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_clear()
        .env("HOME", home.path())
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .args(["test", "examples/scripts"]);
    if let Ok(log) = std::env::var("PVE_MCP_SIM_REQUEST_LOG") {
        cmd.args(["--request-log", &log]);
    }
    let o = cmd.output().await.unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&o.stderr));
    assert!(stdout.contains(" 0 failed"), "{stdout}");
    for tool in EXAMPLES {
        assert!(stdout.contains(&format!("({tool})")), "{tool} has no tests: {stdout}");
        let lines = std::fs::read_to_string(examples().join(format!("{tool}.rhai")))
            .unwrap()
            .lines()
            .count();
        assert!(lines <= 40, "{tool}.rhai has {lines} lines; an example stays short");
    }
}

/// The binary with `examples/scripts` itself as its script directory (the harness's own
/// directory is overridden), against `sim`.
async fn serve(sim: &pve_mcp::sim::Simulator, extra: &[(&str, &str)]) -> Server {
    let dir = examples().display().to_string();
    let mut env: Vec<(&str, &str)> = vec![("PVE_MCP_SCRIPTS", &dir)];
    env.extend_from_slice(extra);
    start_on(sim, None, &env).await
}

async fn lab() -> pve_mcp::sim::Simulator {
    simulator_with(ClusterSpec::load(&examples().join("tests/lab.json")).unwrap()).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_host_lists_and_runs_the_examples() {
    let sim = lab().await;
    let s = serve(&sim, &[("PVE_MCP_ENABLE_EXEC", "true")]).await;
    let tools = s.client.list_all_tools().await.unwrap();
    for name in EXAMPLES {
        assert!(tools.iter().any(|t| t.name == name), "{name} is not listed");
    }
    let annotations = |name: &str| {
        let t = tools.iter().find(|t| t.name == name).unwrap();
        serde_json::to_value(t.annotations.clone().unwrap()).unwrap()
    };
    assert_eq!(annotations("backup_audit")["readOnlyHint"], true);
    assert_eq!(
        annotations("safe_upgrade")["destructiveHint"],
        true,
        "it runs commands in a guest"
    );

    let r = s.ok("snapshot_tagged", json!({"tag": "prod"})).await;
    assert_eq!((r["ok"].as_i64(), r["failed"].as_i64()), (Some(3), Some(1)), "{r}");
    let snapname = r["snapshot"].as_str().unwrap().to_string();
    assert!(sim.with_state(|st| st.guests[&100].snapshots.iter().any(|x| x.name == snapname)));

    let r = s.ok("backup_audit", json!({"days": 7})).await;
    assert_eq!(r["stale"][0]["vmid"], 101, "{r}");

    let r = s.ok("cluster_report", json!({})).await;
    assert!(
        r["summary"]
            .as_str()
            .unwrap()
            .starts_with("lab: quorate, 2/3 nodes online"),
        "{r}"
    );

    let r = s.ok("safe_upgrade", json!({"vmid": 100})).await;
    assert_eq!(r["upgraded"], true, "{r}");
    assert_eq!(r["rollback"]["tool"], "pve_snapshot_rollback");
}

#[tokio::test(flavor = "multi_thread")]
async fn stop_idle_is_planned_then_confirmed_over_mcp() {
    let sim = lab().await;
    let s = serve(&sim, &[]).await;
    let writes = sim.write_count();
    let plan = s.call("stop_idle", json!({})).await;
    assert!(!is_error(&plan), "{}", text(&plan));
    let meta = plan.meta.clone().map(|m| Value::Object(m.0)).unwrap_or(Value::Null);
    assert!(meta.get("pve-mcp/plan").is_some(), "a core plan is marked: {meta}");
    let plan = structured(&plan);
    assert_eq!(plan["status"], "confirmation_required");
    assert_eq!(plan["explanation"]["would_shut_down"].as_array().unwrap().len(), 2);
    assert_eq!(sim.write_count(), writes, "the dry run sent nothing");

    let done = s
        .ok(
            "stop_idle",
            json!({"confirm": true, "confirm_token": plan["confirm_token"]}),
        )
        .await;
    assert_eq!(done["shut_down"].as_array().unwrap().len(), 2, "{done}");
    sim.with_state(|st| {
        assert_eq!(st.guests[&101].status, GuestStatus::Stopped);
        assert_eq!(st.guests[&200].status, GuestStatus::Stopped);
        assert_eq!(st.guests[&103].status, GuestStatus::Running, "tagged keep");
    });
    // The same token again: a plan runs once.
    let again = s
        .call(
            "stop_idle",
            json!({"confirm": true, "confirm_token": plan["confirm_token"]}),
        )
        .await;
    assert!(is_error(&again), "{}", text(&again));
}
