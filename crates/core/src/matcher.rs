//! Alertmanager label matchers, as an operator writes them for an ack:
//! a JSON object of exact matchers, or `name="value", name=~"re"`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One Alertmanager matcher.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Matcher {
    /// The label name.
    pub name: String,
    /// The value, or the regular expression.
    pub value: String,
    /// `=~` or `!~`.
    pub is_regex: bool,
    /// `=` or `=~`.
    pub is_equal: bool,
}

impl std::fmt::Display for Matcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let op = match (self.is_equal, self.is_regex) {
            (true, false) => "=",
            (false, false) => "!=",
            (true, true) => "=~",
            (false, true) => "!~",
        };
        // JSON quoting, which `parse_matchers` reads back: the `ack` event
        // shows matchers an operator can paste into the next ack. (Rust's
        // `{:?}` quoting is not JSON: `\u{1}` does not read back.)
        let quoted = serde_json::to_string(&self.value).map_err(|_| std::fmt::Error)?;
        write!(f, "{}{op}{quoted}", self.name)
    }
}

/// Text that is not a usable set of matchers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MatcherError {
    /// A JSON `labels` that is not an object.
    #[error("labels must be a JSON object of label names to values")]
    NotAnObject,
    /// A label whose value is not a string.
    #[error("label {name:?} must be a string, not {value}")]
    NotAString {
        /// The label name.
        name: String,
        /// Its value, as JSON.
        value: String,
    },
    /// No matcher at all.
    #[error("no matchers: a silence needs at least one label matcher")]
    Empty,
    /// No `name="value"` matcher: regex and negative matchers alone could
    /// silence every alert.
    #[error(
        "a silence needs at least one equality matcher (name=\"value\") with a non-empty value; \
         regex (=~, !~) and negative (!=) matchers may only narrow it"
    )]
    NoEqualityMatcher,
    /// A quote that is not closed.
    #[error("unterminated quote in matchers {0:?}")]
    UnterminatedQuote(String),
    /// Text without an operator.
    #[error("{0:?} is not a matcher like name=\"value\"")]
    NotAMatcher(String),
    /// An operator that is not `=`, `!=`, `=~` or `!~`.
    #[error("{0:?}: unknown operator")]
    UnknownOperator(String),
    /// A name that is not a label name.
    #[error("{text:?}: {name:?} is not a label name")]
    BadName {
        /// The matcher as given.
        text: String,
        /// The label name.
        name: String,
    },
    /// A quoted value that does not parse.
    #[error("{0:?}: bad quoted value")]
    BadQuotedValue(String),
}

/// `labels` as the original system took it — a JSON object of exact
/// matchers — or in Alertmanager's matcher syntax:
/// `alertname=~"Tcp.*", service="crm-api"` (braces optional).
pub fn parse_matchers(text: &str) -> Result<Vec<Matcher>, MatcherError> {
    let text = text.trim();
    let matchers = if text.starts_with('{') && serde_json::from_str::<Value>(text).is_ok() {
        let object: serde_json::Map<String, Value> =
            serde_json::from_str(text).map_err(|_| MatcherError::NotAnObject)?;
        object
            .into_iter()
            .map(|(name, value)| match value {
                _ if !is_label_name(&name) => Err(MatcherError::BadName {
                    text: text.to_owned(),
                    name,
                }),
                Value::String(value) => Ok(Matcher {
                    name,
                    value,
                    is_regex: false,
                    is_equal: true,
                }),
                other => Err(MatcherError::NotAString {
                    name,
                    value: other.to_string(),
                }),
            })
            .collect::<Result<Vec<_>, _>>()?
    } else {
        let inner = text
            .strip_prefix('{')
            .and_then(|t| t.strip_suffix('}'))
            .unwrap_or(text);
        split_matchers(inner)?
            .into_iter()
            .map(|m| parse_one(&m))
            .collect::<Result<Vec<_>, _>>()?
    };
    if matchers.is_empty() {
        return Err(MatcherError::Empty);
    }
    // Regexes and negations can match nearly anything (`=~".+"`, `!="zzz"`):
    // only an equality with a value pins a silence down; the others narrow it.
    if !matchers
        .iter()
        .any(|m| m.is_equal && !m.is_regex && !m.value.is_empty())
    {
        return Err(MatcherError::NoEqualityMatcher);
    }
    Ok(matchers)
}

/// Splits on commas outside quotes.
fn split_matchers(text: &str) -> Result<Vec<String>, MatcherError> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut escaped = false;
    for c in text.chars() {
        match c {
            _ if escaped => {
                escaped = false;
                current.push(c);
            }
            '\\' if quoted => {
                escaped = true;
                current.push(c);
            }
            '"' => {
                quoted = !quoted;
                current.push(c);
            }
            ',' if !quoted => parts.push(std::mem::take(&mut current)),
            _ => current.push(c),
        }
    }
    if quoted {
        return Err(MatcherError::UnterminatedQuote(text.to_owned()));
    }
    parts.push(current);
    Ok(parts
        .into_iter()
        .map(|p| p.trim().to_owned())
        .filter(|p| !p.is_empty())
        .collect())
}

fn parse_one(text: &str) -> Result<Matcher, MatcherError> {
    let at = text
        .find(['=', '!'])
        .ok_or_else(|| MatcherError::NotAMatcher(text.to_owned()))?;
    let name = text[..at].trim();
    let rest = &text[at..];
    let (op, value) = ["=~", "!~", "!=", "="]
        .iter()
        .find_map(|op| rest.strip_prefix(op).map(|v| (*op, v.trim())))
        .ok_or_else(|| MatcherError::UnknownOperator(text.to_owned()))?;
    if !is_label_name(name) {
        return Err(MatcherError::BadName {
            text: text.to_owned(),
            name: name.to_owned(),
        });
    }
    let value = if value.starts_with('"') {
        serde_json::from_str::<String>(value).map_err(|_| MatcherError::BadQuotedValue(text.to_owned()))?
    } else {
        value.to_owned()
    };
    Ok(Matcher {
        name: name.to_owned(),
        value,
        is_regex: op.ends_with('~'),
        is_equal: !op.starts_with('!'),
    })
}

/// A Prometheus label name, `[a-zA-Z_][a-zA-Z0-9_]*`, in both forms of
/// `labels`, so that the matchers an `ack` event shows parse back.
fn is_label_name(name: &str) -> bool {
    !name.is_empty()
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(name: &str, value: &str, is_regex: bool, is_equal: bool) -> Matcher {
        Matcher {
            name: name.into(),
            value: value.into(),
            is_regex,
            is_equal,
        }
    }

    #[test]
    fn json_objects_are_exact_matchers() {
        assert_eq!(
            parse_matchers(r#"{"alertname":"TcpEndpointDownFast","service":"crm-api"}"#).unwrap(),
            [
                m("alertname", "TcpEndpointDownFast", false, true),
                m("service", "crm-api", false, true)
            ]
        );
        assert!(matches!(
            parse_matchers(r#"{"alertname":"A","a b":"x"}"#),
            Err(MatcherError::BadName { .. })
        ));
        assert!(
            parse_matchers(r#"{"alertname": 3}"#)
                .unwrap_err()
                .to_string()
                .contains("string")
        );
    }

    #[test]
    fn alertmanager_syntax_with_all_operators() {
        assert_eq!(
            parse_matchers(
                r#"{alertname=~"Tcp.*", service!="db", env!~"dev|test", team=ops, msg="a,b \"c\""}"#
            )
            .unwrap(),
            [
                m("alertname", "Tcp.*", true, true),
                m("service", "db", false, false),
                m("env", "dev|test", true, false),
                m("team", "ops", false, true),
                m("msg", "a,b \"c\"", false, true),
            ]
        );
    }

    #[test]
    fn empty_or_match_everything_matchers_are_refused() {
        for bad in ["", "{}", "  ", r#"alertname=~".*""#, r#"{"alertname":""}"#] {
            assert!(parse_matchers(bad).is_err(), "{bad:?} accepted");
        }
        for bad in ["alertname", "=x", "1a=\"b\"", "a=\"unterminated"] {
            assert!(parse_matchers(bad).is_err(), "{bad:?} accepted");
        }
    }

    /// What got through before: a regex or a negation alone silences (nearly) everything.
    #[test]
    fn a_silence_needs_an_equality_matcher_the_rest_only_narrows_it() {
        for bad in [
            r#"alertname=~".+""#,
            r#"alertname!="zzz""#,
            r#"alertname!~"x", service=~".*""#,
            r#"{"alertname":""}"#,
            r#"alertname="", service=~"crm.*""#,
        ] {
            let err = parse_matchers(bad).unwrap_err().to_string();
            assert!(err.contains("equality matcher"), "{bad}: {err}");
        }
        for good in [
            r#"alertname="X""#,
            r#"service="crm-api", alertname=~"Tcp.*", env!="dev""#,
        ] {
            assert!(parse_matchers(good).is_ok(), "{good} refused");
        }
    }
}
