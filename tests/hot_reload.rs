//! Adding, editing, breaking and removing scripts while the server runs.

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
