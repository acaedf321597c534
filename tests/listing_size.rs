//! The default tools/list stays small: every host pays for it in context on every turn.
//!
//! Measured as both kinds of client see it with the default settings: one without MCP
//! elicitation (destructive tools list `confirm` and `confirm_token`, the larger listing),
//! and one with it (a person approves; those parameters give way to a note in the
//! description).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stderr,
    reason = "test code: a panic is the failure report"
)]

mod common;

use rmcp::ServiceExt;
use rmcp::model::{ClientCapabilities, ClientConfig, Implementation, Tool};

/// Bytes of JSON the 23 default tools may take in `tools/list`.
const MAX_LISTING_BYTES: usize = 12 * 1024;

/// A client that declares elicitation (it is never asked here: the test only lists).
#[derive(Clone)]
struct Asks;

impl rmcp::ClientHandler for Asks {
    fn get_info(&self) -> ClientConfig {
        ClientConfig::new(
            ClientCapabilities::builder().enable_elicitation().build(),
            Implementation::new("asks", "1.0"),
        )
    }
}

fn check(tools: &[Tool], who: &str) {
    assert_eq!(tools.len(), 23, "{who}");
    let bytes = serde_json::to_vec(&serde_json::json!({ "tools": tools }))
        .unwrap()
        .len();
    assert!(
        bytes <= MAX_LISTING_BYTES,
        "{who}: tools/list is {bytes} bytes, over {MAX_LISTING_BYTES}"
    );
    for t in tools {
        let d = t.description.as_deref().unwrap_or("");
        assert!(
            d.len() >= 60,
            "{who}: {}: the description is too thin to say what it does: {d}",
            t.name
        );
    }
}

fn confirm_listed(tools: &[Tool]) -> bool {
    let delete = tools.iter().find(|t| t.name == "pve_vm_delete").unwrap();
    delete.input_schema["properties"].get("confirm").is_some()
}

#[tokio::test]
async fn the_default_listing_fits_in_twelve_kilobytes() {
    let pve = common::permissive_pve().await;

    // A client without elicitation: the flag listing, with the confirmation parameters.
    let server = common::start(&pve.uri(), tempfile::tempdir().unwrap(), &[]).await;
    let tools = server.client.list_all_tools().await.unwrap();
    assert!(confirm_listed(&tools), "the flag listing offers confirm");
    check(&tools, "a client without elicitation");

    // A client with elicitation: a person approves, the descriptions say so.
    let home = tempfile::tempdir().unwrap();
    let scripts = tempfile::tempdir().unwrap();
    let cmd = common::command(&pve.uri(), scripts.path(), home.path(), &[]);
    let (transport, _) = rmcp::transport::TokioChildProcess::builder(cmd)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let client = Asks.serve(transport).await.unwrap();
    let tools = client.list_all_tools().await.unwrap();
    assert!(!confirm_listed(&tools), "a person approves instead");
    check(&tools, "a client with elicitation");
    let _ = client.cancel().await;
}
