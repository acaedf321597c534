//! Script values to JSON and back, bounded in depth and size.
//!
//! Every value that crosses between a script and the outside goes through here: tool
//! arguments and PVE answers into the script ([`to_dynamic`]), request parameters and
//! results out of it ([`to_json`]). A value nested deeper than [`MAX_DEPTH`] is refused
//! before anything recursive touches it, so no value can exhaust a thread's stack here, and
//! a value larger than the caller's byte limit is refused before it is copied.

use rhai::{Array, Blob, Dynamic, ImmutableString, Map as RMap};
use serde_json::{Map, Number, Value};
use thiserror::Error;

use super::rows::Rows;

/// Levels of arrays and maps a value may have (serde_json parses at most 128, too).
pub(crate) const MAX_DEPTH: usize = 128;

/// Largest parameters of one PVE request, in bytes of JSON.
pub(crate) const MAX_PARAMS_BYTES: usize = 16 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub(crate) enum ConvertError {
    #[error("the value is nested more than {MAX_DEPTH} levels deep")]
    TooDeep,
    #[error("the value is larger than {limit} bytes as JSON")]
    TooLarge { limit: usize },
    #[error("a value of type {0} has no JSON form")]
    NotJson(String),
}

/// A script value as JSON. `max_bytes` bounds the size of the JSON text (strings are counted
/// unescaped, so the bound is approximate by a few bytes per escaped character).
pub(crate) fn to_json(value: &Dynamic, max_bytes: usize) -> Result<Value, ConvertError> {
    let mut out = Out { size: 0, max_bytes };
    out.value(value, 0)
}

/// A script's result as JSON, taking it apart rather than copying it: rows held only by
/// the result are moved, not cloned. Bounded as [`to_json`].
pub(crate) fn into_json(value: Dynamic, max_bytes: usize) -> Result<Value, ConvertError> {
    let mut out = Out { size: 0, max_bytes };
    out.owned(value, 0)
}

struct Out {
    size: usize,
    max_bytes: usize,
}

impl Out {
    fn take(&mut self, bytes: usize) -> Result<(), ConvertError> {
        self.size = self.size.saturating_add(bytes);
        if self.size > self.max_bytes {
            return Err(ConvertError::TooLarge { limit: self.max_bytes });
        }
        Ok(())
    }

    fn owned(&mut self, d: Dynamic, depth: usize) -> Result<Value, ConvertError> {
        if depth >= MAX_DEPTH || d.is_shared() || !(d.is_map() || d.is_array() || d.is::<Rows>()) {
            return self.value(&d, depth);
        }
        if d.is_map() {
            let m = d.cast::<RMap>();
            self.take(2)?;
            let mut map = Map::new();
            for (k, v) in m {
                self.take(k.len() + 4)?;
                let v = self.owned(v, depth + 1)?;
                map.insert(k.to_string(), v);
            }
            return Ok(Value::Object(map));
        }
        if d.is_array() {
            let a = d.cast::<Array>();
            self.take(2)?;
            let mut items = Vec::with_capacity(a.len().min(1024));
            for item in a {
                self.take(1)?;
                items.push(self.owned(item, depth + 1)?);
            }
            return Ok(Value::Array(items));
        }
        let rows = d.cast::<Rows>();
        rows_fit(self, &rows, depth)?;
        Ok(Value::Array(rows.into_vec()))
    }

    fn value(&mut self, d: &Dynamic, depth: usize) -> Result<Value, ConvertError> {
        if d.is_unit() {
            self.take(4)?;
            return Ok(Value::Null);
        }
        if let Ok(b) = d.as_bool() {
            self.take(5)?;
            return Ok(Value::Bool(b));
        }
        if let Ok(i) = d.as_int() {
            self.take(20)?;
            return Ok(Value::Number(i.into()));
        }
        if let Ok(f) = d.as_float() {
            self.take(24)?;
            return Ok(Number::from_f64(f).map_or(Value::Null, Value::Number));
        }
        if let Ok(c) = d.as_char() {
            self.take(6)?;
            return Ok(Value::String(c.to_string()));
        }
        if let Some(s) = d.read_lock::<ImmutableString>() {
            self.take(s.len() + 2)?;
            return Ok(Value::String(s.to_string()));
        }
        if depth >= MAX_DEPTH && (d.is_array() || d.is_map() || d.is_blob()) {
            return Err(ConvertError::TooDeep);
        }
        if let Some(a) = d.read_lock::<Array>() {
            self.take(2)?;
            let mut items = Vec::with_capacity(a.len().min(1024));
            for item in a.iter() {
                self.take(1)?;
                items.push(self.value(item, depth + 1)?);
            }
            return Ok(Value::Array(items));
        }
        if let Some(b) = d.read_lock::<Blob>() {
            self.take(2 + 4 * b.len())?;
            return Ok(Value::Array(b.iter().map(|x| Value::from(*x)).collect()));
        }
        if let Some(m) = d.read_lock::<RMap>() {
            self.take(2)?;
            let mut map = Map::new();
            for (k, v) in m.iter() {
                self.take(k.len() + 4)?;
                let v = self.value(v, depth + 1)?;
                map.insert(k.to_string(), v);
            }
            return Ok(Value::Object(map));
        }
        if let Some(rows) = d.read_lock::<Rows>() {
            rows_fit(self, &rows, depth)?;
            return Ok(Value::Array(rows.as_slice().to_vec()));
        }
        Err(ConvertError::NotJson(d.type_name().to_string()))
    }
}

/// The size of a JSON value found `depth` levels down, as [`Out`] counts it; `None` when it
/// is nested past [`MAX_DEPTH`] there.
fn json_size(v: &Value, depth: usize) -> Option<usize> {
    match v {
        Value::Null => Some(4),
        Value::Bool(_) => Some(5),
        Value::Number(n) => Some(if n.is_f64() { 24 } else { 20 }),
        Value::String(s) => Some(s.len() + 2),
        Value::Array(a) if depth < MAX_DEPTH => a.iter().try_fold(2, |sum, x| Some(sum + 1 + json_size(x, depth + 1)?)),
        Value::Object(m) if depth < MAX_DEPTH => m
            .iter()
            .try_fold(2, |sum, (k, v)| Some(sum + k.len() + 4 + json_size(v, depth + 1)?)),
        Value::Array(_) | Value::Object(_) => None,
    }
}

/// Is a script value nested at most [`MAX_DEPTH`] levels? Nothing is copied.
pub(crate) fn check_depth(d: &Dynamic) -> Result<(), ConvertError> {
    fn at(d: &Dynamic, depth: usize) -> bool {
        if let Some(a) = d.read_lock::<Array>() {
            depth < MAX_DEPTH && a.iter().all(|x| at(x, depth + 1))
        } else if let Some(m) = d.read_lock::<RMap>() {
            depth < MAX_DEPTH && m.values().all(|x| at(x, depth + 1))
        } else {
            true
        }
    }
    if at(d, 0) { Ok(()) } else { Err(ConvertError::TooDeep) }
}

/// Is a JSON value nested at most [`MAX_DEPTH`] levels?
pub(crate) fn check_json_depth(v: &Value) -> Result<(), ConvertError> {
    fn at(v: &Value, depth: usize) -> bool {
        match v {
            Value::Array(a) => depth < MAX_DEPTH && a.iter().all(|x| at(x, depth + 1)),
            Value::Object(m) => depth < MAX_DEPTH && m.values().all(|x| at(x, depth + 1)),
            _ => true,
        }
    }
    if at(v, 0) { Ok(()) } else { Err(ConvertError::TooDeep) }
}

/// Rows found `depth` levels down, as the JSON array they become: each row is within the
/// depth limit there (a row can gain levels through `set_where`), and counted toward the
/// byte limit.
fn rows_fit(out: &mut Out, rows: &Rows, depth: usize) -> Result<(), ConvertError> {
    out.take(2)?;
    for row in rows.as_slice() {
        out.take(1 + json_size(row, depth + 1).ok_or(ConvertError::TooDeep)?)?;
    }
    Ok(())
}

/// A JSON value as a script value. The JSON was made on another thread (a PVE answer, the
/// tool's arguments), so it is dropped without crediting the script's memory budget.
///
/// Built directly rather than through serde: a PVE answer of 10,000 guests converts in a
/// fraction of the time. Strings are copied (allocated on the script's thread, so that they
/// count toward its budget) and integers beyond Rhai's range become floats, as with serde.
pub(crate) fn to_dynamic(v: Value) -> Result<Dynamic, ConvertError> {
    check_json_depth(&v)?;
    let out = dynamic_of(&v);
    super::budget::drop_foreign(v);
    Ok(out)
}

/// A JSON value whose depth is known to be within [`MAX_DEPTH`] (a row of
/// [`super::rows::Rows`]) as a script value, copied on this thread.
pub(crate) fn to_dynamic_ref(v: &Value) -> Dynamic {
    dynamic_of(v)
}

/// The conversion itself; its depth is bounded by [`check_json_depth`] before.
fn dynamic_of(v: &Value) -> Dynamic {
    match v {
        Value::Null => Dynamic::UNIT,
        Value::Bool(b) => Dynamic::from_bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Dynamic::from_int(i),
            None => Dynamic::from_float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => Dynamic::from(ImmutableString::from(s.as_str())),
        Value::Array(a) => Dynamic::from_array(a.iter().map(dynamic_of).collect()),
        Value::Object(m) => {
            let mut map = RMap::new();
            for (k, v) in m {
                map.insert(k.as_str().into(), dynamic_of(v));
            }
            Dynamic::from_map(map)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn eval(script: &str) -> Dynamic {
        crate::script::sandbox::engine(std::sync::Arc::new(|_| {}))
            .eval::<Dynamic>(script)
            .unwrap()
    }

    #[test]
    fn round_trip() {
        let v = json!({"a": [1, 2.5, "x", true, null, {"b": []}], "c": {}});
        let d = to_dynamic(v.clone()).unwrap();
        assert_eq!(to_json(&d, 1 << 20).unwrap(), v);
        assert_eq!(to_json(&eval("'c'"), 100).unwrap(), json!("c"));
    }

    #[test]
    fn direct_conversion_matches_rhais_serde() {
        let v = json!({
            "s": "x", "long": "a string longer than any inline one, to be sure", "i": -3,
            "u": 18446744073709551615u64, "f": 0.25, "t": true, "n": null,
            "a": [[], {}, [1, {"k": "v"}]], "": {"ü": 1}
        });
        let direct = to_dynamic(v.clone()).unwrap();
        let serde = rhai::serde::to_dynamic(&v).unwrap();
        assert_eq!(format!("{direct:?}"), format!("{serde:?}"));
        assert_eq!(direct.type_name(), "map");
        assert_eq!(to_json(&direct, 1 << 20).unwrap()["u"], json!(18446744073709551615.0));
    }

    #[test]
    fn depth_is_bounded_both_ways() {
        let deep = eval("let a = []; for i in 0..1000 { a = [a]; } a");
        assert_eq!(to_json(&deep, usize::MAX), Err(ConvertError::TooDeep));
        let ok = eval(&format!("let a = []; for i in 0..{} {{ a = [a]; }} a", MAX_DEPTH - 1));
        assert!(to_json(&ok, usize::MAX).is_ok());
        let mut v = json!(1);
        for _ in 0..=MAX_DEPTH {
            v = json!([v]);
        }
        assert_eq!(check_json_depth(&v), Err(ConvertError::TooDeep));
        assert!(check_json_depth(&v[0]).is_ok());
    }

    #[test]
    fn rows_are_bounded_in_depth_where_they_sit() {
        let mut deep = json!(1);
        for _ in 0..MAX_DEPTH - 1 {
            deep = json!([deep]);
        }
        // A row of MAX_DEPTH levels fits alone, not inside the array the rows become.
        assert!(check_json_depth(&json!({"k": deep.clone()})).is_ok());
        let rows = Rows::own(vec![json!({"k": deep})]);
        let alone = Dynamic::from(rows.clone());
        assert_eq!(to_json(&alone, usize::MAX), Err(ConvertError::TooDeep));
        assert_eq!(into_json(alone, usize::MAX), Err(ConvertError::TooDeep));
        let shallow = Dynamic::from(Rows::own(vec![json!({"k": [1]})]));
        assert_eq!(to_json(&shallow, usize::MAX), Ok(json!([{"k": [1]}])));
        let mut m = RMap::new();
        m.insert("rows".into(), shallow);
        assert_eq!(
            into_json(Dynamic::from_map(m), usize::MAX),
            Ok(json!({"rows": [{"k": [1]}]}))
        );
    }

    #[test]
    fn size_is_bounded() {
        let big = eval("let m = #{}; let s = \"x\"; s.pad(1000, 'x'); for i in 0..100 { m[`k${i}`] = s; } m");
        assert!(to_json(&big, 200_000).is_ok());
        assert_eq!(to_json(&big, 50_000), Err(ConvertError::TooLarge { limit: 50_000 }));
    }

    #[test]
    fn functions_are_not_json() {
        let f = eval("|x| x");
        assert!(matches!(to_json(&f, 1000), Err(ConvertError::NotJson(_))));
    }
}
