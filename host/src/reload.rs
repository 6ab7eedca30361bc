//! Hot reload: the plugins directory is watched, and every change (or a
//! `POST /plugins/reload`) rescans it. Unchanged plugins are kept as they
//! are, new and changed ones are loaded, removed ones unloaded, and a file
//! that does not load leaves its previous version serving. The new set is
//! swapped in at once; invocations already running finish on the version
//! they started with (they hold it).

use std::path::PathBuf;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;

use crate::app::Host;
use autoheal_sandbox::registry::{Change, DirError, scan_dir};

/// Quiet time after the last file event before rescanning: a copy in
/// progress produces a burst of events, and one rescan after it is enough.
pub const DEBOUNCE: Duration = Duration::from_millis(50);

pub use autoheal_api::plugins::ReloadSummary;

/// Rescans the plugins directory and swaps in the result.
pub async fn reload(host: &Host) -> Result<ReloadSummary, DirError> {
    // One rescan at a time: the watcher and the endpoint may both ask.
    let _guard = host.reload_lock.lock().await;
    let previous = host.remediator.plugins();
    let (runtime, config) = (host.runtime.clone(), host.config.clone());
    let scan = tokio::task::spawn_blocking(move || {
        scan_dir(&runtime, &config.plugins_dir, config.manifest_bounds(), &previous)
    })
    .await
    .expect("plugin scan does not panic")?;
    crate::plugin_events::record_changes(&host.audit, &scan.changes);
    let mut summary = ReloadSummary {
        serving: scan.set.len(),
        ..Default::default()
    };
    for change in &scan.changes {
        match change {
            Change::Loaded(p) => summary.loaded.push(p.manifest.name.clone()),
            Change::Replaced { new, .. } => summary.replaced.push(new.manifest.name.clone()),
            Change::Unloaded(p) => summary.unloaded.push(p.manifest.name.clone()),
            Change::Rejected { rejection, .. } => summary.rejected.push(rejection.file.clone()),
        }
    }
    if !scan.changes.is_empty() {
        crate::plugin_events::warn_of_overlaps(&host.audit, &scan.set);
    }
    host.remediator.set_plugins(scan.set);
    crate::maintenance::warn_of_unknown_plugins(&host.config.maintenance, &host.remediator.plugins());
    if !scan.changes.is_empty() {
        crate::memory::give_back_freed();
    }
    Ok(summary)
}

/// Keeps the directory watch alive; dropping it stops watching.
pub struct DirWatch {
    _watcher: notify::RecommendedWatcher,
}

/// Watches the plugins directory and reloads after each burst of changes.
pub fn watch(host: Host) -> notify::Result<DirWatch> {
    let dir: PathBuf = host.config.plugins_dir.clone();
    let (tx, mut rx) = mpsc::unbounded_channel::<()>();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let interesting = event.is_ok_and(|e| !matches!(e.kind, notify::EventKind::Access(_)));
        if interesting {
            let _ = tx.send(());
        }
    })?;
    watcher.watch(&dir, RecursiveMode::NonRecursive)?;
    tokio::spawn(async move {
        while rx.recv().await.is_some() {
            // Debounce: wait until the directory has been quiet for a moment.
            while let Ok(Some(())) = tokio::time::timeout(DEBOUNCE, rx.recv()).await {}
            if let Err(e) = reload(&host).await {
                tracing::error!(error = %e, "plugin reload failed");
            }
        }
    });
    tracing::info!(dir = %dir.display(), "watching plugins directory");
    Ok(DirWatch { _watcher: watcher })
}
