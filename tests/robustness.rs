//! The server under load and against hostile inputs: bursts of calls, deep and huge values,
//! memory hogs, bad script files, and a client that goes away.

mod common;

use std::time::Duration;

use common::*;

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

