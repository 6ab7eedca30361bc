//! The kill switch and dry-run as the running host has them: configured at
//! start, flipped by an operator at runtime, and kept across restarts in a
//! small state file beside the audit trail (`switches.json`).
//!
//! A flip is written to the file (temporary file, fsync, rename) before it
//! takes effect, so a crash never leaves the host in a mode the file does
//! not say. At start the file, when present, wins over the config: an
//! operator who turned actions off at 3 a.m. does not see them come back on
//! with the next deploy.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Serialize};

use autoheal_core::event::ModeChanged;
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
    /// One flip at a time, so that the file and the flags agree.
    writing: Mutex<()>,
}

impl Switches {
    /// The state file beside `audit_path`.
    pub fn path_for(audit_path: &Path) -> PathBuf {
        audit_path.with_file_name("switches.json")
    }

    /// The switches from the state file at `path` if there is one (and
    /// `true` for "restored"), else `configured`.
    pub fn load(path: PathBuf, configured: SwitchState) -> Result<(Switches, bool), SwitchError> {
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
        let state = self.state();
        ExecutionMode::from_switches(state.enabled, state.dry_run)
    }

    /// The `mode_changed` that says the switches went from `before` to how
    /// they are now, by `by`.
    pub fn changed_since(&self, before: SwitchState, by: Option<String>) -> ModeChanged {
        let after = self.state();
        ModeChanged {
            by,
            dry_run: after.dry_run,
            enabled: after.enabled,
            mode: self.mode().0,
            previous_dry_run: before.dry_run,
            previous_enabled: before.enabled,
        }
    }

    /// Sets the switches given, persisting first; returns the state before.
    pub fn set(&self, enabled: Option<bool>, dry_run: Option<bool>) -> Result<SwitchState, SwitchError> {
        let _one_at_a_time = self.writing.lock().unwrap_or_else(|p| p.into_inner());
        let before = self.state();
        let after = SwitchState {
            enabled: enabled.unwrap_or(before.enabled),
            dry_run: dry_run.unwrap_or(before.dry_run),
        };
        self.persist(after)?;
        self.enabled.store(after.enabled, Ordering::SeqCst);
        self.dry_run.store(after.dry_run, Ordering::SeqCst);
        Ok(before)
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
        let (switches, restored) = Switches::load(path.clone(), configured).unwrap();
        assert!(!restored);
        assert_eq!(switches.mode().0, ExecutionMode::Real);
        let before = switches.set(Some(false), None).unwrap();
        assert_eq!(before, configured);
        assert_eq!(
            switches.mode(),
            (ExecutionMode::DryRun, Some(DryRunReason::Disabled))
        );

        let (again, restored) = Switches::load(path.clone(), configured).unwrap();
        assert!(restored);
        assert_eq!(
            again.state(),
            SwitchState {
                enabled: false,
                dry_run: false
            }
        );

        std::fs::write(&path, "{broken").unwrap();
        let err = Switches::load(path, configured).err().unwrap().to_string();
        assert!(
            err.contains("switches.json") && err.contains("remove it"),
            "{err}"
        );
    }
}
