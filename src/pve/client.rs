//! One pooled reqwest client for every request the server makes.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderValue};
use serde_json::Value;
use url::Url;

use super::encode;
use super::error::{ApiError, PveError, TransportError, TransportKind, transport_kind};
use super::vmids::VmidMap;
use crate::api::{ApiPath, Method};
use crate::config::Connection;
use crate::gate::Permit;

#[derive(Clone)]
pub struct PveClient {
    http: reqwest::Client,
    base: Url,
    auth: HeaderValue,
    target: String,
    timeout: Duration,
    /// Where each guest lives, filled from every guest listing this client reads.
    vmids: Arc<VmidMap>,
}

impl std::fmt::Debug for PveClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PveClient")
            .field("base", &self.base.as_str())
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClientBuildError {
    #[error("PVE_TOKEN_ID or PVE_TOKEN_SECRET holds characters that cannot go into an HTTP header")]
    BadHeader,
    #[error("could not set up the HTTP client: {0}")]
    Http(String),
}

/// Make ring the process's default rustls provider, unless one is installed already.
///
/// reqwest is built without a provider of its own (`rustls-no-provider`) and takes the
/// process's default, so every reqwest client in the process needs this first: the PVE
/// client and the simulator call it, and so must any other code that builds one.
pub fn install_crypto_provider() {
    // Installing fails only when a provider is installed already, which is as good.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

impl PveClient {
    pub fn new(conn: &Connection) -> Result<PveClient, ClientBuildError> {
        let mut auth = HeaderValue::from_str(&format!("PVEAPIToken={}={}", conn.token_id, conn.token_secret))
            .map_err(|_| ClientBuildError::BadHeader)?;
        auth.set_sensitive(true);
        install_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(conn.timeout)
            .connect_timeout(conn.timeout.min(Duration::from_secs(10)))
            .tls_danger_accept_invalid_certs(!conn.verify_tls)
            .pool_idle_timeout(Duration::from_secs(60))
            .user_agent(concat!("pve-mcp/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ClientBuildError::Http(error_chain(&e).join(": ")))?;
        let target = format!(
            "{}:{}",
            conn.base_url.host_str().unwrap_or("?"),
            conn.base_url.port_or_known_default().unwrap_or(8006)
        );
        Ok(PveClient {
            http,
            base: conn.base_url.clone(),
            auth,
            target,
            timeout: conn.timeout,
            vmids: Arc::new(VmidMap::new()),
        })
    }

    /// Send one request the gate allowed and return PVE's `data`. A [`Permit`] is the only
    /// way in: nothing reaches PVE that `Gate::check` did not pass.
    /// Without a memory budget to bound the answer: for callers outside a script call.
    pub async fn send(&self, permit: &Permit) -> Result<Value, PveError> {
        let reply = self.fetch(permit, &BodyAllowance::new(usize::MAX)).await?;
        self.decode(permit, reply)
    }

    /// The I/O half of [`PveClient::send`]: send the request and read the whole answer,
    /// without decoding it (see [`PveClient::decode`]), so that a task on the runtime only
    /// moves bytes and the caller's thread does the parsing.
    /// A GET whose connection was dropped before the answer (a pooled connection the server
    /// had closed) is sent once more; a write never is. A body past `allowance` is not read
    /// further: the request fails with [`PveError::TooLarge`].
    pub(crate) async fn fetch(&self, permit: &Permit, allowance: &BodyAllowance) -> Result<Reply, PveError> {
        let first = self.request(permit, allowance).await;
        match first {
            Err(PveError::Transport(t)) if permit.method() == Method::Get && t.kind == TransportKind::Dropped => {
                tracing::debug!("GET {} lost its connection ({}); retrying once", permit.path(), t);
                self.request(permit, allowance).await
            }
            other => other,
        }
    }

    /// The decoding half of [`PveClient::send`]: PVE's `data`, or the error it answered. A
    /// guest listing also refreshes where each guest lives.
    pub(crate) fn decode(&self, permit: &Permit, reply: Reply) -> Result<Value, PveError> {
        let result = reply.data(permit.method(), permit.path());
        if let Ok(answer) = &result
            && permit.method() == Method::Get
            && VmidMap::lists_guests(permit.path().segments(), permit.params())
        {
            self.vmids.refresh(answer);
        }
        result
    }

    /// Where each guest lives, as last listed (see [`VmidMap`]).
    pub(crate) fn vmids(&self) -> &VmidMap {
        &self.vmids
    }

    async fn request(&self, permit: &Permit, allowance: &BodyAllowance) -> Result<Reply, PveError> {
        let (method, path, params) = (permit.method(), permit.path(), permit.params());
        // The base with the path set, rather than a string for reqwest to parse again: the
        // host is not parsed (nor IDNA-mapped) once per request.
        let mut url = self.base.clone();
        url.set_path(&format!("{}{}", self.base.path().trim_end_matches('/'), path.encoded()));
        let http_method = match method {
            Method::Get => reqwest::Method::GET,
            Method::Post => reqwest::Method::POST,
            Method::Put => reqwest::Method::PUT,
            Method::Delete => reqwest::Method::DELETE,
        };
        let mut req = self
            .http
            .request(http_method, url)
            .header(AUTHORIZATION, self.auth.clone())
            .header(ACCEPT, "application/json");
        match method {
            Method::Get | Method::Delete => {
                let pairs = encode::pairs(params)?;
                if !pairs.is_empty() {
                    req = req.query(&pairs);
                }
            }
            Method::Post | Method::Put => req = req.form(&encode::pairs(params)?),
        }
        let transport = |e: reqwest::Error| {
            let chain = error_chain(&e);
            PveError::Transport(TransportError {
                kind: transport_kind(&e, &chain),
                method: method.as_str(),
                path: path.to_string(),
                target: self.target.clone(),
                timeout: self.timeout,
                chain,
            })
        };
        let mut resp = req.send().await.map_err(transport)?;
        let status = resp.status();
        let reason = resp
            .extensions()
            .get::<hyper::ext::ReasonPhrase>()
            .map(|r| String::from_utf8_lossy(r.as_bytes()).into_owned())
            .or_else(|| status.canonical_reason().map(str::to_string));
        let html_type = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| t.trim_start().to_ascii_lowercase().starts_with("text/html"));
        let too_large = || PveError::TooLarge {
            method: method.as_str(),
            path: path.to_string(),
            limit: allowance.limit,
        };
        // Read as it comes, so that a body past the allowance is never held whole; a length
        // announced past it is refused before anything is read.
        let announced = resp.content_length().map(|n| usize::try_from(n).unwrap_or(usize::MAX));
        if announced.is_some_and(|n| n > allowance.left()) {
            return Err(too_large());
        }
        // Room for the announced length, up to a bound: a length can be announced and not sent.
        const PREALLOCATE_AT_MOST: usize = 16 << 20;
        let mut body = Vec::with_capacity(announced.unwrap_or(0).min(PREALLOCATE_AT_MOST));
        while let Some(chunk) = resp.chunk().await.map_err(transport)? {
            if !allowance.take(chunk.len()) {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        let body = bytes::Bytes::from(body);
        Ok(Reply {
            status,
            reason,
            html_type,
            body,
        })
    }
}

/// How many bytes of answers a call may still read: its memory budget's remainder when it
/// sent them. Shared by the requests of one fan-out, so that together they stay within it.
#[derive(Debug, Clone)]
pub(crate) struct BodyAllowance {
    left: Arc<AtomicUsize>,
    limit: usize,
}

impl BodyAllowance {
    pub(crate) fn new(limit: usize) -> BodyAllowance {
        BodyAllowance {
            left: Arc::new(AtomicUsize::new(limit)),
            limit,
        }
    }

    fn left(&self) -> usize {
        self.left.load(Ordering::Relaxed)
    }

    /// Take `n` bytes; false (and nothing taken) when fewer are left.
    fn take(&self, n: usize) -> bool {
        self.left
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| left.checked_sub(n))
            .is_ok()
    }
}

/// PVE's answer to one request as it came off the connection: status, reason phrase, and
/// the whole body, not yet decoded.
pub(crate) struct Reply {
    status: reqwest::StatusCode,
    reason: Option<String>,
    html_type: bool,
    body: bytes::Bytes,
}

impl Reply {
    /// PVE's `data`, or the error it answered, for a request of `method` to `path`.
    fn data(self, method: Method, path: &ApiPath) -> Result<Value, PveError> {
        let Reply {
            status,
            reason,
            html_type,
            body,
        } = self;
        let html = html_type || body.trim_ascii_start().starts_with(b"<");
        if status.is_success() {
            let envelope: Value = serde_json::from_slice(&body).map_err(|e| PveError::BadResponse {
                method: method.as_str(),
                path: path.to_string(),
                status: status.as_u16(),
                detail: if html {
                    format!(
                        "an HTML page, which PVE's API never sends, so a proxy or another web server answered; it starts with {:?}",
                        preview(&body)
                    )
                } else {
                    format!("{e}; the body starts with {:?}", preview(&body))
                },
            })?;
            return match envelope {
                Value::Object(mut map) if map.contains_key("data") => Ok(map.remove("data").unwrap_or(Value::Null)),
                _ => Err(PveError::BadResponse {
                    method: method.as_str(),
                    path: path.to_string(),
                    status: status.as_u16(),
                    detail: format!("no 'data' field; the body starts with {:?}", preview(&body)),
                }),
            };
        }
        let (message, errors) = parse_error_body(&body);
        Err(PveError::Api(ApiError {
            method: method.as_str(),
            path: path.to_string(),
            status: status.as_u16(),
            reason,
            message,
            errors,
            proxy_page: html,
        }))
    }
}

/// `message` and `errors` from an error body; a plain-text body counts as the message.
fn parse_error_body(body: &[u8]) -> (Option<String>, BTreeMap<String, String>) {
    let mut errors = BTreeMap::new();
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => {
            if let Some(Value::Object(errs)) = map.get("errors") {
                for (k, v) in errs {
                    let text = v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string());
                    errors.insert(k.clone(), text);
                }
            }
            let message = map.get("message").and_then(Value::as_str).map(|s| s.trim().to_string());
            (message.filter(|s| !s.is_empty()), errors)
        }
        _ => {
            let text = String::from_utf8_lossy(body).trim().to_string();
            // An HTML page (a reverse proxy's error page) is noise; keep plain text only.
            let plain = !text.is_empty() && !text.starts_with('<') && text.len() <= 2000;
            (plain.then_some(text), errors)
        }
    }
}

fn preview(body: &[u8]) -> String {
    String::from_utf8_lossy(&body[..body.len().min(80)]).into_owned()
}

/// `Display` of an error and all its sources, outermost first.
pub(crate) fn error_chain(err: &(dyn std::error::Error + 'static)) -> Vec<String> {
    let mut out = vec![err.to_string()];
    let mut source = err.source();
    while let Some(e) = source {
        let s = e.to_string();
        if out.last() != Some(&s) {
            out.push(s);
        }
        source = e.source();
    }
    out
}
