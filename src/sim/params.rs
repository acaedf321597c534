//! Parameter checks with PVE's own error texts (pve-common's JSONSchema), so that a
//! request PVE would refuse is refused here too, with the same `errors` map.
//!
//! Specs are written as `"name:type"` words, `?` marking optional ones:
//! `int`, `int(MIN..MAX)`, `num`, `bool`, `str`, `enum(a|b|c)`, `list` (a `-list` string or an array).
//! An indexed name like `net[0..31]:str?` stands for `net0` … `net31`, as PVE's `net[n]`.

use serde_json::{Map, Value};

use super::http::Encoding;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Ty {
    Int(Option<i64>, Option<i64>),
    Num,
    Bool,
    Str,
    Enum(Vec<String>),
    List,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ParamSpec {
    pub name: String,
    pub ty: Ty,
    pub optional: bool,
    /// For an indexed name (`net[0..31]`): the index range.
    pub index: Option<(u32, u32)>,
}

impl ParamSpec {
    pub(crate) fn matches(&self, key: &str) -> bool {
        match self.index {
            None => self.name == key,
            Some((lo, hi)) => key
                .strip_prefix(self.name.as_str())
                .filter(|n| {
                    !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()) && !(n.len() > 1 && n.starts_with('0'))
                })
                .and_then(|n| n.parse::<u32>().ok())
                .is_some_and(|n| (lo..=hi).contains(&n)),
        }
    }
}

/// Parse `"timeout:int(0..)? forceStop:bool?"`. Panics on a malformed spec (they are
/// constants in the simulator's route table, checked by its tests).
pub(crate) fn specs(text: &str) -> Vec<ParamSpec> {
    text.split_whitespace().map(spec).collect()
}

fn index_bound(word: &str, text: &str) -> u32 {
    text.parse()
        .unwrap_or_else(|_| panic!("bad index bound '{text}' in '{word}'"))
}

fn spec(word: &str) -> ParamSpec {
    let (word, optional) = match word.strip_suffix('?') {
        Some(w) => (w, true),
        None => (word, false),
    };
    let (name, ty) = word
        .split_once(':')
        .unwrap_or_else(|| panic!("parameter spec '{word}' has no type"));
    let (name, index) = match name.split_once('[') {
        Some((base, range)) => {
            let (lo, hi) = range
                .trim_end_matches(']')
                .split_once("..")
                .unwrap_or_else(|| panic!("bad index range in '{word}'"));
            (base, Some((index_bound(word, lo), index_bound(word, hi))))
        }
        None => (name, None),
    };
    let ty = if let Some(range) = ty.strip_prefix("int(").and_then(|r| r.strip_suffix(')')) {
        let (lo, hi) = range
            .split_once("..")
            .unwrap_or_else(|| panic!("bad range in '{word}'"));
        Ty::Int(lo.parse().ok(), hi.parse().ok())
    } else if let Some(list) = ty.strip_prefix("enum(").and_then(|r| r.strip_suffix(')')) {
        Ty::Enum(list.split('|').map(str::to_string).collect())
    } else {
        match ty {
            "int" => Ty::Int(None, None),
            "num" => Ty::Num,
            "bool" => Ty::Bool,
            "str" => Ty::Str,
            "list" => Ty::List,
            other => panic!("unknown parameter type '{other}' in '{word}'"),
        }
    };
    ParamSpec {
        name: name.to_string(),
        ty,
        optional,
        index,
    }
}

fn shown(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Check one value; `Err` is PVE's message for it.
pub(crate) fn check_value(ty: &Ty, v: &Value, encoding: Encoding) -> Result<(), String> {
    let scalar = |v: &Value| -> Option<String> {
        match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(if *b { "1" } else { "0" }.into()),
            _ => None,
        }
    };
    match ty {
        Ty::Int(lo, hi) => {
            let text = scalar(v).ok_or_else(|| format!("type check ('integer') failed - got '{}'", shown(v)))?;
            let is_int = matches!(v, Value::Number(n) if n.is_i64() || n.is_u64())
                || (matches!(v, Value::String(_)) && {
                    let t = text.strip_prefix('-').unwrap_or(&text);
                    !t.is_empty() && t.chars().all(|c| c.is_ascii_digit())
                });
            if !is_int {
                return Err(format!("type check ('integer') failed - got '{text}'"));
            }
            let n: i64 = text
                .parse()
                .map_err(|_| format!("type check ('integer') failed - got '{text}'"))?;
            if let Some(lo) = lo
                && n < *lo
            {
                return Err(format!("value must have a minimum value of {lo}"));
            }
            if let Some(hi) = hi
                && n > *hi
            {
                return Err(format!("value must have a maximum value of {hi}"));
            }
            Ok(())
        }
        Ty::Num => {
            let text = scalar(v).ok_or_else(|| format!("type check ('number') failed - got '{}'", shown(v)))?;
            text.parse::<f64>()
                .map(|_| ())
                .map_err(|_| format!("type check ('number') failed - got '{text}'"))
        }
        Ty::Bool => {
            let ok = match v {
                // JSON true/false are accepted for booleans since PVE 8.0.
                Value::Bool(_) => encoding == Encoding::Json,
                Value::Number(n) => n.as_i64().is_some_and(|i| i == 0 || i == 1),
                Value::String(s) => s == "0" || s == "1",
                _ => false,
            };
            if ok {
                Ok(())
            } else {
                Err(format!("type check ('boolean') failed - got '{}'", shown(v)))
            }
        }
        Ty::Str => scalar(v)
            .map(|_| ())
            .ok_or_else(|| format!("type check ('string') failed - got '{}'", shown(v))),
        Ty::Enum(values) => {
            let text = scalar(v).unwrap_or_else(|| shown(v));
            if values.contains(&text) {
                Ok(())
            } else {
                Err(format!(
                    "value '{text}' does not have a value in the enumeration '{}'",
                    values.join(", ")
                ))
            }
        }
        Ty::List => match v {
            Value::Array(items) if items.iter().all(|i| scalar(i).is_some()) => Ok(()),
            other if scalar(other).is_some() => Ok(()),
            other => Err(format!("type check ('string') failed - got '{}'", shown(other))),
        },
    }
}

/// Check all parameters against the specs (path parameters included). Returns PVE's
/// `errors` map when anything is wrong.
pub(crate) fn validate(
    specs: &[ParamSpec],
    params: &Map<String, Value>,
    encoding: Encoding,
) -> Result<(), Map<String, Value>> {
    let mut errors = Map::new();
    for (k, v) in params {
        match specs.iter().find(|s| s.matches(k)) {
            None => {
                errors.insert(
                    k.clone(),
                    "property is not defined in schema and the schema does not allow additional properties".into(),
                );
            }
            Some(s) => {
                // A repeated form key is only fine for list parameters.
                let r = match (v, &s.ty) {
                    (Value::Array(_), Ty::List) => check_value(&s.ty, v, encoding),
                    (Value::Array(items), ty) => items.first().map_or(Ok(()), |first| check_value(ty, first, encoding)),
                    (v, ty) => check_value(ty, v, encoding),
                };
                if let Err(e) = r {
                    errors.insert(k.clone(), Value::String(e));
                }
            }
        }
    }
    for s in specs.iter().filter(|s| !s.optional && s.index.is_none()) {
        if !params.contains_key(&s.name) {
            errors.insert(s.name.clone(), "property is missing and it is not optional".into());
        }
    }
    if errors.is_empty() { Ok(()) } else { Err(errors) }
}

/// A parameter's boolean value (already validated).
pub(crate) fn flag(params: &Map<String, Value>, name: &str) -> bool {
    crate::gate::truthy(params.get(name))
}

/// A parameter as a string, if present.
pub(crate) fn text(params: &Map<String, Value>, name: &str) -> Option<String> {
    match params.get(name)? {
        Value::String(s) => Some(s.clone()),
        Value::Array(items) => Some(items.iter().map(shown).collect::<Vec<_>>().join(",")),
        other => Some(other.to_string()),
    }
}

/// A list parameter's items, as PVE's API handlers see them: repeated keys joined with NUL,
/// then pve-common's `split_list`.
pub(crate) fn list(params: &Map<String, Value>, name: &str) -> Option<Vec<String>> {
    params.get(name).map(crate::pve::lists::items)
}

/// A parameter as an integer, if present and numeric.
pub(crate) fn int(params: &Map<String, Value>, name: &str) -> Option<i64> {
    match params.get(name)? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn errs(spec: &str, params: Value, enc: Encoding) -> Value {
        match validate(&specs(spec), params.as_object().unwrap(), enc) {
            Ok(()) => Value::Null,
            Err(e) => Value::Object(e),
        }
    }

    #[test]
    fn indexed_names() {
        let spec = "net[0..31]:str? scsi[0..30]:str?";
        assert_eq!(
            errs(spec, json!({"net0": "x", "net31": "y", "scsi30": "z"}), Encoding::Form),
            Value::Null
        );
        let e = errs(spec, json!({"net32": "x", "net01": "y", "netx": "z"}), Encoding::Form);
        assert_eq!(e.as_object().unwrap().len(), 3, "{e}");
    }

    #[test]
    fn pve_messages() {
        let spec = "vmid:int(100..999999999) timeout:int(0..)? full:bool? mode:enum(snapshot|suspend|stop)? name:str?";
        assert_eq!(
            errs(spec, json!({"vmid": "100", "full": "1"}), Encoding::Form),
            Value::Null
        );
        assert_eq!(
            errs(spec, json!({"vmid": "100", "full": "true"}), Encoding::Form),
            json!({"full": "type check ('boolean') failed - got 'true'"})
        );
        assert_eq!(
            errs(spec, json!({"vmid": 100, "full": true}), Encoding::Json),
            Value::Null
        );
        assert_eq!(
            errs(spec, json!({"vmid": "abc"}), Encoding::Query),
            json!({"vmid": "type check ('integer') failed - got 'abc'"})
        );
        assert_eq!(
            errs(spec, json!({"vmid": "99"}), Encoding::Query),
            json!({"vmid": "value must have a minimum value of 100"})
        );
        assert_eq!(
            errs(spec, json!({"vmid": "100", "mode": "fast"}), Encoding::Form),
            json!({"mode": "value 'fast' does not have a value in the enumeration 'snapshot, suspend, stop'"})
        );
        assert_eq!(
            errs(spec, json!({"typo": "1"}), Encoding::Form),
            json!({"typo": "property is not defined in schema and the schema does not allow additional properties",
                   "vmid": "property is missing and it is not optional"})
        );
    }
}
