//! Where the container engine is: the config key, else `DOCKER_HOST`, else
//! Docker's socket, else the usual Podman sockets.

use std::fmt;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngineAddress {
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

impl EngineAddress {
    /// `unix:///path`, `tcp://host:port` (or `http://`), or a bare socket path.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if let Some(path) = text.strip_prefix("unix://") {
            return Ok(Self::Unix(PathBuf::from(path)));
        }
        if let Some(addr) = text
            .strip_prefix("tcp://")
            .or_else(|| text.strip_prefix("http://"))
        {
            if addr.is_empty() {
                return Err(format!("{text:?} has no host:port"));
            }
            return Ok(Self::Tcp(addr.trim_end_matches('/').to_owned()));
        }
        if text.starts_with('/') {
            return Ok(Self::Unix(PathBuf::from(text)));
        }
        Err(format!("{text:?} is not unix:///path/to.sock or tcp://host:port"))
    }
}

pub const DOCKER_SOCKET: &str = "/var/run/docker.sock";
pub const ROOT_PODMAN_SOCKET: &str = "/run/podman/podman.sock";

/// The engine to use. `configured` (the `container_engine` key) wins, then
/// `DOCKER_HOST`, then the first socket that exists of Docker's, the user's
/// Podman one and the system Podman one. With none present, Docker's socket
/// is used so that errors name the place that was expected.
pub fn discover(
    configured: Option<&str>,
    env: impl Fn(&str) -> Option<String>,
    exists: impl Fn(&Path) -> bool,
) -> Result<EngineAddress, String> {
    if let Some(text) = configured.filter(|t| !t.trim().is_empty()) {
        return EngineAddress::parse(text).map_err(|e| format!("container_engine: {e}"));
    }
    if let Some(text) = env("DOCKER_HOST").filter(|t| !t.trim().is_empty()) {
        return EngineAddress::parse(&text).map_err(|e| format!("DOCKER_HOST: {e}"));
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
            let got = discover(configured, env(vars), exists).unwrap();
            assert_eq!(got.to_string(), expected, "{configured:?} {vars:?}");
        }
    }

    #[test]
    fn bad_addresses_name_their_source() {
        let err = discover(Some("docker.example:2375"), env(&[]), |_| false).unwrap_err();
        assert!(err.starts_with("container_engine:"), "{err}");
        let err = discover(None, env(&[("DOCKER_HOST", "ssh://host")]), |_| false).unwrap_err();
        assert!(err.starts_with("DOCKER_HOST:"), "{err}");
    }
}
