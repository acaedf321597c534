//! Adding, editing, breaking and removing scripts while the server runs.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stderr,
    reason = "test code: a panic is the failure report"
)]

mod common;

use common::*;
use serde_json::json;

const HELLO: &str = r#"const TOOL = #{ description: "Says hello.", class: "read", params: #{ "properties": #{ "who": #{ "type": "string" } } } };
fn run(args) { #{ greeting: `hello ${args.who}` } }
"#;

#[tokio::test(flavor = "multi_thread")]
async fn scripts_change_while_the_server_runs() {
    let pve = fake_pve().await;
    let s = start(&pve.uri(), tempfile::tempdir().unwrap(), &[]).await;
    assert!(!s.tool_names().await.contains(&"hello".to_string()));
    let file = s.scripts.path().join("hello.rhai");

    // Added: the host is told, and the tool works.
    std::fs::write(&file, HELLO).unwrap();
    s.wait_for("list_changed after adding", |e| e.list_changed >= 1).await;
    assert!(s.tool_names().await.contains(&"hello".to_string()));
    assert_eq!(
        structured(&s.call("hello", json!({"who": "pve"})).await)["greeting"],
        "hello pve"
    );

    // A body-only edit is served at once, without a list_changed.
    let before = s.events.lock().unwrap().list_changed;
    std::fs::write(&file, HELLO.replace("hello ${", "hi ${")).unwrap();
    let mut served = false;
    for _ in 0..100 {
        if structured(&s.call("hello", json!({"who": "pve"})).await)["greeting"] == "hi pve" {
            served = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(served, "the edited body must be served");
    assert_eq!(
        s.events.lock().unwrap().list_changed,
        before,
        "a body-only edit does not change the listing"
    );

    // Broken: the last good version stays in service, and the log says where it broke.
    std::fs::write(
        &file,
        "const TOOL = #{ description: \"x\", class: \"read\" };\nfn run(args) { let = 1; }\n",
    )
    .unwrap();
    s.wait_for_log("hello.rhai:2:").await;
    assert_eq!(
        structured(&s.call("hello", json!({"who": "pve"})).await)["greeting"],
        "hi pve"
    );

    // A schema change notifies.
    std::fs::write(&file, HELLO.replace("Says hello.", "Says hello politely.")).unwrap();
    s.wait_for("list_changed after a description change", |e| e.list_changed > before)
        .await;

    // Removed: gone from the list.
    let before = s.events.lock().unwrap().list_changed;
    std::fs::remove_file(&file).unwrap();
    s.wait_for("list_changed after removal", |e| e.list_changed > before)
        .await;
    assert!(!s.tool_names().await.contains(&"hello".to_string()));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_script_overrides_a_builtin() {
    let pve = fake_pve().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("pve_list_vms.rhai"),
        r#"const TOOL = #{ description: "My own list.", class: "read" }; fn run(args) { #{ mine: true } }"#,
    )
    .unwrap();
    let s = start(&pve.uri(), dir, &[]).await;
    let tools = s.client.list_all_tools().await.unwrap();
    let t = tools.iter().find(|t| t.name == "pve_list_vms").unwrap();
    assert_eq!(t.description.as_deref(), Some("My own list."));
    assert_eq!(structured(&s.call("pve_list_vms", json!({})).await)["mine"], true);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_2026_07_28_client_hears_list_changed_on_its_subscription() {
    use rmcp::model::{ProtocolVersion, ServerNotification, SubscriptionFilter};
    use rmcp::service::{ClientLifecycleMode, ClientServiceExt};

    let pve = fake_pve().await;
    let scripts = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let cmd = command(&pve.uri(), scripts.path(), home.path(), &[]);
    let (transport, _) = rmcp::transport::TokioChildProcess::builder(cmd)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let client = ()
        .serve_with_lifecycle(
            transport,
            ClientLifecycleMode::Discover {
                preferred_versions: vec![ProtocolVersion::V_2026_07_28],
            },
        )
        .await
        .unwrap();

    // Calls work in the modern era too.
    let r = client
        .call_tool(rmcp::model::CallToolRequestParams::new("pve_list_vms"))
        .await
        .unwrap();
    assert_eq!(r.structured_content.unwrap()["count"], 3);

    let mut sub = client
        .listen(SubscriptionFilter::builder().tools_list_changed().build())
        .await
        .unwrap();
    std::fs::write(scripts.path().join("hello.rhai"), HELLO).unwrap();
    let got = tokio::time::timeout(std::time::Duration::from_secs(10), sub.next())
        .await
        .expect("no notification within 10 s");
    assert!(
        matches!(got, Ok(Some(ServerNotification::ToolListChangedNotification(_)))),
        "{got:?}"
    );
    let names: Vec<String> = client
        .list_all_tools()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name.to_string())
        .collect();
    assert!(names.contains(&"hello".to_string()));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_script_directory_created_later_is_picked_up() {
    let pve = fake_pve().await;
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir(root.path().join("config")).unwrap();
    let scripts = root.path().join("config").join("pve-mcp").join("scripts");
    let home = tempfile::tempdir().unwrap();
    let stderr = std::fs::File::create(home.path().join("stderr.log")).unwrap();
    let cmd = command(&pve.uri(), &scripts, home.path(), &[]);
    let (transport, _) = rmcp::transport::TokioChildProcess::builder(cmd)
        .stderr(stderr)
        .spawn()
        .unwrap();
    let recorder = Recorder::default();
    let events = recorder.events.clone();
    let client = rmcp::ServiceExt::serve(recorder, transport).await.unwrap();
    let names = |c: &rmcp::service::RunningService<rmcp::RoleClient, Recorder>| {
        let c = c.peer().clone();
        async move {
            c.list_all_tools()
                .await
                .unwrap()
                .into_iter()
                .map(|t| t.name.to_string())
                .collect::<Vec<_>>()
        }
    };
    assert!(!names(&client).await.contains(&"hello".to_string()));

    // Created one level at a time, the way a user might.
    std::fs::create_dir(root.path().join("config").join("pve-mcp")).unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    std::fs::create_dir(&scripts).unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    std::fs::write(scripts.join("hello.rhai"), HELLO).unwrap();
    for _ in 0..200 {
        if events.lock().unwrap().list_changed > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        events.lock().unwrap().list_changed > 0,
        "list_changed after the directory appeared"
    );
    assert!(names(&client).await.contains(&"hello".to_string()));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reload_does_not_trigger_the_next_one() {
    let pve = fake_pve().await;
    let s = start(
        &pve.uri(),
        tempfile::tempdir().unwrap(),
        &[("PVE_MCP_LOG", "info,pve_mcp::registry::watch=debug")],
    )
    .await;
    let reloads = |s: &Server| s.stderr_text().matches("script files changed; reloading").count();
    // The edit comes once the watch is up, so that the watcher (not the read that follows
    // its start) is what reloads it.
    s.wait_for_log("for script changes").await;
    std::fs::write(s.scripts.path().join("hello.rhai"), HELLO).unwrap();
    s.wait_for("list_changed after adding", |e| e.list_changed >= 1).await;
    // Reading the scripts (which every reload does) is not a change: once the edit is
    // handled, the watcher stays quiet.
    tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
    let settled = reloads(&s);
    assert!(settled >= 1, "the edit was reloaded");
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert_eq!(
        reloads(&s),
        settled,
        "reloads went on without edits:\n{}",
        s.stderr_text()
    );
}

/// The handshake is answered while the scripts are first read, and the watch begins after
/// that read: a script saved in between is still loaded and announced.
#[tokio::test(flavor = "multi_thread")]
async fn a_script_saved_as_the_server_starts_is_not_lost() {
    let pve = fake_pve().await;
    let s = start(&pve.uri(), tempfile::tempdir().unwrap(), &[]).await;
    std::fs::write(s.scripts.path().join("hello.rhai"), HELLO).unwrap();
    s.wait_for("list_changed after adding", |e| e.list_changed >= 1).await;
    assert!(s.tool_names().await.contains(&"hello".to_string()));
}

/// Poll a call until its text satisfies `ok` (the watcher reloads asynchronously).
async fn call_until(s: &Server, tool: &str, ok: impl Fn(&str) -> bool) -> String {
    let mut last = String::new();
    for _ in 0..100 {
        let args = json!({"who": "pve"}).as_object().cloned().unwrap_or_default();
        let params = rmcp::model::CallToolRequestParams::new(tool.to_string()).with_arguments(args);
        last = match s.client.call_tool(params).await {
            Ok(r) => text(&r),
            // Not loaded yet.
            Err(e) => e.to_string(),
        };
        if ok(&last) {
            return last;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("{tool} never answered as expected; last answer: {last}");
}

async fn scripts_resource(s: &Server) -> serde_json::Value {
    let r = s
        .client
        .read_resource(rmcp::model::ReadResourceRequestParams::new("pve-mcp://scripts"))
        .await
        .unwrap();
    let text = match &r.contents[0] {
        rmcp::model::ResourceContents::TextResourceContents { text, .. } => text.clone(),
        other => panic!("not text: {other:?}"),
    };
    serde_json::from_str(&text).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_broken_save_is_visible_to_the_mcp_user() {
    let pve = fake_pve().await;
    let s = start(&pve.uri(), tempfile::tempdir().unwrap(), &[]).await;
    let file = s.scripts.path().join("hello.rhai");
    std::fs::write(&file, HELLO).unwrap();
    s.wait_for("list_changed after adding", |e| e.list_changed >= 1).await;
    let fine = call_until(&s, "hello", |t| t.contains("hello pve")).await;
    assert!(!fine.contains("note:"), "{fine}");

    // The edit breaks at line 2, column 20: the next call says so, and that the old version ran.
    std::fs::write(
        &file,
        "const TOOL = #{ description: \"Says hello.\", class: \"read\" };\nfn run(args) { let = 1; }\n",
    )
    .unwrap();
    let answer = call_until(&s, "hello", |t| t.contains("note:")).await;
    assert!(answer.contains("hello pve"), "the previous version ran: {answer}");
    let shown = file.display().to_string();
    assert!(
        answer.contains(&format!("the last edit of {shown} failed to compile at {shown}:2:")),
        "{answer}"
    );
    assert!(answer.contains("the previous version of that file ran"), "{answer}");

    // A new tool that never compiled: its call answers with the compile error.
    std::fs::write(
        s.scripts.path().join("fresh.rhai"),
        "const TOOL = #{ description: \"New.\", class: \"read\" };\nfn run(args) { 1 +; }\n",
    )
    .unwrap();
    let answer = call_until(&s, "fresh", |t| t.contains("not in service")).await;
    assert!(answer.contains("fresh.rhai:2:"), "{answer}");
    assert!(!answer.contains("does not exist"), "{answer}");

    // The scripts resource lists both, with state and place.
    let resources = s.client.list_all_resources().await.unwrap();
    assert!(resources.iter().any(|r| r.uri == "pve-mcp://scripts"), "{resources:?}");
    let status = scripts_resource(&s).await;
    let row = |name: &str| {
        status["tools"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["tool"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} not listed: {status}"))
    };
    assert_eq!(row("fresh")["state"], "broken; not in service");
    assert_eq!(row("fresh")["error"]["line"], 2);
    assert_eq!(row("hello")["state"], "broken; the previous version is in service");
    assert_eq!(row("hello")["error"]["line"], 2);
    assert_eq!(row("pve_list_vms")["state"], "ok");

    // Fixed: the note goes away.
    std::fs::write(&file, HELLO).unwrap();
    call_until(&s, "hello", |t| !t.contains("note:")).await;
}

/// A user library named like a built-in one serves the user's tools only; the built-in
/// tools keep the built-in library.
#[tokio::test(flavor = "multi_thread")]
async fn a_user_library_does_not_replace_the_builtin_one_for_builtin_tools() {
    let pve = fake_pve().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("lib")).unwrap();
    std::fs::write(dir.path().join("lib/text.rhai"), "fn shout(s) { s.to_upper() }\n").unwrap();
    std::fs::write(dir.path().join("lib/guest.rhai"), "fn nothing() { 0 }\n").unwrap();
    std::fs::write(
        dir.path().join("loud.rhai"),
        r#"import "lib/text" as text;
const TOOL = #{ description: "Shouts.", class: "read" };
fn run(args) { #{ said: text::shout("hi") } }
"#,
    )
    .unwrap();
    let s = start(&pve.uri(), dir, &[]).await;
    let vms = s.ok("pve_list_vms", json!({})).await;
    assert_eq!(vms["count"], 3, "{vms}");
    assert_eq!(s.ok("loud", json!({})).await["said"], "HI");
}

/// A tool that declares an output schema: its plan fits the listed (widened) schema, and its
/// errors carry no structured content that hosts would check against it.
#[tokio::test(flavor = "multi_thread")]
async fn output_schemas_admit_plans_and_errors() {
    let pve = permissive_pve().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("drop_it.rhai"),
        r#"const TOOL = #{ description: "Deletes.", class: "destructive",
    params: #{ "type": "object", "properties": #{ "fail": #{ "type": "boolean", "default": false } } },
    output: #{ "type": "object", "properties": #{ "deleted": #{ "type": "boolean" } }, "required": ["deleted"] } };
fn run(args) {
    if args.fail { throw "it broke"; }
    pve::delete("/nodes/pve1/qemu/100");
    #{ deleted: true }
}
"#,
    )
    .unwrap();
    let s = start(&pve.uri(), dir, &[]).await;
    let tools = s.client.list_all_tools().await.unwrap();
    let t = tools.iter().find(|t| t.name == "drop_it").unwrap();
    let schema = serde_json::Value::Object((*t.output_schema.clone().unwrap()).clone());
    let validator = jsonschema::validator_for(&schema).unwrap();

    let plan = s.ok("drop_it", json!({})).await;
    assert_eq!(plan["status"], "confirmation_required");
    assert!(validator.is_valid(&plan), "the plan fits the listed schema: {schema}");
    assert!(
        !validator.is_valid(&json!({"nothing": 1})),
        "the declared part still binds"
    );

    let r = s.call("drop_it", json!({"fail": true})).await;
    assert!(is_error(&r), "{}", text(&r));
    assert!(r.structured_content.is_none(), "{:?}", r.structured_content);
    assert!(text(&r).contains("it broke"), "{}", text(&r));
    assert!(sent_writes(&pve).await.is_empty());
}
