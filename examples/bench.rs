//! Measures the server against an in-process mock PVE and prints the figures.
//!
//!     cargo build --release && cargo run --release --example bench [-- path/to/pve-mcp]
//!
//! 1. spawn → `tools/list` answered (ms, median of 20 spawns)
//! 2. per-call overhead of `pve_vm_status` over the mock's own response time for the same
//!    two requests (µs, p50/p99 over 1000 calls)
//! 3. file save → `notifications/tools/list_changed` received (ms, median of 5)
//! 4. the server's RSS after those 1000 calls (MB)
//!
//! It also prints the bare MCP round trip (a `ping`), the floor under every call.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rmcp::model::CallToolRequestParams;
use rmcp::service::NotificationContext;
use rmcp::transport::TokioChildProcess;
use rmcp::{ClientHandler, RoleClient, ServiceExt};
use serde_json::json;
use tokio::sync::Notify;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const CALLS: usize = 1000;
const SPAWNS: usize = 20;
const RELOADS: usize = 5;

#[derive(Clone, Default)]
struct Client {
    changed: Arc<Notify>,
}

impl ClientHandler for Client {
    async fn on_tool_list_changed(&self, _cx: NotificationContext<RoleClient>) {
        self.changed.notify_one();
    }
}

fn binary() -> PathBuf {
    if let Some(p) = std::env::args().nth(1).filter(|a| a != MOCK_FLAG) {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("the bench knows where it is");
    // target/<profile>/examples/bench → target/<profile>/pve-mcp
    let bin = exe
        .parent()
        .and_then(|p| p.parent())
        .map(|p| p.join("pve-mcp"))
        .unwrap_or_default();
    if !bin.is_file() {
        eprintln!(
            "{} not found: run `cargo build --release` first, or pass the binary's path",
            bin.display()
        );
        std::process::exit(2);
    }
    bin
}

fn command(bin: &PathBuf, pve: &str, scripts: &std::path::Path) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(bin);
    cmd.env("PVE_HOST", pve)
        .env("PVE_TOKEN_ID", "bench@pve!bench")
        .env("PVE_TOKEN_SECRET", "8c3f1a2b-4d5e-4f60-8a9b-0c1d2e3f4a5b")
        .env("PVE_MCP_SCRIPTS", scripts)
        .env("PVE_MCP_LOG", "warn")
        .current_dir(scripts);
    cmd
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    percentile(&v, 0.5)
}

fn rss_mb(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

/// Run as the mock PVE (a separate process, so that the bench and the server both reach it
/// across a process boundary and the baseline is fair).
const MOCK_FLAG: &str = "--mock-pve";

async fn serve_mock() {
    let pve = mock_pve().await;
    println!("{}", pve.uri()); // stdout-ok
    // Serve until the bench closes our stdin.
    let mut sink = Vec::new();
    let _ = tokio::io::AsyncReadExt::read_to_end(&mut tokio::io::stdin(), &mut sink).await;
}

/// Start the mock PVE process and return it with its URI.
async fn spawn_mock() -> (tokio::process::Child, String) {
    use tokio::io::AsyncBufReadExt;
    let exe = std::env::current_exe().expect("the bench knows where it is");
    let mut child = tokio::process::Command::new(exe)
        .arg(MOCK_FLAG)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn the mock PVE");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut line = String::new();
    tokio::io::BufReader::new(stdout)
        .read_line(&mut line)
        .await
        .expect("the mock's URI");
    (child, line.trim().to_string())
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    if std::env::args().any(|a| a == MOCK_FLAG) {
        return serve_mock().await;
    }
    let bin = binary();
    let (_mock, uri) = spawn_mock().await;
    run(bin, uri).await;
}

async fn mock_pve() -> MockServer {
    let pve = MockServer::start().await;
    let resources = json!({"data": [
        {"id": "qemu/100", "type": "qemu", "vmid": 100, "name": "web", "node": "pve1", "status": "running", "template": 0, "maxmem": 4294967296u64},
        {"id": "lxc/200", "type": "lxc", "vmid": 200, "name": "dns", "node": "pve1", "status": "running", "template": 0}
    ]});
    let status = json!({"data": {"vmid": 100, "name": "web", "status": "running", "qmpstatus": "running", "cpus": 2, "cpu": 0.03,
        "mem": 1073741824, "maxmem": 4294967296u64, "uptime": 1000, "netin": 1, "netout": 2, "disk": 0, "maxdisk": 34359738368u64}});
    Mock::given(method("GET"))
        .and(path("/api2/json/cluster/resources"))
        .respond_with(ResponseTemplate::new(200).set_body_json(resources))
        .mount(&pve)
        .await;
    Mock::given(method("GET"))
        .and(path("/api2/json/nodes/pve1/qemu/100/status/current"))
        .respond_with(ResponseTemplate::new(200).set_body_json(status))
        .mount(&pve)
        .await;
    pve
}

async fn run(bin: PathBuf, pve_uri: String) {
    let scripts = tempfile::tempdir().expect("temp dir");

    // 1. Spawn to tools/list.
    let mut spawn_ms = Vec::new();
    for _ in 0..SPAWNS {
        let t = Instant::now();
        let transport = TokioChildProcess::new(command(&bin, &pve_uri, scripts.path())).expect("spawn");
        let client = Client::default().serve(transport).await.expect("handshake");
        let tools = client.list_all_tools().await.expect("tools/list");
        spawn_ms.push(t.elapsed().as_secs_f64() * 1e3);
        assert!(!tools.is_empty());
        let _ = client.cancel().await;
    }

    // 2. The mock's own time for pve_vm_status's two requests, then the full call.
    let http = reqwest::Client::new();
    let direct = |p: &'static str| {
        let http = http.clone();
        let url = format!("{pve_uri}/api2/json{p}");
        async move { http.get(url).send().await.expect("mock").bytes().await.expect("body") }
    };
    for _ in 0..50 {
        direct("/cluster/resources").await;
    }
    let mut mock_us = Vec::new();
    for _ in 0..CALLS {
        let t = Instant::now();
        direct("/cluster/resources?type=vm").await;
        direct("/nodes/pve1/qemu/100/status/current").await;
        mock_us.push(t.elapsed().as_secs_f64() * 1e6);
    }
    let handler = Client::default();
    let changed = handler.changed.clone();
    let (transport, _) = TokioChildProcess::builder(command(&bin, &pve_uri, scripts.path()))
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let pid = transport.id().expect("child pid");
    let client = handler.serve(transport).await.expect("handshake");
    let args = json!({"vmid": 100}).as_object().cloned().unwrap_or_default();
    for _ in 0..50 {
        client
            .call_tool(CallToolRequestParams::new("pve_vm_status").with_arguments(args.clone()))
            .await
            .expect("warm-up");
    }
    let mut call_us = Vec::new();
    for _ in 0..CALLS {
        let t = Instant::now();
        let r = client
            .call_tool(CallToolRequestParams::new("pve_vm_status").with_arguments(args.clone()))
            .await
            .expect("call");
        call_us.push(t.elapsed().as_secs_f64() * 1e6);
        assert_ne!(r.is_error, Some(true));
    }
    let rss = rss_mb(pid);
    // The MCP round trip on its own: a ping runs no script and asks nothing of PVE.
    let mut floor_us = Vec::new();
    for _ in 0..CALLS {
        let ping = rmcp::model::PingRequest {
            method: Default::default(),
            extensions: Default::default(),
        };
        let t = Instant::now();
        client.send_request(ping.into()).await.expect("ping");
        floor_us.push(t.elapsed().as_secs_f64() * 1e6);
    }
    let mock_p50 = median(mock_us.clone());
    let mut overhead: Vec<f64> = call_us.iter().map(|c| c - mock_p50).collect();
    overhead.sort_by(|a, b| a.total_cmp(b));
    call_us.sort_by(|a, b| a.total_cmp(b));

    // 3. Save → list_changed.
    let mut reload_ms = Vec::new();
    for i in 0..RELOADS {
        let file = scripts.path().join(format!("bench_{i}.rhai"));
        let t = Instant::now();
        std::fs::write(
            &file,
            "const TOOL = #{ description: \"bench\", class: \"read\" };\nfn run(args) { 1 }\n",
        )
        .expect("write");
        tokio::time::timeout(Duration::from_secs(10), changed.notified())
            .await
            .expect("list_changed within 10 s");
        reload_ms.push(t.elapsed().as_secs_f64() * 1e3);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let _ = client.cancel().await;

    println!(
        "spawn -> tools/list answered      median {:8.1} ms   (target <= 30 ms, {SPAWNS} spawns)",
        median(spawn_ms)
    ); // stdout-ok
    println!("mock PVE, the 2 requests directly  p50 {:8.0} us", mock_p50); // stdout-ok
    println!(
        "pve_vm_status through MCP          p50 {:8.0} us   p99 {:8.0} us",
        percentile(&call_us, 0.5),
        percentile(&call_us, 0.99)
    ); // stdout-ok
    println!(
        "  overhead over the mock           p50 {:8.0} us   p99 {:8.0} us   (target p50 <= 300 us, {CALLS} calls)",
        percentile(&overhead, 0.5),
        percentile(&overhead, 0.99)
    ); // stdout-ok
    println!(
        "  of which the MCP stdio round trip (ping, no script)  p50 {:8.0} us",
        median(floor_us)
    ); // stdout-ok
    println!(
        "file save -> list_changed          median {:8.1} ms   (target <= 400 ms, {RELOADS} saves)",
        median(reload_ms)
    ); // stdout-ok
    match rss {
        Some(mb) => println!(
            "server RSS after {CALLS} calls        {:8.1} MB   (target <= 25 MB)",
            mb
        ), // stdout-ok
        None => println!("server RSS after {CALLS} calls        unavailable (no /proc)"), // stdout-ok
    }
}
