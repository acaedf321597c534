//! Idle CPU of the server before and after a script is edited (hot reload), with an empty
//! script directory, 1,000 scripts, one large script, and one too large to compile.
//!
//!     cargo build --release && cargo run --release --example idle_cpu -- [path/to/pve-mcp]
//!
//! For each case it starts the server, answers its `initialize`, lets it settle, and
//! prints the CPU it used (user + system time from `/proc/PID/stat`, as a percentage of
//! one core) while idle, in the first 2 s after the edit (the reload itself), how long
//! until it was quiet again (a large script takes longer to compile), and in two 3 s
//! windows after that, which should be about 0. Nothing here is asserted: the numbers
//! are for reading.

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

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const TOOL: &str = "const TOOL = #{ description: \"An idle test tool.\", class: \"read\" };\n";

fn binary(given: Option<PathBuf>) -> PathBuf {
    if let Some(p) = given {
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

/// Clock ticks per second, for `/proc/PID/stat` times.
fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// User + system CPU seconds of a process so far.
fn cpu_seconds(pid: u32, ticks: f64) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The command name is in parentheses and may hold spaces: count fields after it.
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let num = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    (num(11) + num(12)) / ticks
}

/// CPU used over `window`, as a percentage of one core.
fn cpu_percent(pid: u32, ticks: f64, window: Duration) -> f64 {
    let (c0, t0) = (cpu_seconds(pid, ticks), Instant::now());
    std::thread::sleep(window);
    let (c1, dt) = (cpu_seconds(pid, ticks), t0.elapsed().as_secs_f64());
    100.0 * (c1 - c0) / dt
}

fn tool_source(i: usize) -> String {
    format!("{TOOL}fn run(args) {{ #{{ n: {i} }} }}\n")
}

/// A tool of about `bytes` bytes within the compile limits: 200 functions of many statements.
fn large_source(bytes: usize) -> String {
    let mut s = String::from(TOOL);
    s.push_str("fn run(args) { #{ n: f0(1) } }\n");
    let per_fn = bytes / 200;
    for i in 0..200 {
        s.push_str(&format!("fn f{i}(x) {{\n"));
        let start = s.len();
        let mut j = 0;
        while s.len() - start < per_fn {
            s.push_str(&format!("  x += {j};\n"));
            j += 1;
        }
        s.push_str("  x\n}\n");
    }
    s
}

/// A tool of about `bytes` bytes of one-line functions, far more than a script may define:
/// it is refused, within the compile limits' time.
fn many_functions_source(bytes: usize) -> String {
    let mut s = String::from(TOOL);
    s.push_str("fn run(args) { #{ n: f0(1) } }\n");
    let mut i = 0;
    while s.len() < bytes {
        s.push_str(&format!("fn f{i}(x) {{ x + {i} }}\n"));
        i += 1;
    }
    s
}

struct Server {
    child: Child,
    _stdout: BufReader<std::process::ChildStdout>,
}

fn start(bin: &Path, scripts: &Path, home: &Path) -> Server {
    let mut child = Command::new(bin)
        .current_dir(home)
        .env_clear()
        .env("HOME", home)
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("PVE_HOST", "http://127.0.0.1:9")
        .env("PVE_TOKEN_ID", "mcp@pve!idle")
        .env("PVE_TOKEN_SECRET", "8c3f1a2b-4d5e-4f60-8a9b-0c1d2e3f4a5b")
        .env("PVE_MCP_SCRIPTS", scripts)
        .env("PVE_MCP_AUDIT_LOG", "off")
        .env("PVE_MCP_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            eprintln!("cannot start {}: {e}", bin.display());
            std::process::exit(2)
        });
    let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"idle","version":"1"}}}"#;
    if let Some(stdin) = child.stdin.as_mut() {
        let _ = writeln!(stdin, "{init}");
        let _ = writeln!(stdin, r#"{{"jsonrpc":"2.0","method":"notifications/initialized"}}"#);
        let _ = stdin.flush();
    }
    let mut stdout = BufReader::new(child.stdout.take().unwrap_or_else(|| std::process::exit(2)));
    let mut line = String::new();
    if stdout.read_line(&mut line).unwrap_or(0) == 0 {
        eprintln!("the server did not answer initialize");
        std::process::exit(1);
    }
    Server { child, _stdout: stdout }
}

fn case(bin: &Path, ticks: f64, name: &str, files: Vec<(String, String)>, edit: &str) {
    let home = tempfile::tempdir().unwrap_or_else(|_| std::process::exit(2));
    let scripts = home.path().join("scripts");
    let _ = std::fs::create_dir_all(&scripts);
    for (f, text) in &files {
        let _ = std::fs::write(scripts.join(f), text);
    }
    let t0 = Instant::now();
    let mut s = start(bin, &scripts, home.path());
    let startup = t0.elapsed();
    std::thread::sleep(Duration::from_secs(2));
    let pid = s.child.id();
    let idle = cpu_percent(pid, ticks, Duration::from_secs(3));
    // The edit: a changed file (or, in an empty directory, a new one).
    let path = scripts.join(edit);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|_| tool_source(0));
    let _ = std::fs::write(&path, format!("{text}// edited\n"));
    let reload = cpu_percent(pid, ticks, Duration::from_secs(2));
    // The reload may take longer than 2 s (a large script): wait, in 1 s windows of up to
    // two minutes, until the server is quiet again.
    let edited = Instant::now();
    while cpu_percent(pid, ticks, Duration::from_secs(1)) > 2.0 && edited.elapsed() < Duration::from_secs(120) {}
    let busy = edited.elapsed().as_secs_f64() + 2.0;
    let after = cpu_percent(pid, ticks, Duration::from_secs(3));
    let later = cpu_percent(pid, ticks, Duration::from_secs(3));
    println!(
        "{name:<28} start-up {:>6.0} ms   idle {idle:>5.1} %   edit+2 s {reload:>5.1} %   quiet after {busy:>4.0} s   then {after:>5.1} %, {later:>5.1} %",
        startup.as_secs_f64() * 1000.0
    );
    let _ = s.child.kill();
    let _ = s.child.wait();
}

fn main() {
    let bin = binary(std::env::args().nth(1).map(PathBuf::from));
    let ticks = clock_ticks();
    println!("CPU of {} (percent of one core)", bin.display());
    case(&bin, ticks, "0 scripts", Vec::new(), "new.rhai");
    let many = (0..1000).map(|i| (format!("t{i:04}.rhai"), tool_source(i))).collect();
    case(&bin, ticks, "1,000 scripts", many, "t0500.rhai");
    let large = large_source(900 * 1024);
    let kib = large.len() / 1024;
    case(
        &bin,
        ticks,
        &format!("one script of {kib} KiB"),
        vec![("large.rhai".into(), large)],
        "large.rhai",
    );
    let refused = many_functions_source(900 * 1024);
    let kib = refused.len() / 1024;
    case(
        &bin,
        ticks,
        &format!("one script of {kib} KiB of one-line functions (refused)"),
        vec![("many.rhai".into(), refused)],
        "many.rhai",
    );
}
