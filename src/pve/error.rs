//! Typed PVE errors. Their `Display` is the actionable sentence a user sees: what failed,
//! why, and what to do next. The token secret never appears in any of them.

use std::collections::BTreeMap;
use std::time::Duration;

use thiserror::Error;

#[derive(Debug, Clone, Error)]
pub enum PveError {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error(
        "{method} {path} was answered with HTTP {status}, but not with the JSON envelope PVE sends ({detail}): PVE, or a proxy in front of it, sent something unexpected. Check that PVE_HOST points at PVE itself (port 8006) rather than a proxy or another service"
    )]
    BadResponse {
        method: &'static str,
        path: String,
        status: u16,
        detail: String,
    },
    #[error("parameter '{name}' cannot be sent: {why}")]
    InvalidParam { name: String, why: String },
    #[error(
        "{method} {path}: PVE's answer is larger than the {} MiB the call's memory budget had left, so it was not read (PVE_MCP_SCRIPT_MEMORY); ask for less at once (a limit, one node or one storage)",
        .limit.div_ceil(1 << 20)
    )]
    TooLarge {
        method: &'static str,
        path: String,
        /// The bytes the answer (with the others read beside it) could have had.
        limit: usize,
    },
}

/// PVE answered with an error status.
#[derive(Debug, Clone, Error, PartialEq)]
#[error("{}", self.sentence())]
pub struct ApiError {
    pub method: &'static str,
    pub path: String,
    pub status: u16,
    /// The HTTP reason phrase (PVE puts its error message there).
    pub reason: Option<String>,
    /// `message` from the body (PVE http-server ≥ 5.2).
    pub message: Option<String>,
    /// PVE's per-parameter `errors` map.
    pub errors: BTreeMap<String, String>,
    /// The body was an HTML page, which PVE's API never sends: a proxy in front of PVE
    /// (nginx, HAProxy, a load balancer) answered, not PVE.
    pub proxy_page: bool,
}

impl ApiError {
    /// PVE's own words: body `message`, else the reason phrase, else a generic text.
    pub fn pve_message(&self) -> String {
        let text = self
            .message
            .as_deref()
            .or(self.reason.as_deref())
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty());
        text.unwrap_or_else(|| format!("HTTP {}", self.status))
    }

    /// `(path, privilege)` from "Permission check failed (/vms/100, VM.PowerMgmt)".
    pub fn missing_permission(&self) -> Option<(String, String)> {
        let msg = self.pve_message();
        let inner = msg.split_once('(')?.1.rsplit_once(')')?.0;
        let (path, privs) = inner.split_once(',')?;
        Some((path.trim().to_string(), privs.trim().to_string()))
    }

    fn field_errors(&self) -> String {
        self.errors
            .iter()
            .map(|(k, v)| format!("{k}: {}", v.trim()))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn sentence(&self) -> String {
        let (m, p, msg) = (self.method, &self.path, self.pve_message());
        if self.proxy_page {
            return format!(
                "A proxy in front of PVE, not PVE itself, answered {m} {p} with HTTP {} ({msg}) and an HTML page. PVE behind it may be down, restarting or unreachable from the proxy: retry in a little while, and if it persists check the proxy and pveproxy on the PVE node (or point PVE_HOST at PVE directly).",
                self.status
            );
        }
        match self.status {
            401 => format!(
                "PVE rejected the API token ({msg}) for {m} {p}. Check PVE_TOKEN_ID (USER@REALM!TOKENNAME) and PVE_TOKEN_SECRET, and that the token exists, has not expired and its user is enabled. (A token created with privilege separation does authenticate, but has no rights until ACLs are granted to the token itself: that shows as 403s or empty lists, not as 401.) PVE delays every 401 by about 3 seconds, so do not retry in a loop."
            ),
            403 => match self.missing_permission() {
                Some((acl, privs)) => format!(
                    "PVE denied {m} {p}: the token lacks {privs} on {acl} ({msg}). {} A token created with privilege separation has no rights of its own until an ACL is granted to the token itself.",
                    grant_hint(&acl, &privs)
                ),
                None => format!(
                    "PVE denied {m} {p} ({msg}). The token lacks a privilege for this request; check its ACLs (Datacenter → Permissions), remembering that a privilege-separated token needs ACLs of its own."
                ),
            },
            400 if !self.errors.is_empty() => {
                format!("PVE rejected the parameters of {m} {p}: {}", self.field_errors())
            }
            501 => format!("PVE does not implement {m} {p} ({msg}); this PVE version may not have that endpoint."),
            595 | 596 => format!(
                "PVE could not reach the node that serves {m} {p} ({} {msg}); the node may be offline or its certificate changed.",
                self.status
            ),
            _ if !self.errors.is_empty() => format!("PVE failed {m} {p}: {msg} ({})", self.field_errors()),
            _ => format!("PVE failed {m} {p}: {msg}"),
        }
    }
}

/// "Grant … on PATH": the built-in roles that include the privilege.
fn grant_hint(acl: &str, privs: &str) -> String {
    use super::roles::{PveMajor, roles_granting};
    let first = privs.split('|').next().unwrap_or(privs).trim();
    let mut roles = roles_granting(first, PveMajor::V8);
    if roles.is_empty() {
        roles = roles_granting(first, PveMajor::V9);
    }
    let mut hint = match roles.as_slice() {
        [] => format!("Grant a role that includes {privs} on {acl} (Datacenter → Permissions → Add)."),
        [one] => format!(
            "Grant the built-in role {one} (or one that includes {first}) on {acl} (Datacenter → Permissions → Add)."
        ),
        many => format!(
            "Built-in roles that include {first}: {}. Grant one on {acl} (Datacenter → Permissions → Add).",
            many.join(", ")
        ),
    };
    if first == "VM.Monitor" || first.starts_with("VM.GuestAgent") {
        hint.push_str(
            " Guest-agent calls need VM.Monitor on PVE 8 and VM.GuestAgent.Unrestricted (in PVEVMAdmin) on PVE 9.",
        );
    }
    hint
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportKind {
    Tls,
    Refused,
    Timeout,
    Dns,
    Connect,
    /// The connection closed or was reset before an answer came (often an idle pooled
    /// connection that the server had closed).
    Dropped,
    Other,
}

/// The request never got an HTTP answer.
#[derive(Debug, Clone, Error)]
#[error("{}", self.sentence())]
pub struct TransportError {
    pub kind: TransportKind,
    pub method: &'static str,
    pub path: String,
    /// `host:port` that was tried.
    pub target: String,
    pub timeout: Duration,
    /// The cause chain, outermost first.
    pub chain: Vec<String>,
}

impl TransportError {
    fn cause(&self) -> String {
        // The innermost causes say why; the outer ones repeat the URL.
        let mut parts: Vec<&str> = self.chain.iter().skip(1).map(String::as_str).collect();
        if parts.is_empty() {
            parts = self.chain.iter().map(String::as_str).collect();
        }
        parts.join(": ")
    }

    /// A write that got no answer may still have been carried out by PVE.
    pub(crate) fn may_have_happened(&self) -> bool {
        self.method != "GET"
            && matches!(
                self.kind,
                TransportKind::Timeout | TransportKind::Dropped | TransportKind::Other
            )
    }

    fn sentence(&self) -> String {
        let (t, cause) = (&self.target, self.cause());
        if self.may_have_happened() {
            return format!(
                "No answer came to {} {} from {t} ({cause}), so PVE may have carried out the request. Do not simply retry it: first check the guest's recent tasks (pve_list_tasks for its vmid, or pve_task_status) or its current state, then decide.",
                self.method, self.path
            );
        }
        match self.kind {
            TransportKind::Tls => format!(
                "TLS handshake with {t} failed ({cause}). PVE's default certificate is self-signed: set PVE_VERIFY_SSL=false to accept it, or install the cluster CA on this machine."
            ),
            TransportKind::Refused => format!(
                "Connection to {t} was refused ({cause}). Check PVE_HOST (host and port; PVE listens on 8006) and that pveproxy is running."
            ),
            TransportKind::Timeout => format!(
                "PVE at {t} did not answer {} {} within {:.0?} ({cause}). Check that the host is reachable, or raise PVE_TIMEOUT.",
                self.method, self.path, self.timeout
            ),
            TransportKind::Dns => format!(
                "The host of PVE_HOST ({t}) could not be resolved ({cause}). Check the name or use an IP address."
            ),
            TransportKind::Connect => {
                format!("Could not connect to PVE at {t} ({cause}). Check PVE_HOST and the network path to it.")
            }
            TransportKind::Dropped => format!(
                "The connection to {t} closed before {} {} was answered ({cause}); it was retried once. Check that pveproxy on the host is healthy.",
                self.method, self.path
            ),
            TransportKind::Other => format!("The request {} {} to {t} failed ({cause}).", self.method, self.path),
        }
    }
}

/// Sort a transport failure by its cause chain.
pub(crate) fn transport_kind(err: &reqwest::Error, chain: &[String]) -> TransportKind {
    let joined = chain.join(" | ").to_ascii_lowercase();
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            match io.kind() {
                std::io::ErrorKind::ConnectionRefused => return TransportKind::Refused,
                std::io::ErrorKind::TimedOut => return TransportKind::Timeout,
                _ => {}
            }
        }
        source = e.source();
    }
    let dropped = [
        "connection closed before message completed",
        "connection reset",
        "broken pipe",
        "close_notify",
        "unexpected eof",
        "incompletemessage",
        "incomplete message",
    ];
    if err.is_timeout() {
        TransportKind::Timeout
    } else if dropped.iter().any(|w| joined.contains(w)) {
        // Checked before TLS: a reset idle connection's chain may mention TLS.
        TransportKind::Dropped
    } else if ["certificate", "tls", "handshake", "invalidcertificate", "unknownissuer"]
        .iter()
        .any(|w| joined.contains(w))
    {
        TransportKind::Tls
    } else if joined.contains("dns error")
        || joined.contains("failed to lookup address")
        || joined.contains("name or service not known")
    {
        TransportKind::Dns
    } else if err.is_connect() {
        TransportKind::Connect
    } else {
        TransportKind::Other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(status: u16, reason: Option<&str>, message: Option<&str>) -> ApiError {
        ApiError {
            method: "POST",
            path: "/nodes/n/qemu/100/status/start".into(),
            status,
            reason: reason.map(Into::into),
            message: message.map(Into::into),
            errors: BTreeMap::new(),
            proxy_page: false,
        }
    }

    #[test]
    fn permission_is_parsed_from_message_or_reason() {
        let e = api(403, Some("Permission check failed (/vms/100, VM.PowerMgmt)"), None);
        assert_eq!(e.missing_permission(), Some(("/vms/100".into(), "VM.PowerMgmt".into())));
        let s = e.to_string();
        assert!(s.contains("lacks VM.PowerMgmt on /vms/100"), "{s}");
        assert!(s.contains("privilege separation"));
        assert!(s.contains("Built-in roles that include VM.PowerMgmt: PVEVMUser"), "{s}");
        let e = api(403, Some("Permission check failed (/vms/100, VM.Monitor)"), None);
        assert!(e.to_string().contains("VM.GuestAgent.Unrestricted"), "{e}");
        let e = api(
            403,
            Some("Forbidden"),
            Some("Permission check failed (/storage/local, Datastore.Audit|Datastore.AllocateSpace)\n"),
        );
        assert_eq!(
            e.missing_permission().unwrap().1,
            "Datastore.Audit|Datastore.AllocateSpace"
        );
    }

    #[test]
    fn sentences() {
        assert!(
            api(401, Some("Authentication failed!"), None)
                .to_string()
                .contains("PVE_TOKEN_SECRET")
        );
        let mut e = api(400, Some("Parameter verification failed."), None);
        e.errors.insert("vmid".into(), "VM 100 already exists".into());
        assert_eq!(
            e.to_string(),
            "PVE rejected the parameters of POST /nodes/n/qemu/100/status/start: vmid: VM 100 already exists"
        );
        let e = api(500, Some("VM 100 not running"), Some("VM 100 not running\n"));
        assert_eq!(
            e.to_string(),
            "PVE failed POST /nodes/n/qemu/100/status/start: VM 100 not running"
        );
        assert!(
            api(595, Some("Connection refused"), None)
                .to_string()
                .contains("offline")
        );
        assert_eq!(api(500, None, None).pve_message(), "HTTP 500");
        let mut e = api(502, Some("Bad Gateway"), None);
        e.proxy_page = true;
        let s = e.to_string();
        assert!(
            s.starts_with("A proxy in front of PVE, not PVE itself, answered POST"),
            "{s}"
        );
        assert!(s.contains("HTTP 502 (Bad Gateway)"), "{s}");
    }
}
