//! The gate's endpoint table covers the PVE API exactly: every (method, template) of the
//! 8.4 and 9.1 schemas has one line, and every line names an endpoint of one of them. The
//! list of endpoints is vendored as `tests/data/pve-endpoints.txt` (regenerate it with
//! `tests/data/pve-endpoints.py`, see its header), so this runs in plain `cargo test`.
//! When `PVE_API_SCHEMA` points at the official schema (as `.ci/run` does), the vendored
//! list is also checked against it.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stderr,
    reason = "test code: a panic is the failure report"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use pve_mcp::api::Method;
use pve_mcp::gate::table::{Rule, table};
use pve_mcp::gate::{Capability, Classification, classify};
use serde_json::{Map, Value};

const VENDORED: &str = include_str!("data/pve-endpoints.txt");

fn vendored() -> BTreeMap<(String, String), String> {
    VENDORED
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            assert_eq!(f.len(), 3, "malformed line in pve-endpoints.txt: {l}");
            ((f[0].to_string(), f[1].to_string()), f[2].to_string())
        })
        .collect()
}

fn table_endpoints() -> BTreeSet<(String, String)> {
    table()
        .entries()
        .iter()
        .map(|e| (e.method.as_str().to_string(), e.template.clone()))
        .collect()
}

#[test]
fn every_schema_endpoint_has_exactly_one_line() {
    let api = vendored();
    assert!(api.len() >= 650, "the vendored list has {} endpoints", api.len());
    let ours = table_endpoints();
    assert_eq!(ours.len(), table().entries().len(), "a template is listed twice");
    let missing: Vec<_> = api.keys().filter(|k| !ours.contains(*k)).collect();
    assert!(
        missing.is_empty(),
        "endpoints with no line in src/gate/endpoints.txt: {missing:#?}"
    );
    let stale: Vec<_> = ours.iter().filter(|k| !api.contains_key(*k)).collect();
    assert!(
        stale.is_empty(),
        "lines in src/gate/endpoints.txt that no schema has: {stale:#?}"
    );
}

#[test]
fn version_notes_match_the_schemas() {
    let api = vendored();
    for e in table().entries() {
        let versions = &api[&(e.method.as_str().to_string(), e.template.clone())];
        let note = match versions.as_str() {
            "8.4" => Some("[8.4]"),
            "9.1" => Some("[9.1]"),
            _ => None,
        };
        match note {
            Some(n) => assert!(
                e.reason.starts_with(n),
                "line {}: {} {} needs {n}",
                e.line,
                e.method,
                e.template
            ),
            None => assert!(
                !e.reason.starts_with('['),
                "line {}: {} is in both versions",
                e.line,
                e.template
            ),
        }
    }
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

fn segments(template: &str) -> Vec<String> {
    template
        .trim_start_matches('/')
        .split('/')
        .flat_map(|s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            // PVE splits a decoded '/' inside a segment: route the volume id as PVE sees it.
            Some(p) => sample(p).split('/').map(str::to_string).collect::<Vec<_>>(),
            None => vec![s.to_string()],
        })
        .collect()
}

fn method(m: &str) -> Method {
    match m {
        "GET" => Method::Get,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        _ => Method::Delete,
    }
}

#[test]
fn a_concrete_request_routes_to_its_own_line() {
    for e in table().entries() {
        let segs = segments(&e.template);
        let found = table().lookup(e.method, &segs).map(|f| f.line);
        assert_eq!(found, Some(e.line), "{} {} routed elsewhere", e.method, e.template);
    }
}

#[test]
fn no_write_without_a_class_and_no_read_that_changes_anything() {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for e in table().entries() {
        let label = match &e.rule {
            Rule::Needs(c) => c.label(),
            Rule::Forbidden(_) => "forbidden".into(),
            Rule::Inspect(n) => format!("@{n}"),
        };
        *counts.entry(label.clone()).or_default() += 1;
        // A non-GET is never a plain read, except the two side-effect-free agent queries.
        if e.method != Method::Get && label == "read" {
            assert!(
                e.template.ends_with("/agent/ping") || e.template.ends_with("/agent/fsfreeze-status"),
                "{} {} is a read",
                e.method,
                e.template
            );
        }
        // Every exclusion says why.
        if let Rule::Forbidden(why) = &e.rule {
            assert!(!why.is_empty(), "{} has no reason", e.template);
        }
    }
    eprintln!("endpoint classes: {counts:?}");
}

#[test]
fn spot_checks_by_class() {
    let none = Map::<String, Value>::new();
    let caps = |m: Method, p: &str| match classify(m, &segments(p), &none) {
        Classification::Needs { caps, .. } => Some(caps.label()),
        other => Some(format!("{other:?}")),
    };
    assert_eq!(
        caps(Method::Post, "/nodes/{node}/qemu/{vmid}/status/start").as_deref(),
        Some("write")
    );
    assert_eq!(
        caps(Method::Post, "/nodes/{node}/qemu/{vmid}/agent/exec").as_deref(),
        Some("exec")
    );
    assert_eq!(
        caps(Method::Post, "/nodes/{node}/services/{service}/restart").as_deref(),
        Some("destructive+admin")
    );
    for (m, p) in [
        ("POST", "/cluster/bulk-action/guest/shutdown"),
        ("PUT", "/cluster/sdn"),
        ("POST", "/nodes/{node}/ceph/osd"),
        ("PUT", "/nodes/{node}/disks/wipedisk"),
        ("POST", "/cluster/ha/status/disarm-ha"),
    ] {
        match classify(method(m), &segments(p), &none) {
            Classification::Needs { caps, .. } => {
                assert!(
                    caps.has(Capability::Admin) && caps.has(Capability::Destructive),
                    "{m} {p}: {caps}"
                )
            }
            other => panic!("{m} {p}: {other:?}"),
        }
    }
}

fn walk(node: &Value, out: &mut BTreeSet<(String, String)>) {
    if let (Some(path), Some(info)) = (
        node.get("path").and_then(Value::as_str),
        node.get("info").and_then(Value::as_object),
    ) {
        for m in info.keys() {
            out.insert((m.clone(), path.to_string()));
        }
    }
    for child in node.get("children").and_then(Value::as_array).into_iter().flatten() {
        walk(child, out);
    }
}

/// With the official schema at hand, the vendored list must be what it says.
#[test]
fn the_vendored_list_matches_the_official_schemas() {
    let Some(main) = std::env::var_os("PVE_API_SCHEMA").map(PathBuf::from) else {
        eprintln!("PVE_API_SCHEMA is not set; the vendored list is used as it is");
        return;
    };
    let nine = main.with_file_name("apidata-pve9.json");
    let mut from_schema = BTreeSet::new();
    for file in [main.clone(), nine] {
        let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
        let roots: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        for r in roots.as_array().into_iter().flatten() {
            walk(r, &mut from_schema);
        }
    }
    let vendored: BTreeSet<(String, String)> = vendored().into_keys().collect();
    assert_eq!(
        vendored, from_schema,
        "tests/data/pve-endpoints.txt is stale; regenerate it as tests/data/pve-endpoints.py says"
    );
}
