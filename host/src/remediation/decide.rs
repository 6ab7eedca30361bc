//! The decision for one alert, as a pure function of the alert, the loaded
//! plugins, the cooldowns and the configuration: easy to test as a table.
//! Also pure, and asked of each action decided: whether it must wait for
//! an operator ([`approval_cause`]) and the escalation chain it begins
//! ([`first_step`]).

use std::sync::Arc;

use super::cooldown::Cooldowns;
use super::holds::Hold;
use super::pauses::PausedBy;
use super::repeat_cap::Reached;
use crate::config::Config;
use autoheal_core::alert::Alert;
pub use autoheal_core::event::SkipReason;
use autoheal_core::event::{ApprovalCause, Budget, ChainStep};
use autoheal_sandbox::manifest::Manifest;
use autoheal_sandbox::registry::{Plugin, PluginSet};

/// The annotation that opts an alert in.
pub const OPT_IN_ANNOTATION: &str = "autoheal";
/// The annotation that names the plugin to run.
pub const ACTION_ANNOTATION: &str = "autoheal_action";
/// The annotation by which an alert asks for an operator's approval.
pub const APPROVAL_ANNOTATION: &str = "autoheal_approval";

/// What to do with one alert (and plugin).
pub enum Verdict {
    /// Do nothing, and say why.
    Skip {
        /// Why not.
        reason: SkipReason,
        /// The why, for people.
        detail: String,
        /// The plugin concerned, if one was chosen.
        plugin: Option<String>,
        /// Seconds of cooldown left, for `cooldown`.
        remaining_sec: Option<u64>,
        /// The budget spent, for `budget`.
        budget: Option<Budget>,
        /// The pause that stopped it, for `paused`.
        paused: Option<PausedBy>,
        /// The cap reached, for `repeat_cap`.
        repeat_cap: Option<Box<Reached>>,
    },
    /// Run this plugin and start this cooldown.
    Act {
        /// The plugin to run.
        plugin: Arc<Plugin>,
        /// The cooldown to start.
        cooldown_key: String,
        /// Its length.
        cooldown_sec: u64,
    },
    /// Not yet: the plugin's grace (`[match] firing_for`) holds the alert
    /// until the hold's `until` (never returned by [`decide`]: the
    /// remediator's holds turn an `Act` into it).
    Defer(Hold),
}

impl Verdict {
    fn skip(reason: SkipReason, detail: impl Into<String>) -> Self {
        Verdict::Skip {
            reason,
            detail: detail.into(),
            plugin: None,
            remaining_sec: None,
            budget: None,
            paused: None,
            repeat_cap: None,
        }
    }

    /// `plugin` acted as often as a repeat cap of its manifest allows.
    pub fn repeat_cap(plugin: &str, reached: Reached) -> Self {
        Verdict::Skip {
            reason: SkipReason::RepeatCap,
            detail: reached.detail(),
            plugin: Some(plugin.to_owned()),
            remaining_sec: None,
            budget: None,
            paused: None,
            repeat_cap: Some(Box::new(reached)),
        }
    }

    /// A skip of the plugin `plugin`, and why.
    pub fn skip_by(reason: SkipReason, plugin: &str, detail: String) -> Self {
        Verdict::Skip {
            reason,
            detail,
            plugin: Some(plugin.to_owned()),
            remaining_sec: None,
            budget: None,
            paused: None,
            repeat_cap: None,
        }
    }
}

/// One verdict per plugin that would handle the alert (one skip if none).
pub fn decide(
    alert: &Alert,
    plugins: &PluginSet,
    cooldowns: &Cooldowns,
    config: &Config,
    now: f64,
) -> Vec<Verdict> {
    let opted_in = alert
        .annotations
        .get(OPT_IN_ANNOTATION)
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
    if !opted_in {
        return vec![Verdict::skip(
            SkipReason::NotAnnotated,
            format!("alert has no annotation {OPT_IN_ANNOTATION}: \"true\""),
        )];
    }

    let asked = alert.annotations.get(ACTION_ANNOTATION);
    let chosen: Vec<&Arc<Plugin>> = match (asked, asked.and_then(|a| original_restart(a))) {
        (Some(asked), Some(container)) => match plugin_for_original_restart(plugins, alert, container) {
            Some(plugin) => vec![plugin],
            None => {
                return vec![Verdict::skip(
                    SkipReason::NoPlugin,
                    format!(
                        "{ACTION_ANNOTATION} {asked:?} (the original system's form): no loaded plugin \
                             matches alert {:?} and may restart container {container:?}",
                        alert.alertname()
                    ),
                )];
            }
        },
        (Some(name), None) => match plugins.get(name.trim()) {
            Some(plugin) if plugin.manifest.matcher.matches(&alert.labels) => vec![plugin],
            Some(plugin) => {
                return vec![Verdict::skip_by(
                    SkipReason::NotMatched,
                    &plugin.manifest.name,
                    format!(
                        "{ACTION_ANNOTATION} names plugin {:?}, whose [match] does not accept alert {:?}",
                        plugin.manifest.name,
                        alert.alertname()
                    ),
                )];
            }
            None => {
                return vec![Verdict::skip(
                    SkipReason::NoPlugin,
                    format!("{ACTION_ANNOTATION} names plugin {name:?}, which is not loaded"),
                )];
            }
        },
        (None, _) => plugins
            .iter()
            .filter(|p| p.manifest.matcher.matches(&alert.labels))
            .collect(),
    };
    if chosen.is_empty() {
        return vec![Verdict::skip(
            SkipReason::NoPlugin,
            format!("no loaded plugin matches alert {:?}", alert.alertname()),
        )];
    }

    if !alert.is_firing() {
        return vec![Verdict::skip(SkipReason::Resolved, "alert is resolved")];
    }

    chosen
        .into_iter()
        .map(|plugin| act_unless_cooling_down(plugin, alert, cooldowns, config, now))
        .collect()
}

/// Run `plugin` on `alert` with its cooldown (the manifest's, else the
/// host's for the alertname), unless a maintenance window covers it now
/// (checked first: no cooldown starts during one) or that cooldown is
/// still running. Escalations come through here too, so a window holds
/// back a chain's next step as well.
pub fn act_unless_cooling_down(
    plugin: &Arc<Plugin>,
    alert: &Alert,
    cooldowns: &Cooldowns,
    config: &Config,
    now: f64,
) -> Verdict {
    let name = &plugin.manifest.name;
    if let Some(cover) = crate::maintenance::covering(&config.maintenance, name, &alert.labels, now) {
        return Verdict::Skip {
            repeat_cap: None,
            reason: SkipReason::Paused,
            detail: format!("{}: {name} does not act until it ends", cover.reason),
            plugin: Some(name.clone()),
            remaining_sec: None,
            budget: None,
            paused: Some(PausedBy::from(cover)),
        };
    }
    let key = cooldown_key(plugin, alert);
    if let Some(left) = cooldowns.remaining(&key, now) {
        return Verdict::Skip {
            reason: SkipReason::Cooldown,
            detail: format!("{} acted on this alert recently", plugin.manifest.name),
            plugin: Some(plugin.manifest.name.clone()),
            remaining_sec: Some(left.ceil() as u64),
            budget: None,
            paused: None,
            repeat_cap: None,
        };
    }
    act(plugin, alert, config, key)
}

/// Run `plugin` on `alert`, starting the cooldown `cooldown_key` (its
/// length: the manifest's, else the host's for the alertname).
pub fn act(plugin: &Arc<Plugin>, alert: &Alert, config: &Config, cooldown_key: String) -> Verdict {
    Verdict::Act {
        plugin: plugin.clone(),
        cooldown_sec: plugin
            .manifest
            .cooldown
            .map(|d| d.as_secs())
            .unwrap_or_else(|| config.cooldown_for(alert.alertname())),
        cooldown_key,
    }
}

/// The container named by the original system's form of the annotation,
/// `docker restart <name>` (which it ran as a shell command).
fn original_restart(asked: &str) -> Option<&str> {
    let mut words = asked.split_whitespace();
    match (words.next(), words.next(), words.next(), words.next()) {
        (Some("docker"), Some("restart"), Some(container), None) => Some(container),
        _ => None,
    }
}

/// For `docker restart <name>`: the first plugin, in name order, that
/// matches the alert and whose allow-list has `container`. The plugin then
/// acts as it always does, through its allow-list: the annotation chooses
/// among plugins, it never widens what one may touch.
fn plugin_for_original_restart<'a>(
    plugins: &'a PluginSet,
    alert: &Alert,
    container: &str,
) -> Option<&'a Arc<Plugin>> {
    let mut candidates: Vec<&Arc<Plugin>> = plugins
        .iter()
        .filter(|p| p.manifest.matcher.matches(&alert.labels) && p.manifest.allows_container(container))
        .collect();
    candidates.sort_by(|a, b| a.manifest.name.cmp(&b.manifest.name));
    candidates.into_iter().next()
}

/// Plugin + alertname + the labels the manifest names, e.g.
/// `restart-crm-api|TcpEndpointDownFast|instance=crm-api:8000`, escaped
/// where a part could pass for a separator ([`super::cooldown::key`]). A
/// label the alert lacks counts as empty, as in Prometheus.
pub fn cooldown_key(plugin: &Plugin, alert: &Alert) -> String {
    let labels = plugin.manifest.cooldown_labels.iter().map(|label| {
        let value = alert.labels.get(label).map(String::as_str).unwrap_or("");
        (label.as_str(), value)
    });
    super::cooldown::key(&plugin.manifest.name, alert.alertname(), labels)
}

/// Why an action must wait for an operator, if it must.
pub fn approval_cause(manifest: &Manifest, alert: &Alert) -> Option<ApprovalCause> {
    if manifest.approval_required {
        return Some(ApprovalCause::Manifest);
    }
    alert
        .annotations
        .get(APPROVAL_ANNOTATION)
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("required"))
        .then_some(ApprovalCause::Annotation)
}

/// The chain an action decided on an alert begins, when its plugin verifies.
pub fn first_step(plugin: &Plugin) -> Option<ChainStep> {
    let within = plugin.manifest.verify_within?;
    let mut chain = vec![plugin.manifest.name.clone()];
    chain.extend(plugin.manifest.escalate.iter().cloned());
    Some(ChainStep {
        chain,
        step: 1,
        within_sec: within.as_secs_f64(),
    })
}
