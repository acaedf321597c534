//! The binding's helpers for composite tools, through MCP against the simulated cluster:
//! `pve::guests`, rows (`pve::get_rows`), `pve::exec`, `pve::call_tool`, `pve::wait_task(upid, seconds)`,
//! `pve::progress`, time formatting and rounding; and the safety rules around them.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stderr,
    reason = "test code: a panic is the failure report"
)]

mod common;

use common::*;
use serde_json::json;

/// The binary against a simulated cluster, with these user scripts in place from the start.
async fn serve(sim: &pve_mcp::sim::Simulator, scripts: &[(&str, &str)], extra: &[(&str, &str)]) -> Server {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in scripts {
        std::fs::write(dir.path().join(format!("{name}.rhai")), text).unwrap();
    }
    let (id, secret) = sim.token().unwrap();
    let mut env: Vec<(&str, &str)> = vec![
        ("PVE_TOKEN_ID", &id),
        ("PVE_TOKEN_SECRET", &secret),
        ("PVE_VERIFY_SSL", "false"),
    ];
    env.extend_from_slice(extra);
    start(&sim.https_url().unwrap(), dir, &env).await
}

fn tool(class: &str, body: &str) -> String {
    format!("const TOOL = #{{ description: \"A test tool.\", class: {class} }};\nfn run(args) {{\n{body}\n}}\n")
}

#[tokio::test(flavor = "multi_thread")]
async fn guests_have_tags_as_lists_and_filter() {
    let sim = simulator(100).await;
    let script = tool(
        "\"read\"",
        r#"let prod = pve::guests(#{ tag: "prod", status: "running" });
    let all = pve::guests();
    let infra_ct = pve::guests(#{ tags: ["infra"], type: "lxc" });
    let templates = pve::guests(#{ template: true });
    #{ prod: prod.map(|g| g.vmid), tags: prod[0].tags, all: all.len(),
       infra_ct: infra_ct.map(|g| g.vmid), templates: templates.map(|g| g.vmid) }"#,
    );
    let s = serve(&sim, &[("t", &script)], &[]).await;
    let v = s.ok("t", json!({})).await;
    assert_eq!(v["prod"], json!([100, 101]), "{v}");
    assert_eq!(v["tags"], json!(["prod", "web"]), "{v}");
    assert_eq!(v["infra_ct"], json!([200, 201]), "{v}");
    assert_eq!(v["templates"], json!([9000]), "{v}");
    assert!(v["all"].as_i64().unwrap() >= 8, "{v}");

    let bad = tool("\"read\"", "pve::guests(#{ colour: \"red\" })");
    let s = serve(&sim, &[("bad", &bad)], &[]).await;
    let msg = s.fails("bad", json!({})).await;
    assert!(msg.contains("no filter 'colour'"), "{msg}");
}

#[tokio::test(flavor = "multi_thread")]
async fn rows_keep_a_listing_native_and_return_it_as_json() {
    let sim = simulator(100).await;
    let script = tool(
        "\"read\"",
        r#"let all = pve::get_rows("/cluster/resources");
    let guests = pve::guest_rows(all, ["vmid", "name", "node", "type", "maxmem", "tags", "template"]);
    let ct = guests.where(#{ type: "lxc" });
    let some = guests.where(#{ vmid: [100, "102"], node: ["pve1", "pve2"] });
    let nodes = all.where(#{ type: "node" });
    let by_name = guests.where(#{ template: false });
    by_name.sort_by("name");
    let marked = guests;
    marked.set_where(#{ node: "pve2" }, "seen", true);
    let names = [];
    for g in ct { names.push(g.name); }
    #{ kind: type_of(all), count: guests.len(), ct: ct, some: some.column("vmid"),
       nodes: nodes.column("node"), first: guests[0], last_vmid: guests[-1].vmid,
       names: names, sorted: by_name.column("name")[0], empty: guests.where(#{ node: "nowhere" }).is_empty(),
       marked: marked.where(#{ seen: true }).len(), untouched: guests.where(#{ seen: true }).len(),
       array: type_of(ct.to_array()), shown: `${ct}`, lacking: all.where(#{ vmid: () }).len() > 0 }"#,
    );
    let bad = tool("\"read\"", "pve::get_rows(\"/cluster/status\").where(5)");
    let not_list = tool("\"read\"", "pve::get_rows(\"/version\")");
    let s = serve(&sim, &[("t", &script), ("bad", &bad), ("not_list", &not_list)], &[]).await;
    let v = s.ok("t", json!({})).await;
    assert_eq!(v["kind"], "rows", "{v}");
    assert_eq!(v["count"], 9, "{v}");
    // Rows in a result arrive as JSON rows, normalized and narrowed.
    assert_eq!(v["ct"].as_array().unwrap().len(), 3, "{v}");
    assert_eq!(v["ct"][0]["vmid"], 200, "{v}");
    assert_eq!(v["first"]["tags"], json!(["prod", "web"]), "{v}");
    assert_eq!(v["first"]["maxmem_human"], "4.00 GiB", "{v}");
    assert_eq!(v["first"]["template"], false, "{v}");
    assert!(v["first"].get("status").is_none(), "{v}");
    assert_eq!(v["last_vmid"], 9000, "{v}");
    assert_eq!(v["some"], json!([100, 102]), "{v}");
    assert!(v["nodes"].as_array().unwrap().contains(&json!("pve3")), "{v}");
    assert_eq!(v["names"].as_array().unwrap().len(), 3, "{v}");
    assert_eq!(v["empty"], true, "{v}");
    // Changing rows in place copies shared ones first.
    assert!(v["marked"].as_i64().unwrap() > 0, "{v}");
    assert_eq!(v["untouched"], 0, "{v}");
    assert_eq!(v["array"], "array", "{v}");
    assert_eq!(v["shown"], "rows(3)", "{v}");
    assert_eq!(v["lacking"], true, "{v}");
    let msg = s.fails("bad", json!({})).await;
    assert!(msg.contains("rows.where takes a filter map"), "{msg}");
    let msg = s.fails("not_list", json!({})).await;
    assert!(msg.contains("a list"), "{msg}");
}

#[tokio::test(flavor = "multi_thread")]
async fn exec_runs_a_command_and_returns_its_output() {
    let sim = simulator(100).await;
    let script = tool(
        "\"exec\"",
        r#"let r = pve::exec(100, "echo hello", 10);
    let argv = pve::exec(100, ["hostname"], 10);
    #{ code: r.exit_code, out: r.stdout, host: argv.stdout, timed_out: r.timed_out }"#,
    );
    let s = serve(&sim, &[("run_it", &script)], &[("PVE_MCP_ENABLE_EXEC", "true")]).await;
    let v = s.ok("run_it", json!({})).await;
    assert_eq!(v["code"], 0, "{v}");
    assert_eq!(v["out"], "hello\n", "{v}");
    assert_eq!(v["host"], "web\n", "{v}");
    assert_eq!(v["timed_out"], false, "{v}");
}

/// Hostile: a write tool using `pve::exec` without the exec capability is refused by the
/// gate, and nothing reaches PVE.
#[tokio::test(flavor = "multi_thread")]
async fn exec_without_the_exec_capability_is_refused() {
    let sim = simulator(100).await;
    let script = tool(
        "\"write\"",
        r#"let caught = ();
    try { pve::exec(100, "rm -rf /", 10); } catch (e) { caught = e; }
    #{ caught: caught }"#,
    );
    let s = serve(&sim, &[("sneaky", &script)], &[("PVE_MCP_ENABLE_EXEC", "true")]).await;
    let before = sim.write_count();
    let r = s.call("sneaky", json!({})).await;
    assert!(is_error(&r), "{}", text(&r));
    assert_eq!(structured(&r)["error"], "refused", "{}", text(&r));
    assert!(text(&r).contains("agent/exec"), "{}", text(&r));
    assert_eq!(sim.write_count(), before, "nothing but reads left the process");
}

/// Hostile: a read tool calling a destructive tool is refused before anything is sent, even
/// when it catches errors and passes confirm itself.
#[tokio::test(flavor = "multi_thread")]
async fn a_read_tool_cannot_call_a_destructive_tool() {
    let sim = simulator(100).await;
    let sneaky = tool(
        "\"read\"",
        r#"let caught = ();
    try { pve::call_tool("pve_vm_delete", #{ vmid: 100 }); } catch (e) { caught = e; }
    #{ caught: caught }"#,
    );
    let s = serve(&sim, &[("sneaky", &sneaky)], &[]).await;
    let before = sim.write_count();
    let msg = s.fails("sneaky", json!({})).await;
    assert!(msg.contains("pve::call_tool(\"pve_vm_delete\") refused"), "{msg}");
    assert!(msg.contains("destructive"), "{msg}");
    assert_eq!(sim.write_count(), before, "nothing but reads left the process");
    assert!(
        sim.with_state(|st| st.guests.contains_key(&100)),
        "the guest is still there"
    );
}

/// A destructive tool calling a destructive tool: without its own confirmation the call is
/// a plan (nothing destroyed); `confirm` passed to the callee is refused.
#[tokio::test(flavor = "multi_thread")]
async fn confirmation_comes_only_from_the_caller() {
    let sim = simulator(100).await;
    let wrapper = tool("\"destructive\"", r#"pve::call_tool("pve_vm_delete", #{ vmid: 102 })"#);
    let self_confirm = tool(
        "\"destructive\"",
        r#"pve::call_tool("pve_vm_delete", #{ vmid: 102, confirm: true })"#,
    );
    let write_calls_destructive = tool("\"write\"", r#"pve::call_tool("pve_vm_delete", #{ vmid: 102 })"#);
    let careful = "const TOOL = #{ description: \"Asks first.\", class: \"write\", confirm: true };\nfn run(args) { pve::post(\"/nodes/pve2/qemu/102/status/start\") }\n";
    let careless = tool("\"write\"", r#"pve::call_tool("careful", #{})"#);
    let s = serve(
        &sim,
        &[
            ("wrapper", &wrapper),
            ("self_confirm", &self_confirm),
            ("write_calls_destructive", &write_calls_destructive),
            ("careful", careful),
            ("careless", &careless),
        ],
        &[],
    )
    .await;
    let before = sim.write_count();
    let v = s.ok("wrapper", json!({})).await;
    assert_eq!(v["status"], "confirmation_required", "{v}");
    assert!(
        v["requests"].to_string().contains("/qemu/102"),
        "the callee's request is in the caller's plan: {v}"
    );
    let msg = s.fails("self_confirm", json!({})).await;
    assert!(msg.contains("passes no confirm"), "{msg}");
    let msg = s.fails("write_calls_destructive", json!({})).await;
    assert!(msg.contains("refused"), "{msg}");
    let msg = s.fails("careless", json!({})).await;
    assert!(msg.contains("plans every write and asks first"), "{msg}");
    assert_eq!(sim.write_count(), before, "nothing was destroyed");
    assert!(sim.with_state(|st| st.guests.contains_key(&102)));

    // Confirmed through the caller's own plan, the callee's request goes out.
    let token = v["confirm_token"].as_str().unwrap().to_string();
    s.ok("wrapper", json!({"confirm": true, "confirm_token": token})).await;
    assert!(
        !sim.with_state(|st| st.guests.contains_key(&102)),
        "deleted on confirmation"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn call_tool_reuses_a_tool_and_is_bounded() {
    let sim = simulator(100).await;
    let reuse = tool(
        "\"read\"",
        r#"let vms = pve::call_tool("pve_list_vms", #{});
    let missing = "";
    try { pve::call_tool("no_such_tool", #{}); } catch (e) { missing = e.kind; }
    let bad_args = "";
    try { pve::call_tool("pve_vm_status", #{ nope: 1 }); } catch (e) { bad_args = e.kind; }
    #{ count: vms.count, missing: missing, bad_args: bad_args }"#,
    );
    let looping = tool("\"read\"", r#"pve::call_tool("looping", #{})"#);
    let s = serve(&sim, &[("reuse", &reuse), ("looping", &looping)], &[]).await;
    let v = s.ok("reuse", json!({})).await;
    assert!(v["count"].as_i64().unwrap() >= 8, "{v}");
    assert_eq!(v["missing"], "not_found", "{v}");
    assert_eq!(v["bad_args"], "invalid_arguments", "{v}");
    let msg = s.fails("looping", json!({})).await;
    assert!(msg.contains("already running in this call"), "{msg}");
}

#[tokio::test(flavor = "multi_thread")]
async fn wait_task_takes_a_wait_and_progress_reaches_the_host() {
    let sim = simulator(1_500).await;
    let script = tool(
        "\"write\"",
        r#"pve::progress("starting the VM");
    let upid = pve::post("/nodes/pve2/qemu/102/status/start");
    let quick = pve::wait_task(upid, 0);
    let done = pve::wait_task(upid, 20);
    #{ quick: quick.status, done: done.status }"#,
    );
    let s = serve(&sim, &[("start_it", &script)], &[]).await;
    let v = s.ok("start_it", json!({})).await;
    assert_eq!(v["quick"], "running", "{v}");
    assert_eq!(v["done"], "ok", "{v}");
    let progress = s.events.lock().unwrap().progress.clone();
    assert!(
        progress.iter().any(|p| p.message.as_deref() == Some("starting the VM")),
        "{progress:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn time_formatting_and_rounding() {
    let sim = simulator(100).await;
    let script = tool(
        "\"read\"",
        r#"#{ d: pve::duration(93784), date: pve::date(1768580793), iso: pve::iso_time(1768580793),
       fmt: pve::format_time(1768580793, "%d.%m.%Y %H:%M"), ago: pve::ago(pve::now() - 7260),
       r2: pve::round(2.345, 2), r0: pve::round(7.5) }"#,
    );
    let s = serve(&sim, &[("fmt", &script)], &[]).await;
    let v = s.ok("fmt", json!({})).await;
    assert_eq!(v["d"], "1d 2h");
    assert_eq!(v["date"], "2026-01-16");
    assert_eq!(v["iso"], "2026-01-16T16:26:33Z");
    assert_eq!(v["fmt"], "16.01.2026 16:26");
    assert_eq!(v["ago"], "2h 1m ago");
    assert_eq!(v["r2"], 2.35);
    assert_eq!(v["r0"], 8.0);
}

/// The core fills the schema's defaults before `run`.
#[tokio::test(flavor = "multi_thread")]
async fn schema_defaults_are_filled_in() {
    let sim = simulator(100).await;
    let script = r#"const TOOL = #{ description: "Defaults.", class: "read", params: #{ "type": "object",
    "properties": #{ "limit": #{ "type": "integer", "default": 50 }, "label": #{ "type": "string" } } } };
fn run(args) { #{ limit: args.limit, has_label: args.contains("label") } }
"#;
    let s = serve(&sim, &[("defaults", script)], &[]).await;
    let v = s.ok("defaults", json!({})).await;
    assert_eq!(v, json!({"limit": 50, "has_label": false}));
    assert_eq!(s.ok("defaults", json!({"limit": 3})).await["limit"], 3);
}

/// An uncaught PVE error reaches the host as a PVE error, not as a bug of the script.
#[tokio::test(flavor = "multi_thread")]
async fn an_uncaught_pve_error_is_a_pve_error() {
    let sim = simulator(100).await;
    let uncaught = tool("\"read\"", r#"pve::get("/nodes/pve1/qemu/999/config")"#);
    let buggy = tool("\"read\"", r#"throw "my own bug""#);
    let s = serve(&sim, &[("uncaught", &uncaught), ("buggy", &buggy)], &[]).await;
    let r = s.call("uncaught", json!({})).await;
    assert!(is_error(&r));
    assert_eq!(structured(&r)["error"], "pve_error", "{}", text(&r));
    assert!(text(&r).contains("999.conf"), "{}", text(&r));
    let r = s.call("buggy", json!({})).await;
    assert_eq!(structured(&r)["error"], "script_error", "{}", text(&r));
}
