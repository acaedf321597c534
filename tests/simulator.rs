//! The simulated PVE, driven through the real client: wire format, auth, permissions,
//! validation, state changes, tasks and faults.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stderr,
    reason = "test code: a panic is the failure report"
)]
#![cfg(feature = "simulator")]

mod common;

use std::time::Duration;

use pve_mcp::api::{ApiPath, Method};
use pve_mcp::config::{Connection, parse_host};
use pve_mcp::pve::{PveClient, PveError, TransportKind};
use pve_mcp::sim::faults::{Fault, FaultAction};
use pve_mcp::sim::spec::{ClusterSpec, GuestStatus};
use pve_mcp::sim::{SimOptions, Simulator};
use serde_json::{Map, Value, json};

async fn sim(task_ms: u64) -> Simulator {
    let mut spec = ClusterSpec::default_cluster();
    spec.task_duration_ms = task_ms;
    Simulator::start(SimOptions::new(spec)).await.unwrap()
}

fn client_for(url: &str, token: &str, secret: &str, verify: bool) -> PveClient {
    PveClient::new(&Connection {
        base_url: parse_host(url).unwrap(),
        token_id: token.into(),
        token_secret: secret.into(),
        verify_tls: verify,
        timeout: Duration::from_secs(2),
    })
    .unwrap()
}

fn root(s: &Simulator) -> PveClient {
    let (id, secret) = s.token().unwrap();
    client_for(&s.https_url().unwrap(), &id, &secret, false)
}

async fn get(c: &PveClient, path: &str, params: Value) -> Result<Value, PveError> {
    common::pve_request(
        c,
        Method::Get,
        &ApiPath::parse(path).unwrap(),
        params.as_object().unwrap(),
    )
    .await
}
async fn post(c: &PveClient, path: &str, params: Value) -> Result<Value, PveError> {
    common::pve_request(
        c,
        Method::Post,
        &ApiPath::parse(path).unwrap(),
        params.as_object().unwrap(),
    )
    .await
}
async fn delete(c: &PveClient, path: &str, params: Value) -> Result<Value, PveError> {
    common::pve_request(
        c,
        Method::Delete,
        &ApiPath::parse(path).unwrap(),
        params.as_object().unwrap(),
    )
    .await
}

/// A request the gate would refuse (an unknown endpoint or parameter), sent straight to the
/// simulator to see how it answers: (status, PVE's message or reason, errors).
async fn raw(s: &Simulator, m: &str, path: &str, params: Value) -> (u16, String, Value) {
    let (id, secret) = s.token().unwrap();
    let http = reqwest::Client::builder()
        .tls_danger_accept_invalid_certs(true)
        .build()
        .unwrap();
    let url = format!("{}/api2/json{path}", s.https_url().unwrap().trim_end_matches('/'));
    let pairs: Vec<(String, String)> = params
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(k, v)| match v {
            Value::Array(items) => items
                .iter()
                .map(|i| (k.clone(), i.as_str().unwrap_or("").to_string()))
                .collect(),
            Value::String(t) => vec![(k.clone(), t.clone())],
            other => vec![(k.clone(), other.to_string())],
        })
        .collect();
    let req = http
        .request(m.parse().unwrap(), &url)
        .header("Authorization", format!("PVEAPIToken={id}={secret}"));
    let req = if m == "GET" {
        req.query(&pairs)
    } else {
        req.form(&pairs)
    };
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let reason = resp.status().canonical_reason().unwrap_or("").to_string();
    let reason = resp
        .extensions()
        .get::<hyper::ext::ReasonPhrase>()
        .map(|r| String::from_utf8_lossy(r.as_bytes()).to_string())
        .unwrap_or(reason);
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    let message = body["message"].as_str().map(|m| m.trim().to_string()).unwrap_or(reason);
    (status, message, body["errors"].clone())
}

fn api_err(e: PveError) -> pve_mcp::pve::ApiError {
    match e {
        PveError::Api(a) => a,
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// Wait (bounded) for a task to stop; returns its status object.
async fn wait(c: &PveClient, upid: &str) -> Value {
    let node = upid.split(':').nth(1).unwrap();
    let path = ApiPath::from_segments(vec![
        "nodes".into(),
        node.into(),
        "tasks".into(),
        upid.into(),
        "status".into(),
    ])
    .unwrap();
    for _ in 0..100 {
        let st = common::pve_request(c, Method::Get, &path, &Map::new()).await.unwrap();
        if st["status"] == "stopped" {
            return st;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("task {upid} did not finish");
}

#[tokio::test(flavor = "multi_thread")]
async fn reads_have_pves_shapes() {
    let s = sim(0).await;
    let c = root(&s);
    let v = get(&c, "/version", json!({})).await.unwrap();
    assert_eq!(v["release"], "8.4");
    let nodes = get(&c, "/nodes", json!({})).await.unwrap();
    assert_eq!(nodes.as_array().unwrap().len(), 3);
    assert_eq!(nodes[2]["status"], "offline");
    let vms = get(&c, "/cluster/resources", json!({"type": "vm"})).await.unwrap();
    let vm100 = vms.as_array().unwrap().iter().find(|r| r["vmid"] == 100).unwrap();
    assert_eq!(vm100["id"], "qemu/100");
    assert_eq!(vm100["tags"], "prod;web");
    assert_eq!(vm100["template"], 0);
    assert_eq!(vm100["maxmem"], 4u64 << 30);
    let tmpl = vms.as_array().unwrap().iter().find(|r| r["vmid"] == 9000).unwrap();
    assert_eq!(tmpl["template"], 1);
    let status = get(&c, "/cluster/status", json!({})).await.unwrap();
    assert_eq!(status[0]["type"], "cluster");
    assert_eq!(status[0]["quorate"], 1);
    let cur = get(&c, "/nodes/pve2/qemu/103/status/current", json!({})).await.unwrap();
    assert_eq!(
        (cur["status"].as_str(), cur["qmpstatus"].as_str()),
        (Some("running"), Some("paused"))
    );
    let ct = get(&c, "/nodes/pve1/lxc/200/status/current", json!({})).await.unwrap();
    assert_eq!(ct["type"], "lxc");
    let cfg = get(&c, "/nodes/pve1/qemu/100/config", json!({})).await.unwrap();
    assert_eq!(cfg["memory"], "4096", "qemu memory is a string, as on the wire");
    assert_eq!(cfg["digest"].as_str().unwrap().len(), 40);
    assert_eq!(
        get(&c, "/cluster/nextid", json!({})).await.unwrap(),
        json!("105"),
        "100-104 are taken"
    );
    let taken = api_err(get(&c, "/cluster/nextid", json!({"vmid": 100})).await.unwrap_err());
    assert_eq!(taken.errors["vmid"], "VM 100 already exists");
}

#[tokio::test(flavor = "multi_thread")]
async fn pve_errors_on_the_wire() {
    let s = sim(0).await;
    let c = root(&s);
    // Wrong node for the guest: the config file is not on that node.
    let e = api_err(
        get(&c, "/nodes/pve2/qemu/100/status/current", json!({}))
            .await
            .unwrap_err(),
    );
    assert_eq!(
        (e.status, e.pve_message()),
        (
            500,
            "Configuration file 'nodes/pve2/qemu-server/100.conf' does not exist".to_string()
        )
    );
    // Offline node: 595 with an empty body.
    let e = api_err(
        get(&c, "/nodes/pve3/qemu/104/status/current", json!({}))
            .await
            .unwrap_err(),
    );
    assert_eq!((e.status, e.reason.as_deref()), (595, Some("No route to host")));
    // Unknown node.
    let e = api_err(get(&c, "/nodes/nope/status", json!({})).await.unwrap_err());
    assert!(e.pve_message().starts_with("hostname lookup 'nope' failed"));
    // Unknown endpoint.
    let (status, message, _) = raw(&s, "GET", "/nodes/pve1/qemu/100/foo", json!({})).await;
    assert_eq!(
        (status, message),
        (
            501,
            "Method 'GET /api2/json/nodes/pve1/qemu/100/foo' not implemented".to_string()
        )
    );
    // Unknown parameter and bad type: 400 with the errors map.
    let (status, _, errors) = raw(
        &s,
        "POST",
        "/nodes/pve1/qemu/100/status/shutdown",
        json!({"forceStop": "true", "bogus": "1"}),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(errors["forceStop"], "type check ('boolean') failed - got 'true'");
    assert_eq!(
        errors["bogus"],
        "property is not defined in schema and the schema does not allow additional properties"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_and_acls() {
    let s = sim(0).await;
    let url = s.https_url().unwrap();
    let bad = client_for(&url, "root@pam!sim", "00000000-0000-4000-8000-000000000000", false);
    let e = api_err(get(&bad, "/version", json!({})).await.unwrap_err());
    assert_eq!((e.status, e.reason.as_deref()), (401, Some("Authentication failed!")));

    let auditor = client_for(&url, "auditor@pve!ro", "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d", false);
    assert!(
        get(&auditor, "/nodes/pve1/qemu/100/status/current", json!({}))
            .await
            .is_ok()
    );
    let e = api_err(
        post(&auditor, "/nodes/pve1/qemu/100/status/stop", json!({}))
            .await
            .unwrap_err(),
    );
    assert_eq!(
        (e.status, e.reason.as_deref()),
        (403, Some("Permission check failed (/vms/100, VM.PowerMgmt)"))
    );
    assert_eq!(e.missing_permission(), Some(("/vms/100".into(), "VM.PowerMgmt".into())));

    // ops: PVEVMUser on /vms only: guests visible, nodes and cluster status not.
    let ops = client_for(&url, "ops@pve!vms", "9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a", false);
    let all = get(&ops, "/cluster/resources", json!({})).await.unwrap();
    assert!(all.as_array().unwrap().iter().all(|r| r["type"] != "node"));
    let e = api_err(get(&ops, "/cluster/status", json!({})).await.unwrap_err());
    assert_eq!(e.reason.as_deref(), Some("Permission check failed (/, Sys.Audit)"));
    let e = api_err(delete(&ops, "/nodes/pve2/lxc/202", json!({})).await.unwrap_err());
    assert_eq!(
        e.reason.as_deref(),
        Some("Permission check failed (/vms/202, VM.Allocate)")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn power_changes_state_like_pve() {
    let s = sim(0).await;
    let c = root(&s);
    // QEMU: starting a running VM is accepted, and the task fails.
    let upid = post(&c, "/nodes/pve1/qemu/100/status/start", json!({})).await.unwrap();
    let st = wait(&c, upid.as_str().unwrap()).await;
    assert_eq!(st["exitstatus"], "VM 100 already running");
    // LXC: the same is refused at once.
    let e = api_err(
        post(&c, "/nodes/pve1/lxc/200/status/start", json!({}))
            .await
            .unwrap_err(),
    );
    assert_eq!((e.status, e.pve_message()), (500, "CT 200 already running".to_string()));
    let e = api_err(
        post(&c, "/nodes/pve2/lxc/202/status/reboot", json!({}))
            .await
            .unwrap_err(),
    );
    assert_eq!(e.pve_message(), "VM 202 not running");
    // Stop, then start again.
    let upid = post(&c, "/nodes/pve1/qemu/101/status/stop", json!({})).await.unwrap();
    assert_eq!(wait(&c, upid.as_str().unwrap()).await["exitstatus"], "OK");
    assert_eq!(s.with_state(|st| st.guests[&101].status), GuestStatus::Stopped);
    let e = api_err(
        post(&c, "/nodes/pve1/qemu/101/status/suspend", json!({}))
            .await
            .unwrap_err(),
    );
    assert_eq!(e.pve_message(), "VM 101 not running");
    let upid = post(&c, "/nodes/pve1/qemu/101/status/start", json!({})).await.unwrap();
    wait(&c, upid.as_str().unwrap()).await;
    assert_eq!(s.with_state(|st| st.guests[&101].status), GuestStatus::Running);
    // Suspend pauses a VM; resume continues it.
    let upid = post(&c, "/nodes/pve1/qemu/101/status/suspend", json!({}))
        .await
        .unwrap();
    assert!(upid.as_str().unwrap().contains(":qmpause:101:"));
    wait(&c, upid.as_str().unwrap()).await;
    assert_eq!(
        get(&c, "/nodes/pve1/qemu/101/status/current", json!({})).await.unwrap()["qmpstatus"],
        "paused"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn tasks_run_for_their_time_and_are_listed() {
    let s = sim(300).await;
    let c = root(&s);
    let upid = post(&c, "/nodes/pve2/lxc/202/status/start", json!({})).await.unwrap();
    let upid = upid.as_str().unwrap().to_string();
    assert!(pve_mcp::pve::Upid::parse(&upid).is_ok(), "{upid}");
    let path = ApiPath::from_segments(vec![
        "nodes".into(),
        "pve2".into(),
        "tasks".into(),
        upid.clone(),
        "status".into(),
    ])
    .unwrap();
    let st = common::pve_request(&c, Method::Get, &path, &Map::new()).await.unwrap();
    assert_eq!(st["status"], "running");
    assert_eq!(
        (st["user"].as_str(), st["tokenid"].as_str()),
        (Some("root@pam"), Some("sim"))
    );
    // Running tasks: in /cluster/tasks without status, and in the node list only with source=active|all.
    let cluster = get(&c, "/cluster/tasks", json!({})).await.unwrap();
    assert!(cluster[0].get("status").is_none());
    let archive = get(&c, "/nodes/pve2/tasks", json!({})).await.unwrap();
    assert_eq!(archive, json!([]));
    let active = get(&c, "/nodes/pve2/tasks", json!({"source": "active"})).await.unwrap();
    assert_eq!(active[0]["status"], "RUNNING");
    let st = wait(&c, &upid).await;
    assert_eq!(st["exitstatus"], "OK");
    let log_path = ApiPath::from_segments(vec![
        "nodes".into(),
        "pve2".into(),
        "tasks".into(),
        upid.clone(),
        "log".into(),
    ])
    .unwrap();
    let log = common::pve_request(&c, Method::Get, &log_path, &Map::new())
        .await
        .unwrap();
    assert_eq!(log.as_array().unwrap().last().unwrap()["t"], "TASK OK");
    let e = api_err(
        get(&c, "/nodes/pve1/tasks/UPID:bogus/status", json!({}))
            .await
            .unwrap_err(),
    );
    assert_eq!(e.errors["upid"], "unable to parse worker upid");
}

#[tokio::test(flavor = "multi_thread")]
async fn delete_removes_the_guest_after_its_task() {
    let s = sim(0).await;
    let c = root(&s);
    let e = api_err(delete(&c, "/nodes/pve1/qemu/100", json!({})).await.unwrap_err());
    assert_eq!(e.pve_message(), "VM 100 is running - destroy failed");
    let e = api_err(delete(&c, "/nodes/pve1/lxc/200", json!({})).await.unwrap_err());
    assert_eq!(e.pve_message(), "unable to destroy CT 200 - container is running");
    let upid = delete(&c, "/nodes/pve2/qemu/102", json!({"purge": 1})).await.unwrap();
    let st = wait(&c, upid.as_str().unwrap()).await;
    assert_eq!(st["exitstatus"], "OK");
    assert!(s.with_state(|st| !st.guests.contains_key(&102)));
    let e = api_err(get(&c, "/nodes/pve2/qemu/102/config", json!({})).await.unwrap_err());
    assert!(e.pve_message().contains("102.conf' does not exist"));
    // A forced CT destroy works while it runs.
    let upid = delete(&c, "/nodes/pve1/lxc/200", json!({"force": 1})).await.unwrap();
    wait(&c, upid.as_str().unwrap()).await;
    assert!(s.with_state(|st| !st.guests.contains_key(&200)));
}

#[tokio::test(flavor = "multi_thread")]
async fn faults_are_injected_per_path() {
    let s = sim(0).await;
    let c = root(&s);
    s.add_fault(Fault::new("/cluster/resources", FaultAction::HtmlPage(502)).times(1));
    let e = get(&c, "/cluster/resources", json!({})).await.unwrap_err();
    assert!(
        e.to_string()
            .starts_with("A proxy in front of PVE, not PVE itself, answered GET /cluster/resources with HTTP 502"),
        "{e}"
    );
    assert!(
        get(&c, "/cluster/resources", json!({})).await.is_ok(),
        "times(1) applies once"
    );

    s.add_fault(Fault::new("/nodes/*/status", FaultAction::NodeOffline));
    let e = api_err(get(&c, "/nodes/pve1/status", json!({})).await.unwrap_err());
    assert_eq!(e.status, 595);
    s.clear_faults();

    s.add_fault(Fault::new("/version", FaultAction::MalformedJson));
    assert!(matches!(
        get(&c, "/version", json!({})).await.unwrap_err(),
        PveError::BadResponse { .. }
    ));
    s.clear_faults();

    s.add_fault(Fault::new("/version", FaultAction::DropMidBody));
    assert!(matches!(
        get(&c, "/version", json!({})).await.unwrap_err(),
        PveError::Transport(_)
    ));
    s.clear_faults();

    s.add_fault(Fault::new(
        "/version",
        FaultAction::Status(500, "unexpected failure".into()),
    ));
    assert_eq!(
        api_err(get(&c, "/version", json!({})).await.unwrap_err()).pve_message(),
        "unexpected failure"
    );
    s.clear_faults();

    s.add_fault(Fault::new("/version", FaultAction::Hang));
    let e = get(&c, "/version", json!({})).await.unwrap_err();
    let PveError::Transport(t) = &e else { panic!("{e:?}") };
    assert_eq!(t.kind, TransportKind::Timeout);
    s.clear_faults();

    s.add_fault(Fault::new("/version", FaultAction::Latency(Duration::from_millis(200))));
    let t0 = std::time::Instant::now();
    get(&c, "/version", json!({})).await.unwrap();
    assert!(t0.elapsed() >= Duration::from_millis(200));
}

#[tokio::test(flavor = "multi_thread")]
async fn verifying_the_self_signed_certificate_fails_with_a_hint() {
    let s = sim(0).await;
    let (id, secret) = s.token().unwrap();
    let strict = client_for(&s.https_url().unwrap(), &id, &secret, true);
    let e = get(&strict, "/version", json!({})).await.unwrap_err();
    let PveError::Transport(t) = &e else { panic!("{e:?}") };
    assert_eq!(t.kind, TransportKind::Tls, "{e}");
    assert!(e.to_string().contains("PVE_VERIFY_SSL=false"), "{e}");
    // Plain HTTP works too.
    let plain = client_for(&s.http_url().unwrap(), &id, &secret, true);
    assert!(get(&plain, "/version", json!({})).await.is_ok());
}

async fn put(c: &PveClient, path: &str, params: Value) -> Result<Value, PveError> {
    common::pve_request(
        c,
        Method::Put,
        &ApiPath::parse(path).unwrap(),
        params.as_object().unwrap(),
    )
    .await
}

async fn done(c: &PveClient, upid: Value) -> Value {
    wait(c, upid.as_str().expect("a UPID")).await
}

#[tokio::test(flavor = "multi_thread")]
async fn snapshots_form_a_tree() {
    let s = sim(0).await;
    let c = root(&s);
    let list = get(&c, "/nodes/pve1/qemu/100/snapshot", json!({})).await.unwrap();
    let current = list
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "current")
        .unwrap()
        .clone();
    assert_eq!(
        (current["parent"].as_str(), current["running"].as_i64()),
        (Some("after-upgrade"), Some(1))
    );
    let after = list
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "after-upgrade")
        .unwrap()
        .clone();
    assert_eq!(
        (after["parent"].as_str(), after["vmstate"].as_i64()),
        (Some("before-upgrade"), Some(1))
    );

    // Create: the new one hangs below the current parent, and becomes it.
    let st = done(
        &c,
        post(
            &c,
            "/nodes/pve1/qemu/100/snapshot",
            json!({"snapname": "pre-test", "vmstate": 1, "description": "x"}),
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(st["exitstatus"], "OK");
    let st = done(
        &c,
        post(&c, "/nodes/pve1/qemu/100/snapshot", json!({"snapname": "pre-test"}))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(st["exitstatus"], "snapshot name 'pre-test' already used");
    let e = api_err(
        post(&c, "/nodes/pve1/qemu/100/snapshot", json!({"snapname": "1bad"}))
            .await
            .unwrap_err(),
    );
    assert_eq!(e.errors["snapname"], "invalid format - invalid configuration ID '1bad'");
    let e = api_err(
        post(
            &c,
            "/nodes/pve2/lxc/201/snapshot",
            json!({"snapname": "x1", "vmstate": 1}),
        )
        .await
        .unwrap_err(),
    );
    assert!(
        e.errors["vmstate"].contains("not defined in schema"),
        "containers have no vmstate"
    );

    // Change the config, roll back: the config saved with the snapshot returns.
    put(&c, "/nodes/pve1/qemu/100/config", json!({"cores": 8}))
        .await
        .unwrap();
    let st = done(
        &c,
        post(&c, "/nodes/pve1/qemu/100/snapshot/pre-test/rollback", json!({}))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(st["exitstatus"], "OK");
    let cfg = get(&c, "/nodes/pve1/qemu/100/config", json!({})).await.unwrap();
    assert_eq!(cfg["cores"], 2);
    assert_eq!(cfg["parent"], "pre-test");
    assert_eq!(
        s.with_state(|st| st.guests[&100].status),
        GuestStatus::Running,
        "a RAM snapshot resumes running"
    );

    // Delete a middle snapshot: its child moves up.
    done(
        &c,
        delete(&c, "/nodes/pve1/qemu/100/snapshot/after-upgrade", json!({}))
            .await
            .unwrap(),
    )
    .await;
    let list = get(&c, "/nodes/pve1/qemu/100/snapshot", json!({})).await.unwrap();
    let pre = list
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "pre-test")
        .unwrap()
        .clone();
    assert_eq!(pre["parent"], "before-upgrade");
    let st = done(
        &c,
        delete(&c, "/nodes/pve1/qemu/100/snapshot/nope", json!({}))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(st["exitstatus"], "snapshot 'nope' does not exist");
}

#[tokio::test(flavor = "multi_thread")]
async fn config_changes_and_resize() {
    let s = sim(0).await;
    let c = root(&s);
    assert_eq!(
        put(
            &c,
            "/nodes/pve1/qemu/101/config",
            json!({"cores": "4", "onboot": "0", "tags": "prod;db;big"})
        )
        .await
        .unwrap(),
        Value::Null
    );
    let cfg = get(&c, "/nodes/pve1/qemu/101/config", json!({})).await.unwrap();
    assert_eq!(
        (cfg["cores"].as_i64(), cfg["onboot"].as_i64(), cfg["tags"].as_str()),
        (Some(4), Some(0), Some("prod;db;big"))
    );
    // Detaching a disk leaves it as unusedN; deleting unusedN destroys it.
    put(&c, "/nodes/pve1/qemu/101/config", json!({"delete": "scsi1"}))
        .await
        .unwrap();
    let cfg = get(&c, "/nodes/pve1/qemu/101/config", json!({})).await.unwrap();
    assert!(cfg.get("scsi1").is_none());
    assert_eq!(cfg["unused0"], "local-lvm:vm-101-disk-1");
    put(&c, "/nodes/pve1/qemu/101/config", json!({"delete": "unused0"}))
        .await
        .unwrap();
    assert!(
        get(&c, "/nodes/pve1/qemu/101/config", json!({}))
            .await
            .unwrap()
            .get("unused0")
            .is_none()
    );
    // QEMU's POST is a qmconfig task.
    let upid = post(&c, "/nodes/pve1/qemu/101/config", json!({"memory": "16384"}))
        .await
        .unwrap();
    assert!(upid.as_str().unwrap().contains(":qmconfig:101:"));
    done(&c, upid).await;
    assert_eq!(
        get(&c, "/nodes/pve1/qemu/101/config", json!({})).await.unwrap()["memory"],
        "16384"
    );
    // LXC: hostname, not name; memory is an integer.
    let (status, _, errors) = raw(&s, "PUT", "/nodes/pve1/lxc/200/config", json!({"name": "x"})).await;
    assert_eq!(status, 400);
    assert!(
        errors["name"].as_str().unwrap_or("").contains("not defined in schema"),
        "{errors}"
    );
    put(
        &c,
        "/nodes/pve1/lxc/200/config",
        json!({"memory": "1024", "hostname": "dns2"}),
    )
    .await
    .unwrap();
    let cfg = get(&c, "/nodes/pve1/lxc/200/config", json!({})).await.unwrap();
    assert_eq!(
        (cfg["memory"].as_i64(), cfg["hostname"].as_str()),
        (Some(1024), Some("dns2"))
    );
    // A stale digest is refused.
    let e = api_err(
        put(
            &c,
            "/nodes/pve1/lxc/200/config",
            json!({"cores": 2, "digest": "0000000000000000000000000000000000000000"}),
        )
        .await
        .unwrap_err(),
    );
    assert!(e.pve_message().contains("file changed by other user"));

    // Resize grows, never shrinks.
    done(
        &c,
        put(
            &c,
            "/nodes/pve1/qemu/100/resize",
            json!({"disk": "scsi0", "size": "+8G"}),
        )
        .await
        .unwrap(),
    )
    .await;
    assert!(
        get(&c, "/nodes/pve1/qemu/100/config", json!({})).await.unwrap()["scsi0"]
            .as_str()
            .unwrap()
            .ends_with("size=40G")
    );
    let e = api_err(
        put(
            &c,
            "/nodes/pve1/qemu/100/resize",
            json!({"disk": "scsi0", "size": "20G"}),
        )
        .await
        .unwrap_err(),
    );
    assert!(e.pve_message().contains("shrinking disks is not supported"));
    let e = api_err(
        put(
            &c,
            "/nodes/pve1/qemu/100/resize",
            json!({"disk": "ide2", "size": "+1G"}),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(e.pve_message(), "you can't resize a cdrom");
    let e = api_err(
        put(
            &c,
            "/nodes/pve1/qemu/100/resize",
            json!({"disk": "scsi0", "size": "lots"}),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(e.errors["size"], "value does not match the regex pattern");
    done(
        &c,
        put(
            &c,
            "/nodes/pve1/lxc/200/resize",
            json!({"disk": "rootfs", "size": "12G"}),
        )
        .await
        .unwrap(),
    )
    .await;
    assert!(
        get(&c, "/nodes/pve1/lxc/200/config", json!({})).await.unwrap()["rootfs"]
            .as_str()
            .unwrap()
            .ends_with("size=12G")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn clones_full_and_linked() {
    let s = sim(0).await;
    let c = root(&s);
    done(
        &c,
        post(
            &c,
            "/nodes/pve1/qemu/100/clone",
            json!({"newid": 150, "name": "web-copy", "full": 1}),
        )
        .await
        .unwrap(),
    )
    .await;
    let cfg = get(&c, "/nodes/pve1/qemu/150/config", json!({})).await.unwrap();
    assert_eq!(cfg["name"], "web-copy");
    assert!(cfg["scsi0"].as_str().unwrap().starts_with("local-lvm:vm-150-disk-"));
    assert_eq!(s.with_state(|st| st.guests[&150].status), GuestStatus::Stopped);
    // A template clones linked by default.
    done(
        &c,
        post(
            &c,
            "/nodes/pve1/qemu/9000/clone",
            json!({"newid": 151, "name": "from-template"}),
        )
        .await
        .unwrap(),
    )
    .await;
    let cfg = get(&c, "/nodes/pve1/qemu/151/config", json!({})).await.unwrap();
    assert!(
        cfg["scsi0"]
            .as_str()
            .unwrap()
            .starts_with("local-lvm:base-9000-disk-0/vm-151-disk-"),
        "{cfg}"
    );
    let e = api_err(
        post(&c, "/nodes/pve1/qemu/100/clone", json!({"newid": 101}))
            .await
            .unwrap_err(),
    );
    assert_eq!(e.pve_message(), "unable to create VM 101: config file already exists");
    let e = api_err(
        post(&c, "/nodes/pve1/lxc/200/clone", json!({"newid": 152, "name": "x"}))
            .await
            .unwrap_err(),
    );
    assert!(
        e.errors["name"].contains("not defined in schema"),
        "containers take hostname"
    );
    let e = api_err(
        post(&c, "/nodes/pve1/lxc/200/clone", json!({"newid": 152, "hostname": "x"}))
            .await
            .unwrap_err(),
    );
    assert!(e.pve_message().contains("running container needs a snapshot"));
    done(
        &c,
        post(
            &c,
            "/nodes/pve2/lxc/202/clone",
            json!({"newid": 153, "hostname": "test-ct-2"}),
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(
        get(&c, "/nodes/pve2/lxc/153/config", json!({})).await.unwrap()["hostname"],
        "test-ct-2"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn migration_rules() {
    let s = sim(0).await;
    let c = root(&s);
    let e = api_err(
        post(&c, "/nodes/pve1/qemu/100/migrate", json!({"target": "pve1"}))
            .await
            .unwrap_err(),
    );
    assert_eq!(e.errors["target"], "target is local node.");
    let e = api_err(
        post(&c, "/nodes/pve1/qemu/100/migrate", json!({"target": "pve2"}))
            .await
            .unwrap_err(),
    );
    assert_eq!(e.pve_message(), "can't migrate running VM without --online");
    let e = api_err(
        post(
            &c,
            "/nodes/pve1/qemu/100/migrate",
            json!({"target": "pve2", "online": 1}),
        )
        .await
        .unwrap_err(),
    );
    assert!(e.pve_message().contains("with-local-disks"));
    let e = api_err(
        post(&c, "/nodes/pve2/qemu/102/migrate", json!({"target": "pve3"}))
            .await
            .unwrap_err(),
    );
    assert!(e.pve_message().contains("not online"));
    let pre = get(&c, "/nodes/pve1/qemu/100/migrate", json!({"target": "pve2"}))
        .await
        .unwrap();
    assert_eq!(pre["running"], 1);
    assert_eq!(pre["local_disks"].as_array().unwrap().len(), 2);

    done(
        &c,
        post(
            &c,
            "/nodes/pve1/qemu/100/migrate",
            json!({"target": "pve2", "online": 1, "with-local-disks": 1}),
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(s.with_state(|st| st.guests[&100].node.clone()), "pve2");
    // Containers: restart mode moves a running one; online is refused in the task.
    let e = api_err(
        post(&c, "/nodes/pve1/lxc/200/migrate", json!({"target": "pve2"}))
            .await
            .unwrap_err(),
    );
    assert_eq!(
        e.pve_message(),
        "can't migrate running container without --online or --restart"
    );
    let st = done(
        &c,
        post(
            &c,
            "/nodes/pve1/lxc/200/migrate",
            json!({"target": "pve2", "online": 1}),
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(st["exitstatus"], "lxc live migration is currently not implemented");
    done(
        &c,
        post(
            &c,
            "/nodes/pve1/lxc/200/migrate",
            json!({"target": "pve2", "restart": 1}),
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(
        s.with_state(|st| (st.guests[&200].node.clone(), st.guests[&200].status)),
        ("pve2".to_string(), GuestStatus::Running)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn backups_and_restores() {
    let s = sim(0).await;
    let c = root(&s);
    let upid = post(&c, "/nodes/pve1/vzdump", json!({"vmid": "101", "storage": "nfs-backup", "mode": "snapshot", "compress": "zstd", "notes-template": "{{guestname}} nightly"})).await.unwrap();
    assert!(upid.as_str().unwrap().contains(":vzdump:101:"));
    assert_eq!(done(&c, upid).await["exitstatus"], "OK");
    let content = get(
        &c,
        "/nodes/pve2/storage/nfs-backup/content",
        json!({"content": "backup", "vmid": 101}),
    )
    .await
    .unwrap();
    let newest = content
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["notes"] == "db nightly")
        .expect("the new backup, seen from another node");
    assert!(
        newest["volid"]
            .as_str()
            .unwrap()
            .starts_with("nfs-backup:backup/vzdump-qemu-101-")
            && newest["volid"].as_str().unwrap().ends_with(".vma.zst")
    );
    assert_eq!(newest["subtype"], "qemu");
    done(
        &c,
        post(&c, "/nodes/pve2/vzdump", json!({"vmid": "201", "storage": "pbs"}))
            .await
            .unwrap(),
    )
    .await;
    let pbs = get(&c, "/nodes/pve1/storage/pbs/content", json!({"vmid": 201}))
        .await
        .unwrap();
    assert_eq!(pbs.as_array().unwrap().len(), 2);
    assert!(pbs.as_array().unwrap().iter().all(|v| v["format"] == "pbs-ct"));
    let e = api_err(
        post(&c, "/nodes/pve1/vzdump", json!({"vmid": "101", "storage": "local-lvm"}))
            .await
            .unwrap_err(),
    );
    assert!(e.pve_message().contains("wrong content type"));

    // Restore: over an existing guest only with force, never over a running one.
    let archive = "nfs-backup:backup/vzdump-qemu-100-2026_01_15-01_00_02.vma.zst";
    let e = api_err(
        post(&c, "/nodes/pve1/qemu", json!({"vmid": 100, "archive": archive}))
            .await
            .unwrap_err(),
    );
    assert_eq!(
        e.pve_message(),
        "unable to restore VM 100 - VM 100 already exists on node 'pve1'"
    );
    let e = api_err(
        post(
            &c,
            "/nodes/pve1/qemu",
            json!({"vmid": 100, "archive": archive, "force": 1}),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(e.pve_message(), "unable to restore VM 100 - vm is running");
    let upid = post(
        &c,
        "/nodes/pve1/qemu",
        json!({"vmid": 160, "archive": archive, "storage": "local-lvm"}),
    )
    .await
    .unwrap();
    assert!(upid.as_str().unwrap().contains(":qmrestore:160:"));
    done(&c, upid).await;
    assert_eq!(
        get(&c, "/nodes/pve1/qemu/160/config", json!({})).await.unwrap()["name"],
        "web"
    );
    // A container backup through the lxc endpoint, with restore=1.
    let ct = "nfs-backup:backup/vzdump-lxc-200-2026_01_16-01_30_01.tar.zst";
    done(
        &c,
        post(
            &c,
            "/nodes/pve1/lxc",
            json!({"vmid": 161, "ostemplate": ct, "restore": 1, "storage": "local-lvm"}),
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(
        s.with_state(|st| st.guests[&161].kind),
        pve_mcp::sim::spec::GuestKind::Lxc
    );
    let e = api_err(
        post(&c, "/nodes/pve1/qemu", json!({"vmid": 162, "archive": ct}))
            .await
            .unwrap_err(),
    );
    assert!(e.pve_message().contains("is not a qemu backup"));
}

#[tokio::test(flavor = "multi_thread")]
async fn storage_listings() {
    let s = sim(0).await;
    let c = root(&s);
    let cfg = get(&c, "/storage", json!({})).await.unwrap();
    assert_eq!(cfg.as_array().unwrap().len(), 4);
    let backup_stores = get(&c, "/nodes/pve1/storage", json!({"content": "backup", "enabled": 1}))
        .await
        .unwrap();
    let names: Vec<&str> = backup_stores
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["storage"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["local", "nfs-backup", "pbs"]);
    assert!(backup_stores[1]["used"].as_u64().unwrap() > 0 && backup_stores[1]["shared"] == 1);
    let isos = get(&c, "/nodes/pve1/storage/local/content", json!({"content": "iso"}))
        .await
        .unwrap();
    assert_eq!(isos.as_array().unwrap().len(), 2);
    assert!(
        get(&c, "/nodes/pve2/storage/local/content", json!({"content": "iso"}))
            .await
            .unwrap()
            .as_array()
            .unwrap()
            .is_empty(),
        "local storage is per node"
    );
    let images = get(&c, "/nodes/pve1/storage/local-lvm/content", json!({"vmid": 100}))
        .await
        .unwrap();
    let vols: Vec<&str> = images
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["volid"].as_str().unwrap())
        .collect();
    assert_eq!(vols, vec!["local-lvm:vm-100-disk-0", "local-lvm:vm-100-disk-1"]);
    let e = api_err(
        get(&c, "/nodes/pve1/storage/nope/content", json!({}))
            .await
            .unwrap_err(),
    );
    assert_eq!(e.pve_message(), "storage 'nope' does not exist");
    // PVEAuditor holds Datastore.Audit, which is enough to list contents.
    let auditor = client_for(
        &s.https_url().unwrap(),
        "auditor@pve!ro",
        "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d",
        false,
    );
    assert!(
        get(&auditor, "/nodes/pve1/storage/local/content", json!({}))
            .await
            .is_ok()
    );
    let qemu = get(&c, "/nodes/pve1/qemu", json!({"full": 1})).await.unwrap();
    assert_eq!(qemu.as_array().unwrap().len(), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn guest_agent_exec() {
    let s = sim(0).await;
    let c = root(&s);
    let started = post(
        &c,
        "/nodes/pve1/qemu/100/agent/exec",
        json!({"command": ["/bin/sh", "-c", "echo hello; hostname"]}),
    )
    .await
    .unwrap();
    let pid = started["pid"].as_i64().unwrap();
    let st = get(&c, "/nodes/pve1/qemu/100/agent/exec-status", json!({"pid": pid}))
        .await
        .unwrap();
    assert_eq!((st["exited"].as_i64(), st["exitcode"].as_i64()), (Some(1), Some(0)));
    assert_eq!(st["out-data"], "hello\nweb\n");
    let started = post(
        &c,
        "/nodes/pve1/qemu/100/agent/exec",
        json!({"command": ["/bin/sh", "-c", "nosuchcmd"]}),
    )
    .await
    .unwrap();
    let st = get(
        &c,
        "/nodes/pve1/qemu/100/agent/exec-status",
        json!({"pid": started["pid"]}),
    )
    .await
    .unwrap();
    assert_eq!(st["exitcode"], 127);
    assert_eq!(st["err-data"], "sh: 1: nosuchcmd: not found\n");
    let started = post(
        &c,
        "/nodes/pve1/qemu/100/agent/exec",
        json!({"command": ["/bin/sh", "-c", "sleep 30"]}),
    )
    .await
    .unwrap();
    assert_eq!(
        get(
            &c,
            "/nodes/pve1/qemu/100/agent/exec-status",
            json!({"pid": started["pid"]})
        )
        .await
        .unwrap()["exited"],
        0
    );
    // PVE's refusals.
    let e = api_err(
        post(&c, "/nodes/pve2/qemu/102/agent/exec", json!({"command": ["id"]}))
            .await
            .unwrap_err(),
    );
    assert_eq!(e.pve_message(), "VM 102 is not running");
    let e = api_err(
        post(&c, "/nodes/pve2/qemu/103/agent/exec", json!({"command": ["id"]}))
            .await
            .unwrap_err(),
    );
    assert_eq!(e.pve_message(), "No QEMU guest agent configured");
    let (status, _, _) = raw(&s, "POST", "/nodes/pve1/lxc/200/agent/exec", json!({"command": ["id"]})).await;
    assert_eq!(status, 501, "containers have no API exec");
    assert!(post(&c, "/nodes/pve1/qemu/101/agent/ping", json!({})).await.is_ok());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_wire_details() {
    let s = sim(0).await;
    let base = format!("{}/api2/json", s.http_url().unwrap());
    let raw = reqwest::Client::new();
    // No credentials: 401 No ticket, no body, and the connection is closed.
    let r = raw.get(format!("{base}/version")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.extensions()
            .get::<hyper::ext::ReasonPhrase>()
            .map(|p| p.as_bytes().to_vec()),
        Some(b"No ticket".to_vec())
    );
    assert_eq!(r.headers()["connection"], "close");
    assert!(r.headers().get("content-type").is_none());
    assert!(r.bytes().await.unwrap().is_empty());
    // A good answer carries PVE's headers and the envelope.
    let (id, secret) = s.token().unwrap();
    let auth = format!("PVEAPIToken={id}={secret}");
    let r = raw
        .get(format!("{base}/cluster/tasks"))
        .header("authorization", &auth)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["server"], "pve-api-daemon/3.0");
    assert_eq!(r.headers()["content-type"], "application/json;charset=UTF-8");
    assert_eq!(r.headers()["cache-control"], "max-age=0");
    assert!(r.headers().get("connection").is_none_or(|c| c != "close"));
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"data": []}));
    // An error body: data null and the message with its newline.
    let r = raw
        .get(format!("{base}/nodes/pve1/qemu/999/config"))
        .header("authorization", &auth)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 500);
    assert_eq!(r.headers()["connection"], "close");
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"data": null, "message": "Configuration file 'nodes/pve1/qemu-server/999.conf' does not exist\n"})
    );
    // JSON bodies work as well as forms, with JSON booleans (PVE 8).
    let r = raw
        .post(format!("{base}/nodes/pve2/qemu/102/status/start"))
        .header("authorization", &auth)
        .json(&json!({"skiplock": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // 596: pveproxy could not speak TLS to the node.
    s.add_fault(Fault::new("/nodes/pve2/*", FaultAction::NodeTls));
    let r = raw
        .get(format!("{base}/nodes/pve2/status"))
        .header("authorization", &auth)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 596);
    assert!(r.bytes().await.unwrap().is_empty());
}

/// The simulator reads `delete` as PVE does (pve-common `split_list` after joining repeated
/// keys with NUL), so a tab or a NUL separates keys there too.
#[tokio::test(flavor = "multi_thread")]
async fn delete_lists_are_split_as_pve_splits_them() {
    let s = sim(0).await;
    let c = root(&s);
    let config = |c: PveClient| async move { get(&c, "/nodes/pve1/qemu/101/config", json!({})).await.unwrap() };
    put(&c, "/nodes/pve1/qemu/101/config", json!({"delete": "scsi1"}))
        .await
        .unwrap();
    assert_eq!(config(c.clone()).await["unused0"], "local-lvm:vm-101-disk-1");
    let (status, message, _) = raw(
        &s,
        "PUT",
        "/nodes/pve1/qemu/101/config",
        json!({"delete": "onboot\tunused0"}),
    )
    .await;
    assert_eq!(status, 200, "{message}");
    let cfg = config(c.clone()).await;
    assert!(cfg.get("unused0").is_none() && cfg.get("onboot").is_none(), "{cfg}");
    // Repeated keys arrive joined with NUL: each is one key, whitespace and all.
    let (status, _, _) = raw(
        &s,
        "PUT",
        "/nodes/pve1/qemu/101/config",
        json!({"delete": ["cores", "tags"]}),
    )
    .await;
    assert_eq!(status, 200);
    let cfg = config(c).await;
    assert!(cfg.get("cores").is_none() && cfg.get("tags").is_none(), "{cfg}");
}

#[tokio::test(flavor = "multi_thread")]
async fn storages_restricted_to_some_nodes_are_listed_as_pve_lists_them() {
    let mut spec = ClusterSpec::default_cluster();
    spec.task_duration_ms = 0;
    spec.storages.push(
        serde_json::from_value(
            json!({"storage": "usb", "type": "dir", "path": "/mnt/usb", "content": ["iso"],
                                      "nodes": ["pve2"], "total": 1000}),
        )
        .unwrap(),
    );
    let s = Simulator::start(SimOptions::new(spec)).await.unwrap();
    let c = root(&s);
    // Every node lists it; where it is not enabled, with enabled 0, active 0 and no space.
    let on1 = get(&c, "/nodes/pve1/storage", json!({})).await.unwrap();
    let usb = on1.as_array().unwrap().iter().find(|r| r["storage"] == "usb").unwrap();
    assert_eq!(
        (usb["enabled"].as_i64(), usb["active"].as_i64(), usb["total"].as_i64()),
        (Some(0), Some(0), Some(0))
    );
    assert!(usb.get("used_fraction").is_none());
    let on2 = get(&c, "/nodes/pve2/storage", json!({"storage": "usb"})).await.unwrap();
    assert_eq!(
        (
            on2[0]["enabled"].as_i64(),
            on2[0]["active"].as_i64(),
            on2[0]["total"].as_i64()
        ),
        (Some(1), Some(1), Some(1000))
    );
    // A content filter leaves out the storages not enabled on the node; enabled=1 does not.
    let iso1 = get(&c, "/nodes/pve1/storage", json!({"content": "iso"})).await.unwrap();
    assert!(iso1.as_array().unwrap().iter().all(|r| r["storage"] != "usb"));
    let en1 = get(&c, "/nodes/pve1/storage", json!({"enabled": 1})).await.unwrap();
    assert!(en1.as_array().unwrap().iter().any(|r| r["storage"] == "usb"));
    let e = api_err(get(&c, "/nodes/pve1/storage/usb/content", json!({})).await.unwrap_err());
    assert_eq!(e.pve_message(), "storage 'usb' is not available on node 'pve1'");
    let res = get(&c, "/cluster/resources", json!({"type": "storage"})).await.unwrap();
    let nodes: Vec<&str> = res
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["storage"] == "usb")
        .map(|r| r["node"].as_str().unwrap())
        .collect();
    assert_eq!(nodes, vec!["pve2"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_storage_is_no_such_storage() {
    let s = sim(0).await;
    let c = root(&s);
    for params in [
        json!({"storage": "nope"}),
        json!({"storage": "local-lvm", "content": "iso"}),
    ] {
        let e = api_err(get(&c, "/nodes/pve1/storage", params).await.unwrap_err());
        assert_eq!(
            (e.status, e.errors.get("storage").map(String::as_str)),
            (400, Some("No such storage."))
        );
    }
    // A storage the token may not see is not "no such storage": it is left out.
    let nobody_spec = {
        let mut spec = ClusterSpec::default_cluster();
        spec.tokens.push(pve_mcp::sim::spec::TokenSpec {
            id: "vm@pve!only".into(),
            secret: "44444444-5555-4666-8777-888888888888".into(),
            acl: vec![pve_mcp::sim::spec::AclSpec {
                path: "/vms".into(),
                role: "PVEVMUser".into(),
                propagate: true,
            }],
        });
        spec
    };
    let s = Simulator::start(SimOptions::new(nobody_spec)).await.unwrap();
    let c = client_for(
        &s.https_url().unwrap(),
        "vm@pve!only",
        "44444444-5555-4666-8777-888888888888",
        false,
    );
    let rows = get(&c, "/nodes/pve1/storage", json!({"storage": "local"}))
        .await
        .unwrap();
    assert_eq!(rows, json!([]));
}

#[tokio::test(flavor = "multi_thread")]
async fn agent_exec_status_booleans_as_pve_or_as_the_agent_sends_them() {
    for json_booleans in [false, true] {
        let mut spec = ClusterSpec::default_cluster();
        spec.agent_json_booleans = json_booleans;
        let s = Simulator::start(SimOptions::new(spec)).await.unwrap();
        let c = root(&s);
        let mut seen = Vec::new();
        for cmd in ["true", "sleep 30"] {
            let started = post(
                &c,
                "/nodes/pve1/qemu/100/agent/exec",
                json!({"command": ["/bin/sh", "-c", cmd]}),
            )
            .await
            .unwrap();
            let st = get(
                &c,
                "/nodes/pve1/qemu/100/agent/exec-status",
                json!({"pid": started["pid"]}),
            )
            .await
            .unwrap();
            seen.push(st["exited"].clone());
        }
        let expected = if json_booleans {
            vec![json!(true), json!(false)]
        } else {
            vec![json!(1), json!(0)]
        };
        assert_eq!(seen, expected, "json booleans: {json_booleans}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_default_cluster_has_tags_recent_backups_and_a_nearly_full_storage() {
    let s = sim(0).await;
    let c = root(&s);
    let guests = get(&c, "/cluster/resources", json!({"type": "vm"})).await.unwrap();
    assert!(
        guests
            .as_array()
            .unwrap()
            .iter()
            .all(|g| g["tags"].as_str().is_some_and(|t| !t.is_empty())),
        "every guest is tagged: {guests}"
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let backups = get(
        &c,
        "/nodes/pve1/storage/nfs-backup/content",
        json!({"content": "backup"}),
    )
    .await
    .unwrap();
    let recent: Vec<&Value> = backups
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| now - b["ctime"].as_i64().unwrap() < 86_400)
        .collect();
    assert_eq!(recent.len(), 2, "{backups}");
    // The volid carries the backup's own time, as vzdump names it.
    let (y, m, d, h, mi, sec) = pve_mcp::human::utc_parts(recent[0]["ctime"].as_i64().unwrap());
    let stamp = format!("{y:04}_{m:02}_{d:02}-{h:02}_{mi:02}_{sec:02}");
    assert!(recent[0]["volid"].as_str().unwrap().contains(&stamp), "{}", recent[0]);
    let stores = get(&c, "/nodes/pve1/storage", json!({})).await.unwrap();
    let full: Vec<&str> = stores
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["used_fraction"].as_f64().unwrap_or(0.0) > 0.9)
        .map(|s| s["storage"].as_str().unwrap())
        .collect();
    assert_eq!(full, vec!["pbs"]);
}

/// A cluster of PVE `version` with one extra token per (id, role on `/`).
async fn sim_version(version: &str, extra: &[(&str, &str)]) -> Simulator {
    let mut spec = ClusterSpec::default_cluster();
    spec.task_duration_ms = 0;
    spec.version = version.into();
    for (id, role) in extra {
        spec.tokens.push(
            serde_json::from_value(json!({"id": id, "secret": "s3cret", "acl": [{"path": "/", "role": role}]}))
                .unwrap(),
        );
    }
    Simulator::start(SimOptions::new(spec)).await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn roles_and_agent_privileges_follow_the_pve_version() {
    let tokens = [
        ("audit@pve!a", "PVEAuditor"),
        ("vmuser@pve!u", "PVEVMUser"),
        ("vmadmin@pve!v", "PVEVMAdmin"),
    ];
    let ping = "/nodes/pve1/qemu/100/agent/ping";
    let exec = "/nodes/pve1/qemu/100/agent/exec";

    // PVE 9: VM.GuestAgent.Audit is in the audit group, Unrestricted in the admin group.
    let s9 = sim_version("9.1.1", &tokens).await;
    let url = s9.https_url().unwrap();
    let c = |id: &str| client_for(&url, id, "s3cret", false);
    let audit = c("audit@pve!a");
    assert!(
        post(&audit, ping, json!({})).await.is_ok(),
        "PVEAuditor may ping on PVE 9"
    );
    let e = api_err(post(&audit, exec, json!({"command": ["id"]})).await.unwrap_err());
    assert_eq!(
        (e.status, e.reason.as_deref()),
        (
            403,
            Some("Permission check failed (/vms/100, VM.GuestAgent.Unrestricted)")
        )
    );
    let perms = get(&audit, "/access/permissions", json!({"path": "/vms/100"}))
        .await
        .unwrap();
    let held: Vec<&String> = perms["/vms/100"].as_object().unwrap().keys().collect();
    assert_eq!(
        held,
        [
            "Datastore.Audit",
            "Mapping.Audit",
            "Pool.Audit",
            "SDN.Audit",
            "Sys.Audit",
            "VM.Audit",
            "VM.GuestAgent.Audit"
        ]
    );
    let user = c("vmuser@pve!u");
    let perms = get(&user, "/access/permissions", json!({"path": "/vms/100"}))
        .await
        .unwrap();
    for p in [
        "VM.GuestAgent.FileRead",
        "VM.GuestAgent.FileWrite",
        "VM.GuestAgent.FileSystemMgmt",
    ] {
        assert_eq!(perms["/vms/100"][p], 1, "PVEVMUser holds {p} on PVE 9");
    }
    let e = api_err(post(&user, exec, json!({"command": ["id"]})).await.unwrap_err());
    assert_eq!(
        (e.status, e.reason.as_deref()),
        (
            403,
            Some("Permission check failed (/vms/100, VM.GuestAgent.Unrestricted)")
        ),
        "PVEVMUser may not run commands on PVE 9"
    );
    let admin = c("vmadmin@pve!v");
    let perms = get(&admin, "/access/permissions", json!({"path": "/vms/100"}))
        .await
        .unwrap();
    assert_eq!(perms["/vms/100"]["VM.Replicate"], 1);
    assert!(perms["/vms/100"].get("VM.Monitor").is_none(), "PVE 9 has no VM.Monitor");
    assert!(post(&admin, exec, json!({"command": ["id"]})).await.is_ok());
    let root = root(&s9);
    let perms = get(&root, "/access/permissions", json!({"path": "/"})).await.unwrap();
    assert_eq!(perms["/"]["Sys.AccessNetwork"], 1);

    // PVE 8: every agent command needs VM.Monitor, which only the admin group has.
    let s8 = sim_version("8.4.14", &tokens).await;
    let url = s8.https_url().unwrap();
    let c = |id: &str| client_for(&url, id, "s3cret", false);
    let e = api_err(post(&c("audit@pve!a"), ping, json!({})).await.unwrap_err());
    assert_eq!(
        e.reason.as_deref(),
        Some("Permission check failed (/vms/100, VM.Monitor)")
    );
    let e = api_err(
        post(&c("vmuser@pve!u"), exec, json!({"command": ["id"]}))
            .await
            .unwrap_err(),
    );
    assert_eq!(
        e.reason.as_deref(),
        Some("Permission check failed (/vms/100, VM.Monitor)")
    );
    assert!(
        post(&c("vmadmin@pve!v"), exec, json!({"command": ["id"]}))
            .await
            .is_ok()
    );
    let perms = get(&c("vmadmin@pve!v"), "/access/permissions", json!({"path": "/vms/100"}))
        .await
        .unwrap();
    assert!(perms["/vms/100"].get("VM.Replicate").is_none() && perms["/vms/100"]["VM.Monitor"] == 1);
}

#[test]
fn a_cluster_file_names_only_roles_of_its_pve_version() {
    let mut spec = ClusterSpec::default_cluster();
    spec.tokens[1].acl[0].role = "PVEVMOperator".into();
    let err = spec.validate().unwrap_err().to_string();
    assert!(err.contains("role 'PVEVMOperator' does not exist in PVE 8"), "{err}");
    assert!(err.contains("PVEAuditor"), "{err}");
}
