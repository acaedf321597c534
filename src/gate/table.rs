//! The endpoint table (`endpoints.txt`): every (method, path template) of the PVE API with
//! its class, and the router that finds a request's template the way PVE's does.
//!
//! PVE's router (pve-common `PVE::RESTHandler::map_path_to_methods`) walks the path one
//! segment at a time; a level has either fixed names or one `{param}` matching any segment
//! without whitespace, never both. Below `/nodes/{node}/storage/{storage}/content` PVE joins
//! the rest of the path into one segment (the `fragmentDelimiter` of pve-storage), because a
//! volume id may hold `/`. The table is parsed once; a malformed line is a build defect that
//! the unit tests catch.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use super::capability::{Capabilities, Capability};
use crate::api::Method;

const TABLE: &str = include_str!("endpoints.txt");

/// Where PVE stops splitting the path: everything below is one segment.
const JOIN_REST_BELOW: &[&str] = &["nodes", "{node}", "storage", "{storage}", "content"];

/// What a table line says about its endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    /// A fixed set of capabilities.
    Needs(Capabilities),
    /// Never sent from a tool; the text says why.
    Forbidden(String),
    /// Decided from the parameters by the named inspector.
    Inspect(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub method: Method,
    pub template: String,
    pub rule: Rule,
    pub reason: String,
    /// 1-based line in `endpoints.txt`, for messages and tests.
    pub line: usize,
}

#[derive(Debug, Default)]
struct Level {
    fixed: BTreeMap<String, Level>,
    param: Option<Box<Level>>,
    join_rest: bool,
    methods: BTreeMap<&'static str, usize>,
}

pub struct Table {
    entries: Vec<Entry>,
    root: Level,
}

/// The parsed table (panics at first use only if `endpoints.txt` itself is malformed, which
/// the unit test `table_parses` rules out for every build).
pub fn table() -> &'static Table {
    static T: LazyLock<Table> = LazyLock::new(|| match Table::parse(TABLE) {
        Ok(t) => t,
        Err(e) => panic!("src/gate/endpoints.txt: {e}"),
    });
    &T
}

impl Table {
    pub fn parse(text: &str) -> Result<Table, String> {
        let mut t = Table {
            entries: Vec::new(),
            root: Level::default(),
        };
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let (body, reason) = match raw.split_once('#') {
                Some((b, r)) => (b, r.trim()),
                None => (raw, ""),
            };
            let fields: Vec<&str> = body.split_whitespace().collect();
            if fields.is_empty() {
                continue;
            }
            let [method, template, class] = fields[..] else {
                return Err(format!("line {line}: expected METHOD TEMPLATE CLASS, got {raw:?}"));
            };
            let method = parse_method(method).ok_or_else(|| format!("line {line}: unknown method {method}"))?;
            let rule = parse_rule(class, reason).map_err(|e| format!("line {line}: {e}"))?;
            t.insert(Entry {
                method,
                template: template.to_string(),
                rule,
                reason: reason.to_string(),
                line,
            })?;
        }
        Ok(t)
    }

    fn insert(&mut self, e: Entry) -> Result<(), String> {
        let idx = self.entries.len();
        let segs: Vec<&str> = e.template.trim_start_matches('/').split('/').collect();
        if !e.template.starts_with('/') || segs.iter().any(|s| s.is_empty()) {
            return Err(format!("line {}: bad template {}", e.line, e.template));
        }
        let mut level = &mut self.root;
        let mut walked: Vec<&str> = Vec::new();
        for s in segs {
            let is_param = s.starts_with('{') && s.ends_with('}');
            if is_param {
                if !level.fixed.is_empty() {
                    return Err(format!(
                        "line {}: {} mixes a parameter with fixed names",
                        e.line, e.template
                    ));
                }
                level = level.param.get_or_insert_with(Default::default);
            } else {
                if level.param.is_some() {
                    return Err(format!(
                        "line {}: {} mixes a parameter with fixed names",
                        e.line, e.template
                    ));
                }
                level = level.fixed.entry(s.to_string()).or_default();
            }
            walked.push(s);
            if walked == JOIN_REST_BELOW {
                level.join_rest = true;
            }
        }
        if level.methods.insert(e.method.as_str(), idx).is_some() {
            return Err(format!("line {}: {} {} is listed twice", e.line, e.method, e.template));
        }
        self.entries.push(e);
        Ok(())
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The entry PVE would route this request to, if any. `segments` are decoded, as PVE
    /// sees them (a `/` inside a segment already split).
    pub fn lookup(&self, method: Method, segments: &[String]) -> Option<&Entry> {
        let mut level = &self.root;
        let mut i = 0;
        while i < segments.len() {
            let seg: std::borrow::Cow<'_, str> = if level.join_rest && segments.len() - i > 1 {
                let rest = segments[i..].join("/");
                i = segments.len() - 1;
                rest.into()
            } else {
                segments[i].as_str().into()
            };
            level = if let Some(p) = &level.param {
                if seg.is_empty() || seg.chars().any(char::is_whitespace) {
                    return None;
                }
                p
            } else {
                level.fixed.get(seg.as_ref())?
            };
            i += 1;
        }
        level.methods.get(method.as_str()).map(|&i| &self.entries[i])
    }
}

fn parse_method(s: &str) -> Option<Method> {
    [Method::Get, Method::Post, Method::Put, Method::Delete]
        .into_iter()
        .find(|m| m.as_str() == s)
}

fn parse_rule(class: &str, reason: &str) -> Result<Rule, String> {
    if class == "forbidden" {
        let why = reason
            .strip_prefix('[')
            .and_then(|r| r.split_once(']'))
            .map_or(reason, |(_, w)| w.trim());
        if why.is_empty() {
            return Err("a forbidden endpoint needs a reason".into());
        }
        return Ok(Rule::Forbidden(why.to_string()));
    }
    if let Some(name) = class.strip_prefix('@') {
        if !super::inspect::exists(name) {
            return Err(format!("no inspector named {name}"));
        }
        return Ok(Rule::Inspect(name.to_string()));
    }
    let mut caps = Capabilities::READ;
    for part in class.split('+') {
        let c = Capability::parse(part).ok_or_else(|| format!("unknown class {part}"))?;
        caps = caps.with(c);
    }
    Ok(Rule::Needs(caps))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segs(p: &str) -> Vec<String> {
        p.trim_start_matches('/').split('/').map(str::to_string).collect()
    }
    fn find(m: Method, p: &str) -> Option<&'static str> {
        table().lookup(m, &segs(p)).map(|e| e.template.as_str())
    }

    #[test]
    fn table_parses() {
        let t = Table::parse(TABLE).unwrap_or_else(|e| panic!("{e}"));
        assert!(t.entries().len() > 600);
    }

    #[test]
    fn routes_like_pve() {
        assert_eq!(
            find(Method::Get, "/nodes/pve1/qemu/100/status/current"),
            Some("/nodes/{node}/qemu/{vmid}/status/current")
        );
        assert_eq!(
            find(Method::Delete, "/nodes/pve1/qemu/100"),
            Some("/nodes/{node}/qemu/{vmid}")
        );
        assert_eq!(
            find(
                Method::Delete,
                "/nodes/n/storage/nfs/content/nfs:backup/vzdump-qemu-100.vma.zst"
            ),
            Some("/nodes/{node}/storage/{storage}/content/{volume}")
        );
        assert_eq!(
            find(Method::Get, "/nodes/n/storage/nfs/content"),
            Some("/nodes/{node}/storage/{storage}/content")
        );
        assert_eq!(find(Method::Post, "/cluster/resources"), None);
        assert_eq!(find(Method::Get, "/nodes/n/brand-new-thing"), None);
        assert_eq!(find(Method::Get, "/etc/passwd"), None);
        assert_eq!(find(Method::Get, "/nodes/n/qemu/100/status/current/extra"), None);
    }

    #[test]
    fn malformed_tables_are_refused() {
        for (table, why) in [
            ("GET /a read\nGET /a read", "line 2: GET /a is listed twice"),
            (
                "GET /a/{x} read\nGET /a/b read",
                "line 2: /a/b mixes a parameter with fixed names",
            ),
            ("GET /a nonsense", "line 1: unknown class nonsense"),
            ("POST /a forbidden", "line 1: a forbidden endpoint needs a reason"),
            (
                "GET /a @no-such-inspector",
                "line 1: no inspector named no-such-inspector",
            ),
            ("GET /a read extra", "line 1: expected METHOD TEMPLATE CLASS"),
        ] {
            let err = Table::parse(table)
                .err()
                .unwrap_or_else(|| panic!("{table:?} was taken"));
            assert!(err.contains(why), "{table:?}: {err}");
        }
    }
}
