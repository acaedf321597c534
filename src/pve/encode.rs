//! How parameters travel to PVE: query string for GET/DELETE, form body for POST/PUT
//! (understood by every PVE version). Booleans always become `1`/`0` (PVE rejects `true` in a form or query).

use serde_json::{Map, Value};

use super::error::PveError;

/// Flatten parameters into `key=value` pairs. Arrays become repeated keys (PVE accepts
/// that for array parameters and joins it for `-list` strings); `null` is left out.
pub(crate) fn pairs(params: &Map<String, Value>) -> Result<Vec<(String, String)>, PveError> {
    let mut out = Vec::with_capacity(params.len());
    for (k, v) in params {
        match v {
            Value::Null => {}
            Value::Array(items) => {
                for item in items {
                    out.push((k.clone(), scalar(k, item)?));
                }
            }
            other => out.push((k.clone(), scalar(k, other)?)),
        }
    }
    Ok(out)
}

fn scalar(key: &str, v: &Value) -> Result<String, PveError> {
    Ok(match v {
        Value::Bool(b) => if *b { "1" } else { "0" }.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        Value::Null | Value::Array(_) | Value::Object(_) => {
            return Err(PveError::InvalidParam {
                name: key.to_string(),
                why: "PVE parameters are strings, numbers, booleans or lists of those; an object or nested list cannot be sent".into(),
            });
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn booleans_are_one_and_zero() {
        let p =
            json!({"full": true, "online": false, "newid": 101, "name": "web", "skip": null, "command": ["ls", "-la"]});
        let pairs = pairs(p.as_object().unwrap()).unwrap();
        assert_eq!(
            pairs,
            vec![
                ("command".into(), "ls".into()),
                ("command".into(), "-la".into()),
                ("full".into(), "1".into()),
                ("name".into(), "web".into()),
                ("newid".into(), "101".into()),
                ("online".into(), "0".into()),
            ]
        );
    }

    #[test]
    fn objects_are_refused() {
        let p = json!({"config": {"a": 1}});
        let err = pairs(p.as_object().unwrap()).unwrap_err();
        assert!(err.to_string().contains("config"), "{err}");
    }
}
