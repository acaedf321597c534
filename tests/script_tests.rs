//! `pve-mcp test`, through the real binary: the built-in tools' own tests (`scripts/tests/`),
//! and that a failing script test fails the run naming its file, line and column.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stderr,
    reason = "test code: a panic is the failure report"
)]
#![cfg(feature = "simulator")]

mod common;

use std::path::Path;
use std::process::Output;

/// `pve-mcp test ARGS…` in `cwd` with a clean environment (no PVE_* variables leak in).
async fn pve_mcp_test(cwd: &Path, args: &[&str]) -> Output {
    let home = tempfile::tempdir().unwrap();
    let mut cmd = tokio::process::Command::new(common::bin());
    cmd.current_dir(cwd)
        .env_clear()
        .env("HOME", home.path())
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .arg("test")
        .args(args);
    cmd.output().await.unwrap()
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn write(dir: &Path, rel: &str, text: &str) {
    let path = dir.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// Where CI collects every request sent to a simulated cluster, to check it against PVE's
/// schema (see `.ci/run`).
fn request_log_args() -> Vec<String> {
    match std::env::var("PVE_MCP_SIM_REQUEST_LOG") {
        Ok(p) if !p.is_empty() => vec!["--request-log".into(), p],
        _ => Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_builtin_tools_pass_their_own_tests() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut args = vec!["scripts/".to_string()];
    args.extend(request_log_args());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = pve_mcp_test(root, &args).await;
    let stdout = out(&o);
    assert!(o.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&o.stderr));
    assert!(stdout.contains(" 0 failed"), "{stdout}");
    assert!(
        !stdout.contains("no tests in"),
        "every built-in tool has tests: {stdout}"
    );
    // Every built-in tool is named by a test file, and every test file ran.
    for entry in std::fs::read_dir(root.join("scripts")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "rhai") {
            let tool = path.file_stem().unwrap().to_string_lossy().into_owned();
            assert!(
                root.join("scripts/tests").join(format!("{tool}.rhai")).is_file(),
                "scripts/tests/{tool}.rhai is missing"
            );
            assert!(stdout.contains(&format!("({tool})")), "{tool} was not tested: {stdout}");
        }
    }
    // And every built-in library, by scripts/tests/lib/NAME.rhai.
    for entry in std::fs::read_dir(root.join("scripts/lib")).unwrap() {
        let path = entry.unwrap().path();
        let lib = path.file_stem().unwrap().to_string_lossy().into_owned();
        assert!(
            root.join("scripts/tests/lib").join(format!("{lib}.rhai")).is_file(),
            "scripts/tests/lib/{lib}.rhai is missing"
        );
        assert!(
            stdout.contains(&format!("(lib/{lib})")),
            "lib/{lib} was not tested: {stdout}"
        );
    }
}

const TOOL: &str = r#"const TOOL = #{
    description: "Counts guests; throws when asked to.",
    class: "read",
    params: #{ "type": "object", "properties": #{ "boom": #{ "type": "boolean", "default": false } } },
};

fn run(args) {
    if args.boom {
        throw "boom, as asked";
    }
    #{ n: pve::guests().len() }
}
"#;

/// Line 4, column 5 is the failing `assert_eq`; line 9, column 11 the call whose tool throws
/// (Rhai places a call of `test::run` at `run`).
const TESTS: &str = r#"fn test_passes() { assert_eq(test::run().n, 9); }

fn test_fails() {
    assert_eq(test::run().n, 3, "guests");
}

fn test_the_tool_throws() {
    let ok = 1;
    test::run(#{ boom: true });
}

fn test_catching_cannot_hide_an_assertion() {
    try { assert(false, "caught?"); } catch (e) { }
}
"#;

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_test_fails_the_run_with_its_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "count.rhai", TOOL);
    write(dir.path(), "tests/count.rhai", TESTS);
    write(
        dir.path(),
        "tests/count.broken.rhai",
        "fn test_x() {\n    let = 1;\n}\n",
    );
    let o = pve_mcp_test(dir.path(), &["."]).await;
    let stdout = out(&o);
    assert_eq!(o.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("  ok    test_passes"), "{stdout}");
    assert!(
        stdout.contains("tests/count.rhai:4:5: assert_eq failed: guests: left is 9, right is 3"),
        "{stdout}"
    );
    // The test's place, and the tool's own file, line and column in the message.
    assert!(
        stdout.contains("tests/count.rhai:9:11: count: boom, as asked (at ./count.rhai:9:9)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("tests/count.rhai:13:11: assertion failed: caught?"),
        "{stdout}"
    );
    assert!(stdout.contains("tests/count.broken.rhai:2:9: "), "{stdout}");
    assert!(stdout.contains("2 files, 5 tests: 1 passed, 4 failed"), "{stdout}");

    // The passing test alone, by its file: the run passes.
    write(
        dir.path(),
        "tests/count.rhai",
        "fn test_passes() { assert_eq(test::run().n, 9); }\n",
    );
    std::fs::remove_file(dir.path().join("tests/count.broken.rhai")).unwrap();
    let o = pve_mcp_test(dir.path(), &["tests/count.rhai"]).await;
    assert!(o.status.success(), "{}", out(&o));
    assert!(out(&o).contains("1 files, 1 tests: 1 passed, 0 failed"), "{}", out(&o));
}

/// Tests run through the core: the server's mode decides what a test can call, a test's
/// own `pve::` requests are reads, and `test::requests()` shows what reached the cluster.
#[tokio::test(flavor = "multi_thread")]
async fn tests_go_through_the_gate_and_the_modes() {
    let dir = tempfile::tempdir().unwrap();
    let start = r#"const TOOL = #{
    description: "Starts guest 202.",
    class: "write",
};

fn run(args) {
    pve::wait_task(pve::post("/nodes/pve2/lxc/202/status/start"), 30).status
}
"#;
    write(dir.path(), "start_ct.rhai", start);
    write(
        dir.path(),
        "tests/start_ct.rhai",
        r#"fn test_starts_it() {
    assert_eq(test::run(), "ok");
    let writes = test::requests().filter(|q| q.method != "GET").map(|q| q.path);
    assert_eq(writes, ["/nodes/pve2/lxc/202/status/start"]);
    assert_eq(pve::get("/nodes/pve2/lxc/202/status/current").status, "running");
}

fn test_a_test_cannot_write_itself() {
    pve::post("/nodes/pve2/lxc/202/status/start");
}
"#,
    );
    write(
        dir.path(),
        "tests/start_ct.read_only.rhai",
        r#"const TEST = #{ env: #{ PVE_MCP_READ_ONLY: "true" } };

fn test_read_only_mode_does_not_list_it() {
    assert_eq(test::fails().error, "unknown_tool");
    assert_eq(test::requests(), []);
}
"#,
    );
    let o = pve_mcp_test(dir.path(), &[dir.path().to_str().unwrap()]).await;
    let stdout = out(&o);
    assert_eq!(o.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("  ok    test_starts_it"), "{stdout}");
    assert!(
        stdout.contains("  ok    test_read_only_mode_does_not_list_it"),
        "{stdout}"
    );
    assert!(stdout.contains("  FAIL  test_a_test_cannot_write_itself"), "{stdout}");
    assert!(stdout.contains("refused by the safety gate"), "{stdout}");
    assert!(stdout.contains("3 tests: 2 passed, 1 failed"), "{stdout}");
}

/// `--cluster FILE` and a test file's own `TEST.cluster` decide what the tests run against.
#[tokio::test(flavor = "multi_thread")]
async fn tests_run_against_the_cluster_they_name() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "count.rhai", TOOL);
    let one_guest = r#"{
  "nodes": [{"name": "n1", "cpus": 4, "memory": 8589934592, "rootfs": 10737418240}],
  "guests": [{"vmid": 100, "type": "qemu", "node": "n1", "status": "running", "config": {"name": "only"}}],
  "tokens": [{"id": "root@pam!t", "secret": "5e4f0c2a-9b1d-4c3e-8f7a-6d5b4c3a2b1c", "acl": [{"path": "/", "role": "Administrator"}]}]
}"#;
    write(dir.path(), "one.json", one_guest);
    write(dir.path(), "tests/clusters/one.json", one_guest);
    write(
        dir.path(),
        "tests/count.rhai",
        "fn test_one_guest() { assert_eq(test::run().n, 1); }\n",
    );
    write(
        dir.path(),
        "tests/count.own.rhai",
        "const TEST = #{ cluster: \"clusters/one.json\" };\nfn test_one_guest() { assert_eq(test::run().n, 1); }\n",
    );
    // Without --cluster, the first file meets the built-in home lab (9 guests) and fails.
    let o = pve_mcp_test(dir.path(), &["."]).await;
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    assert!(out(&o).contains("left is 9, right is 1"), "{}", out(&o));
    assert!(out(&o).contains("2 tests: 1 passed, 1 failed"), "{}", out(&o));
    let o = pve_mcp_test(dir.path(), &[".", "--cluster", "one.json"]).await;
    assert!(o.status.success(), "{}", out(&o));

    // No tests at all is a failure too, saying where tests go.
    let empty = tempfile::tempdir().unwrap();
    write(empty.path(), "count.rhai", TOOL);
    let o = pve_mcp_test(empty.path(), &["."]).await;
    assert_eq!(o.status.code(), Some(1));
    assert!(out(&o).contains("DIR/tests/NAME.rhai"), "{}", out(&o));
    let o = pve_mcp_test(empty.path(), &["count.rhai"]).await;
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("count.rhai has no tests"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}
