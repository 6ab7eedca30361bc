//! Who a request comes from, as its credentials prove it, and what that
//! identity may do.
//!
//! The guard (`http::guard`) turns a request's credentials into a
//! [`Principal`] and hands it to the handler as a request extension; a handler
//! never trusts a name the caller typed. What a principal may do is a list of
//! [`Grant`]s — a role, on every plugin or on the plugins a pattern names —
//! each remembering the rule it came from, so that a refusal can say which
//! rules were looked at.

use serde::Serialize;

use super::Scope;

/// How a principal was proven.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PrincipalKind {
    /// A person, signed in through the identity provider.
    Person,
    /// A named machine credential.
    Token,
    /// One of the shared, unnamed tokens (`AUTOHEAL_OPERATOR_TOKEN`, ...).
    SharedToken,
    /// No credential: a route this host leaves open.
    Anonymous,
}

impl PrincipalKind {
    /// The name in events (`by_kind`) and answers.
    pub fn as_str(self) -> &'static str {
        match self {
            PrincipalKind::Person => "person",
            PrincipalKind::Token => "token",
            PrincipalKind::SharedToken => "shared_token",
            PrincipalKind::Anonymous => "anonymous",
        }
    }
}

/// What a grant lets its holder do. The roles do not contain one another: an
/// operator (switches, pauses, acks, reloads) is not an approver, and both
/// may read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Sends alerts (`POST /alert`).
    Webhook,
    /// Reads: status, trail, events, console, metrics.
    Viewer,
    /// Changes the host's state: switches, pauses, acks, plugin reload and test.
    Operator,
    /// Answers approvals.
    Approver,
}

impl Role {
    /// The name in config and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Webhook => "webhook",
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Approver => "approver",
        }
    }
}

/// Which plugins a grant covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Plugins {
    /// Every plugin, and what belongs to none (the kill switch, dry-run).
    All,
    /// Plugins whose names match one of these patterns (`*` matches any run
    /// of characters): `restart-*`.
    Matching(Vec<String>),
}

impl Plugins {
    /// Whether `plugin` is covered; `None` (a host-wide action) only by [`Plugins::All`].
    pub fn cover(&self, plugin: Option<&str>) -> bool {
        match (self, plugin) {
            (Plugins::All, _) => true,
            (Plugins::Matching(_), None) => false,
            (Plugins::Matching(patterns), Some(name)) => patterns.iter().any(|p| glob_match(p, name)),
        }
    }
}

/// One role on some plugins, and the rule that gave it (for refusals).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Grant {
    /// The role.
    pub role: Role,
    /// The plugins it covers.
    pub plugins: Plugins,
    /// Where it came from, as an operator would find it: `[auth.tokens.ci]`,
    /// `[[auth.roles]] group = "sre"`, `AUTOHEAL_OPERATOR_TOKEN`.
    pub rule: String,
}

/// A verified caller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Principal {
    /// How it was proven.
    pub kind: PrincipalKind,
    /// Who: a person's subject (the ID token's `sub`), a token's configured
    /// name, a shared token's scope (`operator`), or `anonymous`.
    pub id: String,
    /// A person's display name (`name`, else `preferred_username`, else `email`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A person's groups, from the ID token's groups claim.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// What it may do.
    pub grants: Vec<Grant>,
}

/// A refusal: the principal lacks the role on what it asked for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Denied {
    /// For the 403's body: who, what was needed, and the rules looked at.
    pub message: String,
}

impl Principal {
    /// The holder of a shared token of `scope` (or, when the scope takes no
    /// token, anyone): what the host granted before there were roles. An
    /// operator token also approves and reads; a read token reads; a webhook
    /// token sends alerts.
    pub fn shared(scope: Scope, anonymous: bool) -> Self {
        let variable = match scope {
            Scope::Webhook => "AUTOHEAL_WEBHOOK_TOKEN",
            Scope::Operator => "AUTOHEAL_OPERATOR_TOKEN",
            Scope::Read => "AUTOHEAL_READ_TOKEN",
        };
        let rule = match anonymous {
            true => format!("no {variable} is set: the {} routes are open", scope.as_str()),
            false => variable.to_owned(),
        };
        let roles: &[Role] = match scope {
            Scope::Webhook => &[Role::Webhook],
            Scope::Read => &[Role::Viewer],
            Scope::Operator => &[Role::Viewer, Role::Operator, Role::Approver],
        };
        Principal {
            kind: match anonymous {
                true => PrincipalKind::Anonymous,
                false => PrincipalKind::SharedToken,
            },
            id: match anonymous {
                true => "anonymous".to_owned(),
                false => scope.as_str().to_owned(),
            },
            name: None,
            groups: Vec::new(),
            grants: roles
                .iter()
                .map(|&role| Grant {
                    role,
                    plugins: Plugins::All,
                    rule: rule.clone(),
                })
                .collect(),
        }
    }

    /// Whether this principal holds `role` on `plugin` (`None`: a host-wide
    /// action, which needs the role on every plugin).
    pub fn may(&self, role: Role, plugin: Option<&str>) -> Result<(), Denied> {
        if self
            .grants
            .iter()
            .any(|g| g.role == role && g.plugins.cover(plugin))
        {
            return Ok(());
        }
        let what = match plugin {
            Some(name) => format!("{} of plugin {name:?}", role.as_str()),
            None => format!("{} of every plugin", role.as_str()),
        };
        let looked_at: Vec<String> = self
            .grants
            .iter()
            .filter(|g| g.role == role)
            .map(|g| match &g.plugins {
                Plugins::All => format!("{} (all plugins)", g.rule),
                Plugins::Matching(p) => format!("{} (plugins {})", g.rule, p.join(", ")),
            })
            .collect();
        let rules = match looked_at.is_empty() {
            true => format!("no rule grants {} to {}", role.as_str(), self.describe()),
            false => format!(
                "the rules that grant it do not cover this: {}",
                looked_at.join("; ")
            ),
        };
        Err(Denied {
            message: format!("{} may not act as {what}: {rules}", self.describe()),
        })
    }

    /// Whether this principal holds `role` on some plugin (the route's
    /// handler, which knows the plugin, checks that one with [`Principal::may`]).
    pub fn may_some(&self, role: Role) -> Result<(), Denied> {
        match self.grants.iter().any(|g| g.role == role) {
            true => Ok(()),
            false => Err(Denied {
                message: format!(
                    "{} may not act as {} of any plugin: no rule grants {} to {}",
                    self.describe(),
                    role.as_str(),
                    role.as_str(),
                    self.describe()
                ),
            }),
        }
    }

    /// For messages: `person "alice" (Alice Liddell; groups sre, dev)`, `token "ci"`.
    pub fn describe(&self) -> String {
        let mut text = format!("{} {:?}", self.kind.as_str().replace('_', " "), self.id);
        let mut details = Vec::new();
        if let Some(name) = &self.name {
            details.push(name.clone());
        }
        if !self.groups.is_empty() {
            details.push(format!("groups {}", self.groups.join(", ")));
        }
        if !details.is_empty() {
            text.push_str(&format!(" ({})", details.join("; ")));
        }
        text
    }
}

/// `*` matches any run of characters (none included); everything else
/// matches itself. Iterative, with one backtrack point: linear in practice
/// and never exponential.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ni));
            pi += 1;
        } else if pi < p.len() && p[pi] == n[ni] {
            pi += 1;
            ni += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_runs_of_characters() {
        assert!(glob_match("restart-*", "restart-crm-api"));
        assert!(glob_match("restart-*", "restart-"));
        assert!(glob_match("*-api", "restart-crm-api"));
        assert!(glob_match("r*t-*-api", "restart-crm-api"));
        assert!(glob_match("exact", "exact"));
        assert!(!glob_match("restart-*", "call-runbook"));
        assert!(!glob_match("exact", "exactly"));
        assert!(!glob_match("*-api", "restart-crm-apis"));
    }

    #[test]
    fn a_scoped_grant_covers_its_plugins_and_no_host_wide_action() {
        let alice = Principal {
            kind: PrincipalKind::Person,
            id: "alice".into(),
            name: Some("Alice".into()),
            groups: vec!["crm".into()],
            grants: vec![Grant {
                role: Role::Approver,
                plugins: Plugins::Matching(vec!["restart-*".into()]),
                rule: "[[auth.roles]] group = \"crm\"".into(),
            }],
        };
        assert!(alice.may(Role::Approver, Some("restart-crm-api")).is_ok());
        let refused = alice.may(Role::Approver, Some("call-runbook")).unwrap_err();
        assert!(
            refused.message.contains("group = \"crm\" (plugins restart-*)"),
            "{refused}"
        );
        assert!(alice.may(Role::Approver, None).is_err());
        let refused = alice.may(Role::Operator, Some("restart-crm-api")).unwrap_err();
        assert!(refused.message.contains("no rule grants operator"), "{refused}");
    }

    #[test]
    fn a_shared_operator_token_keeps_what_it_could_do() {
        let shared = Principal::shared(Scope::Operator, false);
        assert_eq!(shared.kind, PrincipalKind::SharedToken);
        for role in [Role::Viewer, Role::Operator, Role::Approver] {
            assert!(shared.may(role, None).is_ok());
        }
        assert!(shared.may(Role::Webhook, None).is_err());
        let open = Principal::shared(Scope::Read, true);
        assert_eq!(
            (open.kind, open.id.as_str()),
            (PrincipalKind::Anonymous, "anonymous")
        );
        assert!(open.may(Role::Viewer, None).is_ok());
        assert!(open.may(Role::Operator, None).is_err());
    }
}
