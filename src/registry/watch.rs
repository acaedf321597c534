//! Hot reload: watch the user script directories and rebuild the registry on change.
//!
//! Folders are watched (not files), so editors that save through a temporary file and a
//! rename are seen. Events are debounced, then coalesced; a reload that changes nothing a
//! host can see (for example a body-only edit) does not notify. A directory that does not
//! exist yet is awaited: its nearest existing ancestor is watched, and once the directory
//! appears it is watched and loaded like the others.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use notify::RecursiveMode;
use notify::event::{AccessKind, AccessMode, EventKind, ModifyKind};
use notify_debouncer_full::{DebounceEventResult, Debouncer, RecommendedCache, new_debouncer};

use super::{Registry, ReloadReport};

/// Debounce window for file events.
pub(crate) const DEBOUNCE: Duration = Duration::from_millis(150);

type Deb = Debouncer<notify::RecommendedWatcher, RecommendedCache>;

/// Keeps the watch alive; dropping it stops watching.
pub(crate) struct WatchGuard {
    _watches: Arc<Mutex<Watches>>,
}

/// What is being watched, and how.
struct Watches {
    debouncer: Deb,
    /// Script directories watched recursively.
    dirs: BTreeSet<PathBuf>,
    /// Ancestors of missing script directories, watched for their creation.
    ancestors: BTreeSet<PathBuf>,
}

impl Watches {
    /// Watch every script directory that exists now, and the nearest existing ancestor of
    /// each one that does not. The reload that follows reads what a new directory holds.
    fn refresh(&mut self, wanted: &[PathBuf]) {
        for dir in wanted {
            if self.dirs.contains(dir) {
                continue;
            }
            if dir.is_dir() {
                match self.debouncer.watch(dir, RecursiveMode::Recursive) {
                    Ok(()) => {
                        tracing::info!("watching {} for script changes", dir.display());
                        self.dirs.insert(dir.clone());
                    }
                    Err(e) => tracing::warn!("cannot watch {}: {e}", dir.display()),
                }
            } else if let Some(anc) = nearest_existing(dir)
                && !self.ancestors.contains(&anc)
            {
                match self.debouncer.watch(&anc, RecursiveMode::NonRecursive) {
                    Ok(()) => {
                        tracing::debug!("waiting for {} to appear (watching {})", dir.display(), anc.display());
                        self.ancestors.insert(anc);
                    }
                    Err(e) => tracing::debug!("cannot watch {}: {e}", anc.display()),
                }
            }
        }
    }
}

/// Can this event change what a reload reads? Opening, reading and closing a file (which
/// every reload does) and metadata-only changes cannot; a reload on them would trigger the
/// next one, forever.
fn changes_content(kind: &EventKind) -> bool {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        EventKind::Modify(ModifyKind::Metadata(_)) => false,
        EventKind::Any | EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_) | EventKind::Other => true,
    }
}

fn nearest_existing(dir: &Path) -> Option<PathBuf> {
    dir.ancestors().skip(1).find(|a| a.is_dir()).map(Path::to_path_buf)
}

/// Watch the user directories. `on_reload` runs (on the tokio runtime) after each reload
/// with its report. A missing directory is a warning when `warn_missing`, else a debug note;
/// it never stops the server, and it is picked up when it is created. A first pass runs at
/// once, as an event would: what was saved or created before the watch began is seen.
pub(crate) fn spawn(
    registry: Arc<Registry>,
    warn_missing: bool,
    on_reload: impl Fn(ReloadReport) + Send + Sync + 'static,
) -> Result<Option<WatchGuard>, notify::Error> {
    let wanted: Vec<PathBuf> = registry.dirs().to_vec();
    if wanted.is_empty() {
        return Ok(None);
    }
    for dir in wanted.iter().filter(|d| !d.is_dir()) {
        if warn_missing {
            tracing::warn!(
                "script directory {} does not exist yet; its scripts load once it is created",
                dir.display()
            );
        } else {
            tracing::debug!("default script directory {} does not exist", dir.display());
        }
    }
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let catch_up = tx.clone();
    let debouncer = new_debouncer(DEBOUNCE, None, move |res: DebounceEventResult| match res {
        Ok(events) => {
            let relevant = events.iter().any(|e| {
                changes_content(&e.kind)
                    && e.paths
                        .iter()
                        .any(|p| p.extension().is_some_and(|x| x == "rhai") || p.extension().is_none())
            });
            if relevant {
                let _ = tx.send(());
            }
        }
        Err(errors) => {
            for e in errors {
                tracing::warn!("watching scripts: {e}");
            }
        }
    })?;
    let watches = Arc::new(Mutex::new(Watches {
        debouncer,
        dirs: BTreeSet::new(),
        ancestors: BTreeSet::new(),
    }));
    watches.lock().unwrap_or_else(|p| p.into_inner()).refresh(&wanted);
    // The registry was read before the watch began: one pass now looks again at what was
    // saved or created since (a directory that appeared while its ancestor was being
    // watched, a script saved in between), as an event would.
    let _ = catch_up.send(());
    let on_reload = Arc::new(on_reload);
    let task_watches = watches.clone();
    tokio::spawn(async move {
        while rx.recv().await.is_some() {
            while rx.try_recv().is_ok() {}
            // A directory being awaited may have appeared (or come a level closer).
            task_watches.lock().unwrap_or_else(|p| p.into_inner()).refresh(&wanted);
            tracing::debug!("script files changed; reloading");
            let reg = registry.clone();
            match tokio::task::spawn_blocking(move || reg.reload()).await {
                Ok(report) => {
                    for p in &report.new_problems {
                        tracing::warn!("{}: {p}", p.origin);
                    }
                    on_reload(report);
                }
                Err(e) => tracing::error!("script reload failed: {e}"),
            }
        }
    });
    Ok(Some(WatchGuard { _watches: watches }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{CreateKind, DataChange, MetadataKind, RemoveKind, RenameMode};

    #[test]
    fn only_content_changes_reload() {
        for kind in [
            EventKind::Create(CreateKind::File),
            EventKind::Modify(ModifyKind::Data(DataChange::Any)),
            EventKind::Modify(ModifyKind::Name(RenameMode::Both)),
            EventKind::Remove(RemoveKind::File),
            EventKind::Access(AccessKind::Close(AccessMode::Write)),
        ] {
            assert!(changes_content(&kind), "{kind:?}");
        }
        for kind in [
            EventKind::Access(AccessKind::Open(AccessMode::Any)),
            EventKind::Access(AccessKind::Close(AccessMode::Read)),
            EventKind::Access(AccessKind::Read),
            EventKind::Modify(ModifyKind::Metadata(MetadataKind::AccessTime)),
        ] {
            assert!(!changes_content(&kind), "{kind:?}");
        }
    }
}
