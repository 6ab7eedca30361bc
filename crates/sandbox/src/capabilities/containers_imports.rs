//! The `containers` interface of every contract version, served by the
//! gate: 0.3.0 and 0.4.0 with all of its calls, 0.1.0 and 0.2.0 (inspect and restart
//! only) unchanged. The versions' types are distinct Rust types of the same
//! shape.

use autoheal_containers::{LogStream, uptime_seconds};

use crate::bindings::{v1, v2, v3, v4};
use crate::capability::GateError;
use crate::state::HostState;

/// `inspect` and `restart` of the versions before 0.3.0.
macro_rules! serve_first_calls {
    ($version:ident) => {
        impl $version::containers::Host for HostState {
            async fn inspect(
                &mut self,
                name: String,
            ) -> Result<$version::containers::ContainerInfo, $version::containers::Error> {
                let info = self.gate.inspect(name).await.map_err(into_wit!($version))?;
                Ok($version::containers::ContainerInfo {
                    uptime_seconds: uptime_seconds(&info.started_at),
                    name: info.name,
                    state: info.state,
                    started_at: info.started_at,
                    restart_count: info.restart_count,
                    health: info.health,
                })
            }

            async fn restart(&mut self, name: String) -> Result<(), $version::containers::Error> {
                self.gate.restart(name).await.map_err(into_wit!($version))
            }
        }
    };
}

/// The WIT error of `$version` for a gate error.
macro_rules! into_wit {
    ($version:ident) => {
        |e: GateError| {
            use $version::containers::Error;
            match e {
                GateError::Denied(m) => Error::Denied(m),
                GateError::NotFound(m) => Error::NotFound(m),
                GateError::Runtime(m) | GateError::Timeout(m) => Error::Runtime(m),
            }
        }
    };
}

serve_first_calls!(v1);
serve_first_calls!(v2);

/// Every call of the versions since 0.3.0.
macro_rules! serve_all_calls {
    ($version:ident) => {
        impl $version::containers::Host for HostState {
            async fn inspect(
                &mut self,
                name: String,
            ) -> Result<$version::containers::ContainerInfo, $version::containers::Error> {
                let info = self.gate.inspect(name).await.map_err(into_wit!($version))?;
                Ok($version::containers::ContainerInfo {
                    uptime_seconds: uptime_seconds(&info.started_at),
                    name: info.name,
                    state: info.state,
                    started_at: info.started_at,
                    restart_count: info.restart_count,
                    health: info.health,
                    labels: info.labels.into_iter().collect(),
                })
            }

            async fn restart(&mut self, name: String) -> Result<(), $version::containers::Error> {
                self.gate.restart(name).await.map_err(into_wit!($version))
            }

            async fn signal(
                &mut self,
                name: String,
                signal: String,
            ) -> Result<(), $version::containers::Error> {
                self.gate
                    .signal(name, signal)
                    .await
                    .map_err(into_wit!($version))
            }

            async fn exec(
                &mut self,
                name: String,
                argv: Vec<String>,
            ) -> Result<$version::containers::ExecOutput, $version::containers::Error> {
                let answer = self
                    .gate
                    .exec(name, argv)
                    .await
                    .map_err(into_wit!($version))?;
                Ok(match answer {
                    Some(output) => $version::containers::ExecOutput {
                        ran: true,
                        exit_code: output.exit_code,
                        stdout: output.stdout,
                        stderr: output.stderr,
                        truncated: output.truncated,
                        timed_out: output.timed_out,
                    },
                    None => $version::containers::ExecOutput {
                        ran: false,
                        exit_code: None,
                        stdout: String::new(),
                        stderr: String::new(),
                        truncated: false,
                        timed_out: false,
                    },
                })
            }

            async fn logs(
                &mut self,
                name: String,
                tail: u32,
            ) -> Result<$version::containers::LogTail, $version::containers::Error> {
                use $version::containers::{LogLine, LogSource};
                let logs = self
                    .gate
                    .logs(name, tail)
                    .await
                    .map_err(into_wit!($version))?;
                Ok($version::containers::LogTail {
                    lines: logs
                        .lines
                        .into_iter()
                        .map(|line| LogLine {
                            source: match line.stream {
                                LogStream::Stdout => LogSource::Stdout,
                                LogStream::Stderr => LogSource::Stderr,
                            },
                            text: line.text,
                        })
                        .collect(),
                    truncated: logs.truncated,
                })
            }

            async fn list_by_label(
                &mut self,
                selector: String,
            ) -> Result<Vec<String>, $version::containers::Error> {
                self.gate
                    .list_by_label(selector)
                    .await
                    .map_err(into_wit!($version))
            }
        }
    };
}

serve_all_calls!(v3);
serve_all_calls!(v4);
