//! Human-readable companions for raw values (`maxmem` → `maxmem_human`).

/// Field names whose numeric value PVE reports in bytes.
pub(crate) const BYTE_FIELDS: &[&str] = &[
    "avail",
    "disk",
    "diskread",
    "diskwrite",
    "free",
    "maxdisk",
    "maxmem",
    "maxswap",
    "mem",
    "memhost",
    "netin",
    "netout",
    "size",
    "swap",
    "total",
    "used",
];

const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];

/// Binary units with two decimals: `34359738368` → `"32.00 GiB"`.
pub(crate) fn human_bytes(bytes: f64) -> String {
    if !bytes.is_finite() {
        return "unknown".into();
    }
    let sign = if bytes < 0.0 { "-" } else { "" };
    let abs = bytes.abs();
    // Whole numbers that f64 holds exactly (every byte count PVE sends).
    if abs.fract() == 0.0 && abs < 9_007_199_254_740_992.0 {
        return whole_bytes(sign, abs as u64);
    }
    float_bytes(sign, abs)
}

fn float_bytes(sign: &str, mut value: f64) -> String {
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{sign}{value:.0} B")
    } else {
        format!("{sign}{value:.2} {}", UNITS[unit])
    }
}

/// [`float_bytes`] of a whole number of bytes in integer arithmetic: the same text (`{:.2}`
/// rounds the exact quotient to the nearest hundredth, ties to even), without formatting a
/// float, which was most of what a listing's `*_human` companions cost.
fn whole_bytes(sign: &str, n: u64) -> String {
    let mut unit = 0;
    while unit + 1 < UNITS.len() && n >> (10 * (unit + 1)) > 0 {
        unit += 1;
    }
    if unit == 0 {
        return format!("{sign}{n} B");
    }
    let scale = 1u128 << (10 * unit);
    let hundredths = u128::from(n) * 100;
    let (mut q, r) = (hundredths / scale, hundredths % scale);
    if r * 2 > scale || (r * 2 == scale && q % 2 == 1) {
        q += 1;
    }
    format!("{sign}{}.{:02} {}", q / 100, q % 100, UNITS[unit])
}

pub(crate) fn is_byte_field(name: &str) -> bool {
    BYTE_FIELDS.contains(&name)
}

/// Field names whose value PVE reports as epoch seconds.
pub(crate) const TIME_FIELDS: &[&str] = &["ctime", "endtime", "snaptime", "starttime"];

pub(crate) fn is_time_field(name: &str) -> bool {
    TIME_FIELDS.contains(&name)
}

/// The companions a field gains when picked: `KEY_human` for a byte count (`number`), `KEY_iso`
/// for an epoch time (`int`, when positive).
pub(crate) fn companions(key: &str, number: Option<f64>, int: Option<i64>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if is_byte_field(key)
        && let Some(b) = number
    {
        out.push((format!("{key}_human"), human_bytes(b)));
    }
    if is_time_field(key)
        && let Some(secs) = int
        && secs > 0
    {
        out.push((format!("{key}_iso"), iso_time(secs)));
    }
    out
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian.
pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Epoch seconds → (year, month, day, hour, minute, second) in UTC.
pub fn utc_parts(secs: i64) -> (i64, u32, u32, i64, i64, i64) {
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let r = secs.rem_euclid(86_400);
    (y, m, d, r / 3600, r % 3600 / 60, r % 60)
}

/// Epoch seconds → ISO-8601 in UTC: `1768580793` → `"2026-01-16T16:26:33Z"`.
pub(crate) fn iso_time(secs: i64) -> String {
    let (y, m, d, h, mi, s) = utc_parts(secs);
    format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_bytes_read_as_the_float_formatting_does() {
        let mut samples: Vec<u64> = (0..70_000).collect();
        // Ties at every unit (1.125 KiB rounds to even: 1.12), each side of every unit, and
        // a spread of large values.
        for unit in 1..7u32 {
            let scale = 1u64 << (10 * unit);
            for k in [1u64, 3, 5, 9, 11, 13, 1023, 1024, 1025] {
                let tie = (scale / 8).saturating_mul(k);
                samples.extend([
                    tie.saturating_sub(1),
                    tie,
                    tie.saturating_add(1),
                    scale - 1,
                    scale,
                    scale + 1,
                ]);
            }
        }
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..200_000 {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            samples.push((x >> 11) >> (x % 40));
        }
        for n in samples.into_iter().filter(|n| *n < 1 << 53) {
            assert_eq!(whole_bytes("", n), float_bytes("", n as f64), "{n} bytes");
        }
        assert_eq!(human_bytes(1152.0), "1.12 KiB");
        assert_eq!(human_bytes(1408.0), "1.38 KiB");
        assert_eq!(human_bytes(1536.5), "1.50 KiB");
    }

    #[test]
    fn formats() {
        assert_eq!(human_bytes(0.0), "0 B");
        assert_eq!(human_bytes(1023.0), "1023 B");
        assert_eq!(human_bytes(1024.0), "1.00 KiB");
        assert_eq!(human_bytes(34359738368.0), "32.00 GiB");
        assert_eq!(human_bytes(1610612736.0), "1.50 GiB");
        assert_eq!(human_bytes(-2048.0), "-2.00 KiB");
        assert_eq!(human_bytes(f64::NAN), "unknown");
        assert!(is_byte_field("maxmem") && !is_byte_field("vmid"));
        assert_eq!(iso_time(1768580793), "2026-01-16T16:26:33Z");
        assert_eq!(iso_time(0), "1970-01-01T00:00:00Z");
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }
}
