//! Human-readable companions for raw values (`maxmem` → `maxmem_human`).

/// Field names whose numeric value PVE reports in bytes.
pub const BYTE_FIELDS: &[&str] = &[
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

/// Binary units with two decimals: `34359738368` → `"32.00 GiB"`.
pub fn human_bytes(bytes: f64) -> String {
    const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if !bytes.is_finite() {
        return "unknown".into();
    }
    let sign = if bytes < 0.0 { "-" } else { "" };
    let mut value = bytes.abs();
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

pub fn is_byte_field(name: &str) -> bool {
    BYTE_FIELDS.contains(&name)
}

#[cfg(test)]
mod tests {
    use super::*;

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
    }
}
