//! Reading the audit log back: `verify` checks the chain and names the first line that
//! breaks it; `show` prints the entries one per line.

use std::collections::HashMap;
use std::io::{BufRead, Write};

use serde_json::Value;

use super::{ZEROS, sha256_hex};

/// What `verify` found.
#[derive(Debug, Default)]
pub(crate) struct Report {
    /// Lines that are intact entries in their place.
    pub entries: usize,
    /// Chains in the file: 1, or more when the server started a new one after damage.
    pub segments: usize,
    /// The hash of the last line: keep it elsewhere to detect a change of the last line or
    /// lines removed from the end.
    pub head: Option<String>,
    /// The first problem.
    pub problem: Option<Problem>,
    /// Problems after the first.
    pub more_problems: usize,
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Problem {
    /// 1-based line number.
    pub line: usize,
    pub what: String,
}

/// `(seq, prev, event)` of a line, or why it is not an entry.
fn entry(line: &[u8]) -> Result<(u64, String, String), String> {
    let v: Value = serde_json::from_slice(line).map_err(|e| format!("not JSON: {e}"))?;
    let seq = v.get("seq").and_then(Value::as_u64).ok_or("no sequence number")?;
    let prev = v.get("prev").and_then(Value::as_str).ok_or("no prev hash")?;
    if prev.len() != 64 || !prev.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("its prev is not a SHA-256 in hex".into());
    }
    let event = v.get("event").and_then(Value::as_str).unwrap_or("").to_string();
    Ok((seq, prev.to_string(), event))
}

fn plural(n: u64, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

/// Check the chain of a whole log.
pub(crate) fn verify(mut r: impl BufRead) -> std::io::Result<Report> {
    let mut report = Report::default();
    // Where the chain stands: what the next line must carry, `None` after a damaged line.
    let mut expect: Option<(u64, String)> = Some((1, ZEROS.to_string()));
    let mut previous_ok = true;
    let mut n = 0usize;
    let mut buf = Vec::new();
    loop {
        buf.clear();
        if r.read_until(b'\n', &mut buf)? == 0 {
            break;
        }
        n += 1;
        if n == 1 {
            report.segments = 1;
        }
        let complete = buf.last() == Some(&b'\n');
        let line = if complete { &buf[..buf.len() - 1] } else { &buf[..] };
        let hash = sha256_hex(line);
        let mut problem: Option<Problem> = None;
        let mut set = |line: usize, what: String| {
            problem.get_or_insert(Problem { line, what });
        };
        if !complete {
            set(
                n,
                format!("line {n} is truncated: the file ends in the middle of an entry (no newline after it)"),
            );
        }
        match entry(line) {
            Err(why) => {
                set(
                    n,
                    format!("line {n} is not an audit entry ({why}): it was damaged or edited"),
                );
                expect = None;
            }
            Ok((seq, prev, event)) => {
                let starts_chain = event == "segment" && seq == 1 && prev == ZEROS;
                if starts_chain && n > 1 {
                    report.segments += 1;
                    if previous_ok {
                        set(
                            n,
                            format!(
                                "line {n} starts a new chain although line {} is intact: entries before it may have been removed",
                                n - 1
                            ),
                        );
                    }
                } else if let Some((want_seq, want_prev)) = &expect {
                    if n == 1 && (seq != 1 || prev != ZEROS) {
                        set(
                            1,
                            format!(
                                "line 1 is entry {seq}, not the start of a chain: the beginning of the log is missing, or line 1 was edited"
                            ),
                        );
                    } else if seq > *want_seq {
                        set(
                            n,
                            format!(
                                "line {n} is entry {seq}, but entry {} came before it: {} missing (lines deleted)",
                                want_seq - 1,
                                plural(seq - want_seq, "entry is", "entries are")
                            ),
                        );
                    } else if seq < *want_seq {
                        set(
                            n,
                            format!(
                                "line {n} is entry {seq}, after entry {}: lines were duplicated, reordered or edited",
                                want_seq - 1
                            ),
                        );
                    } else if prev != *want_prev {
                        set(
                            n - 1,
                            format!(
                                "line {} was edited: its hash is not the one line {n} recorded for it",
                                n - 1
                            ),
                        );
                    }
                }
                expect = Some((seq + 1, hash.clone()));
            }
        }
        previous_ok = problem.is_none();
        match problem {
            None => report.entries += 1,
            Some(p) if report.problem.is_none() => report.problem = Some(p),
            Some(_) => report.more_problems += 1,
        }
        report.head = Some(hash);
    }
    Ok(report)
}

/// Print every entry on one line: time, tool, method and path, outcome, approval. A
/// request's outcome, logged on a line of its own, is shown with it.
pub(crate) fn show(mut r: impl BufRead, out: &mut impl Write) -> std::io::Result<()> {
    let mut rows: Vec<(usize, Option<Value>)> = Vec::new();
    let mut buf = Vec::new();
    loop {
        buf.clear();
        if r.read_until(b'\n', &mut buf)? == 0 {
            break;
        }
        let line = buf.strip_suffix(b"\n").unwrap_or(&buf);
        rows.push((rows.len() + 1, serde_json::from_slice::<Value>(line).ok()));
    }
    // Outcomes by (chain segment, request number).
    let mut outcomes: HashMap<(usize, u64), Value> = HashMap::new();
    let mut segment = 0;
    for (_, v) in &rows {
        let Some(v) = v else { continue };
        let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("");
        match s("event") {
            "segment" => segment += 1,
            "outcome" => {
                if let Some(of) = v.get("of").and_then(Value::as_u64) {
                    outcomes.insert((segment, of), v.get("outcome").cloned().unwrap_or(Value::Null));
                }
            }
            _ => {}
        }
    }
    let mut segment = 0;
    for (n, v) in &rows {
        let Some(v) = v else {
            writeln!(out, "line {n}: not an audit entry (damaged)")?;
            continue;
        };
        let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("-").to_string();
        let head = format!("{}  {}  {} {}", s("time"), s("tool"), s("method"), s("path"));
        match s("event").as_str() {
            "segment" => {
                segment += 1;
                writeln!(out, "{}  new chain: {}", s("time"), s("reason"))?;
            }
            "request" => {
                let seq = v.get("seq").and_then(Value::as_u64).unwrap_or(0);
                let outcome = outcomes
                    .get(&(segment, seq))
                    .map(summary)
                    .unwrap_or_else(|| "no outcome recorded".into());
                writeln!(out, "{head}  {outcome}  approval={}", s("approval"))?;
            }
            "refused" => {
                let outcome = v.get("outcome").map(summary).unwrap_or_default();
                writeln!(out, "{head}  {outcome}  approval={}", s("approval"))?;
            }
            "outcome" => {
                let of = v.get("of").and_then(Value::as_u64).unwrap_or(0);
                let matched = rows.iter().any(|(_, r)| {
                    r.as_ref().is_some_and(|r| {
                        r.get("event").and_then(Value::as_str) == Some("request")
                            && r.get("seq").and_then(Value::as_u64) == Some(of)
                    })
                });
                if !matched {
                    let outcome = v.get("outcome").map(summary).unwrap_or_default();
                    writeln!(out, "{head}  {outcome} (of entry {of}, not in this file)")?;
                }
            }
            other => writeln!(out, "{head}  {other}")?,
        }
    }
    Ok(())
}

/// An outcome in a few words.
fn summary(o: &Value) -> String {
    let s = |k: &str| o.get(k).and_then(Value::as_str);
    let short = |t: &str| -> String {
        match t.char_indices().nth(160) {
            Some((cut, _)) => format!("{}…", &t[..cut]),
            None => t.to_string(),
        }
    };
    if let Some(r) = s("refused") {
        return format!("refused: {}", short(r));
    }
    if let Some(i) = s("interrupted") {
        return format!("interrupted ({i})");
    }
    if let Some(t) = s("transport") {
        return format!("transport error ({t}): {}", short(s("error").unwrap_or("")));
    }
    let mut text = match o.get("status").and_then(Value::as_u64) {
        Some(st) => st.to_string(),
        None => "not sent".to_string(),
    };
    if let Some(u) = s("upid") {
        text.push(' ');
        text.push_str(u);
    }
    if let Some(e) = s("error") {
        text.push_str(": ");
        text.push_str(&short(e));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: u64) -> Vec<String> {
        let mut prev = ZEROS.to_string();
        (1..=n)
            .map(|seq| {
                let line = format!(r#"{{"seq":{seq},"event":"request","tool":"t","prev":"{prev}"}}"#);
                prev = sha256_hex(line.as_bytes());
                line
            })
            .collect()
    }

    fn check(lines: &[String], tail: &str) -> Report {
        let mut text = lines.join("\n");
        text.push_str(tail);
        verify(text.as_bytes()).unwrap()
    }

    #[test]
    fn an_intact_chain_verifies() {
        let r = check(&chain(5), "\n");
        assert_eq!((r.entries, r.segments, r.problem), (5, 1, None));
        assert_eq!(check(&[], "").entries, 0);
    }

    #[test]
    fn edits_deletions_and_truncation_are_named() {
        let mut c = chain(5);
        c[2] = c[2].replace("\"t\"", "\"x\"");
        assert_eq!(check(&c, "\n").problem.unwrap().line, 3);

        let mut c = chain(5);
        c.remove(2);
        let p = check(&c, "\n").problem.unwrap();
        assert_eq!(p.line, 3);
        assert!(p.what.contains("1 entry is missing"), "{}", p.what);

        let c = chain(5);
        let p = check(&c[1..], "\n").problem.unwrap();
        assert_eq!(p.line, 1);

        let mut c = chain(5);
        let last = c[4].clone();
        c[4] = last[..last.len() - 7].to_string();
        let p = check(&c, "").problem.unwrap();
        assert_eq!(p.line, 5);
        assert!(p.what.contains("truncated"), "{}", p.what);

        let p = check(&chain(3), "").problem.unwrap();
        assert!(p.what.contains("truncated"), "a missing final newline: {}", p.what);
    }

    #[test]
    fn show_merges_outcomes() {
        let a = r#"{"seq":1,"time":"T1","event":"request","tool":"t","method":"POST","path":"/p","approval":"none","prev":"x"}"#;
        let b = r#"{"seq":2,"time":"T2","event":"outcome","of":1,"tool":"t","method":"POST","path":"/p","outcome":{"status":200,"upid":"UPID:x"},"prev":"y"}"#;
        let c = r#"{"seq":3,"time":"T3","event":"refused","tool":"t","method":"DELETE","path":"/q","approval":"flag","outcome":{"refused":"no"},"prev":"z"}"#;
        let mut out = Vec::new();
        show(format!("{a}\n{b}\n{c}\nbroken\n").as_bytes(), &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "T1  t  POST /p  200 UPID:x  approval=none");
        assert_eq!(lines[1], "T3  t  DELETE /q  refused: no  approval=flag");
        assert_eq!(lines[2], "line 4: not an audit entry (damaged)");
    }
}
