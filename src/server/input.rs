//! The server's stdio transport: one JSON-RPC message per line, with a line filter in front
//! of rmcp so that every request gets an answer.
//!
//! rmcp's own line transport drops lines it cannot parse without a word, so a client waits
//! forever for the answer to a request holding a lone UTF-16 surrogate (`"\ud800"`), a
//! number beyond `f64` (`1e400`) or params nested deeper than serde's 128 levels, and it
//! answers malformed params and batches with an `Invalid Request` that has no id. Here each
//! line is read by a thread of its own and sorted ([`classify`]):
//!
//! - a message rmcp can take goes on to it;
//! - a line that is not JSON is answered `-32700` (with its id, if one can be found);
//! - a request whose params cannot be read or represented is answered `-32602` with its id;
//! - a JSON-RPC batch is answered with an array of `-32600` errors, one per request in it
//!   (MCP has no batches since 2025-06-18), and any other JSON that is not a message with
//!   `-32600`;
//! - a malformed notification or response, which has nobody to answer, is logged and dropped.
//!
//! The end of stdin (or a read error) cancels the shutdown token, so calls in flight are
//! answered "cancelled" at once and the process exits promptly instead of waiting for them.

use std::borrow::Cow;
use std::io::{self, BufRead, Write};
use std::time::Duration;

use rmcp::RoleServer;
use rmcp::model::{
    CallToolRequestParams, ClientJsonRpcMessage, ClientRequest, ErrorData, InitializeRequestParams,
    PaginatedRequestParams, RequestId, ServerJsonRpcMessage,
};
use rmcp::transport::Transport;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// The longest line taken, as rmcp's own transport: a longer one is answered and dropped.
pub(crate) const MAX_LINE: usize = 16 * 1024 * 1024;

/// Characters of a parser's complaint quoted in an error (it may quote the input).
const MAX_DETAIL: usize = 300;

/// What to do with one input line.
#[derive(Debug)]
pub(crate) enum Line {
    /// A message for rmcp.
    Message(Box<ClientJsonRpcMessage>),
    /// Answer with this JSON (one error, or an array of them for a batch).
    Answer(Value),
    /// Nothing to answer (a blank line, a malformed notification or response); why, for the log.
    Drop(Cow<'static, str>),
}

/// Sort one line (without its newline).
pub(crate) fn classify(line: &[u8]) -> Line {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let line = line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line);
    if line.iter().all(u8::is_ascii_whitespace) {
        return Line::Drop("blank line".into());
    }
    let typed = match serde_json::from_slice::<ClientJsonRpcMessage>(line) {
        Ok(msg) => return malformed_standard_request(msg),
        Err(e) => e,
    };
    let value = match serde_json::from_slice::<Value>(line) {
        Ok(v) => v,
        Err(e) => return unreadable(line, &e),
    };
    match value {
        Value::Array(items) if items.is_empty() => answer(
            None,
            ErrorData::invalid_request("an empty JSON-RPC batch; send one message per line", None),
        ),
        Value::Array(items) => batch(&items),
        Value::Object(m) => {
            let method = m.get("method").and_then(Value::as_str).map(str::to_string);
            let id = m.get("id").cloned();
            match (id, method) {
                (Some(id), Some(method)) => match serde_json::from_value::<RequestId>(id) {
                    Err(_) => answer(
                        None,
                        ErrorData::invalid_request("the request's id must be a string or an integer", None),
                    ),
                    Ok(id) if m.get("jsonrpc").and_then(Value::as_str) != Some("2.0") => answer(
                        Some(id),
                        ErrorData::invalid_request("the message must have \"jsonrpc\": \"2.0\"", None),
                    ),
                    Ok(id) => answer(
                        Some(id),
                        ErrorData::invalid_params(
                            format!("invalid params for {}: {}", short(&method), detail(&typed)),
                            None,
                        ),
                    ),
                },
                (None, Some(method)) => {
                    Line::Drop(format!("a malformed notification {}: {}", short(&method), detail(&typed)).into())
                }
                (Some(_), None) if m.contains_key("result") || m.contains_key("error") => {
                    Line::Drop(format!("a malformed response: {}", detail(&typed)).into())
                }
                (id, None) => answer(
                    id.and_then(|i| serde_json::from_value::<RequestId>(i).ok()),
                    ErrorData::invalid_request("a JSON-RPC request needs a \"method\"", None),
                ),
            }
        }
        _ => answer(
            None,
            ErrorData::invalid_request("a JSON-RPC message is a JSON object", None),
        ),
    }
}

/// Requests of the MCP methods a client sends. rmcp takes one whose params do not fit its
/// method as a custom request (and would answer "method not found"); it is an invalid
/// params error.
const STANDARD_REQUESTS: &[&str] = &[
    "initialize",
    "ping",
    "server/discover",
    "completion/complete",
    "logging/setLevel",
    "prompts/get",
    "prompts/list",
    "resources/list",
    "resources/templates/list",
    "resources/read",
    "resources/subscribe",
    "resources/unsubscribe",
    "subscriptions/listen",
    "tools/call",
    "tools/list",
];

fn malformed_standard_request(msg: ClientJsonRpcMessage) -> Line {
    let ClientJsonRpcMessage::Request(req) = &msg else {
        return Line::Message(Box::new(msg));
    };
    let ClientRequest::CustomRequest(custom) = &req.request else {
        return Line::Message(Box::new(msg));
    };
    if !STANDARD_REQUESTS.contains(&custom.method.as_str()) {
        return Line::Message(Box::new(msg));
    }
    let params = custom.params.clone().unwrap_or(Value::Null);
    let why = match custom.method.as_str() {
        "tools/call" => serde_json::from_value::<CallToolRequestParams>(params).err(),
        "tools/list" => serde_json::from_value::<Option<PaginatedRequestParams>>(params).err(),
        "initialize" => serde_json::from_value::<InitializeRequestParams>(params).err(),
        _ => None,
    };
    let why = why.map_or_else(|| "they do not have the form it takes".to_string(), |e| detail(&e));
    answer(
        Some(req.id.clone()),
        ErrorData::invalid_params(format!("invalid params for {}: {why}", custom.method), None),
    )
}

/// A line serde could not parse. JSON that is well formed but holds what cannot be
/// represented (a lone surrogate, a number beyond `f64`, nesting beyond 128 levels) is a
/// request with invalid params; anything else is not JSON.
fn unreadable(line: &[u8], e: &serde_json::Error) -> Line {
    let text = e.to_string();
    let unrepresentable = if text.contains("hex escape") || text.contains("unicode code point") {
        Some("a string holds a \\u escape that is not a character, such as a lone UTF-16 surrogate")
    } else if text.contains("number out of range") {
        Some("a number is out of range (beyond ±1.8e308)")
    } else if text.contains("recursion limit exceeded") {
        Some("the message nests more than 128 levels deep")
    } else {
        None
    };
    let id = top_level(line, b"id").and_then(|raw| serde_json::from_slice::<RequestId>(raw).ok());
    let is_request = top_level(line, b"method").is_some() && id.is_some();
    match unrepresentable {
        Some(what) if is_request => answer(
            id,
            ErrorData::invalid_params(format!("the request cannot be read: {what} ({})", detail(e)), None),
        ),
        Some(what) if top_level(line, b"method").is_some() => {
            Line::Drop(format!("a notification that cannot be read: {what}").into())
        }
        Some(what) => answer(
            id,
            ErrorData::invalid_request(format!("the message cannot be read: {what}"), None),
        ),
        None => answer(
            id,
            ErrorData::parse_error(
                format!(
                    "the line is not valid JSON ({}); send one JSON-RPC message per line",
                    detail(e)
                ),
                None,
            ),
        ),
    }
}

/// A batch: one `-32600` per request in it, as the batch's answer.
fn batch(items: &[Value]) -> Line {
    let errors: Vec<Value> = items
        .iter()
        .filter_map(|item| {
            let id = item.get("id")?;
            let id = serde_json::from_value::<RequestId>(id.clone()).ok();
            let msg = ServerJsonRpcMessage::error(
                ErrorData::invalid_request(
                    "JSON-RPC batches are not supported (MCP has none since 2025-06-18); send each message on a line of its own",
                    None,
                ),
                id,
            );
            serde_json::to_value(msg).ok()
        })
        .collect();
    if errors.is_empty() {
        Line::Drop("a batch of notifications".into())
    } else {
        Line::Answer(Value::Array(errors))
    }
}

fn answer(id: Option<RequestId>, error: ErrorData) -> Line {
    match serde_json::to_value(ServerJsonRpcMessage::error(error, id)) {
        Ok(v) => Line::Answer(v),
        Err(e) => Line::Drop(format!("an error answer could not be made: {e}").into()),
    }
}

fn detail(e: &serde_json::Error) -> String {
    short(&e.to_string())
}

fn short(s: &str) -> String {
    match s.char_indices().nth(MAX_DETAIL) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s.to_string(),
    }
}

/// The raw text of a top-level member's scalar value (`"id": 7` → `7`) of a JSON object
/// line, found by scanning without parsing: the rest of the line may be what serde could
/// not parse. Iterative, so nesting depth costs nothing.
pub(crate) fn top_level<'a>(line: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    let start = line.iter().position(|b| !b.is_ascii_whitespace())?;
    if line[start] != b'{' {
        return None;
    }
    let mut depth = 0usize;
    let mut expect_key = false;
    let mut last_key: Option<&[u8]> = None;
    let mut i = start;
    while i < line.len() {
        match line[i] {
            b'"' => {
                let end = string_end(line, i)?;
                if depth == 1 && expect_key {
                    last_key = Some(&line[i + 1..end - 1]);
                    expect_key = false;
                }
                i = end;
                continue;
            }
            b'{' | b'[' => {
                depth += 1;
                if depth == 1 {
                    expect_key = true;
                }
            }
            b'}' | b']' => depth = depth.checked_sub(1)?,
            b',' if depth == 1 => expect_key = true,
            b':' if depth == 1 && last_key == Some(key) => {
                let from = i + 1 + line[i + 1..].iter().position(|b| !b.is_ascii_whitespace())?;
                let to = if line[from] == b'"' {
                    string_end(line, from)?
                } else {
                    from + line[from..]
                        .iter()
                        .position(|b| matches!(b, b',' | b'}' | b']') || b.is_ascii_whitespace())
                        .unwrap_or(line.len() - from)
                };
                return Some(&line[from..to]);
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// The index just past the string that starts (with its quote) at `at`.
fn string_end(line: &[u8], at: usize) -> Option<usize> {
    let mut i = at + 1;
    while i < line.len() {
        match line[i] {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

/// The stdio transport: a thread of its own reading and sorting lines, and one writing
/// every answer (rmcp's and the filter's) in the order they were sent.
///
/// Threads rather than the runtime's stdio: tokio reads and writes stdin and stdout on its
/// blocking pool, handing each read and each write to a pool thread and back, which costs
/// two thread switches per message each way. Here the reader blocks in `read` and hands a
/// sorted message to rmcp (one wake-up), and an answer is handed to the writer (one
/// wake-up), which also serializes it, off the runtime's workers.
pub(crate) struct LineTransport {
    incoming: mpsc::Receiver<ClientJsonRpcMessage>,
    out: mpsc::Sender<Outgoing>,
}

/// Answers queued for the writer before `send` waits for room (backpressure from a client
/// that does not read).
const OUT_QUEUE: usize = 64;

/// An answer this long (a listing of hundreds of guests) is followed by giving the memory
/// it used back to the system (see [`crate::heap`]).
const LARGE_ANSWER: usize = 256 * 1024;

/// Bytes read from the input at a time.
const READ_BUFFER: usize = 64 * 1024;

/// A writer buffer grown past this by one large answer is given back after it.
const KEEP_BUFFER: usize = 1 << 20;

/// How long closing the transport waits for the answers queued before it to be written.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// One message for stdout, serialized by the writer thread; or a request to say when
/// everything queued before it is written.
enum Outgoing {
    Message(Box<ServerJsonRpcMessage>),
    Value(Value),
    Written(oneshot::Sender<()>),
}

impl LineTransport {
    /// Read `input` and write `output` on threads of their own; `on_end` is cancelled at the
    /// end of the input, on a read error, or when the output cannot be written (the client
    /// is gone).
    pub(crate) fn start<R, W>(input: R, output: W, on_end: CancellationToken) -> io::Result<Self>
    where
        R: std::io::Read + Send + 'static,
        W: Write + Send + 'static,
    {
        let (tx, incoming) = mpsc::channel(64);
        let (out, queued) = mpsc::channel(OUT_QUEUE);
        let writer_end = on_end.clone();
        std::thread::Builder::new()
            .name("pve-mcp stdout".into())
            .spawn(move || write_lines(output, queued, writer_end))?;
        let answers = out.clone();
        std::thread::Builder::new()
            .name("pve-mcp stdin".into())
            .spawn(move || {
                read_lines(std::io::BufReader::with_capacity(READ_BUFFER, input), &tx, &answers);
                on_end.cancel();
            })?;
        Ok(LineTransport { incoming, out })
    }
}

/// The reader thread: sort every line, until the end of the input or a read error.
fn read_lines<R: BufRead>(mut input: R, tx: &mpsc::Sender<ClientJsonRpcMessage>, out: &mpsc::Sender<Outgoing>) {
    let mut line = Vec::new();
    loop {
        match read_line(&mut input, &mut line) {
            Ok(Read::Line) => {}
            Ok(Read::TooLong) => {
                tracing::warn!("dropped an input line longer than {MAX_LINE} bytes");
                let msg = ErrorData::invalid_request(
                    format!("a message longer than {} MiB was dropped", MAX_LINE >> 20),
                    None,
                );
                if out
                    .blocking_send(Outgoing::Message(Box::new(ServerJsonRpcMessage::error(msg, None))))
                    .is_err()
                {
                    return;
                }
                continue;
            }
            Ok(Read::End) => return,
            Err(e) => {
                tracing::warn!("reading stdin failed: {e}");
                return;
            }
        }
        match classify(&line) {
            Line::Message(msg) => {
                if tx.blocking_send(*msg).is_err() {
                    return;
                }
            }
            Line::Answer(v) => {
                tracing::debug!("answered an input line rmcp cannot take: {}", short(&v.to_string()));
                if out.blocking_send(Outgoing::Value(v)).is_err() {
                    return;
                }
            }
            Line::Drop(why) => tracing::debug!("ignored an input line: {why}"),
        }
        // One huge line should not keep its buffer for the rest of the session.
        if line.capacity() > KEEP_BUFFER {
            line = Vec::new();
        }
    }
}

/// The writer thread: each message as one line, flushed, until the transport is dropped or
/// the output fails.
fn write_lines<W: Write>(mut output: W, mut queued: mpsc::Receiver<Outgoing>, on_end: CancellationToken) {
    let mut bytes = Vec::new();
    while let Some(item) = queued.blocking_recv() {
        bytes.clear();
        // The message is dropped at the end of its arm, before its bytes are written.
        let encoded = match item {
            Outgoing::Message(m) => serde_json::to_writer(&mut bytes, &m),
            Outgoing::Value(v) => serde_json::to_writer(&mut bytes, &v),
            Outgoing::Written(done) => {
                let _ = done.send(());
                continue;
            }
        };
        if let Err(e) = encoded {
            tracing::error!("an answer could not be encoded as JSON and was not sent: {e}");
            continue;
        }
        bytes.push(b'\n');
        if let Err(e) = output.write_all(&bytes).and_then(|()| output.flush()) {
            tracing::warn!("writing stdout failed ({e}); the client is gone, stopping");
            on_end.cancel();
            return;
        }
        let large = bytes.len() >= LARGE_ANSWER;
        if bytes.capacity() > KEEP_BUFFER {
            bytes = Vec::new();
        }
        if large {
            // This thread's heap held the encoding (and what was freed of the message here):
            // give that memory back.
            crate::heap::release_free_memory();
        }
    }
}

enum Read {
    Line,
    TooLong,
    End,
}

/// One line into `buf` (without its newline), never holding more than [`MAX_LINE`] bytes;
/// the rest of a longer line is skipped. A last line without a newline still counts.
fn read_line<R: BufRead>(reader: &mut R, buf: &mut Vec<u8>) -> io::Result<Read> {
    buf.clear();
    let mut too_long = false;
    loop {
        let available = match reader.fill_buf() {
            Ok(a) => a,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            return Ok(if too_long {
                Read::TooLong
            } else if buf.is_empty() {
                Read::End
            } else {
                Read::Line
            });
        }
        let newline = available.iter().position(|b| *b == b'\n');
        let take = newline.unwrap_or(available.len());
        if !too_long && buf.len() + take > MAX_LINE {
            too_long = true;
            buf.clear();
        }
        if !too_long {
            buf.extend_from_slice(&available[..take]);
        }
        reader.consume(newline.map_or(take, |n| n + 1));
        if newline.is_some() {
            return Ok(if too_long { Read::TooLong } else { Read::Line });
        }
    }
}

impl Transport<RoleServer> for LineTransport {
    type Error = io::Error;

    fn send(&mut self, item: ServerJsonRpcMessage) -> impl Future<Output = Result<(), io::Error>> + Send + 'static {
        let out = self.out.clone();
        async move {
            out.send(Outgoing::Message(Box::new(item)))
                .await
                .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "stdout is closed; the client is gone"))
        }
    }

    async fn receive(&mut self) -> Option<ClientJsonRpcMessage> {
        self.incoming.recv().await
    }

    /// Stop taking messages, and wait (at most [`CLOSE_WAIT`]) until every answer sent
    /// before is written: the process may end right after.
    async fn close(&mut self) -> Result<(), io::Error> {
        self.incoming.close();
        let (done, written) = oneshot::channel();
        if self.out.send(Outgoing::Written(done)).await.is_ok() {
            let _ = tokio::time::timeout(CLOSE_WAIT, written).await;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(l: &Line) -> (i64, Value) {
        match l {
            Line::Answer(v) => (v["error"]["code"].as_i64().unwrap_or(0), v["id"].clone()),
            other => panic!("expected an answer, got {other:?}"),
        }
    }

    #[test]
    fn messages_pass() {
        let l = classify(br#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#);
        assert!(matches!(l, Line::Message(_)), "{l:?}");
        let l = classify(b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"x\"}}\r");
        assert!(matches!(l, Line::Message(_)), "{l:?}");
        assert!(matches!(classify(b"  "), Line::Drop(_)));
    }

    #[test]
    fn what_cannot_be_read_is_answered_with_its_id() {
        let (c, id) = code(&classify(b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\""));
        assert_eq!((c, id), (-32700, json_id(1)));
        let (c, id) = code(&classify(b"not json"));
        assert_eq!((c, id), (-32700, Value::Null));
        let l = classify(
            br#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"x","arguments":{"s":"\ud800"}}}"#,
        );
        assert_eq!(code(&l), (-32602, json_id(2)));
        let l = classify(
            br#"{"jsonrpc":"2.0","id":"a","method":"tools/call","params":{"name":"x","arguments":{"n":1e400}}}"#,
        );
        assert_eq!(code(&l), (-32602, Value::String("a".into())));
        let deep = format!(
            "{{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/call\",\"params\":{{\"name\":\"x\",\"arguments\":{{\"a\":{}{}}}}}}}",
            "[".repeat(10_000),
            "]".repeat(10_000)
        );
        assert_eq!(code(&classify(deep.as_bytes())), (-32602, json_id(3)));
        let l = classify(br#"{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":5}}"#);
        assert_eq!(code(&l), (-32602, json_id(4)));
        let l = classify(br#"{"jsonrpc":"2.0","id":{"x":1},"method":"ping"}"#);
        assert_eq!(code(&l), (-32600, Value::Null));
        assert!(matches!(
            classify(br#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":5}"#),
            Line::Drop(_)
        ));
    }

    #[test]
    fn batches_get_one_error_per_request() {
        let l = classify(br#"[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","method":"notifications/initialized"},{"jsonrpc":"2.0","id":"b","method":"tools/list"}]"#);
        let Line::Answer(Value::Array(errs)) = l else {
            panic!("{l:?}")
        };
        let ids: Vec<Value> = errs.iter().map(|e| e["id"].clone()).collect();
        assert_eq!(ids, vec![json_id(1), Value::String("b".into())]);
        assert!(errs.iter().all(|e| e["error"]["code"] == -32600));
        assert_eq!(code(&classify(b"[]")), (-32600, Value::Null));
    }

    #[test]
    fn top_level_members_are_found_without_parsing() {
        let line = br#"{"params": {"id": 9, "x": "a\"id\": 8"}, "id" : "r-1", "method":"m"}"#;
        assert_eq!(top_level(line, b"id"), Some(&br#""r-1""#[..]));
        assert_eq!(top_level(line, b"method"), Some(&br#""m""#[..]));
        assert_eq!(top_level(b"[1]", b"id"), None);
        assert_eq!(top_level(br#"{"id":12}"#, b"id"), Some(&b"12"[..]));
    }

    fn json_id(n: i64) -> Value {
        Value::from(n)
    }
}
