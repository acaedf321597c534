//! [`Rows`]: a list answer of PVE kept as JSON inside a script. Turning 10,000 guests into
//! script maps and back costs many times the request itself; a script that narrows, picks
//! and returns a listing does it with the native operations here, and no row it does not
//! look at is ever converted. A result holding `Rows` is serialized from the JSON directly
//! (see [`super::convert::to_json`]).

use std::cmp::Ordering;
use std::sync::Arc;

use serde_json::{Map, Value};

use super::budget;
use crate::human;

/// An immutable list of JSON values; cloning shares it.
#[derive(Clone)]
pub(crate) struct Rows(Arc<Held>);

struct Held {
    rows: Vec<Value>,
    /// Made on another thread (a PVE answer): its bytes were never counted on the script's
    /// thread, so it is charged there by this estimate while it is held, and dropping it
    /// credits that, not what it frees.
    foreign: Option<usize>,
}

impl Clone for Held {
    fn clone(&self) -> Held {
        Held {
            rows: self.rows.clone(),
            foreign: None,
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Some(charged) = self.foreign {
            drop_later(std::mem::take(&mut self.rows), charged);
            budget::release(charged);
        }
    }
}

/// About the heap a JSON value holds, for the budget of rows made elsewhere.
fn heap_bytes(v: &Value) -> usize {
    const SLOT: usize = std::mem::size_of::<Value>();
    const KEY: usize = std::mem::size_of::<String>();
    match v {
        Value::String(s) => s.capacity(),
        Value::Array(a) => a.capacity() * SLOT + a.iter().map(heap_bytes).sum::<usize>(),
        // A B-tree's nodes are about two thirds full.
        Value::Object(m) => m
            .iter()
            .map(|(k, v)| (KEY + SLOT) * 3 / 2 + k.capacity() + heap_bytes(v))
            .sum(),
        _ => 0,
    }
}

/// Copies that would not fit the call's memory budget.
#[derive(Debug, thiserror::Error)]
#[error(
    "rows.set_where would copy the value into {rows} rows, about {} MiB, more than the call's memory budget has left (PVE_MCP_SCRIPT_MEMORY); set a smaller value, or narrow the rows with where first",
    bytes >> 20
)]
pub(crate) struct OverBudget {
    rows: usize,
    bytes: usize,
}

/// Which rows a filter keeps: for every key, the row's value equals one of the wanted ones
/// (`null` wants the key absent or null). Numbers and their decimal strings are equal, as
/// PVE gives some numbers either way.
#[derive(Debug, Default, Clone)]
pub(crate) struct RowFilter(Vec<(String, Vec<Value>)>);

impl RowFilter {
    /// One key and the values it may have.
    pub(crate) fn add(&mut self, key: String, any_of: Vec<Value>) {
        self.0.push((key, any_of));
    }

    fn keeps(&self, row: &Value) -> bool {
        let Some(m) = row.as_object() else {
            return false;
        };
        self.0
            .iter()
            .all(|(key, wants)| wants.iter().any(|w| same(m.get(key), w)))
    }
}

fn same(have: Option<&Value>, want: &Value) -> bool {
    match (have, want) {
        (None | Some(Value::Null), Value::Null) => true,
        (None, _) => false,
        (Some(a), b) => loose_eq(a, b),
    }
}

fn loose_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::String(s), Value::Number(n)) | (Value::Number(n), Value::String(s)) => {
            s.trim().parse::<f64>().ok() == n.as_f64()
        }
        _ => a == b,
    }
}

/// Order of two values for [`Rows::sort_by`]: numbers by value, then strings, then the rest;
/// a row without the key sorts last.
fn order(a: Option<&Value>, b: Option<&Value>) -> Ordering {
    fn rank(v: Option<&Value>) -> u8 {
        match v {
            Some(Value::Number(_)) => 0,
            Some(Value::String(_)) => 1,
            Some(Value::Null) | None => 3,
            Some(_) => 2,
        }
    }
    match (a, b) {
        (Some(Value::Number(x)), Some(Value::Number(y))) => {
            x.as_f64().partial_cmp(&y.as_f64()).unwrap_or(Ordering::Equal)
        }
        (Some(Value::String(x)), Some(Value::String(y))) => x.cmp(y),
        _ => rank(a).cmp(&rank(b)),
    }
}

/// The fields to keep of each row of a listing, sorted once for all its rows.
pub(crate) struct Picker(Vec<String>);

impl Picker {
    pub(crate) fn new(fields: &[String]) -> Picker {
        let mut sorted = fields.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        Picker(sorted)
    }

    pub(crate) fn wants(&self, key: &str) -> bool {
        self.0.binary_search_by(|f| f.as_str().cmp(key)).is_ok()
    }

    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }
}

/// `key`'s `*_human` and `*_iso` companions (see [`human::companions`]), pushed onto `out`.
pub(crate) fn push_companions(out: &mut Vec<(String, Value)>, key: &str, v: &Value) {
    for (k, text) in human::companions(key, v.as_f64(), v.as_i64()) {
        out.push((k, Value::String(text)));
    }
}

/// The fields of a row `picker` wants, with their companions. Collected into a map at once
/// (which sorts them in one go) rather than inserted one by one.
pub(crate) fn pick_row(src: &Map<String, Value>, picker: &Picker) -> Map<String, Value> {
    let mut out = Vec::with_capacity(picker.len() + 4);
    for (k, v) in src.iter().filter(|(k, _)| picker.wants(k)) {
        push_companions(&mut out, k, v);
        out.push((k.clone(), v.clone()));
    }
    out.into_iter().collect()
}

/// Rows made on another thread and dropped during a call, waiting to be freed once the call
/// has answered (see [`drop_later`]), with their estimated bytes. Only on a script thread,
/// whose serve loop frees them ([`free_deferred`]).
struct Deferred {
    on: bool,
    rows: Vec<Vec<Value>>,
    bytes: usize,
}

thread_local! {
    static DEFERRED: std::cell::RefCell<Deferred> = const {
        std::cell::RefCell::new(Deferred { on: false, rows: Vec::new(), bytes: 0 })
    };
}

/// The most a script thread leaves to be freed after an answer; past it, rows are freed at
/// once (a script reading a large list in a loop).
const DEFER_AT_MOST: usize = 32 << 20;

/// Lists smaller than this are freed at once.
const WORTH_DEFERRING: usize = 256 << 10;

/// From now on this thread frees large PVE lists a call let go of after the call answers,
/// when it calls [`free_deferred`].
pub(crate) fn defer_frees_on_this_thread() {
    let _ = DEFERRED.try_with(|d| d.borrow_mut().on = true);
}

/// Free `rows` (of about `bytes`) after the call answers, if this thread defers frees:
/// freeing 10,000 guests' rows takes a good part of the time answering with them does, and
/// done afterwards it overlaps the answer being written.
fn drop_later(rows: Vec<Value>, bytes: usize) {
    let now = if bytes < WORTH_DEFERRING {
        Some(rows)
    } else {
        DEFERRED
            .try_with(|d| {
                let mut d = d.borrow_mut();
                if !d.on || d.bytes + bytes > DEFER_AT_MOST {
                    return Some(rows);
                }
                d.bytes += bytes;
                d.rows.push(rows);
                None
            })
            .unwrap_or(None)
    };
    if let Some(rows) = now {
        budget::drop_foreign(rows);
    }
}

/// Free what the last call on this thread left for after its answer.
pub(crate) fn free_deferred() {
    let rows = DEFERRED
        .try_with(|d| {
            let mut d = d.borrow_mut();
            d.bytes = 0;
            std::mem::take(&mut d.rows)
        })
        .unwrap_or_default();
    budget::drop_foreign(rows);
}

impl Rows {
    /// Rows made on another thread (a PVE answer), charged to this thread's budget while
    /// they are held.
    pub(crate) fn foreign(rows: Vec<Value>) -> Rows {
        let charged = rows.capacity() * std::mem::size_of::<Value>() + rows.iter().map(heap_bytes).sum::<usize>();
        budget::charge(charged);
        Rows(Arc::new(Held {
            rows,
            foreign: Some(charged),
        }))
    }

    /// Rows made on this thread.
    pub(crate) fn own(rows: Vec<Value>) -> Rows {
        Rows(Arc::new(Held { rows, foreign: None }))
    }

    pub(crate) fn as_slice(&self) -> &[Value] {
        &self.0.rows
    }

    pub(crate) fn len(&self) -> usize {
        self.0.rows.len()
    }

    /// The rows the filter keeps, in order.
    pub(crate) fn filtered(&self, f: &RowFilter) -> Rows {
        Rows::own(self.0.rows.iter().filter(|r| f.keeps(r)).cloned().collect())
    }

    /// Every object row narrowed to `fields` (see [`pick_row`]); other rows are left out.
    pub(crate) fn picked(&self, fields: &[String]) -> Rows {
        let picker = Picker::new(fields);
        Rows::own(
            self.0
                .rows
                .iter()
                .filter_map(Value::as_object)
                .map(|m| Value::Object(pick_row(m, &picker)))
                .collect(),
        )
    }

    /// The values of `key`, from the rows that have it.
    pub(crate) fn column(&self, key: &str) -> Vec<&Value> {
        self.0.rows.iter().filter_map(|r| r.get(key)).collect()
    }

    /// The rows themselves: moved out when nothing else holds them, else copied.
    pub(crate) fn into_vec(mut self) -> Vec<Value> {
        match Arc::get_mut(&mut self.0) {
            Some(held) => std::mem::take(&mut held.rows),
            None => self.0.rows.clone(),
        }
    }

    /// The rows to change in place (copied first if they are shared).
    fn rows_mut(&mut self) -> &mut Vec<Value> {
        &mut Arc::make_mut(&mut self.0).rows
    }

    /// Set `key` to `value` on each row the filter keeps, in place; the number of rows set.
    /// Nothing is copied when no row matches, and nothing at all when the copies of `value`
    /// would not fit the thread's memory budget (one native call could otherwise multiply a
    /// value far past it before the budget is looked at).
    pub(crate) fn set_where(&mut self, f: &RowFilter, key: &str, value: &Value) -> Result<usize, OverBudget> {
        let hits: Vec<usize> = (0..self.len()).filter(|&i| f.keeps(&self.0.rows[i])).collect();
        if hits.is_empty() {
            return Ok(0);
        }
        let each = heap_bytes(value) + key.len() + std::mem::size_of::<(String, Value)>() * 3 / 2;
        let need = each.saturating_mul(hits.len());
        if need > budget::remaining() {
            return Err(OverBudget {
                rows: hits.len(),
                bytes: need,
            });
        }
        let rows = self.rows_mut();
        for &i in &hits {
            if let Some(m) = rows[i].as_object_mut() {
                m.insert(key.to_string(), value.clone());
            }
        }
        Ok(hits.len())
    }

    /// Add `other`'s rows at the end, in place.
    pub(crate) fn append(&mut self, other: &Rows) {
        let more = other.as_slice().to_vec();
        self.rows_mut().extend(more);
    }

    /// Sort the rows (stably) by `key`, in place.
    pub(crate) fn sort_by(&mut self, key: &str) {
        self.rows_mut().sort_by(|a, b| order(a.get(key), b.get(key)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rows() -> Rows {
        Rows::own(vec![
            json!({"vmid": 102, "node": "pve2", "status": "stopped", "maxmem": 1073741824}),
            json!({"vmid": "100", "node": "pve1", "status": "running"}),
            json!({"vmid": 101, "node": "pve1"}),
            json!("not a row"),
        ])
    }

    fn filter(pairs: &[(&str, Vec<Value>)]) -> RowFilter {
        let mut f = RowFilter::default();
        for (k, v) in pairs {
            f.add(k.to_string(), v.clone());
        }
        f
    }

    #[test]
    fn filters_match_any_of_and_numbers_as_strings() {
        let r = rows();
        assert_eq!(r.filtered(&filter(&[("node", vec![json!("pve1")])])).len(), 2);
        let by_id = r.filtered(&filter(&[("vmid", vec![json!(100), json!(102)])]));
        assert_eq!(by_id.len(), 2);
        // null wants the key absent.
        let no_status = r.filtered(&filter(&[("status", vec![Value::Null])]));
        assert_eq!(no_status.as_slice(), &[json!({"vmid": 101, "node": "pve1"})]);
        // Every key must match; a value of another kind never does.
        assert_eq!(
            r.filtered(&filter(&[
                ("node", vec![json!("pve1")]),
                ("status", vec![json!("running")])
            ]))
            .len(),
            1
        );
        assert_eq!(r.filtered(&filter(&[("status", vec![json!(true)])])).len(), 0);
    }

    fn deferred() -> (usize, usize) {
        DEFERRED.with(|d| {
            let d = d.borrow();
            (d.rows.len(), d.bytes)
        })
    }

    #[test]
    fn large_lists_are_freed_after_the_call_up_to_a_bound() {
        let big = || Rows::foreign(vec![json!({"volid": "x".repeat(WORTH_DEFERRING)})]);
        // Not a script thread: freed at once.
        drop(big());
        assert_eq!(deferred().0, 0);
        std::thread::spawn(move || {
            defer_frees_on_this_thread();
            drop(big());
            assert_eq!(deferred().0, 1, "a large list waits");
            drop(Rows::foreign(vec![json!({"volid": "small"})]));
            assert_eq!(deferred().0, 1, "a small one does not");
            for _ in 0..(DEFER_AT_MOST / WORTH_DEFERRING) * 2 {
                drop(big());
            }
            let (lists, bytes) = deferred();
            assert!(bytes <= DEFER_AT_MOST, "{bytes} bytes wait");
            assert!(lists < (DEFER_AT_MOST / WORTH_DEFERRING) + 1, "{lists} lists wait");
            free_deferred();
            assert_eq!(deferred(), (0, 0));
        })
        .join()
        .expect("the thread's checks hold");
    }

    #[test]
    fn rows_made_elsewhere_are_charged_while_held() {
        let _budget = budget::enter(1 << 30);
        let before = budget::remaining();
        let rows: Vec<Value> = (0..1000)
            .map(|i| json!({"volid": format!("local:iso/{i:0>100}.iso")}))
            .collect();
        let held = Rows::foreign(rows);
        // At least the strings themselves.
        assert!(before - budget::remaining() > 100_000);
        let shared = held.clone();
        drop(held);
        assert!(before - budget::remaining() > 100_000, "still held by the clone");
        drop(shared);
        assert_eq!(budget::remaining(), before);
    }

    #[test]
    fn pick_column_set_sort() {
        let r = rows();
        let p = r.picked(&["vmid".into(), "maxmem".into()]);
        assert_eq!(p.len(), 3);
        assert_eq!(
            p.as_slice()[0],
            json!({"vmid": 102, "maxmem": 1073741824, "maxmem_human": "1.00 GiB"})
        );
        assert_eq!(r.column("status"), [&json!("stopped"), &json!("running")]);
        // Changing shared rows copies them first: the other holder sees no change.
        let mut marked = r.clone();
        let set = marked.set_where(&filter(&[("node", vec![json!("pve2")])]), "node_online", &json!(false));
        assert_eq!(set.unwrap(), 1);
        assert_eq!(marked.as_slice()[0]["node_online"], json!(false));
        assert!(marked.as_slice()[1].get("node_online").is_none());
        assert!(r.as_slice()[0].get("node_online").is_none());
        let mut sorted = r.clone();
        sorted.sort_by("vmid");
        let ids: Vec<Value> = sorted
            .into_vec()
            .iter()
            .map(|r| r.get("vmid").cloned().unwrap_or(Value::Null))
            .collect();
        // Numbers first, then strings, then rows without the key.
        assert_eq!(ids, [json!(101), json!(102), json!("100"), Value::Null]);
        // No match copies nothing: the rows stay shared.
        let mut none = r.clone();
        assert_eq!(
            none.set_where(&filter(&[("node", vec![json!("x")])]), "k", &json!(1))
                .unwrap(),
            0
        );
        assert!(Arc::ptr_eq(&none.0, &r.0));
        // Copies past the budget are refused before any is made.
        {
            let _budget = budget::enter(1000);
            let big = json!("y".repeat(600));
            let e = none.set_where(&RowFilter::default(), "k", &big).unwrap_err();
            assert!(e.to_string().contains("into 3 rows"), "{e}");
            assert!(Arc::ptr_eq(&none.0, &r.0));
        }
        let mut both = r.clone();
        both.append(&r);
        assert_eq!((both.len(), r.len()), (8, 4));
        // Rows nothing else holds are moved out whole.
        assert_eq!(r.into_vec().len(), 4);
    }
}
