//! SCRIPTING.md documents every function of the `pve::` binding and of the test harness.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stderr,
    reason = "test code: a panic is the failure report"
)]

use std::collections::BTreeSet;
use std::sync::Arc;

/// The module's functions: (name, called as a method) — a function in Rhai's global
/// namespace is a method of the module's types (`rows.where(…)`), the rest `ns::name(…)`.
fn functions(module: rhai::Shared<rhai::Module>, ns: &str) -> BTreeSet<(String, bool)> {
    let mut e = pve_mcp::script::sandbox::engine(Arc::new(|_| {}));
    e.register_static_module(ns, module);
    e.collect_fn_metadata(
        None,
        |info| {
            (info.namespace == ns).then(|| {
                (
                    info.metadata.name.to_string(),
                    info.metadata.namespace.is_global_namespace(),
                )
            })
        },
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
    let missing: Vec<&String> = names
        .iter()
        .filter(|(n, method)| !method && !doc.contains(&format!("`pve::{n}(")))
        .map(|(n, _)| n)
        .collect();
    assert!(
        missing.is_empty(),
        "SCRIPTING.md does not document pve::{missing:?}: add each to a table of its section \"The binding\", as `pve::NAME(arguments)` with what it returns and throws"
    );
    let methods: Vec<&String> = names
        .iter()
        .filter(|(n, method)| *method && n.as_str() != "index$get$" && !doc.contains(&format!("`rows.{n}(")))
        .map(|(n, _)| n)
        .collect();
    assert!(
        methods.is_empty(),
        "SCRIPTING.md does not document the methods {methods:?}: add each to the table of \"Large listings: rows\", as `rows.NAME(arguments)`"
    );
    if names.iter().any(|(n, m)| *m && n == "index$get$") {
        assert!(
            doc.contains("`rows[i]`"),
            "SCRIPTING.md does not document indexing rows"
        );
    }
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

/// The backticked names in the first column of the table whose header starts with `header`.
fn table_kinds(doc: &str, header: &str) -> BTreeSet<String> {
    let start = doc
        .find(header)
        .unwrap_or_else(|| panic!("SCRIPTING.md has no table starting {header:?}"));
    doc[start..]
        .lines()
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .flat_map(|l| {
            let first = l.split('|').nth(1).unwrap_or("").to_string();
            first
                .split('`')
                .skip(1)
                .step_by(2)
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The error vocabulary is one enum, and SCRIPTING.md's two tables list exactly its kinds:
/// the ones a script can catch, and the ones a host can get.
#[test]
fn every_error_kind_is_documented_where_it_is_seen() {
    use pve_mcp::script::ErrorKind;
    let doc = scripting_md();
    let caught: BTreeSet<String> = ErrorKind::ALL
        .iter()
        .filter(|k| k.caught_by_scripts())
        .map(|k| k.as_str().to_string())
        .collect();
    let hosts: BTreeSet<String> = ErrorKind::ALL
        .iter()
        .filter(|k| k.seen_by_hosts())
        .map(|k| k.as_str().to_string())
        .collect();
    assert_eq!(
        table_kinds(&doc, "| `kind` | thrown by |"),
        caught,
        "the table of kinds a script can catch (section Errors) and ErrorKind disagree"
    );
    assert_eq!(
        table_kinds(&doc, "| `error` | when |"),
        hosts,
        "the table of errors a host gets (section Errors) and ErrorKind disagree"
    );
}

/// The built-in scripts throw and compare only kinds of the vocabulary.
#[test]
fn the_built_in_scripts_throw_only_known_kinds() {
    use pve_mcp::script::ErrorKind;
    let root = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts"));
    let mut files = vec![];
    for dir in [root.to_path_buf(), root.join("lib")] {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "rhai") {
                files.push(p);
            }
        }
    }
    let mut seen = 0;
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        // Thrown (`kind: "…"`) or compared (`e.kind == "…"`, `e` being what `catch` caught).
        let parts = ["kind: \"", "e.kind == \"", "e.kind != \""]
            .into_iter()
            .flat_map(|p| text.split(p).skip(1).collect::<Vec<_>>());
        for part in parts {
            let name = part.split('"').next().unwrap();
            let kind =
                ErrorKind::parse(name).unwrap_or_else(|| panic!("{}: kind {name:?} is not an ErrorKind", f.display()));
            assert!(
                kind.caught_by_scripts(),
                "{}: {name} is not a kind scripts throw",
                f.display()
            );
            seen += 1;
        }
    }
    assert!(seen >= 7, "the scan found {seen} kinds");
}
