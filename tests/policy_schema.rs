//! Every endpoint of the official PVE API schema has a class in the core's policy table.
//! The schema comes from PVE_API_SCHEMA (`.ci/run` sets it); the 9.x schema beside it is
//! checked too when present.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use pve_mcp::gate::{Class, Classification, Method, classify};
use serde_json::{Map, Value};

fn walk(node: &Value, out: &mut Vec<(String, String)>) {
    if let (Some(path), Some(info)) = (
        node.get("path").and_then(Value::as_str),
        node.get("info").and_then(Value::as_object),
    ) {
        for m in info.keys() {
            out.push((m.clone(), path.to_string()));
        }
    }
    for child in node.get("children").and_then(Value::as_array).into_iter().flatten() {
        walk(child, out);
    }
}

fn endpoints(file: &Path) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
    let roots: Value = serde_json::from_str(&text).expect("the schema is JSON");
    let mut out = Vec::new();
    for r in roots.as_array().expect("the schema is a list of root nodes") {
        walk(r, &mut out);
    }
    out
}

/// A concrete value for each path parameter.
fn sample(param: &str) -> &'static str {
    match param {
        "node" => "pve1",
        "vmid" => "100",
        "upid" => "UPID:pve1:0012EBC1:05E31C50:66C27520:qmstart:100:root@pam:",
        "volume" => "local:backup/vzdump-qemu-100.vma.zst",
        "snapname" => "before-upgrade",
        "storage" => "local",
        _ => "x",
    }
}

fn segments(path: &str) -> Vec<String> {
    path.trim_start_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            Some(p) => sample(p).to_string(),
            None => s.to_string(),
        })
        .collect()
}

fn schema_files() -> Option<Vec<PathBuf>> {
    let Some(main) = std::env::var_os("PVE_API_SCHEMA") else {
        eprintln!("PVE_API_SCHEMA is not set: the official-schema policy check is SKIPPED (.ci/run sets it)");
        return None;
    };
    let main = PathBuf::from(main);
    assert!(main.is_file(), "PVE_API_SCHEMA={} does not exist", main.display());
    let mut files = vec![main.clone()];
    let pve9 = main.with_file_name("apidata-pve9.json");
    if pve9.is_file() && pve9 != main {
        files.push(pve9);
    }
    Some(files)
}

#[test]
fn every_official_endpoint_has_a_class() {
    let Some(files) = schema_files() else { return };
    for file in files {
        let eps = endpoints(&file);
        assert!(eps.len() > 500, "{} lists only {} endpoints", file.display(), eps.len());
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        let mut unknown = Vec::new();
        for (m, path) in &eps {
            let method = match m.as_str() {
                "GET" => Method::Get,
                "POST" => Method::Post,
                "PUT" => Method::Put,
                "DELETE" => Method::Delete,
                other => panic!("unexpected method {other} for {path}"),
            };
            if path == "/" {
                continue; // the API root index: not an endpoint a tool needs
            }
            let c = classify(method, &segments(path), &Map::new());
            let key = match c {
                Classification::Class(c) => c.as_str().to_string(),
                Classification::Forbidden(_) => "forbidden".into(),
                Classification::Unknown => {
                    unknown.push(format!("{m} {path}"));
                    "unknown".into()
                }
            };
            *counts.entry(key).or_default() += 1;
            // Spot rules that must hold across the whole schema.
            if path.starts_with("/access") && method != Method::Get {
                assert!(
                    matches!(c, Classification::Forbidden(_)),
                    "{m} {path} must be forbidden"
                );
            }
            if method == Method::Get && !path.contains("agent/") && !path.contains("websocket") {
                assert_eq!(c, Classification::Class(Class::Read), "{m} {path} should be a read");
            }
            if path.ends_with("/agent/exec") || path.ends_with("/agent/file-write") {
                assert_eq!(c, Classification::Class(Class::Exec), "{m} {path}");
            }
        }
        eprintln!("{}: {} endpoints: {counts:?}", file.display(), eps.len());
        assert!(
            unknown.is_empty(),
            "{} unclassified endpoints in {}:\n{}",
            unknown.len(),
            file.display(),
            unknown.join("\n")
        );
    }
}
