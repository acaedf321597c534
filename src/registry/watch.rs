//! Hot reload: watch the user script directories and rebuild the registry on change.
//!
//! Folders are watched (not files), so editors that save through a temporary file and a
//! rename are seen. Events are debounced, then coalesced; a reload that changes nothing a
//! host can see (for example a body-only edit) does not notify.

use std::sync::Arc;
use std::time::Duration;

use notify::RecursiveMode;
use notify_debouncer_full::{DebounceEventResult, Debouncer, RecommendedCache, new_debouncer};

use super::{Registry, ReloadReport};

/// Debounce window for file events.
pub const DEBOUNCE: Duration = Duration::from_millis(150);

/// Keeps the watch alive; dropping it stops watching.
pub struct WatchGuard {
    _debouncer: Debouncer<notify::RecommendedWatcher, RecommendedCache>,
}

/// Watch every existing user directory. `on_reload` runs (on the tokio runtime) after each
/// reload with its report. A missing directory is a warning when `warn_missing`, else a
/// debug note; it never stops the server.
pub fn spawn(
    registry: Arc<Registry>,
    warn_missing: bool,
    on_reload: impl Fn(ReloadReport) + Send + Sync + 'static,
) -> Result<Option<WatchGuard>, notify::Error> {
    let existing: Vec<_> = registry.dirs().iter().filter(|d| d.is_dir()).cloned().collect();
    for dir in registry.dirs().iter().filter(|d| !d.is_dir()) {
        if warn_missing {
            tracing::warn!(
                "script directory {} does not exist; no user scripts are loaded from it",
                dir.display()
            );
        } else {
            tracing::debug!("default script directory {} does not exist", dir.display());
        }
    }
    if existing.is_empty() {
        return Ok(None);
    }
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let mut debouncer = new_debouncer(DEBOUNCE, None, move |res: DebounceEventResult| match res {
        Ok(events) => {
            let relevant = events.iter().any(|e| {
                e.paths
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
    for dir in &existing {
        debouncer.watch(dir, RecursiveMode::Recursive)?;
        tracing::info!("watching {} for script changes", dir.display());
    }
    let on_reload = Arc::new(on_reload);
    tokio::spawn(async move {
        while rx.recv().await.is_some() {
            while rx.try_recv().is_ok() {}
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
    Ok(Some(WatchGuard { _debouncer: debouncer }))
}
