//! The simulator's wire layer: PVE's `/api2/json` format over HTTP and HTTPS.
//!
//! Requests are parsed into [`Request`] (query string, form or JSON body); handlers answer
//! with a [`Reply`], written the way pve-http-server writes it: the `{"data": …}` envelope,
//! the error message as the reason phrase (and as `message` in the body), PVE's headers,
//! and `Connection: close` on every error.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming};
use hyper::header::{CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use hyper::{Response, StatusCode};
use serde_json::{Map, Value, json};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;
use tokio_util::sync::CancellationToken;

use crate::api::Method;

/// How the parameters of a request arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Encoding {
    Query,
    Form,
    Json,
}

impl Encoding {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Encoding::Query => "query",
            Encoding::Form => "form",
            Encoding::Json => "json",
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Request {
    pub method: Method,
    /// Decoded path below `/api2/json`, starting with `/`.
    pub path: String,
    pub params: Map<String, Value>,
    pub encoding: Encoding,
    pub authorization: Option<String>,
}

impl Request {
    pub(crate) fn segments(&self) -> Vec<&str> {
        self.path
            .trim_start_matches('/')
            .split('/')
            .filter(|s| !s.is_empty())
            .collect()
    }
}

#[derive(Debug, Clone)]
pub enum ReplyBody {
    /// `{"data": …}` plus extra envelope keys (`total`, …).
    Data(Value, Map<String, Value>),
    /// An error body: `{"data": null, "message": …[, "errors": …]}`.
    Error {
        message: String,
        errors: Option<Map<String, Value>>,
    },
    /// No body at all (401, 595, 596).
    Empty,
    /// Anything else, e.g. a reverse proxy's HTML page or malformed JSON.
    Raw { content_type: &'static str, bytes: Bytes },
    /// Claims `claimed` bytes, sends `bytes`, then drops the connection.
    Truncated { bytes: Bytes, claimed: usize },
    /// No response at all: the connection is closed as soon as the request is read.
    Reset,
}

/// Marks a response that must not be sent: the connection is dropped instead.
#[derive(Debug, Clone, Copy)]
struct ResetConnection;

#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub reason: Option<String>,
    pub body: ReplyBody,
}

impl Reply {
    pub fn data(v: Value) -> Reply {
        Reply {
            status: 200,
            reason: None,
            body: ReplyBody::Data(v, Map::new()),
        }
    }

    pub(crate) fn data_with(v: Value, extra: Map<String, Value>) -> Reply {
        Reply {
            status: 200,
            reason: None,
            body: ReplyBody::Data(v, extra),
        }
    }

    /// An error as PVE words it: the reason phrase is the message's first line.
    pub fn error(status: u16, message: impl Into<String>) -> Reply {
        let message = message.into();
        let reason = message.lines().next().unwrap_or("").to_string();
        Reply {
            status,
            reason: Some(reason),
            body: ReplyBody::Error { message, errors: None },
        }
    }

    /// 400 with PVE's per-parameter `errors` map.
    pub(crate) fn param_errors(errors: Map<String, Value>) -> Reply {
        Reply {
            status: 400,
            reason: Some("Parameter verification failed.".into()),
            body: ReplyBody::Error {
                message: "Parameter verification failed.".into(),
                errors: Some(errors),
            },
        }
    }

    pub(crate) fn param_error(param: &str, msg: impl Into<String>) -> Reply {
        let mut m = Map::new();
        m.insert(param.to_string(), Value::String(msg.into()));
        Reply::param_errors(m)
    }

    /// A status with only a reason phrase and no body (401, 595, 596).
    pub fn bare(status: u16, reason: impl Into<String>) -> Reply {
        Reply {
            status,
            reason: Some(reason.into()),
            body: ReplyBody::Empty,
        }
    }
}

/// The response body: whole, or broken off mid-way.
pub(crate) enum SimBody {
    Whole(Option<Bytes>),
    Broken(Option<Bytes>),
}

impl Body for SimBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.get_mut() {
            SimBody::Whole(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            SimBody::Broken(b) => match b.take() {
                Some(b) => Poll::Ready(Some(Ok(Frame::data(b)))),
                None => Poll::Ready(Some(Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionReset,
                    "connection dropped by fault injection",
                )))),
            },
        }
    }
}

fn httpdate() -> String {
    // RFC 7231 date, e.g. "Sun, 21 Sep 2025 14:40:32 GMT".
    let secs = super::state::now_secs() as i64;
    let (y, m, d, h, mi, s) = crate::human::utc_parts(secs);
    let wd = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][secs.div_euclid(86_400).rem_euclid(7) as usize];
    let mon = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ][(m - 1) as usize];
    format!("{wd}, {d:02} {mon} {y} {h:02}:{mi:02}:{s:02} GMT")
}

/// Turn a [`Reply`] into the HTTP response PVE would send.
pub(crate) fn render(reply: Reply) -> Response<SimBody> {
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if matches!(reply.body, ReplyBody::Reset) {
        let mut resp = Response::new(SimBody::Whole(None));
        resp.extensions_mut().insert(ResetConnection);
        return resp;
    }
    let (content_type, body, broken): (Option<&str>, Bytes, Option<usize>) = match reply.body {
        ReplyBody::Data(v, extra) => {
            let mut env = extra;
            env.insert("data".into(), v);
            (
                Some("application/json;charset=UTF-8"),
                Bytes::from(Value::Object(env).to_string()),
                None,
            )
        }
        ReplyBody::Error { message, errors } => {
            let mut env = json!({"data": null, "message": format!("{}\n", message.trim_end())});
            if let Some(e) = errors {
                env["errors"] = Value::Object(e);
            }
            (
                Some("application/json;charset=UTF-8"),
                Bytes::from(env.to_string()),
                None,
            )
        }
        ReplyBody::Empty => (None, Bytes::new(), None),
        ReplyBody::Raw { content_type, bytes } => (Some(content_type), bytes, None),
        ReplyBody::Truncated { bytes, claimed } => (Some("application/json;charset=UTF-8"), bytes, Some(claimed)),
        ReplyBody::Reset => (None, Bytes::new(), None),
    };
    let len = broken.unwrap_or(body.len());
    let mut resp = Response::new(match broken {
        Some(_) => SimBody::Broken(Some(body)),
        None => SimBody::Whole((!body.is_empty()).then_some(body)),
    });
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert("server", HeaderValue::from_static("pve-api-daemon/3.0"));
    h.insert("cache-control", HeaderValue::from_static("max-age=0"));
    h.insert("pragma", HeaderValue::from_static("no-cache"));
    if let Ok(v) = HeaderValue::from_str(&httpdate()) {
        h.insert("expires", v.clone());
        h.insert("date", v);
    }
    if let Some(ct) = content_type
        && let Ok(v) = HeaderValue::from_str(ct)
    {
        h.insert(CONTENT_TYPE, v);
    }
    h.insert(CONTENT_LENGTH, HeaderValue::from(len));
    if reply.status >= 400 {
        h.insert(CONNECTION, HeaderValue::from_static("close"));
    }
    if let Some(reason) = reply.reason
        && let Ok(r) = hyper::ext::ReasonPhrase::try_from(reason.into_bytes())
    {
        resp.extensions_mut().insert(r);
    }
    resp
}

fn parse_pairs(s: &[u8]) -> Map<String, Value> {
    let mut out = Map::new();
    for (k, v) in url::form_urlencoded::parse(s) {
        let v = Value::String(v.into_owned());
        match out.get_mut(k.as_ref()) {
            Some(Value::Array(a)) => a.push(v),
            Some(existing) => {
                let first = existing.take();
                *existing = Value::Array(vec![first, v]);
            }
            None => {
                out.insert(k.into_owned(), v);
            }
        }
    }
    out
}

/// Parse a hyper request. `Err` is a ready reply (bad method, not under `/api2/json`, bad JSON).
pub(crate) async fn parse(req: hyper::Request<Incoming>) -> Result<Request, Reply> {
    let method = match *req.method() {
        hyper::Method::GET => Method::Get,
        hyper::Method::POST => Method::Post,
        hyper::Method::PUT => Method::Put,
        hyper::Method::DELETE => Method::Delete,
        ref other => {
            return Err(Reply::error(
                501,
                format!("Method '{other} {}' not implemented", req.uri().path()),
            ));
        }
    };
    let raw_path = req.uri().path().to_string();
    let decoded = percent_encoding::percent_decode_str(&raw_path)
        .decode_utf8_lossy()
        .into_owned();
    let Some(path) = decoded.strip_prefix("/api2/json") else {
        return Err(Reply::error(
            501,
            format!("Method '{method} {decoded}' not implemented"),
        ));
    };
    let path = if path.is_empty() {
        "/".to_string()
    } else {
        path.to_string()
    };
    let authorization = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let query = req.uri().query().map(|q| parse_pairs(q.as_bytes())).unwrap_or_default();
    let content_type = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let (mut params, encoding) = match method {
        Method::Get | Method::Delete => (Map::new(), Encoding::Query),
        Method::Post | Method::Put if content_type.starts_with("application/json") => {
            if body.is_empty() {
                (Map::new(), Encoding::Json)
            } else {
                match serde_json::from_slice::<Value>(&body) {
                    Ok(Value::Object(m)) => (m, Encoding::Json),
                    Ok(_) => return Err(Reply::error(500, "JSON body is not an object")),
                    Err(e) => return Err(Reply::error(500, format!("malformed JSON string: {e}"))),
                }
            }
        }
        Method::Post | Method::Put => (parse_pairs(&body), Encoding::Form),
    };
    // Query-string parameters override body parameters, as in pve-http-server.
    params.extend(query);
    Ok(Request {
        method,
        path,
        params,
        encoding,
        authorization,
    })
}

/// A self-signed certificate for 127.0.0.1 and localhost, made at start.
pub(crate) fn tls_acceptor() -> Result<TlsAcceptor, String> {
    let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .map_err(|e| format!("cannot generate the certificate: {e}"))?;
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(rustls::pki_types::PrivatePkcs8KeyDer::from(
        ck.signing_key.serialize_der(),
    ));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(vec![ck.cert.der().clone()], key)
        .map_err(|e| format!("cannot use the certificate: {e}"))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// What answers one request.
pub(crate) type Handler = Arc<
    dyn Fn(hyper::Request<Incoming>) -> Pin<Box<dyn std::future::Future<Output = Response<SimBody>> + Send>>
        + Send
        + Sync,
>;

/// Accept connections until `stop` fires; with `tls`, speak HTTPS.
pub(crate) async fn serve(listener: TcpListener, tls: Option<TlsAcceptor>, handler: Handler, stop: CancellationToken) {
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => return,
            a = listener.accept() => a,
        };
        let Ok((stream, _peer)) = accepted else { continue };
        // As an HTTP server should: an answer written while the peer has not yet acknowledged
        // the last segment (TLS session tickets right after the handshake) goes out at once,
        // instead of waiting for the peer's delayed acknowledgement (40 ms on Linux).
        let _ = stream.set_nodelay(true);
        let handler = handler.clone();
        let tls = tls.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let h = handler.clone();
                async move {
                    let resp = h(req).await;
                    if resp.extensions().get::<ResetConnection>().is_some() {
                        // A service error makes hyper close the connection unanswered.
                        return Err(std::io::Error::new(
                            std::io::ErrorKind::ConnectionReset,
                            "connection reset by fault injection",
                        ));
                    }
                    Ok(resp)
                }
            });
            let builder = hyper::server::conn::http1::Builder::new();
            let result = match tls {
                Some(acceptor) => match acceptor.accept(stream).await {
                    Ok(s) => {
                        tokio::select! {
                            r = builder.serve_connection(hyper_util::rt::TokioIo::new(s), service) => r,
                            _ = stop.cancelled() => Ok(()),
                        }
                    }
                    Err(e) => {
                        tracing::debug!("simulator TLS handshake failed: {e}");
                        return;
                    }
                },
                None => {
                    tokio::select! {
                        r = builder.serve_connection(hyper_util::rt::TokioIo::new(stream), service) => r,
                        _ = stop.cancelled() => Ok(()),
                    }
                }
            };
            if let Err(e) = result {
                tracing::debug!("simulator connection ended: {e}");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_keys_become_lists() {
        let m = parse_pairs(b"command=ls&command=-la&full=1");
        assert_eq!(Value::Object(m), json!({"command": ["ls", "-la"], "full": "1"}));
    }
}
