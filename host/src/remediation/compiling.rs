//! Alerts for a plugin that is not loaded yet because its component is
//! still compiling (a new plugin, dropped in): they are not skipped. Each
//! is kept (`alert_deferred`, `retry` `plugin_compiling`) and decided
//! again once the compile ends. A changed plugin needs none of this: its
//! old version serves until the new one is ready.

use autoheal_core::alert::Alert;
use autoheal_sandbox::registry::PluginSet;

use super::decide::{ACTION_ANNOTATION, OPT_IN_ANNOTATION, SkipReason, Verdict};
use crate::compiling::Compiling;

/// The plugins compiling now, not loaded under their name, that would
/// handle `alert` (opted in and firing; matched by their `[match]`, or
/// named by `autoheal_action`); only `served` when the alert was held for it.
pub(super) fn waiting_for<'a>(
    alert: &Alert,
    loaded: &PluginSet,
    compiling: &'a [Compiling],
    served: Option<&str>,
) -> Vec<&'a Compiling> {
    let opted_in = alert
        .annotations
        .get(OPT_IN_ANNOTATION)
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
    if !opted_in || !alert.is_firing() {
        return Vec::new();
    }
    let asked = alert.annotations.get(ACTION_ANNOTATION).map(|a| a.trim());
    let mut waiting: Vec<&Compiling> = compiling
        .iter()
        .filter(|c| loaded.get(&c.manifest.name).is_none())
        .filter(|c| served.is_none_or(|s| s == c.manifest.name))
        .filter(|c| match asked {
            Some(asked) => asked == c.manifest.name,
            None => c.manifest.matcher.matches(&alert.labels),
        })
        .collect();
    waiting.dedup_by(|a, b| a.manifest.name == b.manifest.name);
    waiting
}

/// Whether `verdict` is the `no_plugin` skip that a plugin in `waiting`
/// makes untrue (it will be loaded): the one on the whole alert, or one
/// naming it.
pub(super) fn superseded_by(verdict: &Verdict, waiting: &[&Compiling]) -> bool {
    match verdict {
        Verdict::Skip {
            reason: SkipReason::NoPlugin,
            plugin,
            ..
        } => match plugin {
            Some(plugin) => waiting.iter().any(|c| c.manifest.name == *plugin),
            None => !waiting.is_empty(),
        },
        _ => false,
    }
}

/// The skip recorded for the plugin `compiling` will be, with the alert
/// kept for it.
pub(super) fn compiling_skip(compiling: &Compiling) -> Verdict {
    let (plugin, since) = (&compiling.manifest.name, compiling.since);
    Verdict::skip_by(
        SkipReason::NoPlugin,
        plugin,
        format!(
            "plugin {plugin} is new and still compiling (since {since:.0}): the alert is kept \
             and decided once it is loaded"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use autoheal_sandbox::manifest::{Manifest, ManifestBounds};

    fn compiling(name: &str, alertname: &str) -> Compiling {
        let text = format!(
            "name = {name:?}\nversion = \"1.0.0\"\ncomponent = \"x.wasm\"\n[match]\nalertnames = [{alertname:?}]\n"
        );
        let manifest = Manifest::parse("x.toml", &text, ManifestBounds { max_memory_mb: 64 }).unwrap();
        Compiling::for_test(manifest)
    }

    fn alert(alertname: &str, annotations: &str) -> Alert {
        serde_json::from_str(&format!(
            r#"{{"status":"firing","labels":{{"alertname":{alertname:?}}},"annotations":{annotations}}}"#
        ))
        .unwrap()
    }

    #[test]
    fn an_opted_in_alert_waits_for_the_compiling_plugins_that_match_it() {
        let board = [compiling("New", "Down"), compiling("Other", "Up")];
        let none = PluginSet::default();
        let opted = alert("Down", r#"{"autoheal":"true"}"#);
        let names = |waiting: Vec<&Compiling>| -> Vec<String> {
            waiting.iter().map(|c| c.manifest.name.clone()).collect()
        };
        assert_eq!(names(waiting_for(&opted, &none, &board, None)), ["New"]);
        assert!(waiting_for(&opted, &none, &board, Some("Other")).is_empty());
        assert!(waiting_for(&alert("Down", "{}"), &none, &board, None).is_empty());
        let named = alert("Up", r#"{"autoheal":"true","autoheal_action":"New"}"#);
        assert_eq!(names(waiting_for(&named, &none, &board, None)), ["New"]);
    }

    #[test]
    fn only_the_no_plugin_skip_gives_way() {
        let (new, old) = (compiling("New", "Down"), compiling("Old", "Down"));
        let waiting = vec![&new];
        let whole = Verdict::Skip {
            reason: SkipReason::NoPlugin,
            detail: String::new(),
            plugin: None,
            remaining_sec: None,
            budget: None,
            paused: None,
            repeat_cap: None,
        };
        assert!(superseded_by(&whole, &waiting));
        assert!(superseded_by(&compiling_skip(&new), &waiting));
        assert!(!superseded_by(&compiling_skip(&old), &waiting));
        assert!(!superseded_by(&whole, &[]), "stands when nothing compiles");
    }
}
