//! `[secrets]`: values the host puts into plugins' HTTP requests for them
//! (`[capabilities.http] secrets` of a manifest names them; a plugin never
//! reads one). Each comes from the environment, a file or, for tests, the
//! config itself; none is ever printed: `Debug` and serialisation show
//! `[redacted]`.
//!
//! ```toml
//! [secrets]
//! RUNBOOK_TOKEN = { env = "RUNBOOK_TOKEN" }
//! FLAGS_KEY = { file = "/run/secrets/flags-key" }
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize, Serializer};

use autoheal_sandbox::capability::{MIN_SECRET_BYTES, Secrets};
use autoheal_sandbox::manifest::is_secret_name;

/// Longest secret value.
pub const MAX_SECRET_BYTES: usize = 16 * 1024;

/// One secret as written: exactly one of its sources.
#[derive(Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSecret {
    /// An environment variable holding the value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
    /// A file holding the value (a trailing newline is not part of it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<PathBuf>,
    /// The value itself (tests; prefer `env` or `file`).
    #[serde(default, skip_serializing_if = "Option::is_none", serialize_with = "redacted")]
    pub value: Option<String>,
}

fn redacted<S: Serializer>(value: &Option<String>, serializer: S) -> Result<S::Ok, S::Error> {
    value.as_ref().map(|_| "[redacted]").serialize(serializer)
}

impl std::fmt::Debug for RawSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawSecret")
            .field("env", &self.env)
            .field("file", &self.file)
            .field("value", &self.value.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

/// A `[secrets]` entry that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("config key `secrets.{name}`: {message}")]
pub struct SecretConfigError {
    /// The secret.
    pub name: String,
    /// What is wrong (never the value).
    pub message: String,
}

/// Reads every secret from its source; `env` looks a variable up.
pub fn resolve(
    raw: &BTreeMap<String, RawSecret>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Secrets, SecretConfigError> {
    let mut values = BTreeMap::new();
    for (name, secret) in raw {
        let fail = |message: String| SecretConfigError {
            name: name.clone(),
            message,
        };
        if !is_secret_name(name) {
            return Err(fail(
                "a secret's name is [A-Z][A-Z0-9_]*, at most 64 bytes".into(),
            ));
        }
        let value = match (&secret.env, &secret.file, &secret.value) {
            (Some(var), None, None) => {
                env(var).ok_or_else(|| fail(format!("environment variable {var} is not set")))?
            }
            (None, Some(path), None) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| fail(format!("cannot read {}: {e}", path.display())))?;
                text.trim_end_matches(['\n', '\r']).to_owned()
            }
            (None, None, Some(value)) => value.clone(),
            _ => return Err(fail("give exactly one of `env`, `file` and `value`".into())),
        };
        if value.len() < MIN_SECRET_BYTES || value.len() > MAX_SECRET_BYTES {
            return Err(fail(format!(
                "its value has {} bytes; between {MIN_SECRET_BYTES} (shorter ones cannot be scrubbed \
                 from answers reliably) and {MAX_SECRET_BYTES}",
                value.len()
            )));
        }
        values.insert(name.clone(), value);
    }
    Ok(Secrets::new(values))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_come_from_their_source_and_are_never_shown() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("key");
        std::fs::write(&file, "from-the-file-1234\n").unwrap();
        let raw: BTreeMap<String, RawSecret> = toml::from_str(&format!(
            r#"A = {{ env = "VAR_A" }}
               B = {{ file = "{}" }}
               C = {{ value = "inline-value-xyz" }}"#,
            file.display()
        ))
        .unwrap();
        let secrets = resolve(&raw, |var| {
            (var == "VAR_A").then(|| "from-the-env-5678".to_owned())
        })
        .unwrap();
        assert_eq!(secrets.names().collect::<Vec<_>>(), ["A", "B", "C"]);
        let shown = format!("{raw:?} {secrets:?} {}", toml::to_string(&raw).unwrap());
        for value in ["from-the-env-5678", "from-the-file-1234", "inline-value-xyz"] {
            assert!(!shown.contains(value), "{shown}");
        }
        for (bad, why) in [
            (r#"lower = { value = "long-enough-value" }"#, "[A-Z]"),
            (r#"A = { value = "short" }"#, "between 8"),
            (r#"A = { env = "UNSET_VAR" }"#, "UNSET_VAR is not set"),
            (r#"A = { env = "X", value = "long-enough-value" }"#, "exactly one"),
            (r#"A = { file = "/nonexistent/secret" }"#, "cannot read"),
        ] {
            let raw: BTreeMap<String, RawSecret> = toml::from_str(bad).unwrap();
            let err = resolve(&raw, |_| None).unwrap_err().to_string();
            assert!(err.contains(why), "{bad}: {err}");
            assert!(!err.contains("long-enough-value"), "{err}");
        }
    }
}
