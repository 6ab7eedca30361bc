//! The plugins whose components compile now, off the serving path: what
//! `GET /` lists as `plugin_compiling`, what an alert for a plugin not
//! loaded yet is kept for (`retry` `plugin_compiling`), and which compile
//! of a file is the one whose result counts (a newer version of the file,
//! or its removal, supersedes one under way).

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use autoheal_sandbox::manifest::Manifest;
use tokio::sync::watch;

/// How a compile ended, for the reloads that wait for it.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Its plugin serves.
    Loaded {
        /// The plugin.
        name: String,
        /// It replaced an earlier version.
        replaced: bool,
    },
    /// It did not load.
    Rejected {
        /// The manifest file.
        file: String,
        /// False when the same rejection was reported already.
        reported: bool,
    },
    /// A newer version of the file, or its removal, came first: dropped.
    Superseded,
}

/// A receiver of a compile's outcome (`None` until it ends).
pub type Waiter = watch::Receiver<Option<Outcome>>;

/// One plugin compiling.
#[derive(Debug, Clone)]
pub struct Compiling {
    /// The manifest's file name.
    pub file: String,
    /// Its manifest (the plugin it will be: name, version, `[match]`).
    pub manifest: Manifest,
    /// The component's size.
    pub component_bytes: usize,
    /// When its compile was asked for (unix seconds).
    pub since: f64,
    /// Which version of the file (see `Pending::version_key`).
    version: String,
    id: u64,
    done: Waiter,
}

/// The compiles under way, one per manifest file.
#[derive(Default)]
pub struct CompileBoard {
    next: AtomicU64,
    entries: Mutex<Vec<Compiling>>,
}

/// A compile to start: its id (for [`CompileBoard::finish`]) and where to
/// send its outcome.
pub struct Ticket {
    /// Which compile of its file this is.
    pub id: u64,
    /// Where its outcome goes.
    pub done: watch::Sender<Option<Outcome>>,
}

impl CompileBoard {
    fn entries(&self) -> std::sync::MutexGuard<'_, Vec<Compiling>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The plugins compiling now, oldest first.
    pub fn list(&self) -> Vec<Compiling> {
        let mut list = self.entries().clone();
        list.sort_by(|a, b| a.since.total_cmp(&b.since).then_with(|| a.file.cmp(&b.file)));
        list
    }

    /// A compile of `version` of `file`: the one under way for it already
    /// (`Err`, its outcome to wait for), or a new one (`Ok`) that
    /// supersedes any other of the file.
    pub fn begin(
        &self,
        file: &str,
        version: String,
        manifest: &Manifest,
        component_bytes: usize,
        now: f64,
    ) -> Result<(Ticket, Waiter), Waiter> {
        let mut entries = self.entries();
        if let Some(same) = entries.iter().find(|e| e.file == file && e.version == version) {
            return Err(same.done.clone());
        }
        entries.retain(|e| e.file != file);
        let (tx, rx) = watch::channel(None);
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        entries.push(Compiling {
            file: file.to_owned(),
            manifest: manifest.clone(),
            component_bytes,
            since: now,
            version,
            id,
            done: rx.clone(),
        });
        Ok((Ticket { id, done: tx }, rx))
    }

    /// Drops the compiles of files not in `pending` (changed back to the
    /// version serving, broken, or removed): their results will not count.
    pub fn keep_only(&self, pending: &[&str]) {
        self.entries().retain(|e| pending.contains(&e.file.as_str()));
    }

    /// The compile `id` of `file` ended: true (and it leaves the board)
    /// when its result is the one that counts.
    pub fn finish(&self, file: &str, id: u64) -> bool {
        let mut entries = self.entries();
        let before = entries.len();
        entries.retain(|e| !(e.file == file && e.id == id));
        entries.len() < before
    }
}

/// Waits for a compile's outcome; a compile whose task ended without one
/// (it panicked) counts as superseded.
pub async fn outcome(mut waiter: Waiter) -> Outcome {
    match waiter.wait_for(Option::is_some).await {
        Ok(done) => done.clone().unwrap_or(Outcome::Superseded),
        Err(_) => Outcome::Superseded,
    }
}

#[cfg(test)]
impl Compiling {
    /// A board entry for `manifest`, for unit tests of what reads the board.
    pub(crate) fn for_test(manifest: Manifest) -> Self {
        Self {
            file: "x.toml".into(),
            manifest,
            component_bytes: 0,
            since: 0.0,
            version: String::new(),
            id: 0,
            done: watch::channel(None).1,
        }
    }
}
