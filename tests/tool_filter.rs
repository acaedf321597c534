//! `PVE_MCP_TOOLS` and `PVE_MCP_DISABLE_TOOLS` over MCP: they narrow what the mode serves
//! and never bring back a tool the mode hides.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stderr,
    reason = "test code: a panic is the failure report"
)]

mod common;

use rmcp::model::CallToolRequestParams;
use serde_json::json;

async fn served(extra: &[(&str, &str)]) -> (common::Server, Vec<String>, wiremock::MockServer) {
    let pve = common::permissive_pve().await;
    let server = common::start(&pve.uri(), tempfile::tempdir().unwrap(), extra).await;
    let names = server.tool_names().await;
    (server, names, pve)
}

/// A call refused before it runs: its protocol error message.
async fn refused(server: &common::Server, tool: &str) -> String {
    let args = json!({"vmid": 100}).as_object().cloned().unwrap_or_default();
    match server
        .client
        .call_tool(CallToolRequestParams::new(tool.to_string()).with_arguments(args))
        .await
    {
        Err(e) => e.to_string(),
        Ok(r) => panic!("{tool} was served: {}", common::text(&r)),
    }
}

#[tokio::test]
async fn the_allow_list_takes_names_and_globs() {
    let (server, names, _pve) = served(&[("PVE_MCP_TOOLS", " pve_list_*, pve_vm_status ,")]).await;
    assert_eq!(
        names,
        [
            "pve_list_backups",
            "pve_list_nodes",
            "pve_list_snapshots",
            "pve_list_storage",
            "pve_list_tasks",
            "pve_list_vms",
            "pve_vm_status"
        ]
    );
    let msg = refused(&server, "pve_vm_config").await;
    assert!(msg.contains("disabled") && msg.contains("PVE_MCP_TOOLS"), "{msg}");
}

#[tokio::test]
async fn the_deny_list_wins_over_the_allow_list() {
    let (server, names, _pve) = served(&[
        ("PVE_MCP_TOOLS", "pve_vm_*,pve_snapshot_*"),
        ("PVE_MCP_DISABLE_TOOLS", "*delete*,pve_vm_power"),
    ])
    .await;
    assert!(
        names.iter().all(|n| !n.contains("delete") && n != "pve_vm_power"),
        "{names:?}"
    );
    assert!(names.contains(&"pve_vm_status".to_string()) && names.contains(&"pve_snapshot_create".to_string()));
    assert!(!names.contains(&"pve_list_vms".to_string()));
    let msg = refused(&server, "pve_vm_delete").await;
    assert!(msg.contains("disabled"), "{msg}");
}

#[tokio::test]
async fn the_lists_cannot_bring_back_what_the_mode_hides() {
    let (server, names, _pve) = served(&[
        ("PVE_MCP_READ_ONLY", "true"),
        ("PVE_MCP_TOOLS", "pve_vm_delete,pve_vm_power,pve_vm_exec,pve_vm_status"),
    ])
    .await;
    assert_eq!(names, ["pve_vm_status"]);
    let msg = refused(&server, "pve_vm_delete").await;
    assert!(msg.contains("current mode"), "{msg}");

    // Exec stays off unless PVE_MCP_ENABLE_EXEC says otherwise.
    let (_server, names, _pve) = served(&[("PVE_MCP_TOOLS", "pve_vm_exec,pve_vm_status")]).await;
    assert_eq!(names, ["pve_vm_status"]);
    let (_server, names, _pve) = served(&[("PVE_MCP_TOOLS", "pve_vm_exec"), ("PVE_MCP_ENABLE_EXEC", "true")]).await;
    assert_eq!(names, ["pve_vm_exec"]);
}

#[tokio::test]
async fn a_malformed_list_stops_the_server_naming_the_variable() {
    let out = std::process::Command::new(common::bin())
        .arg("tools")
        .env_clear()
        .env("HOME", std::env::temp_dir())
        .env("PVE_MCP_DISABLE_TOOLS", "pve_vm_delete,../x")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("PVE_MCP_DISABLE_TOOLS") && err.contains("../x"), "{err}");
}
