//! A compiled tool as MCP hosts see it in `tools/list`.

use std::sync::Arc;

use rmcp::model::{Tool, ToolAnnotations};

use crate::gate::Class;
use crate::script::Manifest;

/// Annotations come from the class: read tools are read-only; write tools say
/// `destructiveHint: false` explicitly (MCP's default for a non-read-only tool is
/// destructive); destructive and exec tools are destructive. All reach the outside world.
pub fn annotations(m: &Manifest) -> ToolAnnotations {
    let mut a = match m.class {
        Class::Read => ToolAnnotations::new().read_only(true),
        Class::Write => ToolAnnotations::new().read_only(false).destructive(false),
        Class::Destructive | Class::Exec => ToolAnnotations::new().read_only(false).destructive(true),
    };
    let idempotent = m.idempotent.or((m.class == Class::Read).then_some(true));
    if let Some(i) = idempotent {
        a = a.idempotent(i);
    }
    if let Some(t) = &m.title {
        a.title = Some(t.clone());
    }
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
