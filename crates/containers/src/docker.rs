//! The Docker Engine API (served by Docker and by Podman), through bollard.
//!
//! Every call has a deadline, and every error says which engine it was and
//! what to do about it.

use std::time::Duration;

use async_trait::async_trait;
use bollard::Docker;
use bollard::errors::Error as BollardError;
use bollard::query_parameters::RestartContainerOptions;

use super::{ContainerError, ContainerInfo, ContainerRuntime, EngineAddress};

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
}
