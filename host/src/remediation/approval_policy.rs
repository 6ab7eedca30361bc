//! Who may answer an approval, and when enough have granted: the rules of
//! `[policy] approvers` and `approvals_required`, pure (no clock, no
//! store), so that a replica applying a forwarded answer judges exactly as
//! the one the answer was given to would.
//!
//! - Eligible: a principal holds the approver role on the plugin (checked
//!   by the caller with `Principal::may`) and, when the manifest lists
//!   `approvers`, matches an entry: `group:` one of its groups, `user:` a
//!   person's id, `token:` a named token's id. A shared token matches no
//!   entry: it answers only plugins that list nobody.
//! - Counted: grants from different principals (kind and id). The action
//!   runs once `approvals_required` have granted and at least one of them
//!   is not the principal that sent the webhook which asked for it.

use autoheal_core::event::{Actor, ApprovalRequested};
use autoheal_sandbox::manifest::Approver;

use crate::auth::{Principal, PrincipalKind};
use crate::cluster::AnswerPrincipal;

/// A principal as an approval's events name it.
pub fn actor(principal: &Principal) -> Actor {
    Actor {
        id: principal.id.clone(),
        kind: principal.kind.as_str().to_owned(),
        name: principal.name.clone(),
    }
}

/// How a forwarded principal travels: who, and their groups.
pub fn answer_principal(principal: &Principal) -> AnswerPrincipal {
    AnswerPrincipal {
        kind: principal.kind.as_str().to_owned(),
        id: principal.id.clone(),
        name: principal.name.clone(),
        groups: principal.groups.clone(),
    }
}

/// Why a principal may not answer this approval (the 403's body).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NotAnApprover(pub String);

/// Whether `principal` matches the approvers `request` lists (any
/// principal, when it lists none).
pub fn eligible(principal: &Principal, request: &ApprovalRequested) -> Result<(), NotAnApprover> {
    if request.approvers.is_empty() {
        return Ok(());
    }
    // Entries were checked when the manifest loaded; one that no longer
    // parses (a trail from another version) matches nobody.
    let matches = request
        .approvers
        .iter()
        .filter_map(|entry| Approver::parse(entry).ok())
        .any(|entry| match (&entry, principal.kind) {
            (Approver::Group(group), PrincipalKind::Person) => principal.groups.contains(group),
            (Approver::User(id), PrincipalKind::Person) => &principal.id == id,
            (Approver::Token(name), PrincipalKind::Token) => &principal.id == name,
            _ => false,
        });
    match matches {
        true => Ok(()),
        false => Err(NotAnApprover(format!(
            "{} may not answer approvals of plugin {:?}: its [policy] approvers are {}",
            principal.describe(),
            request.plugin,
            request.approvers.join(", ")
        ))),
    }
}

/// Where an approval stands after a grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tally {
    /// Enough: the action runs.
    Complete,
    /// Recorded; it waits for more (`approvals` so far of `required`).
    Waiting {
        /// Grants so far.
        approvals: u32,
        /// Grants needed.
        required: u32,
    },
}

/// The same principal granted before.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("already approved by you: another approver must grant it")]
pub struct AlreadyApproved;

/// How many grants `request` needs.
pub fn required(request: &ApprovalRequested) -> u32 {
    request.approvals_required.unwrap_or(1).max(1)
}

/// `granted` (the grants so far) with one more from `by`: where it stands,
/// or a refusal when `by` granted already.
pub fn tally(request: &ApprovalRequested, granted: &[Actor], by: &Actor) -> Result<Tally, AlreadyApproved> {
    if granted.iter().any(|g| g.same(by)) {
        return Err(AlreadyApproved);
    }
    let required = required(request);
    let approvals = granted.len() as u32 + 1;
    let requester = request.requested_by.as_ref();
    let someone_else = granted
        .iter()
        .chain(std::iter::once(by))
        .any(|g| requester.is_none_or(|r| !g.same(r)));
    Ok(match approvals >= required && someone_else {
        true => Tally::Complete,
        false => Tally::Waiting { approvals, required },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Scope;
    use crate::remediation::approvals::tests::request;

    fn person(id: &str, groups: &[&str]) -> Principal {
        Principal {
            kind: PrincipalKind::Person,
            id: id.into(),
            name: Some(id.to_uppercase()),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            grants: Vec::new(),
        }
    }

    fn token(id: &str) -> Principal {
        Principal {
            kind: PrincipalKind::Token,
            ..person(id, &[])
        }
    }

    fn needing(required: u32, requester: Option<&Principal>) -> ApprovalRequested {
        ApprovalRequested {
            approvals_required: Some(required),
            requested_by: requester.map(actor),
            ..request("a", "f", 100.0)
        }
    }

    #[test]
    fn two_distinct_approvers_are_needed_when_two_are_required() {
        let r = needing(2, None);
        let (alice, bob) = (actor(&person("alice", &[])), actor(&person("bob", &[])));
        assert_eq!(
            tally(&r, &[], &alice),
            Ok(Tally::Waiting {
                approvals: 1,
                required: 2
            })
        );
        assert_eq!(
            tally(&r, std::slice::from_ref(&alice), &alice),
            Err(AlreadyApproved)
        );
        assert_eq!(tally(&r, &[alice], &bob), Ok(Tally::Complete));
    }

    #[test]
    fn the_requester_alone_is_not_enough() {
        let ci = token("ci");
        let r = needing(1, Some(&ci));
        assert_eq!(
            tally(&r, &[], &actor(&ci)),
            Ok(Tally::Waiting {
                approvals: 1,
                required: 1
            })
        );
        assert_eq!(
            tally(&r, &[actor(&ci)], &actor(&person("bob", &[]))),
            Ok(Tally::Complete)
        );
        // A person named like the token is another principal.
        assert_eq!(tally(&r, &[], &actor(&person("ci", &[]))), Ok(Tally::Complete));
        let r = needing(2, Some(&ci));
        assert_eq!(
            tally(&r, &[actor(&ci)], &actor(&person("bob", &[]))),
            Ok(Tally::Complete)
        );
    }

    #[test]
    fn one_approval_from_the_shared_operator_token_runs_it_as_before() {
        let webhook = Principal::shared(Scope::Webhook, false);
        let r = needing(1, Some(&webhook));
        let operator = actor(&Principal::shared(Scope::Operator, false));
        assert_eq!(tally(&r, &[], &operator), Ok(Tally::Complete));
        assert!(eligible(&Principal::shared(Scope::Operator, false), &r).is_ok());
    }

    #[test]
    fn a_listed_policy_matches_groups_users_and_tokens_only() {
        let r = ApprovalRequested {
            approvers: vec!["group:sre".into(), "user:alice".into(), "token:ci".into()],
            ..request("a", "f", 100.0)
        };
        assert!(eligible(&person("carol", &["dev", "sre"]), &r).is_ok());
        assert!(eligible(&person("alice", &[]), &r).is_ok());
        assert!(eligible(&token("ci"), &r).is_ok());
        // A token is not a user, nor a person a token.
        assert!(eligible(&token("alice"), &r).is_err());
        assert!(eligible(&person("ci", &[]), &r).is_err());
        let refused = eligible(&Principal::shared(Scope::Operator, false), &r).unwrap_err();
        assert!(
            refused.0.contains("group:sre, user:alice, token:ci") && refused.0.contains("shared token"),
            "{refused}"
        );
        assert!(eligible(&person("dave", &["dev"]), &r).is_err());
    }
}
