//! What `pve-mcp check` finds in a tool's AST beyond compiling it: calls to functions that
//! exist nowhere (not in Rhai, not in the `pve::` binding, not in the script or the library it
//! names), top-level constants read inside a function without `global::`, and requests or
//! helpers the tool's class does not allow (which the gate would refuse at run time).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, LazyLock};

use rhai::{AST, ASTNode, Engine, Expr, FnAccess, OptimizationLevel, Position, Stmt};

use super::binding;
use super::error::ScriptError;
use super::libs::Libs;
use super::sandbox;
use crate::api::Method;
use crate::gate::table::{Rule, table};
use crate::gate::{Capabilities, Capability};

/// Rhai's own keywords that look like function calls.
const KEYWORDS: &[&str] = &[
    "print",
    "debug",
    "type_of",
    "Fn",
    "call",
    "curry",
    "is_def_var",
    "is_def_fn",
    "is_shared",
    "eval",
];

/// `pve::` helpers that need a capability, with it.
const HELPER_NEEDS: &[(&str, Capability)] = &[("exec", Capability::Exec)];

/// Native functions by namespace ("" for Rhai's own, "pve" for the binding): name → arities.
struct Natives {
    by_ns: BTreeMap<String, BTreeMap<String, BTreeSet<usize>>>,
}

fn engine() -> Engine {
    let mut e = sandbox::engine(Arc::new(|_| {}));
    e.register_static_module("pve", binding::module());
    e.set_optimization_level(OptimizationLevel::None);
    e
}

static NATIVES: LazyLock<Natives> = LazyLock::new(|| {
    let e = engine();
    let list = e.collect_fn_metadata(
        None,
        |info| {
            // A module's function in the global namespace is called without its prefix
            // (the methods of `rows`).
            let ns = if info.metadata.namespace.is_global_namespace() {
                String::new()
            } else {
                info.namespace.to_string()
            };
            Some((ns, info.metadata.name.to_string(), info.metadata.num_params))
        },
        true,
    );
    let mut by_ns: BTreeMap<String, BTreeMap<String, BTreeSet<usize>>> = BTreeMap::new();
    for (ns, name, n) in list {
        by_ns.entry(ns).or_default().entry(name).or_default().insert(n);
    }
    Natives { by_ns }
});

impl Natives {
    fn get(&self, ns: &str, name: &str) -> Option<&BTreeSet<usize>> {
        self.by_ns.get(ns).and_then(|m| m.get(name))
    }
}

/// "1 or 2 arguments" for a function of Rhai or of the binding (`pve::name`), if it exists.
pub(crate) fn native_arities(name: &str) -> Option<String> {
    let (ns, bare) = name.rsplit_once("::").unwrap_or(("", name));
    NATIVES.get(ns, bare).map(arities)
}

/// Function name → arities.
type Fns = BTreeMap<String, BTreeSet<usize>>;

/// Import alias → (library name, its public functions; `None` when the roots lack it).
type Imports = BTreeMap<String, (String, Option<Fns>)>;

/// Functions a script (or a library) defines: name → arities.
fn script_fns(ast: &AST, public_only: bool) -> BTreeMap<String, BTreeSet<usize>> {
    let mut out: BTreeMap<String, BTreeSet<usize>> = BTreeMap::new();
    for f in ast.iter_functions() {
        if public_only && f.access == FnAccess::Private {
            continue;
        }
        out.entry(f.name.to_string()).or_default().insert(f.params.len());
    }
    out
}

fn arities(set: &BTreeSet<usize>) -> String {
    let list: Vec<String> = set.iter().map(usize::to_string).collect();
    match list.as_slice() {
        [one] if one == "1" => "1 argument".into(),
        [one] => format!("{one} arguments"),
        _ => format!("{} arguments", list.join(" or ")),
    }
}

struct Lint<'a> {
    origin: &'a str,
    findings: Vec<ScriptError>,
}

impl Lint<'_> {
    fn add(&mut self, pos: Position, message: String) {
        let e = ScriptError::at(self.origin, pos, message);
        if !self.findings.contains(&e) {
            self.findings.push(e);
        }
    }
}

/// Check one tool's source. `libs` are the libraries the tool is compiled with; `class` its
/// declared capabilities. Returns the findings in source order.
pub(crate) fn lint(origin: &str, text: &str, class: Capabilities, libs: &Libs) -> Vec<ScriptError> {
    let engine = engine();
    let Ok(ast) = engine.compile(text) else {
        // Compiling reports it.
        return Vec::new();
    };
    let mut lint = Lint {
        origin,
        findings: Vec::new(),
    };
    let own = script_fns(&ast, false);
    // Import aliases → the library's public functions (None: not a library the roots have).
    let mut imports: Imports = BTreeMap::new();
    let mut consts: BTreeSet<String> = BTreeSet::new();
    for stmt in ast.statements() {
        match stmt {
            Stmt::Import(x, _) => {
                let (path, alias) = &**x;
                if let Expr::StringConstant(p, _) = path {
                    let name = super::libs::import_name(p).unwrap_or_else(|| p.to_string());
                    let fns = libs
                        .source(&name)
                        .and_then(|l| engine.compile(l.text.as_ref()).ok())
                        .map(|a| script_fns(&a, true));
                    imports.insert(alias.name.to_string(), (name, fns));
                }
            }
            Stmt::Var(x, flags, _) if flags.contains(rhai::ASTFlags::CONSTANT) => {
                consts.insert(x.0.name.to_string());
            }
            _ => {}
        }
    }
    let natives = &*NATIVES;

    // Calls, anywhere in the script.
    ast.walk(&mut |path: &[ASTNode]| {
        let Some(ASTNode::Expr(expr)) = path.last() else {
            return true;
        };
        match expr {
            Expr::FnCall(call, pos) => {
                let name = call.name.as_str();
                let argc = call.args.len();
                if call.op_token.is_some() || !name.starts_with(|c: char| c.is_alphabetic() || c == '_') {
                    return true;
                }
                if call.namespace.is_empty() {
                    check_plain_call(&mut lint, natives, &own, &imports, name, argc, *pos);
                } else if call.namespace.path.len() == 1 {
                    let root = call.namespace.root();
                    check_namespaced_call(&mut lint, natives, &imports, class, root, name, &call.args, *pos);
                }
            }
            Expr::MethodCall(call, pos) => {
                let name = call.name.as_str();
                let argc = call.args.len();
                let known = KEYWORDS.contains(&name)
                    || natives.get("", name).is_some()
                    || own.get(name).is_some_and(|a| a.contains(&argc));
                if !known {
                    let why = match own.get(name) {
                        Some(a) => format!(
                            "fn {name} takes {}; called as a method it gets {} (the value before the dot is `this`)",
                            arities(a),
                            argc
                        ),
                        None => "no such method exists in Rhai, and the script defines no fn of that name".into(),
                    };
                    lint.add(*pos, format!("`.{name}(…)` is called, but {why}"));
                }
            }
            _ => {}
        }
        true
    });

    // Variables inside named functions: a fn sees only its parameters and its own variables.
    // Each named fn's body is walked on its own (a closure's body is its own `anon$` fn, not
    // part of it), from a module that holds that fn alone: cloning the script's functions
    // for each fn would grow with their number squared.
    for f in ast.iter_fn_def().filter(|f| !f.name.starts_with("anon$")) {
        let fname = f.name.to_string();
        let params: Vec<String> = f.params.iter().map(|p| p.to_string()).collect();
        let mut module = rhai::Module::new();
        module.set_script_fn(f.clone());
        let only = AST::new_from_module(module);
        let mut declared: BTreeSet<String> = params.into_iter().collect();
        let mut used: Vec<(String, bool, Position)> = Vec::new();
        only.walk(&mut |path: &[ASTNode]| {
            match path.last() {
                Some(ASTNode::Stmt(Stmt::Var(x, _, _))) => {
                    declared.insert(x.0.name.to_string());
                }
                Some(ASTNode::Stmt(Stmt::For(x, _))) => {
                    declared.insert(x.0.name.to_string());
                    if let Some(counter) = &x.1 {
                        declared.insert(counter.name.to_string());
                    }
                }
                Some(ASTNode::Stmt(Stmt::TryCatch(x, _))) => {
                    if let Expr::Variable(v, _, _) = &x.expr {
                        declared.insert(v.1.to_string());
                    }
                }
                Some(ASTNode::Expr(Expr::Variable(v, _, pos))) => {
                    let (_, name, ns, _) = &**v;
                    if ns.is_empty() {
                        used.push((name.to_string(), false, *pos));
                    } else if ns.path.len() == 1 && ns.root() == "global" {
                        used.push((name.to_string(), true, *pos));
                    }
                }
                _ => {}
            }
            true
        });
        for (name, via_global, pos) in used {
            if via_global {
                if !consts.contains(&name) {
                    lint.add(
                        pos,
                        format!(
                            "global::{name} is read in fn {}, but the script has no top-level constant {name}",
                            fname
                        ),
                    );
                }
            } else if !declared.contains(&name) {
                let message = if consts.contains(&name) {
                    format!(
                        "{name} is a top-level constant, which a fn does not see by its bare name: write global::{name} in fn {}",
                        fname
                    )
                } else {
                    format!(
                        "{name} is not defined in fn {}: a fn sees only its parameters and its own variables (top-level constants as global::NAME)",
                        fname
                    )
                };
                lint.add(pos, message);
            }
        }
    }
    lint.findings.sort_by_key(|e| (e.line, e.col));
    lint.findings
}

fn check_plain_call(
    lint: &mut Lint,
    natives: &Natives,
    own: &BTreeMap<String, BTreeSet<usize>>,
    imports: &Imports,
    name: &str,
    argc: usize,
    pos: Position,
) {
    if KEYWORDS.contains(&name) || natives.get("", name).is_some() {
        return;
    }
    match own.get(name) {
        Some(a) if a.contains(&argc) => {}
        Some(a) => lint.add(
            pos,
            format!(
                "{name}(…) is called with {argc} arguments, but fn {name} takes {}",
                arities(a)
            ),
        ),
        None => {
            let mut hint = String::new();
            if natives.get("pve", name).is_some() {
                hint = format!("; did you mean pve::{name}?");
            } else if let Some((alias, _)) = imports
                .iter()
                .find(|(_, (_, fns))| fns.as_ref().is_some_and(|f| f.contains_key(name)))
            {
                hint = format!("; did you mean {alias}::{name}?");
            }
            lint.add(
                pos,
                format!(
                    "{name}(…) is called, but no function {name} exists: not in Rhai, not in the pve:: binding, not in this script{hint}"
                ),
            );
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn check_namespaced_call(
    lint: &mut Lint,
    natives: &Natives,
    imports: &Imports,
    class: Capabilities,
    root: &str,
    name: &str,
    args: &[Expr],
    pos: Position,
) {
    let argc = args.len();
    if root == "pve" {
        match natives.get("pve", name) {
            None => {
                let mut known: Vec<&str> = natives
                    .by_ns
                    .get("pve")
                    .map(|m| m.keys().map(String::as_str).collect())
                    .unwrap_or_default();
                known.dedup();
                lint.add(
                    pos,
                    format!(
                        "pve::{name} is not a function of the pve:: binding (it has {})",
                        known.join(", ")
                    ),
                );
                return;
            }
            Some(a) if !a.contains(&argc) => {
                lint.add(
                    pos,
                    format!("pve::{name} takes {}; it is called with {argc}", arities(a)),
                );
                return;
            }
            Some(_) => {}
        }
        let method = match name {
            "post" => Some(Method::Post),
            "put" => Some(Method::Put),
            "delete" => Some(Method::Delete),
            _ => None,
        };
        if let Some(m) = method
            && class.is_read()
            && !read_request(m, args.first())
        {
            lint.add(
                pos,
                format!(
                    "pve::{name} sends a {m} request, which changes something, but the tool is declared class \"read\": the gate refuses it at run time. Declare the class it needs, e.g. class: \"write\""
                ),
            );
        }
        for (helper, needs) in HELPER_NEEDS {
            if name == *helper && !class.has(*needs) {
                lint.add(
                    pos,
                    format!(
                        "pve::{name} needs the {} capability, and the tool is declared class \"{}\": the gate refuses it at run time. Add \"{}\" to its class, e.g. class: [\"write\", \"{}\"]",
                        needs.as_str(),
                        class.label(),
                        needs.as_str(),
                        needs.as_str()
                    ),
                );
            }
        }
        return;
    }
    if root == "global" {
        return;
    }
    match imports.get(root) {
        None => lint.add(
            pos,
            format!("{root}::{name}(…) is called, but nothing is imported as {root} (import \"lib/…\" as {root};)"),
        ),
        Some((lib, Some(fns))) => match fns.get(name) {
            Some(a) if a.contains(&argc) => {}
            Some(a) => lint.add(
                pos,
                format!("{root}::{name} ({lib}) takes {}; it is called with {argc}", arities(a)),
            ),
            None => {
                let have: Vec<&str> = fns.keys().map(String::as_str).collect();
                lint.add(
                    pos,
                    format!(
                        "{lib} (imported as {root}) has no fn {name}; it has {}",
                        if have.is_empty() {
                            "none".to_string()
                        } else {
                            have.join(", ")
                        }
                    ),
                );
            }
        },
        // A library that is not there is a compile error already.
        Some((_, None)) => {}
    }
}

/// Is this a request the endpoint table classes `read` (PVE exposes a few side-effect-free
/// queries as POST)? Judged from the path's literal text when it has one.
fn read_request(method: Method, path: Option<&Expr>) -> bool {
    let tail = match path {
        Some(Expr::StringConstant(s, _)) => s.to_string(),
        Some(Expr::InterpolatedString(parts, _)) => match parts.last() {
            Some(Expr::StringConstant(s, _)) => s.to_string(),
            _ => return false,
        },
        _ => return false,
    };
    table().entries().iter().any(|e| {
        e.method == method
            && matches!(&e.rule, Rule::Needs(c) if c.is_read())
            && e.template
                .rsplit_once('}')
                .is_some_and(|(_, suffix)| !suffix.is_empty() && tail.ends_with(suffix))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(text: &str, class: Capabilities) -> Vec<String> {
        lint("t.rhai", text, class, &Libs::default())
            .into_iter()
            .map(|e| e.to_string())
            .collect()
    }

    const READ: Capabilities = Capabilities::READ;

    #[test]
    fn unknown_functions_and_global_slips() {
        let found = run(
            r#"const LIMIT = 5;
const TOOL = #{ description: "d", class: "read" };
fn helper(a, b) { a + b }
fn run(args) {
    let x = LIMIT;
    let y = global::LIMT;
    let z = frobnicate(1);
    let w = helper(1);
    let v = pve::gett("/nodes");
    let ok = global::LIMIT + "a b".split(" ").len() + helper(1, 2);
    #{ x: x, y: y, z: z, w: w, v: v, ok: ok, q: undefined_var }
}"#,
            READ,
        );
        let all = found.join("\n");
        assert!(all.contains("t.rhai:5:13: LIMIT is a top-level constant"), "{all}");
        assert!(all.contains("global::LIMT is read in fn run"), "{all}");
        assert!(
            all.contains("t.rhai:7:13: frobnicate(…) is called, but no function"),
            "{all}"
        );
        assert!(
            all.contains("helper(…) is called with 1 arguments, but fn helper takes 2"),
            "{all}"
        );
        assert!(
            all.contains("pve::gett is not a function of the pve:: binding"),
            "{all}"
        );
        assert!(all.contains("undefined_var is not defined in fn run"), "{all}");
        assert_eq!(found.len(), 6, "{all}");
    }

    #[test]
    fn class_mismatches() {
        let text = r#"const TOOL = #{ description: "d", class: "read" };
fn run(args) {
    pve::get("/nodes");
    pve::post(`/nodes/${args.node}/qemu/100/agent/ping`);
    pve::post("/nodes/pve1/qemu/100/status/stop");
}"#;
        let found = run(text, READ);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].starts_with("t.rhai:5:"), "{found:?}");
        assert!(found[0].contains("declared class \"read\""), "{found:?}");
        assert!(run(text, Capabilities::of(&[Capability::Write])).is_empty());
    }

    #[test]
    fn every_builtin_tool_is_clean() {
        let reg = crate::registry::Registry::with_builtins(vec![]);
        let snap = reg.snapshot();
        for file in crate::registry::sources::builtin() {
            let Some(name) = file.tool_name() else { continue };
            let class = snap.tools[name].manifest.class;
            let found = lint(&file.origin, &file.text, class, &snap.libs.builtin);
            assert!(found.is_empty(), "{name}: {found:#?}");
        }
    }
}
