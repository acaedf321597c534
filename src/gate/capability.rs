//! Capabilities: what a tool may do, and what a request needs.
//!
//! A tool declares a set (`"write"`, or `["write", "exec"]`); every request the gate classifies
//! needs a set too. `read` is always held. `destructive` covers `write`; `exec` and `admin`
//! cover nothing but themselves, so a tool that snapshots and then runs a command declares
//! both `write` and `exec`.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Capability {
    /// Look, change nothing.
    Read,
    /// Ordinary, reversible changes to guests (power, snapshots, config, clones, backups).
    Write,
    /// Loses data or state, or removes a protection: needs confirmation.
    Destructive,
    /// Runs code or places credentials inside a guest (`PVE_MCP_ENABLE_EXEC`).
    Exec,
    /// Administers hosts and the cluster: services, network, firewall, storage definitions,
    /// Ceph, HA, SDN, outgoing connections (`PVE_MCP_ENABLE_ADMIN`).
    Admin,
}

impl Capability {
    pub const ALL: [Capability; 5] = [
        Capability::Read,
        Capability::Write,
        Capability::Destructive,
        Capability::Exec,
        Capability::Admin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Capability::Read => "read",
            Capability::Write => "write",
            Capability::Destructive => "destructive",
            Capability::Exec => "exec",
            Capability::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Capability> {
        Capability::ALL.into_iter().find(|c| c.as_str() == s)
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl std::fmt::Display for Capability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of capabilities. The empty set means "read only".
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Capabilities(u8);

impl Capabilities {
    pub(crate) const READ: Capabilities = Capabilities(0);

    pub fn of(caps: &[Capability]) -> Capabilities {
        caps.iter().fold(Capabilities::READ, |s, c| s.with(*c))
    }

    /// Add a capability. `destructive` includes `write`, so the two sets
    /// `{destructive}` and `{write, destructive}` are the same set.
    pub fn with(self, c: Capability) -> Capabilities {
        match c {
            Capability::Read => self,
            Capability::Destructive => Capabilities(self.0 | c.bit() | Capability::Write.bit()),
            c => Capabilities(self.0 | c.bit()),
        }
    }

    pub(crate) fn union(self, other: Capabilities) -> Capabilities {
        Capabilities(self.0 | other.0)
    }

    pub fn has(self, c: Capability) -> bool {
        c == Capability::Read || self.0 & c.bit() != 0
    }

    /// Does a request needing `self` wait for an approval, where `approve` holds the
    /// capabilities that do? Only destructive, exec and admin requests can; `write` alone
    /// never does (the writes of a `confirm: true` tool are bound by their plan instead).
    pub(crate) fn calls_for_approval(self, approve: Capabilities) -> bool {
        [Capability::Destructive, Capability::Exec, Capability::Admin]
            .iter()
            .any(|c| self.has(*c) && approve.has(*c))
    }

    /// Nothing beyond reading.
    pub(crate) fn is_read(self) -> bool {
        self.0 == 0
    }

    /// The capabilities in the set, `read` alone for the empty set; `write` is left out
    /// when `destructive` (which includes it) is there.
    pub fn iter(self) -> impl Iterator<Item = Capability> {
        let read = self.is_read().then_some(Capability::Read);
        let destructive = self.has(Capability::Destructive);
        read.into_iter().chain(
            Capability::ALL
                .into_iter()
                .skip(1)
                .filter(move |c| self.has(*c) && !(destructive && *c == Capability::Write)),
        )
    }

    /// May a tool holding `self` make a request that needs `needs`?
    pub fn covers(self, needs: Capabilities) -> bool {
        needs.0 & !self.0 == 0
    }

    /// What `needs` asks for that `self` does not cover.
    pub fn missing(self, needs: Capabilities) -> Vec<Capability> {
        needs
            .iter()
            .filter(|c| !self.covers(Capabilities::READ.with(*c)))
            .collect()
    }

    /// `read`, or the names joined with `+` (`admin+destructive`).
    pub fn label(self) -> String {
        self.iter().map(Capability::as_str).collect::<Vec<_>>().join("+")
    }
}

impl std::fmt::Debug for Capabilities {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Capabilities({})", self.label())
    }
}

impl std::fmt::Display for Capabilities {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.label())
    }
}

impl Serialize for Capabilities {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let names: Vec<&str> = self.iter().map(Capability::as_str).collect();
        if let [one] = names.as_slice() {
            s.serialize_str(one)
        } else {
            names.serialize(s)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Capability::*;
    use super::*;

    #[test]
    fn destructive_covers_write_and_nothing_else_crosses() {
        let w = Capabilities::of(&[Write]);
        let d = Capabilities::of(&[Destructive]);
        let e = Capabilities::of(&[Exec]);
        let a = Capabilities::of(&[Admin]);
        assert!(Capabilities::READ.covers(Capabilities::READ));
        assert!(!Capabilities::READ.covers(w));
        assert!(d.covers(w) && !w.covers(d));
        for t in [w, d, a] {
            assert!(!t.covers(e), "{t} must not exec");
        }
        for t in [w, d, e] {
            assert!(!t.covers(a), "{t} must not administer");
        }
        assert!(!e.covers(w) && !a.covers(w));
        assert_eq!(Capabilities::of(&[Write, Destructive]), d);
        let ad = Capabilities::of(&[Admin, Destructive]);
        assert!(!a.covers(ad) && !d.covers(ad) && ad.covers(ad) && ad.covers(w));
        assert_eq!(Capabilities::of(&[Write, Exec]).missing(ad), vec![Destructive, Admin]);
    }

    #[test]
    fn labels_and_serialisation() {
        assert_eq!(Capabilities::READ.label(), "read");
        assert_eq!(Capabilities::of(&[Read]).label(), "read");
        assert_eq!(Capabilities::of(&[Destructive, Admin]).label(), "destructive+admin");
        assert_eq!(
            serde_json::to_value(Capabilities::of(&[Write])).ok(),
            Some("write".into())
        );
        assert_eq!(
            serde_json::to_value(Capabilities::of(&[Write, Exec])).ok(),
            Some(serde_json::json!(["write", "exec"]))
        );
        assert_eq!(Capability::parse("admin"), Some(Admin));
        assert_eq!(Capability::parse("root"), None);
    }
}
