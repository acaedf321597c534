//! `pve-mcp schema cluster` prints the JSON Schema of the `--cluster FILE` description:
//! it accepts what the simulator loads (the built-in cluster, the documented examples,
//! every kind of fault) and refuses what the simulator refuses to parse.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stderr,
    reason = "test code: a panic is the failure report"
)]
#![cfg(feature = "simulator")]

mod common;

use pve_mcp::sim::spec::ClusterSpec;
use serde_json::{Value, json};

fn printed_schema() -> Value {
    let out = std::process::Command::new(common::bin())
        .args(["schema", "cluster"])
        .env_clear()
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("the schema is JSON")
}

fn base() -> Value {
    serde_json::to_value(ClusterSpec::default_cluster()).unwrap()
}

/// Whether the simulator's own parser takes the document (types, then the fault table).
fn parser_accepts(doc: &Value) -> bool {
    match serde_json::from_value::<ClusterSpec>(doc.clone()) {
        Ok(spec) => spec.faults.iter().all(|f| f.fault().is_ok()),
        Err(_) => false,
    }
}

#[test]
fn the_schema_accepts_what_the_simulator_loads() {
    let schema = printed_schema();
    let validator = jsonschema::validator_for(&schema).expect("a valid JSON Schema");
    let doc = base();
    let errors: Vec<String> = validator.iter_errors(&doc).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "the built-in cluster: {errors:#?}");

    let md = include_str!("../docs/cluster-file.md");
    let blocks: Vec<Value> = md
        .split("```json\n")
        .skip(1)
        .filter_map(|b| b.split("```").next())
        .map(|b| serde_json::from_str(b).unwrap())
        .collect();
    assert_eq!(blocks.len(), 3, "the guest, task and fault examples");
    let mut doc = base();
    doc["guests"].as_array_mut().unwrap()[0] = blocks[0].clone();
    doc["tasks"] = json!([blocks[1]]);
    doc["faults"] = json!([blocks[2]]);
    assert!(parser_accepts(&doc));
    let errors: Vec<String> = validator.iter_errors(&doc).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "the documented examples: {errors:#?}");
}

#[test]
fn every_fault_kind_the_parser_takes_the_schema_takes() {
    let validator = jsonschema::validator_for(&printed_schema()).unwrap();
    let faults = [
        json!({"path": "/nodes/*", "fault": "status", "status": 500, "message": "boom"}),
        json!({"path": "/nodes/pve1/status", "method": "get", "times": 2, "fault": "latency", "ms": 10}),
        json!({"path": "*", "fault": "hang"}),
        json!({"path": "/version", "fault": "malformed"}),
        json!({"path": "/version", "fault": "html"}),
        json!({"path": "/version", "fault": "html", "status": 504}),
        json!({"path": "/version", "fault": "truncated"}),
        json!({"path": "/version", "fault": "reset"}),
        json!({"path": "/nodes/pve2/*", "fault": "node_offline"}),
        json!({"path": "/nodes/pve2/*", "fault": "node_tls"}),
        json!({"path": "/cluster/resources", "fault": "omit", "fields": ["node"]}),
        json!({"path": "/cluster/resources", "method": "GET", "fault": "ignore_params"}),
        json!({"path": "/version", "fault": "data", "data": null}),
    ];
    for f in faults {
        let mut doc = base();
        doc["faults"] = json!([f]);
        assert!(parser_accepts(&doc), "the parser takes {f}");
        let errors: Vec<String> = validator.iter_errors(&doc).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "the schema takes {f}: {errors:#?}");
    }
}

#[test]
fn the_schema_refuses_what_the_simulator_refuses() {
    let validator = jsonschema::validator_for(&printed_schema()).unwrap();
    let mut cases: Vec<(&str, Value)> = Vec::new();
    let mut doc = base();
    doc["colour"] = json!("blue");
    cases.push(("an unknown top-level field", doc));
    let mut doc = base();
    doc["guests"][0]["ram"] = json!(4096);
    cases.push(("an unknown guest field", doc));
    let mut doc = base();
    doc["guests"][0]["status"] = json!("sleeping");
    cases.push(("a guest status PVE does not have", doc));
    let mut doc = base();
    doc["nodes"][0]["cpus"] = json!("four");
    cases.push(("a count that is text", doc));
    let mut doc = base();
    doc.as_object_mut().unwrap().remove("nodes");
    cases.push(("no nodes", doc));
    for (what, f) in [
        ("an unknown fault", json!({"path": "/version", "fault": "explode"})),
        (
            "a status fault without a status",
            json!({"path": "/version", "fault": "status"}),
        ),
        (
            "a status out of range",
            json!({"path": "/version", "fault": "status", "status": 700}),
        ),
        (
            "a latency fault with a field of another kind",
            json!({"path": "/version", "fault": "latency", "ms": 5, "status": 500}),
        ),
        ("a fault without a path", json!({"fault": "hang"})),
        (
            "a path not below /api2/json",
            json!({"path": "version", "fault": "hang"}),
        ),
        (
            "a method PVE does not have",
            json!({"path": "/version", "method": "PATCH", "fault": "hang"}),
        ),
        (
            "an omit fault without fields",
            json!({"path": "/version", "fault": "omit"}),
        ),
    ] {
        let mut doc = base();
        doc["faults"] = json!([f]);
        cases.push((what, doc));
    }
    for (what, doc) in cases {
        assert!(!parser_accepts(&doc), "the simulator refuses {what}");
        assert!(!validator.is_valid(&doc), "the schema refuses {what}");
    }
}
