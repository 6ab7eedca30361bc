//! The Docker Engine API (served by Docker and by Podman), through bollard.
//!
//! Every call has a deadline, and every error says which engine it was and
//! what to do about it.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use bollard::Docker;
use bollard::container::LogOutput;
use bollard::errors::Error as BollardError;
use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
use bollard::query_parameters::{KillContainerOptions, LogsOptions, RestartContainerOptions};
use futures_util::StreamExt;

use super::output::{ExecCapture, LogTail};
use super::{
    ContainerError, ContainerInfo, ContainerRuntime, EngineAddress, ExecLimits, ExecOutput, LabelSelector,
    LogStream, Logs,
};

/// Hands a piece of the Docker stream to `keep` with its stream. bollard
/// has already taken the frames apart (8-byte header: stream 1 or 2, three
/// zero bytes, big-endian length); a TTY's raw stream arrives as `Console`.
fn feed(output: &LogOutput, mut keep: impl FnMut(LogStream, &[u8])) {
    match output {
        LogOutput::StdOut { message } | LogOutput::Console { message } => keep(LogStream::Stdout, message),
        LogOutput::StdErr { message } => keep(LogStream::Stderr, message),
        // Never attached; nothing to keep.
        LogOutput::StdIn { .. } => {}
    }
}

/// PEM files for an engine on `tcp://` that wants TLS client
/// certificates (Docker's `--tlsverify`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineTls {
    /// The CA that signs the engine's certificate.
    pub ca: std::path::PathBuf,
    /// This client's certificate.
    pub cert: std::path::PathBuf,
    /// Its key.
    pub key: std::path::PathBuf,
}

/// A Docker Engine API client (Docker or Podman) with a deadline on every call.
pub struct DockerRuntime {
    /// Made on first use: bollard refuses to build a client for a socket
    /// that does not exist yet, and the host must start without an engine.
    client: std::sync::Mutex<Option<Docker>>,
    address: EngineAddress,
    /// Deadline of a call; a restart gets the container's stop timeout on top.
    call_timeout: Duration,
    /// Client certificates, for a `tcp://` engine.
    tls: Option<EngineTls>,
}

impl DockerRuntime {
    /// Prepares a runtime; nothing is sent (or even connected) until the
    /// first call, so a host whose engine is down still starts.
    pub fn new(address: EngineAddress, call_timeout: Duration) -> Self {
        Self {
            client: std::sync::Mutex::new(None),
            address,
            call_timeout,
            tls: None,
        }
    }

    /// Speaks TLS with these client certificates (a `tcp://` engine).
    pub fn with_tls(mut self, tls: EngineTls) -> Self {
        self.tls = Some(tls);
        self
    }

    fn client(&self) -> Result<Docker, ContainerError> {
        let mut client = self.client.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(client) = client.as_ref() {
            return Ok(client.clone());
        }
        // bollard's own timeout is whole seconds; ours (in `call`) is the real bound.
        let secs = self.call_timeout.as_secs().max(1) + 60;
        let connected = match (&self.address, &self.tls) {
            (EngineAddress::Unix(path), _) => {
                Docker::connect_with_unix(&path.to_string_lossy(), secs, bollard::API_DEFAULT_VERSION)
            }
            (EngineAddress::Tcp(addr), None) => {
                Docker::connect_with_http(addr, secs, bollard::API_DEFAULT_VERSION)
            }
            (EngineAddress::Tcp(addr), Some(tls)) => Docker::connect_with_ssl(
                addr,
                &tls.key,
                &tls.cert,
                &tls.ca,
                secs,
                bollard::API_DEFAULT_VERSION,
            ),
        }
        .map_err(|e| {
            ContainerError::Runtime(format!("container engine at {} not reachable: {e}", self.address))
        })?;
        *client = Some(connected.clone());
        Ok(connected)
    }

    async fn call<T>(
        &self,
        limit: Duration,
        container: Option<&str>,
        request: impl Future<Output = Result<T, BollardError>>,
    ) -> Result<T, ContainerError> {
        match tokio::time::timeout(limit, request).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(self.map_error(container, error)),
            Err(_) => Err(ContainerError::Runtime(format!(
                "container engine at {} did not answer within {limit:?}",
                self.address
            ))),
        }
    }

    fn map_error(&self, container: Option<&str>, error: BollardError) -> ContainerError {
        match error {
            BollardError::DockerResponseServerError { status_code: 404, .. } if container.is_some() => {
                ContainerError::NotFound(container.unwrap_or_default().to_owned())
            }
            // Docker answers 409 for a container that is not running; Podman
            // (4.3) answers 500 "container state improper".
            BollardError::DockerResponseServerError { status_code, message }
                if container.is_some() && (status_code == 409 || message.contains("state improper")) =>
            {
                ContainerError::Runtime(format!(
                    "container {} is not running (engine at {}: {message}, HTTP {status_code})",
                    container.unwrap_or_default(),
                    self.address
                ))
            }
            BollardError::DockerResponseServerError { status_code, message } => {
                ContainerError::Runtime(format!(
                    "container engine at {} refused: {message} (HTTP {status_code})",
                    self.address
                ))
            }
            other => ContainerError::Runtime(format!(
                "container engine at {} not reachable: {other}",
                self.address
            )),
        }
    }
}

#[async_trait]
impl ContainerRuntime for DockerRuntime {
    fn describe(&self) -> String {
        self.address.to_string()
    }

    async fn inspect(&self, name: &str) -> Result<ContainerInfo, ContainerError> {
        let client = self.client()?;
        let response = self
            .call(
                self.call_timeout,
                Some(name),
                client.inspect_container(name, None),
            )
            .await?;
        let state = response.state.unwrap_or_default();
        Ok(ContainerInfo {
            name: response
                .name
                .map(|n| n.trim_start_matches('/').to_owned())
                .unwrap_or_else(|| name.to_owned()),
            state: state
                .status
                .map(|s| s.to_string())
                .unwrap_or_else(|| "unknown".into()),
            started_at: state.started_at.unwrap_or_default(),
            restart_count: response.restart_count.unwrap_or(0).clamp(0, i64::from(u32::MAX)) as u32,
            // Podman reports an empty status for containers without a health check.
            health: state
                .health
                .and_then(|h| h.status)
                .map(|s| s.to_string())
                .filter(|s| !s.is_empty() && s != "none"),
            labels: response
                .config
                .and_then(|c| c.labels)
                .unwrap_or_default()
                .into_iter()
                .collect(),
        })
    }

    async fn restart(&self, name: &str, stop_timeout: Duration) -> Result<(), ContainerError> {
        let options = RestartContainerOptions {
            t: Some(stop_timeout.as_secs().min(i32::MAX as u64) as i32),
            signal: None,
        };
        let client = self.client()?;
        self.call(
            self.call_timeout + stop_timeout,
            Some(name),
            client.restart_container(name, Some(options)),
        )
        .await
    }

    async fn version(&self) -> Result<String, ContainerError> {
        let client = self.client()?;
        let version = self.call(self.call_timeout, None, client.version()).await?;
        Ok(version.version.unwrap_or_else(|| "unknown".into()))
    }

    async fn signal(&self, name: &str, signal: &str) -> Result<(), ContainerError> {
        // Podman and Docker take the name with or without SIG.
        let options = KillContainerOptions {
            signal: signal.to_owned(),
        };
        let client = self.client()?;
        self.call(
            self.call_timeout,
            Some(name),
            client.kill_container(name, Some(options)),
        )
        .await
    }

    /// On timeout the attach connection is dropped and `timed_out` said.
    /// Podman (4.3, as tested) does not stop the process then: the exec
    /// session stays `Running` and the process runs to its own end, and
    /// the Docker API has no call to kill an exec. A command that may
    /// hang should bound itself (`timeout 5 CMD`).
    async fn exec(
        &self,
        name: &str,
        argv: &[String],
        limits: &ExecLimits,
    ) -> Result<ExecOutput, ContainerError> {
        let client = self.client()?;
        let config = CreateExecOptions::<String> {
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            tty: Some(false),
            cmd: Some(argv.to_vec()),
            ..Default::default()
        };
        let created = self
            .call(self.call_timeout, Some(name), client.create_exec(name, config))
            .await?;
        let deadline = tokio::time::Instant::now() + limits.timeout;
        let mut capture = ExecCapture::new(limits.max_output_bytes);
        let timed_out = |capture: ExecCapture| {
            let (stdout, stderr, truncated) = capture.finish();
            Ok(ExecOutput {
                exit_code: None,
                stdout,
                stderr,
                truncated,
                timed_out: true,
            })
        };
        let start = StartExecOptions {
            detach: false,
            tty: false,
            output_capacity: None,
        };
        let mut output =
            match tokio::time::timeout_at(deadline, client.start_exec(&created.id, Some(start))).await {
                Err(_) => return timed_out(capture),
                Ok(Err(error)) => return Err(self.map_error(Some(name), error)),
                Ok(Ok(StartExecResults::Attached { output, .. })) => output,
                Ok(Ok(StartExecResults::Detached)) => {
                    return Err(ContainerError::Runtime(format!(
                        "container engine at {} detached the exec in {name}: no output to read",
                        self.address
                    )));
                }
            };
        // Read to the end (past the bound too, dropping it) so that the
        // process is not blocked on a full pipe, until the deadline.
        loop {
            match tokio::time::timeout_at(deadline, output.next()).await {
                Err(_) => return timed_out(capture),
                Ok(None) => break,
                Ok(Some(Ok(piece))) => feed(&piece, |stream, bytes| capture.push(stream, bytes)),
                Ok(Some(Err(error))) => return Err(self.map_error(Some(name), error)),
            }
        }
        drop(output);
        let exit_code = self.exit_code(&client, name, &created.id).await?;
        let (stdout, stderr, truncated) = capture.finish();
        Ok(ExecOutput {
            exit_code,
            stdout,
            stderr,
            truncated,
            timed_out: false,
        })
    }

    async fn logs(&self, name: &str, tail: u32, max_bytes: usize) -> Result<Logs, ContainerError> {
        if tail == 0 {
            // No lines asked for; the engine is still asked whether the
            // container exists, as for any other tail.
            self.inspect(name).await?;
            return Ok(Logs::default());
        }
        let options = LogsOptions {
            stdout: true,
            stderr: true,
            tail: tail.to_string(),
            ..Default::default()
        };
        let client = self.client()?;
        let read = async {
            let mut pieces = client.logs(name, Some(options));
            let mut kept = LogTail::new(max_bytes);
            while let Some(piece) = pieces.next().await {
                feed(&piece?, |stream, bytes| kept.push(stream, bytes));
            }
            Ok(kept.finish())
        };
        self.call(self.call_timeout, Some(name), read).await
    }

    async fn list(&self, selector: &LabelSelector) -> Result<Vec<String>, ContainerError> {
        let filters = serde_json::json!({ "label": [selector.to_string()] }).to_string();
        let query = format!("all=1&filters={}", percent_encode(&filters));
        let client = self.client()?;
        let body = self
            .call(
                self.call_timeout,
                None,
                get_raw(&client, &format!("/containers/json?{query}")),
            )
            .await?;
        let listed: Vec<Listed> = serde_json::from_slice(&body).map_err(|e| {
            ContainerError::Runtime(format!(
                "container engine at {} sent a container list that does not parse: {e}",
                self.address
            ))
        })?;
        let mut names: Vec<String> = listed
            .into_iter()
            // The engine's filter is checked again here: an engine whose
            // filter matched more loosely (a glob in the value) must not
            // widen what the selector allows.
            .filter(|c| selector.matches(&c.labels.clone().unwrap_or_default()))
            .filter_map(|c| c.names.into_iter().next())
            .map(|name| name.trim_start_matches('/').to_owned())
            .collect();
        names.sort();
        names.dedup();
        Ok(names)
    }
}

/// What `list` reads of each container of `GET /containers/json`.
#[derive(serde::Deserialize)]
struct Listed {
    #[serde(rename = "Names", default)]
    names: Vec<String>,
    #[serde(rename = "Labels", default)]
    labels: Option<BTreeMap<String, String>>,
}

/// The most of a container list read (some 10,000 containers).
const MAX_LIST_BYTES: usize = 16 << 20;

/// The name in the export request that [`get_raw`] points elsewhere.
const RAW_GET_MARKER: &str = "autoheal-raw-get";

/// `GET path_and_query` on the engine, the body as bytes (at most
/// [`MAX_LIST_BYTES`]).
///
/// bollard's typed container list cannot be used: it fails on a whole list
/// when one container is in a state outside Docker's enum, and Podman
/// reports `stopped` (seen with Podman 4.3). bollard has no raw GET, so its
/// one raw-body GET (a container export) is pointed at `path_and_query` by
/// rewriting the request's path: the same client, transport and TLS.
async fn get_raw(client: &Docker, path_and_query: &str) -> Result<Vec<u8>, BollardError> {
    let from = format!("/containers/{RAW_GET_MARKER}/export");
    let to = path_and_query.to_owned();
    let pointed = client.clone().with_request_modifier(move |mut request| {
        let uri = request.uri().to_string();
        // The prefix (scheme, socket, API version) stays as bollard made it.
        if let Some(at) = uri.find(&from)
            && let Ok(rewritten) = format!("{}{to}", &uri[..at]).parse()
        {
            *request.uri_mut() = rewritten;
        }
        request
    });
    let mut body = Vec::new();
    let mut pieces = pointed.export_container(RAW_GET_MARKER);
    while let Some(piece) = pieces.next().await {
        let piece = piece?;
        if body.len() + piece.len() > MAX_LIST_BYTES {
            return Err(BollardError::IOError {
                err: std::io::Error::other(format!(
                    "the answer to {path_and_query} is over {MAX_LIST_BYTES} bytes"
                )),
            });
        }
        body.extend_from_slice(&piece);
    }
    Ok(body)
}

/// `text` fit for a URL's query (RFC 3986 unreserved characters kept).
fn percent_encode(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len() * 3);
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

impl DockerRuntime {
    /// The exit code of a finished exec. Its output ends before the engine
    /// has always recorded the exit, so a `Running` exec is asked again,
    /// within the call deadline; `None` if it never says.
    async fn exit_code(&self, client: &Docker, name: &str, id: &str) -> Result<Option<i64>, ContainerError> {
        let deadline = tokio::time::Instant::now() + self.call_timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let inspected = self.call(left, Some(name), client.inspect_exec(id)).await?;
            if inspected.running != Some(true) {
                return Ok(inspected.exit_code);
            }
            if tokio::time::Instant::now() + Duration::from_millis(50) >= deadline {
                return Ok(None);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_encode_leaves_nothing_that_ends_a_query_value() {
        let filters = r#"{"label":["com.docker.compose.service=a b&c=d#e"]}"#;
        let encoded = percent_encode(filters);
        assert!(!encoded.contains(['&', '=', '#', ' ', '"', '{']), "{encoded}");
        assert!(encoded.starts_with("%7B%22label%22%3A%5B%22com.docker.compose.service%3Da%20b%26c"));
    }

    #[test]
    fn a_list_with_a_state_docker_does_not_know_still_parses() {
        let body = r#"[{"Names":["/a-1"],"State":"stopped","Labels":{"app":"x"}},
                      {"Names":["/a-2"],"State":"running","Labels":null}]"#;
        let listed: Vec<Listed> = serde_json::from_str(body).unwrap();
        assert_eq!(listed[0].names, ["/a-1"]);
        assert_eq!(listed[0].labels.as_ref().unwrap()["app"], "x");
        assert!(listed[1].labels.is_none());
    }
}
