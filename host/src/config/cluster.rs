//! `[cluster]`: the etcd cluster replicas share, as written and as checked.
//! The file format and its checks live with the rest of the configuration;
//! `cluster` takes the checked [`ClusterSettings`] and knows nothing of how
//! they were written.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use autoheal_core::proof::ClusterSecret;
use autoheal_core::util::parse_duration;

/// `[cluster]` as written. Without `etcd` the host runs alone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawCluster {
    /// etcd client URLs, e.g. `["http://127.0.0.1:2379"]`; empty: no cluster.
    pub etcd: Vec<String>,
    /// This replica's name in events and claims; empty: `HOSTNAME:PORT`.
    pub replica: String,
    /// Where autoheal's keys live in etcd (clusters of autoheal sharing one
    /// etcd use different prefixes).
    pub prefix: String,
    /// How long one etcd request may take before the cluster counts as
    /// unavailable (a duration such as `2s`).
    pub timeout: String,
    /// CA bundle (PEM) that signs etcd's server certificates (`https://` URLs).
    pub ca_file: String,
    /// Client certificate (PEM) for etcd's `--client-cert-auth`.
    pub cert_file: String,
    /// The client certificate's key (PEM).
    pub key_file: String,
    /// etcd user, with `--auth` enabled in etcd.
    pub username: String,
    /// File whose first line is that user's password.
    pub password_file: String,
    /// File holding the cluster secret every replica shares (at least 32
    /// bytes, surrounding whitespace ignored): replicas sign their requests
    /// to each other and their answers to approvals with it. Required.
    pub secret_file: String,
}

impl Default for RawCluster {
    fn default() -> Self {
        Self {
            etcd: Vec::new(),
            replica: String::new(),
            prefix: "/autoheal".into(),
            timeout: "2s".into(),
            ca_file: String::new(),
            cert_file: String::new(),
            key_file: String::new(),
            username: String::new(),
            password_file: String::new(),
            secret_file: String::new(),
        }
    }
}

/// How to reach etcd over TLS.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterTls {
    /// PEM CA bundle, when not the system's.
    pub ca_pem: Option<Vec<u8>>,
    /// PEM certificate and key, for client-certificate auth.
    pub identity: Option<(Vec<u8>, Vec<u8>)>,
}

/// The checked `[cluster]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterSettings {
    /// etcd client URLs.
    pub endpoints: Vec<String>,
    /// This replica's name.
    pub replica: String,
    /// Key prefix, without a trailing `/`.
    pub prefix: String,
    /// Longest wait for one etcd request.
    pub timeout: Duration,
    /// TLS material, for `https://` endpoints.
    pub tls: Option<ClusterTls>,
    /// User and password.
    pub user: Option<(String, String)>,
    /// What replicas prove themselves to each other with (see `autoheal_core::proof`).
    pub secret: ClusterSecret,
}

/// A `[cluster]` value that cannot be used; `key` names it.
#[derive(Debug, thiserror::Error)]
#[error("config key `cluster.{key}`: {message}")]
pub struct ClusterConfigError {
    /// The key under `[cluster]`.
    pub key: &'static str,
    /// What is wrong.
    pub message: String,
}

impl RawCluster {
    /// The settings, or `None` without `etcd`. `listen_port` names the
    /// replica when `replica` is empty.
    pub fn validate(&self, listen_port: u16) -> Result<Option<ClusterSettings>, ClusterConfigError> {
        let invalid = |key: &'static str, message: String| ClusterConfigError { key, message };
        if self.etcd.is_empty() {
            return Ok(None);
        }
        let mut secure = 0;
        for url in &self.etcd {
            match url.split_once("://") {
                Some(("https", rest)) if !rest.is_empty() => secure += 1,
                Some(("http", rest)) if !rest.is_empty() => {}
                _ => return Err(invalid("etcd", format!("{url:?} is not an http(s) URL"))),
            }
        }
        if secure != 0 && secure != self.etcd.len() {
            return Err(invalid(
                "etcd",
                "use http:// or https:// for every URL, not both".into(),
            ));
        }
        let replica = match self.replica.trim() {
            "" => format!("{}:{listen_port}", hostname()),
            name => name.to_owned(),
        };
        if replica.len() > 128 || replica.chars().any(|c| c.is_control() || c == '/') {
            return Err(invalid(
                "replica",
                format!("{replica:?}: at most 128 characters, no `/` or control characters"),
            ));
        }
        let prefix = self.prefix.trim().trim_end_matches('/').to_owned();
        if !prefix.starts_with('/') {
            return Err(invalid(
                "prefix",
                format!("{:?} must start with `/`", self.prefix),
            ));
        }
        let timeout = parse_duration(&self.timeout).map_err(|e| invalid("timeout", e.to_string()))?;
        if timeout < Duration::from_millis(100) || timeout > Duration::from_secs(60) {
            return Err(invalid("timeout", "must be between 100ms and 60s".into()));
        }
        let read = |key: &'static str, path: &str| -> Result<Option<Vec<u8>>, ClusterConfigError> {
            match path.trim() {
                "" => Ok(None),
                path => std::fs::read(Path::new(path))
                    .map(Some)
                    .map_err(|e| invalid(key, format!("{path}: {e}"))),
            }
        };
        let ca_pem = read("ca_file", &self.ca_file)?;
        let identity = match (
            read("cert_file", &self.cert_file)?,
            read("key_file", &self.key_file)?,
        ) {
            (Some(cert), Some(key)) => Some((cert, key)),
            (None, None) => None,
            _ => return Err(invalid("cert_file", "cert_file and key_file go together".into())),
        };
        let tls = match (secure > 0, ca_pem.is_some() || identity.is_some()) {
            (true, _) => Some(ClusterTls { ca_pem, identity }),
            (false, true) => {
                return Err(invalid(
                    "etcd",
                    "ca_file, cert_file and key_file need https:// URLs".into(),
                ));
            }
            (false, false) => None,
        };
        let user = match (self.username.trim(), self.password_file.trim()) {
            ("", "") => None,
            ("", _) | (_, "") => {
                return Err(invalid(
                    "username",
                    "username and password_file go together".into(),
                ));
            }
            (name, file) => {
                let text = std::fs::read_to_string(PathBuf::from(file))
                    .map_err(|e| invalid("password_file", format!("{file}: {e}")))?;
                let password = text.lines().next().unwrap_or("").to_owned();
                if password.is_empty() {
                    return Err(invalid(
                        "password_file",
                        format!("{file}: the first line is empty"),
                    ));
                }
                Some((name.to_owned(), password))
            }
        };
        let secret =
            read_secret(self.secret_file.trim()).map_err(|message| invalid("secret_file", message))?;
        Ok(Some(ClusterSettings {
            endpoints: self.etcd.clone(),
            replica,
            prefix,
            timeout,
            tls,
            user,
            secret,
        }))
    }
}

/// The cluster secret in `path`. Required: without it a replica could only
/// trust what etcd says about the others, and anyone who can write to etcd
/// could then collect operators' tokens and answer approvals.
fn read_secret(path: &str) -> Result<ClusterSecret, String> {
    if path.is_empty() {
        return Err(
            "a replica needs the cluster secret every replica shares (e.g. `openssl rand -hex 32 > FILE`)"
                .into(),
        );
    }
    let bytes = std::fs::read(path).map_err(|e| format!("{path}: {e}"))?;
    let secret = bytes.trim_ascii().to_vec();
    if secret.len() < ClusterSecret::MIN_LEN {
        return Err(format!(
            "{path}: {} bytes; the secret must be at least {}",
            secret.len(),
            ClusterSecret::MIN_LEN
        ));
    }
    Ok(ClusterSecret::new(secret))
}

/// The machine's name, for a replica that was not given one.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "autoheal".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A secret file that lives as long as the test process.
    /// Written once: tests run in parallel, and one rewriting the file
    /// (truncate, then write) while another reads it read it empty.
    fn secret_file() -> String {
        static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
        let dir = DIR.get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join("secret"), format!("{}\n", "s".repeat(40))).unwrap();
            dir
        });
        dir.path().join("secret").display().to_string()
    }

    fn with_etcd(urls: &[&str]) -> RawCluster {
        RawCluster {
            etcd: urls.iter().map(|u| (*u).to_owned()).collect(),
            secret_file: secret_file(),
            ..RawCluster::default()
        }
    }

    #[test]
    fn a_replica_at_a_loopback_public_url_is_told_and_a_single_host_is_not() {
        let config = |public_url: &str, cluster: RawCluster| {
            let raw = crate::config::RawConfig {
                public_url: public_url.into(),
                cluster,
                ..Default::default()
            };
            raw.validate().unwrap()
        };
        let replica = || with_etcd(&["http://127.0.0.1:2379"]);
        for loopback in [
            "http://127.0.0.1:9009",
            "http://localhost:9009/",
            "http://[::1]:9009",
            "http://0.0.0.0:9009",
        ] {
            assert_eq!(
                config(loopback, replica()).unreachable_public_url(),
                Some(loopback)
            );
        }
        assert_eq!(
            config("http://autoheal-1:9009", replica()).unreachable_public_url(),
            None
        );
        assert_eq!(
            config("http://127.0.0.1:9009", RawCluster::default()).unreachable_public_url(),
            None
        );
    }

    #[test]
    fn no_etcd_is_no_cluster_and_a_replica_is_named_by_default() {
        assert_eq!(RawCluster::default().validate(9009).unwrap(), None);
        let settings = with_etcd(&["http://127.0.0.1:2379"])
            .validate(9009)
            .unwrap()
            .unwrap();
        assert!(settings.replica.ends_with(":9009"), "{}", settings.replica);
        assert_eq!(settings.prefix, "/autoheal");
        assert_eq!(settings.timeout, Duration::from_secs(2));
        assert!(settings.tls.is_none() && settings.user.is_none());
    }

    #[test]
    fn bad_values_are_named() {
        let err = |raw: RawCluster| raw.validate(1).unwrap_err().to_string();
        assert!(err(with_etcd(&["127.0.0.1:2379"])).contains("cluster.etcd"));
        assert!(err(with_etcd(&["http://a:1", "https://b:1"])).contains("not both"));
        let mut raw = with_etcd(&["http://a:1"]);
        raw.prefix = "autoheal".into();
        assert!(err(raw).contains("cluster.prefix"));
        let mut raw = with_etcd(&["http://a:1"]);
        raw.timeout = "10ms".into();
        assert!(err(raw).contains("cluster.timeout"));
        let mut raw = with_etcd(&["http://a:1"]);
        raw.replica = "a/b".into();
        assert!(err(raw).contains("cluster.replica"));
        let mut raw = with_etcd(&["http://a:1"]);
        raw.ca_file = "/nonexistent/ca.pem".into();
        assert!(err(raw).contains("cluster.ca_file"));
        let mut raw = with_etcd(&["http://a:1"]);
        raw.username = "root".into();
        assert!(err(raw).contains("password_file"));
    }

    #[test]
    fn a_replica_needs_a_secret_of_32_bytes() {
        let err = |raw: RawCluster| raw.validate(1).unwrap_err().to_string();
        let mut raw = with_etcd(&["http://a:1"]);
        raw.secret_file = String::new();
        assert!(err(raw.clone()).contains("cluster.secret_file"));
        let dir = tempfile::tempdir().unwrap();
        let short = dir.path().join("short");
        std::fs::write(&short, "0123456789\n").unwrap();
        raw.secret_file = short.display().to_string();
        assert!(err(raw).contains("at least 32"));
        let settings = with_etcd(&["http://a:1"]).validate(1).unwrap().unwrap();
        assert_eq!(settings.secret, ClusterSecret::new("s".repeat(40).into_bytes()));
        assert!(!format!("{settings:?}").contains("ssss"), "never printed");
    }

    #[test]
    fn tls_material_is_read_for_https() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
        std::fs::write(&cert, "CERT").unwrap();
        std::fs::write(&key, "KEY").unwrap();
        let mut raw = with_etcd(&["https://a:1"]);
        raw.cert_file = cert.display().to_string();
        raw.key_file = key.display().to_string();
        let tls = raw.validate(1).unwrap().unwrap().tls.unwrap();
        assert_eq!(tls.identity, Some((b"CERT".to_vec(), b"KEY".to_vec())));
        let mut plain = raw.clone();
        plain.etcd = vec!["http://a:1".into()];
        assert!(plain.validate(1).unwrap_err().to_string().contains("https://"));
    }
}
