//! How parameters travel to PVE: query string for GET/DELETE, form or JSON body for
//! POST/PUT. Booleans always become `1`/`0` (PVE rejects `true` in a form or query).

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

/// A JSON body with booleans as `1`/`0` (accepted by every PVE since 6.2).
pub(crate) fn json_body(params: &Map<String, Value>) -> Result<Value, PveError> {
    let mut out = Map::with_capacity(params.len());
    for (k, v) in params {
        let conv = |v: &Value| -> Result<Value, PveError> {
            match v {
                Value::Bool(b) => Ok(Value::from(u8::from(*b))),
                Value::Object(_) | Value::Array(_) => Err(PveError::InvalidParam {
                    name: k.clone(),
                    why: "nested objects or lists cannot be sent to PVE".into(),
                }),
                other => Ok(other.clone()),
            }
        };
        match v {
            Value::Null => {}
            Value::Array(items) => {
                out.insert(
                    k.clone(),
                    Value::Array(items.iter().map(conv).collect::<Result<_, _>>()?),
                );
            }
            other => {
                out.insert(k.clone(), conv(other)?);
            }
        }
    }
    Ok(Value::Object(out))
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
        let body = json_body(p.as_object().unwrap()).unwrap();
        assert_eq!(
            body,
            json!({"full": 1, "online": 0, "newid": 101, "name": "web", "command": ["ls", "-la"]})
        );
    }

    #[test]
    fn objects_are_refused() {
        let p = json!({"config": {"a": 1}});
        assert!(pairs(p.as_object().unwrap()).is_err());
        assert!(json_body(p.as_object().unwrap()).is_err());
    }
}
