//! Whether the host is ready, and how far loading its plugins has come.
//! `autoheal serve` answers HTTP while the plugins compile (a first start
//! with an empty compile cache takes about a minute with the Python and
//! JavaScript plugins): meanwhile `POST /alert` answers 503 with
//! `Retry-After` (Alertmanager sends it again), `GET /` says `starting` and
//! how far it is, and `/metrics` and the switches already work.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use autoheal_core::util::unix_now;
use autoheal_sandbox::LoadedComponent;

/// How long Alertmanager is asked to wait before sending a webhook again
/// while the plugins load (`Retry-After`, seconds).
pub const RETRY_AFTER_SEC: &str = "5";

/// The host's readiness and its plugins' loading.
pub struct Startup {
    ready: AtomicBool,
    progress: Mutex<LoadProgress>,
    /// The plugins loading now (several compile at once), by position.
    loading: Mutex<Vec<(String, usize)>>,
}

pub use autoheal_api::status::LoadProgress;

impl Default for Startup {
    fn default() -> Self {
        Self::new()
    }
}

impl Startup {
    /// Not ready, nothing loaded yet.
    pub fn new() -> Self {
        Self {
            ready: AtomicBool::new(false),
            progress: Mutex::new(LoadProgress {
                since: unix_now(),
                ..Default::default()
            }),
            loading: Mutex::new(Vec::new()),
        }
    }

    /// Whether the plugins are loaded and the host acts on webhooks.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    pub(crate) fn set_ready(&self) {
        self.ready.store(true, Ordering::Release);
        self.lock().current = None;
    }

    /// How far loading has come.
    pub fn progress(&self) -> LoadProgress {
        self.lock().clone()
    }

    /// What the host is doing, for a person: the 503's message.
    pub fn describe(&self) -> String {
        let progress = self.progress();
        match &progress.current {
            Some(name) => format!(
                "autoheal is starting: loading plugin {name} ({}/{}); try again",
                progress.position, progress.total
            ),
            None => "autoheal is starting: loading its plugins; try again".to_owned(),
        }
    }

    /// A scan of `total` manifest files begins (while starting: how far
    /// loading has come counts against it).
    pub(crate) fn begin_scan(&self, total: usize) {
        if !self.is_ready() {
            self.lock().total = total;
        }
    }

    /// A new or changed plugin's component begins to compile (or to be
    /// read from the cache); logged, as a first start with an empty cache
    /// is slow and the log says why and how far it is.
    pub(crate) fn loading(&self, name: &str, position: usize, total: usize, component_bytes: usize) {
        tracing::info!(
            plugin = %name,
            "loading plugin {name} ({position}/{total}, {:.1} MB): compiling it, or reading the compile cache…",
            component_bytes as f64 / 1e6
        );
        if !self.is_ready() {
            let mut progress = self.lock();
            progress.position = position;
            progress.current = Some(name.to_owned());
            self.loading_now().push((name.to_owned(), position));
        }
    }

    /// That component is ready.
    pub(crate) fn loaded(&self, name: &str, position: usize, total: usize, component: &LoadedComponent) {
        let how = match &component.incremental {
            _ if component.from_cache => "read from the compile cache".to_owned(),
            Some(stats) => format!("compiled, {stats}"),
            None => "compiled".to_owned(),
        };
        let seconds = component.compile_ms as f64 / 1e3;
        let queued = component.queued_ms as f64 / 1e3;
        tracing::info!(plugin = %name, from_cache = component.from_cache, "plugin {name} ({position}/{total}) loaded in {seconds:.1} s, {how} (after {queued:.1} s waiting for a compile slot)");
        if !self.is_ready() {
            self.lock().loaded += 1;
            self.done(name);
        }
    }

    /// That component did not load (its rejection says why).
    pub(crate) fn failed(&self, name: &str) {
        if !self.is_ready() {
            self.done(name);
        }
    }

    /// `name` no longer loads: the one shown loading is the latest begun
    /// of those still loading.
    fn done(&self, name: &str) {
        let mut now = self.loading_now();
        now.retain(|(n, _)| n != name);
        let latest = now.last().cloned();
        drop(now);
        let mut progress = self.lock();
        match latest {
            Some((name, position)) => (progress.current, progress.position) = (Some(name), position),
            None => progress.current = None,
        }
    }

    fn loading_now(&self) -> std::sync::MutexGuard<'_, Vec<(String, usize)>> {
        self.loading.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LoadProgress> {
        self.progress.lock().unwrap_or_else(|p| p.into_inner())
    }
}
