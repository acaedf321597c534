//! A stateful simulated Proxmox VE API: try every tool with no PVE host, develop scripts
//! with no risk, and test against something that behaves like PVE. Kept apart from the
//! production path; built with the `simulator` feature (on by default).
//!
//! [`Simulator::start`] serves one cluster over HTTP and HTTPS (a self-signed certificate
//! made at start) on 127.0.0.1. Each request goes: parse → request log → faults → token →
//! finish due tasks → route (node reachable, permission, parameters) → handler.

pub(crate) mod api;
pub(crate) mod auth;
pub mod faults;
pub(crate) mod http;
pub(crate) mod params;
pub mod spec;
pub(crate) mod state;

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde_json::json;
use tokio_util::sync::CancellationToken;

use auth::Tokens;
use faults::{Fault, FaultAction};
use http::{Reply, Request};
use spec::ClusterSpec;
use state::State;

#[derive(Debug, Clone)]
pub struct SimOptions {
    pub spec: ClusterSpec,
    pub bind: IpAddr,
    /// `Some(0)` picks a free port; `None` does not listen.
    pub http_port: Option<u16>,
    pub https_port: Option<u16>,
    /// Append every request, as JSON lines for `pve_schema.py check-log`.
    pub request_log: Option<PathBuf>,
}

impl SimOptions {
    pub fn new(spec: ClusterSpec) -> SimOptions {
        SimOptions {
            spec,
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            http_port: Some(0),
            https_port: Some(0),
            request_log: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("{0}")]
    Spec(#[from] spec::SpecError),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("cannot open the request log {path}: {source}")]
    Log { path: String, source: std::io::Error },
    #[error("TLS setup failed: {0}")]
    Tls(String),
}

struct Shared {
    state: Mutex<State>,
    tokens: Tokens,
    faults: Mutex<Vec<Fault>>,
    log: Option<Mutex<std::fs::File>>,
    auth_delay: std::time::Duration,
    first_token: Option<(String, String)>,
    requests: std::sync::atomic::AtomicUsize,
    writes: std::sync::atomic::AtomicUsize,
}

/// A running simulated cluster; dropping it stops the listeners.
pub struct Simulator {
    shared: Arc<Shared>,
    http: Option<SocketAddr>,
    https: Option<SocketAddr>,
    stop: CancellationToken,
}

impl Simulator {
    pub async fn start(opts: SimOptions) -> Result<Simulator, SimError> {
        opts.spec.validate()?;
        // Clients in this process (tests, the bench) reach it with reqwest, which needs the
        // process's rustls provider.
        crate::pve::install_crypto_provider();
        let log = match &opts.request_log {
            Some(p) => Some(Mutex::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)
                    .map_err(|source| SimError::Log {
                        path: p.display().to_string(),
                        source,
                    })?,
            )),
            None => None,
        };
        let shared = Arc::new(Shared {
            state: Mutex::new(State::new(&opts.spec)),
            tokens: Tokens::new(opts.spec.tokens.clone(), opts.spec.major()),
            faults: Mutex::new(opts.spec.faults.iter().filter_map(|f| f.fault().ok()).collect()),
            log,
            auth_delay: std::time::Duration::from_millis(opts.spec.auth_failure_delay_ms),
            first_token: opts.spec.tokens.first().map(|t| (t.id.clone(), t.secret.clone())),
            requests: std::sync::atomic::AtomicUsize::new(0),
            writes: std::sync::atomic::AtomicUsize::new(0),
        });
        let stop = CancellationToken::new();
        let handler: http::Handler = {
            let shared = shared.clone();
            Arc::new(move |req| {
                let shared = shared.clone();
                Box::pin(async move { http::render(handle(&shared, req).await) })
            })
        };
        let mut bound = [None, None];
        for (i, port) in [opts.http_port, opts.https_port].into_iter().enumerate() {
            let Some(port) = port else { continue };
            let addr = SocketAddr::new(opts.bind, port);
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| SimError::Bind { addr, source })?;
            bound[i] = listener.local_addr().ok();
            let tls = if i == 1 {
                Some(http::tls_acceptor().map_err(SimError::Tls)?)
            } else {
                None
            };
            tokio::spawn(http::serve(listener, tls, handler.clone(), stop.clone()));
        }
        Ok(Simulator {
            shared,
            http: bound[0],
            https: bound[1],
            stop,
        })
    }

    /// `http://127.0.0.1:PORT`, when listening on HTTP.
    pub fn http_url(&self) -> Option<String> {
        self.http.map(|a| format!("http://{a}"))
    }

    /// `https://127.0.0.1:PORT`, when listening on HTTPS.
    pub fn https_url(&self) -> Option<String> {
        self.https.map(|a| format!("https://{a}"))
    }

    /// The first token of the cluster description: (id, secret).
    pub fn token(&self) -> Option<(String, String)> {
        self.shared.first_token.clone()
    }

    /// Requests received so far (every method, every outcome).
    pub fn request_count(&self) -> usize {
        self.shared.requests.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Requests other than GET received so far.
    pub fn write_count(&self) -> usize {
        self.shared.writes.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn add_fault(&self, fault: Fault) {
        self.shared.faults.lock().unwrap_or_else(|p| p.into_inner()).push(fault);
    }

    pub fn clear_faults(&self) {
        self.shared.faults.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// Look at or change the cluster's state directly (tasks due are finished first).
    pub fn with_state<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let mut st = self.shared.state.lock().unwrap_or_else(|p| p.into_inner());
        st.advance();
        f(&mut st)
    }

    pub fn shutdown(&self) {
        self.stop.cancel();
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

fn log_request(shared: &Shared, req: &Request) {
    let Some(log) = &shared.log else { return };
    let mut line = json!({"method": req.method.as_str(), "path": req.path, "params": req.params, "encoding": req.encoding.as_str()}).to_string();
    line.push('\n');
    // One write per line: several simulators may append to the same file.
    let mut f = log.lock().unwrap_or_else(|p| p.into_inner());
    if let Err(e) = f.write_all(line.as_bytes()) {
        tracing::warn!("simulator request log: {e}");
    }
}

/// The first fault matching the request, consuming one of its uses.
fn take_fault(shared: &Shared, req: &Request) -> Option<FaultAction> {
    let mut faults = shared.faults.lock().unwrap_or_else(|p| p.into_inner());
    let f = faults.iter_mut().find(|f| f.matches(req.method, &req.path))?;
    if let Some(n) = f.times.as_mut() {
        *n -= 1;
    }
    Some(f.action.clone())
}

async fn handle(shared: &Shared, raw: hyper::Request<hyper::body::Incoming>) -> Reply {
    let req = match http::parse(raw).await {
        Ok(r) => r,
        Err(reply) => return reply,
    };
    log_request(shared, &req);
    shared.requests.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    if req.method != crate::api::Method::Get {
        shared.writes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    let mut req = req;
    let mut omit = Vec::new();
    match take_fault(shared, &req) {
        Some(FaultAction::Latency(d)) => tokio::time::sleep(d).await,
        Some(FaultAction::Hang) => std::future::pending::<()>().await,
        Some(FaultAction::Omit(fields)) => omit = fields,
        Some(FaultAction::IgnoreParams) => req.params.clear(),
        Some(FaultAction::Data(v)) => {
            // The answer replaced, but only for a caller PVE would have answered.
            if let Err(reply) = shared.tokens.authenticate(req.authorization.as_deref()) {
                return reply;
            }
            return Reply::data(v);
        }
        Some(action) => {
            if let Some(reply) = faults::reply(&action) {
                return reply;
            }
        }
        None => {}
    }
    let who = match shared.tokens.authenticate(req.authorization.as_deref()) {
        Ok(w) => w,
        Err(reply) => {
            tokio::time::sleep(shared.auth_delay).await;
            return reply;
        }
    };
    let mut st = shared.state.lock().unwrap_or_else(|p| p.into_inner());
    st.advance();
    let mut reply = api::dispatch(&mut st, &req, &who, &shared.tokens);
    if let http::ReplyBody::Data(data, _) = &mut reply.body {
        let objects: Vec<&mut serde_json::Map<String, serde_json::Value>> = match data {
            serde_json::Value::Object(m) => vec![m],
            serde_json::Value::Array(items) => items.iter_mut().filter_map(|i| i.as_object_mut()).collect(),
            _ => Vec::new(),
        };
        for m in objects {
            for field in &omit {
                m.remove(field);
            }
        }
    }
    reply
}
