//! SCRIPTING.md documents every function of the `pve::` binding and of the test harness.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stderr,
    reason = "test code: a panic is the failure report"
)]

use std::collections::BTreeSet;
use std::sync::Arc;

fn functions(module: rhai::Shared<rhai::Module>, ns: &str) -> BTreeSet<String> {
    let mut e = pve_mcp::script::sandbox::engine(Arc::new(|_| {}));
    e.register_static_module(ns, module);
    e.collect_fn_metadata(
        None,
        |info| (info.namespace == ns).then(|| info.metadata.name.to_string()),
        true,
    )
    .into_iter()
    .collect()
}

fn scripting_md() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/SCRIPTING.md")).unwrap()
}

#[test]
fn every_binding_function_is_documented() {
    let doc = scripting_md();
    let names = functions(pve_mcp::script::binding::module(), "pve");
    assert!(names.len() >= 20, "{names:?}");
    let missing: Vec<&String> = names.iter().filter(|n| !doc.contains(&format!("`pve::{n}("))).collect();
    assert!(
        missing.is_empty(),
        "SCRIPTING.md does not document pve::{missing:?}: add each to a table of its section \"The binding\", as `pve::NAME(arguments)` with what it returns and throws"
    );
}

#[cfg(feature = "simulator")]
#[test]
fn every_test_function_is_documented() {
    let doc = scripting_md();
    for name in ["run", "fails", "run_tool", "fails_tool", "requests"] {
        assert!(
            doc.contains(&format!("`test::{name}(")),
            "test::{name} is not documented"
        );
    }
    for name in ["assert", "assert_eq", "assert_ne", "fail"] {
        assert!(doc.contains(&format!("`{name}(")), "{name} is not documented");
    }
}
