//! The `default`s of a tool's input schema, filled in before `run` is called: a script reads
//! `args.limit` without repeating the schema's default by hand. Only top-level properties
//! are filled; `confirm` and `confirm_token` never are.

use serde_json::{Map, Value};

pub(crate) fn fill(schema: &Map<String, Value>, args: &mut Map<String, Value>) {
    let Some(props) = schema.get("properties").and_then(Value::as_object) else {
        return;
    };
    for (key, prop) in props {
        if key == "confirm" || key == "confirm_token" || args.contains_key(key) {
            continue;
        }
        if let Some(d) = prop.get("default") {
            args.insert(key.clone(), d.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fills_only_what_is_missing() {
        let schema = json!({"properties": {"limit": {"type": "integer", "default": 50}, "node": {"type": "string"},
            "confirm": {"type": "boolean", "default": true}}});
        let mut args = Map::new();
        fill(schema.as_object().unwrap(), &mut args);
        assert_eq!(Value::Object(args.clone()), json!({"limit": 50}));
        let mut given = json!({"limit": 5}).as_object().cloned().unwrap();
        fill(schema.as_object().unwrap(), &mut given);
        assert_eq!(given["limit"], 5);
    }
}
