//! `pve-mcp test`: the tests a script directory carries, run against the simulated cluster
//! through the real core.
//!
//! A tool `DIR/NAME.rhai` is tested by `DIR/tests/NAME.rhai` (and `DIR/tests/NAME.*.rhai`,
//! for more files about the same tool, e.g. under other settings); a library
//! `DIR/lib/NAME.rhai` by `DIR/tests/lib/NAME.rhai`, which imports it and calls its
//! functions (it has no tool for `test::run`). A test file holds
//! `fn test_…()` functions without parameters, optionally a literal
//! `const TEST = #{ cluster: "FILE", env: #{ PVE_MCP_…: "…" } };`, and may import the
//! directory's libraries. The server loads `tests/` never: tools are top-level files only.
//!
//! Every test function gets a fresh simulated cluster of its own (the file's `cluster`,
//! else `--cluster`, else the built-in home lab) and a server core connected to it: the
//! registry of the directory (with the built-ins), settings from `TEST.env` alone (the
//! process environment does not leak in), no audit log. The test
//! runs on a script thread like a read tool: it may read with `pve::`, and it changes
//! things only through `test::run`, which is a host's call of the tool (see [`binding`]).
//! Files run a few at a time; the tests of one file run in order.

pub(crate) mod binding;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rhai::{AST, Dynamic, Scope};
use serde::Deserialize;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::audit::{Audit, CallAudit};
use crate::config::{self, Connection, Env, Settings};
use crate::confirm::PlanKey;
use crate::gate::{CallMode, Capabilities, Gate};
use crate::pve::PveClient;
use crate::registry::{Registry, Snapshot, sources};
use crate::script::context::{CallContext, CallParts};
use crate::script::{ScriptError, Services, budget, compile, thread};
use crate::sim::spec::ClusterSpec;
use crate::sim::{SimOptions, Simulator};

/// Test files run at once.
pub(crate) const JOBS: usize = 4;

/// One test file and the tool it tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TestFile {
    pub path: PathBuf,
    /// The tool under test: the file name up to its first dot.
    pub tool: String,
}

/// The test files of one script directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Suite {
    pub dir: PathBuf,
    pub files: Vec<TestFile>,
    /// Every test file of the directory was asked for (a directory was named, not a file).
    pub whole: bool,
}

/// How a run is set up.
#[derive(Debug, Clone, Default)]
pub(crate) struct Options {
    /// The cluster of test files that name none (the built-in one otherwise).
    pub cluster: Option<PathBuf>,
    /// Append every request the tests sent, as the simulator's JSON lines.
    pub request_log: Option<PathBuf>,
}

/// What one test function did.
#[derive(Debug, Clone)]
pub(crate) struct TestReport {
    pub name: String,
    pub duration: Duration,
    /// `FILE:LINE:COL: message` of the failure, if it failed.
    pub failure: Option<String>,
}

/// What one test file did: its tests, or why none could run.
#[derive(Debug, Clone)]
pub(crate) struct FileReport {
    pub origin: String,
    pub tool: String,
    pub outcome: Result<Vec<TestReport>, String>,
}

impl FileReport {
    pub(crate) fn failed(&self) -> usize {
        match &self.outcome {
            Ok(tests) => tests.iter().filter(|t| t.failure.is_some()).count(),
            Err(_) => 1,
        }
    }
}

/// The tool a test file tests: `pve_vm_power.rhai` and `pve_vm_power.plan.rhai` test
/// `pve_vm_power`.
fn tool_of(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_str()?.strip_suffix(".rhai")?;
    let tool = name.split('.').next().unwrap_or(name);
    (!tool.is_empty()).then(|| tool.to_string())
}

/// `.rhai` files directly in `dir`, sorted, then the library tests in `dir/lib/`; for a
/// tool `only`, its own test files.
fn test_files(dir: &Path, only: Option<&str>) -> Result<Vec<TestFile>, String> {
    let mut files = if only.is_none_or(|t| !t.starts_with("lib/")) {
        rhai_files(dir, "")?
    } else {
        Vec::new()
    };
    let libs = dir.join("lib");
    if libs.is_dir() && only.is_none_or(|t| t.starts_with("lib/")) {
        files.extend(rhai_files(&libs, "lib/")?);
    }
    files.retain(|f| only.is_none_or(|t| f.tool == t));
    Ok(files)
}

/// The `.rhai` files directly in `dir`, sorted, each named for what it tests (`prefix` and
/// the name: `lib/text` for `tests/lib/text.rhai`).
fn rhai_files(dir: &Path, prefix: &str) -> Result<Vec<TestFile>, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: cannot be read: {e}", dir.display()))?;
    let mut files: Vec<TestFile> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "rhai"))
        .filter(|p| !p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')))
        .filter_map(|path| {
            let tool = format!("{prefix}{}", tool_of(&path)?);
            Some(TestFile { path, tool })
        })
        .collect();
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}

fn parent_or_dot(p: &Path) -> PathBuf {
    match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn is_tests_dir(p: &Path) -> bool {
    p.file_name().is_some_and(|n| n == "tests")
}

/// The test files in `tests` of `what` (a tool, or `lib/NAME`), the script `target`; none is
/// an error that says where they go.
fn tests_of(target: &Path, tests: &Path, what: &str) -> Result<Vec<TestFile>, String> {
    let files = if tests.is_dir() {
        test_files(tests, Some(what))?
    } else {
        Vec::new()
    };
    if files.is_empty() {
        return Err(format!(
            "{} has no tests: write them as fn test_…() in {}",
            target.display(),
            tests.join(format!("{what}.rhai")).display()
        ));
    }
    Ok(files)
}

/// Which test files `pve-mcp test TARGET…` runs: a script directory (its `tests/`), a
/// `tests/` directory, one test file, or a tool file (its test files).
pub(crate) fn discover(targets: &[PathBuf]) -> Result<Vec<Suite>, String> {
    let mut suites: Vec<Suite> = Vec::new();
    for target in targets {
        let libs_only = target.file_name().is_some_and(|n| n == "lib") && is_tests_dir(&parent_or_dot(target));
        let whole = target.is_dir() && !libs_only;
        let (dir, files) = if target.is_dir() {
            if target.join("tests").is_dir() {
                (target.clone(), test_files(&target.join("tests"), None)?)
            } else if is_tests_dir(target) {
                (parent_or_dot(target), test_files(target, None)?)
            } else if libs_only {
                // DIR/tests/lib: the libraries' tests.
                (parent_or_dot(&parent_or_dot(target)), rhai_files(target, "lib/")?)
            } else {
                (target.clone(), Vec::new())
            }
        } else if target.is_file() {
            let parent = parent_or_dot(target);
            let grandparent = parent_or_dot(&parent);
            let in_lib = parent.file_name().is_some_and(|n| n == "lib");
            if in_lib && is_tests_dir(&grandparent) {
                // A library's test file: DIR/tests/lib/NAME.rhai.
                let name = tool_of(target).ok_or_else(|| format!("{}: not a .rhai script", target.display()))?;
                (
                    parent_or_dot(&grandparent),
                    vec![TestFile {
                        path: target.clone(),
                        tool: format!("lib/{name}"),
                    }],
                )
            } else if in_lib && !parent.join("tests").is_dir() {
                // A library: DIR/lib/NAME.rhai, tested by DIR/tests/lib/NAME.rhai (a script
                // directory that happens to be named lib, with a tests/ of its own, is not).
                let name = tool_of(target).ok_or_else(|| format!("{}: not a .rhai script", target.display()))?;
                let files = tests_of(target, &grandparent.join("tests"), &format!("lib/{name}"))?;
                (grandparent, files)
            } else if is_tests_dir(&parent) {
                let tool =
                    tool_of(target).ok_or_else(|| format!("{}: a test file is named TOOL.rhai", target.display()))?;
                (
                    parent_or_dot(&parent),
                    vec![TestFile {
                        path: target.clone(),
                        tool,
                    }],
                )
            } else {
                let tool = tool_of(target).ok_or_else(|| format!("{}: not a .rhai script", target.display()))?;
                let files = tests_of(target, &parent.join("tests"), &tool)?;
                (parent, files)
            }
        } else {
            return Err(format!("{}: no such file or directory", target.display()));
        };
        match suites.iter_mut().find(|s| s.dir == dir) {
            Some(s) => {
                s.whole |= whole;
                for f in files {
                    if !s.files.contains(&f) {
                        s.files.push(f);
                    }
                }
            }
            None => suites.push(Suite { dir, files, whole }),
        }
    }
    Ok(suites)
}

/// The literal `const TEST = #{…}` of a test file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestConfig {
    /// A cluster description, relative to the test file.
    #[serde(default)]
    cluster: Option<String>,
    /// `PVE_MCP_*` settings, as the server reads them from its environment.
    #[serde(default)]
    env: serde_json::Map<String, Value>,
}

/// The settings a test's server reads: `TEST.env` and the runner's own, nothing else.
struct TestVars(std::collections::BTreeMap<String, String>);

impl Env for TestVars {
    fn get(&self, key: &str) -> Option<String> {
        self.0.get(key).cloned()
    }
}

/// A directory removed when the run ends.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Result<TempDir, String> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path = std::env::temp_dir().join(format!("pve-mcp-test-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&path)
            .map_err(|e| format!("cannot create a temporary directory {}: {e}", path.display()))?;
        Ok(TempDir(path))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Everything a test file's tests share.
struct FileSetup {
    origin: String,
    tool: String,
    ast: AST,
    tests: Vec<(String, usize)>,
    settings: Settings,
    spec: ClusterSpec,
}

/// Run the suites, a few files at a time; `report` is called for each file in order as
/// soon as it and the ones before it are done.
pub(crate) async fn run(
    suites: Vec<Suite>,
    opts: Options,
    mut report: impl FnMut(&FileReport),
) -> Result<Vec<FileReport>, String> {
    let temp = Arc::new(TempDir::new()?);
    let default_spec = match &opts.cluster {
        Some(p) => ClusterSpec::load(p).map_err(|e| e.to_string())?,
        None => ClusterSpec::default_cluster(),
    };
    let log_lock = Arc::new(std::sync::Mutex::new(()));
    let jobs = Arc::new(tokio::sync::Semaphore::new(JOBS));
    let mut handles = Vec::new();
    let mut index = 0usize;
    for suite in suites {
        let registry = Arc::new(Registry::new(sources::builtin(), vec![suite.dir.clone()]));
        for file in suite.files {
            index += 1;
            let (registry, temp, jobs, spec, opts, log_lock) = (
                registry.clone(),
                temp.clone(),
                jobs.clone(),
                default_spec.clone(),
                opts.clone(),
                log_lock.clone(),
            );
            let dir = suite.dir.clone();
            handles.push(tokio::spawn(async move {
                let _slot = jobs.acquire_owned().await;
                let work = Work {
                    registry,
                    dir,
                    temp: temp.0.join(format!("file{index}")),
                    spec,
                    request_log: opts.request_log,
                    log_lock,
                };
                run_file(&work, &file).await
            }));
        }
    }
    let mut reports = Vec::new();
    for h in handles {
        let r = h
            .await
            .map_err(|e| format!("a test file's run ended unexpectedly: {e}"))?;
        report(&r);
        reports.push(r);
    }
    drop(temp);
    Ok(reports)
}

/// What a file's run needs from the whole run.
struct Work {
    registry: Arc<Registry>,
    dir: PathBuf,
    temp: PathBuf,
    spec: ClusterSpec,
    request_log: Option<PathBuf>,
    log_lock: Arc<std::sync::Mutex<()>>,
}

async fn run_file(work: &Work, file: &TestFile) -> FileReport {
    let origin = file.path.display().to_string();
    let setup = match prepare(work, file, &origin) {
        Ok(s) => s,
        Err(message) => {
            return FileReport {
                origin,
                tool: file.tool.clone(),
                outcome: Err(message),
            };
        }
    };
    let setup = Arc::new(setup);
    let mut tests = Vec::new();
    for (i, (name, _)) in setup.tests.iter().enumerate() {
        let started = Instant::now();
        let failure = run_test(work, &setup, name, i).await.err();
        tests.push(TestReport {
            name: name.clone(),
            duration: started.elapsed(),
            failure,
        });
    }
    FileReport {
        origin,
        tool: setup.tool.clone(),
        outcome: Ok(tests),
    }
}

/// Read and compile a test file, its `TEST` settings and cluster.
fn prepare(work: &Work, file: &TestFile, origin: &str) -> Result<FileSetup, String> {
    let at_top = |message: String| format!("{origin}:1:1: {message}");
    let meta = std::fs::metadata(&file.path).map_err(|e| format!("{origin}: cannot be read: {e}"))?;
    if meta.len() > sources::MAX_SCRIPT_BYTES {
        return Err(format!("{origin}: is larger than {} bytes", sources::MAX_SCRIPT_BYTES));
    }
    let text = std::fs::read_to_string(&file.path).map_err(|e| format!("{origin}: cannot be read: {e}"))?;
    let snap: Arc<Snapshot> = work.registry.snapshot();
    // Test files import as the directory's tools do: its libraries first, then the built-ins.
    let ast = compile::compile_script(origin, &text, &snap.libs.user).map_err(|e| e.to_string())?;
    let config = match ast
        .iter_literal_variables(true, false)
        .find(|(name, _, _)| *name == "TEST")
        .map(|(_, _, v)| v)
    {
        None => TestConfig::default(),
        Some(v) => {
            let json: Value = rhai::serde::from_dynamic(&v).map_err(|e| at_top(format!("TEST: {e}")))?;
            serde_json::from_value(json).map_err(|e| {
                at_top(format!(
                    "TEST: {e}; it takes cluster: \"FILE\" and env: #{{ PVE_MCP_…: \"…\" }}"
                ))
            })?
        }
    };
    let mut vars = std::collections::BTreeMap::new();
    for (k, v) in &config.env {
        if !k.starts_with("PVE_MCP_") || matches!(k.as_str(), "PVE_MCP_SCRIPTS" | "PVE_MCP_AUDIT_LOG") {
            return Err(at_top(format!(
                "TEST.env: {k} is not a setting a test may change; it takes the server's PVE_MCP_… variables (not PVE_MCP_SCRIPTS or PVE_MCP_AUDIT_LOG, which the runner sets)"
            )));
        }
        let value = match v {
            Value::String(s) => s.clone(),
            Value::Bool(_) | Value::Number(_) => v.to_string(),
            other => return Err(at_top(format!("TEST.env: {k} is a string, got {other}"))),
        };
        vars.insert(k.clone(), value);
    }
    vars.insert("PVE_MCP_SCRIPTS".into(), work.dir.display().to_string());
    // The simulated cluster is not worth an audit trail.
    vars.insert("PVE_MCP_AUDIT_LOG".into(), "off".into());
    let settings = Settings::from_env(&TestVars(vars)).map_err(|e| at_top(format!("TEST.env: {e}")))?;
    let spec = match &config.cluster {
        Some(rel) => {
            let path = parent_or_dot(&file.path).join(rel);
            ClusterSpec::load(&path).map_err(|e| at_top(format!("TEST.cluster: {e}")))?
        }
        None => work.spec.clone(),
    };
    let mut tests: Vec<(String, usize)> = Vec::new();
    for f in ast.iter_functions() {
        if !f.name.starts_with("test_") {
            continue;
        }
        let line = definition_line(&text, f.name);
        if !f.params.is_empty() {
            return Err(format!(
                "{origin}:{line}:1: fn {} takes parameters; a test function takes none",
                f.name
            ));
        }
        tests.push((f.name.to_string(), line));
    }
    tests.sort_by_key(|(name, line)| (*line, name.clone()));
    if tests.is_empty() {
        return Err(at_top(
            "no tests: a test is a function named test_something() without parameters".into(),
        ));
    }
    std::fs::create_dir_all(&work.temp).map_err(|e| format!("cannot create {}: {e}", work.temp.display()))?;
    Ok(FileSetup {
        origin: origin.to_string(),
        tool: file.tool.clone(),
        ast,
        tests,
        settings,
        spec,
    })
}

/// The line of `fn NAME(` in a script (1 when it cannot be found).
fn definition_line(text: &str, name: &str) -> usize {
    let needle = format!("fn {name}");
    text.match_indices(&needle)
        .find(|(at, _)| {
            let rest = &text[at + needle.len()..];
            rest.trim_start().starts_with('(')
        })
        .map(|(at, _)| text[..at].matches('\n').count() + 1)
        .unwrap_or(1)
}

/// One test function against a fresh simulated cluster; `Err` is its failure.
async fn run_test(work: &Work, setup: &Arc<FileSetup>, name: &str, index: usize) -> Result<(), String> {
    let requests = work.temp.join(format!("requests-{index}.jsonl"));
    let _ = std::fs::remove_file(&requests);
    let mut opts = SimOptions::new(setup.spec.clone());
    opts.https_port = None;
    opts.http_port = Some(0);
    opts.request_log = Some(requests.clone());
    let sim = Simulator::start(opts)
        .await
        .map_err(|e| format!("{}: cannot start the simulated cluster: {e}", setup.origin))?;
    let outcome = run_on(work, setup, name, &sim, &requests).await;
    sim.shutdown();
    if let Some(log) = &work.request_log {
        append_log(work, &requests, log)?;
    }
    let _ = std::fs::remove_file(&requests);
    outcome
}

fn append_log(work: &Work, from: &Path, to: &Path) -> Result<(), String> {
    use std::io::Write;
    let text = std::fs::read(from).unwrap_or_default();
    let _one_at_a_time = work.log_lock.lock().unwrap_or_else(|p| p.into_inner());
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(to)
        .and_then(|mut f| f.write_all(&text))
        .map_err(|e| format!("cannot append to the request log {}: {e}", to.display()))
}

async fn run_on(
    work: &Work,
    setup: &Arc<FileSetup>,
    name: &str,
    sim: &Simulator,
    requests: &Path,
) -> Result<(), String> {
    let origin = &setup.origin;
    let (token_id, token_secret) = sim
        .token()
        .ok_or_else(|| format!("{origin}: the cluster description has no tokens; add one under \"tokens\""))?;
    let url = sim
        .http_url()
        .ok_or_else(|| format!("{origin}: the simulated cluster does not listen"))?;
    let connection = Connection {
        base_url: config::parse_host(&url).map_err(|e| e.to_string())?,
        token_id,
        token_secret,
        verify_tls: false,
        timeout: Duration::from_secs(30),
    };
    let client = PveClient::new(&connection).map_err(|e| e.to_string())?;
    let plan_key = PlanKey::generate().map_err(|e| e.to_string())?;
    let settings = setup.settings.clone();
    let services = Services {
        client,
        audit: Arc::new(Audit::open(&settings.audit_log)),
        settings,
        plan_key: Arc::new(plan_key),
        spent: Arc::default(),
        registry: crate::registry::slot::RegistrySlot::ready_with(work.registry.clone()),
    };
    let env = Arc::new(binding::TestEnv {
        services,
        registry: work.registry.clone(),
        tool: setup.tool.clone(),
        requests: requests.to_path_buf(),
        handle: tokio::runtime::Handle::current(),
    });
    let (setup, name) = (setup.clone(), name.to_string());
    thread::run(move || run_function(&env, &setup, &name))
        .await
        .map_err(|e| format!("{origin}: {e}"))?
}

/// Call `fn NAME()` of the test file on this (script) thread.
fn run_function(env: &Arc<binding::TestEnv>, setup: &FileSetup, name: &str) -> Result<(), String> {
    let settings = &env.services.settings;
    let _budget = budget::enter(settings.script_memory);
    let label = format!("{} {name}", setup.origin);
    let cx = Arc::new(CallContext::new(CallParts {
        tool: label.clone(),
        client: env.services.client.clone(),
        gate: Gate::new(settings.mode, Capabilities::READ, CallMode::run(false)),
        audit: CallAudit::off(&label),
        cancel: CancellationToken::new(),
        deadline: tokio::time::Instant::now() + settings.script_timeout,
        task_wait: settings.task_wait,
        progress: None,
        rt: env.handle.clone(),
        tools: Some(env.registry.snapshot()),
    }));
    // The engine a tool's call runs in, with the test:: module and the asserts beside pve::.
    let over_budget = Arc::new(AtomicBool::new(false));
    let mut engine = crate::script::binding::call_engine(&cx, over_budget.clone());
    engine.register_static_module("test", binding::module(env.clone()).into());
    binding::register_asserts(&mut engine);
    let result = engine.call_fn::<Dynamic>(&mut Scope::new(), &setup.ast, name, ());
    if over_budget.load(Ordering::Relaxed) {
        return Err(format!(
            "{}: the test held more than its memory budget (PVE_MCP_SCRIPT_MEMORY)",
            setup.origin
        ));
    }
    if let Some(v) = cx.violation() {
        return Err(format!(
            "{}: refused by the safety gate: {v}. A test reads with pve:: and changes things only through test::run",
            setup.origin
        ));
    }
    if cx.interrupt().is_some() {
        return Err(format!(
            "{}: the test did not finish within {:?} (PVE_MCP_SCRIPT_TIMEOUT)",
            setup.origin, settings.script_timeout
        ));
    }
    result.map(|_| ()).map_err(|e| {
        binding::place(&e, &setup.origin).unwrap_or_else(|| ScriptError::from_eval(&setup.origin, &e).to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_files_name_their_tool() {
        assert_eq!(
            tool_of(Path::new("t/pve_vm_power.rhai")).as_deref(),
            Some("pve_vm_power")
        );
        assert_eq!(
            tool_of(Path::new("t/pve_vm_power.plan.rhai")).as_deref(),
            Some("pve_vm_power")
        );
        assert_eq!(tool_of(Path::new("t/notes.txt")), None);
        let text = "// x\nfn helper() {}\n\nfn test_one() {\n}\nfn test_two ( ) {}\n";
        assert_eq!(definition_line(text, "test_one"), 4);
        assert_eq!(definition_line(text, "test_two"), 6);
        assert_eq!(definition_line(text, "missing"), 1);
    }

    #[test]
    fn discovery_finds_tests_beside_tools() {
        let dir = std::env::temp_dir().join(format!("pve-mcp-discover-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("tests")).unwrap();
        for f in ["a.rhai", "b.rhai", "tests/a.rhai", "tests/a.more.rhai", "tests/c.rhai"] {
            std::fs::write(dir.join(f), "").unwrap();
        }
        let all = discover(std::slice::from_ref(&dir)).unwrap();
        let tools: Vec<&str> = all[0].files.iter().map(|f| f.tool.as_str()).collect();
        assert_eq!(tools, ["a", "a", "c"]);
        let one = discover(&[dir.join("a.rhai")]).unwrap();
        assert_eq!(one[0].files.len(), 2);
        assert_eq!(one[0].dir, dir);
        let err = discover(&[dir.join("b.rhai")]).unwrap_err();
        assert!(err.contains("has no tests") && err.contains("tests/b.rhai"), "{err}");
        let file = discover(&[dir.join("tests/c.rhai")]).unwrap();
        assert_eq!((file[0].dir.clone(), file[0].files.len()), (dir.clone(), 1));
        let tests_dir = discover(&[dir.join("tests")]).unwrap();
        assert_eq!(tests_dir[0].files.len(), 3);
        assert!(discover(&[dir.join("nope")]).unwrap_err().contains("no such file"));

        // Libraries: DIR/lib/x.rhai is tested by DIR/tests/lib/x.rhai.
        std::fs::create_dir_all(dir.join("lib")).unwrap();
        std::fs::create_dir_all(dir.join("tests/lib")).unwrap();
        for f in ["lib/x.rhai", "lib/y.rhai", "tests/lib/x.rhai"] {
            std::fs::write(dir.join(f), "").unwrap();
        }
        let all = discover(std::slice::from_ref(&dir)).unwrap();
        let tools: Vec<&str> = all[0].files.iter().map(|f| f.tool.as_str()).collect();
        assert_eq!(tools, ["a", "a", "c", "lib/x"]);
        let lib = discover(&[dir.join("lib/x.rhai")]).unwrap();
        assert_eq!(
            (lib[0].dir.clone(), lib[0].files[0].tool.as_str()),
            (dir.clone(), "lib/x")
        );
        let file = discover(&[dir.join("tests/lib/x.rhai")]).unwrap();
        assert_eq!(
            (file[0].dir.clone(), file[0].files[0].tool.as_str()),
            (dir.clone(), "lib/x")
        );
        let libs = discover(&[dir.join("tests/lib")]).unwrap();
        assert_eq!((libs[0].dir.clone(), libs[0].files.len()), (dir.clone(), 1));
        let err = discover(&[dir.join("lib/y.rhai")]).unwrap_err();
        assert!(
            err.contains("has no tests") && err.contains("tests/lib/y.rhai"),
            "{err}"
        );
        // A script directory named lib, with tests of its own, holds tools.
        let own = dir.join("lib");
        std::fs::create_dir_all(own.join("tests")).unwrap();
        std::fs::write(own.join("tests/y.rhai"), "").unwrap();
        let tool = discover(&[own.join("y.rhai")]).unwrap();
        assert_eq!(
            (tool[0].dir.clone(), tool[0].files[0].tool.as_str()),
            (own.clone(), "y")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
