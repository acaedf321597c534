//! The set of tools in service, and how it is rebuilt when scripts change.
//!
//! Sources are the built-ins and the user directories; a user script with a built-in's name
//! overrides it, and the first directory wins among user directories. Every reload compiles
//! everything from scratch into a new immutable [`Snapshot`]. A script that no longer
//! compiles keeps its last good version in service; one that never compiled falls back to
//! the next source of the same name (usually the built-in).
//!
//! Libraries are scoped by root: built-in tools import only the built-in `lib/`, so a user's
//! `lib/text.rhai` cannot change them; user tools import from the user directories first
//! (the first directory wins), then from the built-ins.

pub(crate) mod filter;
pub(crate) mod slot;
pub(crate) mod sources;
pub(crate) mod watch;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use crate::config::Mode;
use crate::gate::Capabilities;
use crate::script::{CompiledTool, LibSource, Libs, ScriptError, compile_tool, compile_tool_deferred, lint};
pub(crate) use filter::ToolFilter;
pub(crate) use sources::SourceFile;

/// Something wrong with one script, reported by `check`, the log and reloads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Problem {
    pub origin: String,
    pub message: String,
    /// The tool name, when the problem is with a tool script.
    pub tool: Option<String>,
    /// True when an older good version (or another source) of the tool is serving instead.
    pub kept_previous: bool,
    /// The compile error with its place, when the problem is one.
    pub error: Option<ScriptError>,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.message)?;
        if self.kept_previous {
            write!(f, " (the previous version stays in service)")?;
        }
        Ok(())
    }
}

#[derive(Debug, Default)]
pub(crate) struct Snapshot {
    pub tools: BTreeMap<String, Arc<CompiledTool>>,
    pub problems: Vec<Problem>,
    /// The libraries tools were compiled with, per root.
    pub libs: RootLibs,
    /// User libraries with a built-in's name, as (import name, user file): user tools get
    /// them, built-in tools keep the built-in ones.
    pub shadowed: Vec<(String, String)>,
    /// What `check` reports about tools that compile (see [`crate::script::lint`]), by tool.
    pub findings: BTreeMap<String, Vec<ScriptError>>,
}

/// Is a tool of this class listed and callable in this mode?
pub(crate) fn visible(class: Capabilities, mode: Mode) -> bool {
    mode.enables_all(class)
}

impl Snapshot {
    pub(crate) fn visible(&self, mode: Mode) -> impl Iterator<Item = &Arc<CompiledTool>> {
        self.tools.values().filter(move |t| visible(t.manifest.class, mode))
    }

    pub(crate) fn get_visible(&self, name: &str, mode: Mode) -> Option<&Arc<CompiledTool>> {
        self.tools.get(name).filter(|t| visible(t.manifest.class, mode))
    }

    /// The tools served: those the mode lists, narrowed by `PVE_MCP_TOOLS` and
    /// `PVE_MCP_DISABLE_TOOLS`.
    pub(crate) fn served<'a>(
        &'a self,
        mode: Mode,
        filter: &'a ToolFilter,
    ) -> impl Iterator<Item = &'a Arc<CompiledTool>> {
        self.visible(mode).filter(move |t| filter.allows(&t.manifest.name))
    }

    pub(crate) fn get_served(&self, name: &str, mode: Mode, filter: &ToolFilter) -> Option<&Arc<CompiledTool>> {
        self.get_visible(name, mode).filter(|t| filter.allows(&t.manifest.name))
    }

    /// Why a tool of this name is not served, for the error a host sees.
    pub(crate) fn why_not_served(&self, name: &str, mode: Mode) -> &'static str {
        match self.tools.get(name) {
            None => "does not exist",
            Some(t) if visible(t.manifest.class, mode) => {
                "is disabled on this server (PVE_MCP_TOOLS / PVE_MCP_DISABLE_TOOLS)"
            }
            Some(_) => "is not available in the server's current mode (read-only, or exec disabled)",
        }
    }

    /// The compile problem of a tool's newest source, if it has one.
    pub(crate) fn problem_of(&self, tool: &str) -> Option<&Problem> {
        self.problems.iter().find(|p| p.tool.as_deref() == Some(tool))
    }

    /// What hosts see: the listed definition of every tool.
    fn listing(&self) -> BTreeMap<&str, &crate::script::Manifest> {
        self.tools.iter().map(|(k, v)| (k.as_str(), &v.manifest)).collect()
    }
}

/// What a reload did.
#[derive(Debug, Default)]
pub(crate) struct ReloadReport {
    /// The listed tools changed (added, removed, or a definition changed).
    pub listing_changed: bool,
    /// Problems that were not there before.
    pub new_problems: Vec<Problem>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("dirs", &self.dirs)
            .finish_non_exhaustive()
    }
}

pub(crate) struct Registry {
    builtin: Vec<SourceFile>,
    dirs: Vec<PathBuf>,
    current: RwLock<Arc<Snapshot>>,
}

impl Registry {
    /// Load the built-ins and the given user directories (highest priority first).
    pub(crate) fn new(builtin: Vec<SourceFile>, dirs: Vec<PathBuf>) -> Registry {
        let reg = Registry {
            builtin,
            dirs,
            current: RwLock::new(Arc::new(Snapshot::default())),
        };
        reg.reload();
        reg
    }

    pub(crate) fn with_builtins(dirs: Vec<PathBuf>) -> Registry {
        Registry::new(sources::builtin(), dirs)
    }

    pub(crate) fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }

    pub(crate) fn snapshot(&self) -> Arc<Snapshot> {
        self.current.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Rebuild from the sources. Only what changed is compiled again: a tool whose text and
    /// libraries are the same as in the current snapshot is kept as it is.
    pub(crate) fn reload(&self) -> ReloadReport {
        let previous = self.snapshot();
        let next = build(&self.builtin, &self.dirs, &previous);
        let listing_changed = previous.listing() != next.listing();
        let new_problems: Vec<Problem> = next
            .problems
            .iter()
            .filter(|p| !previous.problems.contains(p))
            .cloned()
            .collect();
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(next);
        ReloadReport {
            listing_changed,
            new_problems,
        }
    }
}

/// Candidates for one name, highest priority first, with the root each comes from.
type Candidates = BTreeMap<String, Vec<(SourceFile, Scope)>>;

fn build(builtin: &[SourceFile], dirs: &[PathBuf], previous: &Snapshot) -> Snapshot {
    let mut problems = Vec::new();
    let sets = read_sources(builtin, dirs, &mut problems);
    let Sorted { tools, libs, shadowed } = sort_sources(sets);
    let mut compiled = BTreeMap::new();
    let mut findings = BTreeMap::new();
    let tools: Vec<(String, Vec<(SourceFile, Scope)>)> = tools.into_iter().collect();
    let choices = choose_all(&tools, &libs, previous);
    for ((name, candidates), choice) in tools.into_iter().zip(choices) {
        problems.extend(choice.problem);
        if let Some(found) = choice.findings {
            findings.insert(name.clone(), found);
        }
        if let Some(tool) = choice.tool {
            if candidates.len() > 1 && candidates[0].0.origin == tool.origin {
                tracing::debug!("{} overrides {}", tool.origin, candidates[1].0.origin);
            }
            compiled.insert(name, tool);
        }
    }
    Snapshot {
        tools: compiled,
        problems,
        libs,
        shadowed,
        findings,
    }
}

/// From how many tool names [`choose_all`] splits the work over two threads (the first
/// build reads two dozen built-ins).
const TWO_THREADS_FROM: usize = 8;

/// Each name's [`Choice`], in order. A long list is halved: the second half is chosen on a
/// thread of its own while this one does the first (the server waits for the first build
/// before it lists its tools).
fn choose_all(tools: &[(String, Vec<(SourceFile, Scope)>)], libs: &RootLibs, previous: &Snapshot) -> Vec<Choice> {
    let one = |(name, candidates): &(String, Vec<(SourceFile, Scope)>)| choose(name, candidates, libs, previous);
    if tools.len() < TWO_THREADS_FROM {
        return tools.iter().map(one).collect();
    }
    let (first, second) = tools.split_at(tools.len() / 2);
    std::thread::scope(|s| {
        let helper = std::thread::Builder::new()
            .name("pve-mcp compile".into())
            .spawn_scoped(s, || second.iter().map(one).collect::<Vec<_>>());
        let mut out: Vec<Choice> = first.iter().map(one).collect();
        match helper {
            Ok(h) => match h.join() {
                Ok(rest) => out.extend(rest),
                Err(panic) => std::panic::resume_unwind(panic),
            },
            // No thread to be had: the second half here too.
            Err(_) => out.extend(second.iter().map(one)),
        }
        out
    })
}

/// The built-ins, then each directory's files, lowest priority first. A directory that
/// cannot be read (or a file in it) is a problem, a missing one is not.
fn read_sources(builtin: &[SourceFile], dirs: &[PathBuf], problems: &mut Vec<Problem>) -> Vec<Vec<SourceFile>> {
    let mut sets: Vec<Vec<SourceFile>> = vec![builtin.to_vec()];
    let untied = |origin: String, message: String| Problem {
        origin,
        message,
        tool: None,
        kept_previous: false,
        error: None,
    };
    for dir in dirs.iter().rev() {
        match sources::read_dir(dir) {
            Ok((files, read_problems)) => {
                problems.extend(read_problems.into_iter().map(|p| untied(p.origin, p.message)));
                sets.push(files);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => problems.push(untied(
                dir.display().to_string(),
                format!("the script directory cannot be read: {e}"),
            )),
        }
    }
    sets
}

/// The sources sorted into tool candidates and the two roots' libraries.
struct Sorted {
    tools: Candidates,
    libs: RootLibs,
    shadowed: Vec<(String, String)>,
}

/// `sets` lowest priority first, so that later inserts win for libraries; tools keep every
/// candidate, highest priority at the front.
fn sort_sources(sets: Vec<Vec<SourceFile>>) -> Sorted {
    let mut tools: Candidates = BTreeMap::new();
    let mut builtin_libs: BTreeMap<String, LibSource> = BTreeMap::new();
    let mut user_libs: BTreeMap<String, LibSource> = BTreeMap::new();
    for (index, set) in sets.into_iter().enumerate() {
        let root = if index == 0 { Scope::Builtin } else { Scope::User };
        for file in set {
            if let Some(name) = file.tool_name() {
                tools
                    .entry(name.to_string())
                    .or_default()
                    .insert(0, (file.clone(), root));
            } else if let Some(lib) = file.lib_name() {
                let source = LibSource {
                    origin: file.origin.clone(),
                    text: file.text.clone(),
                };
                if root == Scope::Builtin {
                    builtin_libs.insert(lib.clone(), source.clone());
                }
                user_libs.insert(lib, source);
            }
        }
    }
    let shadowed = builtin_libs
        .iter()
        .filter_map(|(name, b)| {
            let u = user_libs.get(name)?;
            (u.origin != b.origin).then(|| (name.clone(), u.origin.clone()))
        })
        .collect();
    Sorted {
        tools,
        libs: RootLibs {
            builtin: Libs::new(builtin_libs),
            user: Libs::new(user_libs),
        },
        shadowed,
    }
}

/// What serves one tool name, and what to report about it.
struct Choice {
    tool: Option<Arc<CompiledTool>>,
    /// The top candidate's compile error (the first that failed).
    problem: Option<Problem>,
    findings: Option<Vec<ScriptError>>,
}

/// The first candidate that is still in service unchanged or compiles; when the top one is
/// broken and an older version serves, that one stays.
fn choose(name: &str, candidates: &[(SourceFile, Scope)], libs: &RootLibs, previous: &Snapshot) -> Choice {
    let mut first_error: Option<(&SourceFile, ScriptError)> = None;
    let mut chosen = None;
    let mut findings = None;
    for (file, root) in candidates {
        let root_libs = libs.for_root(*root);
        // Built-ins are known good (the tests build and lint each one): their bodies are
        // built on first use, so start-up only reads their manifests.
        let builtin = file.origin.starts_with(sources::BUILTIN_ORIGIN);
        // The tool in service was compiled from this very text with the same libraries
        // (a built-in imports only the built-in ones, which never change): it is still
        // good, keeps the body it may have built, and a reload compiles only what changed.
        let libs_unchanged = builtin || previous.libs.for_root(*root).same_sources(root_libs);
        if libs_unchanged && let Some(prev) = previous.tools.get(name).filter(|p| p.is_from(&file.origin, &file.text)) {
            findings = previous.findings.get(name).cloned();
            chosen = Some(prev.clone());
            break;
        }
        let compiled = if builtin {
            compile_tool_deferred(name, &file.origin, &file.text, root_libs)
        } else {
            compile_tool(name, &file.origin, &file.text, root_libs)
        };
        match compiled {
            Ok(tool) => {
                if !builtin {
                    let found = lint::lint(&file.origin, &file.text, tool.manifest.class, root_libs);
                    findings = (!found.is_empty()).then_some(found);
                }
                chosen = Some(Arc::new(tool));
                break;
            }
            Err(e) => {
                first_error.get_or_insert((file, e));
                // A broken top candidate with a good previous version: keep that one.
                if let Some(prev) = previous.tools.get(name) {
                    chosen = Some(prev.clone());
                    break;
                }
            }
        }
    }
    let problem = first_error.map(|(file, err)| Problem {
        origin: file.origin.clone(),
        message: err.to_string(),
        tool: Some(name.to_string()),
        kept_previous: chosen.is_some(),
        error: Some(err),
    });
    Choice {
        tool: chosen,
        problem,
        findings,
    }
}

/// Which libraries a tool gets: the built-in ones for a built-in tool, the user's (then
/// the built-in ones) for a user's tool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    Builtin,
    User,
}

/// The two library sets of one snapshot.
#[derive(Debug, Clone, Default)]
pub(crate) struct RootLibs {
    pub builtin: Libs,
    pub user: Libs,
}

impl RootLibs {
    pub(crate) fn for_root(&self, root: Scope) -> &Libs {
        match root {
            Scope::Builtin => &self.builtin,
            Scope::User => &self.user,
        }
    }

    /// The libraries a tool from this origin was compiled with.
    #[cfg(test)]
    fn for_origin(&self, origin: &str) -> &Libs {
        if origin.starts_with(sources::BUILTIN_ORIGIN) {
            &self.builtin
        } else {
            &self.user
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(rel: &str, text: &str) -> SourceFile {
        SourceFile {
            rel: rel.into(),
            origin: format!("builtin:{rel}"),
            text: Arc::from(text),
        }
    }

    const GOOD: &str = r#"const TOOL = #{ description: "d", class: "read" }; fn run(args) { #{ ok: true } }"#;

    #[test]
    fn every_builtin_builds_its_body() {
        let reg = Registry::with_builtins(vec![]);
        let snap = reg.snapshot();
        assert!(snap.problems.is_empty(), "{:?}", snap.problems);
        assert_eq!(snap.tools.len(), 24);
        for t in snap.tools.values() {
            if let Err(e) = t.body() {
                panic!("{}: {e}", t.origin);
            }
        }
    }

    #[test]
    fn a_reload_keeps_the_builtins_it_has_and_their_bodies() {
        let dir = tempfile::tempdir().unwrap();
        let reg = Registry::new(
            vec![src("t.rhai", GOOD), src("u.rhai", GOOD)],
            vec![dir.path().to_path_buf()],
        );
        let before = reg.snapshot();
        assert!(before.tools["t"].body().is_ok());
        std::fs::write(dir.path().join("u.rhai"), GOOD.replace("\"d\"", "\"user\"")).unwrap();
        reg.reload();
        let after = reg.snapshot();
        assert!(Arc::ptr_eq(&before.tools["t"], &after.tools["t"]), "the same built-in");
        assert_eq!(after.tools["u"].manifest.description, "user");
        std::fs::remove_file(dir.path().join("u.rhai")).unwrap();
        reg.reload();
        let back = reg.snapshot();
        assert_eq!(back.tools["u"].manifest.description, "d");
        assert!(back.tools["u"].body().is_ok());
    }

    #[test]
    fn a_reload_compiles_only_the_user_scripts_that_changed() {
        let dir = tempfile::tempdir().unwrap();
        let tool = |v: &str| {
            format!(
                "import \"lib/util\" as u; const TOOL = #{{ description: \"{v}\", class: \"read\" }}; fn run(args) {{ u::one() }}"
            )
        };
        std::fs::create_dir_all(dir.path().join("lib")).unwrap();
        std::fs::write(dir.path().join("lib/util.rhai"), "fn one() { 1 }").unwrap();
        std::fs::write(dir.path().join("a.rhai"), tool("a")).unwrap();
        std::fs::write(dir.path().join("b.rhai"), tool("b")).unwrap();
        let reg = Registry::new(vec![], vec![dir.path().to_path_buf()]);
        let before = reg.snapshot();
        std::fs::write(dir.path().join("b.rhai"), tool("b2")).unwrap();
        reg.reload();
        let after = reg.snapshot();
        assert!(Arc::ptr_eq(&before.tools["a"], &after.tools["a"]), "a did not change");
        assert_eq!(after.tools["b"].manifest.description, "b2");
        // A library they import changed: both are compiled again, with it.
        std::fs::write(dir.path().join("lib/util.rhai"), "fn one() { 2 }").unwrap();
        reg.reload();
        let relinked = reg.snapshot();
        assert!(
            !Arc::ptr_eq(&after.tools["a"], &relinked.tools["a"]),
            "a imports the changed library"
        );
        assert!(!Arc::ptr_eq(&after.tools["b"], &relinked.tools["b"]));
    }

    #[test]
    fn mode_visibility() {
        use crate::gate::Capability::*;
        let c = |caps: &[crate::gate::Capability]| Capabilities::of(caps);
        let ro = Mode::new(true, true, true);
        let rw = Mode::new(false, false, false);
        let ex = Mode::new(false, true, false);
        let ad = Mode::new(false, false, true);
        assert!(visible(c(&[Read]), ro) && !visible(c(&[Write]), ro) && !visible(c(&[Destructive]), ro));
        assert!(!visible(c(&[Exec]), ro) && !visible(c(&[Admin]), ro));
        assert!(visible(c(&[Write]), rw) && visible(c(&[Destructive]), rw) && !visible(c(&[Exec]), rw));
        assert!(visible(c(&[Exec]), ex) && !visible(c(&[Admin]), ex) && !visible(c(&[Write, Admin]), ex));
        assert!(visible(c(&[Admin, Destructive]), ad) && !visible(c(&[Write, Exec]), ad));
    }

    #[test]
    fn user_dir_overrides_and_broken_falls_back() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("t.rhai"), GOOD.replace("\"d\"", "\"user\"")).unwrap();
        let reg = Registry::new(vec![src("t.rhai", GOOD)], vec![dir.path().to_path_buf()]);
        assert_eq!(reg.snapshot().tools["t"].manifest.description, "user");

        // A broken edit keeps the last good version.
        std::fs::write(dir.path().join("t.rhai"), "const TOOL = #{ ").unwrap();
        let report = reg.reload();
        assert!(!report.listing_changed);
        assert_eq!(report.new_problems.len(), 1);
        assert!(report.new_problems[0].kept_previous);
        assert_eq!(reg.snapshot().tools["t"].manifest.description, "user");

        // Removing the override brings back the built-in.
        std::fs::remove_file(dir.path().join("t.rhai")).unwrap();
        assert!(reg.reload().listing_changed);
        assert_eq!(reg.snapshot().tools["t"].manifest.description, "d");
        assert!(reg.snapshot().problems.is_empty());
    }

    #[test]
    fn broken_override_at_start_falls_back_to_builtin() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("t.rhai"), "fn run(args) {}").unwrap();
        let reg = Registry::new(vec![src("t.rhai", GOOD)], vec![dir.path().to_path_buf()]);
        let snap = reg.snapshot();
        assert_eq!(snap.tools["t"].origin, "builtin:t.rhai");
        assert!(snap.problems[0].message.contains("TOOL"), "{}", snap.problems[0]);
    }

    #[test]
    fn libs_resolve_and_missing_dirs_are_fine() {
        let tool = r#"import "lib/util" as u;
const TOOL = #{ description: "d", class: "read" };
fn run(args) { #{ v: u::double(21) } }"#;
        let reg = Registry::new(
            vec![src("t.rhai", tool), src("lib/util.rhai", "fn double(x) { x * 2 }")],
            vec![PathBuf::from("/definitely/not/here")],
        );
        let snap = reg.snapshot();
        assert!(snap.problems.is_empty(), "{:?}", snap.problems);
        assert!(snap.tools.contains_key("t"));
        assert!(!snap.tools.contains_key("util"));
    }

    #[test]
    fn libraries_are_scoped_by_root() {
        let tool = |v: &str| {
            format!(
                r#"import "lib/util" as u; const TOOL = #{{ description: "{v}", class: "read" }}; fn run(args) {{ #{{ v: u::value() }} }}"#
            )
        };
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("lib")).unwrap();
        std::fs::write(dir.path().join("lib/util.rhai"), "fn value() { \"user\" }").unwrap();
        std::fs::write(dir.path().join("mine.rhai"), tool("mine")).unwrap();
        let reg = Registry::new(
            vec![
                src("t.rhai", &tool("t")),
                src("lib/util.rhai", "fn value() { \"builtin\" }"),
            ],
            vec![dir.path().to_path_buf()],
        );
        let snap = reg.snapshot();
        assert!(snap.problems.is_empty(), "{:?}", snap.problems);
        let lib_of = |name: &str| {
            let t = &snap.tools[name];
            let origin = snap.libs.for_origin(&t.origin);
            origin.source("lib/util").map(|l| l.origin.clone())
        };
        assert_eq!(lib_of("t").as_deref(), Some("builtin:lib/util.rhai"));
        assert!(lib_of("mine").unwrap().ends_with("lib/util.rhai"));
        assert!(!lib_of("mine").unwrap().starts_with("builtin:"));
        assert_eq!(snap.shadowed.len(), 1);
    }

    #[test]
    fn import_outside_lib_is_a_compile_problem() {
        let tool =
            r#"import "../../etc/passwd" as p; const TOOL = #{ description: "d", class: "read" }; fn run(args) { 1 }"#;
        // A user script (built-ins are built on first use).
        let mut user = src("t.rhai", tool);
        user.origin = "/scripts/t.rhai".into();
        let reg = Registry::new(vec![user], vec![]);
        let snap = reg.snapshot();
        assert!(snap.tools.is_empty());
        assert!(
            snap.problems[0].message.contains("Module not found"),
            "{}",
            snap.problems[0]
        );
    }
}
