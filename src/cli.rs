//! The command line: serve over stdio (default), the script author's commands `tools`,
//! `check`, `describe`, `new`, `test` and `call`, and `audit verify|show` for the audit log.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use rmcp::ServiceExt;
use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

use crate::audit::Audit;
use crate::config::{self, AuditLog, Config, ConfigError, ProcessEnv, Settings};
use crate::confirm::PlanKey;
use crate::pve::PveClient;
use crate::registry::slot::RegistrySlot;
use crate::registry::{self, Registry, sources};
use crate::script::invoke::{Approving, CallRequest};
use crate::script::{CallOutcome, Services, invoke};
use crate::server::{PveMcpServer, result};

/// One line of a command's output, on stdout. Only the CLI's own commands print; `serve`
/// never does (its stdout is the MCP protocol).
macro_rules! out {
    ($($arg:tt)*) => {{
        #[allow(clippy::print_stdout, reason = "a CLI command's output, never printed by serve")]
        {
            println!($($arg)*); // stdout-ok: the CLI's out! macro
        }
    }};
}

/// One line of a command's diagnostics (a problem it found, a file it skipped), on stderr.
macro_rules! note {
    ($($arg:tt)*) => {{
        #[allow(clippy::print_stderr, reason = "a CLI command's diagnostics, beside its output")]
        {
            eprintln!($($arg)*);
        }
    }};
}

/// Exit code for a configuration error.
pub(crate) const EXIT_CONFIG: u8 = 2;

#[derive(Debug, Parser)]
#[command(name = "pve-mcp", version, about = "MCP server for Proxmox VE; every tool is a Rhai script.", long_about = None)]
pub struct Cli {
    /// Use a built-in simulated PVE cluster instead of PVE_HOST (no PVE host needed).
    #[cfg(feature = "simulator")]
    #[arg(long, global = true)]
    pub simulate: bool,
    /// The simulated cluster's description (JSON or TOML); the built-in home lab by default.
    #[cfg(feature = "simulator")]
    #[arg(long, global = true, value_name = "FILE")]
    pub cluster: Option<PathBuf>,
    #[command(subcommand)]
    pub(crate) command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Serve MCP over stdio (the default).
    Serve,
    /// List the tools: name, class, whether the current mode lists it, and its source file.
    Tools,
    /// Compile and check scripts (built-ins and the script directories, or the given
    /// directories); exit 1 if any is broken.
    Check {
        /// Directories to check instead of PVE_MCP_SCRIPTS.
        dirs: Vec<PathBuf>,
    },
    /// Show one tool as a host sees it: description, parameters (types, defaults), class,
    /// annotations, source file, and its state.
    Describe {
        /// Tool name, e.g. pve_list_vms.
        tool: String,
    },
    /// Write a commented, working skeleton of a new tool into the first script directory.
    New {
        /// Tool name (the file name): lowercase letters, digits and _.
        name: String,
        /// Its class: read, write, destructive, exec, admin, or several joined by commas.
        #[arg(long, default_value = "read")]
        class: String,
    },
    /// Run the tests scripts carry (DIR/tests/TOOL.rhai, fn test_…()) against the simulated
    /// cluster, through the same core as the server; exit 1 if any fails.
    #[cfg(feature = "simulator")]
    Test {
        /// Script directories, tests/ directories, test files or tool files (default: PVE_MCP_SCRIPTS).
        paths: Vec<PathBuf>,
        /// Append every request the tests sent to this file (JSON lines, the format of
        /// pve_schema.py check-log).
        #[arg(long, value_name = "FILE")]
        request_log: Option<PathBuf>,
    },
    /// Call one tool and print its JSON result, through the same gate and modes as the server.
    Call {
        /// Tool name, e.g. pve_list_vms.
        tool: String,
        /// Arguments as a JSON object, e.g. '{"vmid": 100}'.
        #[arg(default_value = "{}")]
        args: String,
    },
    /// Check or read the audit log (PVE_MCP_AUDIT_LOG, or the given file).
    Audit {
        #[command(subcommand)]
        action: AuditAction,
    },
    /// Print the JSON Schema of a file format, for editors that validate as you type.
    Schema {
        /// `manifest`: a tool script's `const TOOL` map; `cluster`: the `--cluster FILE`
        /// description of a simulated cluster.
        #[arg(value_enum)]
        format: SchemaFormat,
    },
    /// Run the simulated PVE API on its own, for other clients and scripts (PVE_HOST=…).
    #[cfg(feature = "simulator")]
    Simulate {
        /// HTTPS port (PVE's is 8006; 0 picks a free one).
        #[arg(long, default_value_t = 8006)]
        port: u16,
        /// Also serve plain HTTP on this port.
        #[arg(long)]
        http_port: Option<u16>,
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1")]
        bind: std::net::IpAddr,
        /// Append every request as a JSON line (the format of pve_schema.py check-log).
        #[arg(long, value_name = "FILE")]
        request_log: Option<PathBuf>,
    },
}

/// The file formats `pve-mcp schema` describes.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum SchemaFormat {
    /// The `const TOOL = #{ ... };` map of a tool script.
    Manifest,
    /// The cluster description read by `--cluster FILE`.
    #[cfg(feature = "simulator")]
    Cluster,
}

#[derive(Debug, Subcommand)]
pub(crate) enum AuditAction {
    /// Check the hash chain; exit 1 naming the first broken, edited, missing or truncated line.
    Verify {
        /// The log to check instead of PVE_MCP_AUDIT_LOG's.
        file: Option<PathBuf>,
    },
    /// Print the entries, one per line: time, tool, method and path, outcome, approval.
    Show {
        /// The log to read instead of PVE_MCP_AUDIT_LOG's.
        file: Option<PathBuf>,
    },
}

/// Where the server finds PVE: the real one from the environment, or a simulated cluster
/// running in this process (kept alive as long as the value is).
struct Target {
    config: Config,
    #[cfg(feature = "simulator")]
    _sim: Option<crate::sim::Simulator>,
}

impl Target {
    async fn from(cli: &Cli) -> Result<Target, Exit> {
        #[cfg(feature = "simulator")]
        if cli.simulate {
            return simulated(cli.cluster.as_deref()).await;
        }
        let _ = cli;
        Ok(Target {
            config: Config::from_env(&ProcessEnv)?,
            #[cfg(feature = "simulator")]
            _sim: None,
        })
    }
}

#[cfg(feature = "simulator")]
fn cluster_spec(path: Option<&std::path::Path>) -> Result<crate::sim::spec::ClusterSpec, Exit> {
    match path {
        Some(p) => crate::sim::spec::ClusterSpec::load(p).map_err(|e| fail(EXIT_CONFIG, e.to_string())),
        None => Ok(crate::sim::spec::ClusterSpec::default_cluster()),
    }
}

#[cfg(feature = "simulator")]
async fn simulated(cluster: Option<&std::path::Path>) -> Result<Target, Exit> {
    use crate::config::Connection;
    use crate::sim::{SimOptions, Simulator};
    let spec = cluster_spec(cluster)?;
    let mut opts = SimOptions::new(spec);
    opts.http_port = None;
    let sim = Simulator::start(opts)
        .await
        .map_err(|e| fail(1, format!("cannot start the simulated cluster: {e}")))?;
    let (token_id, token_secret) = sim.token().ok_or_else(|| {
        fail(
            EXIT_CONFIG,
            "the cluster description has no tokens; add one under \"tokens\"",
        )
    })?;
    let url = sim
        .https_url()
        .ok_or_else(|| fail(1, "the simulated cluster has no HTTPS listener"))?;
    let base_url = config::parse_host(&url).map_err(|e| fail(1, e.to_string()))?;
    tracing::info!("simulated cluster at {url}, token {token_id}");
    let connection = Connection {
        base_url,
        token_id,
        token_secret,
        verify_tls: false,
        timeout: std::time::Duration::from_secs(30),
    };
    Ok(Target {
        config: Config {
            connection,
            settings: Settings::from_env(&ProcessEnv)?,
        },
        _sim: Some(sim),
    })
}

#[cfg(feature = "simulator")]
async fn simulate_standalone(
    cluster: Option<&std::path::Path>,
    port: u16,
    http_port: Option<u16>,
    bind: std::net::IpAddr,
    request_log: Option<PathBuf>,
) -> Result<ExitCode, Exit> {
    use crate::sim::{SimOptions, Simulator};
    let spec = cluster_spec(cluster)?;
    let tokens: Vec<(String, String)> = spec.tokens.iter().map(|t| (t.id.clone(), t.secret.clone())).collect();
    let opts = SimOptions {
        spec,
        bind,
        http_port,
        https_port: Some(port),
        request_log,
    };
    let sim = Simulator::start(opts)
        .await
        .map_err(|e| fail(1, format!("cannot start the simulated cluster: {e}")))?;
    out!("simulated PVE API at {}/api2/json", sim.https_url().unwrap_or_default());
    if let Some(u) = sim.http_url() {
        out!("plain HTTP at        {u}/api2/json");
    }
    out!("self-signed certificate: use PVE_VERIFY_SSL=false");
    for (id, secret) in &tokens {
        out!("token  PVE_TOKEN_ID='{id}'  PVE_TOKEN_SECRET={secret}");
    }
    out!("Ctrl-C stops it.");
    tokio::signal::ctrl_c()
        .await
        .map_err(|e| fail(1, format!("cannot wait for Ctrl-C: {e}")))?;
    sim.shutdown();
    Ok(ExitCode::SUCCESS)
}

/// A failure that ends the process, with its exit code.
pub struct Exit {
    pub code: u8,
    pub message: String,
}

impl From<ConfigError> for Exit {
    fn from(e: ConfigError) -> Exit {
        Exit {
            code: EXIT_CONFIG,
            message: format!("configuration error: {e}"),
        }
    }
}

fn fail(code: u8, message: impl Into<String>) -> Exit {
    Exit {
        code,
        message: message.into(),
    }
}

pub async fn run(cli: Cli) -> Result<ExitCode, Exit> {
    config::load_dotenv();
    match cli.command.as_ref().unwrap_or(&Command::Serve) {
        Command::Serve => serve(Target::from(&cli).await?).await,
        Command::Tools => tools(),
        Command::Check { dirs } => check(dirs.clone()),
        Command::Describe { tool } => describe(tool),
        Command::New { name, class } => new_tool(name, class),
        Command::Audit { action } => audit(action),
        Command::Call { tool, args } => call(Target::from(&cli).await?, tool, args).await,
        Command::Schema { format } => {
            let schema = match format {
                SchemaFormat::Manifest => crate::script::Manifest::json_schema(),
                #[cfg(feature = "simulator")]
                SchemaFormat::Cluster => crate::sim::spec::ClusterSpec::json_schema(),
            };
            let text = serde_json::to_string_pretty(&schema).unwrap_or_default();
            // The command's output; a reader that stops early (`| head`) is not an error.
            let _ = writeln!(std::io::stdout().lock(), "{text}");
            Ok(ExitCode::SUCCESS)
        }
        #[cfg(feature = "simulator")]
        Command::Test { paths, request_log } => test(paths.clone(), cli.cluster.clone(), request_log.clone()).await,
        #[cfg(feature = "simulator")]
        Command::Simulate {
            port,
            http_port,
            bind,
            request_log,
        } => simulate_standalone(cli.cluster.as_deref(), *port, *http_port, *bind, request_log.clone()).await,
    }
}

fn services(config: &Config) -> Result<Services, Exit> {
    let client =
        PveClient::new(&config.connection).map_err(|e| fail(EXIT_CONFIG, format!("configuration error: {e}")))?;
    let plan_key = PlanKey::generate().map_err(|e| fail(1, format!("cannot start: {e}")))?;
    Ok(Services {
        client,
        settings: config.settings.clone(),
        plan_key: Arc::new(plan_key),
        spent: Arc::default(),
        audit: Arc::new(Audit::open(&config.settings.audit_log)),
        registry: RegistrySlot::empty(),
    })
}

fn load_registry(settings: &Settings) -> Arc<Registry> {
    let registry = Arc::new(Registry::with_builtins(settings.script_dirs.clone()));
    let snap = registry.snapshot();
    for p in &snap.problems {
        tracing::warn!("{}: {p}", p.origin);
    }
    for found in snap.findings.values().flatten() {
        tracing::warn!("{found} (pve-mcp check reports it)");
    }
    registry
}

/// The scripts' first read, started before anything else `serve` does.
struct RegistryStart {
    slot: RegistrySlot,
    /// The server, once it is built: the watch tells it when the listing changes.
    server: std::sync::mpsc::Sender<PveMcpServer>,
    /// The watch on the script directories, once it is up (dropping it stops watching).
    watch: tokio::sync::oneshot::Receiver<Result<Option<registry::watch::WatchGuard>, String>>,
}

/// Read the scripts on a thread of its own, while the client, the transport and the
/// handshake are set up; none of those needs them. Then the watch on the script directories
/// starts (its first pass reads them again, for a save that came before it), and another
/// thread builds the script engine's standard library and the schema checker so that the
/// first call does not wait for them (if that thread cannot start, the first call builds them).
fn start_registry(config: &Config) -> Result<RegistryStart, Exit> {
    let (fill, slot) = RegistrySlot::pending();
    let (server_tx, server_rx) = std::sync::mpsc::channel::<PveMcpServer>();
    let (watching, watch) = tokio::sync::oneshot::channel();
    let settings = config.settings.clone();
    let base_url = config.connection.base_url.clone();
    let rt = tokio::runtime::Handle::current();
    std::thread::Builder::new()
        .name("pve-mcp registry".into())
        .spawn(move || {
            // The watch delivers its reloads as tasks on the runtime.
            let _rt = rt.enter();
            let registry = load_registry(&settings);
            fill.fill(registry.clone());
            // At the lowest priority: a client waiting for tools/list or a first call is
            // never kept waiting behind it.
            let _ = std::thread::Builder::new().name("pve-mcp warm-up".into()).spawn(|| {
                crate::background::lower_this_thread();
                crate::script::compile::warm_up();
            });
            let mode = settings.mode;
            tracing::info!(
                "serving {} tools over stdio for {base_url} (read-only: {}, exec: {}, admin: {})",
                registry.snapshot().served(mode, &settings.tools).count(),
                mode.read_only,
                mode.exec_enabled,
                mode.admin_enabled
            );
            // No server: it could not be set up, and the process is ending.
            let Ok(server) = server_rx.recv() else { return };
            let reloaded = move |report: registry::ReloadReport| {
                if report.listing_changed {
                    tracing::info!("tool list changed; notifying the client");
                    server.tools_changed();
                }
            };
            // Its first pass reads the scripts again: a save before the watch began is seen.
            let started = registry::watch::spawn(registry, settings.script_dirs_explicit, reloaded);
            let _ = watching.send(started.map_err(|e| format!("cannot watch the script directories: {e}")));
        })
        .map_err(|e| fail(1, format!("cannot start a thread to read the scripts: {e}")))?;
    Ok(RegistryStart {
        slot,
        server: server_tx,
        watch,
    })
}

async fn serve(target: Target) -> Result<ExitCode, Exit> {
    let config = &target.config;
    let start = start_registry(config)?;
    let mut services = services(config)?;
    services.registry = start.slot.clone();
    let server = PveMcpServer::new(start.slot, services);
    // The registry thread is waiting for it; if that thread is gone, so is the watch.
    let _ = start.server.send(server.clone());
    let transport =
        crate::server::input::LineTransport::start(std::io::stdin(), std::io::stdout(), server.shutdown_token())
            .map_err(|e| fail(1, format!("cannot start the stdio threads: {e}")))?;
    let service = match server.clone().serve(transport).await {
        Ok(service) => service,
        Err(rmcp::service::ServerInitializeError::ConnectionClosed(_)) => {
            tracing::info!("the client closed stdin before initializing; exiting");
            return Ok(ExitCode::SUCCESS);
        }
        Err(e) => return Err(fail(1, format!("MCP handshake failed: {e}"))),
    };
    server.spawn_legacy_notifier(service.peer().clone());
    // Kept until the client goes away: dropping it stops watching.
    let _watch = match start.watch.await {
        Ok(Ok(guard)) => guard,
        Ok(Err(why)) => return Err(fail(1, why)),
        Err(_) => return Err(fail(1, "the scripts could not be read (the log above says why)")),
    };
    let reason = service.waiting().await;
    tracing::info!("client disconnected ({reason:?}); exiting");
    Ok(ExitCode::SUCCESS)
}

fn tools() -> Result<ExitCode, Exit> {
    let settings = Settings::from_env(&ProcessEnv)?;
    let registry = load_registry(&settings);
    let snap = registry.snapshot();
    let width = snap.tools.keys().map(String::len).max().unwrap_or(4).max(4);
    out!("{:width$}  {:11}  {:26}  SOURCE", "NAME", "CLASS", "LISTED");
    for t in snap.tools.values() {
        let m = &t.manifest;
        let listed = match unlisted_because(m.class, settings.mode) {
            "yes" if !settings.tools.allows(&m.name) => "no (PVE_MCP_TOOLS/DISABLE)",
            why => why,
        };
        let row = format!("{:width$}  {:11}  {:26}  {}", m.name, m.class.label(), listed, t.origin);
        out!("{row}");
    }
    for p in &snap.problems {
        note!("{}: {p}", p.origin);
    }
    Ok(ExitCode::SUCCESS)
}

fn describe(tool: &str) -> Result<ExitCode, Exit> {
    let settings = Settings::from_env(&ProcessEnv)?;
    let registry = load_registry(&settings);
    let text = crate::author::describe(&registry.snapshot(), settings.mode, tool).map_err(|e| fail(1, e))?;
    #[allow(clippy::print_stdout, reason = "the description is the command's output")]
    {
        print!("{text}"); // stdout-ok: pve-mcp describe's output
    }
    Ok(ExitCode::SUCCESS)
}

fn new_tool(name: &str, class: &str) -> Result<ExitCode, Exit> {
    let settings = Settings::from_env(&ProcessEnv)?;
    let dir = settings.script_dirs.first().cloned().ok_or_else(|| {
        fail(
            1,
            "no script directory is configured; set PVE_MCP_SCRIPTS (or HOME for ~/.config/pve-mcp/scripts)",
        )
    })?;
    let path = crate::author::new_tool(&dir, name, class).map_err(|e| fail(1, e))?;
    let wrote = format!(
        "wrote {}; edit its description and run, then: pve-mcp check",
        path.display()
    );
    out!("{wrote}");
    Ok(ExitCode::SUCCESS)
}

/// `yes`, or why a tool of this class is not listed in this mode.
fn unlisted_because(class: crate::gate::Capabilities, mode: crate::config::Mode) -> &'static str {
    use crate::gate::Capability;
    if registry::visible(class, mode) {
        "yes"
    } else if mode.read_only {
        "no (read-only mode)"
    } else if class.has(Capability::Exec) && !mode.exec_enabled {
        "no (PVE_MCP_ENABLE_EXEC off)"
    } else {
        "no (PVE_MCP_ENABLE_ADMIN off)"
    }
}

fn check(dirs: Vec<PathBuf>) -> Result<ExitCode, Exit> {
    let dirs = if dirs.is_empty() {
        Settings::from_env(&ProcessEnv)?.script_dirs
    } else {
        dirs
    };
    for d in &dirs {
        if !d.is_dir() {
            note!("{}: not a directory; skipped", d.display());
        }
    }
    // Compile with no "previous" version, so every broken script is reported as broken.
    let registry = Registry::new(sources::builtin(), dirs);
    let snap = registry.snapshot();
    for t in snap.tools.values() {
        let row = format!(
            "ok     {:32} {:11} {}",
            t.manifest.name,
            t.manifest.class.label(),
            t.origin
        );
        out!("{row}");
    }
    for (name, file) in &snap.shadowed {
        let row = format!(
            "note   {file} has the name of the built-in {name}: your tools import yours, the built-in tools keep the built-in one"
        );
        out!("{row}");
    }
    for p in &snap.problems {
        out!("error  {}", p.message);
    }
    for found in snap.findings.values().flatten() {
        out!("error  {found}");
    }
    let problems = snap.problems.len() + snap.findings.values().map(Vec::len).sum::<usize>();
    if problems == 0 {
        out!("{} tools, no problems", snap.tools.len());
        Ok(ExitCode::SUCCESS)
    } else {
        out!("{} tools, {problems} problems", snap.tools.len());
        Ok(ExitCode::from(1))
    }
}

/// The log `audit verify|show` reads: the given file, else PVE_MCP_AUDIT_LOG's.
fn audit_file(file: Option<&PathBuf>) -> Result<PathBuf, Exit> {
    if let Some(f) = file {
        return Ok(f.clone());
    }
    match Settings::from_env(&ProcessEnv)?.audit_log {
        AuditLog::File(p) => Ok(p),
        AuditLog::Off => Err(fail(
            1,
            "PVE_MCP_AUDIT_LOG=off, so there is no audit log to read; name the file: pve-mcp audit verify FILE",
        )),
        AuditLog::NoDefault => Err(fail(
            1,
            "PVE_MCP_AUDIT_LOG is not set and neither XDG_STATE_HOME nor HOME is, so the audit log has no default place; name the file: pve-mcp audit verify FILE",
        )),
    }
}

fn audit(action: &AuditAction) -> Result<ExitCode, Exit> {
    let (file, verify) = match action {
        AuditAction::Verify { file } => (audit_file(file.as_ref())?, true),
        AuditAction::Show { file } => (audit_file(file.as_ref())?, false),
    };
    let shown = file.display();
    let reader = std::fs::File::open(&file)
        .map(std::io::BufReader::new)
        .map_err(|e| fail(1, format!("cannot read the audit log {shown}: {e}")))?;
    let read_failed = |e: std::io::Error| fail(1, format!("cannot read the audit log {shown}: {e}"));
    if !verify {
        let mut out = std::io::stdout().lock();
        crate::audit::verify::show(reader, &mut out).map_err(read_failed)?;
        return Ok(ExitCode::SUCCESS);
    }
    let report = crate::audit::verify::verify(reader).map_err(read_failed)?;
    match &report.problem {
        Some(p) => {
            out!("{shown}: {}", p.what);
            let mut after = format!("{} intact entries", report.entries);
            if report.more_problems > 0 {
                after.push_str(&format!(", {} more problems after it", report.more_problems));
            }
            if report.segments > 1 {
                after.push_str(&format!(", {} chain segments", report.segments));
            }
            out!("{shown}: the chain is broken ({after})");
            Ok(ExitCode::from(1))
        }
        None => {
            out!("{shown}: {} entries verified; the chain is intact", report.entries);
            if let Some(head) = &report.head {
                let line = format!(
                    "last line's hash: {head} (keep it elsewhere: a change to the last line, or lines cut from the end, shows only against it)"
                );
                out!("{line}");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn call(target: Target, tool: &str, args: &str) -> Result<ExitCode, Exit> {
    let args: Map<String, Value> = match serde_json::from_str(args) {
        Ok(Value::Object(m)) => m,
        Ok(other) => {
            return Err(fail(
                1,
                format!("arguments must be a JSON object like '{{\"vmid\": 100}}', got {other}"),
            ));
        }
        Err(e) => {
            return Err(fail(
                1,
                format!("arguments are not valid JSON ({e}); pass an object like '{{\"vmid\": 100}}'"),
            ));
        }
    };
    let config = &target.config;
    let mut services = services(config)?;
    let registry = load_registry(&config.settings);
    services.registry = RegistrySlot::ready_with(registry.clone());
    let snap = registry.snapshot();
    let Some(compiled) = snap
        .get_served(tool, config.settings.mode, &config.settings.tools)
        .cloned()
    else {
        if let Some(message) = crate::server::scripts::not_in_service(&snap, tool) {
            return Err(fail(1, message));
        }
        let why = if snap.get_visible(tool, config.settings.mode).is_some() {
            "is disabled by PVE_MCP_TOOLS / PVE_MCP_DISABLE_TOOLS".to_string()
        } else if snap.tools.contains_key(tool) {
            "is not available in the current mode (read-only, or PVE_MCP_ENABLE_EXEC off)".to_string()
        } else {
            format!("does not exist; `pve-mcp tools` lists the {} tools", snap.tools.len())
        };
        return Err(fail(1, format!("tool '{tool}' {why}")));
    };
    let cancel = CancellationToken::new();
    let on_ctrl_c = cancel.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            on_ctrl_c.cancel();
        }
    });
    let progress: crate::script::context::ProgressFn = Arc::new(|_, _, msg| tracing::info!("{msg}"));
    // A terminal is not an MCP client: nobody can be asked through elicitation.
    let call = CallRequest {
        tool: compiled,
        args,
        client: config.settings.confirm.for_client(false),
        approving: Approving::Arguments,
        cancel,
        progress: Some(progress),
    };
    let outcome = invoke(&services, call).await;
    let (json, code) = match outcome {
        CallOutcome::Done(v) => {
            if let Some(note) = crate::server::scripts::stale_note(&snap, tool) {
                note!("{note}");
            }
            (result::as_object(v), ExitCode::SUCCESS)
        }
        CallOutcome::Plan {
            explanation,
            requests,
            confirm_token,
            ttl,
        } => (
            result::plan_json(tool, explanation, &requests, &confirm_token, ttl),
            ExitCode::SUCCESS,
        ),
        CallOutcome::Failed(e) => {
            note!("{tool}: {e}");
            (result::error_json(tool, &e), ExitCode::from(1))
        }
    };
    let text = serde_json::to_string_pretty(&json).map_err(|e| fail(1, e.to_string()))?;
    out!("{text}");
    Ok(code)
}

#[cfg(feature = "simulator")]
async fn test(paths: Vec<PathBuf>, cluster: Option<PathBuf>, request_log: Option<PathBuf>) -> Result<ExitCode, Exit> {
    use crate::testing::{self, FileReport};
    let paths = if paths.is_empty() {
        Settings::from_env(&ProcessEnv)?.script_dirs
    } else {
        paths
    };
    let suites = testing::discover(&paths).map_err(|e| fail(1, e))?;
    let started = std::time::Instant::now();
    let print = |r: &FileReport| {
        out!("{}  ({})", r.origin, r.tool);
        match &r.outcome {
            Err(message) => {
                out!("  FAIL  the file could not run");
                out!("        {message}");
            }
            Ok(tests) => {
                for t in tests {
                    let secs = t.duration.as_secs_f64();
                    match &t.failure {
                        None => out!("  ok    {} ({secs:.1}s)", t.name),
                        Some(f) => {
                            out!("  FAIL  {} ({secs:.1}s)", t.name);
                            out!("        {f}");
                        }
                    }
                }
            }
        }
    };
    let opts = testing::Options { cluster, request_log };
    let reports = testing::run(suites.clone(), opts, print)
        .await
        .map_err(|e| fail(1, e))?;
    let tests: usize = reports
        .iter()
        .map(|r| r.outcome.as_ref().map(Vec::len).unwrap_or(1))
        .sum();
    let failed: usize = reports.iter().map(FileReport::failed).sum();
    // Tools of the tested directories that no test file names.
    for suite in suites.iter().filter(|s| !s.files.is_empty()) {
        let tested: std::collections::BTreeSet<&str> = suite.files.iter().map(|f| f.tool.as_str()).collect();
        if let Ok((files, _)) = sources::read_dir(&suite.dir) {
            let untested: Vec<&str> = files
                .iter()
                .filter_map(|f| f.tool_name())
                .filter(|t| !tested.contains(t))
                .collect();
            if suite.whole && !untested.is_empty() {
                out!("no tests in {}/tests for: {}", suite.dir.display(), untested.join(", "));
            }
        }
    }
    let secs = started.elapsed().as_secs_f64();
    if tests == 0 {
        let shown: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        let line = format!(
            "no tests found in {}: a tool DIR/NAME.rhai is tested by fn test_…() in DIR/tests/NAME.rhai",
            shown.join(", ")
        );
        out!("{line}");
        return Ok(ExitCode::from(1));
    }
    let files = reports.len();
    let line = format!(
        "{files} files, {tests} tests: {} passed, {failed} failed ({secs:.1}s)",
        tests - failed
    );
    out!("{line}");
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
