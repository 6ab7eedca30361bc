//! `[auth.tokens.NAME]`: named machine tokens, each with its roles and the
//! plugins they cover, its value read from a file or the environment —
//! never from the config file itself.
//!
//! ```toml
//! [auth.tokens.ci]
//! scopes = ["operator"]
//! plugins = ["restart-*"]
//! env = "AUTOHEAL_CI_TOKEN"
//!
//! [auth.tokens.dash]
//! scopes = ["viewer"]
//! file = "/run/secrets/dash-token"
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::auth::named::{NamedToken, NamedTokens};
use crate::auth::{Grant, MIN_TOKEN_LEN, Plugins, Role, TokenSet};

/// One named token as written.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawToken {
    /// Its roles: `webhook`, `viewer` (or `read`), `operator`, `approver`.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// The plugins its roles cover (`*` globs); absent: every plugin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugins: Option<Vec<String>>,
    /// A file whose first non-comment line is the token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<PathBuf>,
    /// An environment variable holding the token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
}

/// A `[auth.tokens.NAME]` that cannot be used; it never shows a value.
#[derive(Debug, thiserror::Error)]
#[error("config key `auth.tokens.{name}{field}`: {message}")]
pub struct TokenConfigError {
    /// The token's name.
    pub name: String,
    /// `.scopes`, `.file`, ... or empty for the table itself.
    pub field: &'static str,
    /// What is wrong.
    pub message: String,
}

/// `[a-z0-9][a-z0-9_-]*`: a name fit for `by` and messages.
fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
        && name.len() <= 64
}

fn role(scope: &str) -> Option<Role> {
    match scope {
        "webhook" => Some(Role::Webhook),
        "viewer" | "read" => Some(Role::Viewer),
        "operator" => Some(Role::Operator),
        "approver" => Some(Role::Approver),
        _ => None,
    }
}

/// Reads and checks every named token; `env` looks a variable up; `shared`
/// holds the shared tokens, which no named token may repeat.
pub fn resolve(
    raw: &BTreeMap<String, RawToken>,
    shared: &[&TokenSet],
    env: impl Fn(&str) -> Option<String>,
) -> Result<NamedTokens, TokenConfigError> {
    let mut tokens: Vec<(NamedToken, String)> = Vec::new();
    for (name, token) in raw {
        let fail = |field: &'static str, message: String| TokenConfigError {
            name: name.clone(),
            field,
            message,
        };
        if !valid_name(name) {
            return Err(fail(
                "",
                "a token's name is [a-z0-9][a-z0-9_-]*, at most 64 bytes".into(),
            ));
        }
        if token.scopes.is_empty() {
            return Err(fail(
                ".scopes",
                "give at least one of webhook, viewer (or read), operator, approver".into(),
            ));
        }
        let mut roles = Vec::new();
        for scope in &token.scopes {
            let role = role(scope).ok_or_else(|| {
                fail(
                    ".scopes",
                    format!(
                        "unknown scope {scope:?}: expected webhook, viewer (or read), operator or approver"
                    ),
                )
            })?;
            if !roles.contains(&role) {
                roles.push(role);
            }
        }
        let plugins = match &token.plugins {
            None => Plugins::All,
            Some(globs) if globs.is_empty() || globs.iter().any(|g| g.trim().is_empty()) => {
                return Err(fail(
                    ".plugins",
                    "give plugin names or globs (`restart-*`), or leave the key out for every plugin".into(),
                ));
            }
            Some(globs) => Plugins::Matching(globs.clone()),
        };
        let value = match (&token.file, &token.env) {
            (Some(path), None) => {
                let lines = TokenSet::read_file(path).map_err(|e| fail(".file", e.to_string()))?;
                lines
                    .into_iter()
                    .next()
                    .ok_or_else(|| fail(".file", format!("{} holds no token", path.display())))?
            }
            (None, Some(var)) => {
                let value = env(var).map(|v| v.trim().to_owned()).unwrap_or_default();
                if value.is_empty() {
                    return Err(fail(".env", format!("environment variable {var} is not set")));
                }
                value
            }
            (None, None) => {
                return Err(fail(
                    "",
                    "give the token's source: `file = \"/path\"` or `env = \"VAR\"` (never the value itself)"
                        .into(),
                ));
            }
            (Some(_), Some(_)) => return Err(fail("", "give `file` or `env`, not both".into())),
        };
        let length = value.chars().count();
        if length < MIN_TOKEN_LEN {
            return Err(fail(
                "",
                format!("the token is {length} characters long; tokens must have at least {MIN_TOKEN_LEN}"),
            ));
        }
        if let Some((other, _)) = tokens.iter().find(|(_, v)| *v == value) {
            return Err(fail(
                "",
                format!(
                    "the same token as [auth.tokens.{}]: each name needs its own, or `by` could not say who",
                    other.name
                ),
            ));
        }
        if shared.iter().any(|set| set.accepts(&value)) {
            return Err(fail(
                "",
                "the same token as a shared one (AUTOHEAL_*_TOKEN): each name needs its own".into(),
            ));
        }
        let rule = format!("[auth.tokens.{name}]");
        let grants = roles
            .into_iter()
            .map(|role| Grant {
                role,
                plugins: plugins.clone(),
                rule: rule.clone(),
            })
            .collect();
        tokens.push((NamedToken::new(name, &value, grants), value));
    }
    Ok(NamedTokens::new(tokens.into_iter().map(|(t, _)| t).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(name: &str, token: RawToken) -> Result<NamedTokens, String> {
        let raw = BTreeMap::from([(name.to_owned(), token)]);
        resolve(&raw, &[], |var| {
            (var == "CI_TOKEN").then(|| "ci-token-0123456789".to_owned())
        })
        .map_err(|e| e.to_string())
    }

    fn env_token(scopes: &[&str]) -> RawToken {
        RawToken {
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            env: Some("CI_TOKEN".into()),
            ..RawToken::default()
        }
    }

    #[test]
    fn a_token_from_the_environment_grants_each_scope_with_its_rule() {
        let tokens = one(
            "ci",
            RawToken {
                plugins: Some(vec!["restart-*".into()]),
                ..env_token(&["operator", "read"])
            },
        )
        .unwrap();
        let ci = tokens.identify("ci-token-0123456789").unwrap();
        assert_eq!(ci.id, "ci");
        let roles: Vec<Role> = ci.grants.iter().map(|g| g.role).collect();
        assert_eq!(roles, [Role::Operator, Role::Viewer]);
        assert!(ci.grants.iter().all(|g| g.rule == "[auth.tokens.ci]"));
        assert!(ci.may(Role::Operator, Some("restart-crm")).is_ok());
        assert!(ci.may(Role::Operator, None).is_err());
    }

    #[test]
    fn bad_tokens_are_clear_errors_naming_the_key() {
        let err = one("ci", env_token(&["admin"])).unwrap_err();
        assert!(
            err.contains("auth.tokens.ci.scopes") && err.contains("\"admin\""),
            "{err}"
        );
        let err = one("CI", env_token(&["operator"])).unwrap_err();
        assert!(
            err.contains("`auth.tokens.CI`") && err.contains("[a-z0-9]"),
            "{err}"
        );
        let err = one(
            "ci",
            RawToken {
                scopes: vec!["operator".into()],
                ..RawToken::default()
            },
        )
        .unwrap_err();
        assert!(err.contains("`auth.tokens.ci`") && err.contains("file"), "{err}");
        let err = one(
            "ci",
            RawToken {
                env: Some("UNSET_VAR".into()),
                ..env_token(&["operator"])
            },
        )
        .unwrap_err();
        assert!(
            err.contains("auth.tokens.ci.env") && err.contains("UNSET_VAR"),
            "{err}"
        );
        let err = one("ci", env_token(&[])).unwrap_err();
        assert!(err.contains("auth.tokens.ci.scopes"), "{err}");
    }

    #[test]
    fn short_or_repeated_values_are_refused_without_showing_them() {
        let dir = tempfile::tempdir().unwrap();
        let short = dir.path().join("short");
        std::fs::write(&short, "# rotated\nshort-secret\n").unwrap();
        let err = one(
            "dash",
            RawToken {
                scopes: vec!["viewer".into()],
                file: Some(short),
                ..RawToken::default()
            },
        )
        .unwrap_err();
        assert!(
            err.contains("auth.tokens.dash") && err.contains("12 characters"),
            "{err}"
        );
        assert!(!err.contains("short-secret"), "{err}");

        let raw = BTreeMap::from([
            ("ci".to_owned(), env_token(&["operator"])),
            ("dash".to_owned(), env_token(&["viewer"])),
        ]);
        let err = resolve(&raw, &[], |_| Some("ci-token-0123456789".into()))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("auth.tokens.dash") && err.contains("[auth.tokens.ci]"),
            "{err}"
        );
        assert!(!err.contains("ci-token-0123456789"), "{err}");

        let shared = TokenSet::new(["ci-token-0123456789"]);
        let err = resolve(
            &BTreeMap::from([("ci".to_owned(), env_token(&["operator"]))]),
            &[&shared],
            |_| Some("ci-token-0123456789".into()),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("shared"), "{err}");
    }

    #[test]
    fn a_file_gives_its_first_non_comment_line() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("dash");
        std::fs::write(&file, "# the dashboard's\n\ndash-token-0123456789\n").unwrap();
        let tokens = one(
            "dash",
            RawToken {
                scopes: vec!["viewer".into()],
                file: Some(file),
                ..RawToken::default()
            },
        )
        .unwrap();
        assert_eq!(tokens.identify("dash-token-0123456789").unwrap().id, "dash");
    }
}
