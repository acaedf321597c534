//! The registry once its first build is done. The server answers the MCP handshake while
//! the built-in and user scripts are read on a thread of their own; whatever needs the tools
//! (`tools/list`, a call, a resource) waits for that build.

use std::sync::Arc;

use tokio::sync::watch;

use super::Registry;

/// Where the registry will be, or is. Cheap to clone: every clone sees the same registry.
#[derive(Clone)]
pub(crate) struct RegistrySlot(watch::Receiver<Option<Arc<Registry>>>);

/// Fills a [`RegistrySlot`] once. Dropped without filling (its builder died), the slot
/// stays empty for good and [`RegistrySlot::ready`] says so.
pub(crate) struct RegistryFill(watch::Sender<Option<Arc<Registry>>>);

impl RegistrySlot {
    /// A slot holding `registry` already.
    pub(crate) fn ready_with(registry: Arc<Registry>) -> RegistrySlot {
        let (tx, rx) = watch::channel(Some(registry));
        // The receiver keeps the value; no more is ever sent.
        drop(tx);
        RegistrySlot(rx)
    }

    /// A slot that never holds a registry (no tools are in service).
    pub(crate) fn empty() -> RegistrySlot {
        let (_, rx) = watch::channel(None);
        RegistrySlot(rx)
    }

    /// A slot to be filled by the returned [`RegistryFill`].
    pub(crate) fn pending() -> (RegistryFill, RegistrySlot) {
        let (tx, rx) = watch::channel(None);
        (RegistryFill(tx), RegistrySlot(rx))
    }

    /// The registry, if it is built.
    pub(crate) fn current(&self) -> Option<Arc<Registry>> {
        self.0.borrow().clone()
    }

    /// The registry, once it is built; `None` if it never will be.
    pub(crate) async fn ready(&self) -> Option<Arc<Registry>> {
        if let Some(r) = self.current() {
            return Some(r);
        }
        let mut rx = self.0.clone();
        rx.wait_for(Option::is_some).await.ok()?.clone()
    }
}

impl std::fmt::Debug for RegistrySlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.current().is_some() {
            "RegistrySlot(built)"
        } else {
            "RegistrySlot(pending)"
        })
    }
}

impl RegistryFill {
    pub(crate) fn fill(self, registry: Arc<Registry>) {
        // Nobody waiting is fine: the slot's clones read it later.
        let _ = self.0.send(Some(registry));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_waiting_reader_gets_the_registry_once_it_is_filled() {
        let (fill, slot) = RegistrySlot::pending();
        assert!(slot.current().is_none());
        let reader = slot.clone();
        let waiting = tokio::spawn(async move { reader.ready().await.map(|r| r.dirs().len()) });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        fill.fill(Arc::new(Registry::with_builtins(vec!["/nonexistent".into()])));
        assert_eq!(waiting.await.ok().flatten(), Some(1));
        assert!(slot.current().is_some());
        assert!(
            RegistrySlot::ready_with(Arc::new(Registry::with_builtins(vec![])))
                .ready()
                .await
                .is_some()
        );
    }

    #[tokio::test]
    async fn a_slot_whose_builder_died_says_so_instead_of_waiting_forever() {
        let (fill, slot) = RegistrySlot::pending();
        drop(fill);
        assert!(slot.ready().await.is_none());
        assert!(RegistrySlot::empty().ready().await.is_none());
    }
}
