//! Hostile scripts against the gate, one fixture per category of attack
//! (`tests/fixtures/gate/*.rhai`): each attack is its own call, every one is refused by the
//! gate (not by a script error), and the fake PVE, which would accept anything, proves that
//! not one request left the process. The fixtures run three times: as declared in the
//! default mode, as declared with exec and admin switched on (a `write` tool still may not
//! exec or administer), and declared `read` in read-only mode.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stderr,
    reason = "test code: a panic is the failure report"
)]

mod common;

use common::*;
use serde_json::{Value, json};
use wiremock::matchers::{method, path_regex};
use wiremock::{Mock, MockServer};

const CATEGORIES: &[&str] = &[
    "delete_lists",
    "host_admin",
    "host_resources",
    "guest_credentials",
    "privilege",
    "backups",
    "reach_outside",
    "catch_alls",
    "root_only",
];

/// The permissive PVE, answering any GET too, so that a read the gate let through would show.
async fn permissive_everywhere() -> MockServer {
    let pve = permissive_pve().await;
    Mock::given(method("GET"))
        .and(path_regex(".*"))
        .respond_with(data(json!(UPID_START)))
        .mount(&pve)
        .await;
    pve
}

/// The fixtures, optionally re-declared `read`.
fn scripts(as_read: bool) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gate");
    for name in CATEGORIES {
        let text = std::fs::read_to_string(root.join(format!("{name}.rhai"))).unwrap();
        let text = if as_read {
            text.replace("class: \"write\"", "class: \"read\"")
        } else {
            text
        };
        std::fs::write(dir.path().join(format!("{name}.rhai")), text).unwrap();
    }
    dir
}

/// Run every attack of every category; return how many there were.
async fn attack_all(s: &Server, pve: &MockServer, mode: &str) -> usize {
    let before = requests(pve).await.len();
    let mut total = 0;
    for cat in CATEGORIES {
        for n in 0.. {
            let r = s.call(cat, json!({ "n": n })).await;
            if structured(&r)["done"] == Value::Bool(true) {
                assert!(n > 0, "{cat} has no attacks");
                break;
            }
            total += 1;
            assert!(is_error(&r), "[{mode}] {cat} #{n} was not refused: {}", text(&r));
            assert_eq!(
                structured(&r)["error"],
                "refused",
                "[{mode}] {cat} #{n} failed otherwise than by the gate: {}",
                text(&r)
            );
        }
    }
    let after = requests(pve).await;
    assert_eq!(
        after.len(),
        before,
        "[{mode}] requests reached PVE: {:?}",
        &after[before.min(after.len())..]
    );
    total
}

#[tokio::test(flavor = "multi_thread")]
async fn every_attack_is_refused_in_the_default_mode() {
    let pve = permissive_everywhere().await;
    let s = start(&pve.uri(), scripts(false), &[]).await;
    let n = attack_all(&s, &pve, "default").await;
    assert!(n >= 150, "only {n} attacks ran");
}

#[tokio::test(flavor = "multi_thread")]
async fn exec_and_admin_switches_do_not_widen_a_write_tool() {
    let pve = permissive_everywhere().await;
    let s = start(
        &pve.uri(),
        scripts(false),
        &[("PVE_MCP_ENABLE_EXEC", "true"), ("PVE_MCP_ENABLE_ADMIN", "true")],
    )
    .await;
    attack_all(&s, &pve, "exec+admin").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn read_only_mode_sends_nothing_of_it() {
    let pve = permissive_everywhere().await;
    let s = start(
        &pve.uri(),
        scripts(true),
        &[
            ("PVE_MCP_READ_ONLY", "true"),
            ("PVE_MCP_ENABLE_EXEC", "true"),
            ("PVE_MCP_ENABLE_ADMIN", "true"),
        ],
    )
    .await;
    attack_all(&s, &pve, "read-only").await;
    assert!(non_get(&pve).await.is_empty());
}

/// The controls: the same harness does see requests the gate allows, so the attacks above
/// were refused by the gate and not lost on the way.
#[tokio::test(flavor = "multi_thread")]
async fn admin_and_composite_tools_work_when_enabled() {
    let pve = permissive_everywhere().await;
    let dir = fixtures(&["gate/admin_restart.rhai", "gate/snapshot_then_exec.rhai"]);
    let s = start(&pve.uri(), dir, &[]).await;
    let names = s.tool_names().await;
    assert!(
        !names.contains(&"admin_restart".to_string()) && !names.contains(&"snapshot_then_exec".to_string()),
        "admin and exec tools are not listed while their switches are off: {names:?}"
    );
    drop(s);

    let dir = fixtures(&["gate/admin_restart.rhai", "gate/snapshot_then_exec.rhai"]);
    let s = start(
        &pve.uri(),
        dir,
        &[("PVE_MCP_ENABLE_EXEC", "true"), ("PVE_MCP_ENABLE_ADMIN", "true")],
    )
    .await;
    // Without confirm, an admin+destructive tool answers with its plan and sends nothing.
    let r = s.call("admin_restart", json!({"service": "pveproxy"})).await;
    assert!(!is_error(&r), "{}", text(&r));
    assert!(non_get(&pve).await.is_empty(), "{:?}", non_get(&pve).await);
    let r = s
        .call("admin_restart", json!({"service": "pveproxy", "confirm": true}))
        .await;
    assert!(!is_error(&r), "{}", text(&r));
    let r = s.call("snapshot_then_exec", json!({})).await;
    assert!(!is_error(&r), "{}", text(&r));
    let sent = sent_writes(&pve).await;
    assert_eq!(
        sent,
        [
            "POST /api2/json/nodes/pve1/services/pveproxy/restart",
            "POST /api2/json/nodes/pve1/qemu/100/snapshot",
            "POST /api2/json/nodes/pve1/qemu/100/agent/exec",
        ]
    );
    let tools = s.client.list_all_tools().await.unwrap();
    let hints = |name: &str| {
        let t = tools.iter().find(|t| t.name == name).unwrap();
        let a = t.annotations.clone().unwrap_or_default();
        (
            a.read_only_hint,
            a.destructive_hint,
            t.input_schema
                .get("properties")
                .and_then(|p| p.get("confirm"))
                .is_some(),
        )
    };
    assert_eq!(hints("admin_restart"), (Some(false), Some(true), true));
    assert_eq!(hints("snapshot_then_exec"), (Some(false), Some(true), false));
}
