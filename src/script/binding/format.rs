//! Small helpers without requests: `pve::progress(message)`, time formatting
//! (`duration`, `date`, `format_time`, `ago`), `pve::round(x, digits)`, and the per-call wait
//! of `pve::wait_task(upid, seconds)`.

use std::time::Duration;

use rhai::{Dynamic, EvalAltResult, Module, NativeCallContext};

use super::{R, call, number, reg, usage};
use crate::human;
use crate::script::context::CallContext;

/// Longest wait `pve::wait_task(upid, seconds)` takes.
pub(super) const MAX_WAIT_SECS: f64 = 3600.0;

pub(super) fn register(m: &mut Module) {
    reg(m, "progress", |n: NativeCallContext, msg: Dynamic| -> R {
        let text: String = msg.to_string().chars().take(500).collect();
        call(&n)?.report_progress(text);
        Ok(Dynamic::UNIT)
    });
    reg(m, "duration", |n: NativeCallContext, secs: Dynamic| -> R {
        Ok(duration(number(&n, &secs, "duration")?).into())
    });
    reg(m, "date", |n: NativeCallContext, epoch: Dynamic| -> R {
        Ok(format_time(epoch_arg(&n, &epoch, "date")?, "%Y-%m-%d").into())
    });
    reg(
        m,
        "format_time",
        |n: NativeCallContext, epoch: Dynamic, fmt: Dynamic| -> R {
            let e = epoch_arg(&n, &epoch, "format_time")?;
            let Some(f) = fmt.read_lock::<rhai::ImmutableString>() else {
                return Err(usage(
                    &n,
                    format!(
                        "pve::format_time takes a format string like \"%Y-%m-%d %H:%M\", got {}",
                        fmt.type_name()
                    ),
                ));
            };
            Ok(format_time(e, f.as_str()).into())
        },
    );
    reg(m, "ago", |n: NativeCallContext, epoch: Dynamic| -> R {
        Ok(ago(epoch_arg(&n, &epoch, "ago")?, now()).into())
    });
    reg(m, "round", |n: NativeCallContext, x: Dynamic| -> R {
        Ok(Dynamic::from_float(round(number(&n, &x, "round")?, 0)))
    });
    reg(m, "round", |n: NativeCallContext, x: Dynamic, digits: Dynamic| -> R {
        let d = digits
            .as_int()
            .ok()
            .filter(|d| (0..=12).contains(d))
            .ok_or_else(|| usage(&n, format!("pve::round takes 0 to 12 digits, got {digits}")))?;
        Ok(Dynamic::from_float(round(number(&n, &x, "round")?, d as u32)))
    });
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn epoch_arg(n: &NativeCallContext, v: &Dynamic, f: &str) -> Result<i64, Box<EvalAltResult>> {
    let x = number(n, v, f)?;
    // Years 0 to 9999.
    if !(-62_167_219_200.0..=253_402_300_799.0).contains(&x) {
        return Err(usage(n, format!("pve::{f} takes epoch seconds, got {x}")));
    }
    Ok(x as i64)
}

/// The wait of `pve::wait_task(upid, seconds)`: 0 to [`MAX_WAIT_SECS`], never past the call.
pub(super) fn wait_seconds(
    n: &NativeCallContext,
    cx: &CallContext,
    secs: &Dynamic,
) -> Result<Duration, Box<EvalAltResult>> {
    let s = number(n, secs, "wait_task")?;
    if !(0.0..=MAX_WAIT_SECS).contains(&s) {
        return Err(usage(
            n,
            format!("pve::wait_task waits 0 to {MAX_WAIT_SECS} seconds, got {s}"),
        ));
    }
    let left = cx.deadline.saturating_duration_since(tokio::time::Instant::now());
    Ok(Duration::from_secs_f64(s).min(left))
}

/// `93784` → `"1d 2h 3m"`: the two largest units (seconds only under an hour).
pub(super) fn duration(secs: f64) -> String {
    if !secs.is_finite() {
        return "unknown".into();
    }
    let sign = if secs < 0.0 { "-" } else { "" };
    let total = secs.abs().round() as u64;
    let (d, h, m, s) = (total / 86_400, total % 86_400 / 3600, total % 3600 / 60, total % 60);
    let parts: Vec<String> = [(d, "d"), (h, "h"), (m, "m"), (s, "s")]
        .iter()
        .skip_while(|(v, _)| *v == 0)
        .take(if d > 0 || h > 0 { 2 } else { 3 })
        .filter(|(v, _)| *v > 0)
        .map(|(v, u)| format!("{v}{u}"))
        .collect();
    if parts.is_empty() {
        "0s".into()
    } else {
        format!("{sign}{}", parts.join(" "))
    }
}

/// `"3h 5m ago"`, or `"in 10m"` for a time to come.
pub(super) fn ago(epoch: i64, now: i64) -> String {
    let delta = now - epoch;
    if delta >= 0 {
        format!("{} ago", duration(delta as f64))
    } else {
        format!("in {}", duration(-delta as f64))
    }
}

/// strftime's common part, in UTC: `%Y %m %d %H %M %S %j %%`; anything else stays as it is.
pub(super) fn format_time(epoch: i64, fmt: &str) -> String {
    let (y, mo, d, h, mi, s) = human::utc_parts(epoch);
    let day_of_year = epoch.div_euclid(86_400) - days_before_year(y) + 1;
    let mut out = String::new();
    let mut chars = fmt.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('Y') => out.push_str(&format!("{y:04}")),
            Some('m') => out.push_str(&format!("{mo:02}")),
            Some('d') => out.push_str(&format!("{d:02}")),
            Some('H') => out.push_str(&format!("{h:02}")),
            Some('M') => out.push_str(&format!("{mi:02}")),
            Some('S') => out.push_str(&format!("{s:02}")),
            Some('j') => out.push_str(&format!("{day_of_year:03}")),
            Some('%') => out.push('%'),
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
}

/// Days from 1970-01-01 to January 1st of `year`.
fn days_before_year(year: i64) -> i64 {
    let y = year - 1;
    let leap = |y: i64| y.div_euclid(4) - y.div_euclid(100) + y.div_euclid(400);
    365 * (year - 1970) + leap(y) - leap(1969)
}

/// Round half away from zero to `digits` decimals.
pub(super) fn round(x: f64, digits: u32) -> f64 {
    let f = 10f64.powi(digits as i32);
    (x * f).round() / f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_dates() {
        assert_eq!(duration(0.0), "0s");
        assert_eq!(duration(42.0), "42s");
        assert_eq!(duration(310.0), "5m 10s");
        assert_eq!(duration(3600.0), "1h");
        assert_eq!(duration(93_784.0), "1d 2h");
        assert_eq!(duration(7_260.0), "2h 1m");
        assert_eq!(duration(-90.0), "-1m 30s");
        assert_eq!(ago(1000, 1000 + 3 * 3600 + 300), "3h 5m ago");
        assert_eq!(ago(2000, 1400), "in 10m");
        assert_eq!(format_time(1_768_580_793, "%Y-%m-%d %H:%M:%S"), "2026-01-16 16:26:33");
        assert_eq!(format_time(1_768_580_793, "day %j, 100%% %q"), "day 016, 100% %q");
        assert_eq!(format_time(951_782_400, "%j"), "060");
        assert_eq!(round(2.345, 2), 2.35);
        assert_eq!(round(-2.5, 0), -3.0);
    }
}
