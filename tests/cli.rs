//! The command line for script authors: tools, check, call; and start-up errors.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stderr,
    reason = "test code: a panic is the failure report"
)]

mod common;

use std::process::Output;

use common::*;
use serde_json::{Value, json};
use wiremock::Mock;
use wiremock::matchers::{method, path};

async fn run(args: &[&str], env: &[(&str, &str)], scripts: &std::path::Path) -> Output {
    let home = tempfile::tempdir().unwrap();
    let mut cmd = command("http://127.0.0.1:9", scripts, home.path(), env);
    cmd.args(args);
    cmd.output().await.unwrap()
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[tokio::test]
async fn a_bad_variable_stops_the_server_with_one_line_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    for (var, value, expect) in [
        ("PVE_TOKEN_ID", "root@pam", "PVE_TOKEN_ID is malformed"),
        ("PVE_HOST", "", "PVE_HOST is not set"),
        (
            "PVE_VERIFY_SSL",
            "sometimes",
            "PVE_VERIFY_SSL is malformed (got 'sometimes')",
        ),
        ("PVE_TOKEN_SECRET", "not a\tuuid", "PVE_TOKEN_SECRET is malformed"),
    ] {
        let o = run(&[], &[(var, value)], dir.path()).await;
        assert_eq!(o.status.code(), Some(2), "{var}: {}", err(&o));
        let stderr = err(&o);
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "one line: {lines:?}");
        assert!(lines[0].contains(expect), "{}", lines[0]);
        assert!(out(&o).is_empty(), "stdout stays clean");
        assert!(!err(&o).contains("not a"), "the secret is never printed");
    }
}

/// Emulators and test rigs use secrets that are not UUIDs: they are taken, with a warning
/// that does not show them.
#[tokio::test]
async fn a_secret_that_is_not_a_uuid_is_taken_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    // The configuration is taken; the call then fails to reach the (absent) PVE.
    let o = run(
        &["call", "pve_list_vms", "{}"],
        &[("PVE_TOKEN_SECRET", "emulator-secret-42")],
        dir.path(),
    )
    .await;
    assert_ne!(o.status.code(), Some(2), "not a configuration error: {}", err(&o));
    assert!(err(&o).contains("is not a UUID"), "{}", err(&o));
    assert!(!err(&o).contains("emulator-secret-42"), "the secret is never printed");
}

#[tokio::test]
async fn dotenv_in_the_working_directory_is_loaded() {
    let home = tempfile::tempdir().unwrap();
    std::fs::write(home.path().join(".env"), "PVE_MCP_READ_ONLY=yes\n").unwrap();
    let mut cmd = command("http://127.0.0.1:9", home.path(), home.path(), &[]);
    cmd.arg("tools");
    let o = cmd.output().await.unwrap();
    assert!(
        out(&o)
            .lines()
            .any(|l| l.starts_with("pve_vm_power") && l.contains("no (read-only mode)")),
        "{}",
        out(&o)
    );
}

#[tokio::test]
async fn tools_lists_class_visibility_and_source() {
    let dir = fixtures(&["hostile/exec_tool.rhai"]);
    let o = run(&["tools"], &[], dir.path()).await;
    assert!(o.status.success(), "{}", err(&o));
    let text = out(&o);
    assert!(
        text.lines().any(|l| l.starts_with("pve_vm_delete")
            && l.contains("destructive")
            && l.contains("builtin:pve_vm_delete.rhai")),
        "{text}"
    );
    assert!(
        text.lines().any(|l| l.starts_with("exec_tool")
            && l.contains("no (PVE_MCP_ENABLE_EXEC off)")
            && l.contains("exec_tool.rhai")),
        "{text}"
    );
}

#[tokio::test]
async fn check_reports_every_broken_script_with_its_place() {
    let broken = fixtures(&[
        "hostile/uses_eval.rhai",
        "hostile/import_outside.rhai",
        "hostile/spin.rhai",
    ]);
    std::fs::write(broken.path().join("no_manifest.rhai"), "fn run(args) { 1 }\n").unwrap();
    let o = run(&["check", broken.path().to_str().unwrap()], &[], broken.path()).await;
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    let text = out(&o);
    assert!(text.contains("uses_eval.rhai:3:5:"), "{text}");
    assert!(
        text.contains("import_outside.rhai:") && text.contains("Module not found"),
        "{text}"
    );
    assert!(
        text.contains("no_manifest.rhai:1:1: the script has no `const TOOL"),
        "{text}"
    );
    assert!(
        text.contains("ok     spin"),
        "a script that only misbehaves at run time compiles: {text}"
    );
    assert!(text.contains("3 problems"), "{text}");

    let good = tempfile::tempdir().unwrap();
    let o = run(&["check", good.path().to_str().unwrap()], &[], good.path()).await;
    assert!(o.status.success(), "{}", out(&o));
    assert!(out(&o).contains("no problems"));
}

#[tokio::test]
async fn call_prints_the_result_with_the_same_gate() {
    let pve = fake_pve().await;
    Mock::given(method("GET"))
        .and(path("/api2/json/nodes/pve2/qemu/101/config"))
        .respond_with(data(json!({"scsi0": "local-lvm:vm-101-disk-0,size=64G"})))
        .mount(&pve)
        .await;
    Mock::given(method("GET"))
        .and(path("/api2/json/nodes/pve2/qemu/101/snapshot"))
        .respond_with(data(
            json!([{"name": "current", "description": "You are here!", "running": 0}]),
        ))
        .mount(&pve)
        .await;
    let dir = fixtures(&["hostile/read_posts.rhai"]);
    let home = tempfile::tempdir().unwrap();
    let uri = pve.uri();
    let call = |args: Vec<&str>, extra: Vec<(&'static str, &'static str)>| {
        let mut cmd = command(&uri, dir.path(), home.path(), &extra);
        cmd.arg("call").args(args);
        async move { cmd.output().await.unwrap() }
    };

    let o = call(vec!["pve_list_vms", r#"{"type":"qemu"}"#], vec![]).await;
    assert!(o.status.success(), "{}", err(&o));
    let v: Value = serde_json::from_str(&out(&o)).unwrap();
    assert_eq!(v["count"], 2);

    let o = call(vec!["pve_vm_delete", r#"{"vmid":101}"#], vec![]).await;
    assert!(o.status.success(), "{}", err(&o));
    let v: Value = serde_json::from_str(&out(&o)).unwrap();
    assert_eq!(v["status"], "confirmation_required");

    let o = call(vec!["read_posts"], vec![]).await;
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("refused"), "{}", err(&o));

    let o = call(
        vec!["pve_vm_power", r#"{"vmid":100,"action":"stop"}"#],
        vec![("PVE_MCP_READ_ONLY", "true")],
    )
    .await;
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("not available in the current mode"), "{}", err(&o));

    let o = call(vec!["pve_list_vms", "not json"], vec![]).await;
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("not valid JSON"), "{}", err(&o));

    assert!(non_get(&pve).await.is_empty(), "{:?}", non_get(&pve).await);
}

#[tokio::test]
async fn the_server_exits_cleanly_when_stdin_closes() {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let mut cmd = command("http://127.0.0.1:9", dir.path(), home.path(), &[]);
    cmd.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    let mut child = cmd.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    // A real handshake first, so that the exit below is the reaction to stdin closing.
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "test", "version": "1"}}});
    stdin
        .write_all(
            format!(
                "{init}
"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let reply: Value = serde_json::from_str(&stdout.next_line().await.unwrap().unwrap()).unwrap();
    assert_eq!(reply["result"]["serverInfo"]["name"], "pve-mcp");
    stdin
        .write_all(
            b"{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}
",
        )
        .await
        .unwrap();
    drop(stdin);
    let status = tokio::time::timeout(std::time::Duration::from_secs(10), child.wait())
        .await
        .expect("the server must exit")
        .unwrap();
    assert!(status.success(), "{status}");
    // Nothing but protocol messages on stdout.
    while let Ok(Some(line)) = stdout.next_line().await {
        assert!(
            serde_json::from_str::<Value>(&line).is_ok(),
            "not JSON-RPC on stdout: {line}"
        );
    }
}

#[tokio::test]
async fn the_readme_example_tool_works() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = readme
        .find("// ~/.config/pve-mcp/scripts/vm_uptime.rhai")
        .expect("the example is in the README");
    let end = start + readme[start..].find("```").unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("vm_uptime.rhai"), &readme[start..end]).unwrap();

    let pve = fake_pve().await;
    Mock::given(method("GET"))
        .and(path("/api2/json/nodes/pve1/qemu/100/status/current"))
        .respond_with(data(json!({"vmid": 100, "status": "running", "uptime": 7200})))
        .mount(&pve)
        .await;
    let home = tempfile::tempdir().unwrap();
    let mut cmd = command(&pve.uri(), dir.path(), home.path(), &[]);
    cmd.args(["call", "vm_uptime", r#"{"vmid": 100}"#]);
    let o = cmd.output().await.unwrap();
    assert!(o.status.success(), "{}", err(&o));
    let v: Value = serde_json::from_str(&out(&o)).unwrap();
    assert_eq!(v, json!({"vmid": 100, "name": "web", "hours": 2}));
}

#[cfg(feature = "simulator")]
/// The binary with no PVE configuration at all, as a newcomer runs it.
fn bare_command(home: &std::path::Path) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(bin());
    cmd.current_dir(home)
        .env_clear()
        .env("HOME", home)
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("PVE_MCP_LOG", "warn");
    cmd
}

#[cfg(feature = "simulator")]
#[tokio::test]
async fn simulate_call_needs_no_pve_host() {
    let home = tempfile::tempdir().unwrap();
    let mut cmd = bare_command(home.path());
    cmd.args(["--simulate", "call", "pve_vm_status", r#"{"vmid": 200}"#]);
    let o = cmd.output().await.unwrap();
    assert!(o.status.success(), "{}", err(&o));
    let v: Value = serde_json::from_str(&out(&o)).unwrap();
    assert_eq!((v["name"].as_str(), v["type"].as_str()), (Some("dns"), Some("lxc")));

    let cluster = home.path().join("lab.toml");
    std::fs::write(
        &cluster,
        r#"
[[nodes]]
name = "solo"
cpus = 4
memory = 8589934592
rootfs = 64000000000
[[guests]]
vmid = 300
type = "lxc"
node = "solo"
status = "running"
config = { hostname = "mine", memory = 256 }
[[tokens]]
id = "me@pve!t"
secret = "11111111-2222-4333-8444-555555555555"
acl = [{ path = "/", role = "Administrator" }]
"#,
    )
    .unwrap();
    let mut cmd = bare_command(home.path());
    cmd.args([
        "--simulate",
        "--cluster",
        cluster.to_str().unwrap(),
        "call",
        "pve_list_vms",
    ]);
    let o = cmd.output().await.unwrap();
    assert!(o.status.success(), "{}", err(&o));
    let v: Value = serde_json::from_str(&out(&o)).unwrap();
    assert_eq!(v["count"], 1);
    assert_eq!(v["guests"][0]["name"], "mine");
}

#[cfg(feature = "simulator")]
#[tokio::test(flavor = "multi_thread")]
async fn simulate_serves_mcp_over_stdio() {
    use rmcp::ServiceExt;
    let home = tempfile::tempdir().unwrap();
    let mut cmd = bare_command(home.path());
    cmd.arg("--simulate");
    let client = ().serve(rmcp::transport::TokioChildProcess::new(cmd).unwrap()).await.unwrap();
    let tools = client.list_all_tools().await.unwrap();
    assert!(tools.iter().any(|t| t.name == "pve_vm_power"));
    let r = client
        .call_tool(
            rmcp::model::CallToolRequestParams::new("pve_list_vms")
                .with_arguments(json!({"type": "qemu"}).as_object().unwrap().clone()),
        )
        .await
        .unwrap();
    assert_eq!(r.structured_content.unwrap()["count"], 6);
}

#[cfg(feature = "simulator")]
#[tokio::test(flavor = "multi_thread")]
async fn simulate_runs_standalone_for_other_clients() {
    use tokio::io::AsyncBufReadExt;
    let home = tempfile::tempdir().unwrap();
    let mut cmd = bare_command(home.path());
    cmd.args(["simulate", "--port", "0", "--http-port", "0"])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut printed = Vec::new();
    while let Ok(Ok(Some(line))) = tokio::time::timeout(std::time::Duration::from_secs(10), lines.next_line()).await {
        let done = line.starts_with("Ctrl-C");
        printed.push(line);
        if done {
            break;
        }
    }
    let url = printed[0]
        .split_whitespace()
        .last()
        .unwrap()
        .trim_end_matches("/api2/json")
        .to_string();
    assert!(url.starts_with("https://127.0.0.1:"), "{printed:?}");
    let token = printed
        .iter()
        .find(|l| l.contains("root@pam!sim"))
        .expect("the tokens are printed");
    let secret = token.split("PVE_TOKEN_SECRET=").nth(1).unwrap().trim();
    let conn = pve_mcp::config::Connection {
        base_url: pve_mcp::config::parse_host(&url).unwrap(),
        token_id: "root@pam!sim".into(),
        token_secret: secret.into(),
        verify_tls: false,
        timeout: std::time::Duration::from_secs(5),
    };
    let client = pve_mcp::pve::PveClient::new(&conn).unwrap();
    let v = common::pve_request(
        &client,
        pve_mcp::api::Method::Get,
        &pve_mcp::api::ApiPath::parse("/version").unwrap(),
        &serde_json::Map::new(),
    )
    .await
    .unwrap();
    assert_eq!(v["version"], "8.4.14");
    child.kill().await.unwrap();
}

#[cfg(feature = "simulator")]
#[tokio::test]
async fn simulate_call_works_for_every_tool() {
    let home = tempfile::tempdir().unwrap();
    let upid = "UPID:pve1:0012EBC1:05E31C50:66C27520:qmstart:100:root@pam!sim:";
    let calls: [(&str, Value); 24] = [
        ("pve_cluster_status", json!({})),
        ("pve_list_nodes", json!({})),
        ("pve_node_status", json!({"node": "pve1"})),
        ("pve_list_vms", json!({})),
        ("pve_vm_status", json!({"vmid": 100})),
        ("pve_vm_config", json!({"vmid": 200})),
        ("pve_list_storage", json!({})),
        ("pve_storage_content", json!({"storage": "local"})),
        ("pve_list_backups", json!({})),
        ("pve_list_snapshots", json!({"vmid": 100})),
        ("pve_list_tasks", json!({})),
        ("pve_task_status", json!({"upid": upid})),
        ("pve_vm_power", json!({"vmid": 202, "action": "start"})),
        ("pve_vm_migrate", json!({"vmid": 102, "target": "pve1"})),
        ("pve_vm_set_config", json!({"vmid": 101, "config": {"onboot": true}})),
        (
            "pve_vm_resize_disk",
            json!({"vmid": 200, "disk": "rootfs", "size": "+1G"}),
        ),
        ("pve_vm_clone", json!({"vmid": 9000, "name": "demo"})),
        ("pve_snapshot_create", json!({"vmid": 201, "snapname": "demo"})),
        ("pve_backup_create", json!({"vmid": 202, "storage": "nfs-backup"})),
        (
            "pve_snapshot_rollback",
            json!({"vmid": 100, "snapname": "before-upgrade"}),
        ),
        (
            "pve_snapshot_delete",
            json!({"vmid": 100, "snapname": "before-upgrade"}),
        ),
        ("pve_vm_delete", json!({"vmid": 102})),
        (
            "pve_backup_restore",
            json!({"vmid": 500, "archive": "nfs-backup:backup/vzdump-qemu-150-2025_12_01-01_00_00.vma.zst"}),
        ),
        ("pve_vm_exec", json!({"vmid": 100, "command": "uptime"})),
    ];
    for (tool, args) in calls {
        let mut cmd = bare_command(home.path());
        cmd.env("PVE_MCP_ENABLE_EXEC", "true")
            .args(["--simulate", "call", tool, &args.to_string()]);
        let o = cmd.output().await.unwrap();
        // A task status for a task the fresh cluster never ran is PVE's "no such task".
        if tool == "pve_task_status" {
            assert!(err(&o).contains("no such task"), "{tool}: {}", err(&o));
            continue;
        }
        assert!(o.status.success(), "{tool}: {}", err(&o));
        let v: Value = serde_json::from_str(&out(&o)).unwrap_or_else(|e| panic!("{tool}: {e}: {}", out(&o)));
        assert!(v.is_object(), "{tool}");
    }
}

#[tokio::test]
async fn a_malformed_dotenv_line_is_named_not_shown() {
    let home = tempfile::tempdir().unwrap();
    let secret = "5b0e7f3c-2d1a-4c8b-9e6f-7a8b9c0d1e2f";
    std::fs::write(
        home.path().join(".env"),
        format!("PVE_MCP_READ_ONLY=yes\nPVE_TOKEN_SECRET=\"{secret}\nPVE_VERIFY_SSL=false\n"),
    )
    .unwrap();
    let mut cmd = command("http://127.0.0.1:9", home.path(), home.path(), &[]);
    cmd.arg("tools");
    let o = cmd.output().await.unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!stderr.contains(secret), "the secret was logged: {stderr}");
    assert!(!stderr.contains("5b0e7f3c"), "part of the secret was logged: {stderr}");
    assert!(stderr.contains(".env") && stderr.contains("line 2"), "{stderr}");
}

#[tokio::test]
async fn call_on_a_tool_that_never_compiled_gives_the_compile_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("fresh.rhai"),
        "const TOOL = #{ description: \"New.\", class: \"read\" };\nfn run(args) { 1 +; }\n",
    )
    .unwrap();
    let o = run(&["call", "fresh"], &[], dir.path()).await;
    assert_eq!(o.status.code(), Some(1));
    let e = err(&o);
    assert!(e.contains("tool 'fresh' is not in service"), "{e}");
    assert!(e.contains("fresh.rhai:2:"), "{e}");
    assert!(!e.contains("does not exist"), "{e}");
}

/// `check` compiles every tool against the libraries it really gets, and says which user
/// libraries carry a built-in's name.
#[tokio::test]
async fn check_uses_the_libraries_each_tool_really_gets() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("lib")).unwrap();
    std::fs::write(dir.path().join("lib/text.rhai"), "fn shout(s) { s.to_upper() }\n").unwrap();
    // A user tool that expects the built-in lib/text: it gets the user's, which lacks join.
    std::fs::write(
        dir.path().join("joins.rhai"),
        r#"import "lib/text" as text;
const TOOL = #{ description: "Joins.", class: "read" };
fn run(args) { #{ s: text::join(["a", "b"], ", ") } }
"#,
    )
    .unwrap();
    let o = run(&["check", dir.path().to_str().unwrap()], &[], dir.path()).await;
    let text = out(&o);
    assert_eq!(o.status.code(), Some(1), "{text}");
    assert!(text.contains("ok     pve_list_vms"), "{text}");
    assert!(text.contains("has the name of the built-in lib/text"), "{text}");
    assert!(
        text.contains("joins.rhai:3:28: lib/text (imported as text) has no fn join; it has shout"),
        "{text}"
    );
    assert!(text.contains("1 problems"), "{text}");
}

#[tokio::test]
async fn check_catches_what_the_ast_shows() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("slips.rhai"),
        r#"const NODE = "pve1";
const TOOL = #{ description: "Slips.", class: "read" };
fn run(args) {
    let rows = pve::get(`/nodes/${NODE}/qemu`);
    pve::post(`/nodes/${global::NODE}/qemu/100/status/start`);
    pve::exec(100, "uptime", 10);
    #{ n: lenght(rows) }
}
"#,
    )
    .unwrap();
    let o = run(&["check", dir.path().to_str().unwrap()], &[], dir.path()).await;
    let text = out(&o);
    assert_eq!(o.status.code(), Some(1), "{text}");
    for expect in [
        "slips.rhai:4:35: NODE is a top-level constant, which a fn does not see by its bare name: write global::NODE in fn run",
        "slips.rhai:5:10: pve::post sends a POST request, which changes something, but the tool is declared class \"read\"",
        "slips.rhai:6:10: pve::exec needs the exec capability",
        "slips.rhai:7:11: lenght(…) is called, but no function lenght exists",
        "4 problems",
    ] {
        assert!(text.contains(expect), "{expect}\n{text}");
    }
}

/// At call time too, Rhai's jargon becomes words.
#[tokio::test]
async fn a_runtime_error_is_told_in_words() {
    let pve = fake_pve().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("oops.rhai"),
        r#"const TOOL = #{ description: "Oops.", class: "read" };
fn run(args) {
    let g = #{ vmid: 100 };
    g.name.split(" ")
}
"#,
    )
    .unwrap();
    let home = tempfile::tempdir().unwrap();
    let mut cmd = command(&pve.uri(), dir.path(), home.path(), &[]);
    cmd.args(["call", "oops"]);
    let o = cmd.output().await.unwrap();
    let e = err(&o);
    assert_eq!(o.status.code(), Some(1), "{e}");
    assert!(e.contains("no function split takes (() (nothing), a string)"), "{e}");
    assert!(e.contains("missing map field"), "{e}");
    assert!(!e.contains("ImmutableString"), "{e}");
    assert!(e.contains("oops.rhai:4:"), "{e}");
}

#[tokio::test]
async fn describe_shows_what_a_host_sees() {
    let dir = tempfile::tempdir().unwrap();
    let o = run(&["describe", "pve_vm_power"], &[], dir.path()).await;
    let text = out(&o);
    assert!(o.status.success(), "{}", err(&o));
    for expect in [
        "source:       builtin:pve_vm_power.rhai",
        "class:        write",
        "annotations:  readOnly false, destructive false",
        "vmid: integer (required",
        "action: string (required, one of",
    ] {
        assert!(text.contains(expect), "{expect}\n{text}");
    }
    let o = run(&["describe", "nope"], &[], dir.path()).await;
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("tool 'nope' does not exist"), "{}", err(&o));
}

/// `new` writes a skeleton that compiles, passes check and runs.
#[tokio::test]
async fn new_writes_a_working_skeleton() {
    let dir = tempfile::tempdir().unwrap();
    for (name, class) in [
        ("my_list", "read"),
        ("my_start", "write"),
        ("my_run", "write,exec"),
        ("my_drop", "destructive"),
    ] {
        let o = run(&["new", name, "--class", class], &[], dir.path()).await;
        assert!(o.status.success(), "{class}: {}", err(&o));
        assert!(dir.path().join(format!("{name}.rhai")).is_file());
    }
    let o = run(&["new", "my_list"], &[], dir.path()).await;
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("exists already"), "{}", err(&o));
    let o = run(&["new", "Bad-Name"], &[], dir.path()).await;
    assert!(err(&o).contains("is not a tool name"), "{}", err(&o));
    let o = run(&["check", dir.path().to_str().unwrap()], &[], dir.path()).await;
    assert!(o.status.success(), "{}", out(&o));
    assert!(out(&o).contains("ok     my_run"), "{}", out(&o));

    // It runs against the simulated cluster.
    let home = tempfile::tempdir().unwrap();
    let mut cmd = command("http://127.0.0.1:9", dir.path(), home.path(), &[]);
    cmd.args(["--simulate", "call", "my_list", r#"{"vmid": 0}"#]);
    let o = cmd.output().await.unwrap();
    assert!(o.status.success(), "{}", err(&o));
    let v: Value = serde_json::from_str(&out(&o)).unwrap();
    assert!(v["count"].as_i64().unwrap() > 0, "{v}");
}

/// `pve-mcp schema manifest` needs no PVE configuration, and editors can check a `const TOOL`
/// map with it: the `pve-mcp new` skeleton's manifest passes, a misspelt class does not.
#[tokio::test]
async fn schema_manifest_prints_the_tool_map_schema_without_configuration() {
    let home = tempfile::tempdir().unwrap();
    let o = tokio::process::Command::new(bin())
        .args(["schema", "manifest"])
        .current_dir(home.path())
        .env_clear()
        .env("HOME", home.path())
        .output()
        .await
        .unwrap();
    assert!(o.status.success(), "{}", err(&o));
    let schema: Value = serde_json::from_str(&out(&o)).expect("the schema is JSON");
    let validator = jsonschema::validator_for(&schema).expect("a valid JSON Schema");
    let good = json!({"description": "Reboot a guest.", "class": ["write"], "params": {"properties": {"vmid": {"type": "integer"}}}});
    assert!(
        validator.is_valid(&good),
        "{:?}",
        validator.iter_errors(&good).map(|e| e.to_string()).collect::<Vec<_>>()
    );
    for bad in [
        json!({"description": "x", "class": "wirte"}),
        json!({"description": "x", "class": "read", "parameters": {}}),
        json!({"class": "read"}),
    ] {
        assert!(!validator.is_valid(&bad), "{bad} passed");
    }
}
