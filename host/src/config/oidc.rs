//! `[auth.oidc]` (sign-in through an OpenID provider) and `[[auth.roles]]`
//! (which groups of the ID token's groups claim get which role), as
//! written and as checked.
//!
//! ```toml
//! public_url = "https://autoheal.example.com"
//!
//! [auth.oidc]
//! issuer = "https://sso.example.com/realms/ops"
//! client_id = "autoheal"
//! client_secret_file = "/run/secrets/oidc-client-secret"
//!
//! [[auth.roles]]
//! group = "sre"
//! role = "operator"
//!
//! [[auth.roles]]
//! group = "crm-team"
//! role = "approver"
//! plugins = ["restart-crm-*"]
//! ```

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::auth::oidc::OidcSettings;
use crate::auth::roles::RoleRule;
use crate::auth::{Plugins, Role};

/// Longest session (and CLI token) lifetime accepted: a stolen cookie must
/// stop working within a week whatever the config says.
pub const MAX_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);

/// Shortest: a session must outlive the sign-in that makes it.
pub const MIN_LIFETIME: Duration = Duration::from_secs(60);

/// Shortest session signing key (`session_key_file`), in bytes.
pub const MIN_SESSION_KEY_LEN: usize = 32;

/// `[auth.oidc]` as written.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawOidc {
    /// The provider's issuer URL; its discovery document is
    /// `issuer/.well-known/openid-configuration`.
    pub issuer: String,
    /// This host's client id at the provider.
    pub client_id: String,
    /// File holding the client secret (or `AUTOHEAL_OIDC_CLIENT_SECRET`);
    /// neither: a public client (PKCE alone).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret_file: Option<PathBuf>,
    /// Scopes asked for; `openid` is added when missing.
    pub scopes: Vec<String>,
    /// The ID token claim holding the person's groups.
    pub groups_claim: String,
    /// How long a console session lasts (at most 7 days).
    pub session_lifetime: String,
    /// How long a token the console issues for the CLI lasts (at most 7 days).
    pub cli_token_lifetime: String,
    /// File holding the key sessions are signed with (at least 32 bytes);
    /// unset: derived from the cluster secret on replicas, else random at
    /// start (sessions end with the process).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_key_file: Option<PathBuf>,
    /// PEM bundle of the CA(s) the provider's certificate is checked
    /// against, instead of the system's roots (a provider behind a
    /// private CA).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// The secret from the environment.
    #[serde(skip)]
    pub client_secret: Option<String>,
}

impl Default for RawOidc {
    fn default() -> Self {
        Self {
            issuer: String::new(),
            client_id: String::new(),
            client_secret_file: None,
            scopes: ["openid", "profile", "email"].map(str::to_owned).to_vec(),
            groups_claim: "groups".into(),
            session_lifetime: "8h".into(),
            cli_token_lifetime: "12h".into(),
            session_key_file: None,
            ca_file: None,
            client_secret: None,
        }
    }
}

impl fmt::Debug for RawOidc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawOidc")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("client_secret_file", &self.client_secret_file)
            .field("scopes", &self.scopes)
            .field("groups_claim", &self.groups_claim)
            .field("session_lifetime", &self.session_lifetime)
            .field("cli_token_lifetime", &self.cli_token_lifetime)
            .field("session_key_file", &self.session_key_file)
            .field("ca_file", &self.ca_file)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "[redacted]"),
            )
            .finish()
    }
}

/// One `[[auth.roles]]` table as written.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoleRule {
    /// A group of the groups claim.
    pub group: String,
    /// `viewer`, `operator` or `approver`.
    pub role: String,
    /// Plugin name patterns (`*` matches any run of characters); empty:
    /// every plugin and the host-wide switches.
    #[serde(default)]
    pub plugins: Vec<String>,
}

/// A bad `[auth.oidc]` or `[[auth.roles]]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OidcConfigError {
    /// A key of `[auth.oidc]`.
    #[error("config key `auth.oidc.{key}`: {message}")]
    Oidc {
        /// The key.
        key: &'static str,
        /// What is wrong (never a secret).
        message: String,
    },
    /// A `[[auth.roles]]` table.
    #[error("[[auth.roles]] #{number}: {message}")]
    Role {
        /// Its place, from 1.
        number: usize,
        /// What is wrong.
        message: String,
    },
}

impl RawOidc {
    /// Checks the settings; `public_url` gives the callback and whether
    /// cookies are `Secure`.
    pub fn validate(&self, public_url: &str) -> Result<OidcSettings, OidcConfigError> {
        let invalid = |key: &'static str, message: String| OidcConfigError::Oidc { key, message };
        let issuer = self.issuer.trim();
        if !(issuer.starts_with("https://") || issuer.starts_with("http://")) {
            return Err(invalid(
                "issuer",
                format!(
                    "{issuer:?} is not an http(s) URL (the provider's issuer, e.g. https://sso.example.com/realms/ops)"
                ),
            ));
        }
        if self.client_id.trim().is_empty() {
            return Err(invalid(
                "client_id",
                "required: this host's client id at the provider".into(),
            ));
        }
        if public_url.trim().is_empty() {
            return Err(invalid(
                "issuer",
                "sign-in needs `public_url`: the provider sends people back to public_url + /auth/callback"
                    .into(),
            ));
        }
        let client_secret = match (&self.client_secret, &self.client_secret_file) {
            (Some(secret), _) => Some(secret.trim().to_owned()),
            (None, Some(path)) => Some(
                std::fs::read_to_string(path)
                    .map_err(|e| invalid("client_secret_file", format!("{}: {e}", path.display())))?
                    .trim()
                    .to_owned(),
            ),
            (None, None) => None,
        };
        if client_secret.as_ref().is_some_and(String::is_empty) {
            return Err(invalid("client_secret_file", "the client secret is empty".into()));
        }
        let mut scopes: Vec<String> = self
            .scopes
            .iter()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect();
        if !scopes.iter().any(|s| s == "openid") {
            scopes.insert(0, "openid".into());
        }
        if self.groups_claim.trim().is_empty() {
            return Err(invalid(
                "groups_claim",
                "must name a claim, e.g. \"groups\"".into(),
            ));
        }
        let lifetime = |key: &'static str, text: &str| {
            let value = humantime::parse_duration(text.trim())
                .map_err(|e| invalid(key, format!("{text:?}: {e} (e.g. \"8h\")")))?;
            if !(MIN_LIFETIME..=MAX_LIFETIME).contains(&value) {
                return Err(invalid(key, format!("{text:?} is outside 1m to 7d")));
            }
            Ok(value)
        };
        let session_key = match &self.session_key_file {
            None => None,
            Some(path) => {
                let bytes = std::fs::read(path)
                    .map_err(|e| invalid("session_key_file", format!("{}: {e}", path.display())))?;
                let key = bytes.trim_ascii().to_vec();
                if key.len() < MIN_SESSION_KEY_LEN {
                    return Err(invalid(
                        "session_key_file",
                        format!(
                            "{}: {} bytes; the key must have at least {MIN_SESSION_KEY_LEN} (e.g. `openssl rand -hex 32 > FILE`)",
                            path.display(),
                            key.len()
                        ),
                    ));
                }
                Some(key)
            }
        };
        let ca_pem = match &self.ca_file {
            None => None,
            Some(path) => {
                if !issuer.starts_with("https://") {
                    return Err(invalid(
                        "ca_file",
                        format!("{issuer:?} is not https://: a CA file checks only an https provider"),
                    ));
                }
                let pem = std::fs::read(path)
                    .map_err(|e| invalid("ca_file", format!("{}: {e}", path.display())))?;
                if !pem.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----") {
                    return Err(invalid(
                        "ca_file",
                        format!("{}: no PEM certificate in it", path.display()),
                    ));
                }
                Some(pem)
            }
        };
        let base = public_url.trim().trim_end_matches('/');
        Ok(OidcSettings {
            ca_pem,
            issuer: issuer.to_owned(),
            client_id: self.client_id.trim().to_owned(),
            client_secret,
            scopes,
            groups_claim: self.groups_claim.trim().to_owned(),
            session_lifetime: lifetime("session_lifetime", &self.session_lifetime)?,
            cli_token_lifetime: lifetime("cli_token_lifetime", &self.cli_token_lifetime)?,
            redirect_url: format!("{base}/auth/callback"),
            secure_cookies: base.starts_with("https://"),
            session_key,
        })
    }
}

/// Checks the `[[auth.roles]]` tables.
pub fn validate_roles(raw: &[RawRoleRule]) -> Result<Vec<RoleRule>, OidcConfigError> {
    raw.iter()
        .enumerate()
        .map(|(i, rule)| {
            let number = i + 1;
            let invalid = |message: String| OidcConfigError::Role { number, message };
            let group = rule.group.trim();
            if group.is_empty() {
                return Err(invalid("`group` is required: a group of the groups claim".into()));
            }
            let role = match rule.role.trim() {
                "viewer" => Role::Viewer,
                "operator" => Role::Operator,
                "approver" => Role::Approver,
                other => {
                    return Err(invalid(format!(
                        "role {other:?} is not one of viewer, operator, approver"
                    )));
                }
            };
            let patterns: Vec<String> = rule.plugins.iter().map(|p| p.trim().to_owned()).collect();
            if patterns.iter().any(String::is_empty) {
                return Err(invalid("an empty plugin pattern".into()));
            }
            Ok(RoleRule {
                number,
                group: group.to_owned(),
                role,
                plugins: match patterns.is_empty() {
                    true => Plugins::All,
                    false => Plugins::Matching(patterns),
                },
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw() -> RawOidc {
        RawOidc {
            issuer: "https://sso.example.com/realms/ops".into(),
            client_id: "autoheal".into(),
            ..RawOidc::default()
        }
    }

    #[test]
    fn defaults_give_a_callback_under_public_url_and_openid() {
        let settings = raw().validate("https://autoheal.example.com/").unwrap();
        assert_eq!(
            settings.redirect_url,
            "https://autoheal.example.com/auth/callback"
        );
        assert!(settings.secure_cookies);
        assert_eq!(settings.scopes, ["openid", "profile", "email"]);
        assert_eq!(settings.session_lifetime, Duration::from_secs(8 * 3600));
        assert_eq!(settings.groups_claim, "groups");
        let plain = raw().validate("http://127.0.0.1:9009").unwrap();
        assert!(!plain.secure_cookies);
        let with_groups = RawOidc {
            scopes: vec!["groups".into()],
            ..raw()
        };
        assert_eq!(
            with_groups.validate("http://h").unwrap().scopes,
            ["openid", "groups"]
        );
    }

    #[test]
    fn bad_settings_are_named() {
        for (bad, key) in [
            (
                RawOidc {
                    issuer: "sso.example.com".into(),
                    ..raw()
                },
                "auth.oidc.issuer",
            ),
            (
                RawOidc {
                    client_id: " ".into(),
                    ..raw()
                },
                "auth.oidc.client_id",
            ),
            (
                RawOidc {
                    session_lifetime: "30d".into(),
                    ..raw()
                },
                "auth.oidc.session_lifetime",
            ),
            (
                RawOidc {
                    session_lifetime: "soon".into(),
                    ..raw()
                },
                "auth.oidc.session_lifetime",
            ),
            (
                RawOidc {
                    cli_token_lifetime: "1s".into(),
                    ..raw()
                },
                "auth.oidc.cli_token_lifetime",
            ),
            (
                RawOidc {
                    groups_claim: "".into(),
                    ..raw()
                },
                "auth.oidc.groups_claim",
            ),
            (
                RawOidc {
                    session_key_file: Some("/nonexistent/key".into()),
                    ..raw()
                },
                "auth.oidc.session_key_file",
            ),
        ] {
            let err = bad.validate("http://127.0.0.1:9009").unwrap_err().to_string();
            assert!(err.contains(key), "{err}");
        }
        let err = raw().validate("").unwrap_err().to_string();
        assert!(err.contains("public_url"), "{err}");
    }

    #[test]
    fn a_ca_file_must_hold_a_certificate_and_serve_an_https_issuer() {
        let dir = tempfile::tempdir().unwrap();
        let not_pem = dir.path().join("ca.txt");
        std::fs::write(&not_pem, "not a certificate").unwrap();
        let https = |ca: &str| RawOidc {
            issuer: "https://sso.example.com".into(),
            ca_file: Some(ca.into()),
            ..raw()
        };
        for (bad, words) in [
            (https("/nonexistent/ca.pem"), "/nonexistent/ca.pem"),
            (https(not_pem.to_str().unwrap()), "no PEM certificate"),
            (
                RawOidc {
                    issuer: "http://127.0.0.1:5556".into(),
                    ..https(not_pem.to_str().unwrap())
                },
                "not https://",
            ),
        ] {
            let err = bad.validate("http://127.0.0.1:9009").unwrap_err().to_string();
            assert!(err.contains("auth.oidc.ca_file") && err.contains(words), "{err}");
        }
    }

    #[test]
    fn the_secret_is_never_shown() {
        let with_secret = RawOidc {
            client_secret: Some("very-secret-value".into()),
            ..raw()
        };
        assert!(!format!("{with_secret:?}").contains("very-secret-value"));
        let settings = with_secret.validate("http://h").unwrap();
        assert_eq!(settings.client_secret.as_deref(), Some("very-secret-value"));
        assert!(!format!("{settings:?}").contains("very-secret-value"));
    }

    #[test]
    fn role_rules_are_checked_and_numbered() {
        let rules = validate_roles(&[
            RawRoleRule {
                group: "sre".into(),
                role: "operator".into(),
                plugins: vec![],
            },
            RawRoleRule {
                group: "crm".into(),
                role: "approver".into(),
                plugins: vec!["restart-crm-*".into()],
            },
        ])
        .unwrap();
        assert_eq!(rules[0].plugins, Plugins::All);
        assert_eq!((rules[1].number, rules[1].role), (2, Role::Approver));
        let err = validate_roles(&[
            RawRoleRule {
                group: "sre".into(),
                role: "viewer".into(),
                plugins: vec![],
            },
            RawRoleRule {
                group: "sre".into(),
                role: "admin".into(),
                plugins: vec![],
            },
        ])
        .unwrap_err()
        .to_string();
        assert!(err.contains("#2") && err.contains("\"admin\""), "{err}");
        let err = validate_roles(&[RawRoleRule::default()]).unwrap_err().to_string();
        assert!(err.contains("group"), "{err}");
    }
}
