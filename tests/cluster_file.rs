//! What a cluster file (`pve-mcp --simulate --cluster FILE`) can describe, each feature
//! through the real binary or the library's client: faults per path and method, task
//! history, RRD data, CPU load, guest-agent outputs, config locks.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stderr,
    reason = "test code: a panic is the failure report"
)]
#![cfg(feature = "simulator")]

mod common;

use std::time::Duration;

use common::*;
use pve_mcp::api::{ApiPath, Method};
use pve_mcp::config::{Connection, parse_host};
use pve_mcp::pve::{PveClient, PveError};
use pve_mcp::sim::spec::ClusterSpec;
use pve_mcp::sim::{SimOptions, Simulator};
use serde_json::{Value, json};

/// The built-in cluster with `extra` merged in (top-level keys replace; `guests` entries
/// with a vmid of the built-in cluster are merged into that guest).
fn cluster(extra: Value) -> ClusterSpec {
    let mut base: Value = serde_json::to_value(ClusterSpec::default_cluster()).unwrap();
    base["task_duration_ms"] = json!(0);
    for (k, v) in extra.as_object().unwrap() {
        if k == "guests" {
            for g in v.as_array().unwrap() {
                let guests = base["guests"].as_array_mut().unwrap();
                match guests.iter_mut().find(|x| x["vmid"] == g["vmid"]) {
                    Some(x) => {
                        for (gk, gv) in g.as_object().unwrap() {
                            x[gk] = gv.clone();
                        }
                    }
                    None => guests.push(g.clone()),
                }
            }
        } else if k == "nodes" {
            for n in v.as_array().unwrap() {
                let nodes = base["nodes"].as_array_mut().unwrap();
                if let Some(x) = nodes.iter_mut().find(|x| x["name"] == n["name"]) {
                    for (nk, nv) in n.as_object().unwrap() {
                        x[nk] = nv.clone();
                    }
                }
            }
        } else {
            base[k] = v.clone();
        }
    }
    let spec: ClusterSpec = serde_json::from_value(base).unwrap();
    spec.validate().unwrap();
    spec
}

async fn sim(extra: Value) -> Simulator {
    simulator_with(cluster(extra)).await
}

fn client(s: &Simulator) -> PveClient {
    let (id, secret) = s.token().unwrap();
    PveClient::new(&Connection {
        base_url: parse_host(&s.https_url().unwrap()).unwrap(),
        token_id: id,
        token_secret: secret,
        verify_tls: false,
        timeout: Duration::from_secs(2),
    })
    .unwrap()
}

async fn req(c: &PveClient, m: Method, path: &str, params: Value) -> Result<Value, PveError> {
    pve_request(c, m, &ApiPath::parse(path).unwrap(), params.as_object().unwrap()).await
}

async fn get(c: &PveClient, path: &str, params: Value) -> Value {
    req(c, Method::Get, path, params)
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

/// `pve-mcp --simulate --cluster FILE call TOOL ARGS`, as a script author runs it:
/// (exit status success, stdout, stderr).
async fn call_with_file(spec: &ClusterSpec, tool: &str, args: Value) -> (bool, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cluster.json");
    std::fs::write(&file, serde_json::to_string_pretty(spec).unwrap()).unwrap();
    let o = tokio::process::Command::new(bin())
        .args([
            "--simulate",
            "--cluster",
            file.to_str().unwrap(),
            "call",
            tool,
            &args.to_string(),
        ])
        .env_clear()
        .env("HOME", dir.path())
        .env("PVE_MCP_SCRIPTS", dir.path().join("none"))
        .env("PVE_MCP_AUDIT_LOG", "off")
        .env("PVE_MCP_ENABLE_EXEC", "true")
        .env("PVE_MCP_LOG", "warn")
        .output()
        .await
        .unwrap();
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn faults_come_from_the_cluster_file() {
    let s = sim(json!({"faults": [
        {"path": "/nodes/pve1/status", "method": "GET", "times": 1, "fault": "status", "status": 500, "message": "got timeout"},
        {"path": "/nodes/pve2/status", "fault": "html", "status": 502},
        {"path": "/nodes/pve1/qemu", "fault": "reset"},
        {"path": "/nodes/pve2/qemu", "fault": "malformed"},
        {"path": "/nodes/pve1/lxc", "fault": "latency", "ms": 300},
        {"path": "/nodes/pve2/lxc", "fault": "data", "data": {"not": "a list"}},
        {"path": "/cluster/nextid", "fault": "hang"},
        {"path": "/version", "method": "POST", "fault": "node_offline"}
    ]}))
    .await;
    let c = client(&s);
    let e = req(&c, Method::Get, "/nodes/pve1/status", json!({})).await.unwrap_err();
    assert!(e.to_string().contains("got timeout"), "{e}");
    assert!(
        req(&c, Method::Get, "/nodes/pve1/status", json!({})).await.is_ok(),
        "times: 1"
    );
    let e = req(&c, Method::Get, "/nodes/pve2/status", json!({})).await.unwrap_err();
    assert!(e.to_string().contains("Bad Gateway"), "{e}");
    let e = req(&c, Method::Get, "/nodes/pve1/qemu", json!({})).await.unwrap_err();
    assert!(matches!(e, PveError::Transport(_)), "a reset connection: {e:?}");
    let e = req(&c, Method::Get, "/nodes/pve2/qemu", json!({})).await.unwrap_err();
    assert!(matches!(e, PveError::BadResponse { .. }), "{e:?}");
    let t0 = std::time::Instant::now();
    assert!(get(&c, "/nodes/pve1/lxc", json!({})).await.is_array());
    assert!(t0.elapsed() >= Duration::from_millis(300));
    assert_eq!(get(&c, "/nodes/pve2/lxc", json!({})).await, json!({"not": "a list"}));
    let e = req(&c, Method::Get, "/cluster/nextid", json!({})).await.unwrap_err();
    assert!(e.to_string().to_lowercase().contains("time"), "a hang times out: {e}");
    assert!(
        get(&c, "/version", json!({})).await["version"].is_string(),
        "only POST is faulted"
    );

    // A bad fault is named when the file is loaded.
    let mut bad = cluster(json!({}));
    bad.faults = serde_json::from_value(json!([{"path": "/version", "fault": "explode"}])).unwrap();
    let err = bad.validate().unwrap_err().to_string();
    assert!(err.contains("faults[0]: unknown fault 'explode'"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fault_from_the_file_reproduces_a_tool_failure_through_the_binary() {
    let spec = cluster(json!({"faults": [
        {"path": "/cluster/resources", "fault": "status", "status": 500, "message": "cfs lock timeout"}
    ]}));
    let (ok, out, err) = call_with_file(&spec, "pve_list_vms", json!({})).await;
    assert!(!ok, "{out}");
    assert!(format!("{out}{err}").contains("cfs lock timeout"), "{out}{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_answer_that_is_not_a_upid_names_the_endpoint_and_the_answer() {
    // Item 11: a proxy or another API answers a map where PVE answers a task id.
    let s = sim(json!({"faults": [
        {"path": "/nodes/pve2/qemu/102/status/start", "method": "POST", "fault": "data", "data": {"queued": true}},
        {"path": "/nodes/pve1/qemu/101/snapshot", "method": "POST", "fault": "data", "data": null}
    ]}))
    .await;
    let server = start_on(&s, None, &[]).await;
    let msg = server
        .fails("pve_vm_power", json!({"vmid": 102, "action": "start"}))
        .await;
    assert!(
        msg.contains("POST /nodes/pve2/qemu/102/status/start answered map") && msg.contains("queued"),
        "{msg}"
    );
    assert!(msg.contains("task id (UPID"), "{msg}");
    assert!(!msg.contains("pve::wait_task takes"), "{msg}");
    let msg = server
        .fails("pve_snapshot_create", json!({"vmid": 101, "snapname": "s1"}))
        .await;
    assert!(
        msg.contains("POST /nodes/pve1/qemu/101/snapshot answered nothing"),
        "{msg}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn task_history_with_failed_tasks() {
    let spec = cluster(json!({"tasks": [
        {"node": "pve1", "type": "vzdump", "id": "100", "starttime": -7200, "duration": 95, "status": "job errors",
         "log": ["INFO: starting new backup job: vzdump 100 --storage nfs-backup", "ERROR: Backup of VM 100 failed - no space left on device"]},
        {"node": "pve1", "type": "qmstart", "id": "101", "user": "ops@pve!vms", "starttime": -3600, "duration": 2, "status": "OK"},
        {"node": "pve2", "type": "vzdump", "id": "", "starttime": -1800, "duration": 300, "status": "WARNINGS: 2"},
        {"node": "pve1", "type": "qmigrate", "id": "100", "starttime": -60}
    ]}));
    let s = simulator_with(spec.clone()).await;
    let c = client(&s);
    let rows = get(&c, "/nodes/pve1/tasks", json!({"errors": 1})).await;
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(
        (rows[0]["type"].as_str(), rows[0]["status"].as_str()),
        (Some("vzdump"), Some("job errors"))
    );
    let upid = rows[0]["upid"].as_str().unwrap().to_string();
    assert!(pve_mcp::pve::Upid::parse(&upid).is_ok(), "{upid}");
    assert_eq!(
        rows[0]["endtime"].as_u64().unwrap() - rows[0]["starttime"].as_u64().unwrap(),
        95
    );
    let st = get(&c, &format!("/nodes/pve1/tasks/{upid}/status"), json!({})).await;
    assert_eq!(
        (st["status"].as_str(), st["exitstatus"].as_str()),
        (Some("stopped"), Some("job errors"))
    );
    let log = get(&c, &format!("/nodes/pve1/tasks/{upid}/log"), json!({})).await;
    let last: Vec<&str> = log.as_array().unwrap().iter().filter_map(|l| l["t"].as_str()).collect();
    assert_eq!(last.last(), Some(&"TASK ERROR: job errors"));
    assert!(last.contains(&"ERROR: Backup of VM 100 failed - no space left on device"));
    let running = get(&c, "/nodes/pve1/tasks", json!({"source": "active"})).await;
    assert_eq!(running[0]["type"], "qmigrate", "a task without status is still running");
    let owner = get(&c, "/nodes/pve1/tasks", json!({"userfilter": "ops@pve"})).await;
    assert_eq!(
        (owner[0]["user"].as_str(), owner[0]["tokenid"].as_str()),
        (Some("ops@pve"), Some("vms"))
    );

    // The tools see them as PVE reports them.
    let server = start_on(&s, None, &[]).await;
    let r = server.ok("pve_list_tasks", json!({"errors_only": true})).await;
    assert_eq!(r["count"], 1, "{r}");
    let r = server.ok("pve_task_status", json!({"upid": upid})).await;
    assert_eq!(r["status"], "failed", "{r}");
    let r = server.ok("pve_list_tasks", json!({"node": "pve2"})).await;
    assert_eq!(r["tasks"][0]["status"], "warnings", "{r}");

    let mut bad = spec;
    bad.tasks[0].node = "pve9".into();
    assert!(bad.validate().unwrap_err().to_string().contains("unknown node 'pve9'"));
}

#[tokio::test(flavor = "multi_thread")]
async fn rrd_data_as_pve_8_and_9_return_it() {
    // Not in the request log: `decade` is asked of PVE 8 on purpose, and the log is checked
    // against the 8.4 schema.
    let unlogged = |extra: Value| async move { Simulator::start(SimOptions::new(cluster(extra))).await.unwrap() };
    let s = unlogged(json!({"guests": [
        {"vmid": 101, "rrddata": [{"time": -120, "cpu": 0.91, "mem": 1000}, {"time": -60, "cpu": 0.95, "mem": 1100}]}
    ]}))
    .await;
    let c = client(&s);
    let rows = get(&c, "/nodes/pve1/rrddata", json!({"timeframe": "hour"})).await;
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 70, "PVE 8: 70 rows of one minute");
    let r = &rows[69];
    for k in [
        "time",
        "cpu",
        "maxcpu",
        "loadavg",
        "iowait",
        "memtotal",
        "memused",
        "swaptotal",
        "swapused",
        "roottotal",
        "rootused",
        "netin",
        "netout",
    ] {
        assert!(r.get(k).is_some(), "node row without {k}: {r}");
    }
    assert!(r.get("memavailable").is_none(), "pve2-node has no memavailable");
    assert_eq!(
        rows[1]["time"].as_i64().unwrap() - rows[0]["time"].as_i64().unwrap(),
        60
    );
    let e = req(&c, Method::Get, "/nodes/pve1/rrddata", json!({"timeframe": "decade"}))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("timeframe"), "PVE 8 has no decade: {e}");
    let rows = get(
        &c,
        "/nodes/pve1/qemu/100/rrddata",
        json!({"timeframe": "day", "cf": "MAX"}),
    )
    .await;
    let r = &rows.as_array().unwrap()[10];
    for k in [
        "time",
        "cpu",
        "maxcpu",
        "mem",
        "maxmem",
        "disk",
        "maxdisk",
        "netin",
        "netout",
        "diskread",
        "diskwrite",
    ] {
        assert!(r.get(k).is_some(), "guest row without {k}: {r}");
    }
    let given = get(&c, "/nodes/pve1/qemu/101/rrddata", json!({"timeframe": "hour"})).await;
    assert_eq!(given.as_array().unwrap().len(), 2);
    assert_eq!(given[1]["cpu"], 0.95);
    let stopped = get(&c, "/nodes/pve2/qemu/102/rrddata", json!({"timeframe": "hour"})).await;
    assert_eq!(stopped[0]["cpu"], 0.0);

    let s9 = unlogged(json!({"version": "9.1.1"})).await;
    let c9 = client(&s9);
    let rows = get(&c9, "/nodes/pve1/rrddata", json!({"timeframe": "hour"})).await;
    assert_eq!(rows.as_array().unwrap().len(), 60, "PVE 9: 60 rows of one minute");
    assert!(rows[0].get("memavailable").is_some() && rows[0].get("pressurecpusome").is_some());
    assert_eq!(
        get(&c9, "/nodes/pve1/rrddata", json!({"timeframe": "decade"}))
            .await
            .as_array()
            .unwrap()
            .len(),
        570
    );
    let g = get(&c9, "/nodes/pve1/lxc/200/rrddata", json!({"timeframe": "week"})).await;
    assert_eq!(g.as_array().unwrap().len(), 336);
    assert!(g[0].get("memhost").is_some());
}

#[tokio::test(flavor = "multi_thread")]
async fn cpu_load_per_guest() {
    let s = sim(json!({"guests": [{"vmid": 100, "cpu": 0.75}, {"vmid": 101, "cpu": 0.0}]})).await;
    let c = client(&s);
    assert_eq!(
        get(&c, "/nodes/pve1/qemu/100/status/current", json!({})).await["cpu"],
        0.75
    );
    let res = get(&c, "/cluster/resources", json!({"type": "vm"})).await;
    let row = res
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["vmid"] == 100)
        .unwrap()
        .clone();
    assert_eq!(row["cpu"], 0.75);
    let server = start_on(&s, None, &[]).await;
    let r = server.ok("pve_vm_status", json!({"vmid": 101})).await;
    assert_eq!(r["cpu"], 0.0, "{r}");
    let mut bad = cluster(json!({}));
    bad.guests[0].cpu = Some(3.0);
    let err = bad.validate().unwrap_err().to_string();
    assert!(err.contains("cpu is a fraction between 0 and 1"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn guest_agent_outputs_from_the_file() {
    let spec = cluster(json!({"guests": [{"vmid": 100, "agent_commands": [
        {"command": "systemctl is-active nginx", "out-data": "failed\n", "exitcode": 3},
        {"command": ["/usr/bin/df", "-h"], "err-data": "df: /mnt/nas: Stale file handle\n", "exitcode": 1}
    ]}]}));
    let s = simulator_with(spec.clone()).await;
    let c = client(&s);
    let pid = req(
        &c,
        Method::Post,
        "/nodes/pve1/qemu/100/agent/exec",
        json!({"command": ["/usr/bin/df", "-h"]}),
    )
    .await
    .unwrap()["pid"]
        .clone();
    let st = get(&c, "/nodes/pve1/qemu/100/agent/exec-status", json!({"pid": pid})).await;
    assert_eq!(
        (st["exitcode"].as_i64(), st["err-data"].as_str()),
        (Some(1), Some("df: /mnt/nas: Stale file handle\n"))
    );
    // pve_vm_exec runs `/bin/sh -c COMMAND`; the string form matches the script.
    let (ok, out, err) = call_with_file(
        &spec,
        "pve_vm_exec",
        json!({"vmid": 100, "command": "systemctl is-active nginx"}),
    )
    .await;
    assert!(ok, "{out}{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (v["exitcode"].as_i64(), v["stdout"].as_str()),
        (Some(3), Some("failed\n")),
        "{v}"
    );
}

async fn task_error(c: &PveClient, node: &str, upid: &Value) -> String {
    let upid = upid.as_str().unwrap();
    let st = get(c, &format!("/nodes/{node}/tasks/{upid}/status"), json!({})).await;
    st["exitstatus"].as_str().unwrap_or("").to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn config_locks_refuse_what_pve_refuses() {
    let s = sim(json!({"guests": [
        {"vmid": 102, "lock": "backup"},
        {"vmid": 202, "lock": "snapshot"},
        {"vmid": 101, "lock": "suspended"}
    ]}))
    .await;
    let c = client(&s);
    // Shown where PVE shows it.
    assert_eq!(
        get(&c, "/nodes/pve2/qemu/102/config", json!({})).await["lock"],
        "backup"
    );
    assert_eq!(
        get(&c, "/nodes/pve2/qemu/102/status/current", json!({})).await["lock"],
        "backup"
    );
    // QEMU checks in the worker: the task fails with check_lock's message.
    let upid = req(&c, Method::Post, "/nodes/pve2/qemu/102/status/start", json!({}))
        .await
        .unwrap();
    assert_eq!(task_error(&c, "pve2", &upid).await, "VM is locked (backup)");
    let upid = req(&c, Method::Post, "/nodes/pve2/qemu/102/config", json!({"memory": 4096}))
        .await
        .unwrap();
    assert_eq!(task_error(&c, "pve2", &upid).await, "VM is locked (backup)");
    let upid = req(
        &c,
        Method::Post,
        "/nodes/pve2/qemu/102/snapshot",
        json!({"snapname": "s1"}),
    )
    .await
    .unwrap();
    assert_eq!(task_error(&c, "pve2", &upid).await, "VM is locked (backup)");
    // ...and early, synchronously, for migration and clones.
    let e = req(
        &c,
        Method::Post,
        "/nodes/pve2/qemu/102/migrate",
        json!({"target": "pve1"}),
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("VM is locked (backup)"), "{e}");
    // A 'suspended' VM may still be started (it resumes).
    let upid = req(&c, Method::Post, "/nodes/pve1/qemu/101/status/stop", json!({}))
        .await
        .unwrap();
    assert_eq!(task_error(&c, "pve1", &upid).await, "VM is locked (suspended)");
    // Containers check synchronously for config changes and in the worker for power.
    let e = req(&c, Method::Put, "/nodes/pve2/lxc/202/config", json!({"memory": 1024}))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("CT is locked (snapshot)"), "{e}");
    let upid = req(&c, Method::Post, "/nodes/pve2/lxc/202/status/start", json!({}))
        .await
        .unwrap();
    assert_eq!(task_error(&c, "pve2", &upid).await, "CT is locked (snapshot)");
    let e = req(&c, Method::Delete, "/nodes/pve2/lxc/202", json!({}))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("CT is locked (snapshot)"), "{e}");
    // skiplock is root@pam's alone; a token never is root@pam. (The gate never sends it;
    // asked directly.)
    let (id, secret) = s.token().unwrap();
    let raw = reqwest::Client::builder()
        .tls_danger_accept_invalid_certs(true)
        .build()
        .unwrap()
        .post(format!(
            "{}/api2/json/nodes/pve2/qemu/102/status/start",
            s.https_url().unwrap()
        ))
        .header("Authorization", format!("PVEAPIToken={id}={secret}"))
        .form(&[("skiplock", "1")])
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 400);
    let body: Value = raw.json().await.unwrap();
    assert_eq!(body["errors"]["skiplock"], "Only root may use this option.");
    // A backup of a locked guest fails in the job, as vzdump logs it.
    let upid = req(
        &c,
        Method::Post,
        "/nodes/pve2/vzdump",
        json!({"vmid": "102", "storage": "nfs-backup"}),
    )
    .await
    .unwrap();
    assert_eq!(task_error(&c, "pve2", &upid).await, "job errors");
    let log = get(
        &c,
        &format!("/nodes/pve2/tasks/{}/log", upid.as_str().unwrap()),
        json!({}),
    )
    .await;
    assert!(
        log.as_array()
            .unwrap()
            .iter()
            .any(|l| l["t"] == "ERROR: Backup of VM 102 failed - VM is locked (backup)"),
        "{log}"
    );

    // The tools report PVE's refusal.
    let server = start_on(&s, None, &[]).await;
    let msg = server
        .fails("pve_vm_power", json!({"vmid": 102, "action": "start"}))
        .await;
    assert!(msg.contains("VM is locked (backup)"), "{msg}");
    let msg = server
        .fails("pve_vm_set_config", json!({"vmid": 202, "config": {"memory": 1024}}))
        .await;
    assert!(msg.contains("CT is locked (snapshot)"), "{msg}");

    let mut bad = cluster(json!({}));
    bad.guests[0].lock = Some("mounted".into());
    let err = bad.validate().unwrap_err().to_string();
    assert!(err.contains("lock 'mounted' is not one of backup, clone"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backup_holds_the_backup_lock_while_it_runs() {
    let mut spec = cluster(json!({}));
    spec.task_duration_ms = 1500;
    let s = simulator_with(spec).await;
    let c = client(&s);
    let upid = req(
        &c,
        Method::Post,
        "/nodes/pve1/vzdump",
        json!({"vmid": "100", "storage": "nfs-backup"}),
    )
    .await
    .unwrap();
    assert_eq!(
        get(&c, "/nodes/pve1/qemu/100/status/current", json!({})).await["lock"],
        "backup"
    );
    let e = req(
        &c,
        Method::Post,
        "/nodes/pve1/qemu/100/migrate",
        json!({"target": "pve2", "online": 1}),
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("VM is locked (backup)"), "{e}");
    tokio::time::sleep(Duration::from_millis(1700)).await;
    assert_eq!(task_error(&c, "pve1", &upid).await, "OK");
    assert!(
        get(&c, "/nodes/pve1/qemu/100/status/current", json!({}))
            .await
            .get("lock")
            .is_none()
    );
}

/// The examples of docs/cluster-file.md are what the simulator loads.
#[test]
fn the_documented_examples_load() {
    let doc = include_str!("../docs/cluster-file.md");
    let blocks: Vec<Value> = doc
        .split("```json\n")
        .skip(1)
        .filter_map(|b| b.split("```").next())
        .map(|b| serde_json::from_str(b).unwrap_or_else(|e| panic!("{e}: {b}")))
        .collect();
    assert_eq!(blocks.len(), 3);
    let spec = cluster(json!({"guests": [blocks[0]], "tasks": [blocks[1]], "faults": [blocks[2]]}));
    let g = spec.guests.iter().find(|g| g.vmid == 100).unwrap();
    assert_eq!(
        (g.cpu, g.lock.as_deref(), g.agent_commands.len()),
        (Some(0.35), Some("backup"), 1)
    );
    assert_eq!(spec.tasks[0].status.as_deref(), Some("job errors"));
    assert!(spec.faults[0].fault().is_ok());
}
