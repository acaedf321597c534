//! The first tools end to end: the real binary over stdio, rmcp's client, a fake PVE.

mod common;

use common::*;
use serde_json::json;
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, ResponseTemplate};

#[tokio::test(flavor = "multi_thread")]
async fn tools_list_carries_class_annotations_and_confirm() {
    let pve = fake_pve().await;
    let s = start(&pve.uri(), tempfile::tempdir().unwrap(), &[]).await;
    let tools = s.client.list_all_tools().await.unwrap();
    let get = |n: &str| {
        tools
            .iter()
            .find(|t| t.name == n)
            .unwrap_or_else(|| panic!("{n} missing"))
            .clone()
    };
    let ann = |n: &str| serde_json::to_value(get(n).annotations.unwrap()).unwrap();

    let read = ann("pve_list_vms");
    assert_eq!(read["readOnlyHint"], true);
    assert_eq!(read["openWorldHint"], true);
    let write = ann("pve_vm_power");
    assert_eq!(write["readOnlyHint"], false);
    assert_eq!(
        write["destructiveHint"], false,
        "write tools must say destructiveHint: false explicitly"
    );
    let destructive = ann("pve_vm_delete");
    assert_eq!(destructive["destructiveHint"], true);

    let schema = serde_json::to_value(&*get("pve_vm_delete").input_schema).unwrap();
    assert_eq!(schema["properties"]["confirm"]["type"], "boolean");
    assert_eq!(schema["required"], json!(["vmid"]));
    let power = serde_json::to_value(&*get("pve_vm_power").input_schema).unwrap();
    assert!(power["properties"].get("confirm").is_none());
    assert_eq!(
        power["properties"]["action"]["enum"],
        json!(["start", "shutdown", "stop", "reboot", "suspend", "resume"])
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn list_vms_filters_and_sends_the_token() {
    let pve = fake_pve().await;
    let s = start(&pve.uri(), tempfile::tempdir().unwrap(), &[]).await;

    let all = structured(&s.call("pve_list_vms", json!({})).await);
    assert_eq!(all["count"], 3);
    assert_eq!(all["guests"][0]["vmid"], 100);
    assert_eq!(all["guests"][0]["maxmem_human"], "4.00 GiB");
    assert_eq!(all["guests"][0]["tags"], json!(["prod", "web"]));
    assert_eq!(all["guests"][0]["template"], false);

    let lxc = structured(&s.call("pve_list_vms", json!({"type": "lxc"})).await);
    assert_eq!(lxc["count"], 1);
    assert_eq!(lxc["guests"][0]["name"], "dns");
    let stopped = structured(
        &s.call("pve_list_vms", json!({"status": "stopped", "node": "pve2"}))
            .await,
    );
    assert_eq!(stopped["count"], 1);
    assert_eq!(stopped["guests"][0]["vmid"], 101);

    let reqs = pve.received_requests().await.unwrap();
    let auth = reqs[0]
        .headers
        .get("authorization")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(auth, format!("PVEAPIToken={TOKEN_ID}={SECRET}"));
    assert_eq!(reqs[0].url.query(), Some("type=vm"));
}

#[tokio::test(flavor = "multi_thread")]
async fn vm_status_resolves_node_and_type_from_vmid() {
    let pve = fake_pve().await;
    Mock::given(method("GET"))
        .and(path("/api2/json/nodes/pve1/lxc/200/status/current"))
        .respond_with(data(json!({"vmid": 200, "name": "dns", "status": "running", "type": "lxc", "mem": 104857600, "maxmem": 536870912, "uptime": 500, "cpus": 1, "pid": 4242})))
        .mount(&pve)
        .await;
    let s = start(&pve.uri(), tempfile::tempdir().unwrap(), &[]).await;
    let r = s.call("pve_vm_status", json!({"vmid": 200})).await;
    assert!(!is_error(&r), "{}", text(&r));
    let v = structured(&r);
    assert_eq!(v["node"], "pve1");
    assert_eq!(v["type"], "lxc");
    assert_eq!(v["mem_human"], "100.00 MiB");
    assert_eq!(text(&r), v.to_string(), "the text content carries the same JSON");

    let missing = s.call("pve_vm_status", json!({"vmid": 999})).await;
    assert!(is_error(&missing));
    let msg = text(&missing);
    assert!(
        msg.contains("No guest has vmid 999") && msg.contains("100 (web), 101 (db), 200 (dns)"),
        "{msg}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn arguments_are_validated_before_the_script_runs() {
    let pve = fake_pve().await;
    let s = start(&pve.uri(), tempfile::tempdir().unwrap(), &[]).await;
    let r = s.call("pve_vm_power", json!({"vmid": 100, "action": "explode"})).await;
    assert!(is_error(&r));
    let msg = text(&r);
    assert!(msg.contains("'action'") && msg.contains("shutdown"), "{msg}");
    let r = s.call("pve_vm_status", json!({"vmid": "abc"})).await;
    assert!(text(&r).contains("'vmid'"), "{}", text(&r));
    let r = s.call("pve_vm_status", json!({"vmid": 100, "nmae": "x"})).await;
    assert!(is_error(&r) && text(&r).contains("nmae"), "{}", text(&r));
    let r = s.call("pve_vm_status", json!({})).await;
    assert!(is_error(&r) && text(&r).contains("vmid"), "{}", text(&r));
    assert!(
        requests(&pve).await.is_empty(),
        "nothing may reach PVE for invalid arguments"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn power_waits_for_the_task_and_reports_progress() {
    let pve = fake_pve().await;
    Mock::given(method("POST"))
        .and(path("/api2/json/nodes/pve1/qemu/100/status/shutdown"))
        .respond_with(data(json!(UPID_START)))
        .expect(1)
        .mount(&pve)
        .await;
    // Running twice, then the default (stopped, OK) answers.
    Mock::given(method("GET"))
        .and(path_regex(r"/tasks/.*/status$"))
        .respond_with(data(json!({"status": "running", "upid": UPID_START})))
        .up_to_n_times(2)
        .with_priority(1)
        .mount(&pve)
        .await;
    let s = start(&pve.uri(), tempfile::tempdir().unwrap(), &[]).await;
    let r = s.call("pve_vm_power", json!({"vmid": 100, "action": "shutdown"})).await;
    assert!(!is_error(&r), "{}", text(&r));
    let v = structured(&r);
    assert_eq!(v["task"]["status"], "ok");
    assert_eq!(v["task"]["exitstatus"], "OK");
    assert_eq!(v["action"], "shutdown");
    s.wait_for("progress notifications", |e| e.progress.len() >= 2).await;
    let status_polls = requests(&pve)
        .await
        .iter()
        .filter(|(_, p)| p.ends_with("/status") && p.contains("/tasks/"))
        .count();
    assert_eq!(status_polls, 3);
    // The task status is asked of the node named in the UPID.
    assert!(
        requests(&pve)
            .await
            .iter()
            .any(|(_, p)| p == &format!("/api2/json/nodes/pve1/tasks/{UPID_START}/status"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_task_that_fails_after_the_post_is_a_failed_result() {
    let pve = fake_pve().await;
    Mock::given(method("POST"))
        .and(path("/api2/json/nodes/pve1/qemu/100/status/start"))
        .respond_with(data(json!(UPID_START)))
        .mount(&pve)
        .await;
    Mock::given(method("GET"))
        .and(path_regex(r"/tasks/.*/status$"))
        .respond_with(data(
            json!({"status": "stopped", "exitstatus": "VM 100 already running", "upid": UPID_START}),
        ))
        .with_priority(1)
        .mount(&pve)
        .await;
    Mock::given(method("GET"))
        .and(path_regex(r"/tasks/.*/log$"))
        .respond_with(data(
            json!([{"n": 1, "t": "trying to start"}, {"n": 2, "t": "TASK ERROR: VM 100 already running"}]),
        ))
        .with_priority(1)
        .mount(&pve)
        .await;
    let s = start(&pve.uri(), tempfile::tempdir().unwrap(), &[]).await;
    let r = s.call("pve_vm_power", json!({"vmid": 100, "action": "start"})).await;
    assert!(is_error(&r));
    let msg = text(&r);
    assert!(
        msg.contains("VM 100 already running") && msg.contains("TASK ERROR"),
        "{msg}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_task_still_running_returns_its_upid() {
    let pve = fake_pve().await;
    Mock::given(method("POST"))
        .and(path("/api2/json/nodes/pve1/lxc/200/status/reboot"))
        .respond_with(data(json!(UPID_START)))
        .mount(&pve)
        .await;
    Mock::given(method("GET"))
        .and(path_regex(r"/tasks/.*/status$"))
        .respond_with(data(json!({"status": "running", "upid": UPID_START})))
        .with_priority(1)
        .mount(&pve)
        .await;
    let s = start(&pve.uri(), tempfile::tempdir().unwrap(), &[("PVE_MCP_TASK_WAIT", "1")]).await;
    let r = s.call("pve_vm_power", json!({"vmid": 200, "action": "reboot"})).await;
    assert!(!is_error(&r), "{}", text(&r));
    let v = structured(&r);
    assert_eq!(v["task"]["status"], "running");
    assert_eq!(v["task"]["upid"], UPID_START);
}

#[tokio::test(flavor = "multi_thread")]
async fn delete_without_confirm_is_a_plan_and_sends_nothing() {
    let pve = fake_pve().await;
    Mock::given(method("GET"))
        .and(path("/api2/json/nodes/pve2/qemu/101/config"))
        .respond_with(data(json!({"name": "db", "scsi0": "local-lvm:vm-101-disk-0,size=64G", "ide2": "local:iso/debian.iso,media=cdrom", "efidisk0": "local-lvm:vm-101-disk-1,size=4M", "memory": "8192"})))
        .mount(&pve)
        .await;
    Mock::given(method("DELETE"))
        .and(path("/api2/json/nodes/pve2/qemu/101"))
        .respond_with(data(json!(
            "UPID:pve2:0012EBC1:05E31C50:66C27520:qmdestroy:101:mcp@pve!test:"
        )))
        .mount(&pve)
        .await;
    let s = start(&pve.uri(), tempfile::tempdir().unwrap(), &[]).await;

    let r = s.call("pve_vm_delete", json!({"vmid": 101, "purge": true})).await;
    assert!(!is_error(&r), "{}", text(&r));
    let plan = structured(&r);
    assert_eq!(plan["status"], "confirmation_required");
    assert_eq!(plan["performed"], false);
    assert_eq!(plan["explanation"]["guest"]["name"], "db");
    assert_eq!(plan["explanation"]["guest"]["node"], "pve2");
    assert_eq!(plan["explanation"]["guest"]["status"], "stopped");
    let disks: Vec<String> = plan["explanation"]["will_be_lost"]["disks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["volume"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(disks, vec!["local-lvm:vm-101-disk-1", "local-lvm:vm-101-disk-0"]);
    assert_eq!(
        plan["requests"],
        json!([{"method": "DELETE", "path": "/nodes/pve2/qemu/101", "params": {"purge": true}, "class": "destructive"}])
    );
    assert!(text(&r).contains("confirm=true"));
    assert!(non_get(&pve).await.is_empty(), "a plan sends nothing");

    let r = s
        .call("pve_vm_delete", json!({"vmid": 101, "purge": true, "confirm": true}))
        .await;
    assert!(!is_error(&r), "{}", text(&r));
    assert_eq!(structured(&r)["deleted"]["vmid"], 101);
    let sent = non_get(&pve).await;
    assert_eq!(
        sent,
        vec![("DELETE".to_string(), "/api2/json/nodes/pve2/qemu/101".to_string())]
    );
    let del = pve
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.method.as_str() == "DELETE")
        .unwrap();
    assert_eq!(del.url.query(), Some("purge=1"), "booleans go to PVE as 1/0");
}

#[tokio::test(flavor = "multi_thread")]
async fn deleting_a_running_guest_explains_it_must_be_stopped() {
    let pve = fake_pve().await;
    let s = start(&pve.uri(), tempfile::tempdir().unwrap(), &[]).await;
    for confirm in [false, true] {
        let r = s.call("pve_vm_delete", json!({"vmid": 100, "confirm": confirm})).await;
        assert!(is_error(&r));
        assert!(text(&r).contains("must be stopped"), "{}", text(&r));
    }
    assert!(non_get(&pve).await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn pve_errors_reach_the_host_as_actionable_results() {
    let pve = fake_pve().await;
    Mock::given(method("POST"))
        .and(path("/api2/json/nodes/pve1/qemu/100/status/stop"))
        .respond_with(
            ResponseTemplate::new(403)
                .set_body_json(json!({"data": null, "message": "Permission check failed (/vms/100, VM.PowerMgmt)\n"})),
        )
        .mount(&pve)
        .await;
    let s = start(&pve.uri(), tempfile::tempdir().unwrap(), &[]).await;
    let r = s.call("pve_vm_power", json!({"vmid": 100, "action": "stop"})).await;
    assert!(is_error(&r));
    let msg = text(&r);
    assert!(msg.contains("lacks VM.PowerMgmt on /vms/100"), "{msg}");
    assert!(
        msg.contains("builtin:pve_vm_power.rhai:"),
        "the script location is given: {msg}"
    );
    assert!(!msg.contains(SECRET) && !s.stderr_text().contains(SECRET));
}
