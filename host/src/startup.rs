//! Whether the host is ready, and how far loading its plugins has come.
//! `autoheal serve` answers HTTP while the plugins compile (a first start
//! with an empty compile cache takes about a minute with the Python and
//! JavaScript plugins): meanwhile `POST /alert` answers 503 with
//! `Retry-After` (Alertmanager sends it again), `GET /` says `starting` and
//! how far it is, and `/metrics` and the switches already work.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use autoheal_core::util::unix_now;
use autoheal_sandbox::registry::Progress;

/// How long Alertmanager is asked to wait before sending a webhook again
/// while the plugins load (`Retry-After`, seconds).
pub const RETRY_AFTER_SEC: &str = "5";

/// The host's readiness and its plugins' loading.
pub struct Startup {
    ready: AtomicBool,
    progress: Mutex<LoadProgress>,
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

    /// Notes a step of the plugin scan, and logs it: a first start with
    /// an empty cache is slow, and the log says why and how far it is.
    pub(crate) fn note(&self, step: &Progress<'_>) {
        let mut progress = self.lock();
        match *step {
            Progress::Loading {
                name,
                position,
                total,
                component_bytes,
            } => {
                (progress.position, progress.total) = (position, total);
                progress.current = Some(name.to_owned());
                tracing::info!(
                    plugin = %name,
                    "loading plugin {name} ({position}/{total}, {:.1} MB): compiling it, or reading the compile cache…",
                    component_bytes as f64 / 1e6
                );
            }
            Progress::Loaded {
                name,
                position,
                total,
                seconds,
                from_cache,
            } => {
                progress.loaded += 1;
                progress.current = None;
                let how = if from_cache {
                    "read from the compile cache"
                } else {
                    "compiled"
                };
                tracing::info!(plugin = %name, from_cache, "plugin {name} ({position}/{total}) loaded in {seconds:.1} s, {how}");
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LoadProgress> {
        self.progress.lock().unwrap_or_else(|p| p.into_inner())
    }
}
