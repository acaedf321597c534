//! PVE task ids: `UPID:{node}:{pid}:{pstart}:{starttime}:{type}:{id}:{user}:`.

use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upid {
    pub node: String,
    pub pid: u32,
    pub pstart: u64,
    pub starttime: u64,
    pub task_type: String,
    pub id: String,
    pub user: String,
    raw: String,
}

#[derive(Debug, Error, PartialEq, Eq)]
#[error("'{0}' is not a PVE task id (expected UPID:node:pid:pstart:starttime:type:id:user:)")]
pub struct UpidError(pub String);

impl Upid {
    pub fn parse(raw: &str) -> Result<Upid, UpidError> {
        let err = || UpidError(raw.chars().take(120).collect());
        let rest = raw.strip_prefix("UPID:").ok_or_else(err)?;
        let rest = rest.strip_suffix(':').ok_or_else(err)?;
        let parts: Vec<&str> = rest.split(':').collect();
        let [node, pid, pstart, starttime, task_type, id, user] = parts[..] else {
            return Err(err());
        };
        let hex = |s: &str, min: usize, max: usize| {
            (s.len() >= min && s.len() <= max && s.chars().all(|c| c.is_ascii_hexdigit()))
                .then(|| u64::from_str_radix(s, 16).ok())
                .flatten()
        };
        let node_ok = node.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
            && node.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !node.ends_with('-');
        let word_ok = |s: &str| !s.chars().any(|c| c.is_whitespace() || c == '/');
        if !node_ok || task_type.is_empty() || user.is_empty() || ![task_type, id, user].iter().all(|s| word_ok(s)) {
            return Err(err());
        }
        Ok(Upid {
            node: node.to_string(),
            pid: hex(pid, 8, 8).and_then(|v| u32::try_from(v).ok()).ok_or_else(err)?,
            pstart: hex(pstart, 8, 9).ok_or_else(err)?,
            starttime: hex(starttime, 8, 8).ok_or_else(err)?,
            task_type: task_type.to_string(),
            id: id.to_string(),
            user: user.to_string(),
            raw: raw.to_string(),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.raw
    }
}

impl std::fmt::Display for Upid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_pve_format() {
        let u = Upid::parse("UPID:node1:0012EBC1:05E31C50:66C27520:qmstart:100:root@pam!mcp:").unwrap();
        assert_eq!(u.node, "node1");
        assert_eq!(u.pid, 0x0012EBC1);
        assert_eq!(u.starttime, 0x66C27520);
        assert_eq!(u.task_type, "qmstart");
        assert_eq!(u.id, "100");
        assert_eq!(u.user, "root@pam!mcp");
        let empty_id = Upid::parse("UPID:pve-2:0012EBC1:105E31C50:66C27520:vzdump::root@pam:").unwrap();
        assert_eq!(empty_id.id, "");
        assert_eq!(empty_id.node, "pve-2");
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "",
            "UPID:node1:0012EBC1:05E31C50:66C27520:qmstart:100:root@pam",
            "UPID:node1:12EBC1:05E31C50:66C27520:qmstart:100:root@pam:",
            "UPID:../x:0012EBC1:05E31C50:66C27520:qmstart:100:root@pam:",
            "UPID:node1:0012EBC1:05E31C50:66C27520:qm/start:100:root@pam:",
            "UPID:-n:0012EBC1:05E31C50:66C27520:qmstart:100:root@pam:",
        ] {
            assert!(Upid::parse(bad).is_err(), "{bad}");
        }
    }
}
