//! Label selectors: `key=value`, an exact match on one container label, as
//! in a manifest's `label:com.docker.compose.service=crm-api`.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The most characters in a key or a value (Docker's own labels stay far below).
const MAX_LEN: usize = 255;

/// Containers carrying the label `key` with exactly `value`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LabelSelector {
    /// The label's name, e.g. `com.docker.compose.service`.
    pub key: String,
    /// The value it must have; may be empty.
    pub value: String,
}

/// Text that is not a `key=value` selector.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    /// No `=`, or more than one: `a=b=c` would be ambiguous.
    #[error("label selector {0:?} must be key=value with exactly one '='")]
    NotKeyValue(String),
    /// The key is empty.
    #[error("label selector {0:?} has an empty key")]
    EmptyKey(String),
    /// The key or the value is longer than 255 characters.
    #[error("label selector {text:?}: the {part} is longer than {MAX_LEN} characters")]
    TooLong {
        /// The selector as given.
        text: String,
        /// `key` or `value`.
        part: &'static str,
    },
    /// The key has a character outside `[A-Za-z0-9._/-]`.
    #[error("label selector {text:?}: key character {bad:?} is not one of A-Z a-z 0-9 . _ / -")]
    BadKeyChar {
        /// The selector as given.
        text: String,
        /// The first character refused.
        bad: char,
    },
    /// The value has a control character (a newline would forge log lines
    /// and audit text downstream).
    #[error("label selector {text:?}: the value has a control character {bad:?}")]
    ControlInValue {
        /// The selector as given.
        text: String,
        /// The first character refused.
        bad: char,
    },
}

impl LabelSelector {
    /// Parses `key=value`: exactly one `=`, a key of 1..=255 characters of
    /// `[A-Za-z0-9._/-]`, a value of 0..=255 characters without control characters.
    pub fn parse(text: &str) -> Result<Self, SelectorError> {
        let owned = || text.to_owned();
        let (key, value) = text
            .split_once('=')
            .filter(|(_, value)| !value.contains('='))
            .ok_or_else(|| SelectorError::NotKeyValue(owned()))?;
        if key.is_empty() {
            return Err(SelectorError::EmptyKey(owned()));
        }
        for (part, len) in [("key", key.chars().count()), ("value", value.chars().count())] {
            if len > MAX_LEN {
                return Err(SelectorError::TooLong { text: owned(), part });
            }
        }
        if let Some(bad) = key
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '/' | '-')))
        {
            return Err(SelectorError::BadKeyChar { text: owned(), bad });
        }
        if let Some(bad) = value.chars().find(|c| c.is_control()) {
            return Err(SelectorError::ControlInValue { text: owned(), bad });
        }
        Ok(Self {
            key: key.to_owned(),
            value: value.to_owned(),
        })
    }

    /// Whether a container with these labels carries this one.
    pub fn matches(&self, labels: &std::collections::BTreeMap<String, String>) -> bool {
        labels.get(&self.key) == Some(&self.value)
    }
}

impl fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.key, self.value)
    }
}

impl std::str::FromStr for LabelSelector {
    type Err = SelectorError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_key_value() {
        let s = LabelSelector::parse("com.docker.compose.service=crm-api").unwrap();
        assert_eq!(s.key, "com.docker.compose.service");
        assert_eq!(s.value, "crm-api");
        assert_eq!(s.to_string(), "com.docker.compose.service=crm-api");
        // An empty value is a value (`--label tier=`), and spaces are text.
        let empty = LabelSelector::parse("example.com/tier=").unwrap();
        assert_eq!(
            (empty.key.as_str(), empty.value.as_str()),
            ("example.com/tier", "")
        );
        assert_eq!(LabelSelector::parse("a=b c").unwrap().value, "b c");
        assert_eq!("k=v".parse::<LabelSelector>().unwrap().to_string(), "k=v");
    }

    #[test]
    fn refuses_what_is_not_one_exact_label() {
        let err = |text: &str| LabelSelector::parse(text).unwrap_err();
        assert_eq!(err("app"), SelectorError::NotKeyValue("app".into()));
        assert_eq!(err("a=b=c"), SelectorError::NotKeyValue("a=b=c".into()));
        assert_eq!(err("=x"), SelectorError::EmptyKey("=x".into()));
        assert!(matches!(
            err("app*=x"),
            SelectorError::BadKeyChar { bad: '*', .. }
        ));
        assert!(matches!(err("a b=x"), SelectorError::BadKeyChar { bad: ' ', .. }));
        assert!(matches!(err("é=x"), SelectorError::BadKeyChar { bad: 'é', .. }));
        assert!(matches!(
            err("app=x\ny"),
            SelectorError::ControlInValue { bad: '\n', .. }
        ));
        let long = format!("{}=x", "k".repeat(256));
        assert!(matches!(err(&long), SelectorError::TooLong { part: "key", .. }));
        let long = format!("k={}", "v".repeat(256));
        assert!(matches!(err(&long), SelectorError::TooLong { part: "value", .. }));
        assert!(LabelSelector::parse(&format!("{}={}", "k".repeat(255), "v".repeat(255))).is_ok());
        // The message names the selector and the rule.
        let text = err("a=b=c").to_string();
        assert!(
            text.contains("\"a=b=c\"") && text.contains("exactly one '='"),
            "{text}"
        );
    }

    #[test]
    fn matches_only_the_exact_value() {
        let s = LabelSelector::parse("app=crm").unwrap();
        let labels = |v: &str| [("app".to_owned(), v.to_owned())].into();
        assert!(s.matches(&labels("crm")));
        assert!(!s.matches(&labels("crm-api")));
        assert!(!s.matches(&labels("")));
        assert!(!s.matches(&Default::default()));
    }
}
