//! An [`CallOutcome`] as an MCP tool result: JSON as text and as `structuredContent`; every
//! failure is a result with `isError: true`, never a protocol error.

use rmcp::model::{CallToolResult, ContentBlock};
use serde_json::{Value, json};

use super::approval::Answer;
use crate::script::{CallError, CallOutcome, ErrorKind};

/// `structuredContent` must be an object; other results are wrapped as `{"result": …}`.
pub(crate) fn as_object(v: Value) -> Value {
    match v {
        Value::Object(_) => v,
        other => json!({ "result": other }),
    }
}

/// The JSON a plan answers with.
pub(crate) fn plan_json(
    tool: &str,
    explanation: Value,
    requests: &[crate::gate::PlannedRequest],
    confirm_token: &str,
    ttl: std::time::Duration,
) -> Value {
    json!({
        "status": "confirmation_required",
        "performed": false,
        "message": format!(
            "{tool} needs a confirmation and was NOT carried out: nothing was changed. Review what would happen below, then call {tool} again with the same arguments, confirm=true and this confirm_token to do exactly that."
        ),
        "explanation": explanation,
        "requests": requests,
        "confirm_token": confirm_token,
        "expires_in_seconds": ttl.as_secs(),
    })
}

/// The `_meta` key that marks a plan made by the core: a script's own result never has it,
/// so a host can tell a real plan from a tool's answer that looks like one.
pub(crate) const PLAN_META: &str = "pve-mcp/plan";

/// The JSON of a failure: a kind and the actionable sentence.
pub(crate) fn error_json(tool: &str, e: &CallError) -> Value {
    let mut v = json!({ "error": e.kind().as_str(), "tool": tool, "message": format!("{tool}: {e}") });
    if let CallError::UnexpectedAnswer { detail, .. } = e {
        v["script_detail"] = json!(detail);
    }
    v
}

/// A result as text and as `structuredContent`. The text is written by serde_json's writer
/// into a byte buffer (rmcp's `CallToolResult::structured` formats through `Display`, piece
/// by piece through `fmt::Write`); the text is the same.
fn structured(v: Value) -> CallToolResult {
    // Serializing a `Value` cannot fail: its keys are strings.
    let text = serde_json::to_string(&v).unwrap_or_default();
    let mut r = CallToolResult::success(vec![ContentBlock::text(text)]);
    r.structured_content = Some(v);
    r
}

pub(crate) fn to_result(tool: &str, outcome: CallOutcome) -> CallToolResult {
    match outcome {
        CallOutcome::Done(v) => structured(as_object(v)),
        CallOutcome::Plan {
            explanation,
            requests,
            confirm_token,
            ttl,
        } => {
            let mut r = structured(plan_json(tool, explanation, &requests, &confirm_token, ttl));
            let mut meta = rmcp::model::MetaObject::new();
            meta.0
                .insert(PLAN_META.into(), json!({"tool": tool, "requests": requests.len()}));
            r.meta = Some(meta);
            r
        }
        CallOutcome::Failed(e) => {
            let body = error_json(tool, &e);
            let mut r = CallToolResult::error(vec![ContentBlock::text(format!("{tool}: {e}"))]);
            r.structured_content = Some(body);
            r
        }
    }
}

/// The answer when the person did not approve: nothing was sent.
pub(crate) fn not_approved(tool: &str, answer: Answer, requests: usize) -> CallToolResult {
    let (kind, why) = match answer {
        Answer::Declined => (ErrorKind::Declined, "the user declined the approval request"),
        Answer::Cancelled => (ErrorKind::CancelledByUser, "the user cancelled the approval request"),
        Answer::Approved | Answer::Unanswered => (
            ErrorKind::NotApproved,
            "the client gave no approval (the request failed, timed out or came back without one)",
        ),
    };
    let message = format!(
        "{tool} was NOT carried out: {why}, so none of its {requests} planned request(s) was sent and nothing was changed. Do not retry unless the user asks for it."
    );
    let mut r = CallToolResult::error(vec![ContentBlock::text(message.clone())]);
    r.structured_content =
        Some(json!({ "error": kind.as_str(), "tool": tool, "performed": false, "message": message }));
    r
}

/// The answer to a call that found every slot taken.
pub(crate) fn busy(tool: &str, running: usize) -> CallToolResult {
    let message = format!(
        "{tool}: the server is already running {running} tool calls, its limit; retry in a few seconds, or raise PVE_MCP_MAX_CALLS"
    );
    let mut r = CallToolResult::error(vec![ContentBlock::text(message.clone())]);
    r.structured_content = Some(json!({ "error": ErrorKind::Busy.as_str(), "tool": tool, "message": message }));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_is_the_structured_content_serialized() {
        let v =
            json!({"count": 2, "guests": [{"vmid": 100, "name": "a\"b", "cpu": 0.25}, {"vmid": 101, "tags": ["x"]}]});
        let r = to_result("t", CallOutcome::Done(v.clone()));
        let Some(text) = r.content.first().and_then(|c| c.as_text()) else {
            panic!("no text content: {r:?}");
        };
        assert_eq!(text.text, v.to_string());
        assert_eq!(r.structured_content, Some(v));
        assert_eq!(r.is_error, Some(false));
    }
}
