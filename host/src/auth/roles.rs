//! `[[auth.roles]]`: what a signed-in person may do, from the groups their
//! identity provider says they are in. Each rule a person's groups match
//! is one grant, remembered as `[[auth.roles]] #N group = "sre"` so that a
//! refusal can name the rules it looked at. No rule matched: no grants (the
//! person may sign in, and is refused everywhere but `/auth/*` and the
//! console page).

use super::Grant;
use crate::config::RoleRule;

/// The grants `rules` give a member of `groups`.
pub fn grants_for_groups(rules: &[RoleRule], groups: &[String]) -> Vec<Grant> {
    rules
        .iter()
        .filter(|rule| groups.iter().any(|g| *g == rule.group))
        .map(|rule| Grant {
            role: rule.role,
            plugins: rule.plugins.clone(),
            rule: format!("[[auth.roles]] #{} group = {:?}", rule.number, rule.group),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{Plugins, Principal, PrincipalKind, Role};
    use crate::config::{RawRoleRule, oidc::validate_roles};

    fn rules() -> Vec<RoleRule> {
        let rule = |group: &str, role: &str, plugins: &[&str]| RawRoleRule {
            group: group.into(),
            role: role.into(),
            plugins: plugins.iter().map(|p| (*p).to_owned()).collect(),
        };
        validate_roles(&[
            rule("sre", "viewer", &[]),
            rule("sre", "operator", &[]),
            rule("dev", "viewer", &[]),
            rule("crm", "approver", &["restart-crm-*"]),
        ])
        .unwrap()
    }

    #[test]
    fn each_matching_rule_is_one_grant_named_by_its_place() {
        let grants = grants_for_groups(&rules(), &["sre".into(), "crm".into()]);
        let summary: Vec<(Role, &str)> = grants.iter().map(|g| (g.role, g.rule.as_str())).collect();
        assert_eq!(
            summary,
            [
                (Role::Viewer, "[[auth.roles]] #1 group = \"sre\""),
                (Role::Operator, "[[auth.roles]] #2 group = \"sre\""),
                (Role::Approver, "[[auth.roles]] #4 group = \"crm\""),
            ]
        );
        assert_eq!(grants[2].plugins, Plugins::Matching(vec!["restart-crm-*".into()]));
    }

    #[test]
    fn a_person_in_no_mapped_group_gets_nothing_and_the_refusal_says_so() {
        assert!(grants_for_groups(&rules(), &["marketing".into()]).is_empty());
        assert!(grants_for_groups(&rules(), &[]).is_empty());
        let bob = Principal {
            kind: PrincipalKind::Person,
            id: "bob".into(),
            name: Some("Bob".into()),
            groups: vec!["dev".into()],
            grants: grants_for_groups(&rules(), &["dev".into()]),
        };
        assert!(bob.may(Role::Viewer, None).is_ok());
        let refused = bob.may(Role::Operator, None).unwrap_err();
        assert!(refused.message.contains("no rule grants operator"), "{refused}");
    }
}
