//! Confirmation bound to the plan: a plan carries a `confirm_token`; a confirmed call that
//! brings it may send only the destructive requests the plan showed, for the same tool and
//! arguments, before the token expires, and only while the guests it read are unchanged.
//! Each attack is proven from the fake PVE's (or the simulated cluster's) log.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stderr,
    reason = "test code: a panic is the failure report"
)]

mod common;

use common::*;
use serde_json::{Value, json};

fn token(r: &rmcp::model::CallToolResult) -> String {
    structured(r)["confirm_token"].as_str().unwrap_or_default().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_confirmed_call_cannot_do_what_its_plan_did_not_show() {
    let pve = permissive_pve().await;
    let dir = fixtures(&["confirm/bait_and_switch.rhai", "confirm/honest_delete.rhai"]);
    let s = start(&pve.uri(), dir, &[]).await;

    let plan = s.call("bait_and_switch", json!({})).await;
    assert!(!is_error(&plan), "{}", text(&plan));
    assert_eq!(structured(&plan)["status"], "confirmation_required");
    let t = token(&plan);
    assert!(!t.is_empty(), "a plan carries a confirm_token: {}", text(&plan));
    assert_eq!(
        plan.meta
            .as_ref()
            .and_then(|m| m.0.get("pve-mcp/plan"))
            .map(|p| p["tool"].clone()),
        Some(json!("bait_and_switch")),
        "a core plan is marked in _meta"
    );

    let r = s
        .call("bait_and_switch", json!({"confirm": true, "confirm_token": t}))
        .await;
    assert!(is_error(&r));
    assert_eq!(structured(&r)["error"], "refused", "{}", text(&r));
    assert!(text(&r).contains("not one the approved plan showed"), "{}", text(&r));
    assert!(non_get(&pve).await.is_empty(), "sent: {:?}", non_get(&pve).await);

    // A token is for its own tool and arguments only.
    let r = s
        .call("honest_delete", json!({"confirm": true, "confirm_token": t}))
        .await;
    assert_eq!(structured(&r)["error"], "confirmation", "{}", text(&r));
    let plan = s.call("honest_delete", json!({"note": "a"})).await;
    let t = token(&plan);
    let r = s
        .call(
            "honest_delete",
            json!({"note": "b", "confirm": true, "confirm_token": t}),
        )
        .await;
    assert_eq!(structured(&r)["error"], "confirmation", "{}", text(&r));
    let r = s
        .call(
            "honest_delete",
            json!({"note": "a", "confirm": true, "confirm_token": format!("{t}x")}),
        )
        .await;
    assert_eq!(structured(&r)["error"], "confirmation", "{}", text(&r));
    assert!(non_get(&pve).await.is_empty(), "sent: {:?}", non_get(&pve).await);

    // The honest tool, confirmed with its own token, does what it showed.
    let r = s
        .call(
            "honest_delete",
            json!({"note": "a", "confirm": true, "confirm_token": t}),
        )
        .await;
    assert!(!is_error(&r), "{}", text(&r));
    let sent = sent_writes(&pve).await;
    assert_eq!(sent, ["DELETE /api2/json/nodes/pve1/qemu/100/snapshot/old"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn plan_mode_needs_the_token_and_expired_tokens_are_refused() {
    let pve = permissive_pve().await;
    let dir = fixtures(&["confirm/honest_delete.rhai"]);
    let s = start(
        &pve.uri(),
        dir,
        &[("PVE_MCP_CONFIRM", "plan"), ("PVE_MCP_PLAN_TTL", "1")],
    )
    .await;
    let r = s.call("honest_delete", json!({"confirm": true})).await;
    assert_eq!(structured(&r)["error"], "confirmation", "{}", text(&r));
    assert!(text(&r).contains("PVE_MCP_CONFIRM=plan"), "{}", text(&r));
    let plan = s.call("honest_delete", json!({})).await;
    assert_eq!(structured(&plan)["expires_in_seconds"], 1);
    let t = token(&plan);
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let r = s
        .call("honest_delete", json!({"confirm": true, "confirm_token": t}))
        .await;
    assert_eq!(structured(&r)["error"], "confirmation", "{}", text(&r));
    assert!(text(&r).contains("expired"), "{}", text(&r));
    assert!(non_get(&pve).await.is_empty(), "sent: {:?}", non_get(&pve).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tool_cannot_pass_off_its_answer_as_a_plan() {
    let pve = permissive_pve().await;
    let s = start(&pve.uri(), fixtures(&["confirm/forged_plan.rhai"]), &[]).await;
    let r = s.call("forged_plan", json!({})).await;
    assert!(
        is_error(&r),
        "a result that claims to be a plan is refused: {}",
        text(&r)
    );
    assert_eq!(structured(&r)["error"], "script_error");
    assert!(text(&r).contains("only the core makes plans"), "{}", text(&r));
    assert!(
        r.meta.as_ref().and_then(|m| m.0.get("pve-mcp/plan")).is_none(),
        "only the core marks a plan"
    );
    // Its token is worth nothing to a real destructive tool.
    let r = s
        .call(
            "pve_vm_delete",
            json!({"vmid": 101, "confirm": true, "confirm_token": "forged"}),
        )
        .await;
    assert_eq!(structured(&r)["error"], "confirmation", "{}", text(&r));
    assert!(non_get(&pve).await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stale_plan_changes_nothing() {
    let sim = simulator(0).await;
    let s = start_on(&sim, None, &[]).await;
    let plan = s.call("pve_vm_delete", json!({"vmid": 102})).await;
    assert_eq!(structured(&plan)["status"], "confirmation_required", "{}", text(&plan));
    let t = token(&plan);
    // Someone changes the guest after the plan was shown.
    let r = s
        .call(
            "pve_vm_set_config",
            json!({"vmid": 102, "config": {"description": "changed"}}),
        )
        .await;
    assert!(!is_error(&r), "{}", text(&r));
    let writes = sim.write_count();
    let r = s
        .call(
            "pve_vm_delete",
            json!({"vmid": 102, "confirm": true, "confirm_token": t}),
        )
        .await;
    assert!(is_error(&r));
    assert_eq!(structured(&r)["error"], "stale_plan", "{}", text(&r));
    assert!(text(&r).contains("/nodes/pve2/qemu/102/config"), "{}", text(&r));
    assert_eq!(sim.write_count(), writes, "nothing was sent after the plan went stale");
    assert!(sim.with_state(|st| st.guests.contains_key(&102)));
    // A fresh plan, confirmed at once, deletes it.
    let plan = s.call("pve_vm_delete", json!({"vmid": 102})).await;
    let r = s
        .call(
            "pve_vm_delete",
            json!({"vmid": 102, "confirm": true, "confirm_token": token(&plan)}),
        )
        .await;
    assert!(!is_error(&r), "{}", text(&r));
    assert_eq!(structured(&r)["status"], Value::from("ok"), "{}", text(&r));
    assert!(!sim.with_state(|st| st.guests.contains_key(&102)));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_write_tool_can_ask_for_confirmation_of_every_write() {
    let pve = permissive_pve().await;
    let s = start(&pve.uri(), fixtures(&["confirm/careful_start.rhai"]), &[]).await;
    let tools = s.client.list_all_tools().await.unwrap();
    let t = tools.iter().find(|t| t.name == "careful_start").unwrap();
    let confirm = &t.input_schema["properties"]["confirm"];
    assert!(
        confirm["description"]
            .as_str()
            .unwrap_or("")
            .contains("nothing is changed"),
        "{confirm}"
    );
    let plan = s.call("careful_start", json!({"sneak": true})).await;
    assert_eq!(structured(&plan)["status"], "confirmation_required", "{}", text(&plan));
    assert!(non_get(&pve).await.is_empty());
    // Confirmed with the token, the write the plan did not show is refused.
    let r = s
        .call(
            "careful_start",
            json!({"sneak": true, "confirm": true, "confirm_token": token(&plan)}),
        )
        .await;
    assert_eq!(structured(&r)["error"], "refused", "{}", text(&r));
    let sent = sent_writes(&pve).await;
    assert_eq!(
        sent,
        ["POST /api2/json/nodes/pve1/qemu/100/status/start"],
        "only the planned write went out"
    );
}
