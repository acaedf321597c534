//! The server under load and against hostile inputs: bursts of calls, deep and huge values,
//! memory hogs, bad script files, and a client that goes away.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stderr,
    reason = "test code: a panic is the failure report"
)]

mod common;

use std::time::Duration;

use common::*;
use rmcp::model::CallToolRequestParams;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer};

/// A user script directory holding the given `(file name, source)` pairs.
fn scripts(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        let p = dir.path().join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    dir
}

fn tool(body: &str) -> String {
    format!("const TOOL = #{{ description: \"A test tool.\", class: \"read\" }};\nfn run(args) {{\n{body}\n}}\n")
}

async fn within<T>(what: &str, secs: u64, fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(secs), fut)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer within {secs} s"))
}

async fn assert_still_answers(s: &Server) {
    let r = within("pve_list_vms", 60, s.call("pve_list_vms", json!({}))).await;
    assert!(!is_error(&r), "the server must keep answering: {}", text(&r));
}

#[tokio::test(flavor = "multi_thread")]
async fn two_thousand_calls_at_once_are_all_answered() {
    let slow = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api2/json/nodes"))
        .respond_with(data(json!([{"node": "pve1", "status": "online"}])).set_delay(Duration::from_secs(3)))
        .mount(&slow)
        .await;
    let s = start(
        &slow.uri(),
        scripts(&[("probe.rhai", &tool("#{ nodes: pve::get(\"/nodes\").len() }"))]),
        &[],
    )
    .await;
    const CALLS: usize = 2_000;
    let started = std::time::Instant::now();
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..CALLS {
        let peer = s.client.peer().clone();
        calls.spawn(async move { peer.call_tool(CallToolRequestParams::new("probe")).await });
    }
    // The server keeps answering other requests during the burst.
    let listed = within("tools/list during the burst", 120, s.client.list_all_tools()).await;
    assert!(listed.unwrap().iter().any(|t| t.name == "probe"));
    let (mut ok, mut busy) = (0, 0);
    within("the burst", 300, async {
        while let Some(joined) = calls.join_next().await {
            let r = joined
                .unwrap()
                .expect("every call gets an answer, not a protocol error");
            if !is_error(&r) {
                assert_eq!(structured(&r)["nodes"], 1);
                ok += 1;
            } else {
                let t = text(&r);
                assert!(t.contains("PVE_MCP_MAX_CALLS") && t.contains("retry"), "{t}");
                assert_eq!(structured(&r)["error"], "busy");
                busy += 1;
            }
        }
    })
    .await;
    eprintln!(
        "{CALLS} calls: {ok} answered, {busy} busy, in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(ok + busy, CALLS);
    assert!(ok >= 64, "at least one slot's worth of calls ran: {ok}");
    let r = within("a call after the burst", 60, s.call("probe", json!({}))).await;
    assert!(!is_error(&r), "{}", text(&r));
}

#[tokio::test(flavor = "multi_thread")]
async fn deep_values_are_refused_and_the_server_lives() {
    let pve = fake_pve().await;
    let deep = "let a = []; for i in 0..6000 { a = [take(a)]; }";
    let s = start(
        &pve.uri(),
        scripts(&[
            ("deep_result.rhai", &tool(&format!("{deep} a"))),
            (
                "deep_param.rhai",
                &tool(&format!("{deep} pve::get(\"/nodes\", #{{ x: a }})")),
            ),
            ("deep_throw.rhai", &tool(&format!("{deep} throw a;"))),
        ]),
        &[],
    )
    .await;
    let r = within("deep_result", 120, s.call("deep_result", json!({}))).await;
    assert!(is_error(&r), "{}", text(&r));
    assert!(text(&r).contains("nested more than 128 levels"), "{}", text(&r));
    let r = within("deep_param", 120, s.call("deep_param", json!({}))).await;
    assert!(is_error(&r), "{}", text(&r));
    assert!(
        text(&r).contains("request parameters cannot be sent") && text(&r).contains("nested more than 128"),
        "{}",
        text(&r)
    );
    let r = within("deep_throw", 120, s.call("deep_throw", json!({}))).await;
    assert!(
        is_error(&r) && text(&r).contains("nested more than 128"),
        "{}",
        text(&r)
    );
    assert_still_answers(&s).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_huge_result_is_refused_with_what_to_narrow() {
    let pve = fake_pve().await;
    let s = start(
        &pve.uri(),
        scripts(&[(
            "huge.rhai",
            &tool("let s = \"x\"; s.pad(2_000_000, 'x'); let m = #{}; for i in 0..100 { m[`k${i}`] = s; } m"),
        )]),
        &[],
    )
    .await;
    let r = within("huge", 120, s.call("huge", json!({}))).await;
    assert!(is_error(&r), "a 200 MB answer must be refused");
    let t = text(&r);
    assert!(t.contains("PVE_MCP_MAX_RESULT_BYTES") && t.contains("narrow"), "{t}");
    assert!(t.len() < 2_000, "the error is short");
    assert_eq!(structured(&r)["error"], "result_too_large");
    assert_still_answers(&s).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_script_cannot_take_more_memory_than_its_budget() {
    let pve = fake_pve().await;
    let s = start(
        &pve.uri(),
        scripts(&[
            // Map keys are not counted by Rhai's own limits.
            (
                "keys.rhai",
                &tool(
                    "let s = \"x\"; s.pad(1_000_000, 'x'); let m = #{}; for i in 0..100000 { m[s + i] = 1; } m.len()",
                ),
            ),
            ("strpad.rhai", &tool("let s = \"x\"; s.pad(1 << 40, 'y'); s.len()")),
            ("arrpad.rhai", &tool("let a = []; a.pad(1 << 40, 0); a.len()")),
            ("blob.rhai", &tool("blob(1 << 40).len()")),
            ("doubling.rhai", &tool("let s = \"0123456789\"; loop { s += s; }")),
        ]),
        &[("PVE_MCP_SCRIPT_MEMORY", "64")],
    )
    .await;
    for name in ["keys", "strpad", "arrpad", "blob", "doubling"] {
        let r = within(name, 120, s.call(name, json!({}))).await;
        assert!(is_error(&r), "{name}: {}", text(&r));
        assert!(text(&r).contains("PVE_MCP_SCRIPT_MEMORY"), "{name}: {}", text(&r));
    }
    assert_still_answers(&s).await;
}

/// Hostile: an answer larger than the call's memory budget is not read, whatever asked for it
/// (a huge log, an endless body from a broken proxy): the call ends, uncatchably, and the
/// server goes on. Read whole, it would hold the server's memory, not the script's.
#[tokio::test(flavor = "multi_thread")]
async fn an_answer_past_the_memory_budget_is_not_read() {
    let pve = fake_pve().await;
    let line = "x".repeat(1000);
    let lines: Vec<Value> = (0..24_000).map(|n| json!({"n": n, "t": line})).collect();
    Mock::given(method("GET"))
        .and(path("/api2/json/nodes/pve1/syslog"))
        .respond_with(data(json!(lines)))
        .mount(&pve)
        .await;
    // Two answers of 5 MB, each within the budget, together past it.
    Mock::given(method("GET"))
        .and(path("/api2/json/nodes/pve1/tasks"))
        .respond_with(data(json!(lines[..5_000])))
        .mount(&pve)
        .await;
    let get = "pve::get(\"/nodes/pve1/syslog\", #{limit: 100000000}).len()";
    let caught = "try { pve::get(\"/nodes/pve1/syslog\").len() } catch (e) { \"caught: \" + e.message }";
    let fanned = "pve::get_all([\"/nodes/pve1/syslog\", \"/nodes/pve1/syslog\"]).len()";
    let together = "pve::get_all([\"/nodes/pve1/tasks\", \"/nodes/pve1/tasks\"]).len()";
    let s = start(
        &pve.uri(),
        scripts(&[
            ("get.rhai", &tool(get)),
            ("caught.rhai", &tool(caught)),
            ("fanned.rhai", &tool(fanned)),
            ("together.rhai", &tool(together)),
        ]),
        &[("PVE_MCP_SCRIPT_MEMORY", "8")],
    )
    .await;
    for name in ["get", "caught", "fanned", "together"] {
        let r = within(name, 120, s.call(name, json!({}))).await;
        assert!(
            is_error(&r),
            "{name}: a 24 MB answer under an 8 MiB budget: {}",
            text(&r)
        );
        assert!(
            text(&r).contains("was not read") && text(&r).contains("PVE_MCP_SCRIPT_MEMORY"),
            "{name}: refused while reading, not after: {}",
            text(&r)
        );
    }
    assert_still_answers(&s).await;
}

/// Hostile: a PVE answer a script keeps as rows counts toward its memory budget, as the
/// copy `pve::get` makes does; hoarding answers stops the script, not the server.
#[tokio::test(flavor = "multi_thread")]
async fn rows_a_script_holds_count_toward_its_budget() {
    let pve = fake_pve().await;
    let pad = "x".repeat(80);
    let rows: Vec<Value> = (0..20_000)
        .map(|i| json!({"volid": format!("local:iso/image-{i:05}-{pad}.iso"), "size": i, "content": "iso"}))
        .collect();
    Mock::given(method("GET"))
        .and(path("/api2/json/nodes/pve1/storage/local/content"))
        .respond_with(data(json!(rows)))
        .mount(&pve)
        .await;
    // One native call must not multiply a value into every row past the budget (here 20,000
    // copies of 64 KiB, 1.3 GB): it is refused before anything is copied.
    let spread = "let r = pve::get_rows(\"/nodes/pve1/storage/local/content\"); let s = \"x\"; s.pad(65536, 'x'); r.set_where(#{}, \"blob\", s); r.len()";
    let hoard =
        "let keep = []; for i in 0..40 { keep.push(pve::get_rows(\"/nodes/pve1/storage/local/content\")); } keep.len()";
    let one = "pve::get_rows(\"/nodes/pve1/storage/local/content\").len()";
    // Answers read and let go, one after another: what was freed is not charged.
    let reread = "let n = 0; for i in 0..12 { n += pve::get_rows(\"/nodes/pve1/storage/local/content\").len(); } for i in 0..8 { n += pve::get(\"/nodes/pve1/storage/local/content\").len(); } n";
    let s = start(
        &pve.uri(),
        scripts(&[
            ("hoard.rhai", &tool(hoard)),
            ("reread.rhai", &tool(reread)),
            ("one.rhai", &tool(one)),
            ("spread.rhai", &tool(spread)),
        ]),
        &[("PVE_MCP_SCRIPT_MEMORY", "64")],
    )
    .await;
    let r = within("hoard", 120, s.call("hoard", json!({}))).await;
    assert!(
        is_error(&r),
        "40 answers of 20,000 rows fit no 64 MiB budget: {}",
        text(&r)
    );
    assert!(text(&r).contains("PVE_MCP_SCRIPT_MEMORY"), "{}", text(&r));
    let r = within("spread", 120, s.call("spread", json!({}))).await;
    assert!(is_error(&r), "{}", text(&r));
    assert!(
        text(&r).contains("rows.set_where") && text(&r).contains("PVE_MCP_SCRIPT_MEMORY"),
        "refused by set_where itself, not noticed after the copy: {}",
        text(&r)
    );
    let r = within("reread", 120, s.call("reread", json!({}))).await;
    assert!(
        !is_error(&r),
        "answers let go of are not charged to the budget: {}",
        text(&r)
    );
    assert!(text(&r).contains("400000"), "every answer was read: {}", text(&r));
    // One answer fits, and what it held is given back when the call ends.
    for _ in 0..3 {
        let r = within("one", 120, s.call("one", json!({}))).await;
        assert!(!is_error(&r), "{}", text(&r));
    }
    assert_still_answers(&s).await;
}

#[cfg(feature = "simulator")]
#[tokio::test(flavor = "multi_thread")]
async fn ten_thousand_guests_and_fifty_thousand_volumes_list() {
    use pve_mcp::sim::spec::ClusterSpec;
    let spec = ClusterSpec::default_cluster()
        .with_guest_copies(10_000, 1_000)
        .with_iso_volumes("local", 50_000);
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), serde_json::to_vec(&spec).unwrap()).unwrap();
    let sim = simulator_with(spec).await;
    let s = start_on(&sim, None, &[]).await;
    let t0 = std::time::Instant::now();
    let r = within("pve_list_vms", 240, s.call("pve_list_vms", json!({}))).await;
    eprintln!("pve_list_vms of 10,000 guests: {:.1} s", t0.elapsed().as_secs_f64());
    assert!(!is_error(&r), "{}", text(&r));
    assert_eq!(structured(&r)["count"], 10_000);
    // 50,000 volumes make about 9 MB of JSON: more than an MCP line of rmcp's client holds
    // (text and structured content), so they are listed through `pve-mcp call`.
    let home = tempfile::tempdir().unwrap();
    let mut cmd = command("http://127.0.0.1:9", home.path(), home.path(), &[]);
    cmd.arg("--simulate").arg("--cluster").arg(file.path()).args([
        "call",
        "pve_storage_content",
        r#"{"storage": "local", "node": "pve1"}"#,
    ]);
    let o = within("pve-mcp call pve_storage_content", 240, cmd.output())
        .await
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let listed: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(listed["count"], 50_000);
}

#[tokio::test(flavor = "multi_thread")]
async fn library_top_level_code_has_a_deadline() {
    let pve = fake_pve().await;
    let s = within(
        "start-up with a slow library",
        120,
        start(
            &pve.uri(),
            scripts(&[
                (
                    "lib/slow.rhai",
                    "let a = [];\na.pad(100000, 1);\nloop { a.reverse(); }\nfn f() { 1 }\n",
                ),
                (
                    "uses_slow.rhai",
                    "import \"lib/slow\" as slow;\nconst TOOL = #{ description: \"x\", class: \"read\" };\nfn run(args) { slow::f() }\n",
                ),
            ]),
            &[],
        ),
    )
    .await;
    assert!(!s.tool_names().await.contains(&"uses_slow".to_string()));
    s.wait_for_log("lib/slow.rhai").await;
    assert!(s.stderr_text().contains("ran for more than"), "{}", s.stderr_text());
    assert_still_answers(&s).await;
}

/// Scripts built to make Rhai's parser slow, each under the 1 MiB size cap: its lookups of
/// functions and of variables are linear scans, so thousands of them take minutes.
fn slow_to_compile() -> Vec<(&'static str, String)> {
    let header = "const TOOL = #{ description: \"A test tool.\", class: \"read\" };\n";
    let fns: String = (0..20_000).map(|i| format!("fn f{i}(x) {{ x + {i} }}\n")).collect();
    let lets: String = (0..20_000).map(|i| format!("  let a{i} = args;\n")).collect();
    let params: String = (0..60_000).map(|i| format!(", p{i}")).collect();
    vec![
        ("many_fns.rhai", format!("{header}fn run(args) {{ f0(1) }}\n{fns}")),
        ("many_lets.rhai", format!("{header}fn run(args) {{\n{lets}  1\n}}\n")),
        (
            "many_params.rhai",
            format!("{header}fn run(args) {{ 1 }}\nfn g(a{params}) {{ a }}\n"),
        ),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn scripts_too_slow_to_compile_are_refused_and_the_others_load() {
    let pve = fake_pve().await;
    let slow = slow_to_compile();
    let mut files: Vec<(&str, &str)> = slow.iter().map(|(n, t)| (*n, t.as_str())).collect();
    let hello = tool("#{ hi: 1 }");
    files.push(("hello.rhai", &hello));
    let s = within(
        "start-up beside scripts that are slow to compile",
        120,
        start(&pve.uri(), scripts(&files), &[]),
    )
    .await;
    let names = within("tools/list", 60, s.tool_names()).await;
    assert!(names.contains(&"hello".to_string()), "{names:?}");
    for (file, _) in &slow {
        let tool = file.trim_end_matches(".rhai");
        assert!(
            !names.contains(&tool.to_string()),
            "{tool} must not be served: {names:?}"
        );
    }
    s.wait_for_log("many_fns.rhai").await;
    s.wait_for_log("many_lets.rhai").await;
    s.wait_for_log("many_params.rhai").await;
    let log = s.stderr_text();
    assert!(log.contains("more than 256 functions"), "{log}");
    assert!(log.contains("more than 1000 variables"), "{log}");
    assert!(log.contains("took more than"), "{log}");
    // A reload with a new slow script beside a new good one loads the good one.
    std::fs::write(s.scripts.path().join("more_fns.rhai"), &slow[0].1).unwrap();
    std::fs::write(s.scripts.path().join("hello2.rhai"), tool("#{ hi: 2 }")).unwrap();
    s.wait_for("list_changed after adding scripts", |e| e.list_changed >= 1)
        .await;
    within("reload", 60, async {
        while !s.tool_names().await.contains(&"hello2".to_string()) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert_still_answers(&s).await;
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread")]
async fn a_fifo_or_a_device_among_the_scripts_is_skipped() {
    let pve = fake_pve().await;
    let dir = scripts(&[("hello.rhai", &tool("#{ hi: 1 }"))]);
    let fifo = dir.path().join("fifo.rhai");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    std::os::unix::fs::symlink("/dev/zero", dir.path().join("zero.rhai")).unwrap();
    let s = within("initialize", 60, start(&pve.uri(), dir, &[])).await;
    let names = within("tools/list", 60, s.tool_names()).await;
    assert!(names.contains(&"hello".to_string()), "{names:?}");
    s.wait_for_log("zero.rhai: is not a regular file").await;
    s.wait_for_log("fifo.rhai: is not a regular file").await;
    // A reload is not blocked by them either.
    std::fs::write(s.scripts.path().join("hello2.rhai"), tool("#{ hi: 2 }")).unwrap();
    s.wait_for("list_changed after adding a script", |e| e.list_changed >= 1)
        .await;
    assert!(s.tool_names().await.contains(&"hello2".to_string()));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_oversized_tool_name_is_not_echoed() {
    let pve = fake_pve().await;
    let s = start(&pve.uri(), tempfile::tempdir().unwrap(), &[]).await;
    let name = "x".repeat(10 * 1024 * 1024);
    let err = within(
        "a 10 MB tool name",
        120,
        s.client.call_tool(CallToolRequestParams::new(name)),
    )
    .await
    .expect_err("an unknown tool is a protocol error");
    let msg = err.to_string();
    assert!(msg.contains("does not exist"), "{}", &msg[..msg.len().min(300)]);
    assert!(msg.len() < 2_000, "the error echoes {} bytes", msg.len());
    assert!(s.stderr_text().len() < 1_000_000, "the log does not hold the name");
    assert_still_answers(&s).await;
}

/// The binary with raw pipes, for what rmcp's client does not let a test do.
struct Raw {
    child: tokio::process::Child,
    stdin: Option<tokio::process::ChildStdin>,
    stdout: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    stderr: std::path::PathBuf,
    _home: tempfile::TempDir,
    _scripts: tempfile::TempDir,
}

async fn raw(pve: &str, scripts: tempfile::TempDir) -> Raw {
    let home = tempfile::tempdir().unwrap();
    let stderr = home.path().join("stderr.log");
    let mut cmd = command(pve, scripts.path(), home.path(), &[]);
    cmd.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .kill_on_drop(true);
    let mut child = cmd.spawn().unwrap();
    let stdin = child.stdin.take();
    let stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    Raw {
        child,
        stdin,
        stdout,
        stderr,
        _home: home,
        _scripts: scripts,
    }
}

impl Raw {
    async fn send(&mut self, msg: Value) {
        let stdin = self.stdin.as_mut().unwrap();
        stdin.write_all(format!("{msg}\n").as_bytes()).await.unwrap();
        stdin.flush().await.unwrap();
    }

    async fn next(&mut self) -> Option<Value> {
        let line = self.stdout.next_line().await.unwrap()?;
        Some(serde_json::from_str(&line).unwrap())
    }

    fn stderr_text(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn closing_stdin_cancels_the_calls_in_flight_and_exits() {
    let pve = fake_pve().await;
    let mut p = raw(
        &pve.uri(),
        scripts(&[("sleeper.rhai", &tool("pve::log(\"sleeping\"); pve::sleep(120); 1"))]),
    )
    .await;
    p.send(json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}))
        .await;
    let init = within("initialize", 60, p.next()).await.unwrap();
    assert_eq!(init["id"], 1, "{init}");
    p.send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
        .await;
    p.send(json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "sleeper", "arguments": {}}}))
        .await;
    for _ in 0..200 {
        if p.stderr_text().contains("sleeper: sleeping") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(p.stderr_text().contains("sleeper: sleeping"), "{}", p.stderr_text());
    drop(p.stdin.take());
    // The call in flight is answered (cancelled) before the server exits.
    let mut answer = None;
    while let Some(msg) = within("stdout", 60, p.next()).await {
        if msg["id"] == 2 {
            answer = Some(msg);
        }
    }
    let answer = answer.unwrap_or_else(|| panic!("the call in flight got no answer:\n{}", p.stderr_text()));
    assert_eq!(answer["result"]["isError"], true, "{answer}");
    assert!(
        answer.to_string().contains("cancelled"),
        "{answer}\n{}",
        p.stderr_text()
    );
    let status = within("exit", 60, p.child.wait()).await.unwrap();
    assert!(status.success(), "{status:?}");
    assert!(!p.stderr_text().contains("timed out draining"), "{}", p.stderr_text());
}

#[tokio::test(flavor = "multi_thread")]
async fn stdin_closed_before_initialize_is_a_clean_exit() {
    let pve = fake_pve().await;
    let mut p = raw(&pve.uri(), tempfile::tempdir().unwrap()).await;
    drop(p.stdin.take());
    let status = within("exit", 60, p.child.wait()).await.unwrap();
    assert_eq!(status.code(), Some(0), "{}", p.stderr_text());
    assert!(!p.stderr_text().contains("handshake failed"), "{}", p.stderr_text());
    assert!(within("stdout", 10, p.next()).await.is_none(), "nothing on stdout");
}

impl Raw {
    async fn send_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        stdin.write_all(line.as_bytes()).await.unwrap();
        stdin.write_all(b"\n").await.unwrap();
        stdin.flush().await.unwrap();
    }

    async fn handshake(&mut self) {
        self.send(json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}))
            .await;
        let init = within("initialize", 60, self.next()).await.unwrap();
        assert_eq!(init["id"], 0, "{init}");
        self.send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await;
    }
}

/// Raw lines that rmcp cannot take: each request among them is answered with its id and
/// the right code, and the server keeps answering after them.
#[tokio::test(flavor = "multi_thread")]
async fn every_request_on_the_wire_gets_an_answer() {
    let pve = fake_pve().await;
    let mut p = raw(&pve.uri(), tempfile::tempdir().unwrap()).await;
    p.handshake().await;
    let deep = format!(
        r#"{{"jsonrpc":"2.0","id":13,"method":"tools/call","params":{{"name":"pve_list_vms","arguments":{{"a":{}{}}}}}}}"#,
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    let lines: Vec<(Value, i64, String)> = vec![
        (Value::Null, -32700, "this is not JSON".into()),
        (json!(10), -32700, r#"{"jsonrpc":"2.0","id":10,"method":"tools/list""#.into()),
        (
            json!(11),
            -32602,
            r#"{"jsonrpc":"2.0","id":11,"method":"tools/call","params":{"name":"pve_list_vms","arguments":{"node":"\ud800"}}}"#.into(),
        ),
        (
            json!(12),
            -32602,
            r#"{"jsonrpc":"2.0","id":12,"method":"tools/call","params":{"name":"pve_list_vms","arguments":{"n":1e400}}}"#.into(),
        ),
        (json!(13), -32602, deep),
        (
            json!(14),
            -32602,
            r#"{"jsonrpc":"2.0","id":14,"method":"tools/call","params":{"name":5}}"#.into(),
        ),
        (
            json!("fifteen"),
            -32602,
            r#"{"jsonrpc":"2.0","id":"fifteen","method":"tools/list","params":{"cursor":"bogus"}}"#.into(),
        ),
    ];
    for (_, _, line) in &lines {
        p.send_line(line).await;
    }
    p.send_line(r#"[{"jsonrpc":"2.0","id":16,"method":"ping"},{"jsonrpc":"2.0","id":17,"method":"tools/list"}]"#)
        .await;
    p.send(json!({"jsonrpc": "2.0", "id": 18, "method": "ping"})).await;
    let mut answers: Vec<Value> = Vec::new();
    let mut batch: Option<Value> = None;
    // JSON-RPC does not order answers: wait for every id (and the batch), whatever comes first.
    let expected: Vec<Value> = lines.iter().map(|(id, _, _)| id.clone()).chain([json!(18)]).collect();
    while batch.is_none() || !expected.iter().all(|id| answers.iter().any(|a| a["id"] == *id)) {
        let msg = within("an answer", 60, p.next())
            .await
            .unwrap_or_else(|| panic!("stdout ended:\n{}", p.stderr_text()));
        if msg.is_array() {
            batch = Some(msg);
        } else {
            answers.push(msg);
        }
    }
    for (id, code, line) in &lines {
        let a = answers
            .iter()
            .find(|a| a["id"] == *id)
            .unwrap_or_else(|| panic!("no answer for id {id} ({}…): {answers:?}", &line[..line.len().min(80)]));
        assert_eq!(a["error"]["code"], *code, "id {id}: {a}");
        assert!(a["error"]["message"].as_str().unwrap().len() < 1_000, "{a}");
    }
    let batch = batch.expect("the batch is answered");
    let ids: Vec<&Value> = batch.as_array().unwrap().iter().map(|e| &e["id"]).collect();
    assert_eq!(ids, [&json!(16), &json!(17)], "{batch}");
    assert!(
        batch.as_array().unwrap().iter().all(|e| e["error"]["code"] == -32600),
        "{batch}"
    );
    let pong = answers.iter().find(|a| a["id"] == 18).unwrap();
    assert_eq!(pong["result"], json!({}), "{pong}");
    // A tool call still works.
    p.send(json!({"jsonrpc": "2.0", "id": 19, "method": "tools/call", "params": {"name": "pve_list_vms", "arguments": {}}}))
        .await;
    loop {
        let msg = within("tools/call", 60, p.next()).await.unwrap();
        if msg["id"] == 19 {
            assert_eq!(msg["result"]["structuredContent"]["count"], 3, "{msg}");
            break;
        }
    }
    drop(p.stdin.take());
    let status = within("exit", 60, p.child.wait()).await.unwrap();
    assert!(status.success(), "{status:?}\n{}", p.stderr_text());
}

#[tokio::test(flavor = "multi_thread")]
async fn stdin_closed_after_discover_is_a_clean_exit() {
    let pve = fake_pve().await;
    let mut p = raw(&pve.uri(), tempfile::tempdir().unwrap()).await;
    p.send(
        json!({"jsonrpc": "2.0", "id": 1, "method": "server/discover", "params": {"_meta": {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": {}}}}),
    )
    .await;
    let found = within("server/discover", 60, p.next()).await.unwrap();
    assert_eq!(found["id"], 1, "{found}");
    assert!(found.get("result").is_some(), "{found}");
    drop(p.stdin.take());
    let status = within("exit", 60, p.child.wait()).await.unwrap();
    assert_eq!(status.code(), Some(0), "{}", p.stderr_text());
    assert!(!p.stderr_text().contains("handshake failed"), "{}", p.stderr_text());
}

#[cfg(feature = "simulator")]
#[tokio::test(flavor = "multi_thread")]
async fn ten_thousand_tasks_list() {
    use pve_mcp::sim::spec::{ClusterSpec, TaskSpec};
    let mut spec = ClusterSpec::default_cluster();
    let base = 1_760_000_000i64;
    let types = ["qmstart", "vzdump", "qmsnapshot", "vzstart"];
    spec.tasks = (0..10_000i64)
        .map(|i| TaskSpec {
            node: "pve1".into(),
            kind: types[(i % 4) as usize].into(),
            id: (100 + i % 7).to_string(),
            user: "root@pam".into(),
            starttime: base + i * 60,
            duration: 5,
            status: Some(if i % 10 == 3 {
                "unable to find configuration file".into()
            } else {
                "OK".into()
            }),
            log: Vec::new(),
        })
        .collect();
    let sim = simulator_with(spec).await;
    let s = start_on(&sim, None, &[]).await;
    let r = within(
        "10,000 tasks of a node",
        240,
        s.call("pve_list_tasks", json!({"node": "pve1", "limit": 10_000})),
    )
    .await;
    assert!(!is_error(&r), "{}", text(&r));
    let listed = structured(&r);
    assert_eq!(listed["count"], 10_000);
    let tasks = listed["tasks"].as_array().unwrap();
    assert_eq!(tasks[0]["starttime"], base + 9_999 * 60, "newest first");
    assert_eq!(tasks[9_999]["starttime"], base, "oldest last");
    assert_eq!(tasks.iter().filter(|t| t["status"] == "failed").count(), 1_000);
    let failed = s
        .ok(
            "pve_list_tasks",
            json!({"node": "pve1", "vmid": 103, "errors_only": true, "limit": 10_000}),
        )
        .await;
    let rows = failed["tasks"].as_array().unwrap();
    assert!(!rows.is_empty());
    assert!(
        rows.iter().all(|t| t["id"] == "103" && t["status"] == "failed"),
        "{failed}"
    );
    // Cluster-wide, PVE lists each node's running tasks and newest finished ones, up to 25.
    let all = s.ok("pve_list_tasks", json!({"limit": 10_000})).await;
    assert_eq!(all["count"], 25, "{}", all["count"]);
    let oldest = tasks[9_999]["upid"].as_str().unwrap();
    let st = s.ok("pve_task_status", json!({"upid": oldest})).await;
    assert_eq!(st["status"], "ok", "{st}");
}
