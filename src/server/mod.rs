//! The MCP edge: rmcp over stdio, tools from the registry snapshot, calls through the
//! script runner, `tools/list_changed` after reloads for both protocol eras.

pub mod listing;
pub mod result;

use std::sync::Arc;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, Implementation, ListToolsResult, PaginatedRequestParams,
    ProgressNotificationParam, ServerCapabilities, ServerConfig, SubscriptionFilter,
};
use rmcp::service::{RequestContext, SubscriptionContext};
use rmcp::{ErrorData, Peer, RoleServer, ServerHandler};
use tokio::sync::watch;

use crate::registry::Registry;
use crate::script::context::ProgressFn;
use crate::script::{Runtime, invoke};

pub const INSTRUCTIONS: &str = "Manage a Proxmox VE node or cluster. Guests are addressed by vmid alone; node and type (QEMU VM or LXC container) are resolved by the server. Read tools never change anything. Destructive tools (rollback, snapshot delete, guest delete, restore over an existing guest) only explain what they would do until called again with confirm=true: show that explanation to the user and ask before confirming. Write tools wait for the PVE task; if it is still running they return its UPID for pve_task_status.";

#[derive(Clone)]
pub struct PveMcpServer {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Arc<Registry>,
    runtime: Runtime,
    /// Bumped after every reload that changed the listing.
    generation: watch::Sender<u64>,
}

impl PveMcpServer {
    pub fn new(registry: Arc<Registry>, runtime: Runtime) -> PveMcpServer {
        let (generation, _) = watch::channel(0);
        PveMcpServer {
            inner: Arc::new(Inner {
                registry,
                runtime,
                generation,
            }),
        }
    }

    /// Tell connected hosts that the tool list changed.
    pub fn tools_changed(&self) {
        self.inner.generation.send_modify(|g| *g += 1);
    }

    /// Deliver `notifications/tools/list_changed` to a handshake-era client (≤ 2025-11-25).
    /// Clients of 2026-07-28 receive it through `subscriptions/listen` instead.
    pub fn spawn_legacy_notifier(&self, peer: Peer<RoleServer>) {
        let mut rx = self.inner.generation.subscribe();
        tokio::spawn(async move {
            while rx.changed().await.is_ok() {
                let legacy = peer.peer_info().is_some_and(|i| i.protocol_version.has_initialize());
                if legacy && let Err(e) = peer.notify_tool_list_changed().await {
                    tracing::debug!("could not send tools/list_changed: {e}");
                    if peer.is_transport_closed() {
                        break;
                    }
                }
            }
        });
    }
}

impl ServerHandler for PveMcpServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_tool_list_changed()
                .build(),
        )
        .with_server_info(Implementation::new("pve-mcp", env!("CARGO_PKG_VERSION")))
        .with_instructions(INSTRUCTIONS)
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _cx: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let snap = self.inner.registry.snapshot();
        let mode = self.inner.runtime.settings.mode;
        let tools = snap.visible(mode).map(|t| listing::to_tool(&t.manifest)).collect();
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        cx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let snap = self.inner.registry.snapshot();
        let mode = self.inner.runtime.settings.mode;
        let Some(tool) = snap.get_visible(&request.name, mode).cloned() else {
            let why = if snap.tools.contains_key(request.name.as_ref()) {
                "is not available in the server's current mode (read-only, or exec disabled)"
            } else {
                "does not exist"
            };
            return Err(ErrorData::invalid_params(
                format!("tool '{}' {why}", request.name),
                None,
            ));
        };
        let progress = cx.meta.get_progress_token().map(|token| {
            let peer = cx.peer.clone();
            let handle = tokio::runtime::Handle::current();
            let f: ProgressFn = Arc::new(move |progress, total, message| {
                let mut p = ProgressNotificationParam::new(token.clone(), progress).with_message(message);
                if let Some(t) = total {
                    p = p.with_total(t);
                }
                let peer = peer.clone();
                handle.spawn(async move {
                    let _ = peer.notify_progress(p).await;
                });
            });
            f
        });
        let args = request.arguments.unwrap_or_default();
        let name = tool.manifest.name.clone();
        let outcome = invoke(&self.inner.runtime, tool, args, cx.ct.clone(), progress).await;
        if let crate::script::Outcome::Failed(e) = &outcome {
            tracing::info!("{name} failed: {e}");
        }
        Ok(result::to_result(&name, outcome).into())
    }

    fn accepted_subscription_filter(&self, requested: &SubscriptionFilter) -> Option<SubscriptionFilter> {
        Some(requested.supported_by(&self.get_info().capabilities))
    }

    async fn listen(&self, cx: SubscriptionContext) -> Result<(), ErrorData> {
        let mut rx = self.inner.generation.subscribe();
        loop {
            tokio::select! {
                _ = cx.cancelled() => return Ok(()),
                changed = rx.changed() => {
                    if changed.is_err() {
                        return Ok(());
                    }
                    if let Err(e) = cx.sink().notify_tool_list_changed().await {
                        tracing::debug!("could not send tools/list_changed on a subscription: {e}");
                    }
                }
            }
        }
    }
}
