//! The audit log, through the real binary: what is logged (and what never is), the hash
//! chain and `pve-mcp audit verify|show` against a tampered file, fail-closed writes, and
//! concurrent calls.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stderr,
    reason = "test code: a panic is the failure report"
)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::*;
use rmcp::model::CallToolRequestParams;
use serde_json::{Map, Value, json};
use wiremock::MockServer;

fn scripts() -> tempfile::TempDir {
    fixtures(&[
        "audit/sets_secrets.rhai",
        "audit/refused_secret.rhai",
        "confirm/honest_delete.rhai",
    ])
}

fn entries(log: &Path) -> Vec<Value> {
    std::fs::read_to_string(log)
        .unwrap_or_else(|e| panic!("{}: {e}", log.display()))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// `pve-mcp audit ARGS…` with the given audit setting.
async fn audit_cli(args: &[&str], env: &[(&str, &str)]) -> Output {
    let home = tempfile::tempdir().unwrap();
    let mut cmd = command("http://127.0.0.1:9", home.path(), home.path(), env);
    cmd.arg("audit").args(args);
    cmd.output().await.unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn sha256_of_fixture(name: &str) -> String {
    let text = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)).unwrap();
    pve_mcp::audit::sha256_hex(&text)
}

/// The requests of a log, by event.
fn of_event<'a>(all: &'a [Value], event: &str) -> Vec<&'a Value> {
    all.iter().filter(|e| e["event"] == event).collect()
}

/// A server logging to a fresh file in its own directory.
async fn logged(pve: &MockServer, extra: &[(&str, &str)]) -> (Server, tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.jsonl");
    let log_s = log.to_string_lossy().into_owned();
    let mut env: Vec<(&str, &str)> = vec![("PVE_MCP_AUDIT_LOG", &log_s), ("PVE_MCP_ENABLE_EXEC", "true")];
    env.extend_from_slice(extra);
    let s = start(&pve.uri(), scripts(), &env).await;
    (s, dir, log)
}

#[tokio::test(flavor = "multi_thread")]
async fn sent_and_refused_writes_are_logged_with_their_secrets_redacted() {
    let pve = permissive_pve().await;
    let (s, _dir, log) = logged(&pve, &[]).await;

    s.ok("sets_secrets", json!({"password": "argsecret"})).await;
    let r = s.call("refused_secret", json!({})).await;
    assert!(is_error(&r) && structured(&r)["error"] == "refused", "{}", text(&r));
    s.ok("pve_list_vms", json!({})).await;
    // Approval: confirm=true alone, then confirm=true with the plan's token.
    s.ok("honest_delete", json!({"confirm": true})).await;
    let plan = s.ok("honest_delete", json!({"note": "x"})).await;
    let token = plan["confirm_token"].as_str().unwrap().to_string();
    s.ok(
        "honest_delete",
        json!({"note": "x", "confirm": true, "confirm_token": token}),
    )
    .await;

    let raw = std::fs::read_to_string(&log).unwrap();
    for secret in ["argsecret", "hunter2", "AAAASECRETKEY", token.as_str()] {
        assert!(!raw.contains(secret), "{secret} is in the audit log:\n{raw}");
    }
    let all = entries(&log);
    let requests = of_event(&all, "request");
    let outcomes = of_event(&all, "outcome");
    let refused = of_event(&all, "refused");
    let shown: Vec<String> = requests
        .iter()
        .map(|e| {
            format!(
                "{} {} {}",
                e["method"].as_str().unwrap(),
                e["path"].as_str().unwrap(),
                e["approval"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        shown,
        [
            "PUT /nodes/pve1/qemu/100/config none",
            "POST /nodes/pve1/qemu/100/status/start none",
            "DELETE /nodes/pve1/qemu/100/snapshot/old flag",
            "DELETE /nodes/pve1/qemu/100/snapshot/old token",
        ],
        "reads and plans are not logged:\n{raw}"
    );

    let put = requests[0];
    assert_eq!(put["tool"], "sets_secrets");
    assert_eq!(put["script"], sha256_of_fixture("audit/sets_secrets.rhai"));
    assert_eq!(put["args"], json!({"password": "<redacted>"}));
    assert_eq!(
        put["params"],
        json!({"cipassword": "<redacted>", "sshkeys": "<redacted>", "description": "hello"})
    );
    assert_eq!(put["needs"], json!(["write", "exec"]));
    assert!(put["time"].as_str().unwrap().ends_with('Z'), "{put}");
    assert_eq!(requests[1]["needs"], "write");
    assert_eq!(requests[2]["needs"], "destructive");
    assert_eq!(requests[3]["args"]["confirm_token"], "<redacted>");

    // Every request is followed by its outcome.
    assert_eq!(outcomes.len(), requests.len());
    for (req, out) in requests.iter().zip(&outcomes) {
        assert_eq!(out["of"], req["seq"], "{out}");
        assert_eq!(out["outcome"]["status"], 200, "{out}");
    }
    assert_eq!(outcomes[1]["outcome"]["upid"], UPID_START);

    assert_eq!(refused.len(), 1, "{raw}");
    let no = refused[0];
    assert_eq!(
        (no["tool"].as_str(), no["method"].as_str()),
        (Some("refused_secret"), Some("PUT"))
    );
    assert_eq!(no["params"], json!({"cipassword": "<redacted>"}));
    assert_eq!(no["needs"], json!(["write", "exec"]));
    assert!(
        no["outcome"]["refused"]
            .as_str()
            .unwrap()
            .contains("needs 'write+exec' and the tool is declared 'write'"),
        "{no}"
    );

    // The chain verifies, and `show` reads it.
    let log_s = log.to_string_lossy().into_owned();
    let o = audit_cli(&["verify", &log_s], &[]).await;
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(
        stdout(&o).contains(&format!("{} entries verified", all.len())),
        "{}",
        stdout(&o)
    );
    let o = audit_cli(&["show"], &[("PVE_MCP_AUDIT_LOG", &log_s)]).await;
    assert!(o.status.success());
    let lines: Vec<String> = stdout(&o).lines().map(str::to_string).collect();
    assert_eq!(lines.len(), 5, "{lines:#?}");
    assert!(
        lines[0].contains("  sets_secrets  PUT /nodes/pve1/qemu/100/config  200  approval=none"),
        "{}",
        lines[0]
    );
    assert!(lines[1].contains(&format!("POST /nodes/pve1/qemu/100/status/start  200 {UPID_START}")));
    assert!(lines[2].contains("refused_secret  PUT /nodes/pve1/qemu/100/config  refused: "));
    for (line, approval) in [(&lines[3], "flag"), (&lines[4], "token")] {
        let want =
            format!("honest_delete  DELETE /nodes/pve1/qemu/100/snapshot/old  200 {UPID_START}  approval={approval}");
        assert!(line.ends_with(&want), "{line}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_names_an_edited_a_deleted_and_a_truncated_line() {
    let pve = permissive_pve().await;
    let (s, dir, log) = logged(&pve, &[]).await;
    for _ in 0..3 {
        s.ok("sets_secrets", json!({"password": "p"})).await;
    }
    drop(s);
    let good = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = good.lines().collect();
    assert_eq!(lines.len(), 12, "{good}");

    let check = |name: &str, text: String| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.to_string_lossy().into_owned()
    };
    let edited = check(
        "edited.jsonl",
        lines
            .iter()
            .enumerate()
            .map(|(i, l)| if i == 4 { l.replace("\"hello\"", "\"hellp\"") } else { l.to_string() } + "\n")
            .collect(),
    );
    let deleted = check(
        "deleted.jsonl",
        lines
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != 6)
            .map(|(_, l)| format!("{l}\n"))
            .collect(),
    );
    let truncated = check("truncated.jsonl", good[..good.len() - 20].to_string());
    let first_gone = check(
        "first_gone.jsonl",
        lines[1..].iter().map(|l| format!("{l}\n")).collect(),
    );
    for (file, want) in [
        (&edited, "line 5 was edited"),
        (
            &deleted,
            "line 7 is entry 8, but entry 6 came before it: 1 entry is missing",
        ),
        (&truncated, "line 12 is truncated"),
        (&first_gone, "line 1 is entry 2, not the start of a chain"),
    ] {
        let o = audit_cli(&["verify", file], &[]).await;
        assert_eq!(o.status.code(), Some(1), "{file}: {}", stdout(&o));
        assert!(stdout(&o).contains(want), "{file}: want '{want}', got {}", stdout(&o));
    }
    let o = audit_cli(&["verify"], &[("PVE_MCP_AUDIT_LOG", &log.to_string_lossy())]).await;
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(stdout(&o).contains("12 entries verified"), "{}", stdout(&o));

    // A server that finds the tail truncated starts a new chain segment and says so;
    // verify still names the damaged line.
    let s = start(
        &pve.uri(),
        scripts(),
        &[("PVE_MCP_AUDIT_LOG", &truncated), ("PVE_MCP_ENABLE_EXEC", "true")],
    )
    .await;
    s.ok("sets_secrets", json!({"password": "p"})).await;
    drop(s);
    let text = std::fs::read_to_string(&truncated).unwrap();
    let after: Vec<&str> = text.lines().collect();
    assert_eq!(after.len(), 17, "{text}");
    assert!(after[12].contains("\"event\":\"segment\""), "{}", after[12]);
    let o = audit_cli(&["verify", &truncated], &[]).await;
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains("line 12 is "), "{}", stdout(&o));
    assert!(stdout(&o).contains("2 chain segments"), "{}", stdout(&o));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unwritable_audit_log_refuses_writes_and_nothing_is_sent() {
    let pve = permissive_pve().await;
    let dir = tempfile::tempdir().unwrap();
    // A regular file where the log's directory should be: unwritable, even for root.
    let blocker = dir.path().join("not-a-dir");
    std::fs::write(&blocker, "").unwrap();
    let log = blocker.join("audit.jsonl");
    let log_s = log.to_string_lossy().into_owned();
    let s = start(
        &pve.uri(),
        scripts(),
        &[("PVE_MCP_AUDIT_LOG", &log_s), ("PVE_MCP_ENABLE_EXEC", "true")],
    )
    .await;

    let t = s.fails("sets_secrets", json!({"password": "p"})).await;
    assert!(
        t.contains(&format!("the audit log at {log_s} could not be written")) && t.contains("PVE_MCP_AUDIT_LOG=off"),
        "{t}"
    );
    let r = s.call("honest_delete", json!({"confirm": true})).await;
    assert_eq!(structured(&r)["error"], "refused", "{}", text(&r));
    // Reads are not audited, so they still work.
    s.ok("pve_list_vms", json!({})).await;
    assert!(non_get(&pve).await.is_empty(), "sent: {:?}", non_get(&pve).await);
    assert!(!log.exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_calls_extend_one_valid_chain() {
    let pve = permissive_pve().await;
    let (s, _dir, log) = logged(&pve, &[]).await;
    const CALLS: usize = 24;
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..CALLS {
        let peer = s.client.peer().clone();
        let mut args = Map::new();
        args.insert("password".into(), json!(format!("p{i}")));
        calls.spawn(async move {
            peer.call_tool(CallToolRequestParams::new("sets_secrets").with_arguments(args))
                .await
        });
    }
    while let Some(joined) = calls.join_next().await {
        let r = joined.unwrap().unwrap();
        assert!(!is_error(&r), "{}", text(&r));
    }
    let all = entries(&log);
    assert_eq!(all.len(), CALLS * 4);
    let seqs: Vec<u64> = all.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=(CALLS * 4) as u64).collect::<Vec<_>>());
    for out in of_event(&all, "outcome") {
        let of = out["of"].as_u64().unwrap() as usize;
        let req = &all[of - 1];
        assert_eq!((&req["event"], &req["path"]), (&json!("request"), &out["path"]));
    }
    let o = audit_cli(&["verify", &log.to_string_lossy()], &[]).await;
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(stdout(&o).contains(&format!("{} entries verified", CALLS * 4)));
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread")]
async fn the_default_log_is_private_under_the_state_directory() {
    use std::os::unix::fs::PermissionsExt;
    let pve = permissive_pve().await;
    let state = tempfile::tempdir().unwrap();
    let state_s = state.path().to_string_lossy().into_owned();
    let s = start(
        &pve.uri(),
        scripts(),
        &[("XDG_STATE_HOME", &state_s), ("PVE_MCP_ENABLE_EXEC", "true")],
    )
    .await;
    s.ok("sets_secrets", json!({"password": "p"})).await;
    let log = state.path().join("pve-mcp/audit.jsonl");
    assert_eq!(entries(&log).len(), 4);
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&log), 0o600);
    assert_eq!(mode(log.parent().unwrap()), 0o700);

    // off keeps no log at all.
    let dir = tempfile::tempdir().unwrap();
    let s = start(
        &pve.uri(),
        scripts(),
        &[
            ("XDG_STATE_HOME", &dir.path().to_string_lossy()),
            ("PVE_MCP_AUDIT_LOG", "off"),
            ("PVE_MCP_ENABLE_EXEC", "true"),
        ],
    )
    .await;
    s.ok("sets_secrets", json!({"password": "p"})).await;
    assert!(!dir.path().join("pve-mcp").exists());
}
