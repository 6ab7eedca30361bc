//! Where the container engine is: the config key, else `DOCKER_HOST`, else
//! Docker's socket, else the usual Podman sockets.

use std::fmt;
use std::path::{Path, PathBuf};

/// Where a container engine listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngineAddress {
    /// A Unix socket.
    Unix(PathBuf),
    /// `host:port`, spoken to as plain HTTP.
    Tcp(String),
}

impl fmt::Display for EngineAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unix(path) => write!(f, "unix://{}", path.display()),
            Self::Tcp(addr) => write!(f, "tcp://{addr}"),
        }
    }
}

/// Text that is not an engine address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// `tcp://` with nothing after it.
    #[error("{0:?} has no host:port")]
    NoHostPort(String),
    /// Neither a `unix://` nor a `tcp://` address nor a socket path.
    #[error("{0:?} is not unix:///path/to.sock or tcp://host:port")]
    Unrecognised(String),
}

/// Why no engine address could be chosen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DiscoverError {
    /// `DOCKER_HOST` is set to something that is not an address.
    #[error("DOCKER_HOST: {0}")]
    DockerHost(AddressError),
}

impl EngineAddress {
    /// `unix:///path`, `tcp://host:port` (or `http://`), or a bare socket path.
    pub fn parse(text: &str) -> Result<Self, AddressError> {
        let text = text.trim();
        if let Some(path) = text.strip_prefix("unix://") {
            return Ok(Self::Unix(PathBuf::from(path)));
        }
        if let Some(addr) = text
            .strip_prefix("tcp://")
            .or_else(|| text.strip_prefix("http://"))
        {
            if addr.is_empty() {
                return Err(AddressError::NoHostPort(text.to_owned()));
            }
            return Ok(Self::Tcp(addr.trim_end_matches('/').to_owned()));
        }
        if text.starts_with('/') {
            return Ok(Self::Unix(PathBuf::from(text)));
        }
        Err(AddressError::Unrecognised(text.to_owned()))
    }
}

pub const DOCKER_SOCKET: &str = "/var/run/docker.sock";
pub const ROOT_PODMAN_SOCKET: &str = "/run/podman/podman.sock";

/// The engine to use. `configured` (the `container_engine` key, already
/// parsed) wins, then `DOCKER_HOST`, then the first socket that exists of
/// Docker's, the user's Podman one and the system Podman one. With none
/// present, Docker's socket is used so that errors name the place that was
/// expected.
pub fn discover(
    configured: Option<&EngineAddress>,
    env: impl Fn(&str) -> Option<String>,
    exists: impl Fn(&Path) -> bool,
) -> Result<EngineAddress, DiscoverError> {
    if let Some(address) = configured {
        return Ok(address.clone());
    }
    if let Some(text) = env("DOCKER_HOST").filter(|t| !t.trim().is_empty()) {
        return EngineAddress::parse(&text).map_err(DiscoverError::DockerHost);
    }
    let mut candidates = vec![PathBuf::from(DOCKER_SOCKET)];
    if let Some(runtime_dir) = env("XDG_RUNTIME_DIR") {
        candidates.push(Path::new(&runtime_dir).join("podman/podman.sock"));
    }
    candidates.push(PathBuf::from(ROOT_PODMAN_SOCKET));
    let found = candidates.iter().find(|p| exists(p)).cloned();
    Ok(EngineAddress::Unix(
        found.unwrap_or_else(|| PathBuf::from(DOCKER_SOCKET)),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
    }

    #[test]
    fn precedence_config_then_docker_host_then_sockets() {
        let none = |_: &Path| false;
        let all = |_: &Path| true;
        let podman_user = |p: &Path| p == Path::new("/run/user/1000/podman/podman.sock");
        let docker_host = [
            ("DOCKER_HOST", "tcp://127.0.0.1:2375"),
            ("XDG_RUNTIME_DIR", "/run/user/1000"),
        ];
        let user = [("XDG_RUNTIME_DIR", "/run/user/1000")];

        type Case<'a> = (
            Option<&'a str>,
            &'a [(&'a str, &'a str)],
            &'a dyn Fn(&Path) -> bool,
            &'a str,
        );
        let cases: Vec<Case> = vec![
            (
                Some("unix:///tmp/x.sock"),
                &docker_host,
                &all,
                "unix:///tmp/x.sock",
            ),
            (None, &docker_host, &all, "tcp://127.0.0.1:2375"),
            (None, &user, &all, "unix:///var/run/docker.sock"),
            (
                None,
                &user,
                &podman_user,
                "unix:///run/user/1000/podman/podman.sock",
            ),
            (
                None,
                &[],
                &|p: &Path| p == Path::new(ROOT_PODMAN_SOCKET),
                "unix:///run/podman/podman.sock",
            ),
            (None, &[], &none, "unix:///var/run/docker.sock"),
        ];
        for (configured, vars, exists, expected) in cases {
            let configured = configured.map(|text| EngineAddress::parse(text).unwrap());
            let got = discover(configured.as_ref(), env(vars), exists).unwrap();
            assert_eq!(got.to_string(), expected, "{configured:?} {vars:?}");
        }
    }

    #[test]
    fn bad_addresses_name_their_source() {
        // The `container_engine` key is parsed (and named) by the host's config.
        let err = EngineAddress::parse("docker.example:2375")
            .unwrap_err()
            .to_string();
        assert!(err.contains("docker.example:2375"), "{err}");
        let err = discover(None, env(&[("DOCKER_HOST", "ssh://host")]), |_| false)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("DOCKER_HOST:"), "{err}");
    }
}
