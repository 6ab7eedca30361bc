//! The kill switch and dry-run as the running host has them: configured at
//! start, flipped by an operator at runtime, and kept across restarts in a
//! small state file beside the audit trail (`switches.json`).
//!
//! A flip is written to the file (temporary file, fsync, rename) before it
//! takes effect, so a crash never leaves the host in a mode the file does
//! not say. At start the file, when present, wins over the config: an
//! operator who turned actions off at 3 a.m. does not see them come back on
//! with the next deploy.
//!
//! The real-mode interlock lives here too: a host whose webhook takes no
//! credentials (see [`crate::config::Auth::allows_real`]) never reaches
//! real mode, whoever asks — an operator's flip or a replica adopting the
//! cluster's switches. The check is made on the state a change would leave,
//! under the same lock that applies it: two flips that are each safe alone
//! (`enabled = true` while in dry-run, `dry_run = false` while disabled)
//! can no longer pass their checks side by side and then make real mode
//! together, nor leave it in the file for the next start to refuse.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Serialize};

use autoheal_core::event::{ActedBy, ModeChanged};
use autoheal_core::mode::{DryRunReason, ExecutionMode};

/// What the state file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwitchState {
    /// The kill switch.
    pub enabled: bool,
    /// Record instead of execute.
    pub dry_run: bool,
}

/// The state file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum SwitchError {
    /// Reading, writing or renaming failed.
    #[error("switch state file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the filesystem said.
        source: std::io::Error,
    },
    /// The change would run actions for real, and the webhook is open.
    #[error(
        "refusing to run actions for real while POST /alert takes no credentials: set \
         AUTOHEAL_WEBHOOK_TOKEN first (or [auth] allow_unauthenticated_real = true)"
    )]
    RealRefused,
    /// The file is not `{"enabled": ..., "dry_run": ...}`.
    #[error("switch state file {path} is not valid: {message}; remove it to start from the config")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        message: String,
    },
}

/// The switches of a running host.
pub struct Switches {
    enabled: AtomicBool,
    dry_run: AtomicBool,
    path: PathBuf,
    /// Whether real mode may be set at all ([`crate::config::Auth::allows_real`]).
    real_allowed: bool,
    /// One change at a time, checked and applied under it, so that the
    /// file, the flags and the interlock agree.
    writing: Mutex<()>,
}

/// What one change did: the switches just before and just after it, both
/// read under its lock (a concurrent change cannot slip in between).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    /// Before the change.
    pub before: SwitchState,
    /// After it.
    pub after: SwitchState,
}

impl Change {
    /// The `mode_changed` that records this change, by `actor`.
    pub fn event(&self, actor: ActedBy) -> ModeChanged {
        let (before, after) = (self.before, self.after);
        ModeChanged {
            by: actor.by,
            by_comment: actor.by_comment,
            by_kind: actor.by_kind,
            by_name: actor.by_name,
            dry_run: after.dry_run,
            enabled: after.enabled,
            mode: after.mode().0,
            previous_dry_run: before.dry_run,
            previous_enabled: before.enabled,
        }
    }
}

impl SwitchState {
    /// Real only when enabled and not in dry-run; otherwise why not.
    pub fn mode(self) -> (ExecutionMode, Option<DryRunReason>) {
        ExecutionMode::from_switches(self.enabled, self.dry_run)
    }
}

impl Switches {
    /// The state file beside `audit_path`.
    pub fn path_for(audit_path: &Path) -> PathBuf {
        audit_path.with_file_name("switches.json")
    }

    /// The switches from the state file at `path` if there is one (and
    /// `true` for "restored"), else `configured`. `real_allowed` is the
    /// interlock every later change is held to; what is loaded is not
    /// (the start-up refuses an unsafe file itself, saying how to fix it).
    pub fn load(
        path: PathBuf,
        configured: SwitchState,
        real_allowed: bool,
    ) -> Result<(Switches, bool), SwitchError> {
        let (state, restored) = match std::fs::read(&path) {
            Ok(bytes) => {
                let state: SwitchState =
                    serde_json::from_slice(&bytes).map_err(|e| SwitchError::Invalid {
                        path: path.clone(),
                        message: e.to_string(),
                    })?;
                (state, true)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (configured, false),
            Err(source) => return Err(SwitchError::Io { path, source }),
        };
        let switches = Switches {
            enabled: AtomicBool::new(state.enabled),
            dry_run: AtomicBool::new(state.dry_run),
            path,
            real_allowed,
            writing: Mutex::new(()),
        };
        Ok((switches, restored))
    }

    /// Both switches now.
    pub fn state(&self) -> SwitchState {
        SwitchState {
            enabled: self.enabled.load(Ordering::SeqCst),
            dry_run: self.dry_run.load(Ordering::SeqCst),
        }
    }

    /// Real only when enabled and not in dry-run; otherwise why not.
    pub fn mode(&self) -> (ExecutionMode, Option<DryRunReason>) {
        self.state().mode()
    }

    /// Sets the switches given, persisting first, unless the result would
    /// run actions for real while that is not allowed
    /// ([`SwitchError::RealRefused`], and nothing changes). The check reads
    /// the state under the lock that applies the change: it judges exactly
    /// what the change leaves.
    pub fn set(&self, enabled: Option<bool>, dry_run: Option<bool>) -> Result<Change, SwitchError> {
        let _one_at_a_time = self.writing.lock().unwrap_or_else(|p| p.into_inner());
        let before = self.state();
        let after = SwitchState {
            enabled: enabled.unwrap_or(before.enabled),
            dry_run: dry_run.unwrap_or(before.dry_run),
        };
        if after.mode().0 == ExecutionMode::Real && !self.real_allowed {
            return Err(SwitchError::RealRefused);
        }
        self.persist(after)?;
        self.enabled.store(after.enabled, Ordering::SeqCst);
        self.dry_run.store(after.dry_run, Ordering::SeqCst);
        Ok(Change { before, after })
    }

    fn persist(&self, state: SwitchState) -> Result<(), SwitchError> {
        use std::io::Write;
        let io = |source| SwitchError::Io {
            path: self.path.clone(),
            source,
        };
        let temporary = self.path.with_extension("json.tmp");
        let mut file = std::fs::File::create(&temporary).map_err(io)?;
        file.write_all(&serde_json::to_vec(&state).expect("two booleans serialize"))
            .map_err(io)?;
        file.sync_all().map_err(io)?;
        std::fs::rename(&temporary, &self.path).map_err(io)?;
        // The rename is durable once the directory is.
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flip_is_persisted_and_wins_over_the_config_at_the_next_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = Switches::path_for(&dir.path().join("audit.jsonl"));
        let configured = SwitchState {
            enabled: true,
            dry_run: false,
        };
        let (switches, restored) = Switches::load(path.clone(), configured, true).unwrap();
        assert!(!restored);
        assert_eq!(switches.mode().0, ExecutionMode::Real);
        let change = switches.set(Some(false), None).unwrap();
        assert_eq!(change.before, configured);
        assert_eq!(change.after, switches.state());
        assert_eq!(
            switches.mode(),
            (ExecutionMode::DryRun, Some(DryRunReason::Disabled))
        );

        let (again, restored) = Switches::load(path.clone(), configured, true).unwrap();
        assert!(restored);
        assert_eq!(
            again.state(),
            SwitchState {
                enabled: false,
                dry_run: false
            }
        );

        std::fs::write(&path, "{broken").unwrap();
        let err = Switches::load(path, configured, true).err().unwrap().to_string();
        assert!(
            err.contains("switches.json") && err.contains("remove it"),
            "{err}"
        );
    }

    fn safe() -> SwitchState {
        SwitchState {
            enabled: false,
            dry_run: true,
        }
    }

    fn saved(path: &Path) -> SwitchState {
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    }

    #[test]
    fn real_mode_is_refused_when_not_allowed_and_nothing_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = Switches::path_for(&dir.path().join("audit.jsonl"));
        let (switches, _) = Switches::load(path.clone(), safe(), false).unwrap();
        // Each half alone is safe.
        switches.set(Some(true), None).unwrap();
        let err = switches.set(None, Some(false)).unwrap_err();
        assert!(matches!(err, SwitchError::RealRefused), "{err}");
        assert!(err.to_string().contains("AUTOHEAL_WEBHOOK_TOKEN"), "{err}");
        let held = SwitchState {
            enabled: true,
            dry_run: true,
        };
        assert_eq!((switches.state(), saved(&path)), (held, held));
        // Both at once (a replica adopting the cluster's switches) too.
        assert!(switches.set(Some(true), Some(false)).is_err());
        assert_eq!(switches.state(), held);
        // Leaving real mode's way is always open.
        switches.set(Some(false), Some(false)).unwrap();
        assert_eq!(switches.mode().1, Some(DryRunReason::Disabled));
    }

    #[test]
    fn concurrent_halves_never_make_real_mode_together() {
        let dir = tempfile::tempdir().unwrap();
        let path = Switches::path_for(&dir.path().join("audit.jsonl"));
        let (switches, _) = Switches::load(path.clone(), safe(), false).unwrap();
        for _ in 0..20 {
            switches.set(Some(false), Some(true)).unwrap();
            let start = std::sync::Barrier::new(8);
            std::thread::scope(|scope| {
                for i in 0..8 {
                    let (switches, start) = (&switches, &start);
                    scope.spawn(move || {
                        start.wait();
                        let flip = if i % 2 == 0 {
                            switches.set(Some(true), None)
                        } else {
                            switches.set(None, Some(false))
                        };
                        match flip {
                            Ok(change) => assert_ne!(change.after.mode().0, ExecutionMode::Real),
                            Err(e) => assert!(matches!(e, SwitchError::RealRefused), "{e}"),
                        }
                    });
                }
            });
            assert_ne!(switches.mode().0, ExecutionMode::Real);
            assert_ne!(saved(&path).mode().0, ExecutionMode::Real);
        }
    }
}
