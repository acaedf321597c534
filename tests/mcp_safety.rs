//! Every safety rule, attacked by a hostile script through the real server. After each
//! attack the server still answers, and the fake PVE proves no forbidden request arrived.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stderr,
    reason = "test code: a panic is the failure report"
)]

mod common;

use common::*;
use serde_json::json;

fn hostile(names: &[&str]) -> tempfile::TempDir {
    let paths: Vec<String> = names.iter().map(|n| format!("hostile/{n}.rhai")).collect();
    let refs: Vec<&str> = paths.iter().map(String::as_str).collect();
    fixtures(&refs)
}

async fn assert_still_answers(s: &Server) {
    let r = s.call("pve_list_vms", json!({})).await;
    assert!(!is_error(&r), "the server must keep answering: {}", text(&r));
}

#[tokio::test(flavor = "multi_thread")]
async fn scripts_cannot_exceed_their_class() {
    let pve = permissive_pve().await;
    let s = start(
        &pve.uri(),
        hostile(&[
            "read_posts",
            "write_deletes",
            "write_execs",
            "catches_refusal",
            "slash_smuggle",
            "dot_in_segment",
            "prune_backups",
        ]),
        &[("PVE_MCP_ENABLE_EXEC", "true")],
    )
    .await;

    let r = s.call("read_posts", json!({})).await;
    assert!(is_error(&r));
    assert!(
        text(&r).contains("needs 'write' and the tool is declared 'read'"),
        "{}",
        text(&r)
    );

    let r = s.call("write_deletes", json!({})).await;
    assert!(
        text(&r).contains("needs 'destructive' and the tool is declared 'write'"),
        "{}",
        text(&r)
    );

    let r = s.call("write_execs", json!({})).await;
    assert!(
        text(&r).contains("needs 'exec' and the tool is declared 'write'"),
        "{}",
        text(&r)
    );

    // A '/' inside a segment is classified as PVE routes it.
    let r = s.call("slash_smuggle", json!({})).await;
    assert!(
        text(&r).contains("needs 'exec' and the tool is declared 'write'"),
        "{}",
        text(&r)
    );

    // Overriding the retention of a backup could delete older backups: destructive.
    let r = s.call("prune_backups", json!({})).await;
    assert!(
        text(&r).contains("needs 'destructive' and the tool is declared 'write'"),
        "{}",
        text(&r)
    );

    let r = s.call("dot_in_segment", json!({})).await;
    assert!(text(&r).contains("'..'"), "{}", text(&r));

    // Catching the refusal does not help, and the call is poisoned afterwards.
    let r = s.call("catches_refusal", json!({})).await;
    assert!(is_error(&r), "a caught refusal still fails the call: {}", text(&r));
    assert_eq!(structured(&r)["error"], "refused");

    assert_still_answers(&s).await;
    assert!(
        non_get(&pve).await.is_empty(),
        "forbidden requests reached PVE: {:?}",
        non_get(&pve).await
    );
    // catches_refusal's GET after the refusal was not sent either.
    let resources = requests(&pve)
        .await
        .iter()
        .filter(|(_, p)| p.ends_with("/cluster/resources"))
        .count();
    assert_eq!(
        resources, 1,
        "only the final pve_list_vms read of /cluster/resources went out"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn read_only_mode_lists_read_tools_and_sends_only_gets() {
    let pve = permissive_pve().await;
    let s = start(
        &pve.uri(),
        hostile(&["read_posts", "exec_tool"]),
        &[("PVE_MCP_READ_ONLY", "true"), ("PVE_MCP_ENABLE_EXEC", "true")],
    )
    .await;
    let mut expected: Vec<String> = READ_TOOLS.iter().map(|s| s.to_string()).collect();
    expected.push("read_posts".into());
    expected.sort();
    assert_eq!(
        s.tool_names().await,
        expected,
        "exactly the 12 read tools, and read-class user tools"
    );
    for hidden in ["pve_vm_power", "pve_vm_delete", "exec_tool"] {
        let err = s
            .client
            .call_tool(
                rmcp::model::CallToolRequestParams::new(hidden).with_arguments(
                    json!({"vmid": 100, "action": "stop", "confirm": true})
                        .as_object()
                        .unwrap()
                        .clone(),
                ),
            )
            .await;
        assert!(err.is_err(), "{hidden} must not be callable in read-only mode");
    }
    let r = s.call("read_posts", json!({})).await;
    assert!(text(&r).contains("read-only mode"), "{}", text(&r));
    assert!(non_get(&pve).await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn exec_is_opt_in() {
    let pve = permissive_pve().await;
    let off = start(&pve.uri(), hostile(&["exec_tool"]), &[]).await;
    assert!(!off.tool_names().await.contains(&"exec_tool".to_string()));
    assert!(
        off.client
            .call_tool(rmcp::model::CallToolRequestParams::new("exec_tool"))
            .await
            .is_err()
    );
    assert!(non_get(&pve).await.is_empty());

    let on = start(&pve.uri(), hostile(&["exec_tool"]), &[("PVE_MCP_ENABLE_EXEC", "true")]).await;
    assert!(on.tool_names().await.contains(&"exec_tool".to_string()));
    let r = on.call("exec_tool", json!({})).await;
    assert!(!is_error(&r), "{}", text(&r));
    let sent = non_get(&pve).await;
    assert_eq!(
        sent,
        vec![("POST".into(), "/api2/json/nodes/pve1/qemu/100/agent/exec".into())]
    );
    let body = pve
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.method.as_str() == "POST")
        .unwrap()
        .body;
    assert_eq!(String::from_utf8(body).unwrap(), "command=id");
}

#[tokio::test(flavor = "multi_thread")]
async fn paths_forbidden_endpoints_and_self_confirmation_are_refused() {
    let pve = permissive_pve().await;
    let s = start(
        &pve.uri(),
        hostile(&["dotdot", "query_smuggle", "forbidden", "self_confirms"]),
        &[],
    )
    .await;

    let r = s.call("dotdot", json!({"confirm": true})).await;
    assert!(text(&r).contains("'..'"), "{}", text(&r));
    let r = s.call("query_smuggle", json!({})).await;
    assert!(text(&r).contains("holds '?'"), "{}", text(&r));
    let r = s.call("forbidden", json!({"confirm": true})).await;
    assert!(text(&r).contains("never allowed"), "{}", text(&r));

    // Setting confirm inside the script changes nothing: the gate reads the invocation.
    let r = s.call("self_confirms", json!({})).await;
    assert!(!is_error(&r), "{}", text(&r));
    assert_eq!(structured(&r)["status"], "confirmation_required");

    assert_still_answers(&s).await;
    assert!(non_get(&pve).await.is_empty(), "{:?}", non_get(&pve).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn runaway_scripts_are_stopped_and_the_server_keeps_answering() {
    let pve = fake_pve().await;
    let s = start(
        &pve.uri(),
        hostile(&["spin", "recurse", "bigstring", "printspam"]),
        &[("PVE_MCP_SCRIPT_MEMORY", "64")],
    )
    .await;

    let r = s.call("spin", json!({})).await;
    assert!(is_error(&r) && text(&r).contains("Too many operations"), "{}", text(&r));
    let r = s.call("recurse", json!({})).await;
    assert!(
        is_error(&r) && text(&r).to_lowercase().contains("stack overflow"),
        "{}",
        text(&r)
    );
    let r = s.call("bigstring", json!({})).await;
    assert!(
        is_error(&r) && text(&r).contains("PVE_MCP_SCRIPT_MEMORY"),
        "{}",
        text(&r)
    );

    // Print spam goes to the log, bounded; stdout (the protocol) stays intact.
    let r = s.call("printspam", json!({})).await;
    assert!(!is_error(&r), "printing is not an error: {}", text(&r));
    assert!(
        text(&r).contains("100000"),
        "the call still returns its result: {}",
        text(&r)
    );
    assert_still_answers(&s).await;
    let log = s.stderr_text();
    let printed = log.lines().filter(|l| l.contains("printspam: line")).count();
    assert!(printed <= 200, "log lines are bounded per call, got {printed}");
    assert!(log.contains("log lines; the rest of this call's output is dropped"));
}

#[tokio::test(flavor = "multi_thread")]
async fn broken_and_escaping_scripts_are_not_loaded() {
    let pve = fake_pve().await;
    let s = start(&pve.uri(), hostile(&["uses_eval", "import_outside"]), &[]).await;
    let names = s.tool_names().await;
    assert!(
        !names.contains(&"uses_eval".to_string()) && !names.contains(&"import_outside".to_string()),
        "{names:?}"
    );
    let log = s.stderr_text();
    assert!(
        log.contains("uses_eval.rhai:3:5"),
        "compile errors carry file:line:col: {log}"
    );
    assert!(log.contains("Module not found"), "{log}");
    assert_still_answers(&s).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn cancellation_stops_the_script_and_its_wait() {
    let pve = fake_pve().await;
    let s = start(&pve.uri(), hostile(&["slow_wait"]), &[]).await;
    let request = rmcp::model::ClientRequest::CallToolRequest(rmcp::model::CallToolRequest::new(
        rmcp::model::CallToolRequestParams::new("slow_wait"),
    ));
    let handle = s
        .client
        .send_cancellable_request(request, rmcp::service::PeerRequestOptions::no_options())
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    handle.cancel(Some("test".into())).await.unwrap();
    // The script would read /cluster/resources after its sleep; it must never get there.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_still_answers(&s).await;
    let resources = requests(&pve)
        .await
        .iter()
        .filter(|(_, p)| p.ends_with("/cluster/resources"))
        .count();
    assert_eq!(resources, 1, "only the follow-up call's read reached PVE");
    s.wait_for_log("cancelled").await;
}
