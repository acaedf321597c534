//! The gate and the simulator read list parameters (`delete`, `revert`, …) exactly as PVE
//! does. Property tests against a reference written from pve-common's Perl, step by step:
//!
//! ```perl
//! return split(/\0/, $listtxt) if $listtxt =~ m/\0/;
//! $listtxt =~ s/[,;]/ /g;
//! $listtxt =~ s/^\s+//;
//! return split(/\s+/, $listtxt);
//! ```
//!
//! and the safety property that matters: whenever PVE would see an `unusedN` in `delete`,
//! the gate either refuses the request or classes it destructive.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stderr,
    reason = "test code: a panic is the failure report"
)]

use proptest::prelude::*;
use pve_mcp::gate::{Capability, Classification, classify};
use pve_mcp::pve::lists::{items, split_list};
use serde_json::{Map, Value, json};

/// Perl's `\s` on a character string: the Unicode White_Space characters.
fn perl_space(c: char) -> bool {
    matches!(
        c,
        '\t' | '\n' | '\u{0b}' | '\u{0c}' | '\r' | ' ' | '\u{85}' | '\u{a0}' | '\u{1680}' | '\u{2000}'
            ..='\u{200a}' | '\u{2028}' | '\u{2029}' | '\u{202f}' | '\u{205f}' | '\u{3000}'
    )
}

/// Perl's `split` drops trailing empty fields.
fn drop_trailing_empty(mut v: Vec<String>) -> Vec<String> {
    while v.last().is_some_and(String::is_empty) {
        v.pop();
    }
    v
}

fn reference(text: &str) -> Vec<String> {
    if text.contains('\0') {
        let mut fields = vec![String::new()];
        for c in text.chars() {
            if c == '\0' {
                fields.push(String::new());
            } else if let Some(last) = fields.last_mut() {
                last.push(c);
            }
        }
        return drop_trailing_empty(fields);
    }
    let replaced: String = text
        .chars()
        .map(|c| if c == ',' || c == ';' { ' ' } else { c })
        .collect();
    let trimmed: String = replaced.chars().skip_while(|c| perl_space(*c)).collect();
    let mut fields: Vec<String> = Vec::new();
    let mut current = String::new();
    let mut in_space = false;
    for c in trimmed.chars() {
        if perl_space(c) {
            if !in_space {
                fields.push(std::mem::take(&mut current));
            }
            in_space = true;
        } else {
            current.push(c);
            in_space = false;
        }
    }
    fields.push(current);
    drop_trailing_empty(fields)
}

fn list_text() -> impl Strategy<Value = String> {
    let atoms = prop_oneof![
        Just("unused0".to_string()),
        Just("unused12".to_string()),
        Just("onboot".to_string()),
        Just("scsi1".to_string()),
        Just("net0".to_string()),
        "[a-z0-9]{1,4}",
        Just(",".to_string()),
        Just(";".to_string()),
        Just(" ".to_string()),
        Just("\t".to_string()),
        Just("\n".to_string()),
        Just("\r".to_string()),
        Just("\u{0b}".to_string()),
        Just("\u{0c}".to_string()),
        Just("\0".to_string()),
        Just("\u{a0}".to_string()),
        Just("\u{85}".to_string()),
        Just("\u{2028}".to_string()),
        Just("\u{3000}".to_string()),
    ];
    proptest::collection::vec(atoms, 0..12).prop_map(|v| v.concat())
}

fn is_unused(item: &str) -> bool {
    item.strip_prefix("unused")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

fn config_change(delete: Value) -> Classification {
    let segs: Vec<String> = "nodes/pve1/qemu/100/config".split('/').map(str::to_string).collect();
    let mut params = Map::new();
    params.insert("delete".into(), delete);
    classify(pve_mcp::api::Method::Put, &segs, &params)
}

fn safe_for_unused(c: &Classification) -> bool {
    match c {
        Classification::Needs { caps, .. } => caps.has(Capability::Destructive),
        Classification::Forbidden { .. } | Classification::BadParam { .. } => true,
        Classification::Unknown => false,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn split_list_is_pves(text in list_text()) {
        prop_assert_eq!(split_list(&text), reference(&text));
    }

    #[test]
    fn arrays_are_joined_with_nul_as_pves_http_server_does(parts in proptest::collection::vec(list_text(), 1..4)) {
        let joined = parts.join("\0");
        let as_array = Value::Array(parts.iter().map(|p| json!(p)).collect());
        prop_assert_eq!(items(&as_array), reference(&joined));
    }

    #[test]
    fn an_unused_disk_pve_would_destroy_is_never_a_plain_write(text in list_text()) {
        if reference(&text).iter().any(|i| is_unused(i)) {
            let c = config_change(json!(text));
            prop_assert!(safe_for_unused(&c), "{:?} -> {:?}", text, c);
        }
    }

    #[test]
    fn the_same_through_repeated_keys(parts in proptest::collection::vec(list_text(), 1..4)) {
        if reference(&parts.join("\0")).iter().any(|i| is_unused(i)) {
            let c = config_change(Value::Array(parts.iter().map(|p| json!(p)).collect()));
            prop_assert!(safe_for_unused(&c), "{:?} -> {:?}", parts, c);
        }
    }
}

#[test]
fn the_reference_agrees_with_known_cases() {
    assert_eq!(reference("onboot\tunused0"), ["onboot", "unused0"]);
    assert_eq!(reference("a\0\0b\0"), ["a", "", "b"]);
    assert_eq!(reference("  ,a;;b "), ["a", "b"]);
}
