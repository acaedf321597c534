//! The QEMU guest agent: exec (with a few commands simulated inside the guest),
//! exec-status polling, ping.

use serde_json::{Value, json};

use super::Call;
use crate::sim::http::Reply;
use crate::sim::params;
use crate::sim::state::{ExecJob, Guest, now_secs};

fn agent_configured(g: &Guest) -> bool {
    match g.config.get("agent") {
        Some(Value::Number(n)) => n.as_i64() == Some(1),
        Some(Value::String(s)) => s.starts_with('1') || s.starts_with("enabled=1"),
        _ => false,
    }
}

/// Checks before talking to the agent, with PVE's messages.
fn reachable(call: &Call<'_>) -> Result<Guest, Reply> {
    let g = call.guest()?.clone();
    if !g.running() {
        return Err(Reply::error(500, format!("VM {} is not running", g.vmid)));
    }
    if !agent_configured(&g) {
        return Err(Reply::error(500, "No QEMU guest agent configured"));
    }
    if !g.agent_running {
        return Err(Reply::error(500, "QEMU guest agent is not running"));
    }
    Ok(g)
}

/// What a command prints and returns inside the simulated guest: (stdout, stderr, exit
/// code, seconds it runs).
fn simulate(g: &Guest, argv: &[String]) -> (String, String, i64, f64) {
    let script = match argv {
        [sh, c, cmd, ..] if (sh.ends_with("sh")) && c == "-c" => cmd.clone(),
        _ => argv.join(" "),
    };
    let mut out = String::new();
    let mut err = String::new();
    let mut code = 0;
    let mut secs = 0.0;
    for cmd in script.split(['\n', ';']).map(str::trim).filter(|c| !c.is_empty()) {
        let words: Vec<&str> = cmd.split_whitespace().collect();
        code = 0;
        match words.as_slice() {
            ["echo", rest @ ..] => out.push_str(&format!("{}\n", rest.join(" ").trim_matches('"').trim_matches('\''))),
            ["hostname"] => out.push_str(&format!("{}\n", g.name())),
            ["uname", "-a"] => out.push_str(&format!("Linux {} 6.1.0-28-amd64 #1 SMP PREEMPT_DYNAMIC Debian 6.1.119-1 (2024-11-22) x86_64 GNU/Linux\n", g.name())),
            ["uname", ..] => out.push_str("Linux\n"),
            ["id"] => out.push_str("uid=0(root) gid=0(root) groups=0(root)\n"),
            ["whoami"] => out.push_str("root\n"),
            ["uptime"] => out.push_str(&format!(" up {} min,  0 users,  load average: 0.08, 0.03, 0.01\n", g.uptime() / 60)),
            ["cat", "/etc/os-release"] => out.push_str("PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nID=debian\n"),
            ["df", ..] => out.push_str("Filesystem     1K-blocks    Used Available Use% Mounted on\n/dev/sda1       32845584 9051220  22098688  30% /\n"),
            ["free", ..] => out.push_str("               total        used        free\nMem:         4005656     1021344     2984312\n"),
            ["true"] => {}
            ["false"] => code = 1,
            ["exit", n] => {
                code = n.parse().unwrap_or(2);
                break;
            }
            ["sleep", n] => secs += n.parse::<f64>().unwrap_or(0.0),
            ["yes"] => {
                // Endless output: the agent truncates it.
                out.push_str(&"y\n".repeat(16 * 1024 * 1024 / 2 + 1));
            }
            [prog, ..] => {
                err.push_str(&format!("sh: 1: {prog}: not found\n"));
                code = 127;
            }
            [] => {}
        }
    }
    (out, err, code, secs)
}

pub(super) fn exec(call: &mut Call<'_>) -> Reply {
    let g = match reachable(call) {
        Ok(g) => g,
        Err(r) => return r,
    };
    let argv: Vec<String> = match call.req.params.get("command") {
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| i.as_str().map(str::to_string).unwrap_or_else(|| i.to_string()))
            .collect(),
        Some(v) => vec![v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())],
        None => Vec::new(),
    };
    if argv.is_empty() {
        return Reply::param_error("command", "property is missing and it is not optional");
    }
    let _stdin = params::text(&call.req.params, "input-data");
    let (out, err, code, secs) = match g.agent_commands.iter().find(|c| c.matches(&argv)) {
        Some(c) => (c.out_data.clone(), c.err_data.clone(), c.exitcode, c.seconds),
        None => simulate(&g, &argv),
    };
    let pid = call.st.next_exec_pid();
    call.st.exec_jobs.push(ExecJob {
        vmid: g.vmid,
        pid,
        out,
        err,
        exitcode: code,
        done_at: now_secs() + secs,
    });
    Reply::data(json!({"pid": pid}))
}

/// The agent keeps at most this much output per stream, like qemu-ga.
const MAX_OUTPUT: usize = 16 * 1024 * 1024;

pub(super) fn exec_status(call: &mut Call<'_>) -> Reply {
    if let Err(r) = reachable(call) {
        return r;
    }
    let vmid = call.vmid();
    let pid = params::int(&call.req.params, "pid").unwrap_or(-1);
    let Some(job) = call
        .st
        .exec_jobs
        .iter()
        .find(|j| j.vmid == vmid && i64::from(j.pid) == pid)
    else {
        return Reply::error(
            500,
            format!("Agent error: Invalid parameter 'pid': no such process {pid}"),
        );
    };
    // PVE turns qemu-ga's JSON booleans into 1/0; the cluster may ask for them as sent.
    let flag = |b: bool| {
        if call.st.agent_json_booleans {
            json!(b)
        } else {
            json!(i32::from(b))
        }
    };
    if now_secs() < job.done_at {
        return Reply::data(json!({"exited": flag(false)}));
    }
    let mut r = json!({"exited": flag(true), "exitcode": job.exitcode});
    for (key, text) in [("out", &job.out), ("err", &job.err)] {
        if text.is_empty() {
            continue;
        }
        let truncated = text.len() > MAX_OUTPUT;
        let kept: String = text.chars().take(MAX_OUTPUT).collect();
        r[format!("{key}-data")] = json!(kept);
        if truncated {
            r[format!("{key}-truncated")] = flag(true);
        }
    }
    Reply::data(r)
}

pub(super) fn ping(call: &mut Call<'_>) -> Reply {
    match reachable(call) {
        Ok(_) => Reply::data(json!({"result": {}})),
        Err(r) => r,
    }
}
