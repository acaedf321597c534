use std::process::ExitCode;

use clap::Parser;
use pve_mcp::cli::{Cli, run};
use pve_mcp::script::budget::CountingAllocator;

/// The async runtime: one worker unless `TOKIO_WORKER_THREADS` asks for more.
///
/// The runtime only moves bytes: scripts run on threads of their own, stdin and stdout have
/// a thread each (which also parse and encode the messages), so a second worker would only
/// add wake-ups between the two (a third more thread switches per call, measured).
fn runtime() -> tokio::runtime::Builder {
    let mut b = tokio::runtime::Builder::new_multi_thread();
    b.enable_all();
    if std::env::var_os("TOKIO_WORKER_THREADS").is_none() {
        b.worker_threads(1);
    }
    b
}

/// Counts each thread's allocations, for the scripts' memory budgets.
#[global_allocator]
static ALLOC: CountingAllocator = CountingAllocator;

#[allow(
    clippy::print_stderr,
    reason = "why the process ends is the last line on stderr, plain, for whoever started it"
)]
fn main() -> ExitCode {
    let cli = Cli::parse();
    // stdout belongs to the MCP protocol: every log line goes to stderr.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PVE_MCP_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let rt = match runtime().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("pve-mcp: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = rt.block_on(async {
        match run(cli).await {
            Ok(code) => code,
            Err(exit) => {
                eprintln!("pve-mcp: {}", exit.message);
                ExitCode::from(exit.code)
            }
        }
    });
    // A pending read on stdin cannot be cancelled; do not wait for it.
    rt.shutdown_timeout(std::time::Duration::from_millis(100));
    code
}
