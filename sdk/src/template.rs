//! `${label}` placeholders in config values, filled from the alert's labels
//! and escaped for where the text goes: a PromQL string, a URL, a JSON
//! string. An alert's labels come from whatever fires it, so a value is
//! never pasted in raw: `crm"} or vector(1) #` stays inside its quotes.
//!
//! ```
//! use autoheal_sdk::template::{fill, promql_string};
//! use autoheal_sdk::testing::firing;
//!
//! let alert = firing(&[("alertname", "ProbeFailing"), ("target", "crm-api")]);
//! let promql = fill(r#"probe_success{target="${target}"}"#, &alert, promql_string)?;
//! assert_eq!(promql, r#"probe_success{target="crm-api"}"#);
//! # Ok::<(), String>(())
//! ```

use crate::Alert;

/// `template` with each `${NAME}` replaced by the alert's label `NAME`,
/// escaped by `escape`; `$$` is a `$`. A label the alert lacks, or a `${`
/// left open, is an error naming it.
pub fn fill(template: &str, alert: &Alert, escape: fn(&str) -> String) -> Result<String, String> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        rest = &rest[at + 1..];
        if let Some(after) = rest.strip_prefix('$') {
            out.push('$');
            rest = after;
        } else if let Some(after) = rest.strip_prefix('{') {
            let end = after
                .find('}')
                .ok_or_else(|| format!("`${{` without its `}}` in {template:?}"))?;
            let name = &after[..end];
            let value = alert
                .label(name)
                .ok_or_else(|| format!("the alert has no label `{name}` for `${{{name}}}`"))?;
            out.push_str(&escape(value));
            rest = &after[end + 1..];
        } else {
            out.push('$');
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// For inside a PromQL double-quoted string.
pub fn promql_string(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// For a URL path segment or query value: everything but unreserved
/// characters percent-encoded.
pub fn url_component(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// For inside a JSON double-quoted string.
pub fn json_string(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::firing;

    #[test]
    fn placeholders_are_filled_escaped_and_missing_ones_named() {
        let alert = firing(&[("target", r#"crm"} or vector(1) #"#), ("path", "a b/c")]);
        assert_eq!(
            fill(r#"up{t="${target}"} $$5 $x"#, &alert, promql_string).unwrap(),
            r#"up{t="crm\"} or vector(1) #"} $5 $x"#
        );
        assert_eq!(
            fill("http://h/r/${path}", &alert, url_component).unwrap(),
            "http://h/r/a%20b%2Fc"
        );
        let missing = fill("${nope}", &alert, json_string).unwrap_err();
        assert!(missing.contains("no label `nope`"), "{missing}");
        assert!(fill("${open", &alert, json_string).is_err());
        assert_eq!(json_string("a\"\u{1}\n"), "a\\\"\\u0001\\n");
    }
}
