//! Turning changes of the plugin set into their events: `plugin_loaded`
//! (new or replaced), `plugin_unloaded` and `plugin_rejected`, each also
//! logged, and a `host_warning` for each pair of plugins that may act on
//! one alert's container together. Used at start-up and by every reload.

use autoheal_core::audit::AuditLog;
use autoheal_core::event::{EventBody, HostWarning, PluginInfo, PluginRejected, Warning};
use autoheal_sandbox::registry::{Change, Plugin, PluginSet};

/// Warns (log and `host_warning`) of every pair of plugins in `set` that
/// one alert may run together on one container: an outage seen that way is
/// remediated twice. Not refused — a second plugin may be meant as a
/// fallback — but never silent.
pub fn warn_of_overlaps(audit: &AuditLog, set: &PluginSet, changes: &[Change]) {
    // Only pairs with a plugin that just loaded: each plugin goes live on
    // its own, and the pairs of those serving already were warned of.
    let changed: Vec<&str> = changes
        .iter()
        .filter_map(|change| match change {
            Change::Loaded(p) | Change::Replaced { new: p, .. } => Some(p.manifest.name.as_str()),
            _ => None,
        })
        .collect();
    let plugins: Vec<&std::sync::Arc<Plugin>> = set.iter().collect();
    for (i, a) in plugins.iter().enumerate() {
        for b in &plugins[i + 1..] {
            if !changed.contains(&a.manifest.name.as_str()) && !changed.contains(&b.manifest.name.as_str()) {
                continue;
            }
            let Some(overlap) = a.manifest.overlap_with(&b.manifest) else {
                continue;
            };
            let alerts = if overlap.alertnames.is_empty() {
                "the same alerts".to_owned()
            } else {
                overlap.alertnames.join(", ")
            };
            let detail = format!(
                "plugins {} and {} both match {alerts} and may both act on {}: one alert runs both",
                a.manifest.name,
                b.manifest.name,
                overlap.containers.join(", ")
            );
            tracing::warn!("{detail}");
            audit.emit(EventBody::HostWarning(HostWarning {
                detail: Some(detail),
                ..HostWarning::bare(Warning::PluginsOverlap)
            }));
        }
    }
}

/// Writes `plugin_loaded`, `plugin_unloaded` and `plugin_rejected` events.
pub fn record_changes(audit: &AuditLog, changes: &[Change]) {
    for change in changes {
        match change {
            Change::Loaded(plugin) => {
                tracing::info!(plugin = %plugin.manifest.name, version = %plugin.manifest.version, "plugin loaded");
                audit.emit(EventBody::PluginLoaded(plugin_info(plugin)));
            }
            Change::Replaced { old, new } => {
                tracing::info!(plugin = %new.manifest.name, version = %new.manifest.version, "plugin replaced");
                audit.emit(EventBody::PluginLoaded(PluginInfo {
                    replaces_hash: Some(old.component.hash.clone()),
                    replaces_version: Some(old.manifest.version.clone()),
                    ..plugin_info(new)
                }));
            }
            Change::Unloaded(plugin) => {
                tracing::info!(plugin = %plugin.manifest.name, "plugin unloaded");
                audit.emit(EventBody::PluginUnloaded(plugin_info(plugin)));
            }
            Change::Rejected { rejection, kept } => {
                tracing::warn!(file = %rejection.file, reason = %rejection.reason, "plugin rejected");
                audit.emit(EventBody::PluginRejected(PluginRejected {
                    file: rejection.file.clone(),
                    reason: rejection.reason.clone(),
                    still_serving: kept.as_ref().map(|p| p.manifest.version.clone()),
                }));
            }
        }
    }
}

fn plugin_info(plugin: &Plugin) -> PluginInfo {
    PluginInfo {
        alertnames: plugin.manifest.matcher.alertnames.clone(),
        cache_rejected: plugin.component.cache_rejected.clone(),
        component_hash: plugin.component.hash.clone(),
        containers: plugin.manifest.containers.clone(),
        file: plugin.manifest_file.clone(),
        from_cache: plugin.component.from_cache,
        plugin: plugin.manifest.name.clone(),
        replaces_hash: None,
        replaces_version: None,
        version: plugin.manifest.version.clone(),
        compile_ms: Some(plugin.component.compile_ms),
        queued_ms: Some(plugin.component.queued_ms),
        wit: Some(plugin.component.pre.version().as_str().to_owned()),
    }
}
