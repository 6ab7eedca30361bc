//! Hot reload: the plugins directory is watched, and every change (or a
//! `POST /plugins/reload`) rescans it. Unchanged plugins are kept as they
//! are, removed ones unloaded, and a file that does not load leaves its
//! previous version serving. New and changed components compile off the
//! serving path, several at once (`[sandbox] compile_concurrency`, with a
//! slot kept for small components): each goes live the moment its compile
//! ends, so a Rust plugin dropped in beside Python ones does not wait for
//! them, and a changed plugin's old version serves until its new one is
//! ready. The scan holds the reload lock for as long as it reads files, a
//! finished compile for as long as it swaps its plugin in; never while
//! compiling. Invocations already running finish on the version they
//! started with (they hold it).

use std::path::PathBuf;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;

use crate::compiling::{Outcome, Waiter, outcome};
use crate::parts::Host;
use autoheal_core::util::unix_now;
use autoheal_sandbox::registry::{Change, DirError, Pending, Planned, PluginSet, plan_dir};

/// Quiet time after the last file event before rescanning: a copy in
/// progress produces a burst of events, and one rescan after it is enough.
pub const DEBOUNCE: Duration = Duration::from_millis(50);

pub use autoheal_api::plugins::ReloadSummary;

/// Rescans the plugins directory, swaps in at once what needs no compile,
/// and returns once the compiles it asked for (or found under way) ended,
/// each swapped in as it ended.
pub async fn reload(host: &Host) -> Result<ReloadSummary, DirError> {
    let (mut summary, waiters) = rescan(host).await?;
    for waiter in waiters {
        match outcome(waiter).await {
            Outcome::Loaded {
                name,
                replaced: false,
            } => summary.loaded.push(name),
            Outcome::Loaded { name, replaced: true } => summary.replaced.push(name),
            Outcome::Rejected { file, reported: true } => summary.rejected.push(file),
            Outcome::Rejected { reported: false, .. } | Outcome::Superseded => {}
        }
    }
    summary.serving = host.remediator.plugins().len();
    Ok(summary)
}

/// The scan: what it changed at once, and the compiles to wait for.
async fn rescan(host: &Host) -> Result<(ReloadSummary, Vec<Waiter>), DirError> {
    // One scan at a time: the watcher, the endpoint and a compile that ended may all ask.
    let _guard = host.reload_lock.lock().await;
    let previous = host.remediator.plugins();
    let config = host.config.clone();
    let scanned = previous.clone();
    // Reading and hashing components of up to 64 MiB: off the async threads too.
    let plan = tokio::task::spawn_blocking(move || {
        plan_dir(&config.plugins_dir, config.manifest_bounds(), &scanned)
    })
    .await
    .expect("plugin scan does not panic")?;
    let (set, changes) = plan.serving_meanwhile(&previous);
    let pending: Vec<&str> = plan
        .files
        .iter()
        .filter(|(_, planned)| matches!(planned, Planned::Pending(_)))
        .map(|(file, _)| file.as_str())
        .collect();
    host.compiles.keep_only(&pending);
    host.startup.begin_scan(plan.files.len());
    let mut summary = ReloadSummary::default();
    for change in &changes {
        match change {
            Change::Unloaded(p) => summary.unloaded.push(p.manifest.name.clone()),
            Change::Rejected { rejection, .. } => summary.rejected.push(rejection.file.clone()),
            Change::Loaded(_) | Change::Replaced { .. } => {}
        }
    }
    swap_in(host, set, &changes);
    let total = plan.files.len();
    let mut waiters = Vec::new();
    for (position, (_, planned)) in plan.files.into_iter().enumerate() {
        if let Planned::Pending(pending) = planned {
            waiters.push(compile(host, *pending, position + 1, total));
        }
    }
    Ok((summary, waiters))
}

/// Starts compiling `pending` (unless the same version compiles already)
/// on a blocking thread; when it ends, its plugin (or its rejection) is
/// swapped into the set serving then.
fn compile(host: &Host, pending: Pending, position: usize, total: usize) -> Waiter {
    let file = pending.file.clone();
    let bytes = pending.component_bytes();
    let begun = host
        .compiles
        .begin(&file, pending.version_key(), &pending.manifest, bytes, unix_now());
    let (ticket, waiter) = match begun {
        Ok(begun) => begun,
        Err(under_way) => return under_way,
    };
    let name = pending.manifest.name.clone();
    host.startup.loading(&name, position, total, bytes);
    let host = host.clone();
    tokio::spawn(async move {
        let runtime = host.runtime.clone();
        let loaded = tokio::task::spawn_blocking(move || pending.load(&runtime))
            .await
            .expect("a compile does not panic");
        let _guard = host.reload_lock.lock().await;
        if !host.compiles.finish(&file, ticket.id) {
            tracing::info!(file = %file, "a newer scan superseded this compile; its result is dropped");
            let _ = ticket.done.send(Some(Outcome::Superseded));
            return;
        }
        let current = host.remediator.plugins();
        let (set, change) = match loaded {
            Ok(plugin) => {
                host.startup.loaded(&name, position, total, &plugin.component);
                current.with_loaded(plugin)
            }
            Err(e) => {
                host.startup.failed(&name);
                current.with_rejected(&file, e.to_string())
            }
        };
        let outcome = match &change {
            Some(Change::Loaded(p)) => Outcome::Loaded {
                name: p.manifest.name.clone(),
                replaced: false,
            },
            Some(Change::Replaced { new, .. }) => Outcome::Loaded {
                name: new.manifest.name.clone(),
                replaced: true,
            },
            Some(_) => Outcome::Rejected { file, reported: true },
            None => Outcome::Rejected {
                file,
                reported: false,
            },
        };
        swap_in(&host, set, change.as_slice());
        let _ = ticket.done.send(Some(outcome));
    });
    waiter
}

/// Records `changes` and makes `set` the one serving.
fn swap_in(host: &Host, set: PluginSet, changes: &[Change]) {
    crate::plugin_events::record_changes(&host.audit, changes);
    crate::plugin_events::warn_of_overlaps(&host.audit, &set, changes);
    host.remediator.set_plugins(set);
    if !changes.is_empty() {
        crate::maintenance::warn_of_unknown_plugins(&host.config.maintenance, &host.remediator.plugins());
        crate::memory::give_back_freed();
    }
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
            // Not waiting for the compiles it starts: a file dropped in
            // while they run is scanned (and compiled) at once.
            if let Err(e) = rescan(&host).await {
                tracing::error!(error = %e, "plugin reload failed");
            }
        }
    });
    tracing::info!(dir = %dir.display(), "watching plugins directory");
    Ok(DirWatch { _watcher: watcher })
}
