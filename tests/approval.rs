//! A person approves destructive calls through MCP elicitation (`PVE_MCP_CONFIRM=human`, and
//! `auto` with a client that declared elicitation), in both protocol eras: the handshake era
//! asks with `elicitation/create`, 2026-07-28 answers with an input-required result and the
//! client retries. Every refused case is proven from the simulated cluster's state and
//! request counts, or the fake PVE's log.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stderr,
    reason = "test code: a panic is the failure report"
)]

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, ClientCapabilities, ClientConfig, ElicitRequestParams, ElicitResult,
    ElicitationAction, Implementation, ProtocolVersion,
};
use rmcp::service::{ClientLifecycleMode, ClientServiceExt, RequestContext, RunningService};
use rmcp::{ErrorData, RoleClient, ServiceExt};
use serde_json::{Map, Value, json};

#[derive(Clone, Copy, Debug)]
enum Reply {
    Approve,
    Decline,
    Cancel,
    /// Accept, but leave the approval box unchecked.
    AcceptUnchecked,
}

/// An MCP client with a person behind it: it declares elicitation and answers every
/// approval request the same way, keeping what it was shown.
/// Something that happens while the person reads the approval request.
type Meanwhile = Arc<dyn Fn() + Send + Sync>;

#[derive(Clone)]
struct Person {
    reply: Reply,
    asked: Arc<Mutex<Vec<String>>>,
    meanwhile: Option<Meanwhile>,
}

impl Person {
    fn new(reply: Reply) -> Person {
        Person {
            reply,
            asked: Arc::default(),
            meanwhile: None,
        }
    }
    fn asked(&self) -> Vec<String> {
        self.asked.lock().unwrap().clone()
    }
}

impl rmcp::ClientHandler for Person {
    fn get_info(&self) -> ClientConfig {
        ClientConfig::new(
            ClientCapabilities::builder().enable_elicitation().build(),
            Implementation::new("person", "1.0"),
        )
    }

    async fn create_elicitation(
        &self,
        request: ElicitRequestParams,
        _cx: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, ErrorData> {
        if let ElicitRequestParams::FormElicitationParams { message, .. } = &request {
            self.asked.lock().unwrap().push(message.clone());
        }
        if let Some(f) = &self.meanwhile {
            f();
        }
        Ok(match self.reply {
            Reply::Approve => ElicitResult::new(ElicitationAction::Accept).with_content(json!({"approve": true})),
            Reply::AcceptUnchecked => {
                ElicitResult::new(ElicitationAction::Accept).with_content(json!({"approve": false}))
            }
            Reply::Decline => ElicitResult::new(ElicitationAction::Decline),
            Reply::Cancel => ElicitResult::new(ElicitationAction::Cancel),
        })
    }
}

struct Session {
    client: RunningService<RoleClient, Person>,
    person: Person,
    _home: tempfile::TempDir,
    _scripts: tempfile::TempDir,
}

impl Session {
    async fn call(&self, tool: &str, args: Value) -> rmcp::model::CallToolResult {
        let args: Map<String, Value> = args.as_object().cloned().unwrap_or_default();
        self.client
            .call_tool(CallToolRequestParams::new(tool.to_string()).with_arguments(args))
            .await
            .unwrap()
    }
}

/// The real binary with a person's client, in the handshake era or 2026-07-28.
async fn connect(uri: &str, scripts: tempfile::TempDir, env: &[(&str, &str)], person: Person, modern: bool) -> Session {
    let home = tempfile::tempdir().unwrap();
    let cmd = command(uri, scripts.path(), home.path(), env);
    let (transport, _) = rmcp::transport::TokioChildProcess::builder(cmd)
        .stderr(std::fs::File::create(home.path().join("stderr.log")).unwrap())
        .spawn()
        .unwrap();
    let client = if modern {
        person
            .clone()
            .serve_with_lifecycle(
                transport,
                ClientLifecycleMode::Discover {
                    preferred_versions: vec![ProtocolVersion::V_2026_07_28],
                },
            )
            .await
            .unwrap()
    } else {
        person.clone().serve(transport).await.unwrap()
    };
    Session {
        client,
        person,
        _home: home,
        _scripts: scripts,
    }
}

async fn on_sim(sim: &pve_mcp::sim::Simulator, env: &[(&str, &str)], reply: Reply, modern: bool) -> Session {
    let (id, secret) = sim.token().unwrap();
    let mut all: Vec<(&str, &str)> = vec![
        ("PVE_TOKEN_ID", &id),
        ("PVE_TOKEN_SECRET", &secret),
        ("PVE_VERIFY_SSL", "false"),
    ];
    all.extend_from_slice(env);
    connect(
        &sim.https_url().unwrap(),
        tempfile::tempdir().unwrap(),
        &all,
        Person::new(reply),
        modern,
    )
    .await
}

fn exists(sim: &pve_mcp::sim::Simulator, vmid: u32) -> bool {
    sim.with_state(|st| st.guests.contains_key(&vmid))
}

#[tokio::test(flavor = "multi_thread")]
async fn an_approved_delete_is_carried_out_in_both_eras() {
    for modern in [false, true] {
        let sim = simulator(0).await;
        let logdir = tempfile::tempdir().unwrap();
        let log = logdir.path().join("audit.jsonl");
        let s = on_sim(
            &sim,
            &[("PVE_MCP_AUDIT_LOG", log.to_str().unwrap())],
            Reply::Approve,
            modern,
        )
        .await;
        // The model cannot skip the person by setting confirm itself.
        let r = s.call("pve_vm_delete", json!({"vmid": 102, "confirm": true})).await;
        assert!(!is_error(&r), "modern={modern}: {}", text(&r));
        assert_eq!(structured(&r)["status"], "ok", "{}", text(&r));
        assert!(!exists(&sim, 102));
        let asked = s.person.asked();
        assert_eq!(asked.len(), 1, "asked once: {asked:?}");
        assert!(asked[0].contains("DELETE /nodes/pve2/qemu/102"), "{}", asked[0]);
        assert!(asked[0].contains("[destructive]"), "{}", asked[0]);
        // The log has the person's answer, then the request it approved, and its chain holds.
        let lines: Vec<Value> = std::fs::read_to_string(&log)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let approval = lines
            .iter()
            .position(|l| l["event"] == "approval")
            .expect("an approval entry");
        assert_eq!(lines[approval]["approval"], "human accept");
        assert_eq!(lines[approval]["requests"][0]["path"], "/nodes/pve2/qemu/102");
        let request = lines
            .iter()
            .position(|l| l["event"] == "request" && l["method"] == "DELETE")
            .expect("the delete was logged");
        assert!(request > approval);
        assert_eq!(lines[request]["approval"], "human accept");
        let out = std::process::Command::new(bin())
            .args(["audit", "verify"])
            .arg(&log)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_decline_or_cancel_changes_nothing_and_says_so() {
    for modern in [false, true] {
        for (reply, kind) in [
            (Reply::Decline, "declined"),
            (Reply::Cancel, "cancelled_by_user"),
            (Reply::AcceptUnchecked, "declined"),
        ] {
            let sim = simulator(0).await;
            let s = on_sim(&sim, &[("PVE_MCP_CONFIRM", "human")], reply, modern).await;
            let writes = sim.write_count();
            let r = s.call("pve_vm_delete", json!({"vmid": 102})).await;
            assert!(is_error(&r), "{reply:?} modern={modern}: {}", text(&r));
            assert_eq!(structured(&r)["error"], kind, "{}", text(&r));
            assert_eq!(structured(&r)["performed"], false);
            assert!(text(&r).contains("nothing was changed"), "{}", text(&r));
            assert_eq!(sim.write_count(), writes, "{reply:?}: nothing was sent");
            assert!(exists(&sim, 102));
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_without_elicitation_is_told_how_to_proceed() {
    let sim = simulator(0).await;
    let s = start_on(&sim, None, &[("PVE_MCP_CONFIRM", "human")]).await;
    let writes = sim.write_count();
    let r = s.call("pve_vm_delete", json!({"vmid": 102, "confirm": true})).await;
    assert!(is_error(&r));
    assert_eq!(structured(&r)["error"], "confirmation", "{}", text(&r));
    assert!(text(&r).contains("did not declare MCP elicitation"), "{}", text(&r));
    assert!(text(&r).contains("plan or flag"), "{}", text(&r));
    assert_eq!(sim.write_count(), writes);
    assert!(exists(&sim, 102));
    // `auto` (the default) with the same client is the reference behaviour: a plan, then confirm.
    let s = start_on(&sim, None, &[]).await;
    let plan = s.call("pve_vm_delete", json!({"vmid": 102})).await;
    assert_eq!(structured(&plan)["status"], "confirmation_required", "{}", text(&plan));
    let r = s.call("pve_vm_delete", json!({"vmid": 102, "confirm": true})).await;
    assert!(!is_error(&r), "{}", text(&r));
    assert!(!exists(&sim, 102));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_listing_matches_how_this_client_confirms() {
    let sim = simulator(0).await;
    let s = on_sim(&sim, &[], Reply::Approve, false).await;
    let tools = s.client.list_all_tools().await.unwrap();
    let t = tools.iter().find(|t| t.name == "pve_vm_delete").unwrap();
    assert!(
        t.input_schema["properties"].get("confirm").is_none(),
        "{:?}",
        t.input_schema
    );
    assert!(t.input_schema["properties"].get("confirm_token").is_none());
    assert!(
        t.description
            .as_deref()
            .unwrap_or("")
            .contains("the user approves each such call")
    );
    // A client without elicitation sees confirm, as in the reference.
    let old = start_on(&sim, None, &[]).await;
    let tools = old.client.list_all_tools().await.unwrap();
    let t = tools.iter().find(|t| t.name == "pve_vm_delete").unwrap();
    assert_eq!(t.input_schema["properties"]["confirm"]["type"], "boolean");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plan_that_lies_is_refused_after_the_person_approved_it() {
    for modern in [false, true] {
        let pve = permissive_pve().await;
        let dir = fixtures(&["confirm/bait_and_switch.rhai"]);
        let s = connect(&pve.uri(), dir, &[], Person::new(Reply::Approve), modern).await;
        let r = s.call("bait_and_switch", json!({})).await;
        assert!(is_error(&r), "{}", text(&r));
        assert_eq!(structured(&r)["error"], "refused", "{}", text(&r));
        assert!(text(&r).contains("not one the approved plan showed"), "{}", text(&r));
        assert!(non_get(&pve).await.is_empty(), "sent: {:?}", non_get(&pve).await);
        // What the person was shown is what the plan recorded, not what the run tried.
        let asked = s.person.asked();
        assert!(asked[0].contains("/snapshot/old"), "{}", asked[0]);
        assert!(!asked[0].contains("/qemu/101"), "{}", asked[0]);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replayed_approval_is_refused() {
    let sim = simulator(0).await;
    let s = on_sim(&sim, &[], Reply::Approve, true).await;
    // Drive the rounds by hand, as a misbehaving client could.
    let args: Map<String, Value> = json!({"vmid": 102}).as_object().cloned().unwrap();
    let first = s
        .client
        .call_tool_once(CallToolRequestParams::new("pve_vm_delete").with_arguments(args.clone()))
        .await
        .unwrap();
    let CallToolResponse::InputRequired(ir) = first else {
        panic!("expected input_required, got {first:?}");
    };
    let state = ir.request_state.clone().unwrap();
    let mut responses = rmcp::model::InputResponses::new();
    responses.insert(
        "approval".into(),
        json!({"action": "accept", "content": {"approve": true}}),
    );
    let retry = || {
        let mut p = CallToolRequestParams::new("pve_vm_delete").with_arguments(args.clone());
        p.request_state = Some(state.clone());
        p.input_responses = Some(responses.clone());
        p
    };
    let CallToolResponse::Complete(done) = s.client.call_tool_once(retry()).await.unwrap() else {
        panic!("expected a result");
    };
    assert!(!is_error(&done), "{}", text(&done));
    assert!(!exists(&sim, 102));
    let writes = sim.write_count();
    let CallToolResponse::Complete(again) = s.client.call_tool_once(retry()).await.unwrap() else {
        panic!("expected a result");
    };
    assert!(is_error(&again));
    assert!(text(&again).contains("already carried out"), "{}", text(&again));
    assert_eq!(sim.write_count(), writes);
    // A state for other arguments is worth nothing.
    let mut p =
        CallToolRequestParams::new("pve_vm_delete").with_arguments(json!({"vmid": 103}).as_object().cloned().unwrap());
    p.request_state = Some(state);
    p.input_responses = Some(responses);
    let CallToolResponse::Complete(other) = s.client.call_tool_once(p).await.unwrap() else {
        panic!("expected a result");
    };
    assert_eq!(structured(&other)["error"], "confirmation", "{}", text(&other));
    assert_eq!(sim.write_count(), writes);
}

#[tokio::test(flavor = "multi_thread")]
async fn guest_commands_are_approved_by_the_person_too() {
    let env = [("PVE_MCP_ENABLE_EXEC", "true")];
    for modern in [false, true] {
        let sim = simulator(0).await;
        let s = on_sim(&sim, &env, Reply::Decline, modern).await;
        let writes = sim.write_count();
        let r = s
            .call("pve_vm_exec", json!({"vmid": 101, "command": "rm -rf /srv"}))
            .await;
        assert_eq!(structured(&r)["error"], "declined", "{}", text(&r));
        assert_eq!(sim.write_count(), writes, "the command was not sent");
        let asked = s.person.asked();
        assert!(
            asked[0].contains("POST /nodes/pve1/qemu/101/agent/exec"),
            "{}",
            asked[0]
        );
        assert!(asked[0].contains("rm -rf /srv"), "{}", asked[0]);

        let s = on_sim(&sim, &env, Reply::Approve, modern).await;
        let r = s.call("pve_vm_exec", json!({"vmid": 101, "command": "echo ok"})).await;
        assert!(!is_error(&r), "{}", text(&r));
        assert_eq!(structured(&r)["exitcode"], 0, "{}", text(&r));
    }
    // PVE_MCP_CONFIRM_EXEC=off: enabling exec is the consent, as in the reference.
    let sim = simulator(0).await;
    let s = on_sim(&sim, &[env[0], ("PVE_MCP_CONFIRM_EXEC", "off")], Reply::Decline, false).await;
    let r = s.call("pve_vm_exec", json!({"vmid": 101, "command": "echo ok"})).await;
    assert!(!is_error(&r), "{}", text(&r));
    assert!(s.person.asked().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn flag_mode_can_confirm_guest_commands_with_a_plan() {
    let sim = simulator(0).await;
    let s = start_on(
        &sim,
        None,
        &[("PVE_MCP_ENABLE_EXEC", "true"), ("PVE_MCP_CONFIRM_EXEC", "plan")],
    )
    .await;
    let writes = sim.write_count();
    let plan = s.call("pve_vm_exec", json!({"vmid": 101, "command": "echo ok"})).await;
    assert_eq!(structured(&plan)["status"], "confirmation_required", "{}", text(&plan));
    assert_eq!(sim.write_count(), writes);
    let r = s
        .call(
            "pve_vm_exec",
            json!({"vmid": 101, "command": "echo ok", "confirm": true}),
        )
        .await;
    assert_eq!(structured(&r)["error"], "confirmation", "{}", text(&r));
    let t = structured(&plan)["confirm_token"].as_str().unwrap().to_string();
    let r = s
        .call(
            "pve_vm_exec",
            json!({"vmid": 101, "command": "echo ok", "confirm": true, "confirm_token": t}),
        )
        .await;
    assert!(!is_error(&r), "{}", text(&r));
    assert_eq!(structured(&r)["stdout"], "ok\n", "{}", text(&r));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_guest_changed_while_the_person_was_asked_is_not_deleted() {
    for modern in [false, true] {
        let sim = Arc::new(simulator(0).await);
        let (id, secret) = sim.token().unwrap();
        let mut person = Person::new(Reply::Approve);
        let changer = sim.clone();
        person.meanwhile = Some(Arc::new(move || {
            changer.with_state(|st| {
                if let Some(g) = st.guests.get_mut(&102) {
                    g.config.insert("description".into(), "changed meanwhile".into());
                }
            })
        }));
        let env = [
            ("PVE_TOKEN_ID", id.as_str()),
            ("PVE_TOKEN_SECRET", secret.as_str()),
            ("PVE_VERIFY_SSL", "false"),
        ];
        let s = connect(
            &sim.https_url().unwrap(),
            tempfile::tempdir().unwrap(),
            &env,
            person,
            modern,
        )
        .await;
        let writes = sim.write_count();
        let r = s.call("pve_vm_delete", json!({"vmid": 102})).await;
        assert_eq!(structured(&r)["error"], "stale_plan", "modern={modern}: {}", text(&r));
        assert_eq!(sim.write_count(), writes);
        assert!(exists(&sim, 102));
    }
}
