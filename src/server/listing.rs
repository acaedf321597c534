//! A compiled tool as MCP hosts see it in `tools/list`.

use std::sync::Arc;

use rmcp::model::{Tool, ToolAnnotations};

use crate::gate::Capability;
use crate::script::Manifest;

/// Annotations follow the strongest capability: only a read tool is read-only; a tool that
/// can destroy, exec or administer is destructive; a write tool says `destructiveHint: false`
/// explicitly (MCP's default for a non-read-only tool is destructive). All reach the outside
/// world.
pub fn annotations(m: &Manifest) -> ToolAnnotations {
    let strong = [Capability::Destructive, Capability::Exec, Capability::Admin];
    let mut a = if m.class.is_read() {
        ToolAnnotations::new().read_only(true)
    } else if strong.iter().any(|c| m.class.has(*c)) {
        ToolAnnotations::new().read_only(false).destructive(true)
    } else {
        ToolAnnotations::new().read_only(false).destructive(false)
    };
    let idempotent = m.idempotent.or(m.class.is_read().then_some(true));
    if let Some(i) = idempotent {
        a = a.idempotent(i);
    }
    // The title is the tool's own (`Tool.title`); repeating it here would cost every host
    // the bytes again on every turn.
    a.open_world(true)
}

pub fn to_tool(m: &Manifest) -> Tool {
    let mut tool = Tool::new(m.name.clone(), m.description.clone(), Arc::new(m.input_schema.clone()))
        .with_annotations(annotations(m));
    if let Some(t) = &m.title {
        tool = tool.with_title(t.clone());
    }
    if let Some(out) = &m.output_schema {
        tool = tool.with_raw_output_schema(Arc::new(out.clone()));
    }
    tool
}
