//! Asking a person to approve a plan through MCP elicitation: the plan in words, approve or
//! decline, and what the answer means.
//!
//! The message is built by the core from the plan's recorded requests; the tool's own
//! explanation follows, marked as the tool's words, so a script cannot make the request
//! list say something else.

use rmcp::model::{ElicitRequestParams, ElicitResult, ElicitationAction, ElicitationSchema};
use serde_json::{Value, json};

use crate::gate::PlannedRequest;

/// The key of the approval in an input-required result's requests and in the client's
/// responses (protocol 2026-07-28).
pub(crate) const INPUT_KEY: &str = "approval";

/// The longest message sent: a plan of thousands of requests is summarised.
const MAX_MESSAGE: usize = 8 * 1024;
/// Requests listed one by one; the rest are counted.
const MAX_LISTED: usize = 40;

/// What the person answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Answer {
    Approved,
    Declined,
    Cancelled,
    /// The client answered, but not with an approval of this plan.
    Unanswered,
}

impl Answer {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Answer::Approved => "human accept",
            Answer::Declined => "human decline",
            Answer::Cancelled => "human cancel",
            Answer::Unanswered => "human no answer",
        }
    }
}

/// The elicitation that asks for approval of a plan.
pub(crate) fn request(tool: &str, explanation: &Value, requests: &[PlannedRequest]) -> ElicitRequestParams {
    ElicitRequestParams::FormElicitationParams {
        meta: None,
        message: message(tool, explanation, requests),
        requested_schema: schema(),
    }
}

fn schema() -> ElicitationSchema {
    // A fixed, valid schema: one boolean the person must set.
    let raw = json!({
        "type": "object",
        "properties": {
            "approve": {
                "type": "boolean",
                "title": "Carry out exactly these requests",
                "description": "Check to approve; leave unchecked or decline to change nothing.",
                "default": false
            }
        },
        "required": ["approve"]
    });
    match raw {
        Value::Object(o) => {
            ElicitationSchema::from_json_schema(o).unwrap_or_else(|_| ElicitationSchema::new(Default::default()))
        }
        _ => ElicitationSchema::new(Default::default()),
    }
}

/// The plan in words: the tool, every request it will send (and nothing else), then the
/// tool's own explanation.
pub(crate) fn message(tool: &str, explanation: &Value, requests: &[PlannedRequest]) -> String {
    let mut m = format!(
        "{tool} asks to change the Proxmox VE cluster. Approve to send exactly these {} request(s), and nothing else:\n",
        requests.len()
    );
    for r in requests.iter().take(MAX_LISTED) {
        m.push_str(&format!(
            "  • {} {}{} [{}]\n",
            r.method,
            r.path,
            params_text(&r.params),
            r.needs
        ));
    }
    if requests.len() > MAX_LISTED {
        m.push_str(&format!("  • … and {} more\n", requests.len() - MAX_LISTED));
    }
    let words = explanation_text(explanation);
    if !words.is_empty() {
        m.push_str("\nThe tool's own explanation:\n");
        m.push_str(&words);
    }
    m.push_str("\nDecline or cancel to change nothing.");
    if m.len() > MAX_MESSAGE {
        let cut = (0..=MAX_MESSAGE - 64)
            .rev()
            .find(|i| m.is_char_boundary(*i))
            .unwrap_or(0);
        m.truncate(cut);
        m.push_str("\n… (shortened). Decline to change nothing.");
    }
    m
}

fn params_text(p: &serde_json::Map<String, Value>) -> String {
    let parts: Vec<String> = p.iter().map(|(k, v)| format!("{k}={}", scalar(v))).collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!(" ({})", parts.join(", "))
    }
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn explanation_text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::Object(o) => o
            .iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| format!("  {k}: {}\n", scalar(v)))
            .collect(),
        other => format!("  {}\n", scalar(other)),
    }
}

/// Read the person's answer: an accept counts only with `approve` set.
pub(crate) fn answer(r: &ElicitResult) -> Answer {
    match r.action {
        ElicitationAction::Accept => {
            let approved = r
                .content
                .as_ref()
                .and_then(|c| c.get("approve"))
                .is_some_and(|v| v == &Value::Bool(true));
            if approved { Answer::Approved } else { Answer::Declined }
        }
        ElicitationAction::Decline => Answer::Declined,
        ElicitationAction::Cancel => Answer::Cancelled,
        // An action this version does not know is not an approval.
        _ => Answer::Unanswered,
    }
}

/// Read the answer a 2026-07-28 client sent back with its retry.
pub(crate) fn answer_from_responses(responses: Option<&rmcp::model::InputResponses>) -> Answer {
    let Some(raw) = responses.and_then(|r| r.get(INPUT_KEY)) else {
        return Answer::Unanswered;
    };
    match serde_json::from_value::<ElicitResult>(raw.clone()) {
        Ok(r) => answer(&r),
        Err(_) => Answer::Unanswered,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Method;
    use crate::gate::{Capabilities, Capability};

    fn planned(n: usize) -> Vec<PlannedRequest> {
        (0..n)
            .map(|i| PlannedRequest {
                method: Method::Delete,
                path: format!("/nodes/pve1/qemu/{}", 100 + i),
                params: json!({"purge": 1}).as_object().cloned().unwrap_or_default(),
                needs: Capabilities::of(&[Capability::Destructive]),
            })
            .collect()
    }

    #[test]
    fn the_message_lists_the_requests_before_the_tools_words() {
        let m = message(
            "pve_vm_delete",
            &json!({"guest": "VM 100 (web)", "lost": "disk scsi0 (32 GiB)"}),
            &planned(1),
        );
        let req = m.find("DELETE /nodes/pve1/qemu/100 (purge=1) [destructive]").unwrap();
        let words = m.find("The tool's own explanation").unwrap();
        assert!(req < words, "{m}");
        assert!(m.contains("lost: disk scsi0 (32 GiB)"));
        assert!(m.contains("Decline or cancel to change nothing."));
    }

    #[test]
    fn a_huge_plan_is_summarised() {
        let m = message("t", &json!("x".repeat(100_000)), &planned(1000));
        assert!(m.len() <= MAX_MESSAGE, "{}", m.len());
        assert!(m.contains("… and 960 more"));
    }

    #[test]
    fn only_an_accept_with_approve_set_approves() {
        let r = |a, c: Option<Value>| {
            let mut r = ElicitResult::new(a);
            r.content = c;
            answer(&r)
        };
        assert_eq!(
            r(ElicitationAction::Accept, Some(json!({"approve": true}))),
            Answer::Approved
        );
        assert_eq!(
            r(ElicitationAction::Accept, Some(json!({"approve": false}))),
            Answer::Declined
        );
        assert_eq!(
            r(ElicitationAction::Accept, Some(json!({"approve": "true"}))),
            Answer::Declined
        );
        assert_eq!(r(ElicitationAction::Accept, None), Answer::Declined);
        assert_eq!(r(ElicitationAction::Decline, None), Answer::Declined);
        assert_eq!(r(ElicitationAction::Cancel, None), Answer::Cancelled);
        assert_eq!(answer_from_responses(None), Answer::Unanswered);
    }
}
