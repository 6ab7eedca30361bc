//! Whether an approved action would run what its preview ran. The operator
//! approved a preview ("restart crm-api") of one version of a plugin: the
//! component and the manifest loaded then. A reload may have put another
//! version under the same name since; approving must not run that one. The
//! approval recorded both hashes (`approval_requested`), so the comparison
//! is the same for an approval read back from the trail after a restart.

use std::sync::Arc;

use autoheal_core::event::ApprovalRequested;
use autoheal_sandbox::registry::{Plugin, PluginSet};

/// How the plugin loaded now differs from the version an approval's
/// preview ran: the approval is `approval_stale`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Stale {
    /// No plugin of that name is loaded any more.
    #[error("plugin {plugin:?} is no longer loaded")]
    Removed {
        /// The approval's plugin.
        plugin: String,
    },
    /// The plugin of that name runs another component.
    #[error(
        "plugin {plugin:?} now runs another component (sha256 {} where the preview ran {})",
        short(now),
        short(previewed)
    )]
    Component {
        /// The approval's plugin.
        plugin: String,
        /// The hash the preview ran.
        previewed: String,
        /// The hash loaded now.
        now: String,
    },
    /// The plugin of that name has another manifest (its config, allow-list
    /// or limits may differ: what it would restart is not what was shown).
    #[error(
        "plugin {plugin:?}'s manifest changed since the preview (version {previewed_version} then, {now_version} now)"
    )]
    Manifest {
        /// The approval's plugin.
        plugin: String,
        /// The version the preview ran.
        previewed_version: String,
        /// The version loaded now.
        now_version: String,
    },
    /// The approval does not say which version its preview ran (it was
    /// requested by an autoheal that did not record it): nothing can show
    /// that the same version would run.
    #[error("the approval does not record which version of {plugin:?} its preview ran")]
    Unrecorded {
        /// The approval's plugin.
        plugin: String,
    },
}

/// The plugin an approved `request` runs: the one loaded under its name,
/// if it is the version the preview ran.
pub fn previewed(request: &ApprovalRequested, plugins: &PluginSet) -> Result<Arc<Plugin>, Stale> {
    let loaded = plugins.get(&request.plugin);
    compare(request, loaded.map(|p| Version::of(p)))?;
    loaded.cloned().ok_or_else(|| Stale::Removed {
        plugin: request.plugin.clone(),
    })
}

/// What tells one version of a plugin from another.
struct Version<'a> {
    component_hash: &'a str,
    manifest_hash: &'a str,
    version: &'a str,
}

impl<'a> Version<'a> {
    fn of(plugin: &'a Plugin) -> Self {
        Self {
            component_hash: &plugin.component.hash,
            manifest_hash: &plugin.manifest_hash,
            version: &plugin.manifest.version,
        }
    }
}

/// Whether `loaded` (`None`: nothing of that name) is the version the
/// preview of `request` ran.
fn compare(request: &ApprovalRequested, loaded: Option<Version<'_>>) -> Result<(), Stale> {
    let plugin = request.plugin.clone();
    let (Some(component_hash), Some(manifest_hash)) = (&request.component_hash, &request.manifest_hash)
    else {
        return Err(Stale::Unrecorded { plugin });
    };
    let Some(loaded) = loaded else {
        return Err(Stale::Removed { plugin });
    };
    if loaded.component_hash != component_hash {
        return Err(Stale::Component {
            plugin,
            previewed: component_hash.clone(),
            now: loaded.component_hash.to_owned(),
        });
    }
    if loaded.manifest_hash != manifest_hash {
        return Err(Stale::Manifest {
            plugin,
            previewed_version: request.plugin_version.clone(),
            now_version: loaded.version.to_owned(),
        });
    }
    Ok(())
}

/// The first 12 hex digits of a hash, enough to tell versions apart.
fn short(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}

#[cfg(test)]
mod tests {
    use super::*;

    const COMPONENT: &str = "c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00";
    const MANIFEST: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn request(component_hash: Option<&str>, manifest_hash: Option<&str>) -> ApprovalRequested {
        ApprovalRequested {
            component_hash: component_hash.map(str::to_owned),
            manifest_hash: manifest_hash.map(str::to_owned),
            plugin_version: "1.0.0".into(),
            ..crate::remediation::approvals::tests::request("a", "f", 100.0)
        }
    }

    fn version<'a>(component_hash: &'a str, manifest_hash: &'a str, version: &'a str) -> Option<Version<'a>> {
        Some(Version {
            component_hash,
            manifest_hash,
            version,
        })
    }

    #[test]
    fn only_the_version_the_preview_ran_is_still_previewed() {
        let asked = request(Some(COMPONENT), Some(MANIFEST));
        assert_eq!(compare(&asked, version(COMPONENT, MANIFEST, "1.0.0")), Ok(()));
        assert_eq!(compare(&asked, None), Err(Stale::Removed { plugin: "p".into() }));
        let other = "ffff".repeat(16);
        let err = compare(&asked, version(&other, MANIFEST, "1.0.0")).unwrap_err();
        assert!(matches!(err, Stale::Component { .. }), "{err:?}");
        assert!(
            err.to_string()
                .contains("sha256 ffffffffffff where the preview ran c0ffee00c0ff"),
            "{err}"
        );
        // Same component, other manifest: even under the same version string.
        let err = compare(&asked, version(COMPONENT, &other, "1.0.0")).unwrap_err();
        assert_eq!(
            err,
            Stale::Manifest {
                plugin: "p".into(),
                previewed_version: "1.0.0".into(),
                now_version: "1.0.0".into()
            }
        );
    }

    #[test]
    fn an_approval_that_does_not_say_what_it_previewed_is_stale() {
        for asked in [
            request(None, None),
            request(Some(COMPONENT), None),
            request(None, Some(MANIFEST)),
        ] {
            assert_eq!(
                compare(&asked, version(COMPONENT, MANIFEST, "1.0.0")),
                Err(Stale::Unrecorded { plugin: "p".into() })
            );
        }
    }
}
