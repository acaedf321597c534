//! A compiled tool as MCP hosts see it in `tools/list`.

use std::sync::Arc;

use rmcp::model::{Tool, ToolAnnotations};

use serde_json::Value;

use crate::confirm::{Asked, ClientApproval};
use crate::gate::Capability;
use crate::script::Manifest;

/// Annotations follow the strongest capability: only a read tool is read-only; a tool that
/// can destroy, exec or administer is destructive; a write tool says `destructiveHint: false`
/// explicitly (MCP's default for a non-read-only tool is destructive). All reach the outside
/// world.
pub(crate) fn annotations(m: &Manifest) -> ToolAnnotations {
    let strong = [Capability::Destructive, Capability::Exec, Capability::Admin];
    let mut a = if m.class.is_read() {
        ToolAnnotations::new().read_only(true)
    } else if strong.iter().any(|c| m.class.has(*c)) {
        ToolAnnotations::new().read_only(false).destructive(true)
    } else {
        ToolAnnotations::new().read_only(false).destructive(false)
    };
    // MCP reads idempotentHint only where readOnlyHint is false: a read tool does not repeat
    // it (a manifest that sets it explicitly still gets it).
    if let Some(i) = m.idempotent {
        a = a.idempotent(i);
    }
    // The title is the tool's own (`Tool.title`); repeating it here would cost every host
    // the bytes again on every turn.
    a.open_world(true)
}

/// Added to a tool's description where a person approves its calls.
pub(crate) const HUMAN_NOTE: &str = "On this server the user approves each such call directly (shown the exact requests) before anything is sent, so no confirm argument is needed; a declined call changes nothing.";
/// Added to `confirm`'s description where plans must be confirmed with their token.
pub(crate) const PLAN_NOTE: &str = " On this server confirm=true also needs the confirm_token of that plan.";

/// The tool as listed to a client: `confirm` and `confirm_token` only where this client
/// confirms with them.
pub(crate) fn to_tool(m: &Manifest, client: &ClientApproval) -> Tool {
    let approval = client.for_tool(m.class, m.confirm_writes).map(|a| a.asked);
    let mut schema = m.input_schema.clone();
    let mut description = m.description.clone();
    if let Some(Value::Object(props)) = schema.get_mut("properties") {
        match approval {
            None | Some(Asked::Human) => {
                props.remove("confirm");
                props.remove("confirm_token");
            }
            Some(Asked::Plan) => {
                if let Some(Value::String(d)) = props.get_mut("confirm").and_then(|c| c.get_mut("description")) {
                    d.push_str(PLAN_NOTE);
                }
            }
            Some(Asked::Flag) => {}
        }
    }
    if approval == Some(Asked::Human) {
        description = format!("{description} {HUMAN_NOTE}");
    }
    let mut tool = Tool::new(m.name.clone(), description, Arc::new(schema)).with_annotations(annotations(m));
    if let Some(t) = &m.title {
        tool = tool.with_title(t.clone());
    }
    if let Some(out) = &m.output_schema {
        tool = tool.with_raw_output_schema(Arc::new(output_schema(m, out)));
    }
    tool
}

/// The output schema hosts see: the declared one, widened with the plan's shape for a tool
/// that can answer with a plan (as `confirm` widens its input), so that hosts which check
/// `structuredContent` against it accept the plan too.
pub(crate) fn output_schema(
    m: &Manifest,
    declared: &serde_json::Map<String, serde_json::Value>,
) -> serde_json::Map<String, serde_json::Value> {
    use serde_json::json;
    if !m.class.has(Capability::Destructive) && !m.confirm_writes {
        return declared.clone();
    }
    let plan = json!({
        "type": "object",
        "properties": {
            "status": {"const": "confirmation_required"},
            "performed": {"const": false},
            "confirm_token": {"type": "string"}
        },
        "required": ["status", "confirm_token"]
    });
    let widened = json!({"type": "object", "anyOf": [declared, plan]});
    widened.as_object().cloned().unwrap_or_default()
}

/// A failure of a tool that declares an output schema carries no `structuredContent`: the
/// error is not of that shape, and hosts that check it would reject the error itself.
pub(crate) fn fit_output_schema(declares_output: bool, r: &mut rmcp::model::CallToolResult) {
    if declares_output && r.is_error == Some(true) {
        r.structured_content = None;
    }
}
