//! How PVE reads a list-valued parameter such as `delete` or `revert`.
//!
//! PVE's HTTP server joins a repeated form key with NUL (as CGI.pm does), and pve-common's
//! `split_list` then splits on NUL if there is one, and otherwise on `,`, `;` and any run of
//! whitespace after trimming the front. The gate and the simulated cluster both read lists
//! this way, so neither can be fooled by a tab, a newline or a NUL that PVE treats as a
//! separator.

use serde_json::Value;

/// pve-common `PVE::Tools::split_list` (`PVE::ParseUtils::split_list`).
pub fn split_list(text: &str) -> Vec<String> {
    if text.contains('\0') {
        // Perl's split drops trailing empty fields but keeps leading ones.
        let mut items: Vec<String> = text.split('\0').map(str::to_string).collect();
        while items.last().is_some_and(String::is_empty) {
            items.pop();
        }
        return items;
    }
    text.replace([',', ';'], " ")
        .split(char::is_whitespace)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// The text PVE receives for a parameter value: a list travels as repeated keys, which PVE
/// joins with NUL; a boolean as `1`/`0`.
pub(crate) fn wire_text(v: &Value) -> String {
    match v {
        Value::Array(items) => items.iter().map(wire_text).collect::<Vec<_>>().join("\0"),
        Value::String(s) => s.clone(),
        Value::Bool(b) => if *b { "1" } else { "0" }.to_string(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// The items of a list parameter, exactly as PVE's API handlers see them.
pub fn items(v: &Value) -> Vec<String> {
    split_list(&wire_text(v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn separators_pve_accepts() {
        assert_eq!(split_list("onboot,unused0"), ["onboot", "unused0"]);
        assert_eq!(split_list("onboot\tunused0"), ["onboot", "unused0"]);
        assert_eq!(split_list("\tunused0\n"), ["unused0"]);
        assert_eq!(split_list(" a ;b , c\r\nd"), ["a", "b", "c", "d"]);
        assert_eq!(split_list("a\0unused0\r"), ["a", "unused0\r"]);
        assert_eq!(split_list("\0unused1"), ["", "unused1"]);
        assert_eq!(split_list("a,b\0c"), ["a,b", "c"]);
        assert!(split_list("").is_empty());
        assert!(split_list(" ,; ").is_empty());
    }

    #[test]
    fn arrays_join_with_nul() {
        assert_eq!(items(&json!(["onboot", "unused0\r"])), ["onboot", "unused0\r"]);
        assert_eq!(items(&json!(["a,b"])), ["a", "b"]);
        assert_eq!(items(&json!("scsi1 unused2")), ["scsi1", "unused2"]);
    }
}
