//! stdout belongs to the MCP protocol: in every mode the server runs in, each line it
//! writes there is one JSON-RPC 2.0 message, whatever the tools do (a script that prints,
//! a failing call, a refused write, a malformed request, the most verbose log level).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stderr,
    reason = "test code: a panic is the failure report"
)]
#![cfg(feature = "simulator")]

mod common;

use std::time::Duration;

use common::{command, simulator};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

const PRINTS: &str = r#"const TOOL = #{ description: "Prints and debugs.", class: "read" };
fn run(args) {
    print("a line from print");
    debug("a line from debug");
    #{ printed: true }
}
"#;

const FAILS: &str = r#"const TOOL = #{ description: "Throws.", class: "read" };
fn run(args) {
    print("before the throw");
    throw "this tool fails";
}
"#;

/// Everything the session writes to stdout, line by line, until the server exits.
async fn session(extra: &[(&str, &str)]) -> (Vec<String>, String) {
    let sim = simulator(0).await;
    let (id, secret) = sim.token().unwrap();
    let scripts = tempfile::tempdir().unwrap();
    std::fs::write(scripts.path().join("prints.rhai"), PRINTS).unwrap();
    std::fs::write(scripts.path().join("fails.rhai"), FAILS).unwrap();
    let home = tempfile::tempdir().unwrap();
    let stderr = home.path().join("stderr.log");
    let mut env: Vec<(&str, &str)> = vec![
        ("PVE_TOKEN_ID", &id),
        ("PVE_TOKEN_SECRET", &secret),
        ("PVE_VERIFY_SSL", "false"),
    ];
    env.extend_from_slice(extra);
    let mut cmd = command(&sim.https_url().unwrap(), scripts.path(), home.path(), &env);
    cmd.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .kill_on_drop(true);
    let mut child = cmd.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut lines = Vec::new();
    let send = async |stdin: &mut tokio::process::ChildStdin, line: String| {
        stdin.write_all(format!("{line}\n").as_bytes()).await.unwrap();
        stdin.flush().await.unwrap();
    };
    send(
        &mut stdin,
        json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}})
        .to_string(),
    )
    .await;
    let first = tokio::time::timeout(Duration::from_secs(60), stdout.next_line())
        .await
        .expect("initialize answered")
        .unwrap()
        .expect("a line");
    lines.push(first);
    send(
        &mut stdin,
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}).to_string(),
    )
    .await;
    let calls = [
        ("tools/list", json!({})),
        ("tools/call", json!({"name": "pve_list_vms", "arguments": {}})),
        (
            "tools/call",
            json!({"name": "pve_vm_status", "arguments": {"vmid": 100}}),
        ),
        (
            "tools/call",
            json!({"name": "pve_vm_status", "arguments": {"vmid": 4242}}),
        ),
        (
            "tools/call",
            json!({"name": "pve_vm_delete", "arguments": {"vmid": 101}}),
        ),
        (
            "tools/call",
            json!({"name": "pve_vm_start", "arguments": {"vmid": 101}}),
        ),
        (
            "tools/call",
            json!({"name": "pve_vm_exec", "arguments": {"vmid": 100, "command": "uptime"}}),
        ),
        ("tools/call", json!({"name": "prints", "arguments": {}})),
        ("tools/call", json!({"name": "fails", "arguments": {}})),
        ("tools/call", json!({"name": "no_such_tool", "arguments": {}})),
        ("resources/list", json!({})),
        ("ping", json!({})),
    ];
    let mut id = 1;
    for (method, params) in calls {
        send(
            &mut stdin,
            json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string(),
        )
        .await;
        id += 1;
    }
    send(
        &mut stdin,
        r#"{"jsonrpc":"2.0","id":99,"method":"tools/list""#.to_string(),
    )
    .await;
    // Every request answered (the last one is the malformed line), then stdin closes.
    let mut answered = 0;
    while answered < id {
        let line = tokio::time::timeout(Duration::from_secs(60), stdout.next_line())
            .await
            .unwrap_or_else(|_| panic!("an answer within 60 s; got {lines:#?}"))
            .unwrap();
        let Some(line) = line else { break };
        let v: Option<Value> = serde_json::from_str(&line).ok();
        if v.as_ref().is_some_and(|v| v.get("id").is_some()) {
            answered += 1;
        }
        lines.push(line);
    }
    drop(stdin);
    while let Ok(Ok(Some(line))) = tokio::time::timeout(Duration::from_secs(20), stdout.next_line()).await {
        lines.push(line);
    }
    let _ = tokio::time::timeout(Duration::from_secs(20), child.wait()).await;
    (lines, std::fs::read_to_string(&stderr).unwrap_or_default())
}

/// Each line is a JSON object with `"jsonrpc": "2.0"`; the prints went to stderr.
fn assert_protocol_only(mode: &str, lines: &[String], stderr: &str) {
    assert!(lines.len() >= 14, "{mode}: every request answered: {lines:#?}");
    for line in lines {
        let v: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("{mode}: a stdout line that is not JSON ({e}): {line:?}"));
        assert_eq!(v["jsonrpc"], "2.0", "{mode}: not a JSON-RPC 2.0 message: {line}");
        assert!(
            v.get("result").is_some() || v.get("error").is_some() || v.get("method").is_some(),
            "{mode}: neither an answer nor a request or notification: {line}"
        );
        assert!(
            !line.contains("a line from print"),
            "{mode}: a script's print on stdout: {line}"
        );
    }
    assert!(
        stderr.contains("a line from print"),
        "{mode}: the print is logged on stderr:\n{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn every_stdout_line_is_json_rpc_in_every_mode() {
    let modes: [(&str, &[(&str, &str)]); 6] = [
        ("default", &[]),
        ("read-only", &[("PVE_MCP_READ_ONLY", "true")]),
        (
            "exec enabled",
            &[("PVE_MCP_ENABLE_EXEC", "true"), ("PVE_MCP_CONFIRM_EXEC", "off")],
        ),
        ("plan confirmation", &[("PVE_MCP_CONFIRM", "plan")]),
        ("human confirmation", &[("PVE_MCP_CONFIRM", "human")]),
        ("trace logging", &[("PVE_MCP_LOG", "trace"), ("RUST_LOG", "trace")]),
    ];
    for (mode, extra) in modes {
        let (lines, stderr) = session(extra).await;
        assert_protocol_only(mode, &lines, &stderr);
    }
}
