//! Plans already carried out: a plan's approval is good for one run.

use std::collections::HashMap;
use std::sync::Mutex;

/// The ids of plans whose confirmed run has begun, until the plans expire.
#[derive(Debug, Default)]
pub(crate) struct SpentPlans {
    ids: Mutex<HashMap<String, u64>>,
}

impl SpentPlans {
    /// Mark a plan as carried out; false if it already was. `expires` (seconds since the
    /// epoch) is when the id may be forgotten: its token no longer verifies then.
    pub(crate) fn spend(&self, id: &str, expires: u64, now: u64) -> bool {
        let mut ids = self.ids.lock().unwrap_or_else(|p| p.into_inner());
        ids.retain(|_, exp| *exp >= now);
        if ids.contains_key(id) {
            return false;
        }
        ids.insert(id.to_string(), expires);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_is_spent_once_and_forgotten_after_it_expires() {
        let s = SpentPlans::default();
        assert!(s.spend("a", 100, 10));
        assert!(!s.spend("a", 100, 20));
        assert!(s.spend("b", 100, 20));
        // After expiry the id is forgotten (its token is refused as expired anyway).
        assert!(s.spend("a", 300, 200));
    }
}
