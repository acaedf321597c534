//! Fault injection: rules that make matching requests slow, fail, hang, or break the way
//! real networks and proxies do. Set per test through [`super::Simulator::add_fault`].

use std::time::Duration;

use bytes::Bytes;

use super::http::{Reply, ReplyBody};
use crate::gate::Method;

#[derive(Debug, Clone, PartialEq)]
pub enum FaultAction {
    /// Answer normally, after this delay.
    Latency(Duration),
    /// Answer with this status and message (PVE's error format).
    Status(u16, String),
    /// Never answer.
    Hang,
    /// `200` with a body that is not JSON.
    MalformedJson,
    /// A reverse proxy's HTML error page with this status.
    HtmlPage(u16),
    /// Start the body, then drop the connection.
    DropMidBody,
    /// `595`, as pveproxy answers for a node that is down.
    NodeOffline,
    /// `596`, as pveproxy answers when TLS to the node fails.
    NodeTls,
    /// Answer as usual, but without these fields of `data`, or of each object of a list
    /// (an answer from another release or a PVE-compatible API that leaves them out).
    Omit(Vec<String>),
    /// `200` with this as `data`: `null`, a string where a list belongs, … (a broken
    /// PVE-compatible service, or a proxy that rewrites answers).
    Data(serde_json::Value),
    /// Answer as if the request had no query or body parameters (a proxy that drops the
    /// query string).
    IgnoreParams,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    /// Only this method (any when `None`).
    pub method: Option<Method>,
    /// A glob over the decoded path below `/api2/json`: `*` matches anything.
    pub path: String,
    pub action: FaultAction,
    /// How many requests it applies to (`None`: all).
    pub times: Option<usize>,
}

impl Fault {
    pub fn new(path: &str, action: FaultAction) -> Fault {
        Fault {
            method: None,
            path: path.to_string(),
            action,
            times: None,
        }
    }

    pub fn method(mut self, m: Method) -> Fault {
        self.method = Some(m);
        self
    }

    pub fn times(mut self, n: usize) -> Fault {
        self.times = Some(n);
        self
    }

    pub fn matches(&self, method: Method, path: &str) -> bool {
        self.method.is_none_or(|m| m == method) && glob(&self.path, path) && self.times != Some(0)
    }
}

/// `*` matches any run of characters; everything else matches itself.
pub fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

/// The reply a short-circuiting fault gives (`None` for the faults that change how the
/// request is answered rather than answering it).
pub fn reply(action: &FaultAction) -> Option<Reply> {
    Some(match action {
        FaultAction::Latency(_) | FaultAction::Hang | FaultAction::Omit(_) | FaultAction::IgnoreParams => return None,
        FaultAction::Status(code, msg) => Reply::error(*code, msg.clone()),
        FaultAction::Data(v) => Reply::data(v.clone()),
        FaultAction::MalformedJson => Reply {
            status: 200,
            reason: None,
            body: ReplyBody::Raw {
                content_type: "application/json;charset=UTF-8",
                bytes: Bytes::from_static(b"{\"data\": [{\"vmid\": 100,"),
            },
        },
        FaultAction::HtmlPage(code) => Reply {
            status: *code,
            reason: Some(if *code == 502 {
                "Bad Gateway".into()
            } else {
                "Service Unavailable".into()
            }),
            body: ReplyBody::Raw {
                content_type: "text/html",
                bytes: Bytes::from(format!(
                    "<html><head><title>{code}</title></head><body><center><h1>{code}</h1></center><hr><center>nginx</center></body></html>"
                )),
            },
        },
        FaultAction::DropMidBody => Reply {
            status: 200,
            reason: None,
            body: ReplyBody::Truncated {
                bytes: Bytes::from_static(b"{\"data\": [{\"vmid\": 100, \"name\": \"w"),
                claimed: 4096,
            },
        },
        FaultAction::NodeOffline => Reply::bare(595, "No route to host"),
        FaultAction::NodeTls => Reply::bare(596, "tls_process_server_certificate: certificate verify failed"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob("/cluster/resources", "/cluster/resources"));
        assert!(glob("/nodes/*/qemu/*/status/*", "/nodes/pve1/qemu/100/status/start"));
        assert!(glob("*", "/anything"));
        assert!(glob("/nodes/pve3/*", "/nodes/pve3/status"));
        assert!(!glob("/nodes/pve3/*", "/nodes/pve1/status"));
        assert!(!glob("/a*b*c", "/abx"));
    }
}
