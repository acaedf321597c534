//! The MCP edge: rmcp over stdio, tools from the registry snapshot, calls through the
//! script runner, `tools/list_changed` after reloads for both protocol eras.

pub(crate) mod approval;
pub(crate) mod input;
pub(crate) mod listing;
pub(crate) mod result;
pub(crate) mod scripts;

use std::sync::Arc;
use std::time::Duration;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, Implementation, ListResourcesResult, ListToolsResult,
    PaginatedRequestParams, ProgressNotificationParam, ReadResourceRequestParams, ReadResourceResponse,
    ServerCapabilities, ServerConfig, SubscriptionFilter,
};
use rmcp::service::{RequestContext, SubscriptionContext};
use rmcp::{ErrorData, Peer, RoleServer, ServerHandler};
use tokio::sync::{Semaphore, watch};
use tokio_util::sync::CancellationToken;

use crate::confirm::{self, Asked, BoundPlan};
use crate::registry::Registry;
use crate::registry::slot::RegistrySlot;
use crate::script::context::ProgressFn;
use crate::script::invoke::{Approving, CallRequest};
use crate::script::{CallError, CallOutcome, Services, invoke};
use approval::Answer;

pub(crate) const INSTRUCTIONS: &str = "Manage a Proxmox VE node or cluster. Guests are addressed by vmid alone; node and type (QEMU VM or LXC container) are resolved by the server. Read tools never change anything. Destructive tools (rollback, snapshot delete, guest delete, restore over an existing guest) only explain what they would do until called again with confirm=true: show that explanation to the user and ask before confirming. Write tools wait for the PVE task; if it is still running they return its UPID for pve_task_status.";

#[derive(Clone)]
pub(crate) struct PveMcpServer {
    inner: Arc<Inner>,
}

/// How long a call waits for a free slot before it is answered "busy".
pub(crate) const QUEUE_WAIT: Duration = Duration::from_secs(2);

/// Characters of an unknown tool name echoed back in the error.
pub(crate) const MAX_NAME_SHOWN: usize = 100;

struct Inner {
    registry: RegistrySlot,
    services: Services,
    /// Bumped after every reload that changed the listing.
    generation: watch::Sender<u64>,
    /// One permit per call that may run at once (`PVE_MCP_MAX_CALLS`).
    calls: Arc<Semaphore>,
    /// Cancelled when the client goes away: every call in flight stops.
    shutdown: CancellationToken,
}

impl PveMcpServer {
    pub(crate) fn new(registry: RegistrySlot, services: Services) -> PveMcpServer {
        let (generation, _) = watch::channel(0);
        let calls = Arc::new(Semaphore::new(services.settings.max_calls));
        PveMcpServer {
            inner: Arc::new(Inner {
                registry,
                services,
                generation,
                calls,
                shutdown: CancellationToken::new(),
            }),
        }
    }

    /// The registry, once its first build is done (the handshake does not wait for it).
    async fn registry(&self) -> Result<Arc<Registry>, ErrorData> {
        self.inner.registry.ready().await.ok_or_else(|| {
            ErrorData::internal_error(
                "the tools could not be loaded (the server's log on stderr says why); restart the server",
                None,
            )
        })
    }

    /// Cancelling this token stops every call in flight (the client closed stdin).
    pub(crate) fn shutdown_token(&self) -> CancellationToken {
        self.inner.shutdown.clone()
    }

    /// Tell connected hosts that the tool list changed.
    pub(crate) fn tools_changed(&self) {
        self.inner.generation.send_modify(|g| *g += 1);
    }

    /// Deliver `notifications/tools/list_changed` to a handshake-era client (≤ 2025-11-25).
    /// Clients of 2026-07-28 receive it through `subscriptions/listen` instead.
    pub(crate) fn spawn_legacy_notifier(&self, peer: Peer<RoleServer>) {
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
                .enable_resources()
                .build(),
        )
        .with_server_info(Implementation::new("pve-mcp", env!("CARGO_PKG_VERSION")))
        .with_instructions(INSTRUCTIONS)
    }

    async fn list_tools(
        &self,
        request: Option<PaginatedRequestParams>,
        cx: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        // Every tool is listed at once, so no cursor is ever handed out: any cursor is one
        // this server did not give.
        if let Some(cursor) = request.and_then(|r| r.cursor) {
            return Err(ErrorData::invalid_params(
                format!(
                    "invalid cursor '{}': this server lists every tool in one answer and never gives a cursor; call tools/list without one",
                    shorten(&cursor, MAX_NAME_SHOWN)
                ),
                None,
            ));
        }
        let snap = self.registry().await?.snapshot();
        let settings = &self.inner.services.settings;
        let elicitation = cx.client_capabilities().is_some_and(|c| c.elicitation.is_some());
        let client = settings.confirm.for_client(elicitation);
        let tools = snap
            .served(settings.mode, &settings.tools)
            .map(|t| listing::to_tool(&t.manifest, &client))
            .collect();
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        cx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let snap = self.registry().await?.snapshot();
        let mode = self.inner.services.settings.mode;
        let filter = &self.inner.services.settings.tools;
        let Some(tool) = snap.get_served(&request.name, mode, filter).cloned() else {
            if let Some(message) = scripts::not_in_service(&snap, &request.name) {
                return Ok(scripts::not_in_service_result(&request.name, message).into());
            }
            let why = snap.why_not_served(&request.name, mode);
            return Err(ErrorData::invalid_params(
                format!("tool '{}' {why}", shorten(&request.name, MAX_NAME_SHOWN)),
                None,
            ));
        };
        // A call in flight stops when its request is cancelled or the client goes away.
        let call_ct = self.inner.shutdown.child_token();
        let link = {
            let (request_ct, call_ct) = (cx.ct.clone(), call_ct.clone());
            tokio::spawn(async move {
                request_ct.cancelled().await;
                call_ct.cancel();
            })
        };
        let _unlink = AbortOnDrop(link);
        let name = tool.manifest.name.clone();
        let declares_output = tool.manifest.output_schema.is_some();
        let max = self.inner.services.settings.max_calls;
        let permit = tokio::select! {
            p = tokio::time::timeout(QUEUE_WAIT, self.inner.calls.clone().acquire_owned()) => p,
            _ = call_ct.cancelled() => return Ok(result::to_result(&name, CallOutcome::Failed(CallError::Cancelled)).into()),
        };
        let Ok(Ok(_permit)) = permit else {
            tracing::debug!("{name}: busy, {max} calls running");
            return Ok(result::busy(&name, max).into());
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
        let elicitation = cx.client_capabilities().is_some_and(|c| c.elicitation.is_some());
        let client = self.inner.services.settings.confirm.for_client(elicitation);
        let asks_person = client
            .for_tool(tool.manifest.class, tool.manifest.confirm_writes)
            .is_some_and(|a| a.asked == Asked::Human)
            && elicitation;
        let call = CallRequest {
            tool,
            args: request.arguments.clone().unwrap_or_default(),
            client,
            approving: Approving::Arguments,
            cancel: call_ct,
            progress,
        };
        if asks_person {
            let modern = cx.protocol_version().is_some_and(|v| !v.has_initialize());
            let mut response = self.call_with_person(call, &request, &cx, modern).await;
            if let CallToolResponse::Complete(answer) = &mut response {
                scripts::add_stale_note(&snap, &name, answer);
                listing::fit_output_schema(declares_output, answer);
            }
            return Ok(response);
        }
        let outcome = invoke(&self.inner.services, call).await;
        if let CallOutcome::Failed(e) = &outcome {
            tracing::info!("{name} failed: {e}");
        }
        let mut answer = result::to_result(&name, outcome);
        scripts::add_stale_note(&snap, &name, &mut answer);
        listing::fit_output_schema(declares_output, &mut answer);
        Ok(answer.into())
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _cx: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        Ok(ListResourcesResult::with_all_items(scripts::resources()))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _cx: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let snap = self.registry().await?.snapshot();
        match scripts::read(&snap, self.inner.services.settings.mode, &request.uri) {
            Some(r) => Ok(r.into()),
            None => Err(ErrorData::resource_not_found(
                format!(
                    "no resource '{}'; the server has {}",
                    shorten(&request.uri, MAX_NAME_SHOWN),
                    scripts::SCRIPTS_URI
                ),
                None,
            )),
        }
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

impl PveMcpServer {
    /// A call a person approves: the plan first, then the person's answer (asked now in the
    /// handshake era, or through an input-required result and the client's retry in
    /// 2026-07-28), then only the approved plan is carried out.
    async fn call_with_person(
        &self,
        mut call: CallRequest,
        request: &CallToolRequestParams,
        cx: &RequestContext<RoleServer>,
        modern: bool,
    ) -> CallToolResponse {
        let services = &self.inner.services;
        let name = call.tool.manifest.name.clone();
        // The retry of a 2026-07-28 client brings the plan back (the token it was given as
        // request state) and the person's answer.
        if let Some(state) = &request.request_state {
            let plan = match confirm::verify(&services.plan_key, state, &name, &call.args, confirm::now()) {
                Ok(p) => p,
                Err(e) => return failed(&name, CallError::Confirm(e)),
            };
            let answer = approval::answer_from_responses(request.input_responses.as_ref());
            return self.carry_out(call, plan, answer).await;
        }
        call.approving = Approving::PlanForPerson;
        let again = CallRequest {
            approving: Approving::Arguments,
            tool: call.tool.clone(),
            args: call.args.clone(),
            client: call.client,
            cancel: call.cancel.clone(),
            progress: call.progress.clone(),
        };
        let (explanation, requests, token) = match invoke(services, call).await {
            CallOutcome::Plan {
                explanation,
                requests,
                confirm_token,
                ..
            } => (explanation, requests, confirm_token),
            other => return result::to_result(&name, other).into(),
        };
        let ask = approval::request(&name, &explanation, &requests);
        if modern {
            let mut input = rmcp::model::InputRequests::new();
            input.insert(
                approval::INPUT_KEY.into(),
                rmcp::model::InputRequest::Elicitation(rmcp::model::ElicitRequest::new(ask)),
            );
            return rmcp::model::InputRequiredResult::new(Some(input), Some(token)).into();
        }
        let plan = match confirm::verify(&services.plan_key, &token, &name, &again.args, confirm::now()) {
            Ok(p) => p,
            Err(e) => return failed(&name, CallError::Confirm(e)),
        };
        let asked = tokio::select! {
            r = cx.peer.create_elicitation_with_timeout(ask, Some(services.settings.plan_ttl)) => r,
            _ = again.cancel.cancelled() => return failed(&name, CallError::Cancelled),
        };
        let answer = match asked {
            Ok(r) => approval::answer(&r),
            Err(e) => {
                tracing::info!("{name}: the approval request to the client failed: {e}");
                Answer::Unanswered
            }
        };
        self.carry_out(again, plan, answer).await
    }

    /// Carry out a plan the person approved; anything else changes nothing and says so.
    async fn carry_out(&self, mut call: CallRequest, plan: BoundPlan, answer: Answer) -> CallToolResponse {
        let services = &self.inner.services;
        let name = call.tool.manifest.name.clone();
        if let Err(e) = services
            .audit
            .approval(&call.tool, &call.args, &plan.requests, answer.as_str())
        {
            return failed(
                &name,
                CallError::AuditLog {
                    place: services.audit.place(),
                    why: e.to_string(),
                },
            );
        }
        if answer != Answer::Approved {
            return result::not_approved(&name, answer, plan.requests.len()).into();
        }
        call.approving = Approving::Approved(Arc::new(BoundPlan { human: true, ..plan }));
        let outcome = invoke(services, call).await;
        if let CallOutcome::Failed(e) = &outcome {
            tracing::info!("{name} failed: {e}");
        }
        result::to_result(&name, outcome).into()
    }
}

fn failed(tool: &str, e: CallError) -> CallToolResponse {
    result::to_result(tool, CallOutcome::Failed(e)).into()
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// At most `max` characters of `s`, marked when shortened.
pub(crate) fn shorten(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((cut, _)) => format!("{}… ({} bytes in all)", &s[..cut], s.len()),
        None => s.to_string(),
    }
}
