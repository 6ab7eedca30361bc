//! Inspect, restart, signal and run commands in containers; read their logs;
//! find them by label.
//!
//! Only the containers listed under `[capabilities] containers` in the
//! plugin's manifest are reachable (by name, or `label:KEY=VALUE`: every
//! container carrying that label); any other is
//! [`Denied`](ContainerError::Denied). Signals must be listed under
//! `[capabilities] signals`, commands under `[[capabilities.exec]]`, and logs
//! need `[capabilities.logs]`. The host may also deny a call for its own
//! reasons (a circuit breaker, the call budget).
//!
//! Reads ([`inspect`], [`logs`], [`list_by_label`]) are performed in dry-run
//! too; effects ([`restart`], [`signal`], [`exec`]) are recorded and not sent
//! ([`exec`] answers [`ExecOutput::ran`] `false`).
//!
//! Natively (in a plugin's unit tests) the calls go to the fake host that
//! [`testing::FakeHost`](crate::testing::FakeHost) installs.

use std::collections::BTreeMap;
use std::fmt;

use crate::host;

/// What the container engine reports about a container.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerInfo {
    /// Container name.
    pub name: String,
    /// Engine state: `"running"`, `"exited"`, `"restarting"`, ...
    pub state: String,
    /// RFC 3339 start time as the engine reports it.
    pub started_at: String,
    /// Seconds since `started_at`, computed by the host; `None` if the
    /// engine gave no parsable start time.
    pub uptime_seconds: Option<u64>,
    /// How many times the engine has restarted the container.
    pub restart_count: u32,
    /// Health-check status (`"healthy"`, `"unhealthy"`, `"starting"`)
    /// when the container has a health check.
    pub health: Option<String>,
    /// The container's labels (`com.docker.compose.service`, ...).
    pub labels: BTreeMap<String, String>,
}

impl ContainerInfo {
    /// `true` when the engine says the container is running.
    pub fn is_running(&self) -> bool {
        self.state == "running"
    }

    /// The value of label `key`, if the container carries it.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels.get(key).map(String::as_str)
    }
}

/// Why a container call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContainerError {
    /// The manifest does not allow this container, signal or command, or a
    /// host guard (a circuit breaker, the call budget) refused the call.
    Denied(String),
    /// The engine has no container of that name.
    NotFound(String),
    /// The engine failed or could not be reached.
    Runtime(String),
}

impl fmt::Display for ContainerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ContainerError::Denied(msg) => write!(f, "denied: {msg}"),
            ContainerError::NotFound(msg) => write!(f, "not found: {msg}"),
            ContainerError::Runtime(msg) => write!(f, "runtime: {msg}"),
        }
    }
}

impl std::error::Error for ContainerError {}

/// What a command run by [`exec`] gave back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecOutput {
    /// `false` in dry-run: the command was recorded, not run (no exit code,
    /// no output).
    pub ran: bool,
    /// The command's exit code; `None` when it did not end within the
    /// manifest's timeout (see `timed_out`) or was not run.
    pub exit_code: Option<i64>,
    /// Standard output, cut to the manifest's `max_output_bytes`.
    pub stdout: String,
    /// Standard error, cut to the manifest's `max_output_bytes`.
    pub stderr: String,
    /// `stdout` or `stderr` was cut.
    pub truncated: bool,
    /// The command was still running at the manifest's timeout.
    pub timed_out: bool,
}

impl ExecOutput {
    /// A command that ran and exited with `code`, printing `stdout` and
    /// `stderr` (what a test scripts for the fake host).
    pub fn exited(code: i64, stdout: impl Into<String>, stderr: impl Into<String>) -> Self {
        ExecOutput {
            ran: true,
            exit_code: Some(code),
            stdout: stdout.into(),
            stderr: stderr.into(),
            truncated: false,
            timed_out: false,
        }
    }

    /// What dry-run answers: recorded, not run.
    pub fn not_run() -> Self {
        ExecOutput::default()
    }

    /// `true` when the command ran and exited with code 0.
    pub fn success(&self) -> bool {
        self.ran && self.exit_code == Some(0)
    }
}

/// Which stream of the container a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LogSource {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

impl fmt::Display for LogSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LogSource::Stdout => "stdout",
            LogSource::Stderr => "stderr",
        })
    }
}

/// One line of a container's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// The stream it came from.
    pub source: LogSource,
    /// The line, without its line break.
    pub text: String,
}

/// The last lines of a container's output, oldest first (see [`logs`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogTail {
    /// The lines, oldest first.
    pub lines: Vec<LogLine>,
    /// Older lines were left out to stay within the manifest's byte bound.
    pub truncated: bool,
}

impl LogTail {
    /// The lines that contain `needle` (a plain substring, case-sensitive).
    pub fn matching<'a>(&'a self, needle: &'a str) -> impl Iterator<Item = &'a LogLine> + 'a {
        self.lines.iter().filter(move |line| line.text.contains(needle))
    }
}

/// Look up the state, uptime, health and labels of container `name`. A read.
pub fn inspect(name: &str) -> Result<ContainerInfo, ContainerError> {
    host::inspect(name)
}

/// Restart container `name`. An effect: in dry-run the host records the
/// call and answers `Ok(())` without touching the container.
pub fn restart(name: &str) -> Result<(), ContainerError> {
    host::restart(name)
}

/// Send `signal` (`"HUP"`, `"USR1"`, ...; `"SIGHUP"` is the same) to the main
/// process of container `name`: only a signal the manifest lists under
/// `[capabilities] signals`. An effect.
pub fn signal(name: &str, signal: &str) -> Result<(), ContainerError> {
    host::signal(name, signal)
}

/// Run `argv` in container `name`, never through a shell: `argv[0]` is the
/// program. Only a command the manifest allows under `[[capabilities.exec]]`,
/// within its timeout and output bounds. An effect: in dry-run it is
/// recorded, not run ([`ExecOutput::ran`] is `false`).
///
/// A non-zero exit code is not an error: read [`ExecOutput::exit_code`] (or
/// [`ExecOutput::success`]).
pub fn exec<S: AsRef<str>>(name: &str, argv: &[S]) -> Result<ExecOutput, ContainerError> {
    let argv: Vec<String> = argv.iter().map(|arg| arg.as_ref().to_owned()).collect();
    host::exec(name, &argv)
}

/// The last `tail` lines of container `name`'s stdout and stderr, oldest
/// first, at most the manifest's `[capabilities.logs]` bounds. A read.
pub fn logs(name: &str, tail: u32) -> Result<LogTail, ContainerError> {
    host::logs(name, tail)
}

/// The containers carrying a label, `selector` being `KEY=VALUE`
/// (`com.docker.compose.service=crm-api`): only a selector the manifest
/// lists (as `label:KEY=VALUE`). Names on a named engine are `ENGINE/name`.
/// A read.
pub fn list_by_label(selector: &str) -> Result<Vec<String>, ContainerError> {
    host::list_by_label(selector)
}

/// The WIT types, turned into this module's.
mod from_wit {
    use super::*;
    use crate::bindings::autoheal::plugin::containers as wit;

    impl From<wit::Error> for ContainerError {
        fn from(e: wit::Error) -> Self {
            match e {
                wit::Error::Denied(msg) => ContainerError::Denied(msg),
                wit::Error::NotFound(msg) => ContainerError::NotFound(msg),
                wit::Error::Runtime(msg) => ContainerError::Runtime(msg),
            }
        }
    }

    impl From<wit::ContainerInfo> for ContainerInfo {
        fn from(info: wit::ContainerInfo) -> Self {
            ContainerInfo {
                name: info.name,
                state: info.state,
                started_at: info.started_at,
                uptime_seconds: info.uptime_seconds,
                restart_count: info.restart_count,
                health: info.health,
                // Later duplicates of a key win, as for alert labels.
                labels: info.labels.into_iter().collect(),
            }
        }
    }

    impl From<wit::ExecOutput> for ExecOutput {
        fn from(out: wit::ExecOutput) -> Self {
            ExecOutput {
                ran: out.ran,
                exit_code: out.exit_code,
                stdout: out.stdout,
                stderr: out.stderr,
                truncated: out.truncated,
                timed_out: out.timed_out,
            }
        }
    }

    impl From<wit::LogTail> for LogTail {
        fn from(tail: wit::LogTail) -> Self {
            LogTail {
                lines: tail
                    .lines
                    .into_iter()
                    .map(|line| LogLine {
                        source: match line.source {
                            wit::LogSource::Stdout => LogSource::Stdout,
                            wit::LogSource::Stderr => LogSource::Stderr,
                        },
                        text: line.text,
                    })
                    .collect(),
                truncated: tail.truncated,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::autoheal::plugin::containers as wit;

    #[test]
    fn container_error_display() {
        assert_eq!(ContainerError::Denied("nope".into()).to_string(), "denied: nope");
        assert_eq!(ContainerError::NotFound("x".into()).to_string(), "not found: x");
        assert_eq!(
            ContainerError::Runtime("boom".into()).to_string(),
            "runtime: boom"
        );
        let _: &dyn std::error::Error = &ContainerError::Runtime(String::new());
    }

    #[test]
    fn wit_values_convert() {
        let info = ContainerInfo::from(wit::ContainerInfo {
            name: "crm-api-1".into(),
            state: "running".into(),
            started_at: "s".into(),
            uptime_seconds: Some(5),
            restart_count: 2,
            health: None,
            labels: vec![
                ("com.docker.compose.service".into(), "crm-api".into()),
                ("tier".into(), "a".into()),
                ("tier".into(), "b".into()),
            ],
        });
        assert!(info.is_running());
        assert_eq!(info.label("com.docker.compose.service"), Some("crm-api"));
        assert_eq!(info.label("tier"), Some("b"), "last duplicate wins");
        assert_eq!(info.label("missing"), None);
        assert_eq!(
            ContainerError::from(wit::Error::NotFound("x".into())),
            ContainerError::NotFound("x".into())
        );
        let out = ExecOutput::from(wit::ExecOutput {
            ran: true,
            exit_code: Some(1),
            stdout: "o".into(),
            stderr: "e".into(),
            truncated: true,
            timed_out: false,
        });
        assert_eq!(
            out,
            ExecOutput {
                truncated: true,
                ..ExecOutput::exited(1, "o", "e")
            }
        );
        assert!(!out.success());
        let tail = LogTail::from(wit::LogTail {
            lines: vec![
                wit::LogLine {
                    source: wit::LogSource::Stdout,
                    text: "ok".into(),
                },
                wit::LogLine {
                    source: wit::LogSource::Stderr,
                    text: "ERROR x".into(),
                },
            ],
            truncated: false,
        });
        assert_eq!(tail.lines[1].source, LogSource::Stderr);
        assert_eq!(tail.matching("ERROR").count(), 1);
        assert_eq!(tail.matching("error").count(), 0, "case-sensitive");
    }

    #[test]
    fn exec_outputs() {
        assert!(ExecOutput::exited(0, "", "").success());
        assert!(!ExecOutput::exited(2, "", "boom").success());
        let dry = ExecOutput::not_run();
        assert!(!dry.ran && !dry.success() && dry.exit_code.is_none());
        assert_eq!(LogSource::Stderr.to_string(), "stderr");
    }
}
