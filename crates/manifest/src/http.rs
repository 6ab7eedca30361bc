//! The `http` capability's part of a manifest: which methods and URL
//! prefixes a plugin may request, which host-held secrets it may name and
//! how each goes into a request, and the bounds of every request. URLs are
//! normalised here, one way, for the allow-list and for every call alike,
//! so that the gate compares like with like.
//!
//! ```toml
//! [capabilities.http]
//! allow = ["GET https://runbooks.internal/api/", "POST http://127.0.0.1:8080/flush"]
//! secrets = { RUNBOOK_TOKEN = "header:Authorization:Bearer {}" }
//! timeout = "5s"
//! max_request_bytes = 65536
//! max_response_bytes = 262144
//! effects = ["GET"]
//! ```

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use autoheal_core::util::parse_duration;
use serde::Deserialize;

/// Methods an allow-list entry may name.
pub const HTTP_METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"];
/// Methods that are reads unless `effects` lists them.
pub const READ_METHODS: &[&str] = &["GET", "HEAD"];
/// Allow-list entries one manifest may have.
pub const MAX_HTTP_RULES: usize = 32;
/// Secrets one manifest may map.
pub const MAX_SECRETS: usize = 16;
/// Longest URL, in an allow-list or a call.
pub const MAX_URL_BYTES: usize = 2048;
/// A request's deadline (connect, headers and body) when the manifest does
/// not say; never longer than the plugin's own deadline.
pub const DEFAULT_HTTP_TIMEOUT: Duration = Duration::from_secs(5);
/// Request body bytes when the manifest does not say.
pub const DEFAULT_REQUEST_BYTES: usize = 64 * 1024;
/// Response body bytes kept when the manifest does not say.
pub const DEFAULT_RESPONSE_BYTES: usize = 256 * 1024;
/// The most `max_request_bytes` and `max_response_bytes` may be.
pub const MAX_HTTP_BYTES: usize = 4 * 1024 * 1024;

/// `[capabilities.http]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHttp {
    #[serde(default)]
    allow: Vec<String>,
    #[serde(default)]
    secrets: BTreeMap<String, String>,
    timeout: Option<String>,
    max_request_bytes: Option<usize>,
    max_response_bytes: Option<usize>,
    #[serde(default)]
    effects: Vec<String>,
}

/// A host of a URL: a DNS name, or an address written literally.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UrlHost {
    /// A name (lowercase, as the URL parser keeps it).
    Name(String),
    /// An address, written in its one canonical spelling.
    Ip(IpAddr),
}

impl std::fmt::Display for UrlHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Name(name) => f.write_str(name),
            Self::Ip(IpAddr::V4(ip)) => write!(f, "{ip}"),
            Self::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
        }
    }
}

/// A URL as the allow-list and the gate compare it: `http` or `https`, a
/// host spelled canonically, an explicit port, and its path decoded once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl {
    /// `http` or `https`.
    pub scheme: String,
    /// The host.
    pub host: UrlHost,
    /// The port, the scheme's default if none is written.
    pub port: u16,
    /// The path, percent-decoded once (what matching compares).
    pub path: String,
    /// The path and query as sent (the parser's encoding).
    pub target: String,
    /// The query, as written, if any.
    pub query: Option<String>,
}

impl HttpUrl {
    /// Parses and normalises `text`, refusing what could make a prefix
    /// match mean something else than it says: userinfo (`allowed@evil`),
    /// fragments, dot segments (`..`, also encoded), backslashes, paths
    /// still encoded after one decoding, and hosts not spelled canonically
    /// (`2130706433`, `0177.0.0.1`, `[::ffff:127.0.0.1]`).
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.len() > MAX_URL_BYTES {
            return Err(format!("a URL of {} bytes; at most {MAX_URL_BYTES}", text.len()));
        }
        if text.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err("a URL must not contain whitespace or control characters".into());
        }
        let (scheme, rest) = text
            .split_once("://")
            .ok_or_else(|| format!("{text:?} is not an http:// or https:// URL"))?;
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "http" && scheme != "https" {
            return Err(format!("scheme {scheme:?}: only http and https"));
        }
        let end = rest.find(['/', '?', '#', '\\']).unwrap_or(rest.len());
        let (authority, raw_path) = rest.split_at(end);
        if authority.contains('@') {
            return Err("a URL must not carry userinfo (`user@host`)".into());
        }
        if raw_path.contains('#') {
            return Err("a URL must not carry a fragment (`#...`)".into());
        }
        if raw_path.contains('\\') {
            return Err("a URL must not contain a backslash".into());
        }
        let raw_path = raw_path.split('?').next().unwrap_or_default();
        let decoded = percent_encoding::percent_decode_str(raw_path)
            .decode_utf8()
            .map_err(|_| "the path is not UTF-8 once decoded".to_owned())?;
        if decoded
            .split('/')
            .any(|segment| segment == "." || segment == "..")
        {
            return Err("the path must not contain `.` or `..` segments (also encoded)".into());
        }
        if decoded.contains('\\') || decoded.chars().any(char::is_control) {
            return Err("the decoded path must not contain backslashes or control characters".into());
        }
        if still_encoded(&decoded) {
            return Err("the path is still percent-encoded after one decoding".into());
        }

        let url = url::Url::parse(text).map_err(|e| format!("{text:?} is not a URL: {e}"))?;
        let host = match url.host() {
            Some(url::Host::Domain(name)) => UrlHost::Name(name.to_owned()),
            Some(url::Host::Ipv4(ip)) => UrlHost::Ip(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => {
                if ip.to_ipv4_mapped().is_some() {
                    return Err("an IPv4-mapped IPv6 address; write the IPv4 address".into());
                }
                UrlHost::Ip(IpAddr::V6(ip))
            }
            None => return Err("a URL needs a host".into()),
        };
        // The parser reads `2130706433`, `0x7f.1` and `0177.0.0.1` as
        // 127.0.0.1: a spelling other than the canonical one is refused
        // rather than silently meaning an address nobody wrote.
        let written = match authority.strip_prefix('[') {
            Some(v6) => &authority[..v6.find(']').map_or(authority.len(), |i| i + 2)],
            None => authority.split(':').next().unwrap_or_default(),
        };
        let canonical = url.host_str().unwrap_or_default();
        if !written.eq_ignore_ascii_case(canonical) {
            return Err(format!(
                "host {written:?} is not spelled canonically (it means {canonical:?}): write that"
            ));
        }
        let port = url
            .port_or_known_default()
            .ok_or_else(|| "a URL needs a port or a known scheme".to_owned())?;
        let target = match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_owned(),
        };
        Ok(Self {
            scheme,
            host,
            port,
            // `http://host` and `http://host/` are one URL (the parser
            // sends `/` for both): one path, so that a prefix and a call
            // compare alike.
            path: if decoded.is_empty() {
                "/".to_owned()
            } else {
                decoded.into_owned()
            },
            target,
            query: url.query().map(str::to_owned),
        })
    }

    /// `scheme://host:port`, what a URL's origin is compared and shown by.
    pub fn origin(&self) -> String {
        format!("{}://{}:{}", self.scheme, self.host, self.port)
    }

    /// The URL for records: every query value replaced by `[…]`, so that a
    /// token in a query string never reaches the trail.
    pub fn redacted(&self) -> String {
        let mut text = format!(
            "{}{}",
            self.origin(),
            self.target.split('?').next().unwrap_or("/")
        );
        if let Some(query) = &self.query {
            let pairs: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((key, _)) => format!("{key}=[…]"),
                    None => pair.to_owned(),
                })
                .collect();
            text.push('?');
            text.push_str(&pairs.join("&"));
        }
        text
    }
}

/// Whether `text` still holds a `%XX` escape (double encoding).
fn still_encoded(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes
        .windows(3)
        .any(|w| w[0] == b'%' && w[1].is_ascii_hexdigit() && w[2].is_ascii_hexdigit())
}

/// One allow-list entry: a method and a URL prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRule {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The prefix (no query).
    pub prefix: HttpUrl,
}

impl HttpRule {
    /// Whether `method` and `url` fall under this entry: the same origin,
    /// and the path under the prefix's (on a segment boundary unless the
    /// prefix ends with `/`).
    pub fn allows(&self, method: &str, url: &HttpUrl) -> bool {
        if self.method != method || self.prefix.origin() != url.origin() {
            return false;
        }
        let prefix = &self.prefix.path;
        if prefix.ends_with('/') {
            url.path.starts_with(prefix.as_str())
        } else {
            url.path == *prefix
                || url
                    .path
                    .strip_prefix(prefix.as_str())
                    .is_some_and(|rest| rest.starts_with('/'))
        }
    }
}

/// How a secret goes into a request: a header, its value a template with
/// `{}` where the secret goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretPlacement {
    /// The header's name.
    pub header: String,
    /// Its value, `{}` standing for the secret.
    pub template: String,
}

impl SecretPlacement {
    /// The header's value with `secret` in it.
    pub fn value(&self, secret: &str) -> String {
        self.template.replacen("{}", secret, 1)
    }
}

/// What the `http` capability allows a plugin, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpGrant {
    /// Methods and URL prefixes.
    pub rules: Vec<HttpRule>,
    /// Secrets the plugin may name, and where each goes.
    pub secrets: BTreeMap<String, SecretPlacement>,
    /// Deadline of one request: connect, headers and body.
    pub timeout: Duration,
    /// Request body bytes.
    pub max_request_bytes: usize,
    /// Response body bytes kept; the rest is not read.
    pub max_response_bytes: usize,
    /// Read methods (`GET`, `HEAD`) the manifest marks effects.
    pub effects: Vec<String>,
}

impl HttpGrant {
    /// The entry allowing `method` on `url`, if one does.
    pub fn rule(&self, method: &str, url: &HttpUrl) -> Option<&HttpRule> {
        self.rules.iter().find(|rule| rule.allows(method, url))
    }

    /// Whether `method` is an effect: anything but GET and HEAD, and those
    /// when `effects` lists them.
    pub fn is_effect(&self, method: &str) -> bool {
        !READ_METHODS.contains(&method) || self.effects.iter().any(|m| m == method)
    }
}

/// Whether `name` may name a secret: `[A-Z][A-Z0-9_]*`, at most 64 bytes.
pub fn is_secret_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= 64
        && chars.next().is_some_and(|c| c.is_ascii_uppercase())
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c))
}

/// Validates `[capabilities.http]`; `plugin_timeout` is the plugin's deadline.
pub(crate) fn grant(raw: &RawHttp, plugin_timeout: Duration) -> Result<HttpGrant, String> {
    if raw.allow.is_empty() {
        return Err(
            "key `capabilities.http.allow`: lists nothing; list the methods and URL prefixes \
                    the plugin may request (\"GET https://host/path/\")"
                .into(),
        );
    }
    if raw.allow.len() > MAX_HTTP_RULES {
        return Err(format!(
            "key `capabilities.http.allow`: {} entries, at most {MAX_HTTP_RULES}",
            raw.allow.len()
        ));
    }
    let mut rules = Vec::new();
    for entry in &raw.allow {
        let fail = |why: String| format!("key `capabilities.http.allow`: {entry:?}: {why}");
        let (method, url) = entry
            .split_once(' ')
            .ok_or_else(|| fail("must be a method and a URL prefix (\"GET https://host/path/\")".into()))?;
        if !HTTP_METHODS.contains(&method) {
            return Err(fail(format!("method must be one of {}", HTTP_METHODS.join(", "))));
        }
        let prefix = HttpUrl::parse(url).map_err(fail)?;
        if prefix.query.is_some() {
            return Err(fail("a prefix has no query".into()));
        }
        rules.push(HttpRule {
            method: method.to_owned(),
            prefix,
        });
    }
    if raw.secrets.len() > MAX_SECRETS {
        return Err(format!(
            "key `capabilities.http.secrets`: {} secrets, at most {MAX_SECRETS}",
            raw.secrets.len()
        ));
    }
    let mut secrets = BTreeMap::new();
    for (name, placement) in &raw.secrets {
        let fail = |why: &str| format!("key `capabilities.http.secrets.{name}`: {why}");
        if !is_secret_name(name) {
            return Err(fail("a secret's name is [A-Z][A-Z0-9_]*, at most 64 bytes"));
        }
        let parsed = placement
            .strip_prefix("header:")
            .and_then(|rest| rest.split_once(':'))
            .filter(|(header, template)| is_header_name(header) && template.matches("{}").count() == 1)
            .filter(|(_, template)| !template.chars().any(char::is_control));
        let Some((header, template)) = parsed else {
            return Err(fail(
                "must be \"header:NAME:TEMPLATE\", the template holding `{}` once where the secret goes",
            ));
        };
        secrets.insert(
            name.clone(),
            SecretPlacement {
                header: header.to_owned(),
                template: template.to_owned(),
            },
        );
    }
    let timeout = match &raw.timeout {
        None => DEFAULT_HTTP_TIMEOUT.min(plugin_timeout),
        Some(text) => parse_duration(text).map_err(|e| format!("key `capabilities.http.timeout`: {e}"))?,
    };
    if timeout.is_zero() || timeout > plugin_timeout {
        return Err(format!(
            "key `capabilities.http.timeout`: must be longer than zero and at most the plugin's \
             `limits.timeout_ms` ({} ms)",
            plugin_timeout.as_millis()
        ));
    }
    let bytes = |key: &str, value: Option<usize>, default: usize| match value.unwrap_or(default) {
        n if n == 0 || n > MAX_HTTP_BYTES => Err(format!(
            "key `capabilities.http.{key}`: {n} must be between 1 and {MAX_HTTP_BYTES}"
        )),
        n => Ok(n),
    };
    let max_request_bytes = bytes("max_request_bytes", raw.max_request_bytes, DEFAULT_REQUEST_BYTES)?;
    let max_response_bytes = bytes(
        "max_response_bytes",
        raw.max_response_bytes,
        DEFAULT_RESPONSE_BYTES,
    )?;
    if let Some(bad) = raw.effects.iter().find(|m| !READ_METHODS.contains(&m.as_str())) {
        return Err(format!(
            "key `capabilities.http.effects`: {bad:?}: only GET and HEAD are listed (other methods \
             are always effects)"
        ));
    }
    Ok(HttpGrant {
        rules,
        secrets,
        timeout,
        max_request_bytes,
        max_response_bytes,
        effects: raw.effects.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(text: &str) -> Result<HttpUrl, String> {
        HttpUrl::parse(text)
    }

    #[test]
    fn urls_are_normalised_or_refused() {
        let ok = url("HTTP://Runbooks.Internal/api/x?token=abc&q").unwrap();
        assert_eq!(ok.origin(), "http://runbooks.internal:80");
        assert_eq!(ok.path, "/api/x");
        assert_eq!(ok.redacted(), "http://runbooks.internal:80/api/x?token=[…]&q");
        assert_eq!(url("https://127.0.0.1:8443/a%20b").unwrap().path, "/a b");
        for (bad, why) in [
            ("http://2130706433/", "canonically"),
            ("http://0177.0.0.1/", "canonically"),
            ("http://0x7f.1/", "canonically"),
            ("http://[::ffff:127.0.0.1]/", "IPv4-mapped"),
            ("http://allowed@evil/", "userinfo"),
            ("http://a:b@evil/", "userinfo"),
            ("http://host/a#frag", "fragment"),
            ("http://host/api/../admin", "`..`"),
            ("http://host/api/%2e%2e/admin", "`..`"),
            ("http://host/api%2F..%2Fadmin", "`..`"),
            ("http://host/api/%252e%252e/", "still percent-encoded"),
            ("http://host\\@evil/", "backslash"),
            ("ftp://host/", "scheme"),
            ("file:///etc/passwd", "scheme"),
            ("runbooks.internal/api", "not an http"),
            ("http:///path", "host"),
            ("http://host/a b", "whitespace"),
        ] {
            let err = url(bad).expect_err(bad);
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn prefixes_match_on_segments_and_origins() {
        let rule = |entry: &str| {
            let (method, url) = entry.split_once(' ').unwrap();
            HttpRule {
                method: method.into(),
                prefix: HttpUrl::parse(url).unwrap(),
            }
        };
        let flush = rule("POST http://127.0.0.1:8080/flush");
        assert!(flush.allows("POST", &url("http://127.0.0.1:8080/flush").unwrap()));
        assert!(flush.allows("POST", &url("http://127.0.0.1:8080/flush/all?x=1").unwrap()));
        assert!(!flush.allows("POST", &url("http://127.0.0.1:8080/flushall").unwrap()));
        assert!(!flush.allows("GET", &url("http://127.0.0.1:8080/flush").unwrap()));
        assert!(!flush.allows("POST", &url("http://127.0.0.1:8081/flush").unwrap()));
        assert!(!flush.allows("POST", &url("https://127.0.0.1:8080/flush").unwrap()));
        let api = rule("GET https://runbooks.internal/api/");
        assert!(api.allows("GET", &url("https://runbooks.internal:443/api/v1").unwrap()));
        assert!(api.allows("GET", &url("https://runbooks.internal/api/%76").unwrap()));
        assert!(!api.allows("GET", &url("https://runbooks.internal/apiv1").unwrap()));
        assert!(!api.allows("GET", &url("https://runbooks.internal.evil/api/").unwrap()));
    }

    fn parse(toml_text: &str) -> Result<HttpGrant, String> {
        let raw: RawHttp = toml::from_str(toml_text).map_err(|e| e.to_string())?;
        grant(&raw, Duration::from_secs(10))
    }

    #[test]
    fn the_manifest_section_is_validated_with_bounds_and_defaults() {
        let grant = parse(
            r#"allow = ["GET https://runbooks.internal/api/", "POST http://127.0.0.1:8080/flush"]
               secrets = { RUNBOOK_TOKEN = "header:Authorization:Bearer {}" }"#,
        )
        .unwrap();
        assert_eq!(grant.timeout, DEFAULT_HTTP_TIMEOUT);
        assert_eq!(grant.max_response_bytes, DEFAULT_RESPONSE_BYTES);
        assert_eq!(grant.secrets["RUNBOOK_TOKEN"].value("t0k"), "Bearer t0k");
        assert!(!grant.is_effect("GET") && grant.is_effect("POST"));
        let marked = parse(
            r#"allow = ["GET http://a/"]
                               effects = ["GET"]"#,
        )
        .unwrap();
        assert!(marked.is_effect("GET") && !marked.is_effect("HEAD"));
        for (bad, why) in [
            ("allow = []", "lists nothing"),
            (r#"allow = ["GET"]"#, "method and a URL"),
            (r#"allow = ["FETCH http://a/"]"#, "method must be"),
            (r#"allow = ["GET http://a/?x=1"]"#, "no query"),
            (r#"allow = ["GET http://u@a/"]"#, "userinfo"),
            (
                r#"allow = ["GET http://a/"]
                secrets = { token = "header:X:{}" }"#,
                "secret's name",
            ),
            (
                r#"allow = ["GET http://a/"]
                secrets = { T = "header:X:no placeholder" }"#,
                "`{}` once",
            ),
            (
                r#"allow = ["GET http://a/"]
                secrets = { T = "query:t" }"#,
                "header:NAME",
            ),
            (
                r#"allow = ["GET http://a/"]
                timeout = "11s""#,
                "limits.timeout_ms",
            ),
            (
                r#"allow = ["GET http://a/"]
                max_response_bytes = 0"#,
                "between 1 and",
            ),
            (
                r#"allow = ["GET http://a/"]
                effects = ["POST"]"#,
                "only GET and HEAD",
            ),
            (
                r#"allow = ["GET http://a/"]
                follow = true"#,
                "unknown field",
            ),
        ] {
            let err = parse(bad).expect_err(bad);
            assert!(err.contains(why), "{bad}: {err}");
        }
    }
}
