//! `pve::guests()` and `pve::guests(filter)`: the cluster's guests as rows, `tags` parsed
//! into a list, filtered by tag, status, node, type, name or template.

use rhai::{Array, Dynamic, Map as RMap, Module, NativeCallContext};
use serde_json::{Map, Value, json};

use super::{R, call, reg, request, to_dynamic, usage};
use crate::api::{ApiPath, Method};
use crate::script::context::CallContext;
use crate::script::rows::{Picker, push_companions};

/// The keys a filter may have.
pub(super) const FILTER_KEYS: &[&str] = &["tag", "tags", "status", "node", "type", "name", "template"];

pub(super) fn register(m: &mut Module) {
    reg(m, "guests", |n: NativeCallContext| -> R {
        guests(&*call(&n)?, &n, Dynamic::UNIT)
    });
    reg(m, "guests", |n: NativeCallContext, filter: Dynamic| -> R {
        guests(&*call(&n)?, &n, filter)
    });
}

/// PVE's tag list (`"prod;web"`, also `,` or spaces) → `["prod", "web"]`.
pub(super) fn parse_tags(raw: &str) -> Vec<String> {
    raw.split([';', ',', ' '])
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect()
}

#[derive(Default)]
struct Filter {
    tags: Vec<String>,
    fields: Vec<(&'static str, String)>,
    template: Option<bool>,
}

fn filter_from(n: &NativeCallContext, filter: &Dynamic) -> Result<Filter, Box<rhai::EvalAltResult>> {
    let mut f = Filter::default();
    if filter.is_unit() {
        return Ok(f);
    }
    let Some(map) = filter.read_lock::<RMap>() else {
        return Err(usage(
            n,
            format!(
                "pve::guests takes a filter map like #{{tag: \"prod\", status: \"running\"}}, got {}",
                filter.type_name()
            ),
        ));
    };
    for (k, v) in map.iter() {
        let key = k.as_str();
        let text = |v: &Dynamic| -> Result<String, Box<rhai::EvalAltResult>> {
            v.read_lock::<rhai::ImmutableString>()
                .map(|s| s.to_string())
                .or_else(|| v.as_int().ok().map(|i| i.to_string()))
                .ok_or_else(|| {
                    usage(
                        n,
                        format!("pve::guests filter {key} is a string, got {}", v.type_name()),
                    )
                })
        };
        match key {
            "tag" => f.tags.push(text(v)?),
            "tags" => {
                let Some(list) = v.read_lock::<Array>() else {
                    return Err(usage(
                        n,
                        format!("pve::guests filter tags is a list of tags, got {}", v.type_name()),
                    ));
                };
                for t in list.iter() {
                    f.tags.push(text(t)?);
                }
            }
            "template" => {
                f.template = Some(
                    v.as_bool()
                        .map_err(|t| usage(n, format!("pve::guests filter template is true or false, got {t}")))?,
                )
            }
            other => {
                let Some(known) = FILTER_KEYS.iter().find(|k| **k == other) else {
                    return Err(usage(
                        n,
                        format!(
                            "pve::guests has no filter '{other}'; it filters by {}",
                            FILTER_KEYS.join(", ")
                        ),
                    ));
                };
                f.fields.push((known, text(v)?));
            }
        }
    }
    Ok(f)
}

fn guests(cx: &CallContext, n: &NativeCallContext, filter: Dynamic) -> R {
    let f = filter_from(n, &filter)?;
    let path = ApiPath::parse("/cluster/resources").map_err(|e| usage(n, e.to_string()))?;
    let params = json!({"type": "vm"});
    let rows = request(cx, n, Method::Get, &path, params.as_object().unwrap_or(&Map::new()))?.unwrap_or(Value::Null);
    let mut out: Vec<Value> = rows
        .as_array()
        .map(|a| a.iter().filter_map(|r| row(r, &f)).collect())
        .unwrap_or_default();
    out.sort_by_key(|r| r.get("vmid").and_then(Value::as_i64).unwrap_or(0));
    to_dynamic(n, Value::Array(out))
}

fn row(r: &Value, f: &Filter) -> Option<Value> {
    let (_, g) = normalize(r, None)?;
    let tags: Vec<&str> = g["tags"].as_array()?.iter().filter_map(Value::as_str).collect();
    if !f.tags.iter().all(|t| tags.contains(&t.as_str())) || f.template.is_some_and(|want| g["template"] != want) {
        return None;
    }
    for (key, want) in &f.fields {
        let have = g.get(*key).map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        });
        if have.as_deref() != Some(want.as_str()) {
            return None;
        }
    }
    Some(g)
}

/// A `/cluster/resources` guest row as scripts get it, with its vmid: `vmid` an integer,
/// `template` a boolean, `tags` a list, and `name`, `node`, `type`, `status` always present;
/// with `picker`, only its fields (with their companions, as `pve::pick` gives them).
/// `None` for a row without a vmid.
pub(super) fn normalize(r: &Value, picker: Option<&Picker>) -> Option<(i64, Value)> {
    let src = r.as_object()?;
    let vmid = src
        .get("vmid")
        .and_then(|v| v.as_i64().or_else(|| v.as_str().and_then(|s| s.parse().ok())))?;
    let wanted = |key: &str| picker.is_none_or(|p| p.wants(key));
    let mut seen = [false; ALWAYS.len()];
    let mut out = Vec::with_capacity(picker.map_or(src.len(), Picker::len) + 4);
    for (k, v) in src.iter().filter(|(k, _)| wanted(k)) {
        match always_slot(k) {
            Some(i) => {
                seen[i] = true;
                out.push((k.clone(), normal(k, Some(v), vmid)));
            }
            None => {
                if picker.is_some() {
                    push_companions(&mut out, k, v);
                }
                out.push((k.clone(), v.clone()));
            }
        }
    }
    for (key, _) in ALWAYS.iter().zip(seen).filter(|(k, seen)| !seen && wanted(k)) {
        out.push(((*key).to_string(), normal(key, None, vmid)));
    }
    Some((vmid, Value::Object(out.into_iter().collect())))
}

/// The keys every guest row has.
const ALWAYS: [&str; 7] = ["vmid", "template", "tags", "name", "node", "type", "status"];

/// Where `key` is in [`ALWAYS`]: a match rather than a search, as it runs for every field
/// of every guest.
fn always_slot(key: &str) -> Option<usize> {
    match key {
        "vmid" => Some(0),
        "template" => Some(1),
        "tags" => Some(2),
        "name" => Some(3),
        "node" => Some(4),
        "type" => Some(5),
        "status" => Some(6),
        _ => None,
    }
}

/// A guest row's value of one of [`ALWAYS`], from PVE's (`None` when PVE left it out).
fn normal(key: &str, v: Option<&Value>, vmid: i64) -> Value {
    match key {
        "vmid" => json!(vmid),
        "template" => json!(crate::gate::truthy(v)),
        "tags" => json!(parse_tags(v.and_then(Value::as_str).unwrap_or(""))),
        _ => v.cloned().unwrap_or_else(|| json!("")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_a_guest_row_has_has_its_slot() {
        for (i, key) in ALWAYS.iter().enumerate() {
            assert_eq!(always_slot(key), Some(i), "{key}");
        }
        assert_eq!(always_slot("maxmem"), None);
        let (vmid, row) = normalize(&json!({"vmid": "105", "tags": "a;b"}), None).expect("a guest row");
        assert_eq!(vmid, 105);
        assert_eq!(
            row,
            json!({"vmid": 105, "tags": ["a", "b"], "template": false, "name": "", "node": "", "type": "", "status": ""})
        );
    }

    #[test]
    fn tags_and_filters() {
        assert_eq!(parse_tags("prod;web"), ["prod", "web"]);
        assert_eq!(parse_tags(" a, b  c;"), ["a", "b", "c"]);
        assert!(parse_tags("").is_empty());
        let r = json!({"vmid": 100, "name": "web", "status": "running", "tags": "prod;web", "template": 0});
        let f = Filter {
            tags: vec!["prod".into()],
            fields: vec![("status", "running".into())],
            template: Some(false),
        };
        let got = row(&r, &f).unwrap();
        assert_eq!(got["tags"], json!(["prod", "web"]));
        assert_eq!(got["template"], json!(false));
        let f = Filter {
            tags: vec!["db".into()],
            ..Filter::default()
        };
        assert!(row(&r, &f).is_none());
    }
}
