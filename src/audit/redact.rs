//! What of a request's parameters and a call's arguments the audit log keeps: secrets
//! become `<redacted>`, and long strings and lists are shortened, so a script cannot fill
//! the disk through the log.

use serde_json::{Map, Value};

/// A key whose value is a secret: named so, or containing one of these words (any case).
/// `cipassword` and `encryption-key` are covered by `password` and `key`.
pub(crate) const SECRET_WORDS: &[&str] = &[
    "password",
    "sshkeys",
    "ssh-public-keys",
    "key",
    "token",
    "secret",
    "keyring",
];

/// What a secret's value becomes.
pub(crate) const REDACTED: &str = "<redacted>";

/// Characters of a string value kept.
pub(crate) const MAX_STRING: usize = 4096;
/// Items of a list kept.
pub(crate) const MAX_ITEMS: usize = 1000;

pub(crate) fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    SECRET_WORDS.iter().any(|w| k.contains(w))
}

/// A copy of `m` fit for the log.
pub(crate) fn redact_map(m: &Map<String, Value>) -> Map<String, Value> {
    m.iter()
        .map(|(k, v)| {
            let kept = if is_secret_key(k) {
                Value::String(REDACTED.into())
            } else if k.eq_ignore_ascii_case("env") {
                env_names_only(v)
            } else {
                redact(v)
            };
            (k.clone(), kept)
        })
        .collect()
}

/// A copy of `v` fit for the log.
pub(crate) fn redact(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(redact_map(m)),
        Value::Array(a) => {
            let mut out: Vec<Value> = a.iter().take(MAX_ITEMS).map(redact).collect();
            if a.len() > MAX_ITEMS {
                out.push(Value::String(format!("… ({} items in all)", a.len())));
            }
            Value::Array(out)
        }
        Value::String(s) => Value::String(shorten(s)),
        other => other.clone(),
    }
}

fn shorten(s: &str) -> String {
    match s.char_indices().nth(MAX_STRING) {
        Some((cut, _)) => format!("{}… ({} bytes in all)", &s[..cut], s.len()),
        None => s.to_string(),
    }
}

/// `env` holds `NAME=VALUE` items (NUL-separated in a string, or a list, or a map): keep
/// the names, never the values.
fn env_names_only(v: &Value) -> Value {
    fn item(s: &str) -> String {
        s.split('\0')
            .map(|one| match one.split_once('=') {
                Some((name, _)) => format!("{}={REDACTED}", shorten(name)),
                None if one.is_empty() => String::new(),
                None => REDACTED.to_string(),
            })
            .collect::<Vec<_>>()
            .join("\0")
    }
    match v {
        Value::String(s) => Value::String(item(s)),
        Value::Array(a) => Value::Array(
            a.iter()
                .take(MAX_ITEMS)
                .map(|x| match x {
                    Value::String(s) => Value::String(item(s)),
                    _ => Value::String(REDACTED.into()),
                })
                .collect(),
        ),
        Value::Object(m) => Value::Object(
            m.keys()
                .take(MAX_ITEMS)
                .map(|k| (k.clone(), Value::String(REDACTED.into())))
                .collect(),
        ),
        Value::Null => Value::Null,
        _ => Value::String(REDACTED.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secrets_are_redacted_everywhere() {
        let v = json!({
            "cipassword": "hunter2", "sshkeys": "ssh-ed25519 AAAA", "ssh-public-keys": "x",
            "encryption-key": "k", "keyring": "r", "confirm_token": "t", "Password": "p",
            "client_secret": "s", "memory": 2048, "name": "web",
            "nested": {"password": "deep", "list": [{"token": "t2"}, "plain"]},
            "env": "HOME=/root\0API_KEY=abc",
        });
        let r = redact(&v);
        let text = r.to_string();
        for secret in ["hunter2", "ssh-ed25519", "deep", "t2", "abc", "/root"] {
            assert!(!text.contains(secret), "{secret} leaked: {text}");
        }
        assert_eq!(r["memory"], 2048);
        assert_eq!(r["name"], "web");
        assert_eq!(r["nested"]["list"][1], "plain");
        assert_eq!(r["cipassword"], REDACTED);
        assert_eq!(r["env"], "HOME=<redacted>\0API_KEY=<redacted>");
        let r = redact(&json!({"env": {"A": "1"}, "ENV": ["B=2"]}));
        assert_eq!(r, json!({"env": {"A": REDACTED}, "ENV": ["B=<redacted>"]}));
    }

    #[test]
    fn long_values_are_shortened() {
        let long = "x".repeat(MAX_STRING + 10);
        let r = redact(&json!({"description": long, "list": vec![1; MAX_ITEMS + 5]}));
        assert!(
            r["description"]
                .as_str()
                .unwrap()
                .ends_with(&format!("({} bytes in all)", MAX_STRING + 10))
        );
        assert_eq!(r["list"].as_array().unwrap().len(), MAX_ITEMS + 1);
    }
}
