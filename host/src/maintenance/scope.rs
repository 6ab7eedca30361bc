//! Which actions a maintenance window covers: its plugins (none named:
//! every plugin) and its label matchers (none: every alert), written in
//! the project's matcher syntax (`service="crm", env=~"prod|staging"`).

use std::collections::BTreeMap;

use autoheal_core::matcher::{Matcher, MatcherError, parse_matchers};
use regex::Regex;

/// A window's plugins and label matchers.
#[derive(Debug, Clone)]
pub struct Scope {
    /// The plugins it covers; empty: every plugin.
    pub plugins: Vec<String>,
    /// Its `match` as written; empty: every alert.
    pub text: String,
    matchers: Vec<LabelMatcher>,
}

/// One matcher, its regular expression compiled (anchored at both ends, as
/// Alertmanager reads `=~` and `!~`).
#[derive(Debug, Clone)]
struct LabelMatcher {
    name: String,
    test: Test,
    is_equal: bool,
}

#[derive(Debug, Clone)]
enum Test {
    Value(String),
    Regex(Regex),
}

/// A `match` that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScopeError {
    /// Not the matcher syntax.
    #[error(transparent)]
    Matchers(#[from] MatcherError),
    /// A `=~` or `!~` whose value is not a regular expression.
    #[error("{matcher}: not a regular expression: {message}")]
    Regex {
        /// The matcher.
        matcher: String,
        /// What the regex parser said.
        message: String,
    },
}

impl Scope {
    /// The scope of `plugins` and the matchers `text` (empty: every alert).
    pub fn parse(plugins: Vec<String>, text: &str) -> Result<Self, ScopeError> {
        let matchers = match text.trim() {
            "" => Vec::new(),
            text => parse_matchers(text)?
                .into_iter()
                .map(LabelMatcher::compile)
                .collect::<Result<_, _>>()?,
        };
        Ok(Self {
            plugins,
            text: text.trim().to_owned(),
            matchers,
        })
    }

    /// Whether `plugin` acting on an alert with `labels` is covered.
    pub fn covers(&self, plugin: &str, labels: &BTreeMap<String, String>) -> bool {
        (self.plugins.is_empty() || self.plugins.iter().any(|p| p == plugin))
            && self.matchers.iter().all(|m| m.matches(labels))
    }
}

impl LabelMatcher {
    fn compile(matcher: Matcher) -> Result<Self, ScopeError> {
        let test = match matcher.is_regex {
            false => Test::Value(matcher.value.clone()),
            true => Test::Regex(Regex::new(&format!("^(?:{})$", matcher.value)).map_err(|e| {
                ScopeError::Regex {
                    matcher: matcher.to_string(),
                    message: e.to_string(),
                }
            })?),
        };
        Ok(Self {
            name: matcher.name,
            test,
            is_equal: matcher.is_equal,
        })
    }

    /// As in Alertmanager, a label the alert lacks reads as empty.
    fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let value = labels.get(&self.name).map(String::as_str).unwrap_or("");
        let hit = match &self.test {
            Test::Value(expected) => value == expected,
            Test::Regex(re) => re.is_match(value),
        };
        hit == self.is_equal
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn plugins_and_matchers_narrow_the_scope() {
        let crm = labels(&[("service", "crm"), ("env", "prod")]);
        let db = labels(&[("service", "db"), ("env", "prod")]);
        // (plugins, match, plugin acting, alert labels, covered)
        type Row<'a> = (
            &'a [&'a str],
            &'a str,
            &'a str,
            &'a BTreeMap<String, String>,
            bool,
        );
        let table: &[Row] = &[
            (&[], "", "any", &crm, true),
            (&["restart-crm-api"], "", "restart-crm-api", &db, true),
            (&["restart-crm-api"], "", "restart-db", &db, false),
            (&[], r#"service="crm""#, "any", &crm, true),
            (&[], r#"service="crm""#, "any", &db, false),
            (&[], r#"service="crm", env=~"prod|staging""#, "any", &crm, true),
            (&[], r#"service="crm", env!~"prod|staging""#, "any", &crm, false),
            // Anchored: `=~"pro"` is not a substring search.
            (&[], r#"service="crm", env=~"pro""#, "any", &crm, false),
            (&[], r#"service="crm", team!="ops""#, "any", &crm, true),
            (
                &["restart-crm-api"],
                r#"service="crm""#,
                "restart-db",
                &crm,
                false,
            ),
        ];
        for (plugins, text, plugin, alert, covered) in table {
            let scope = Scope::parse(plugins.iter().map(|p| (*p).to_owned()).collect(), text).unwrap();
            assert_eq!(
                scope.covers(plugin, alert),
                *covered,
                "{plugins:?} {text:?} {plugin}"
            );
        }
    }

    #[test]
    fn bad_matchers_are_refused() {
        assert!(matches!(
            Scope::parse(vec![], "service"),
            Err(ScopeError::Matchers(_))
        ));
        let e = Scope::parse(vec![], r#"service="crm", env=~"(""#).unwrap_err();
        assert!(e.to_string().contains("env=~"), "{e}");
    }
}
