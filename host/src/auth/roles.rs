//! `[[auth.roles]]`: what a signed-in person may do, from the groups their
//! identity provider says they are in. Each rule a person's groups match
//! is one grant, remembered as `[[auth.roles]] #N group = "sre"` so that a
//! refusal can name the rules it looked at. No rule matched: no grants (the
//! person may sign in, and is refused everywhere but `/auth/*` and the
//! console page).

use super::{Grant, Plugins, Role};

/// One checked `[[auth.roles]]` rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleRule {
    /// Its place among the `[[auth.roles]]` tables, from 1 (for messages).
    pub number: usize,
    /// The group it maps.
    pub group: String,
    /// The role members get.
    pub role: Role,
    /// On which plugins.
    pub plugins: Plugins,
}

/// The grants `rules` give a member of `groups`.
pub fn grants_for_groups(rules: &[RoleRule], groups: &[String]) -> Vec<Grant> {
    rules
        .iter()
        .filter(|rule| groups.contains(&rule.group))
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
    use crate::auth::{Principal, PrincipalKind};

    fn rules() -> Vec<RoleRule> {
        let rule = |number: usize, group: &str, role: Role, plugins: &[&str]| RoleRule {
            number,
            group: group.into(),
            role,
            plugins: match plugins.is_empty() {
                true => Plugins::All,
                false => Plugins::Matching(plugins.iter().map(|p| (*p).to_owned()).collect()),
            },
        };
        vec![
            rule(1, "sre", Role::Viewer, &[]),
            rule(2, "sre", Role::Operator, &[]),
            rule(3, "dev", Role::Viewer, &[]),
            rule(4, "crm", Role::Approver, &["restart-crm-*"]),
        ]
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
