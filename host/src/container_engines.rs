//! `[engines.NAME]`: container engines besides the default one
//! (`container_engine`), as written and as checked, and the runtime that
//! routes `NAME/container` to them.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use autoheal_containers::{ContainerRuntime, DockerRuntime, EngineAddress, EngineTls, Engines};
use autoheal_sandbox::manifest::{MAX_ENGINE_NAME, is_engine_name};

/// One `[engines.NAME]` table as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEngine {
    /// `unix:///path.sock` or `tcp://host:port`.
    pub address: String,
    /// PEM CA of the engine's certificate (`tcp://` with TLS).
    #[serde(default)]
    pub ca_file: String,
    /// PEM client certificate.
    #[serde(default)]
    pub cert_file: String,
    /// Its PEM key.
    #[serde(default)]
    pub key_file: String,
}

/// A checked `[engines.NAME]`.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedEngine {
    /// Where it is.
    pub address: EngineAddress,
    /// Its client certificates, when it speaks TLS.
    pub tls: Option<EngineTls>,
}

/// An `[engines.NAME]` that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("config key `engines.{name}`: {message}")]
pub struct EngineConfigError {
    /// The engine's name.
    pub name: String,
    /// What is wrong.
    pub message: String,
}

/// Checks every `[engines.NAME]`.
pub fn validate(
    raw: &BTreeMap<String, RawEngine>,
) -> Result<BTreeMap<String, NamedEngine>, EngineConfigError> {
    raw.iter()
        .map(|(name, engine)| {
            let fail = |message: String| EngineConfigError {
                name: name.clone(),
                message,
            };
            if !is_engine_name(name) {
                return Err(fail(format!(
                    "names are [a-z0-9][a-z0-9_-]*, at most {MAX_ENGINE_NAME} bytes (manifests write `{name}/container`)"
                )));
            }
            if name == autoheal_containers::DEFAULT_ENGINE {
                return Err(fail("`default` is the name of `container_engine`".into()));
            }
            let address = EngineAddress::parse(&engine.address).map_err(|e| fail(e.to_string()))?;
            let files = [&engine.ca_file, &engine.cert_file, &engine.key_file].map(|f| f.trim().to_owned());
            let tls = match files.iter().filter(|f| !f.is_empty()).count() {
                0 => None,
                3 => {
                    if matches!(address, EngineAddress::Unix(_)) {
                        return Err(fail("ca_file, cert_file and key_file are for tcp:// engines".into()));
                    }
                    for file in &files {
                        if !std::path::Path::new(file).is_file() {
                            return Err(fail(format!("{file}: no such file")));
                        }
                    }
                    let [ca, cert, key] = files.map(PathBuf::from);
                    Some(EngineTls { ca, cert, key })
                }
                _ => return Err(fail("ca_file, cert_file and key_file go together".into())),
            };
            Ok((name.clone(), NamedEngine { address, tls }))
        })
        .collect()
}

/// The runtime the capability calls go to: `default` alone, or routing
/// `NAME/container` to the named engines.
pub fn runtime(
    default: Arc<dyn ContainerRuntime>,
    named: &BTreeMap<String, NamedEngine>,
    call_timeout: Duration,
) -> Arc<dyn ContainerRuntime> {
    if named.is_empty() {
        return default;
    }
    let named = named
        .iter()
        .map(|(name, engine)| {
            let mut runtime = DockerRuntime::new(engine.address.clone(), call_timeout);
            if let Some(tls) = &engine.tls {
                runtime = runtime.with_tls(tls.clone());
            }
            (name.clone(), Arc::new(runtime) as Arc<dyn ContainerRuntime>)
        })
        .collect();
    Arc::new(Engines::new(default, named))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine(address: &str) -> RawEngine {
        RawEngine {
            address: address.into(),
            ca_file: String::new(),
            cert_file: String::new(),
            key_file: String::new(),
        }
    }

    #[test]
    fn engines_are_checked_and_named_in_errors() {
        let ok: BTreeMap<_, _> = [("edge".to_owned(), engine("unix:///run/podman.sock"))].into();
        assert_eq!(validate(&ok).unwrap()["edge"].tls, None);
        let err = |name: &str, raw: RawEngine| {
            validate(&[(name.to_owned(), raw)].into())
                .unwrap_err()
                .to_string()
        };
        assert!(err("Edge", engine("unix:///x")).contains("engines.Edge"));
        assert!(err("default", engine("unix:///x")).contains("container_engine"));
        assert!(err("edge", engine("ftp://x")).contains("engines.edge"));
        let mut half = engine("tcp://127.0.0.1:2376");
        half.ca_file = "/ca.pem".into();
        assert!(err("edge", half).contains("go together"));
        let mut unix = engine("unix:///x");
        (unix.ca_file, unix.cert_file, unix.key_file) = ("/a".into(), "/b".into(), "/c".into());
        assert!(err("edge", unix).contains("tcp://"));
    }
}
