//! The audit log: one JSON line per request that changes something (every non-GET request,
//! and every GET that needs `exec` or `admin`), written by the core, never by scripts, and
//! chained by SHA-256 so that an edited, removed or truncated line is found by
//! `pve-mcp audit verify`.
//!
//! Fail closed: the line for a request is written and synced before the request is sent,
//! and a request whose line cannot be written is refused. A second line records what PVE
//! answered. Requests the gate refused are logged too.
//!
//! A line is `{"seq":N,"time":"…","event":"…",…,"prev":"<hex>"}`; `prev` is the SHA-256 of
//! the previous line's bytes (without its newline), 64 zeros for the first line of a chain.
//! One [`Audit`] per server writes under a lock, and under an advisory file lock too, so
//! servers sharing the file (the default place is per user) extend one chain.

pub(crate) mod redact;
pub(crate) mod verify;

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::api::{ApiPath, Method};
use crate::config::AuditLog;
use crate::confirm::BoundRequest;
use crate::gate::{CallMode, Capabilities, Capability, Classification, Permit, Violation, classify};
use crate::pve::{PveError, Upid};
use crate::script::compile::CompiledTool;
use crate::script::context::Interrupt;

/// `prev` of the first line of a chain.
pub(crate) const ZEROS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The longest last line read when the log is opened; a longer one counts as damaged.
const MAX_TAIL: u64 = 64 * 1024 * 1024;

#[derive(Debug, Error)]
pub(crate) enum AuditError {
    #[error("PVE_MCP_AUDIT_LOG is not set and neither XDG_STATE_HOME nor HOME is, so it has no default place")]
    NoDefault,
    #[error("cannot create the directory {dir}: {source}")]
    Dir { dir: String, source: std::io::Error },
    #[error("cannot open it: {0}")]
    Open(std::io::Error),
    #[error("cannot lock it: {0}")]
    Lock(std::io::Error),
    #[error("cannot read its last line: {0}")]
    Read(std::io::Error),
    #[error("cannot write it: {0}")]
    Write(std::io::Error),
}

/// Whether a request the gate allowed is logged: anything but a plain read.
pub(crate) fn audited(method: Method, needs: Capabilities) -> bool {
    method != Method::Get || needs.has(Capability::Exec) || needs.has(Capability::Admin)
}

/// How the call that made a request was approved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Approval {
    /// Not a confirmed call (a non-destructive tool, or a plan).
    None,
    /// `confirm=true` alone.
    Flag,
    /// `confirm=true` with a valid plan token.
    Token,
    /// A person approved the plan (MCP elicitation).
    #[serde(rename = "human accept")]
    Human,
}

impl Approval {
    pub(crate) fn of(call: &CallMode) -> Approval {
        match call {
            CallMode::Run { bound: Some(p), .. } if p.human => Approval::Human,
            CallMode::Run { bound: Some(_), .. } => Approval::Token,
            CallMode::Run { confirmed: true, .. } => Approval::Flag,
            _ => Approval::None,
        }
    }
}

/// The server's audit log. `off` writes nothing; otherwise every write goes to the file.
pub(crate) struct Audit {
    sink: Sink,
}

enum Sink {
    Off,
    NoDefault,
    File { path: PathBuf, chain: Mutex<Option<Chain>> },
}

impl std::fmt::Debug for Audit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Audit({})", self.place())
    }
}

impl Audit {
    /// Open the log as configured. A log that cannot be opened now is retried at every
    /// audited request, which is refused while it fails.
    pub(crate) fn open(setting: &AuditLog) -> Audit {
        let sink = match setting {
            AuditLog::Off => Sink::Off,
            AuditLog::NoDefault => Sink::NoDefault,
            AuditLog::File(path) => {
                let opened = Chain::open(path);
                match &opened {
                    Ok(c) => tracing::info!("audit log: {} (entry {} is the last)", path.display(), c.seq),
                    Err(e) => tracing::warn!(
                        "the audit log at {} cannot be written ({e}); requests that change anything are refused until it can, or PVE_MCP_AUDIT_LOG=off",
                        path.display()
                    ),
                }
                Sink::File {
                    path: path.clone(),
                    chain: Mutex::new(opened.ok()),
                }
            }
        };
        if matches!(sink, Sink::NoDefault) {
            tracing::warn!("{}; requests that change anything are refused", AuditError::NoDefault);
        }
        Audit { sink }
    }

    pub(crate) fn off() -> Audit {
        Audit { sink: Sink::Off }
    }

    pub(crate) fn is_off(&self) -> bool {
        matches!(self.sink, Sink::Off)
    }

    /// The file, as shown in messages.
    pub(crate) fn place(&self) -> String {
        match &self.sink {
            Sink::Off => "off".into(),
            Sink::NoDefault => "(no default place)".into(),
            Sink::File { path, .. } => path.display().to_string(),
        }
    }

    /// Append one entry (its fields besides `seq`, `time` and `prev`); its sequence number.
    /// The line is synced to disk before this returns.
    pub(crate) fn append(&self, event: &str, body: Map<String, Value>) -> Result<u64, AuditError> {
        let (path, chain) = match &self.sink {
            Sink::Off => return Ok(0),
            Sink::NoDefault => return Err(AuditError::NoDefault),
            Sink::File { path, chain } => (path, chain),
        };
        let mut slot = chain.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            *slot = Some(Chain::open(path)?);
        }
        let Some(c) = slot.as_mut() else {
            return Err(AuditError::NoDefault);
        };
        let written = c.append(path, event, body);
        if written.is_err() {
            // Open it again for the next entry, and find out then where the file stands.
            *slot = None;
        }
        written
    }

    /// A person was asked to approve a plan: the tool, its arguments, the requests shown and
    /// the answer (`human accept`, `human decline`, `human cancel`, `human no answer`).
    /// An error means nothing may be carried out: the approval is not on record.
    pub(crate) fn approval(
        &self,
        tool: &CompiledTool,
        args: &Map<String, Value>,
        requests: &[BoundRequest],
        answer: &str,
    ) -> Result<(), AuditError> {
        if self.is_off() {
            return Ok(());
        }
        let mut m = Map::new();
        m.insert("tool".into(), tool.manifest.name.clone().into());
        m.insert("script".into(), tool.sha256.clone().into());
        m.insert("args".into(), Value::Object(redact::redact_map(args)));
        let shown: Vec<Value> = requests
            .iter()
            .map(|r| json!({"method": r.method, "path": r.path, "params": redact::redact_map(&r.params)}))
            .collect();
        m.insert("requests".into(), Value::Array(shown));
        m.insert("approval".into(), answer.into());
        self.append("approval", m).map(|_| ())
    }

    /// What one call writes with.
    pub(crate) fn call(
        self: &Arc<Audit>,
        tool: &CompiledTool,
        args: &Map<String, Value>,
        call: &CallMode,
    ) -> CallAudit {
        CallAudit {
            audit: self.clone(),
            tool: tool.manifest.name.clone(),
            script: tool.sha256.clone(),
            args: Value::Object(redact::redact_map(args)),
            approval: Approval::of(call),
        }
    }
}

/// One call's view of the log: the tool, its script's hash, its (redacted) arguments and
/// its approval go into every line it writes.
#[derive(Debug)]
pub(crate) struct CallAudit {
    audit: Arc<Audit>,
    tool: String,
    script: String,
    args: Value,
    approval: Approval,
}

impl CallAudit {
    /// For calls that keep no log (tests, tools outside a server).
    pub(crate) fn off(tool: &str) -> CallAudit {
        CallAudit {
            audit: Arc::new(Audit::off()),
            tool: tool.into(),
            script: String::new(),
            args: Value::Null,
            approval: Approval::None,
        }
    }

    pub(crate) fn place(&self) -> String {
        self.audit.place()
    }

    fn base(&self, method: Method, path: &str) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("tool".into(), self.tool.clone().into());
        m.insert("method".into(), method.as_str().into());
        m.insert("path".into(), path.into());
        m
    }

    fn call_fields(&self, m: &mut Map<String, Value>) {
        m.insert("script".into(), self.script.clone().into());
        m.insert("args".into(), self.args.clone());
        m.insert("approval".into(), json!(self.approval));
    }

    /// Before sending: the line for a request the gate allowed, if it is one the log keeps.
    /// `Ok(None)`: not logged (a read). An error means the request must not be sent.
    pub(crate) fn before_send(&self, permit: &Permit) -> Result<Option<u64>, AuditError> {
        if self.audit.is_off() || !audited(permit.method(), permit.needs()) {
            return Ok(None);
        }
        let mut m = self.base(permit.method(), &permit.path().to_string());
        self.call_fields(&mut m);
        m.insert("params".into(), Value::Object(redact::redact_map(permit.params())));
        m.insert("needs".into(), json!(permit.needs()));
        self.audit.append("request", m).map(Some)
    }

    /// After sending: what came back, for the request logged as entry `of`.
    pub(crate) fn after_send(
        &self,
        of: u64,
        method: Method,
        path: &str,
        result: &Result<Result<Value, PveError>, Interrupt>,
    ) {
        let mut m = self.base(method, path);
        m.insert("of".into(), of.into());
        m.insert("outcome".into(), outcome(result));
        if let Err(e) = self.audit.append("outcome", m) {
            tracing::error!(
                "{}: the outcome of {method} {path} could not be written to the audit log at {}: {e}",
                self.tool,
                self.audit.place()
            );
        }
    }

    /// A request the gate refused (the first refusal of the call; later ones repeat it).
    /// `request` is `None` when the request did not get that far (a bad path).
    pub(crate) fn refused(&self, v: &Violation, request: Option<(&ApiPath, &Map<String, Value>)>) {
        if self.audit.is_off() {
            return;
        }
        let mut m = self.base(v.method, &v.path);
        self.call_fields(&mut m);
        if let Some((path, params)) = request {
            m.insert("params".into(), Value::Object(redact::redact_map(params)));
            if let Classification::Needs { caps, .. } = classify(v.method, &path.routed(), params) {
                m.insert("needs".into(), json!(caps));
            }
        }
        m.insert("outcome".into(), json!({"refused": v.refusal.to_string()}));
        if let Err(e) = self.audit.append("refused", m) {
            tracing::error!(
                "{}: the refusal of {} {} could not be written to the audit log at {}: {e}",
                self.tool,
                v.method,
                v.path,
                self.audit.place()
            );
        }
    }
}

/// What a sent request gave, for the log: HTTP status, UPID, or the error; never the
/// answer itself, which may hold what a guest's files or commands gave.
fn outcome(result: &Result<Result<Value, PveError>, Interrupt>) -> Value {
    match result {
        Ok(Ok(v)) => {
            let mut o = json!({"status": 200});
            if let Some(s) = v.as_str()
                && Upid::parse(s).is_ok()
            {
                o["upid"] = s.into();
            }
            o
        }
        Ok(Err(e)) => {
            let mut o = json!({"error": e.to_string()});
            match e {
                PveError::Api(a) => o["status"] = a.status.into(),
                PveError::BadResponse { status, .. } => o["status"] = (*status).into(),
                PveError::Transport(t) => o["transport"] = format!("{:?}", t.kind).to_ascii_lowercase().into(),
                PveError::InvalidParam { .. } => o["not_sent"] = true.into(),
                PveError::TooLarge { .. } => o["not_read"] = true.into(),
            }
            o
        }
        Err(i) => {
            const UNANSWERED: &str =
                "the call stopped before PVE answered; the request may or may not have been carried out";
            let (why, error) = match i {
                Interrupt::Cancelled => ("cancelled", UNANSWERED),
                Interrupt::TimedOut => ("timed out", UNANSWERED),
                Interrupt::TooManyRequests => ("too many requests", UNANSWERED),
                Interrupt::AnswerTooLarge => (
                    "answer too large",
                    "PVE answered, but with more than the call's memory budget had left, so the answer was not read and the call stopped",
                ),
            };
            json!({"interrupted": why, "error": error})
        }
    }
}

#[derive(Serialize)]
struct Line<'a> {
    seq: u64,
    time: &'a str,
    event: &'a str,
    #[serde(flatten)]
    body: &'a Map<String, Value>,
    prev: &'a str,
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

/// Now, RFC 3339 in UTC with milliseconds.
pub(crate) fn now_rfc3339() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let (y, m, day, h, mi, s) = crate::human::utc_parts(d.as_secs() as i64);
    format!("{y:04}-{m:02}-{day:02}T{h:02}:{mi:02}:{s:02}.{:03}Z", d.subsec_millis())
}

/// The open file and where its chain stands.
struct Chain {
    file: File,
    /// The last entry's number (0: none yet).
    seq: u64,
    /// The last line's hash.
    prev: String,
    /// The file's length after our last write: another length means someone else wrote.
    end: u64,
    #[cfg(unix)]
    ino: (u64, u64),
}

/// What the end of the file holds.
enum Tail {
    Empty,
    Entry { seq: u64, hash: String },
    Damaged { why: String, newline: bool },
}

impl Chain {
    fn open(path: &Path) -> Result<Chain, AuditError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            create_dir(dir).map_err(|source| AuditError::Dir {
                dir: dir.display().to_string(),
                source,
            })?;
        }
        let mut opts = std::fs::OpenOptions::new();
        opts.read(true).append(true).create(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let file = opts.open(path).map_err(AuditError::Open)?;
        #[cfg(unix)]
        let ino = {
            use std::os::unix::fs::MetadataExt;
            let md = file.metadata().map_err(AuditError::Open)?;
            (md.dev(), md.ino())
        };
        let mut chain = Chain {
            file,
            seq: 0,
            prev: ZEROS.into(),
            end: u64::MAX,
            #[cfg(unix)]
            ino,
        };
        chain.locked(Chain::sync)?;
        Ok(chain)
    }

    /// Continue from what the file ends with now (under the file lock).
    fn sync(&mut self) -> Result<(), AuditError> {
        match read_tail(&mut self.file).map_err(AuditError::Read)? {
            Tail::Empty => {
                self.seq = 0;
                self.prev = ZEROS.into();
            }
            Tail::Entry { seq, hash } => {
                self.seq = seq;
                self.prev = hash;
            }
            Tail::Damaged { why, newline } => {
                tracing::warn!("the audit log's last line is damaged ({why}); a new chain segment starts after it");
                self.seq = 0;
                self.prev = ZEROS.into();
                let mut body = Map::new();
                body.insert(
                    "reason".into(),
                    format!("the line before this one is damaged ({why}); a new chain starts here").into(),
                );
                self.write(if newline { "" } else { "\n" }, "segment", &body)?;
            }
        }
        self.end = self.file.metadata().map_err(AuditError::Read)?.len();
        Ok(())
    }

    fn append(&mut self, path: &Path, event: &str, body: Map<String, Value>) -> Result<u64, AuditError> {
        #[cfg(unix)]
        {
            // Moved away (rotated) or replaced: continue in the file now at the path.
            use std::os::unix::fs::MetadataExt;
            let now = std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()));
            if now != Some(self.ino) {
                *self = Chain::open(path)?;
            }
        }
        #[cfg(not(unix))]
        let _ = path;
        self.locked(|c| {
            let len = c.file.metadata().map_err(AuditError::Read)?.len();
            if len != c.end {
                c.sync()?;
            }
            c.write("", event, &body)?;
            Ok(c.seq)
        })
    }

    /// Run `f` holding an exclusive advisory lock on the file (other servers writing the
    /// same log wait for it).
    fn locked<T>(&mut self, f: impl FnOnce(&mut Chain) -> Result<T, AuditError>) -> Result<T, AuditError> {
        #[cfg(unix)]
        rustix::fs::flock(&self.file, rustix::fs::FlockOperation::LockExclusive)
            .map_err(|e| AuditError::Lock(e.into()))?;
        let out = f(self);
        #[cfg(unix)]
        {
            let _ = rustix::fs::flock(&self.file, rustix::fs::FlockOperation::Unlock);
        }
        out
    }

    fn write(&mut self, lead: &str, event: &str, body: &Map<String, Value>) -> Result<(), AuditError> {
        let seq = self.seq + 1;
        let time = now_rfc3339();
        let line = Line {
            seq,
            time: &time,
            event,
            body,
            prev: &self.prev,
        };
        let text = serde_json::to_string(&line).map_err(|e| AuditError::Write(std::io::Error::other(e)))?;
        let mut bytes = Vec::with_capacity(lead.len() + text.len() + 1);
        bytes.extend_from_slice(lead.as_bytes());
        bytes.extend_from_slice(text.as_bytes());
        bytes.push(b'\n');
        self.file.write_all(&bytes).map_err(AuditError::Write)?;
        self.file.sync_data().map_err(AuditError::Write)?;
        self.seq = seq;
        self.prev = sha256_hex(text.as_bytes());
        self.end = self.end.saturating_add(bytes.len() as u64);
        Ok(())
    }
}

fn create_dir(dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(dir)
}

/// The last line of the file, read backwards.
fn read_tail(file: &mut File) -> std::io::Result<Tail> {
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(Tail::Empty);
    }
    let mut last = [0u8; 1];
    file.seek(SeekFrom::Start(len - 1))?;
    file.read_exact(&mut last)?;
    if last[0] != b'\n' {
        return Ok(Tail::Damaged {
            why: "it is incomplete: the file does not end with a newline".into(),
            newline: false,
        });
    }
    let end = len - 1;
    let mut start = end;
    let mut line: Vec<u8> = Vec::new();
    const CHUNK: u64 = 64 * 1024;
    while start > 0 {
        if end - start > MAX_TAIL {
            return Ok(Tail::Damaged {
                why: format!("it is longer than {} MiB", MAX_TAIL >> 20),
                newline: true,
            });
        }
        let from = start.saturating_sub(CHUNK);
        let mut chunk = vec![0u8; (start - from) as usize];
        file.seek(SeekFrom::Start(from))?;
        file.read_exact(&mut chunk)?;
        if let Some(nl) = chunk.iter().rposition(|b| *b == b'\n') {
            chunk.drain(..=nl);
            chunk.extend_from_slice(&line);
            line = chunk;
            start = 0;
        } else {
            chunk.extend_from_slice(&line);
            line = chunk;
            start = from;
        }
    }
    let entry: Option<(u64, bool)> = serde_json::from_slice::<Value>(&line).ok().and_then(|v| {
        let seq = v.get("seq")?.as_u64()?;
        let prev = v.get("prev")?.as_str()?;
        Some((seq, prev.len() == 64 && prev.bytes().all(|b| b.is_ascii_hexdigit())))
    });
    Ok(match entry {
        Some((seq, true)) => Tail::Entry {
            seq,
            hash: sha256_hex(&line),
        },
        _ => Tail::Damaged {
            why: "it is not an audit entry".into(),
            newline: true,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(path: &Path) -> Vec<Value> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn entries_chain_and_continue_after_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/pve-mcp/audit.jsonl");
        let audit = Audit::open(&AuditLog::File(path.clone()));
        assert_eq!(audit.append("request", Map::new()).unwrap(), 1);
        assert_eq!(audit.append("outcome", Map::new()).unwrap(), 2);
        drop(audit);
        let audit = Audit::open(&AuditLog::File(path.clone()));
        assert_eq!(audit.append("request", Map::new()).unwrap(), 3);
        let all = lines(&path);
        assert_eq!(all[0]["prev"], ZEROS);
        let text = std::fs::read_to_string(&path).unwrap();
        let raw: Vec<&str> = text.lines().collect();
        assert_eq!(all[2]["prev"], sha256_hex(raw[1].as_bytes()));
        let report = verify::verify(text.as_bytes()).unwrap();
        assert_eq!((report.entries, report.problem), (3, None));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&path), 0o600);
            assert_eq!(mode(path.parent().unwrap()), 0o700);
        }
    }

    #[test]
    fn a_damaged_tail_starts_a_new_segment() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let audit = Audit::open(&AuditLog::File(path.clone()));
        audit.append("request", Map::new()).unwrap();
        drop(audit);
        let mut f = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"seq\":2,\"ti").unwrap();
        drop(f);
        let audit = Audit::open(&AuditLog::File(path.clone()));
        audit.append("request", Map::new()).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let raw: Vec<&str> = text.lines().collect();
        assert_eq!(raw.len(), 4, "{text}");
        assert!(raw[2].contains("\"event\":\"segment\""), "{text}");
        let report = verify::verify(text.as_bytes()).unwrap();
        let problem = report.problem.unwrap();
        assert_eq!(problem.line, 2, "{}", problem.what);
        assert_eq!(report.segments, 2);
    }

    #[test]
    fn another_writer_is_followed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let a = Audit::open(&AuditLog::File(path.clone()));
        let b = Audit::open(&AuditLog::File(path.clone()));
        for _ in 0..3 {
            a.append("request", Map::new()).unwrap();
            b.append("request", Map::new()).unwrap();
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let report = verify::verify(text.as_bytes()).unwrap();
        assert_eq!((report.entries, report.problem), (6, None), "{text}");
    }
}
