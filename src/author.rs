//! The script author's commands `describe TOOL` and `new NAME --class CLASS`.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::config::Mode;
use crate::gate::{Capabilities, Capability};
use crate::registry::Snapshot;

/// `describe`: what a host sees of one tool, and where it comes from.
pub(crate) fn describe(snap: &Snapshot, mode: Mode, name: &str) -> Result<String, String> {
    let Some(tool) = snap.tools.get(name) else {
        if let Some(message) = crate::server::scripts::not_in_service(snap, name) {
            return Err(message);
        }
        return Err(format!(
            "tool '{name}' does not exist; `pve-mcp tools` lists the {} tools",
            snap.tools.len()
        ));
    };
    let m = &tool.manifest;
    let mut out = String::new();
    let line = |out: &mut String, s: String| {
        out.push_str(&s);
        out.push('\n');
    };
    line(
        &mut out,
        format!(
            "{}{}",
            m.name,
            m.title.as_ref().map(|t| format!(" — {t}")).unwrap_or_default()
        ),
    );
    line(&mut out, format!("  source:       {}", tool.origin));
    line(&mut out, format!("  class:        {}", m.class.label()));
    line(
        &mut out,
        format!(
            "  listed:       {}",
            if crate::registry::visible(m.class, mode) {
                "yes"
            } else {
                "no, not in the server's current mode"
            }
        ),
    );
    let a = crate::server::listing::annotations(m);
    let flag = |v: Option<bool>| v.map(|b| b.to_string()).unwrap_or_else(|| "-".into());
    line(
        &mut out,
        format!(
            "  annotations:  readOnly {}, destructive {}, idempotent {}, openWorld {}",
            flag(a.read_only_hint),
            flag(a.destructive_hint),
            flag(a.idempotent_hint),
            flag(a.open_world_hint)
        ),
    );
    if m.confirm_writes {
        line(&mut out, "  confirm:      every write is planned first".into());
    }
    line(&mut out, String::new());
    line(&mut out, format!("  {}", m.description));
    line(&mut out, String::new());
    let props = m.input_schema.get("properties").and_then(Value::as_object);
    let required: Vec<&str> = m
        .input_schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    match props {
        Some(p) if !p.is_empty() => {
            line(&mut out, "  parameters:".into());
            for (k, v) in p {
                let ty = match v.get("type") {
                    Some(Value::String(s)) => s.clone(),
                    Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join("|"),
                    _ if v.get("enum").is_some() => "enum".into(),
                    _ => "any".into(),
                };
                let mut notes = Vec::new();
                notes.push(if required.contains(&k.as_str()) {
                    "required".to_string()
                } else {
                    "optional".to_string()
                });
                if let Some(d) = v.get("default") {
                    notes.push(format!("default {d}"));
                }
                if let Some(e) = v.get("enum").and_then(Value::as_array) {
                    let vals: Vec<String> = e.iter().map(Value::to_string).collect();
                    notes.push(format!("one of {}", vals.join(", ")));
                }
                for (key, word) in [("minimum", "min"), ("maximum", "max")] {
                    if let Some(x) = v.get(key) {
                        notes.push(format!("{word} {x}"));
                    }
                }
                line(&mut out, format!("    {k}: {ty} ({})", notes.join(", ")));
                if let Some(d) = v.get("description").and_then(Value::as_str) {
                    line(&mut out, format!("        {d}"));
                }
            }
        }
        _ => line(&mut out, "  parameters:   none".into()),
    }
    if m.output_schema.is_some() {
        line(&mut out, "  output:       declares an output schema".into());
    }
    if let Some(note) = crate::server::scripts::stale_note(snap, name) {
        line(&mut out, String::new());
        line(&mut out, format!("  {note}"));
    }
    for f in snap.findings.get(name).into_iter().flatten() {
        line(&mut out, format!("  check: {f}"));
    }
    Ok(out)
}

/// A tool name a file may carry: lowercase letters, digits and `_`, starting with a letter.
pub(crate) fn valid_name(name: &str) -> bool {
    name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// `new`: write a commented skeleton that compiles and runs into `dir`; returns its path.
pub(crate) fn new_tool(dir: &Path, name: &str, class: &str) -> Result<PathBuf, String> {
    if !valid_name(name) {
        return Err(format!(
            "'{name}' is not a tool name: use lowercase letters, digits and _, starting with a letter (e.g. vm_uptime)"
        ));
    }
    let caps = parse_class(class).map_err(|e| format!("--class {class}: {e}"))?;
    let path = dir.join(format!("{name}.rhai"));
    if path.exists() {
        return Err(format!(
            "{} exists already; pick another name or edit it",
            path.display()
        ));
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    std::fs::write(&path, skeleton(name, caps)).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(path)
}

/// `read`, `write`, `write,exec` or `write+exec` → the capability set.
pub(crate) fn parse_class(class: &str) -> Result<Capabilities, String> {
    let mut caps = Capabilities::READ;
    for word in class.split([',', '+']).map(str::trim) {
        let c = Capability::parse(word).ok_or_else(|| {
            let known: Vec<&str> = Capability::ALL.iter().map(|c| c.as_str()).collect();
            format!("'{word}' is not a class; use one or more of {}", known.join(", "))
        })?;
        caps = caps.with(c);
    }
    Ok(caps)
}

fn class_literal(caps: Capabilities) -> String {
    let names: Vec<String> = caps.iter().map(|c| format!("\"{}\"", c.as_str())).collect();
    match names.as_slice() {
        [] => "\"read\"".into(),
        [one] => one.clone(),
        _ => format!("[{}]", names.join(", ")),
    }
}

fn skeleton(name: &str, caps: Capabilities) -> String {
    let body = if caps.has(Capability::Exec) {
        r#"    // Runs in a QEMU VM through the guest agent; the gate allows it because the
    // class has "exec" (and the server runs with PVE_MCP_ENABLE_EXEC=true).
    let r = pve::exec(args.vmid, "uptime", 10);
    #{ vmid: args.vmid, exit_code: r.exit_code, stdout: r.stdout, stderr: r.stderr }"#
    } else if caps.has(Capability::Destructive) {
        r#"    let g = pve::resolve_vmid(args.vmid);
    let path = `/nodes/${g.node}/${g.type}/${g.vmid}/snapshot/${args.snapshot}`;
    // Without confirm the call is a plan: this request is recorded, not sent, and the
    // host shows what you return here before confirming.
    if pve::is_plan() {
        pve::delete(path);
        return #{ would: `delete snapshot ${args.snapshot} of ${g.name}` };
    }
    let task = pve::wait_task(pve::delete(path));
    #{ vmid: g.vmid, deleted: args.snapshot, task: task.status }"#
    } else if caps.has(Capability::Write) {
        r#"    let g = pve::resolve_vmid(args.vmid);
    pve::progress(`starting ${g.name}`);
    let upid = pve::post(`/nodes/${g.node}/${g.type}/${g.vmid}/status/start`);
    let task = pve::wait_task(upid, 60);   // #{status: "ok"|"warnings"|"failed"|"running", ...}
    #{ vmid: g.vmid, name: g.name, task: task.status }"#
    } else {
        r#"    // pve::guests() lists every guest; a filter narrows it.
    let rows = pve::guests(#{ status: "running" });
    let out = [];
    for g in rows {
        if g.vmid == args.vmid || args.vmid == 0 {
            out.push(#{ vmid: g.vmid, name: g.name, node: g.node, tags: g.tags,
                        up_for: pve::duration(g.uptime) });
        }
    }
    #{ count: out.len(), guests: out }"#
    };
    let extra_param = if caps.has(Capability::Destructive) {
        r#",
            "snapshot": #{ "type": "string", "minLength": 1, "description": "The snapshot's name." }"#
    } else {
        ""
    };
    let required = if caps.has(Capability::Destructive) {
        r#"["vmid", "snapshot"]"#
    } else {
        r#"["vmid"]"#
    };
    let min = if caps.is_read() { 0 } else { 100 };
    format!(
        r#"// {name}: a tool of pve-mcp. The file name is the tool name; save it while the server
// runs and the host sees it. `pve-mcp check` reads it for mistakes, `pve-mcp describe {name}`
// shows what the host sees, `pve-mcp call {name} '{{"vmid": 100}}'` runs it. Its tests go in
// tests/{name}.rhai beside it (fn test_…() calling test::run(#{{ vmid: 100 }})): `pve-mcp test`.
// SCRIPTING.md is the reference.

const TOOL = #{{
    description: "Describe what {name} does, for the host's model: what it returns, when to use it.",
    class: {class},
    params: #{{                       // JSON Schema of the arguments
        "type": "object",
        "properties": #{{
            "vmid": #{{ "type": "integer", "minimum": {min}, "description": "The guest's id." }}{extra_param}
        }},
        "required": {required}
    }},
}};

// Called with the validated arguments; what it returns is the JSON result. Constants of the
// top level are read here as global::NAME.
fn run(args) {{
{body}
}}
"#,
        class = class_literal(caps),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_skeleton_compiles_and_is_clean() {
        for class in ["read", "write", "destructive", "exec", "write,exec"] {
            let caps = parse_class(class).unwrap();
            let text = skeleton("my_tool", caps);
            let libs = crate::script::Libs::default();
            let tool = crate::script::compile_tool("my_tool", "my_tool.rhai", &text, &libs)
                .unwrap_or_else(|e| panic!("{class}: {e}\n{text}"));
            assert_eq!(tool.manifest.class, caps, "{class}");
            let found = crate::script::lint::lint("my_tool.rhai", &text, caps, &libs);
            assert!(found.is_empty(), "{class}: {found:?}");
        }
        assert!(valid_name("vm_uptime") && !valid_name("Vm") && !valid_name("../x") && !valid_name(""));
    }
}
