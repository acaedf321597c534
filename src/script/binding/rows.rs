//! `pve::get_rows(path[, params])`, `pve::guest_rows(rows)` and the methods of a `rows`
//! value (`len`, `is_empty`, `where`, `pick`, `column`, `set_where`, `append`, `sort_by`, `to_array`,
//! `rows[i]`, `for row in rows`): large listings handled natively, see [`crate::script::rows`].

use rhai::{Array, Dynamic, FuncRegistration, INT, Map as RMap, Module, NativeCallContext};
use serde_json::Value;

use super::{R, call, request, to_params, to_path, unexpected, usage};
use crate::api::Method;
use crate::script::convert::{self, check_json_depth, to_dynamic_ref};
use crate::script::rows::{Picker, RowFilter, Rows};

type Res<T> = Result<T, Box<rhai::EvalAltResult>>;

pub(super) fn register(m: &mut Module) {
    m.set_custom_type::<Rows>("rows");
    super::reg(m, "get_rows", |n: NativeCallContext, path: Dynamic| -> R {
        get_rows(&n, path, Dynamic::UNIT)
    });
    super::reg(
        m,
        "get_rows",
        |n: NativeCallContext, path: Dynamic, params: Dynamic| -> R { get_rows(&n, path, params) },
    );
    super::reg(m, "guest_rows", |n: NativeCallContext, rows: Dynamic| -> R {
        guest_rows(&n, &rows, None)
    });
    super::reg(
        m,
        "guest_rows",
        |n: NativeCallContext, rows: Dynamic, fields: Dynamic| -> R {
            let fields = names(&n, &fields)?;
            guest_rows(&n, &rows, Some(&fields))
        },
    );
    method(m, "len", |_: NativeCallContext, r: &mut Rows| -> R {
        Ok(Dynamic::from_int(r.len() as INT))
    });
    method(m, "is_empty", |_: NativeCallContext, r: &mut Rows| -> R {
        Ok(Dynamic::from_bool(r.len() == 0))
    });
    method(m, "where", |n: NativeCallContext, r: &mut Rows, f: Dynamic| -> R {
        Ok(Dynamic::from(r.filtered(&filter(&n, &f, "where")?)))
    });
    method(m, "pick", |n: NativeCallContext, r: &mut Rows, fields: Dynamic| -> R {
        Ok(Dynamic::from(r.picked(&names(&n, &fields)?)))
    });
    method(m, "column", |n: NativeCallContext, r: &mut Rows, key: Dynamic| -> R {
        let key = text(&n, &key, "column")?;
        Ok(Dynamic::from_array(
            r.column(&key).into_iter().map(to_dynamic_ref).collect(),
        ))
    });
    method(
        m,
        "set_where",
        |n: NativeCallContext, r: &mut Rows, f: Dynamic, key: Dynamic, value: Dynamic| -> R {
            let f = filter(&n, &f, "set_where")?;
            let key = text(&n, &key, "set_where")?;
            let value = json(&n, &value, "set_where")?;
            r.set_where(&f, &key, &value).map_err(|e| usage(&n, e.to_string()))?;
            Ok(Dynamic::UNIT)
        },
    );
    method(m, "append", |n: NativeCallContext, r: &mut Rows, other: Dynamic| -> R {
        let other = rows_arg(&n, &other, "rows.append")?;
        r.append(&other);
        Ok(Dynamic::UNIT)
    });
    method(m, "sort_by", |n: NativeCallContext, r: &mut Rows, key: Dynamic| -> R {
        r.sort_by(&text(&n, &key, "sort_by")?);
        Ok(Dynamic::UNIT)
    });
    method(m, "to_array", |_: NativeCallContext, r: &mut Rows| -> R {
        Ok(Dynamic::from_array(r.as_slice().iter().map(to_dynamic_ref).collect()))
    });
    for name in ["to_string", "to_debug"] {
        method(m, name, |_: NativeCallContext, r: &mut Rows| -> R {
            Ok(format!("rows({})", r.len()).into())
        });
    }
    m.set_indexer_get_fn(|r: &mut Rows, i: INT| -> R {
        let len = r.len() as INT;
        let at = if i < 0 { i + len } else { i };
        match usize::try_from(at).ok().and_then(|at| r.as_slice().get(at)) {
            Some(row) => Ok(to_dynamic_ref(row)),
            None => Err(format!("index {i} is out of range: these rows hold {len}").into()),
        }
    });
    m.set_iter(std::any::TypeId::of::<Rows>(), |d: Dynamic| {
        let rows = d.cast::<Rows>();
        Box::new((0..rows.len()).map(move |i| rows.as_slice().get(i).map(to_dynamic_ref).unwrap_or(Dynamic::UNIT)))
    });
}

/// A function scripts call as a method of `rows`.
fn method<A: 'static, const N: usize, const X: bool, F>(m: &mut Module, name: &str, f: F)
where
    F: rhai::RhaiNativeFunc<A, N, X, Dynamic, true> + Send + Sync + 'static,
{
    FuncRegistration::new(name)
        .in_global_namespace()
        .with_volatility(true)
        .set_into_module(m, f);
}

fn get_rows(n: &NativeCallContext, path: Dynamic, params: Dynamic) -> R {
    let cx = call(n)?;
    let path = to_path(n, &cx, Method::Get, &path)?;
    let params = to_params(n, &params)?;
    let rows = match request(&cx, n, Method::Get, &path, &params)? {
        None => Rows::own(Vec::new()),
        Some(Value::Array(rows)) => {
            let rows = Rows::foreign(rows);
            if let Some(deep) = rows.as_slice().iter().find(|r| check_json_depth(r).is_err()) {
                return Err(unexpected(&cx, n, &path, deep, "rows nested at most 127 levels deep"));
            }
            rows
        }
        Some(other) => return Err(unexpected(&cx, n, &path, &other, "a list")),
    };
    Ok(Dynamic::from(rows))
}

/// The guests of a `/cluster/resources` answer, as `pve::guests` gives them, sorted by
/// vmid; with `fields`, narrowed to those as `rows.pick` does (in the same pass).
fn guest_rows(n: &NativeCallContext, rows: &Dynamic, fields: Option<&[String]>) -> R {
    let rows = rows_arg(n, rows, "pve::guest_rows")?;
    let picker = fields.map(Picker::new);
    let mut out: Vec<(i64, Value)> = rows
        .as_slice()
        .iter()
        .filter(|r| matches!(r.get("type").and_then(Value::as_str), Some("qemu" | "lxc")))
        .filter_map(|r| super::guests::normalize(r, picker.as_ref()))
        .collect();
    out.sort_by_key(|(vmid, _)| *vmid);
    Ok(Dynamic::from(Rows::own(out.into_iter().map(|(_, r)| r).collect())))
}

fn rows_arg(n: &NativeCallContext, d: &Dynamic, f: &str) -> Res<Rows> {
    d.read_lock::<Rows>().map(|r| r.clone()).ok_or_else(|| {
        usage(
            n,
            format!("{f} takes the rows pve::get_rows returned, got {}", d.type_name()),
        )
    })
}

fn json(n: &NativeCallContext, d: &Dynamic, f: &str) -> Res<Value> {
    convert::to_json(d, convert::MAX_PARAMS_BYTES).map_err(|e| usage(n, format!("rows.{f}: {e}")))
}

fn text(n: &NativeCallContext, d: &Dynamic, f: &str) -> Res<String> {
    d.read_lock::<rhai::ImmutableString>()
        .map(|s| s.to_string())
        .ok_or_else(|| {
            usage(
                n,
                format!("rows.{f} takes a field name (a string), got {}", d.type_name()),
            )
        })
}

fn names(n: &NativeCallContext, d: &Dynamic) -> Res<Vec<String>> {
    let Some(list) = d.read_lock::<Array>() else {
        return Err(usage(
            n,
            format!("rows.pick takes a list of field names, got {}", d.type_name()),
        ));
    };
    list.iter().map(|f| text(n, f, "pick")).collect()
}

/// `#{node: "pve1", type: ["qemu", "lxc"]}`: each key equals the value, or one of a list's.
fn filter(n: &NativeCallContext, d: &Dynamic, f: &str) -> Res<RowFilter> {
    let Some(map) = d.read_lock::<RMap>() else {
        return Err(usage(
            n,
            format!(
                "rows.{f} takes a filter map like #{{node: \"pve1\", type: [\"qemu\", \"lxc\"]}}, got {}",
                d.type_name()
            ),
        ));
    };
    let mut out = RowFilter::default();
    for (k, v) in map.iter() {
        let any_of = match json(n, v, f)? {
            Value::Array(list) => list,
            one => vec![one],
        };
        out.add(k.to_string(), any_of);
    }
    Ok(out)
}
