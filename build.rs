//! Embeds the tools and libraries under `scripts/` (not its `tests/`) into the binary, so
//! the built-in tools work wherever the binary goes (`cargo install` included).

#![allow(
    clippy::expect_used,
    clippy::print_stdout,
    reason = "a build script reports failure by panicking and talks to cargo on stdout"
)]

use std::fs;
use std::path::{Path, PathBuf};

fn collect(root: &Path, dir: &Path, out: &mut Vec<(String, PathBuf)>) {
    let entries = fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()));
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            // scripts/tests/ holds the built-in tools' tests (`pve-mcp test scripts/`): they
            // are not part of the binary.
            if dir == root && path.file_name().is_some_and(|n| n == "tests") {
                continue;
            }
            collect(root, &path, out);
        } else if path.extension().is_some_and(|e| e == "rhai") {
            let rel = path
                .strip_prefix(root)
                .expect("walked paths lie under the root")
                .to_string_lossy()
                .replace('\\', "/");
            out.push((rel, path));
        }
    }
}

fn main() {
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let root = Path::new(&manifest_dir).join("scripts");
    println!("cargo:rerun-if-changed=scripts");
    let mut files = Vec::new();
    collect(&root, &root, &mut files);
    files.sort();
    let mut code = String::from(
        "/// Built-in scripts: (path below scripts/, source).\npub(crate) static BUILTIN_SCRIPTS: &[(&str, &str)] = &[\n",
    );
    for (rel, abs) in files {
        code.push_str(&format!(
            "    ({rel:?}, include_str!({:?})),\n",
            abs.display().to_string()
        ));
    }
    code.push_str("];\n");
    let out = Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("builtin_scripts.rs");
    fs::write(&out, code).unwrap_or_else(|e| panic!("cannot write {}: {e}", out.display()));
}
