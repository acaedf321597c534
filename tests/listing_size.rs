//! The default tools/list stays small: every host pays for it in context on every turn.

mod common;

/// Bytes of JSON the 23 default tools may take in `tools/list`.
const MAX_LISTING_BYTES: usize = 12 * 1024;

#[tokio::test]
async fn the_default_listing_fits_in_twelve_kilobytes() {
    let pve = common::permissive_pve().await;
    let server = common::start(&pve.uri(), tempfile::tempdir().unwrap(), &[]).await;
    let tools = server.client.list_all_tools().await.unwrap();
    assert_eq!(tools.len(), 23);
    let bytes = serde_json::to_vec(&serde_json::json!({ "tools": tools }))
        .unwrap()
        .len();
    assert!(
        bytes <= MAX_LISTING_BYTES,
        "tools/list is {bytes} bytes, over {MAX_LISTING_BYTES}"
    );
    for t in &tools {
        let d = t.description.as_deref().unwrap_or("");
        assert!(
            d.len() >= 60,
            "{}: the description is too thin to say what it does: {d}",
            t.name
        );
    }
}
