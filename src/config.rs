//! Configuration from the environment (and a `.env` file in the working directory).
//!
//! Every variable is validated at start-up; a bad one becomes a [`ConfigError`] whose
//! message names the variable and the expected form. The token secret is never part of
//! any message.

use std::path::PathBuf;
use std::time::Duration;

use thiserror::Error;
use url::Url;

use crate::confirm::{ConfirmMode, Confirmations};
use crate::gate::{Capabilities, Capability};
use crate::registry::ToolFilter;

/// Default PVE API port, implied when `PVE_HOST` is a bare host.
pub(crate) const DEFAULT_PORT: u16 = 8006;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("{var} is not set; expected {expected}")]
    Missing { var: &'static str, expected: &'static str },
    #[error("{var} is malformed ({why}); expected {expected}")]
    Malformed {
        var: &'static str,
        why: String,
        expected: &'static str,
    },
}

/// The server's switches that the core enforces on every request (see `gate`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Mode {
    pub read_only: bool,
    pub exec_enabled: bool,
    pub admin_enabled: bool,
}

impl Mode {
    /// Exec and admin are never available in read-only mode, whatever `PVE_MCP_ENABLE_EXEC`
    /// and `PVE_MCP_ENABLE_ADMIN` say.
    pub fn new(read_only: bool, exec_enabled: bool, admin_enabled: bool) -> Self {
        Mode {
            read_only,
            exec_enabled: exec_enabled && !read_only,
            admin_enabled: admin_enabled && !read_only,
        }
    }

    /// Is this capability available at all in this mode?
    pub(crate) fn enables(self, c: Capability) -> bool {
        match c {
            Capability::Read => true,
            Capability::Write | Capability::Destructive => !self.read_only,
            Capability::Exec => self.exec_enabled && !self.read_only,
            Capability::Admin => self.admin_enabled && !self.read_only,
        }
    }

    /// Is every capability of the set available? (A tool is listed only then.)
    pub(crate) fn enables_all(self, caps: Capabilities) -> bool {
        caps.iter().all(|c| self.enables(c))
    }
}

/// How to reach PVE.
#[derive(Clone)]
pub struct Connection {
    /// Base URL ending in `/api2/json` (no trailing slash).
    pub base_url: Url,
    pub token_id: String,
    pub token_secret: String,
    pub verify_tls: bool,
    pub timeout: Duration,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("base_url", &self.base_url.as_str())
            .field("token_id", &self.token_id)
            .field("token_secret", &"<redacted>")
            .field("verify_tls", &self.verify_tls)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Settings that do not need PVE: modes, waits and script directories.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub mode: Mode,
    pub task_wait: Duration,
    pub script_timeout: Duration,
    /// User script directories, in priority order (the first one wins a name clash).
    pub script_dirs: Vec<PathBuf>,
    /// True when the directories came from `PVE_MCP_SCRIPTS` (a missing one is then worth a warning).
    pub script_dirs_explicit: bool,
    /// Tool calls that may run at once (`PVE_MCP_MAX_CALLS`); more wait briefly, then are answered "busy".
    pub max_calls: usize,
    /// Largest result a call may return, in bytes of JSON (`PVE_MCP_MAX_RESULT_BYTES`).
    pub max_result_bytes: usize,
    /// Memory one call's script may hold, in bytes (`PVE_MCP_SCRIPT_MEMORY`, given in MiB).
    pub script_memory: usize,
    /// How calls that need approval get it (`PVE_MCP_CONFIRM`, `PVE_MCP_CONFIRM_EXEC`,
    /// `PVE_MCP_CONFIRM_ADMIN`).
    pub confirm: Confirmations,
    /// How long a plan's `confirm_token` stays valid (`PVE_MCP_PLAN_TTL`).
    pub plan_ttl: Duration,
    /// Where the audit log goes (`PVE_MCP_AUDIT_LOG`).
    pub audit_log: AuditLog,
    /// Which of the tools the mode lists are served (`PVE_MCP_TOOLS`, `PVE_MCP_DISABLE_TOOLS`).
    pub tools: ToolFilter,
}

/// `PVE_MCP_AUDIT_LOG`: a file (by default under the user's state directory) or off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AuditLog {
    Off,
    File(PathBuf),
    /// Unset, and neither `XDG_STATE_HOME` nor `HOME` is: there is no default place, so
    /// every audited request is refused until `PVE_MCP_AUDIT_LOG` names one (or `off`).
    NoDefault,
}

/// Default of `PVE_MCP_MAX_CALLS`.
pub(crate) const DEFAULT_MAX_CALLS: usize = 64;
/// Default of `PVE_MCP_MAX_RESULT_BYTES`: 16 MiB (10,000 guests list in about 5 MiB).
pub(crate) const DEFAULT_MAX_RESULT_BYTES: usize = 16 * 1024 * 1024;
/// Default of `PVE_MCP_SCRIPT_MEMORY`, in MiB.
pub(crate) const DEFAULT_SCRIPT_MEMORY_MIB: usize = 256;

#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub connection: Connection,
    pub settings: Settings,
}

/// Read-only view of the environment, so parsing is testable without touching the process env.
pub(crate) trait Env {
    fn get(&self, key: &str) -> Option<String>;
}

/// The process environment.
pub(crate) struct ProcessEnv;

impl Env for ProcessEnv {
    fn get(&self, key: &str) -> Option<String> {
        std::env::var(key).ok()
    }
}

impl<F: Fn(&str) -> Option<String>> Env for F {
    fn get(&self, key: &str) -> Option<String> {
        self(key)
    }
}

/// Load `.env` from the working directory or the nearest parent that has one (variables
/// already set win), if there is one. It holds the token secret, so no message ever shows
/// its content: a malformed line is named by its number only.
pub(crate) fn load_dotenv() {
    let Some(path) = find_dotenv() else { return };
    match dotenvy::from_path(&path) {
        Ok(()) => tracing::debug!("loaded {}", path.display()),
        Err(dotenvy::Error::LineParse(text, _)) => {
            let at = std::fs::read_to_string(&path)
                .ok()
                .and_then(|all| all.find(&text).map(|i| all[..i].matches('\n').count() + 1))
                .map_or_else(|| "a line".to_string(), |n| format!("line {n}"));
            tracing::warn!(
                "{}: {at} is malformed (an unclosed quote?); it and the lines after it were not loaded. Fix that line; its content is not shown because it may hold the token secret",
                path.display()
            );
        }
        Err(dotenvy::Error::Io(e)) => tracing::warn!("ignoring {}: {e}", path.display()),
        Err(_) => tracing::warn!("ignoring {}: it could not be loaded", path.display()),
    }
}

fn find_dotenv() -> Option<PathBuf> {
    let cwd = std::env::current_dir().ok()?;
    cwd.ancestors().map(|d| d.join(".env")).find(|p| p.is_file())
}

impl Config {
    pub(crate) fn from_env(env: &dyn Env) -> Result<Config, ConfigError> {
        Ok(Config {
            connection: Connection::from_env(env)?,
            settings: Settings::from_env(env)?,
        })
    }
}

impl Connection {
    pub(crate) fn from_env(env: &dyn Env) -> Result<Connection, ConfigError> {
        let host = required(env, "PVE_HOST", HOST_EXPECTED)?;
        let base_url = parse_host(&host)?;
        let token_id = required(env, "PVE_TOKEN_ID", TOKEN_ID_EXPECTED)?;
        validate_token_id(&token_id)?;
        let token_secret = required(env, "PVE_TOKEN_SECRET", SECRET_EXPECTED)?;
        validate_secret(&token_secret)?;
        let verify_tls = boolean(env, "PVE_VERIFY_SSL", true)?;
        let timeout = seconds(env, "PVE_TIMEOUT", 30.0, false)?;
        Ok(Connection {
            base_url,
            token_id,
            token_secret,
            verify_tls,
            timeout,
        })
    }
}

impl Settings {
    pub(crate) fn from_env(env: &dyn Env) -> Result<Settings, ConfigError> {
        let read_only = boolean(env, "PVE_MCP_READ_ONLY", false)?;
        let exec = boolean(env, "PVE_MCP_ENABLE_EXEC", false)?;
        let admin = boolean(env, "PVE_MCP_ENABLE_ADMIN", false)?;
        let task_wait = seconds(env, "PVE_MCP_TASK_WAIT", 30.0, true)?;
        // By default a call may wait for two tasks and still have time to spare.
        let default_timeout = (2.0 * task_wait.as_secs_f64() + 60.0).max(300.0);
        let script_timeout = seconds(env, "PVE_MCP_SCRIPT_TIMEOUT", default_timeout, false)?;
        let (script_dirs, script_dirs_explicit) = match env.get("PVE_MCP_SCRIPTS") {
            Some(list) => (
                std::env::split_paths(&list)
                    .filter(|p| !p.as_os_str().is_empty())
                    .collect(),
                true,
            ),
            None => (default_script_dir(env).into_iter().collect(), false),
        };
        let max_calls = count(env, "PVE_MCP_MAX_CALLS", DEFAULT_MAX_CALLS, 1, 4_096)?;
        let max_result_bytes = count(
            env,
            "PVE_MCP_MAX_RESULT_BYTES",
            DEFAULT_MAX_RESULT_BYTES,
            1_024,
            1 << 30,
        )?;
        let script_memory = count(env, "PVE_MCP_SCRIPT_MEMORY", DEFAULT_SCRIPT_MEMORY_MIB, 8, 65_536)? * 1024 * 1024;
        let confirm = Confirmations {
            destructive: confirm_mode(env, "PVE_MCP_CONFIRM", false)?,
            exec: confirm_mode(env, "PVE_MCP_CONFIRM_EXEC", true)?,
            admin: confirm_mode(env, "PVE_MCP_CONFIRM_ADMIN", true)?,
        };
        let plan_ttl = seconds(env, "PVE_MCP_PLAN_TTL", 600.0, false)?;
        let audit_log = audit_log(env);
        let (allow, deny) = (env.get("PVE_MCP_TOOLS"), env.get("PVE_MCP_DISABLE_TOOLS"));
        ToolFilter::parse(allow.as_deref(), None).map_err(|e| tools_error("PVE_MCP_TOOLS", e))?;
        let tools = ToolFilter::parse(allow.as_deref(), deny.as_deref())
            .map_err(|e| tools_error("PVE_MCP_DISABLE_TOOLS", e))?;
        Ok(Settings {
            mode: Mode::new(read_only, exec, admin),
            task_wait,
            script_timeout,
            script_dirs,
            script_dirs_explicit,
            max_calls,
            max_result_bytes,
            script_memory,
            confirm,
            plan_ttl,
            audit_log,
            tools,
        })
    }
}

fn tools_error(var: &'static str, e: crate::registry::filter::PatternError) -> ConfigError {
    ConfigError::Malformed {
        var,
        why: e.to_string(),
        expected: "comma-separated tool names or globs, e.g. pve_list_*,pve_vm_status",
    }
}

/// A confirmation mode; `auto` when unset. Destructive requests cannot be `off`.
fn confirm_mode(env: &dyn Env, var: &'static str, may_be_off: bool) -> Result<ConfirmMode, ConfigError> {
    let expected = if may_be_off {
        "off, flag, plan, human or auto"
    } else {
        "flag, plan, human or auto (destructive requests always need a confirmation)"
    };
    let Some(v) = env.get(var).filter(|v| !v.trim().is_empty()) else {
        return Ok(ConfirmMode::Auto);
    };
    match ConfirmMode::parse(&v) {
        Some(ConfirmMode::Off) if !may_be_off => Err(ConfigError::Malformed {
            var,
            why: "destructive requests cannot go unconfirmed".into(),
            expected,
        }),
        Some(m) => Ok(m),
        None => Err(ConfigError::Malformed {
            var,
            why: format!(
                "'{}' is not a confirmation mode",
                v.chars().take(40).collect::<String>()
            ),
            expected,
        }),
    }
}

/// `PVE_MCP_AUDIT_LOG`: `off`, a path, or (unset or empty) the default file.
fn audit_log(env: &dyn Env) -> AuditLog {
    match env.get("PVE_MCP_AUDIT_LOG").map(|v| v.trim().to_string()) {
        Some(v) if v.eq_ignore_ascii_case("off") => AuditLog::Off,
        Some(v) if !v.is_empty() => AuditLog::File(PathBuf::from(v)),
        _ => default_audit_log(env).map_or(AuditLog::NoDefault, AuditLog::File),
    }
}

/// `$XDG_STATE_HOME/pve-mcp/audit.jsonl`, else `~/.local/state/pve-mcp/audit.jsonl`.
fn default_audit_log(env: &dyn Env) -> Option<PathBuf> {
    let base = env
        .get("XDG_STATE_HOME")
        .filter(|s| !s.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            env.get("HOME")
                .filter(|s| !s.is_empty())
                .map(|h| PathBuf::from(h).join(".local").join("state"))
        })?;
    Some(base.join("pve-mcp").join("audit.jsonl"))
}

/// `$XDG_CONFIG_HOME/pve-mcp/scripts`, else `~/.config/pve-mcp/scripts`.
fn default_script_dir(env: &dyn Env) -> Option<PathBuf> {
    let base = env
        .get("XDG_CONFIG_HOME")
        .filter(|s| !s.is_empty())
        .map(PathBuf::from)
        .or_else(|| env.get("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("pve-mcp").join("scripts"))
}

const HOST_EXPECTED: &str = "a PVE API URL such as https://192.168.1.10:8006, or a bare host such as 192.168.1.10";
const TOKEN_ID_EXPECTED: &str = "USER@REALM!TOKENNAME, e.g. mcp@pve!mcp";
const SECRET_EXPECTED: &str =
    "the API token secret PVE showed when the token was created (a UUID such as 0b8f1c2e-....)";
const BOOL_EXPECTED: &str = "true/false, 1/0 or yes/no";
const SECONDS_EXPECTED: &str = "a number of seconds, e.g. 30";
const COUNT_EXPECTED: &str = "a whole number, e.g. 64";

fn required(env: &dyn Env, var: &'static str, expected: &'static str) -> Result<String, ConfigError> {
    match env.get(var).map(|v| v.trim().to_string()) {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(ConfigError::Missing { var, expected }),
    }
}

/// Turns `PVE_HOST` into the API base URL (`…/api2/json`).
pub fn parse_host(raw: &str) -> Result<Url, ConfigError> {
    let malformed = |why: String| ConfigError::Malformed {
        var: "PVE_HOST",
        why,
        expected: HOST_EXPECTED,
    };
    let has_scheme = raw.contains("://");
    let trimmed = raw.trim().trim_end_matches('/');
    let with_scheme = if has_scheme {
        trimmed.to_string()
    } else {
        // A bare host (optionally with a port): https and port 8006 are implied.
        let has_port = match trimmed.rfind(']') {
            Some(close) => trimmed[close..].contains(':'),
            None => trimmed.contains(':'),
        };
        if has_port {
            format!("https://{trimmed}")
        } else {
            format!("https://{trimmed}:{DEFAULT_PORT}")
        }
    };
    let mut url = Url::parse(&with_scheme).map_err(|e| malformed(e.to_string()))?;
    if url.scheme() != "https" && url.scheme() != "http" {
        return Err(malformed(format!("scheme '{}' is not http or https", url.scheme())));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(malformed("no host name".into()));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(malformed("it carries a query or fragment".into()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(malformed(
            "credentials belong in PVE_TOKEN_ID/PVE_TOKEN_SECRET, not in the URL".into(),
        ));
    }
    let path = url.path().trim_end_matches('/').to_string();
    let base_path = if path.ends_with("/api2/json") {
        path
    } else {
        format!("{path}/api2/json")
    };
    url.set_path(&base_path);
    Ok(url)
}

fn validate_token_id(id: &str) -> Result<(), ConfigError> {
    let malformed = |why: &str| ConfigError::Malformed {
        var: "PVE_TOKEN_ID",
        why: why.to_string(),
        expected: TOKEN_ID_EXPECTED,
    };
    let (user, token) = id
        .split_once('!')
        .ok_or_else(|| malformed("no '!' between the user and the token name"))?;
    let (name, realm) = user
        .split_once('@')
        .ok_or_else(|| malformed("no '@' between the user name and the realm"))?;
    if name.is_empty() || realm.is_empty() {
        return Err(malformed("empty user name or realm"));
    }
    if id.chars().any(|c| c.is_whitespace() || c == '=') {
        return Err(malformed("it contains whitespace or '='"));
    }
    let mut chars = token.chars();
    let starts_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    if !starts_ok || !chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')) {
        return Err(malformed(
            "the token name must start with a letter and hold only letters, digits, '.', '-' and '_'",
        ));
    }
    Ok(())
}

/// Any non-empty secret of visible ASCII characters is taken (emulators and test rigs use
/// others); one that is not a UUID, as every real PVE secret is, is warned about.
fn validate_secret(secret: &str) -> Result<(), ConfigError> {
    if !secret.chars().all(|c| c.is_ascii_graphic()) {
        return Err(ConfigError::Malformed {
            var: "PVE_TOKEN_SECRET",
            why: "it holds whitespace, control or non-ASCII characters (value not shown)".into(),
            expected: SECRET_EXPECTED,
        });
    }
    let groups: Vec<&str> = secret.split('-').collect();
    let lens = [8, 4, 4, 4, 12];
    let is_uuid = groups.len() == 5
        && groups
            .iter()
            .zip(lens)
            .all(|(g, n)| g.len() == n && g.chars().all(|c| c.is_ascii_hexdigit()));
    if !is_uuid {
        tracing::warn!(
            "PVE_TOKEN_SECRET is not a UUID (value not shown); PVE's own secrets are. If PVE answers 401, check it."
        );
    }
    Ok(())
}

/// `true/false/1/0/yes/no`, any case.
pub(crate) fn parse_bool(raw: &str) -> Option<bool> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Some(true),
        "false" | "0" | "no" => Some(false),
        _ => None,
    }
}

fn boolean(env: &dyn Env, var: &'static str, default: bool) -> Result<bool, ConfigError> {
    match env.get(var) {
        None => Ok(default),
        Some(v) if v.trim().is_empty() => Ok(default),
        Some(v) => parse_bool(&v).ok_or_else(|| ConfigError::Malformed {
            var,
            why: format!("got '{}'", v.trim()),
            expected: BOOL_EXPECTED,
        }),
    }
}

/// A whole number within `min..=max`.
fn count(env: &dyn Env, var: &'static str, default: usize, min: usize, max: usize) -> Result<usize, ConfigError> {
    let raw = match env.get(var) {
        None => return Ok(default),
        Some(v) if v.trim().is_empty() => return Ok(default),
        Some(v) => v,
    };
    let malformed = |why: String| ConfigError::Malformed {
        var,
        why,
        expected: COUNT_EXPECTED,
    };
    let value: usize = raw
        .trim()
        .parse()
        .map_err(|_| malformed(format!("got '{}'", raw.trim())))?;
    if !(min..=max).contains(&value) {
        return Err(malformed(format!("{value} is outside {min} to {max}")));
    }
    Ok(value)
}

fn seconds(env: &dyn Env, var: &'static str, default: f64, zero_ok: bool) -> Result<Duration, ConfigError> {
    let raw = match env.get(var) {
        None => return Ok(Duration::from_secs_f64(default)),
        Some(v) if v.trim().is_empty() => return Ok(Duration::from_secs_f64(default)),
        Some(v) => v,
    };
    let malformed = |why: String| ConfigError::Malformed {
        var,
        why,
        expected: SECONDS_EXPECTED,
    };
    let value: f64 = raw
        .trim()
        .parse()
        .map_err(|_| malformed(format!("got '{}'", raw.trim())))?;
    if !value.is_finite() || value < 0.0 || (value == 0.0 && !zero_ok) || value > 86_400.0 {
        let range = if zero_ok {
            "0 to 86400"
        } else {
            "above 0, at most 86400"
        };
        return Err(malformed(format!("{value} is outside {range}")));
    }
    Ok(Duration::from_secs_f64(value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k: &str| map.get(k).cloned()
    }

    const SECRET: &str = "0b8f1c2e-1234-4abc-9def-0123456789ab";

    fn base() -> Vec<(&'static str, &'static str)> {
        vec![
            ("PVE_HOST", "https://10.0.0.5:8006"),
            ("PVE_TOKEN_ID", "mcp@pve!mcp"),
            ("PVE_TOKEN_SECRET", SECRET),
        ]
    }

    #[test]
    fn defaults() {
        let c = Config::from_env(&env(&base())).unwrap();
        assert_eq!(c.connection.base_url.as_str(), "https://10.0.0.5:8006/api2/json");
        assert!(c.connection.verify_tls);
        assert_eq!(c.connection.timeout, Duration::from_secs(30));
        assert_eq!(c.settings.task_wait, Duration::from_secs(30));
        assert_eq!(c.settings.mode, Mode::default());
    }

    #[test]
    fn host_forms() {
        let url = |h: &str| parse_host(h).unwrap().to_string();
        assert_eq!(url("192.168.1.10"), "https://192.168.1.10:8006/api2/json");
        assert_eq!(url("pve.lan:9000"), "https://pve.lan:9000/api2/json");
        assert_eq!(url("https://pve.lan:8006/api2/json/"), "https://pve.lan:8006/api2/json");
        assert_eq!(url("http://127.0.0.1:1234"), "http://127.0.0.1:1234/api2/json");
        assert_eq!(url("[::1]"), "https://[::1]:8006/api2/json");
        assert_eq!(url("[::1]:8007"), "https://[::1]:8007/api2/json");
        assert_eq!(url("https://proxy.lan/pve"), "https://proxy.lan/pve/api2/json");
        for bad in [
            "ftp://x",
            "https://",
            "https://u:p@h:8006",
            "https://h:8006/?x=1",
            "h:99999",
        ] {
            let err = parse_host(bad).unwrap_err();
            assert!(err.to_string().starts_with("PVE_HOST is malformed"), "{bad}: {err}");
        }
    }

    #[test]
    fn missing_and_malformed_name_the_variable() {
        let err = Config::from_env(&env(&[])).unwrap_err();
        assert!(err.to_string().starts_with("PVE_HOST is not set"));
        for (id, why) in [
            ("mcp@pve", "'!'"),
            ("mcp!tok", "'@'"),
            ("mcp@pve!9x", "letter"),
            ("@pve!t", "empty"),
        ] {
            let mut e = base();
            e[1] = ("PVE_TOKEN_ID", id);
            let err = Config::from_env(&env(&e)).unwrap_err().to_string();
            assert!(
                err.starts_with("PVE_TOKEN_ID is malformed") && err.contains(why),
                "{id}: {err}"
            );
            assert!(err.contains("USER@REALM!TOKENNAME"));
        }
    }

    #[test]
    fn secret_is_never_echoed() {
        let mut e = base();
        e[2] = ("PVE_TOKEN_SECRET", "hunter2 not-a-uuid");
        let err = Config::from_env(&env(&e)).unwrap_err().to_string();
        assert!(err.starts_with("PVE_TOKEN_SECRET is malformed"));
        assert!(!err.contains("hunter2"));
        let c = Config::from_env(&env(&base())).unwrap();
        assert!(!format!("{c:?}").contains(SECRET));
    }

    #[test]
    fn booleans_and_seconds() {
        for (v, want) in [
            ("TRUE", true),
            ("yes", true),
            ("1", true),
            ("No", false),
            ("0", false),
            ("false", false),
        ] {
            assert_eq!(parse_bool(v), Some(want), "{v}");
        }
        let mut e = base();
        e.push(("PVE_VERIFY_SSL", "maybe"));
        let err = Config::from_env(&env(&e)).unwrap_err().to_string();
        assert_eq!(
            err,
            "PVE_VERIFY_SSL is malformed (got 'maybe'); expected true/false, 1/0 or yes/no"
        );
        let mut e = base();
        e.push(("PVE_TIMEOUT", "0"));
        assert!(
            Config::from_env(&env(&e))
                .unwrap_err()
                .to_string()
                .starts_with("PVE_TIMEOUT")
        );
        let mut e = base();
        e.push(("PVE_MCP_TASK_WAIT", "0"));
        e.push(("PVE_TIMEOUT", "2.5"));
        let c = Config::from_env(&env(&e)).unwrap();
        assert_eq!(c.settings.task_wait, Duration::ZERO);
        assert_eq!(c.settings.script_timeout, Duration::from_secs(300));
        assert_eq!(c.connection.timeout, Duration::from_millis(2500));
        let c = Config::from_env(&env(&[base(), vec![("PVE_MCP_TASK_WAIT", "600")]].concat())).unwrap();
        assert_eq!(c.settings.script_timeout, Duration::from_secs(1260));
    }

    #[test]
    fn limits() {
        let s = Settings::from_env(&env(&base())).unwrap();
        assert_eq!(s.max_calls, DEFAULT_MAX_CALLS);
        assert_eq!(s.max_result_bytes, DEFAULT_MAX_RESULT_BYTES);
        assert_eq!(s.script_memory, DEFAULT_SCRIPT_MEMORY_MIB << 20);
        let e = [
            base(),
            vec![
                ("PVE_MCP_MAX_CALLS", "8"),
                ("PVE_MCP_MAX_RESULT_BYTES", "65536"),
                ("PVE_MCP_SCRIPT_MEMORY", "32"),
            ],
        ]
        .concat();
        let s = Settings::from_env(&env(&e)).unwrap();
        assert_eq!(
            (s.max_calls, s.max_result_bytes, s.script_memory),
            (8, 65_536, 32 << 20)
        );
        for (var, bad) in [
            ("PVE_MCP_MAX_CALLS", "0"),
            ("PVE_MCP_MAX_CALLS", "many"),
            ("PVE_MCP_MAX_RESULT_BYTES", "10"),
            ("PVE_MCP_SCRIPT_MEMORY", "-1"),
        ] {
            let err = Settings::from_env(&env(&[base(), vec![(var, bad)]].concat()))
                .unwrap_err()
                .to_string();
            assert!(err.starts_with(&format!("{var} is malformed")), "{err}");
        }
    }

    #[test]
    fn exec_is_off_in_read_only_mode() {
        let mut e = base();
        e.push(("PVE_MCP_READ_ONLY", "true"));
        e.push(("PVE_MCP_ENABLE_EXEC", "true"));
        e.push(("PVE_MCP_ENABLE_ADMIN", "true"));
        let c = Config::from_env(&env(&e)).unwrap();
        assert_eq!(
            c.settings.mode,
            Mode {
                read_only: true,
                exec_enabled: false,
                admin_enabled: false,
            }
        );
        assert!(!c.settings.mode.enables(Capability::Admin));
        let mut e = base();
        e.push(("PVE_MCP_ENABLE_ADMIN", "yes"));
        let c = Config::from_env(&env(&e)).unwrap();
        assert!(c.settings.mode.admin_enabled && !c.settings.mode.exec_enabled);
    }

    #[test]
    fn script_dirs() {
        let mut e = base();
        e.push(("PVE_MCP_SCRIPTS", "/a:/b::/c"));
        let s = Settings::from_env(&env(&e)).unwrap();
        assert_eq!(
            s.script_dirs,
            vec![PathBuf::from("/a"), PathBuf::from("/b"), PathBuf::from("/c")]
        );
        assert!(s.script_dirs_explicit);
        let s = Settings::from_env(&env(&[("HOME", "/home/u")])).unwrap();
        assert_eq!(s.script_dirs, vec![PathBuf::from("/home/u/.config/pve-mcp/scripts")]);
        assert!(!s.script_dirs_explicit);
    }

    #[test]
    fn audit_log() {
        let s = Settings::from_env(&env(&[("HOME", "/home/u")])).unwrap();
        assert_eq!(
            s.audit_log,
            AuditLog::File(PathBuf::from("/home/u/.local/state/pve-mcp/audit.jsonl"))
        );
        let s = Settings::from_env(&env(&[("HOME", "/home/u"), ("XDG_STATE_HOME", "/st")])).unwrap();
        assert_eq!(s.audit_log, AuditLog::File(PathBuf::from("/st/pve-mcp/audit.jsonl")));
        let s = Settings::from_env(&env(&[("PVE_MCP_AUDIT_LOG", " OFF ")])).unwrap();
        assert_eq!(s.audit_log, AuditLog::Off);
        let s = Settings::from_env(&env(&[("PVE_MCP_AUDIT_LOG", "/var/log/a.jsonl")])).unwrap();
        assert_eq!(s.audit_log, AuditLog::File(PathBuf::from("/var/log/a.jsonl")));
        let s = Settings::from_env(&env(&[])).unwrap();
        assert_eq!(s.audit_log, AuditLog::NoDefault);
    }
}
