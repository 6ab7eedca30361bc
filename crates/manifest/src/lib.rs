//! Plugin manifests: `NAME.toml` beside the component, parsed strictly.

#![warn(missing_docs)]

use std::collections::BTreeMap;
use std::time::Duration;

use autoheal_core::util::parse_duration;
use serde::Deserialize;

mod approvers;
mod containers;
mod http;
mod prometheus;
mod repeat_cap;
mod state;
pub use approvers::{Approver, MAX_APPROVALS_REQUIRED, MAX_APPROVERS};
pub use containers::{
    ContainerGrant, ExecRule, KNOWN_SIGNALS, LABEL_PREFIX, LabelSelector, LogBounds, MAX_READ_BYTES,
    signal_name,
};
pub use http::{
    DEFAULT_HTTP_TIMEOUT, DEFAULT_REQUEST_BYTES, DEFAULT_RESPONSE_BYTES, HTTP_METHODS, HttpGrant, HttpRule,
    HttpUrl, MAX_HTTP_BYTES, SecretPlacement, UrlHost, is_secret_name,
};
pub use prometheus::{MAX_QUERY_BYTES, MAX_SERIES, PrometheusGrant};
pub use repeat_cap::{MAX_REPEAT_WINDOW, RepeatCap};
pub use state::{MAX_STATE_KEY, StateGrant, is_state_key};

/// Longest cooldown a manifest may ask for.
pub const MAX_COOLDOWN: Duration = Duration::from_secs(7 * 24 * 3600);
/// Target cooldown of a manifest that sets neither it nor `limits.cooldown`:
/// the host's default cooldown as shipped (`default_cooldown_sec`, 10 min).
pub const DEFAULT_TARGET_COOLDOWN: Duration = Duration::from_secs(600);
/// Longest invocation deadline a manifest may ask for.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(300);
/// Pending actions of one plugin, unless its manifest says otherwise.
pub const DEFAULT_MAX_CONCURRENT: usize = 4;
/// The most `limits.max_concurrent` may be.
pub const MAX_CONCURRENT: usize = 64;

/// How long an approval waits for an operator, unless the manifest says.
pub const DEFAULT_APPROVAL_EXPIRES: Duration = Duration::from_secs(15 * 60);
/// The longest `[policy] approval_expires` and `[verify] within`.
pub const MAX_POLICY_WAIT: Duration = Duration::from_secs(24 * 3600);
/// The most plugins `[escalate] then` may name.
pub const MAX_ESCALATION: usize = 8;

/// Longest container name a plugin may pass (Docker's own names are shorter).
pub const MAX_CONTAINER_NAME: usize = 128;

/// What Docker accepts as a container name: `[a-zA-Z0-9][a-zA-Z0-9_.-]*`.
pub fn is_container_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= MAX_CONTAINER_NAME
        && chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// Longest name of a container engine (`[engines.NAME]`).
pub const MAX_ENGINE_NAME: usize = 32;

/// A name of `[engines.NAME]`: `[a-z0-9][a-z0-9_-]*`, at most
/// [`MAX_ENGINE_NAME`] bytes.
pub fn is_engine_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= MAX_ENGINE_NAME
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-'))
}

/// A container on the default engine (`crm-api`) or on a named one
/// (`edge/crm-api`): an engine name, `/`, a container name.
pub fn is_container_target(target: &str) -> bool {
    match target.split_once('/') {
        Some((engine, name)) => is_engine_name(engine) && is_container_name(name),
        None => is_container_name(target),
    }
}

/// The engine a target names (`None`: the default) and its container.
pub fn split_target(target: &str) -> (Option<&str>, &str) {
    match target.split_once('/') {
        Some((engine, name)) => (Some(engine), name),
        None => (None, target),
    }
}

/// A target an allow-list does not settle.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unresolved {
    /// No entry allows it.
    #[error("not in the allow-list")]
    NotAllowed,
    /// A bare name allowed on more than one engine: the plugin must say which.
    #[error("allowed on more than one engine ({}): name the engine, e.g. {:?}", .0.join(", "), .0[0])]
    Ambiguous(Vec<String>),
}

/// The allow-list entry `target` means: the entry itself, or for a bare
/// name, the one entry (on any engine) with that container name.
pub fn resolve_container<'a>(allowed: &'a [String], target: &str) -> Result<&'a str, Unresolved> {
    if let Some(exact) = allowed.iter().find(|entry| *entry == target) {
        return Ok(exact);
    }
    if target.contains('/') {
        return Err(Unresolved::NotAllowed);
    }
    let on_engines: Vec<&String> = allowed
        .iter()
        .filter(|entry| split_target(entry).1 == target)
        .collect();
    match on_engines.as_slice() {
        [] => Err(Unresolved::NotAllowed),
        [one] => Ok(one),
        many => Err(Unresolved::Ambiguous(many.iter().map(|e| (*e).clone()).collect())),
    }
}

/// The file as written. Every table denies unknown keys so that a typo
/// (`containres = [...]`) is an error instead of a silently empty allow-list.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    name: String,
    version: String,
    #[serde(default)]
    description: String,
    component: String,
    /// What the component was written in (it sets the default memory cap).
    language: Option<String>,
    /// Pins the component: its SHA-256, hex.
    sha256: Option<String>,
    #[serde(rename = "match", default)]
    matcher: RawMatch,
    #[serde(default)]
    capabilities: containers::RawCapabilities,
    #[serde(default)]
    limits: RawLimits,
    #[serde(default)]
    cooldown_key: RawCooldownKey,
    #[serde(default)]
    config: BTreeMap<String, toml::Value>,
    #[serde(default)]
    policy: RawPolicy,
    verify: Option<RawVerify>,
    #[serde(default)]
    escalate: RawEscalate,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    approval: Option<String>,
    approval_expires: Option<String>,
    approvers: Option<Vec<String>>,
    approvals_required: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVerify {
    within: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEscalate {
    #[serde(default)]
    then: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMatch {
    #[serde(default)]
    alertnames: Vec<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    firing_for: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    timeout_ms: Option<u64>,
    memory_mb: Option<u64>,
    cooldown: Option<String>,
    target_cooldown: Option<String>,
    cooldown_after_skip: Option<String>,
    stop_timeout_sec: Option<u64>,
    max_concurrent: Option<usize>,
    #[serde(default)]
    max_actions: Vec<String>,
    #[serde(default)]
    max_actions_all_keys: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCooldownKey {
    #[serde(default)]
    labels: Vec<String>,
}

/// What a plugin is written in. The component is WebAssembly whatever the
/// language; a language that brings its interpreter along (Python,
/// JavaScript) needs more memory by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Language {
    /// Rust (or any language compiled straight to a component).
    #[default]
    Rust,
    /// Python, built with componentize-py (CPython inside the component).
    Python,
    /// JavaScript or TypeScript, built with componentize-js (SpiderMonkey inside).
    JavaScript,
}

impl Language {
    /// The `language` key's value.
    pub fn as_str(self) -> &'static str {
        match self {
            Language::Rust => "rust",
            Language::Python => "python",
            Language::JavaScript => "javascript",
        }
    }

    /// `limits.memory_mb` when the manifest does not say.
    pub fn default_memory_mb(self) -> u64 {
        match self {
            Language::Rust => 16,
            Language::Python => 64,
            Language::JavaScript => 48,
        }
    }
}

/// A validated manifest.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    /// The plugin's name, unique in the plugins directory.
    pub name: String,
    /// Its version, shown in events.
    pub version: String,
    /// What it does, for people.
    pub description: String,
    /// File name of the component, inside the plugins directory.
    pub component: String,
    /// What the component was written in.
    pub language: Language,
    /// The component's SHA-256 (lowercase hex) if the manifest pins it; a
    /// component with another hash is rejected.
    pub sha256: Option<String>,
    /// The alerts it handles without an `autoheal_action` annotation.
    pub matcher: AlertMatcher,
    /// `[capabilities] containers` as written: names and `label:` entries.
    pub containers: Vec<String>,
    /// What the `containers` capability allows, validated: the gate's
    /// allow-lists of containers, signals, commands and log reads.
    pub container_grant: std::sync::Arc<ContainerGrant>,
    /// `[capabilities.http]`, validated: the methods and URL prefixes a
    /// plugin may request, its secrets and bounds (`None`: no HTTP at all).
    pub http_grant: Option<std::sync::Arc<HttpGrant>>,
    /// `[capabilities.prometheus]`: queries allowed, within these bounds.
    pub prometheus: Option<PrometheusGrant>,
    /// `[capabilities.state]`: a store of the plugin's own, within these bounds.
    pub state: Option<StateGrant>,
    /// Deadline of one invocation.
    pub timeout: Duration,
    /// Memory cap of one invocation.
    pub memory_bytes: usize,
    /// `None`: the host's per-alert or default cooldown applies.
    pub cooldown: Option<Duration>,
    /// After a real restart of a container, requests of other actions to
    /// restart it again within this time join that restart (zero: never).
    pub target_cooldown: Duration,
    /// `limits.cooldown_after_skip`: the cooldown left after the plugin
    /// declined to act (default 0: none; never longer than the cooldown
    /// the dispatch began).
    pub cooldown_after_skip: Duration,
    /// Grace period the engine gives a container to stop on restart.
    pub stop_timeout: Duration,
    /// Alert labels that make cooldowns separate (e.g. `instance`).
    pub cooldown_labels: Vec<String>,
    /// Handed to the plugin as key/value pairs.
    pub config: Vec<(String, String)>,
    /// Actions of this plugin that may be pending at once.
    pub max_concurrent: usize,
    /// `limits.max_actions`: real actions per cooldown key per window,
    /// shortest window first (empty: no cap).
    pub max_actions: Vec<RepeatCap>,
    /// `limits.max_actions_all_keys`: real actions of the plugin, whatever
    /// their key, per window, shortest window first (empty: no cap).
    pub max_actions_all_keys: Vec<RepeatCap>,
    /// `[policy] approval = "required"`: a real action waits for an operator.
    pub approval_required: bool,
    /// How long an approval waits before it expires.
    pub approval_expires: Duration,
    /// `[policy] approvers`: who may answer this plugin's approvals, beyond
    /// holding the approver role on it (empty: anyone with the role).
    pub approvers: Vec<Approver>,
    /// `[policy] approvals_required`: how many different approvers must
    /// grant before the action runs (1-5).
    pub approvals_required: u32,
    /// `[verify] within`: how long the alert has to resolve after an action.
    pub verify_within: Option<Duration>,
    /// `[escalate] then`: the plugins to try next, in order, when an action
    /// did not make the alert resolve.
    pub escalate: Vec<String>,
    /// `[match] firing_for`: the plugin acts on an alert only once it has
    /// been firing this long (by its `startsAt`); a younger one is held
    /// until then, so that what recovers by itself is not restarted.
    pub firing_for: Option<Duration>,
}

/// Which alerts a plugin handles when no `autoheal_action` annotation picks one.
/// A matcher with neither alertnames nor labels matches nothing by itself.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AlertMatcher {
    /// Any of these alertnames (empty: any alertname).
    pub alertnames: Vec<String>,
    /// All of these labels, exactly.
    pub labels: BTreeMap<String, String>,
}

/// Where two plugins may both act: an alert both match, on a container
/// both may restart. One such alert runs both, each within its own rights,
/// so the container is acted on twice for one fault.
#[derive(Debug, Clone, PartialEq)]
pub struct Overlap {
    /// The alertnames both match (empty: any alertname, as far as the
    /// names go, since one of them names none and matches by labels).
    pub alertnames: Vec<String>,
    /// The containers both may act on.
    pub containers: Vec<String>,
}

impl Manifest {
    /// Whether this plugin and `other` may act on one alert's container
    /// together; `None` when no alert matches both or no container is both
    /// of theirs. Conservative: label values the matchers require are
    /// compared, nothing else about the alert is known.
    pub fn overlap_with(&self, other: &Manifest) -> Option<Overlap> {
        let (a, b) = (&self.matcher, &other.matcher);
        let matches_nothing = |m: &AlertMatcher| m.alertnames.is_empty() && m.labels.is_empty();
        if matches_nothing(a) || matches_nothing(b) {
            return None;
        }
        let alertnames: Vec<String> = match (a.alertnames.is_empty(), b.alertnames.is_empty()) {
            (true, true) => Vec::new(),
            (true, false) => b.alertnames.clone(),
            (false, true) => a.alertnames.clone(),
            (false, false) => {
                let shared: Vec<String> = a
                    .alertnames
                    .iter()
                    .filter(|n| b.alertnames.contains(n))
                    .cloned()
                    .collect();
                if shared.is_empty() {
                    return None;
                }
                shared
            }
        };
        let labels_agree = a
            .labels
            .iter()
            .all(|(key, value)| b.labels.get(key).is_none_or(|v| v == value));
        let containers: Vec<String> = self
            .containers
            .iter()
            .filter(|c| other.containers.contains(c))
            .cloned()
            .collect();
        (labels_agree && !containers.is_empty()).then_some(Overlap {
            alertnames,
            containers,
        })
    }
}

impl AlertMatcher {
    /// True when the alert's labels are handled by this matcher.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        if self.alertnames.is_empty() && self.labels.is_empty() {
            return false;
        }
        let alertname = labels.get("alertname").map(String::as_str);
        (self.alertnames.is_empty() || self.alertnames.iter().any(|a| Some(a.as_str()) == alertname))
            && self.labels.iter().all(|(k, v)| labels.get(k) == Some(v))
    }
}

/// A manifest that is not valid, and why.
#[derive(Debug, thiserror::Error)]
#[error("manifest {file}: {message}")]
pub struct ManifestError {
    /// The manifest's file name.
    pub file: String,
    /// What is wrong, naming the key.
    pub message: String,
}

/// Limits a manifest's asks are checked against.
#[derive(Debug, Clone, Copy)]
pub struct ManifestBounds {
    /// The largest `memory_mb` a manifest may ask for.
    pub max_memory_mb: u64,
}

impl Manifest {
    /// Parses and validates `text`; `file` names the manifest in errors.
    pub fn parse(file: &str, text: &str, bounds: ManifestBounds) -> Result<Self, ManifestError> {
        let fail = |message: String| ManifestError {
            file: file.to_owned(),
            message,
        };
        let raw: RawManifest = toml::from_str(text).map_err(|e| fail(e.to_string().trim_end().to_owned()))?;

        if !is_plugin_name(&raw.name) {
            return Err(fail(format!(
                "key `name`: {:?} must be non-empty and use only letters, digits, '-' and '_'",
                raw.name
            )));
        }
        if raw.version.trim().is_empty() {
            return Err(fail("key `version`: must not be empty".into()));
        }
        if !is_plain_file_name(&raw.component) {
            return Err(fail(format!(
                "key `component`: {:?} must be a file name inside the plugins directory",
                raw.component
            )));
        }
        let sha256 = match raw.sha256 {
            None => None,
            Some(hex) if hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit()) => {
                Some(hex.to_ascii_lowercase())
            }
            Some(_) => {
                return Err(fail(
                    "key `sha256`: must be the component's SHA-256 as 64 hex digits".into(),
                ));
            }
        };
        let timeout_ms = raw.limits.timeout_ms.unwrap_or(5000);
        if timeout_ms == 0 || Duration::from_millis(timeout_ms) > MAX_TIMEOUT {
            return Err(fail(format!(
                "key `limits.timeout_ms`: {timeout_ms} must be between 1 and {}",
                MAX_TIMEOUT.as_millis()
            )));
        }
        let container_grant =
            containers::grant(&raw.capabilities, Duration::from_millis(timeout_ms)).map_err(fail)?;
        let http_grant = raw
            .capabilities
            .http
            .as_ref()
            .map(|http| http::grant(http, Duration::from_millis(timeout_ms)))
            .transpose()
            .map_err(fail)?
            .map(std::sync::Arc::new);
        let prometheus_grant = raw
            .capabilities
            .prometheus
            .as_ref()
            .map(|p| prometheus::grant(p, Duration::from_millis(timeout_ms)))
            .transpose()
            .map_err(fail)?;
        let state_grant = raw
            .capabilities
            .state
            .as_ref()
            .map(state::grant)
            .transpose()
            .map_err(fail)?;
        let language = match raw.language.as_deref() {
            None | Some("rust") => Language::Rust,
            Some("python") => Language::Python,
            Some("javascript" | "js" | "typescript") => Language::JavaScript,
            Some(other) => {
                return Err(fail(format!(
                    "key `language`: {other:?} must be \"rust\", \"python\" or \"javascript\""
                )));
            }
        };
        let memory_mb = raw.limits.memory_mb.unwrap_or(language.default_memory_mb());
        if memory_mb == 0 || memory_mb > bounds.max_memory_mb {
            return Err(fail(format!(
                "key `limits.memory_mb`: {memory_mb} must be between 1 and {} (the host's sandbox.max_memory_mb)",
                bounds.max_memory_mb
            )));
        }
        // Unset, the stop timeout is Docker's 10 s or half the deadline if
        // that is shorter, so that a restart always fits in the deadline.
        let timeout = Duration::from_millis(timeout_ms);
        let stop_timeout = match raw.limits.stop_timeout_sec {
            Some(secs) => Duration::from_secs(secs),
            None => Duration::from_secs(10).min(Duration::from_secs(timeout_ms / 2000)),
        };
        if !raw.capabilities.containers.is_empty() && timeout <= stop_timeout {
            return Err(fail(format!(
                "key `limits.timeout_ms`: {timeout_ms} ms leaves no time for a restart that may wait \
                 `limits.stop_timeout_sec` = {} s for the container to stop; make it longer than that",
                stop_timeout.as_secs()
            )));
        }
        let cooldown = raw
            .limits
            .cooldown
            .as_deref()
            .map(|text| parse_duration(text).map_err(|e| fail(format!("key `limits.cooldown`: {e}"))))
            .transpose()?;
        if cooldown.is_some_and(|c| c > MAX_COOLDOWN) {
            return Err(fail("key `limits.cooldown`: longer than 7 days".into()));
        }
        let target_cooldown = match raw.limits.target_cooldown.as_deref() {
            Some(text) => {
                parse_duration(text).map_err(|e| fail(format!("key `limits.target_cooldown`: {e}")))?
            }
            None => cooldown.unwrap_or(DEFAULT_TARGET_COOLDOWN),
        };
        if target_cooldown > MAX_COOLDOWN {
            return Err(fail("key `limits.target_cooldown`: longer than 7 days".into()));
        }
        // No cooldown after a skip unless asked for: the plugin changed
        // nothing, Alertmanager already paces its re-sends (group_interval,
        // repeat_interval), and a plugin that declined because the
        // container was too young or still healthy should look again at the
        // next one rather than leave a service down for a whole cooldown.
        let cooldown_after_skip = raw
            .limits
            .cooldown_after_skip
            .as_deref()
            .map(|text| {
                parse_duration(text).map_err(|e| fail(format!("key `limits.cooldown_after_skip`: {e}")))
            })
            .transpose()?
            .unwrap_or(Duration::ZERO);
        if cooldown_after_skip > MAX_COOLDOWN {
            return Err(fail(
                "key `limits.cooldown_after_skip`: longer than 7 days".into(),
            ));
        }

        let max_concurrent = raw.limits.max_concurrent.unwrap_or(DEFAULT_MAX_CONCURRENT);
        if !(1..=MAX_CONCURRENT).contains(&max_concurrent) {
            return Err(fail(format!(
                "key `limits.max_concurrent`: {max_concurrent} must be between 1 and {MAX_CONCURRENT}"
            )));
        }

        let max_actions =
            repeat_cap::parse_caps("limits.max_actions", &raw.limits.max_actions).map_err(&fail)?;
        let max_actions_all_keys =
            repeat_cap::parse_caps("limits.max_actions_all_keys", &raw.limits.max_actions_all_keys)
                .map_err(&fail)?;

        let mut config = Vec::with_capacity(raw.config.len());
        for (key, value) in raw.config {
            let text = match value {
                toml::Value::String(s) => s,
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Float(f) => f.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                other => {
                    return Err(fail(format!(
                        "key `config.{key}`: a {} cannot be passed to a plugin; use a string, number or boolean",
                        other.type_str()
                    )));
                }
            };
            config.push((key, text));
        }

        let approval_required = match raw.policy.approval.as_deref() {
            None | Some("none") => false,
            Some("required") => true,
            Some(other) => {
                return Err(fail(format!(
                    "key `policy.approval`: {other:?} must be \"required\" or \"none\""
                )));
            }
        };
        let wait = |key: &str, text: &str| {
            let wait = parse_duration(text).map_err(|e| fail(format!("key `{key}`: {e}")))?;
            if wait.is_zero() || wait > MAX_POLICY_WAIT {
                return Err(fail(format!("key `{key}`: {text:?} must be between 1s and 24h")));
            }
            Ok(wait)
        };
        let approval_expires = match raw.policy.approval_expires.as_deref() {
            Some(text) => wait("policy.approval_expires", text)?,
            None => DEFAULT_APPROVAL_EXPIRES,
        };
        let approvals_required = match raw.policy.approvals_required {
            None => 1,
            Some(n) if (1..=i64::from(MAX_APPROVALS_REQUIRED)).contains(&n) => n as u32,
            Some(n) => {
                return Err(fail(format!(
                    "key `policy.approvals_required`: {n} must be between 1 and {MAX_APPROVALS_REQUIRED}"
                )));
            }
        };
        let approvers = approvers::parse_approvers(
            raw.policy.approvers.as_deref().unwrap_or_default(),
            approvals_required,
        )
        .map_err(|e| fail(format!("key `policy.approvers`: {e}")))?;
        let verify_within = raw.verify.map(|v| wait("verify.within", &v.within)).transpose()?;
        let firing_for = raw
            .matcher
            .firing_for
            .as_deref()
            .map(|text| wait("match.firing_for", text))
            .transpose()?;
        let escalate = raw.escalate.then;
        if !escalate.is_empty() && verify_within.is_none() {
            return Err(fail(
                "key `escalate.then`: a chain escalates when a step did not work, which needs \
                 `[verify] within` to say how long a step has"
                    .into(),
            ));
        }
        if escalate.len() > MAX_ESCALATION {
            return Err(fail(format!(
                "key `escalate.then`: {} plugins; at most {MAX_ESCALATION}",
                escalate.len()
            )));
        }
        if let Some(bad) = escalate.iter().find(|p| !is_plugin_name(p)) {
            return Err(fail(format!("key `escalate.then`: {bad:?} is not a plugin name")));
        }
        if let Some(bad) = escalate.iter().find(|p| *p == &raw.name) {
            return Err(fail(format!(
                "key `escalate.then`: {bad:?} is this plugin; a chain names the plugins tried after it"
            )));
        }

        Ok(Manifest {
            name: raw.name,
            version: raw.version,
            description: raw.description,
            component: raw.component,
            language,
            sha256,
            matcher: AlertMatcher {
                alertnames: raw.matcher.alertnames,
                labels: raw.matcher.labels,
            },
            containers: raw.capabilities.containers,
            container_grant: container_grant.into(),
            http_grant,
            prometheus: prometheus_grant,
            state: state_grant,
            timeout,
            memory_bytes: (memory_mb * 1024 * 1024) as usize,
            cooldown,
            target_cooldown,
            cooldown_after_skip,
            stop_timeout,
            cooldown_labels: raw.cooldown_key.labels,
            config,
            max_concurrent,
            max_actions,
            max_actions_all_keys,
            approval_required,
            approval_expires,
            approvers,
            approvals_required,
            verify_within,
            escalate,
            firing_for,
        })
    }

    /// True when the plugin may touch the container `name` (on whichever
    /// engine its allow-list names, if only one).
    pub fn allows_container(&self, name: &str) -> bool {
        resolve_container(&self.container_grant.names, name).is_ok()
    }
}

/// Letters, digits, `-` and `_`, not empty.
fn is_plugin_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn is_plain_file_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains('/')
        && !name.contains('\\')
        && !name.contains('\0')
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOUNDS: ManifestBounds = ManifestBounds { max_memory_mb: 64 };

    #[test]
    fn containers_may_name_their_engine_and_bare_names_resolve_to_the_one_entry() {
        assert!(is_container_target("crm-api") && is_container_target("edge/crm-api"));
        for bad in ["Edge/crm-api", "/crm-api", "edge/", "a/b/c", "edge/../x"] {
            assert!(!is_container_target(bad), "{bad}");
        }
        let allowed: Vec<String> = ["crm-api", "edge/billing", "a/db", "b/db"]
            .map(String::from)
            .into();
        assert_eq!(resolve_container(&allowed, "crm-api"), Ok("crm-api"));
        assert_eq!(resolve_container(&allowed, "billing"), Ok("edge/billing"));
        assert_eq!(resolve_container(&allowed, "edge/billing"), Ok("edge/billing"));
        assert_eq!(resolve_container(&allowed, "a/db"), Ok("a/db"));
        assert_eq!(
            resolve_container(&allowed, "edge/crm-api"),
            Err(Unresolved::NotAllowed)
        );
        assert_eq!(resolve_container(&allowed, "other"), Err(Unresolved::NotAllowed));
        let ambiguous = resolve_container(&allowed, "db").unwrap_err();
        assert_eq!(
            ambiguous,
            Unresolved::Ambiguous(vec!["a/db".into(), "b/db".into()])
        );
        assert!(ambiguous.to_string().contains("\"a/db\""), "{ambiguous}");
        let manifest = Manifest::parse(
            "m.toml",
            &GOOD.replace("[\"crm-api\"]", "[\"edge/crm-api\"]"),
            BOUNDS,
        )
        .unwrap();
        assert!(manifest.allows_container("crm-api") && manifest.allows_container("edge/crm-api"));
        assert!(
            Manifest::parse(
                "m.toml",
                &GOOD.replace("[\"crm-api\"]", "[\"Edge/crm-api\"]"),
                BOUNDS
            )
            .is_err()
        );
    }

    const GOOD: &str = r#"
name = "restart-crm-api"
version = "0.1.0"
component = "restart_container.wasm"
[match]
alertnames = ["TcpEndpointDownFast"]
[capabilities]
containers = ["crm-api"]
[limits]
timeout_ms = 2000
memory_mb = 16
cooldown = "10m"
stop_timeout_sec = 1
[config]
container = "crm-api"
min_uptime_sec = 60
"#;

    #[test]
    fn two_plugins_overlap_when_one_alert_matches_both_and_a_container_is_both_of_theirs() {
        let with = |alertnames: &str, labels: &str, containers: &str| {
            let text = GOOD
                .replace(
                    r#"alertnames = ["TcpEndpointDownFast"]"#,
                    &format!("{alertnames}\n{labels}"),
                )
                .replace(
                    r#"containers = ["crm-api"]"#,
                    &format!("containers = {containers}"),
                );
            Manifest::parse("m.toml", &text, BOUNDS).unwrap()
        };
        let base = with(
            r#"alertnames = ["Down", "Unhealthy"]"#,
            "",
            r#"["crm-api", "db"]"#,
        );
        let twin = with(r#"alertnames = ["Unhealthy"]"#, "", r#"["crm-api"]"#);
        assert_eq!(
            base.overlap_with(&twin),
            Some(Overlap {
                alertnames: vec!["Unhealthy".into()],
                containers: vec!["crm-api".into()]
            })
        );
        // Another alert, another container, or labels that cannot both hold: apart.
        assert_eq!(
            base.overlap_with(&with(r#"alertnames = ["Other"]"#, "", r#"["crm-api"]"#)),
            None
        );
        assert_eq!(
            base.overlap_with(&with(r#"alertnames = ["Down"]"#, "", r#"["billing"]"#)),
            None
        );
        let by_label = |team: &str| with("", &format!("labels = {{ team = \"{team}\" }}"), r#"["db"]"#);
        assert_eq!(by_label("a").overlap_with(&by_label("b")), None);
        // A plugin matching by labels alone may meet any alertname of the other.
        let overlap = base.overlap_with(&by_label("a")).unwrap();
        assert_eq!(
            (overlap.alertnames.len(), overlap.containers),
            (2, vec!["db".to_owned()])
        );
    }

    #[test]
    fn parses_a_full_manifest() {
        let m = Manifest::parse("a.toml", GOOD, BOUNDS).unwrap();
        assert_eq!(m.name, "restart-crm-api");
        assert_eq!(m.timeout, Duration::from_secs(2));
        assert_eq!(m.memory_bytes, 16 << 20);
        assert_eq!(m.cooldown, Some(Duration::from_secs(600)));
        // Unset, the target cooldown is the plugin's cooldown.
        assert_eq!(m.target_cooldown, Duration::from_secs(600));
        assert_eq!(
            m.cooldown_after_skip,
            Duration::ZERO,
            "no cooldown after a skip unless asked"
        );
        let asked = GOOD.replace(
            "cooldown = \"10m\"",
            "cooldown = \"10m\"\ncooldown_after_skip = \"30s\"",
        );
        let m2 = Manifest::parse("a.toml", &asked, BOUNDS).unwrap();
        assert_eq!(m2.cooldown_after_skip, Duration::from_secs(30));
        assert!(
            m.max_actions.is_empty() && m.max_actions_all_keys.is_empty(),
            "no cap unless asked"
        );
        let capped = GOOD.replace(
            "cooldown = \"10m\"",
            "cooldown = \"10m\"\nmax_actions = [\"7/1d\", \"3/1h\"]\nmax_actions_all_keys = [\"20/1h\"]",
        );
        let m3 = Manifest::parse("a.toml", &capped, BOUNDS).unwrap();
        let caps: Vec<&str> = m3.max_actions.iter().map(RepeatCap::as_str).collect();
        assert_eq!(caps, ["3/1h", "7/1d"]);
        assert_eq!(m3.max_actions_all_keys[0].count, 20);
        assert!(m.allows_container("crm-api"));
        assert!(!m.allows_container("db"));
        assert_eq!(
            m.config,
            vec![
                ("container".into(), "crm-api".into()),
                ("min_uptime_sec".into(), "60".into())
            ]
        );
    }

    /// Each case: a change to the good manifest and words the error must contain.
    #[test]
    fn rejections_name_the_file_and_key() {
        let cases: &[(&str, &str, &[&str])] = &[
            (
                "[capabilities]\ncontainers",
                "[capabilities]\ncontainres",
                &["containres"],
            ),
            ("timeout_ms = 2000", "timeout_ms = 2000\nspeed = 1", &["speed"]),
            (
                "memory_mb = 16",
                "memory_mb = 1000",
                &["limits.memory_mb", "1000"],
            ),
            (
                "cooldown = \"10m\"",
                "cooldown = \"soon\"",
                &["limits.cooldown", "soon"],
            ),
            (
                "cooldown = \"10m\"",
                "cooldown = \"10m\"\ntarget_cooldown = \"8d\"",
                &["limits.target_cooldown", "7 days"],
            ),
            (
                "cooldown = \"10m\"",
                "cooldown_after_skip = \"8d\"",
                &["limits.cooldown_after_skip", "7 days"],
            ),
            (
                "cooldown = \"10m\"",
                "max_actions = [\"3/1h\", \"0/1d\"]",
                &["limits.max_actions", "\"0/1d\"", "count of 0"],
            ),
            (
                "cooldown = \"10m\"",
                "max_actions_all_keys = [\"20/1h\", \"30/60m\"]",
                &["limits.max_actions_all_keys", "same window"],
            ),
            (
                "\"restart_container.wasm\"",
                "\"../../etc/x.wasm\"",
                &["component"],
            ),
            ("name = \"restart-crm-api\"", "name = \"has space\"", &["name"]),
            ("min_uptime_sec = 60", "nested = { a = 1 }", &["config.nested"]),
            (
                "stop_timeout_sec = 1",
                "stop_timeout_sec = 2",
                &["limits.timeout_ms", "stop_timeout_sec"],
            ),
            ("version = \"0.1.0\"\n", "", &["version"]),
            (
                "containers = [\"crm-api\"]",
                "containers = [\"crm-api\", \"../crm api\"]",
                &["capabilities.containers", "../crm api", "not a container name"],
            ),
            (
                "containers = [\"crm-api\"]",
                "containers = [\"\"]",
                &["capabilities.containers"],
            ),
            (
                "[config]",
                "[policy]\napproval = \"maybe\"\n[config]",
                &["policy.approval", "maybe"],
            ),
            (
                "[config]",
                "[policy]\napproval_expires = \"0s\"\n[config]",
                &["policy.approval_expires"],
            ),
            (
                "[config]",
                "[policy]\napprovals_required = 6\n[config]",
                &["policy.approvals_required", "between 1 and 5"],
            ),
            (
                "[config]",
                "[policy]\napprovals_required = 0\n[config]",
                &["policy.approvals_required"],
            ),
            (
                "[config]",
                "[policy]\napprovers = [\"sre\"]\n[config]",
                &["policy.approvers", "group:NAME"],
            ),
            (
                "[config]",
                "[policy]\napprovers = [\"user:alice\"]\napprovals_required = 2\n[config]",
                &["policy.approvers", "never be met"],
            ),
            (
                "[config]",
                "[verify]\nwithin = \"2d\"\n[config]",
                &["verify.within", "24h"],
            ),
            (
                "[config]",
                "[escalate]\nthen = [\"restart-by-label\"]\n[config]",
                &["escalate.then", "[verify] within"],
            ),
            (
                "[config]",
                "[verify]\nwithin = \"1m\"\n[escalate]\nthen = [\"restart-crm-api\"]\n[config]",
                &["escalate.then", "this plugin"],
            ),
            (
                "[config]",
                "[verify]\nwithin = \"1m\"\n[escalate]\nthen = [\"a b\"]\n[config]",
                &["escalate.then", "not a plugin name"],
            ),
        ];
        for (from, to, words) in cases {
            let text = GOOD.replacen(from, to, 1);
            assert_ne!(text, GOOD, "case {from:?} did not change the manifest");
            let err = Manifest::parse("bad.toml", &text, BOUNDS)
                .unwrap_err()
                .to_string();
            assert!(err.contains("bad.toml"), "{err}");
            for word in *words {
                assert!(err.contains(word), "{err:?} should mention {word:?}");
            }
        }
    }

    #[test]
    fn a_language_sets_the_default_memory_cap_and_an_unknown_one_is_named() {
        let without_memory = GOOD.replace("memory_mb = 16\n", "");
        let rust = Manifest::parse("a.toml", &without_memory, BOUNDS).unwrap();
        assert_eq!((rust.language, rust.memory_bytes), (Language::Rust, 16 << 20));
        let python = without_memory.replacen("component =", "language = \"python\"\ncomponent =", 1);
        let python = Manifest::parse("a.toml", &python, BOUNDS).unwrap();
        assert_eq!(
            (python.language, python.memory_bytes),
            (Language::Python, 64 << 20)
        );
        let js = without_memory.replacen("component =", "language = \"javascript\"\ncomponent =", 1);
        assert_eq!(
            Manifest::parse("a.toml", &js, BOUNDS).unwrap().memory_bytes,
            48 << 20
        );
        let cobol = without_memory.replacen("component =", "language = \"cobol\"\ncomponent =", 1);
        let err = Manifest::parse("a.toml", &cobol, BOUNDS).unwrap_err().to_string();
        assert!(err.contains("language") && err.contains("cobol"), "{err}");
    }

    #[test]
    fn policies_default_to_acting_at_once_without_verifying() {
        let m = Manifest::parse("a.toml", GOOD, BOUNDS).unwrap();
        assert!(!m.approval_required);
        assert_eq!(m.approval_expires, DEFAULT_APPROVAL_EXPIRES);
        assert_eq!((m.approvals_required, m.approvers.len()), (1, 0));
        assert_eq!(m.verify_within, None);
        assert!(m.escalate.is_empty());
        let text = GOOD.replacen(
            "[config]",
            "[policy]\napproval = \"required\"\napproval_expires = \"5m\"\n\
             approvers = [\"group:sre\", \"user:alice\", \"token:ci\"]\napprovals_required = 2\n\
             [verify]\nwithin = \"90s\"\n[escalate]\nthen = [\"restart-by-label\"]\n[config]",
            1,
        );
        let m = Manifest::parse("a.toml", &text, BOUNDS).unwrap();
        assert!(m.approval_required);
        assert_eq!(m.approval_expires, Duration::from_secs(300));
        assert_eq!(m.approvals_required, 2);
        assert_eq!(
            m.approvers,
            vec![
                Approver::Group("sre".into()),
                Approver::User("alice".into()),
                Approver::Token("ci".into())
            ]
        );
        assert_eq!(m.verify_within, Some(Duration::from_secs(90)));
        assert_eq!(m.escalate, vec!["restart-by-label".to_owned()]);
    }

    #[test]
    fn firing_for_is_a_bounded_grace_and_none_by_default() {
        assert_eq!(Manifest::parse("a.toml", GOOD, BOUNDS).unwrap().firing_for, None);
        let with = |value: &str| GOOD.replacen("[match]", &format!("[match]\nfiring_for = {value:?}"), 1);
        let m = Manifest::parse("a.toml", &with("2m"), BOUNDS).unwrap();
        assert_eq!(m.firing_for, Some(Duration::from_secs(120)));
        for bad in ["0s", "25h", "soon"] {
            let err = Manifest::parse("a.toml", &with(bad), BOUNDS)
                .unwrap_err()
                .to_string();
            assert!(err.contains("match.firing_for"), "{bad}: {err}");
        }
    }

    #[test]
    fn matcher_needs_a_name_or_labels() {
        let labels: BTreeMap<String, String> = [
            ("alertname".to_owned(), "A".to_owned()),
            ("env".into(), "prod".into()),
        ]
        .into();
        assert!(!AlertMatcher::default().matches(&labels));
        let by_name = AlertMatcher {
            alertnames: vec!["A".into()],
            ..Default::default()
        };
        assert!(by_name.matches(&labels));
        let by_label = AlertMatcher {
            labels: [("env".to_owned(), "dev".to_owned())].into(),
            ..Default::default()
        };
        assert!(!by_label.matches(&labels));
    }
}
