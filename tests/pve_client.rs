//! The PVE client against wiremock (and raw sockets where wiremock cannot say it):
//! headers, parameter encodings, error translation, transport failures.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stderr,
    reason = "test code: a panic is the failure report"
)]

mod common;

use std::time::Duration;

use common::pve_request as request;
use pve_mcp::api::{ApiPath, Method};
use pve_mcp::config::{Connection, parse_host};
use pve_mcp::pve::{PveClient, PveError, TransportKind};
use serde_json::{Map, Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wiremock::matchers::{body_string, header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const SECRET: &str = "8c3f1a2b-4d5e-4f60-8a9b-0c1d2e3f4a5b";

fn client(uri: &str, timeout: Duration) -> PveClient {
    PveClient::new(&Connection {
        base_url: parse_host(uri).unwrap(),
        token_id: "mcp@pve!test".into(),
        token_secret: SECRET.into(),
        verify_tls: true,
        timeout,
    })
    .unwrap()
}

fn params(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

fn p(s: &str) -> ApiPath {
    ApiPath::parse(s).unwrap()
}

#[tokio::test]
async fn get_sends_token_and_query_with_booleans_as_numbers() {
    let pve = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api2/json/nodes/pve1/qemu"))
        .and(header(
            "authorization",
            format!("PVEAPIToken=mcp@pve!test={SECRET}").as_str(),
        ))
        .and(query_param("full", "1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"data": [{"vmid": 100}]})))
        .expect(1)
        .mount(&pve)
        .await;
    let c = client(&pve.uri(), Duration::from_secs(5));
    let data = request(&c, Method::Get, &p("/nodes/pve1/qemu"), &params(json!({"full": true})))
        .await
        .unwrap();
    assert_eq!(data, json!([{"vmid": 100}]));
}

#[tokio::test]
async fn post_bodies_are_forms_with_booleans_as_digits() {
    let pve = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api2/json/nodes/pve1/qemu/100/clone"))
        .and(header("content-type", "application/x-www-form-urlencoded"))
        .and(body_string("full=1&name=web-2&newid=101"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"data": "UPID:x"})))
        .expect(1)
        .mount(&pve)
        .await;
    Mock::given(method("POST"))
        .and(path("/api2/json/nodes/pve1/qemu/100/snapshot"))
        .and(header("content-type", "application/x-www-form-urlencoded"))
        .and(body_string("snapname=s1&vmstate=0"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"data": "UPID:y"})))
        .expect(1)
        .mount(&pve)
        .await;
    let c = client(&pve.uri(), Duration::from_secs(5));
    let form = params(json!({"newid": 101, "full": true, "name": "web-2"}));
    assert_eq!(
        request(&c, Method::Post, &p("/nodes/pve1/qemu/100/clone"), &form)
            .await
            .unwrap(),
        json!("UPID:x")
    );
    let body = params(json!({"snapname": "s1", "vmstate": false, "description": null}));
    assert_eq!(
        request(&c, Method::Post, &p("/nodes/pve1/qemu/100/snapshot"), &body)
            .await
            .unwrap(),
        json!("UPID:y")
    );
}

#[tokio::test]
async fn segments_are_percent_encoded() {
    let pve = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(
            "/api2/json/nodes/pve1/storage/nfs/content/nfs%3Abackup%2Fvzdump-qemu-100.vma.zst",
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"data": {"size": 1}})))
        .expect(1)
        .mount(&pve)
        .await;
    let c = client(&pve.uri(), Duration::from_secs(5));
    let segs = [
        "nodes",
        "pve1",
        "storage",
        "nfs",
        "content",
        "nfs:backup/vzdump-qemu-100.vma.zst",
    ]
    .map(String::from)
    .to_vec();
    request(&c, Method::Get, &ApiPath::from_segments(segs).unwrap(), &Map::new())
        .await
        .unwrap();
}

#[tokio::test]
async fn parameter_errors_keep_pves_field_map() {
    let pve = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "data": null,
            "errors": {"newid": "VM 101 already exists", "full": "type check ('boolean') failed - got 'yes'"},
            "message": "Parameter verification failed.\n"
        })))
        .mount(&pve)
        .await;
    let c = client(&pve.uri(), Duration::from_secs(5));
    let err = request(&c, Method::Post, &p("/nodes/pve1/qemu/100/clone"), &Map::new())
        .await
        .unwrap_err();
    let PveError::Api(api) = &err else { panic!("{err:?}") };
    assert_eq!(api.status, 400);
    assert_eq!(api.errors["newid"], "VM 101 already exists");
    assert_eq!(api.message.as_deref(), Some("Parameter verification failed."));
    let text = err.to_string();
    assert!(
        text.contains("newid: VM 101 already exists") && text.contains("full: type check"),
        "{text}"
    );
}

#[tokio::test]
async fn html_error_pages_and_bad_json_are_explained() {
    let pve = MockServer::start().await;
    Mock::given(path("/api2/json/version"))
        .respond_with(ResponseTemplate::new(502).set_body_raw("<html><body>Bad Gateway</body></html>", "text/html"))
        .mount(&pve)
        .await;
    Mock::given(path("/api2/json/cluster/status"))
        .respond_with(ResponseTemplate::new(200).set_body_raw("{\"data\": [1, 2", "application/json"))
        .mount(&pve)
        .await;
    let c = client(&pve.uri(), Duration::from_secs(5));
    let err = request(&c, Method::Get, &p("/version"), &Map::new()).await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("A proxy in front of PVE, not PVE itself, answered GET /version with HTTP 502 (Bad Gateway) and an HTML page."),
        "{text}"
    );
    let err = request(&c, Method::Get, &p("/cluster/status"), &Map::new())
        .await
        .unwrap_err();
    assert!(matches!(err, PveError::BadResponse { .. }), "{err:?}");
    assert!(err.to_string().contains("not with the JSON envelope"), "{err}");
    assert!(err.to_string().contains("sent something unexpected"), "{err}");
}

/// A one-shot raw HTTP server: PVE before http-server 5.2 says what went wrong only in
/// the reason phrase, which wiremock cannot set.
async fn raw_server(response: &'static str) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        if let Ok((mut sock, _)) = listener.accept().await {
            let mut buf = [0u8; 4096];
            let _ = sock.read(&mut buf).await;
            let _ = sock.write_all(response.as_bytes()).await;
            let _ = sock.shutdown().await;
        }
    });
    format!("http://{addr}")
}

#[tokio::test]
async fn the_reason_phrase_carries_pves_message() {
    let uri = raw_server("HTTP/1.1 403 Permission check failed (/vms/100, VM.PowerMgmt)\r\nContent-Type: application/json;charset=UTF-8\r\nContent-Length: 13\r\nConnection: close\r\n\r\n{\"data\":null}").await;
    let c = client(&uri, Duration::from_secs(5));
    let err = request(&c, Method::Post, &p("/nodes/pve1/qemu/100/status/start"), &Map::new())
        .await
        .unwrap_err();
    let PveError::Api(api) = &err else { panic!("{err:?}") };
    assert_eq!(
        api.reason.as_deref(),
        Some("Permission check failed (/vms/100, VM.PowerMgmt)")
    );
    assert_eq!(
        api.missing_permission(),
        Some(("/vms/100".into(), "VM.PowerMgmt".into()))
    );

    let uri = raw_server("HTTP/1.1 595 Connection refused\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").await;
    let err = request(
        &client(&uri, Duration::from_secs(5)),
        Method::Get,
        &p("/nodes/pve3/status"),
        &Map::new(),
    )
    .await
    .unwrap_err();
    assert!(
        err.to_string().contains("595 Connection refused") && err.to_string().contains("offline"),
        "{err}"
    );
}

#[tokio::test]
async fn refused_connections_name_the_host_and_port() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let c = client(&format!("http://127.0.0.1:{port}"), Duration::from_secs(5));
    let err = request(&c, Method::Get, &p("/version"), &Map::new()).await.unwrap_err();
    let PveError::Transport(t) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(t.kind, TransportKind::Refused);
    let text = err.to_string();
    assert!(
        text.contains(&format!("127.0.0.1:{port}")) && text.contains("PVE_HOST"),
        "{text}"
    );
    assert!(!text.contains(SECRET));
}

#[tokio::test]
async fn a_silent_host_times_out_with_a_hint() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = listener.accept().await {
            held.push(sock);
        }
    });
    let c = client(&format!("http://{addr}"), Duration::from_millis(300));
    let err = request(&c, Method::Get, &p("/version"), &Map::new()).await.unwrap_err();
    let PveError::Transport(t) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(t.kind, TransportKind::Timeout);
    assert!(err.to_string().contains("PVE_TIMEOUT"), "{err}");
}

#[tokio::test]
async fn tls_to_a_plain_http_port_is_a_transport_error() {
    let pve = MockServer::start().await;
    let c = client(&pve.uri().replace("http://", "https://"), Duration::from_secs(5));
    let err = request(&c, Method::Get, &p("/version"), &Map::new()).await.unwrap_err();
    assert!(matches!(err, PveError::Transport(_)), "{err:?}");
}

/// A server whose first `drops` connections are closed after the request is read, with no
/// answer; later ones get `response`. Returns its URL and the count of connections seen.
async fn dropping_server(
    drops: usize,
    response: &'static str,
) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = std::sync::Arc::new(AtomicUsize::new(0));
    let count = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let n = count.fetch_add(1, Ordering::SeqCst);
            let mut buf = [0u8; 4096];
            let _ = sock.read(&mut buf).await;
            if n >= drops {
                let _ = sock.write_all(response.as_bytes()).await;
            }
            let _ = sock.shutdown().await;
        }
    });
    (format!("http://{addr}"), seen)
}

const OK_VERSION: &str = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 29\r\nConnection: close\r\n\r\n{\"data\":{\"version\":\"8.4.14\"}}";

#[tokio::test]
async fn a_get_on_a_dropped_connection_is_retried_once() {
    use std::sync::atomic::Ordering;
    let (uri, seen) = dropping_server(1, OK_VERSION).await;
    let c = client(&uri, Duration::from_secs(5));
    let v = request(&c, Method::Get, &p("/version"), &Map::new()).await.unwrap();
    assert_eq!(v["version"], "8.4.14");
    assert_eq!(seen.load(Ordering::SeqCst), 2);
    // Twice dropped: the GET fails, after one retry only.
    let (uri, seen) = dropping_server(5, OK_VERSION).await;
    let c = client(&uri, Duration::from_secs(5));
    let err = request(&c, Method::Get, &p("/version"), &Map::new()).await.unwrap_err();
    assert_eq!(seen.load(Ordering::SeqCst), 2, "{err}");
    let PveError::Transport(t) = &err else {
        panic!("{err:?}")
    };
    assert_ne!(
        t.kind,
        TransportKind::Tls,
        "a dropped connection is not a TLS failure: {err}"
    );
}

#[tokio::test]
async fn a_write_without_an_answer_is_never_retried_and_may_have_happened() {
    use std::sync::atomic::Ordering;
    let (uri, seen) = dropping_server(1, OK_VERSION).await;
    let c = client(&uri, Duration::from_secs(5));
    let err = request(
        &c,
        Method::Post,
        &p("/nodes/pve1/qemu/100/clone"),
        &params(json!({"newid": 101})),
    )
    .await
    .unwrap_err();
    assert_eq!(seen.load(Ordering::SeqCst), 1, "a write is sent once");
    let text = err.to_string();
    assert!(text.contains("may have carried out"), "{text}");
    assert!(text.contains("recent tasks"), "{text}");
    assert!(!text.contains("raise PVE_TIMEOUT"), "{text}");

    // A write that times out says the same.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        if let Ok((sock, _)) = listener.accept().await {
            tokio::time::sleep(Duration::from_secs(5)).await;
            drop(sock);
        }
    });
    let c = client(&format!("http://{addr}"), Duration::from_millis(300));
    let err = request(
        &c,
        Method::Post,
        &p("/nodes/pve1/qemu/100/clone"),
        &params(json!({"newid": 101})),
    )
    .await
    .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("may have carried out") && !text.contains("raise PVE_TIMEOUT"),
        "{text}"
    );
}
