//! `[policy] approvers` and `approvals_required`: who may answer a
//! plugin's approvals, and how many must grant. An entry names a group of
//! people (`group:sre`, from the identity provider's groups claim), one
//! person (`user:alice`, their subject) or one named machine token
//! (`token:ci`). The host matches them against a verified principal (see
//! the host's `remediation::approval_policy`).

use std::fmt;

/// The most approvals a manifest may require: more would rarely be met
/// before the approval expires.
pub const MAX_APPROVALS_REQUIRED: u32 = 5;

/// The most entries in `[policy] approvers`.
pub const MAX_APPROVERS: usize = 64;

/// One entry of `[policy] approvers`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Approver {
    /// `group:NAME`: any person in this group.
    Group(String),
    /// `user:ID`: the person with this subject.
    User(String),
    /// `token:NAME`: the named machine token.
    Token(String),
}

impl Approver {
    /// Reads `group:sre`, `user:alice` or `token:ci`.
    pub fn parse(entry: &str) -> Result<Self, String> {
        let (kind, name) = entry
            .split_once(':')
            .ok_or_else(|| format!("{entry:?} must be `group:NAME`, `user:ID` or `token:NAME`"))?;
        let name = name.trim();
        if name.is_empty() || name.chars().any(char::is_control) {
            return Err(format!("{entry:?} names nobody after `{kind}:`"));
        }
        match kind.trim() {
            "group" => Ok(Self::Group(name.to_owned())),
            "user" => Ok(Self::User(name.to_owned())),
            "token" => Ok(Self::Token(name.to_owned())),
            other => Err(format!("{entry:?}: {other:?} is not `group`, `user` or `token`")),
        }
    }
}

impl fmt::Display for Approver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Group(name) => write!(f, "group:{name}"),
            Self::User(id) => write!(f, "user:{id}"),
            Self::Token(name) => write!(f, "token:{name}"),
        }
    }
}

/// Reads `[policy] approvers` (as written) against `required`: each entry
/// parses, none repeats, and a list of single principals only can meet
/// the count.
pub(crate) fn parse_approvers(entries: &[String], required: u32) -> Result<Vec<Approver>, String> {
    if entries.len() > MAX_APPROVERS {
        return Err(format!("{} entries, at most {MAX_APPROVERS}", entries.len()));
    }
    let mut approvers: Vec<Approver> = Vec::with_capacity(entries.len());
    for entry in entries {
        let approver = Approver::parse(entry)?;
        if approvers.contains(&approver) {
            return Err(format!("{approver} is listed twice"));
        }
        approvers.push(approver);
    }
    let groups = approvers.iter().any(|a| matches!(a, Approver::Group(_)));
    if !approvers.is_empty() && !groups && (approvers.len() as u32) < required {
        return Err(format!(
            "{} principals listed and no group: `approvals_required = {required}` could never be met",
            approvers.len()
        ));
    }
    Ok(approvers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_name_a_group_a_person_or_a_token() {
        assert_eq!(Approver::parse("group:sre"), Ok(Approver::Group("sre".into())));
        assert_eq!(Approver::parse("user:alice"), Ok(Approver::User("alice".into())));
        assert_eq!(Approver::parse("token:ci"), Ok(Approver::Token("ci".into())));
        assert_eq!(Approver::parse("group:sre").unwrap().to_string(), "group:sre");
        for bad in ["sre", "team:sre", "user:", "group: "] {
            assert!(Approver::parse(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn a_list_must_be_able_to_meet_the_count() {
        let list = |e: &[&str]| e.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(parse_approvers(&list(&["user:alice"]), 2).is_err());
        assert!(parse_approvers(&list(&["user:alice", "token:ci"]), 2).is_ok());
        assert!(parse_approvers(&list(&["group:sre"]), 5).is_ok());
        assert!(parse_approvers(&list(&[]), 3).is_ok());
        let twice = parse_approvers(&list(&["user:a", "user:a"]), 1).unwrap_err();
        assert!(twice.contains("twice"), "{twice}");
    }
}
