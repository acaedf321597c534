//! Shared test harness: a wiremock fake PVE, and the real binary driven over stdio by
//! rmcp's client.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stderr,
    reason = "test code: a panic is the failure report"
)]
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmcp::model::{CallToolRequestParams, CallToolResult, ProgressNotificationParam};
use rmcp::service::{NotificationContext, RunningService};
use rmcp::transport::TokioChildProcess;
use rmcp::{ClientHandler, RoleClient, ServiceExt};
use serde_json::{Map, Value, json};
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

pub(crate) const TOKEN_ID: &str = "mcp@pve!test";
pub(crate) const SECRET: &str = "8c3f1a2b-4d5e-4f60-8a9b-0c1d2e3f4a5b";
pub(crate) const UPID_START: &str = "UPID:pve1:0012EBC1:05E31C50:66C27520:qmstart:100:mcp@pve!test:";

pub(crate) fn data(v: Value) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({ "data": v }))
}

/// Three guests on two nodes: a running VM, a stopped VM, a running container.
pub(crate) fn guests() -> Value {
    json!([
        {"id": "qemu/100", "type": "qemu", "vmid": 100, "name": "web", "node": "pve1", "status": "running",
         "template": 0, "maxmem": 4294967296u64, "mem": 1073741824, "maxcpu": 2, "cpu": 0.05, "tags": "prod;web",
         "disk": 0, "maxdisk": 34359738368u64, "uptime": 1000},
        {"id": "qemu/101", "type": "qemu", "vmid": 101, "name": "db", "node": "pve2", "status": "stopped",
         "template": 0, "maxmem": 8589934592u64, "mem": 0, "maxcpu": 4, "cpu": 0, "disk": 0, "maxdisk": 68719476736u64, "uptime": 0},
        {"id": "lxc/200", "type": "lxc", "vmid": 200, "name": "dns", "node": "pve1", "status": "running",
         "template": 0, "maxmem": 536870912, "mem": 104857600, "maxcpu": 1, "cpu": 0.01, "disk": 1073741824, "maxdisk": 8589934592u64, "uptime": 500}
    ])
}

/// A fake PVE that accepts any write (POST and DELETE answer with a UPID, PUT with null),
/// so that only the gate can stop one; its request log proves what was sent.
pub(crate) async fn permissive_pve() -> MockServer {
    let pve = fake_pve().await;
    for (m, answer) in [
        ("POST", json!(UPID_START)),
        ("PUT", Value::Null),
        ("DELETE", json!(UPID_START)),
    ] {
        Mock::given(method(m))
            .and(path_regex(".*"))
            .respond_with(data(answer))
            .mount(&pve)
            .await;
    }
    pve
}

/// A fake PVE with the guest list and the task endpoints every tool needs.
pub(crate) async fn fake_pve() -> MockServer {
    let pve = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api2/json/cluster/resources"))
        .respond_with(data(guests()))
        .mount(&pve)
        .await;
    Mock::given(method("GET"))
        .and(path("/api2/json/nodes"))
        .respond_with(data(
            json!([{"node": "pve1", "status": "online"}, {"node": "pve2", "status": "online"}]),
        ))
        .mount(&pve)
        .await;
    Mock::given(method("GET"))
        .and(path_regex(r"^/api2/json/nodes/[^/]+/tasks/[^/]+/status$"))
        .respond_with(data(json!({"status": "stopped", "exitstatus": "OK", "upid": UPID_START, "node": "pve1", "type": "qmstart", "id": "100"})))
        .mount(&pve)
        .await;
    Mock::given(method("GET"))
        .and(path_regex(r"^/api2/json/nodes/[^/]+/tasks/[^/]+/log$"))
        .respond_with(data(json!([{"n": 1, "t": "starting"}, {"n": 2, "t": "TASK OK"}])))
        .mount(&pve)
        .await;
    pve
}

/// Requests that reached the fake PVE, as (METHOD, decoded path).
pub(crate) async fn requests(pve: &MockServer) -> Vec<(String, String)> {
    pve.received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .map(|r: &Request| {
            let p = percent_decode(r.url.path());
            (r.method.to_string(), p)
        })
        .collect()
}

/// The non-GET requests the fake PVE received, as `METHOD /path` lines.
pub(crate) async fn sent_writes(pve: &MockServer) -> Vec<String> {
    non_get(pve)
        .await
        .into_iter()
        .map(|(m, p)| format!("{m} {p}"))
        .collect()
}

pub(crate) async fn non_get(pve: &MockServer) -> Vec<(String, String)> {
    requests(pve).await.into_iter().filter(|(m, _)| m != "GET").collect()
}

pub(crate) fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned()
}

#[derive(Debug, Default)]
pub(crate) struct Events {
    pub list_changed: usize,
    pub progress: Vec<ProgressNotificationParam>,
}

/// A client handler that records what the server notifies.
#[derive(Clone, Default)]
pub(crate) struct Recorder {
    pub events: Arc<Mutex<Events>>,
}

impl ClientHandler for Recorder {
    async fn on_tool_list_changed(&self, _cx: NotificationContext<RoleClient>) {
        self.events.lock().unwrap().list_changed += 1;
    }

    async fn on_progress(&self, params: ProgressNotificationParam, _cx: NotificationContext<RoleClient>) {
        self.events.lock().unwrap().progress.push(params);
    }
}

pub(crate) struct Server {
    pub client: RunningService<RoleClient, Recorder>,
    pub events: Arc<Mutex<Events>>,
    pub scripts: tempfile::TempDir,
    pub stderr: PathBuf,
    _home: tempfile::TempDir,
}

/// The binary under test: this build's, or the one `PVE_MCP_TEST_BIN` names (to run the
/// suite against another build, e.g. to see a new test fail on the code before a fix).
pub(crate) fn bin() -> String {
    std::env::var("PVE_MCP_TEST_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_pve-mcp").to_string())
}

/// Environment for the binary: a clean HOME, the fake PVE, the given user script dir.
pub(crate) fn command(pve_uri: &str, scripts: &Path, home: &Path, extra: &[(&str, &str)]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(bin());
    cmd.current_dir(home)
        .env_clear()
        .env("HOME", home)
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("PVE_HOST", pve_uri)
        .env("PVE_TOKEN_ID", TOKEN_ID)
        .env("PVE_TOKEN_SECRET", SECRET)
        .env("PVE_MCP_SCRIPTS", scripts)
        .env("PVE_MCP_TASK_WAIT", "5")
        .env("PVE_MCP_LOG", "info");
    for (k, v) in extra {
        cmd.env(k, v);
    }
    cmd
}

/// Copy fixture scripts (file names under tests/fixtures/) into a fresh user dir.
pub(crate) fn fixtures(names: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    for n in names {
        let src = root.join(n);
        let dest = dir.path().join(Path::new(n).file_name().unwrap());
        std::fs::copy(&src, &dest).unwrap_or_else(|e| panic!("copy {}: {e}", src.display()));
    }
    dir
}

pub(crate) async fn start(pve_uri: &str, scripts: tempfile::TempDir, extra: &[(&str, &str)]) -> Server {
    let home = tempfile::tempdir().unwrap();
    let stderr = home.path().join("stderr.log");
    let log = std::fs::File::create(&stderr).unwrap();
    let cmd = command(pve_uri, scripts.path(), home.path(), extra);
    let (transport, _) = TokioChildProcess::builder(cmd).stderr(log).spawn().unwrap();
    let recorder = Recorder::default();
    let events = recorder.events.clone();
    let client = recorder.serve(transport).await.unwrap();
    Server {
        client,
        events,
        scripts,
        stderr,
        _home: home,
    }
}

impl Server {
    pub(crate) async fn call(&self, tool: &str, args: Value) -> CallToolResult {
        let args: Map<String, Value> = args.as_object().cloned().unwrap_or_default();
        self.client
            .call_tool(CallToolRequestParams::new(tool.to_string()).with_arguments(args))
            .await
            .unwrap_or_else(|e| panic!("{tool}: protocol error {e}"))
    }

    pub(crate) async fn tool_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .client
            .list_all_tools()
            .await
            .unwrap()
            .into_iter()
            .map(|t| t.name.to_string())
            .collect();
        names.sort();
        names
    }

    pub(crate) fn stderr_text(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Wait (bounded) until `needle` appears in the server's stderr.
    pub(crate) async fn wait_for_log(&self, needle: &str) {
        for _ in 0..100 {
            if self.stderr_text().contains(needle) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("'{needle}' never appeared in the server log:\n{}", self.stderr_text());
    }

    /// Wait (bounded) until `cond` holds on the recorded events.
    pub(crate) async fn wait_for(&self, what: &str, cond: impl Fn(&Events) -> bool) {
        for _ in 0..200 {
            if cond(&self.events.lock().unwrap()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("timed out waiting for {what}");
    }
}

pub(crate) fn text(r: &CallToolResult) -> String {
    r.content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect::<Vec<_>>()
        .join("\n")
}

pub(crate) fn is_error(r: &CallToolResult) -> bool {
    r.is_error == Some(true)
}

pub(crate) fn structured(r: &CallToolResult) -> Value {
    r.structured_content.clone().unwrap_or(Value::Null)
}

/// The token ids and secrets of the built-in simulated cluster.
#[cfg(feature = "simulator")]
pub(crate) mod sim_tokens {
    pub(crate) const AUDITOR: (&str, &str) = ("auditor@pve!ro", "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d");
}

#[cfg(feature = "simulator")]
/// A simulated cluster for an end-to-end test. Its requests are appended to
/// `PVE_MCP_SIM_REQUEST_LOG` when set, so that CI can check every request the suite sent
/// against the official API schema.
pub(crate) async fn simulator(task_ms: u64) -> pve_mcp::sim::Simulator {
    let mut spec = pve_mcp::sim::spec::ClusterSpec::default_cluster();
    spec.task_duration_ms = task_ms;
    let mut opts = pve_mcp::sim::SimOptions::new(spec);
    opts.request_log = std::env::var_os("PVE_MCP_SIM_REQUEST_LOG").map(PathBuf::from);
    pve_mcp::sim::Simulator::start(opts).await.unwrap()
}

#[cfg(feature = "simulator")]
/// The real binary against a simulated cluster over HTTPS (PVE_VERIFY_SSL=false), with the
/// given token (the cluster's administrator token when `None`).
pub(crate) async fn start_on(
    sim: &pve_mcp::sim::Simulator,
    token: Option<(&str, &str)>,
    extra: &[(&str, &str)],
) -> Server {
    let (id, secret) = sim.token().unwrap();
    let (id, secret) = token
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .unwrap_or((id, secret));
    let mut env: Vec<(&str, &str)> = vec![
        ("PVE_TOKEN_ID", &id),
        ("PVE_TOKEN_SECRET", &secret),
        ("PVE_VERIFY_SSL", "false"),
    ];
    env.extend_from_slice(extra);
    start(&sim.https_url().unwrap(), tempfile::tempdir().unwrap(), &env).await
}

#[cfg(feature = "simulator")]
/// The built-in cluster, its tasks instant, logging its requests to a file of the test's own.
pub(crate) async fn logged_simulator(log: &Path) -> pve_mcp::sim::Simulator {
    let mut spec = pve_mcp::sim::spec::ClusterSpec::default_cluster();
    spec.task_duration_ms = 0;
    let mut opts = pve_mcp::sim::SimOptions::new(spec);
    opts.request_log = Some(PathBuf::from(log));
    pve_mcp::sim::Simulator::start(opts).await.unwrap()
}

/// (method, path) of every request in a simulator's log so far.
pub(crate) fn logged_requests(log: &Path) -> Vec<(String, String)> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .map(|v| {
            (
                v["method"].as_str().unwrap_or("").to_string(),
                v["path"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[cfg(feature = "simulator")]
/// A simulated cluster from a given description (request log as for [`simulator`]).
pub(crate) async fn simulator_with(spec: pve_mcp::sim::spec::ClusterSpec) -> pve_mcp::sim::Simulator {
    let mut opts = pve_mcp::sim::SimOptions::new(spec);
    opts.request_log = std::env::var_os("PVE_MCP_SIM_REQUEST_LOG").map(PathBuf::from);
    pve_mcp::sim::Simulator::start(opts).await.unwrap()
}

impl Server {
    /// Call a tool that must succeed; its structured result.
    pub(crate) async fn ok(&self, tool: &str, args: Value) -> Value {
        let r = self.call(tool, args.clone()).await;
        assert!(!is_error(&r), "{tool} {args}: {}", text(&r));
        structured(&r)
    }

    /// Call a tool that must fail; its message.
    pub(crate) async fn fails(&self, tool: &str, args: Value) -> String {
        let r = self.call(tool, args.clone()).await;
        assert!(is_error(&r), "{tool} {args} should fail, got {}", text(&r));
        text(&r)
    }
}

/// The 12 read tools of the reference.
pub(crate) const READ_TOOLS: [&str; 12] = [
    "pve_cluster_status",
    "pve_list_nodes",
    "pve_node_status",
    "pve_list_vms",
    "pve_vm_status",
    "pve_vm_config",
    "pve_list_storage",
    "pve_storage_content",
    "pve_list_backups",
    "pve_list_snapshots",
    "pve_list_tasks",
    "pve_task_status",
];

/// Send one request with the library's client. The client takes only the gate's permit, so
/// this goes through a gate that allows everything the endpoint table allows.
pub(crate) async fn pve_request(
    c: &pve_mcp::pve::PveClient,
    m: pve_mcp::api::Method,
    path: &pve_mcp::api::ApiPath,
    params: &Map<String, Value>,
) -> Result<Value, pve_mcp::pve::PveError> {
    use pve_mcp::gate::{CallMode, Capabilities, Capability::*, Gate, Verdict};
    let gate = Gate::new(
        pve_mcp::config::Mode::new(false, true, true),
        Capabilities::of(&[Write, Destructive, Exec, Admin]),
        CallMode::run(true),
    );
    match gate.check(m, path.clone(), params.clone()) {
        Ok(Verdict::Send(permit)) => c.send(&permit).await,
        other => panic!("the gate did not allow {m} {path}: {other:?}"),
    }
}
