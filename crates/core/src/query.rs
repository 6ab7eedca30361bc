//! Query strings of the HTTP API, parsed the same way on every route: a key
//! may repeat (`kind=a&kind=b`) or hold a comma-separated list (`kind=a,b`),
//! an unknown key is an error (a typo must not widen a filter), and a bad
//! value names its parameter.

use std::str::FromStr;

/// A query string that cannot be used; every variant is the client's mistake.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// Not `application/x-www-form-urlencoded`.
    #[error("bad query string: {0}")]
    Malformed(String),
    /// A key the route does not take.
    #[error("unknown query parameter `{key}`; expected one of {expected}")]
    Unknown {
        /// The key as sent.
        key: String,
        /// The keys the route takes, comma-separated.
        expected: String,
    },
    /// A value that does not parse as the parameter's type.
    #[error("query parameter `{key}`: invalid value {value:?}")]
    Invalid {
        /// The parameter.
        key: String,
        /// Its value as sent.
        value: String,
    },
    /// A number above the parameter's bound.
    #[error("{key} must be at most {max}")]
    TooLarge {
        /// The parameter.
        key: String,
        /// Its largest value.
        max: u64,
    },
}

/// A parsed query string: its (key, value) pairs in order.
#[derive(Debug, Clone, Default)]
pub struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    /// Parses `text` (the part after `?`; `None` is an empty query).
    pub fn parse(text: Option<&str>) -> Result<Self, QueryError> {
        serde_urlencoded::from_str(text.unwrap_or(""))
            .map(|pairs| Self { pairs })
            .map_err(|e| QueryError::Malformed(e.to_string()))
    }

    /// An error for the first key that is not in `known`.
    pub fn expect_only(&self, known: &[&str]) -> Result<(), QueryError> {
        match self.pairs.iter().find(|(k, _)| !known.contains(&k.as_str())) {
            None => Ok(()),
            Some((key, _)) => Err(QueryError::Unknown {
                key: key.clone(),
                expected: known.join(", "),
            }),
        }
    }

    /// Every value of `key`, split on commas, trimmed, empty ones dropped.
    pub fn list(&self, key: &str) -> Vec<String> {
        self.pairs
            .iter()
            .filter(|(k, _)| k == key)
            .flat_map(|(_, v)| v.split(','))
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
            .collect()
    }

    /// The value of `key` (the last one when it repeats), trimmed and parsed.
    pub fn one<T: FromStr>(&self, key: &str) -> Result<Option<T>, QueryError> {
        match self.pairs.iter().rev().find(|(k, _)| k == key) {
            None => Ok(None),
            Some((_, v)) => v.trim().parse().map(Some).map_err(|_| QueryError::Invalid {
                key: key.to_owned(),
                value: v.clone(),
            }),
        }
    }

    /// Like [`Query::one`], for text where an empty value means "not given".
    pub fn non_empty(&self, key: &str) -> Result<Option<String>, QueryError> {
        Ok(self.one::<String>(key)?.filter(|v| !v.is_empty()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_repeat_lists_split_and_the_last_single_value_wins() {
        let q = Query::parse(Some("kind=a,b&kind=c&kind=&n=3&n=%205%20")).unwrap();
        assert_eq!(q.list("kind"), ["a", "b", "c"]);
        assert_eq!(q.one::<usize>("n").unwrap(), Some(5));
        assert_eq!(q.one::<usize>("absent").unwrap(), None);
        assert_eq!(q.non_empty("kind").unwrap(), None, "the last `kind` is empty");
    }

    #[test]
    fn errors_name_the_parameter() {
        let q = Query::parse(Some("n=many&typo=1")).unwrap();
        assert_eq!(
            q.one::<usize>("n").unwrap_err().to_string(),
            "query parameter `n`: invalid value \"many\""
        );
        assert_eq!(
            q.expect_only(&["n", "kind"]).unwrap_err().to_string(),
            "unknown query parameter `typo`; expected one of n, kind"
        );
        assert!(
            Query::parse(Some("a=%ZZ")).is_ok(),
            "lenient percent-decoding, like browsers"
        );
    }
}
