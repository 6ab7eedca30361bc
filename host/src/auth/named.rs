//! Named machine tokens (`[auth.tokens.NAME]`): each proves a principal of
//! kind `token` whose id is its name and whose grants are its scopes.
//!
//! Kept, like the shared tokens, only as SHA-256 digests; a presented token
//! is compared with every digest without stopping early, so the time an
//! answer takes does not say which name (if any) it belongs to.

use std::fmt;

use super::{Grant, Principal, PrincipalKind, constant_time_eq, digest};

/// One named token: its name, its value's digest and what it may do.
#[derive(Clone, PartialEq, Eq)]
pub struct NamedToken {
    /// `[auth.tokens.NAME]`'s NAME: the principal's id, `by` in the trail.
    pub name: String,
    digest: [u8; 32],
    /// One grant per scope, each with the rule `[auth.tokens.NAME]`.
    pub grants: Vec<Grant>,
}

impl NamedToken {
    /// The token `name` of value `value`, granting `grants`.
    pub fn new(name: &str, value: &str, grants: Vec<Grant>) -> Self {
        NamedToken {
            name: name.to_owned(),
            digest: digest(value),
            grants,
        }
    }

    /// The principal it proves.
    pub fn principal(&self) -> Principal {
        Principal {
            kind: PrincipalKind::Token,
            id: self.name.clone(),
            name: None,
            groups: Vec::new(),
            grants: self.grants.clone(),
        }
    }
}

/// Every named token.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct NamedTokens {
    tokens: Vec<NamedToken>,
}

impl fmt::Debug for NamedTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.tokens.iter().map(|t| t.name.as_str()).collect();
        write!(f, "NamedTokens({names:?})")
    }
}

impl NamedTokens {
    /// These tokens (their names and values already checked: see `config::tokens`).
    pub fn new(tokens: Vec<NamedToken>) -> Self {
        NamedTokens { tokens }
    }

    /// True when none is configured.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// The tokens, for grants without values (e.g. whether any may operate).
    pub fn iter(&self) -> impl Iterator<Item = &NamedToken> {
        self.tokens.iter()
    }

    /// The principal `candidate` proves, if it is one of the tokens; every
    /// digest is compared, whichever matches.
    pub fn identify(&self, candidate: &str) -> Option<Principal> {
        let candidate = digest(candidate);
        let mut found: Option<&NamedToken> = None;
        for token in &self.tokens {
            if constant_time_eq(&token.digest, &candidate) {
                found = Some(token);
            }
        }
        found.map(NamedToken::principal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{Plugins, Role};

    #[test]
    fn a_named_token_proves_its_name_and_scopes_and_nothing_else() {
        let grant = Grant {
            role: Role::Operator,
            plugins: Plugins::Matching(vec!["restart-*".into()]),
            rule: "[auth.tokens.ci]".into(),
        };
        let tokens = NamedTokens::new(vec![
            NamedToken::new("ci", "ci-token-0123456789", vec![grant.clone()]),
            NamedToken::new("dash", "dash-token-0123456789", Vec::new()),
        ]);
        let ci = tokens.identify("ci-token-0123456789").unwrap();
        assert_eq!((ci.kind, ci.id.as_str()), (PrincipalKind::Token, "ci"));
        assert_eq!(ci.grants, vec![grant]);
        assert_eq!(tokens.identify("dash-token-0123456789").unwrap().id, "dash");
        assert!(tokens.identify("ci-token-012345678").is_none());
        assert_eq!(format!("{tokens:?}"), r#"NamedTokens(["ci", "dash"])"#);
    }
}
