//! Bursts and soak: many tool calls at once, over and over, against a slow mock PVE, with
//! the server's memory and threads printed after every round.
//!
//!     cargo build --release && cargo run --release --example burst -- [OPTIONS] [path/to/pve-mcp]
//!
//! Options: `--calls N` calls in flight per burst (2000), `--rounds R` bursts (5),
//! `--delay-ms D` the mock PVE's answer time (200), `--max-calls M` the server's
//! `PVE_MCP_MAX_CALLS` (its default when not given).
//!
//! For every round it prints calls answered (ok, busy, other), the latency p50/p99 of the
//! answers, the slowest `ping` seen while the burst ran, and the server's RSS and thread
//! count before and after. Nothing here is asserted: the numbers are for reading.

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a measuring program prints its figures on stdout and its usage errors on stderr"
)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a measuring program stops at its first failure"
)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::transport::TokioChildProcess;
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

struct Options {
    calls: usize,
    rounds: usize,
    delay: Duration,
    max_calls: Option<String>,
    binary: Option<PathBuf>,
}

fn options() -> Options {
    let mut o = Options {
        calls: 2000,
        rounds: 5,
        delay: Duration::from_millis(200),
        max_calls: None,
        binary: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut num = |what: &str| -> u64 {
            args.next().and_then(|v| v.parse().ok()).unwrap_or_else(|| {
                eprintln!("{what} takes a number");
                std::process::exit(2)
            })
        };
        match a.as_str() {
            "--calls" => o.calls = num("--calls") as usize,
            "--rounds" => o.rounds = num("--rounds") as usize,
            "--delay-ms" => o.delay = Duration::from_millis(num("--delay-ms")),
            "--max-calls" => o.max_calls = Some(num("--max-calls").to_string()),
            other => o.binary = Some(PathBuf::from(other)),
        }
    }
    o
}

fn binary(given: Option<PathBuf>) -> PathBuf {
    if let Some(p) = given {
        // The server runs in a temporary directory: make the path absolute first.
        return std::fs::canonicalize(&p).unwrap_or(p);
    }
    let exe = std::env::current_exe().unwrap_or_default();
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

/// `VmRSS` (MB) and `Threads` of a process, from /proc.
fn rss_and_threads(pid: u32) -> (f64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| -> Option<f64> {
        status
            .lines()
            .find(|l| l.starts_with(name))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    (
        field("VmRSS:").unwrap_or(0.0) / 1024.0,
        field("Threads:").unwrap_or(0.0) as u64,
    )
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn mock_pve(delay: Duration) -> MockServer {
    let pve = MockServer::start().await;
    let resources = json!({"data": [
        {"id": "qemu/100", "type": "qemu", "vmid": 100, "name": "web", "node": "pve1", "status": "running", "template": 0}
    ]});
    Mock::given(method("GET"))
        .and(path("/api2/json/cluster/resources"))
        .respond_with(ResponseTemplate::new(200).set_body_json(resources).set_delay(delay))
        .mount(&pve)
        .await;
    let status = json!({"data": {"status": "running", "vmid": 100, "name": "web", "uptime": 100,
        "cpu": 0.01, "cpus": 2, "mem": 1, "maxmem": 2, "qmpstatus": "running"}});
    Mock::given(method("GET"))
        .and(path("/api2/json/nodes/pve1/qemu/100/status/current"))
        .respond_with(ResponseTemplate::new(200).set_body_json(status).set_delay(delay))
        .mount(&pve)
        .await;
    pve
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let o = options();
    let bin = binary(o.binary);
    let pve = mock_pve(o.delay).await;
    let scripts = tempfile::tempdir().unwrap_or_else(|e| {
        eprintln!("cannot make a temporary directory: {e}");
        std::process::exit(1)
    });
    let mut cmd = tokio::process::Command::new(&bin);
    cmd.env("PVE_HOST", pve.uri())
        .env("PVE_TOKEN_ID", "bench@pve!bench")
        .env("PVE_TOKEN_SECRET", "8c3f1a2b-4d5e-4f60-8a9b-0c1d2e3f4a5b")
        .env("PVE_MCP_SCRIPTS", scripts.path())
        .env("PVE_MCP_LOG", "warn")
        .env("PVE_MCP_AUDIT_LOG", "off")
        .env("HOME", scripts.path())
        .current_dir(scripts.path());
    if let Some(m) = &o.max_calls {
        cmd.env("PVE_MCP_MAX_CALLS", m);
    }
    let (transport, _) = TokioChildProcess::builder(cmd)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            eprintln!("cannot start {}: {e}", bin.display());
            std::process::exit(1)
        });
    let pid = transport.id().unwrap_or(0);
    let client = Arc::new(().serve(transport).await.unwrap_or_else(|e| {
        eprintln!("the MCP handshake failed: {e}");
        std::process::exit(1)
    }));
    println!(
        "burst: {} calls at once, {} rounds, mock PVE answering in {:?}, PVE_MCP_MAX_CALLS={}",
        o.calls,
        o.rounds,
        o.delay,
        o.max_calls.as_deref().unwrap_or("default")
    );
    let (rss0, threads0) = rss_and_threads(pid);
    println!("before: RSS {rss0:.1} MB, {threads0} threads");
    for round in 1..=o.rounds {
        let started = Instant::now();
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let pinger = {
            let (client, done) = (client.clone(), done.clone());
            tokio::spawn(async move {
                let mut worst = Duration::ZERO;
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    let t = Instant::now();
                    if client
                        .peer()
                        .send_request(rmcp::model::ClientRequest::PingRequest(Default::default()))
                        .await
                        .is_ok()
                    {
                        worst = worst.max(t.elapsed());
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                worst
            })
        };
        let calls = (0..o.calls).map(|_| {
            let client = client.clone();
            tokio::spawn(async move {
                let t = Instant::now();
                let args = json!({"vmid": 100}).as_object().cloned().unwrap_or_default();
                let r = client
                    .call_tool(CallToolRequestParams::new("pve_vm_status").with_arguments(args))
                    .await;
                let kind = match &r {
                    Ok(res) if res.is_error != Some(true) => "ok",
                    Ok(res) => match res
                        .structured_content
                        .as_ref()
                        .and_then(|s| s.get("error"))
                        .and_then(|e| e.as_str())
                    {
                        Some("busy") => "busy",
                        _ => "error",
                    },
                    Err(_) => "protocol",
                };
                (kind, t.elapsed().as_secs_f64() * 1000.0)
            })
        });
        let results = futures_join(calls.collect()).await;
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        let worst_ping = pinger.await.unwrap_or_default();
        let wall = started.elapsed();
        let count = |k: &str| results.iter().filter(|(kind, _)| *kind == k).count();
        let mut ok: Vec<f64> = results.iter().filter(|(k, _)| *k == "ok").map(|(_, ms)| *ms).collect();
        ok.sort_by(|a, b| a.total_cmp(b));
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (rss, threads) = rss_and_threads(pid);
        println!(
            "round {round}: answered {}/{} (ok {}, busy {}, error {}, no answer {}) in {:.2} s; ok p50 {:.1} ms p99 {:.1} ms; slowest ping {:.1} ms; RSS {rss:.1} MB, {threads} threads",
            results.len() - count("protocol"),
            o.calls,
            count("ok"),
            count("busy"),
            count("error"),
            count("protocol"),
            wall.as_secs_f64(),
            percentile(&ok, 0.5),
            percentile(&ok, 0.99),
            worst_ping.as_secs_f64() * 1000.0,
        );
    }
}

/// Wait for every task; a task that panicked counts as "no answer".
async fn futures_join(tasks: Vec<tokio::task::JoinHandle<(&'static str, f64)>>) -> Vec<(&'static str, f64)> {
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        out.push(t.await.unwrap_or(("protocol", 0.0)));
    }
    out
}
