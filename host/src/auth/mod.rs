//! Who may call what: the three credential scopes and the token sets that
//! check them.
//!
//! Tokens are kept only as SHA-256 digests, and a candidate is compared with
//! every digest of its set without stopping early, so neither the time an
//! answer takes nor a memory dump says what a token is. Tokens are never
//! logged, audited or shown.

use std::fmt;
use std::path::Path;

use sha2::{Digest, Sha256};

pub mod named;
pub mod oidc;
pub mod principal;
pub mod roles;
pub mod session;

pub use principal::{Denied, Grant, Plugins, Principal, PrincipalKind, Role};
pub use roles::grants_for_groups;

/// Shortest token accepted: guessing one must be hopeless.
pub const MIN_TOKEN_LEN: usize = 16;

/// Which credentials a route takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// `POST /alert`: what Alertmanager's `http_config` sends.
    Webhook,
    /// Routes that change state: `/ack`, plugin reload and test, `/admin/*`.
    Operator,
    /// Read-only routes: `/`, `/audit`, `/events`, `/console`, `/vision`, `/metrics`.
    Read,
}

impl Scope {
    /// The name in `auth_failed` events and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Webhook => "webhook",
            Scope::Operator => "operator",
            Scope::Read => "read",
        }
    }
}

/// A set of accepted tokens (several at once, for rotation).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct TokenSet {
    digests: Vec<[u8; 32]>,
}

impl fmt::Debug for TokenSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenSet({} tokens)", self.digests.len())
    }
}

/// A token that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Shorter than [`MIN_TOKEN_LEN`]; the token itself is not shown.
    #[error("a token is {len} characters long; tokens must have at least {MIN_TOKEN_LEN}")]
    TooShort {
        /// Its length.
        len: usize,
    },
    /// A token file that cannot be read.
    #[error("cannot read token file {path}: {message}")]
    File {
        /// The file.
        path: String,
        /// What the filesystem said.
        message: String,
    },
}

impl TokenSet {
    /// Tokens from a variable's value: separated by commas, spaces or newlines.
    pub fn parse_list(text: &str) -> Result<Vec<String>, TokenError> {
        let tokens: Vec<String> = text
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .collect();
        match tokens.iter().find(|t| t.chars().count() < MIN_TOKEN_LEN) {
            Some(short) => Err(TokenError::TooShort {
                len: short.chars().count(),
            }),
            None => Ok(tokens),
        }
    }

    /// Tokens from a file: one per line; blank lines and `#` comments skipped.
    pub fn read_file(path: &Path) -> Result<Vec<String>, TokenError> {
        let text = std::fs::read_to_string(path).map_err(|e| TokenError::File {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        let lines: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect();
        Self::parse_list(&lines.join("\n"))
    }

    /// The set of these tokens.
    pub fn new<'a>(tokens: impl IntoIterator<Item = &'a str>) -> Self {
        Self {
            digests: tokens.into_iter().map(digest).collect(),
        }
    }

    /// True when no token is configured.
    pub fn is_empty(&self) -> bool {
        self.digests.is_empty()
    }

    /// True when `candidate` is one of the tokens, in time that does not
    /// depend on which one or on how much of it matches.
    pub fn accepts(&self, candidate: &str) -> bool {
        let candidate = digest(candidate);
        let mut found = 0u8;
        for known in &self.digests {
            found |= u8::from(constant_time_eq(known, &candidate));
        }
        found == 1
    }

    /// Both sets' tokens (an operator token also reads).
    pub fn union(&self, other: &TokenSet) -> TokenSet {
        let mut digests = self.digests.clone();
        digests.extend(other.digests.iter().copied());
        TokenSet { digests }
    }
}

/// A token's SHA-256 digest: all that is kept of it.
pub(crate) fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Whether `a` and `b` are equal, in time that depends on their lengths
/// only, not on how much of them matches (token digests, CSRF tokens).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_each_of_several_tokens_and_nothing_else() {
        let set = TokenSet::new(["old-token-0123456789", "new-token-0123456789"]);
        assert!(set.accepts("old-token-0123456789"));
        assert!(set.accepts("new-token-0123456789"));
        assert!(!set.accepts("new-token-012345678"));
        assert!(!set.accepts(""));
        assert!(!TokenSet::default().accepts(""));
        assert_eq!(format!("{set:?}"), "TokenSet(2 tokens)");
    }

    #[test]
    fn lists_split_and_short_tokens_are_refused_without_showing_them() {
        assert_eq!(
            TokenSet::parse_list(" a-long-enough-token1, a-long-enough-token2\n").unwrap(),
            ["a-long-enough-token1", "a-long-enough-token2"]
        );
        let err = TokenSet::parse_list("a-long-enough-token1,short-secret")
            .unwrap_err()
            .to_string();
        assert!(err.contains("12 characters"), "{err}");
        assert!(!err.contains("short-secret"), "{err}");
    }
}
