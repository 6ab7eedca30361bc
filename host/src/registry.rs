//! The set of loaded plugins, and loading it from the plugins directory.
//!
//! The directory is reached through a cap-std `Dir`: a manifest whose
//! `component` points outside it, directly or through a symlink, cannot
//! make the host read anything else.

use std::path::Path;
use std::sync::Arc;

use cap_std::ambient_authority;
use cap_std::fs::Dir;

use crate::manifest::{Manifest, ManifestBounds};
use crate::sandbox::{LoadedComponent, PluginRuntime};

pub struct Plugin {
    pub manifest: Manifest,
    pub component: LoadedComponent,
    /// The manifest's file name in the plugins directory.
    pub manifest_file: String,
}

/// A plugin that could not be loaded, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    pub file: String,
    pub reason: String,
}

/// The plugins that loaded, and the manifests that did not.
#[derive(Default, Clone)]
pub struct PluginSet {
    plugins: Vec<Arc<Plugin>>,
    rejections: Vec<Rejection>,
}

impl PluginSet {
    pub fn new(plugins: Vec<Arc<Plugin>>, rejections: Vec<Rejection>) -> Self {
        Self { plugins, rejections }
    }

    pub fn rejections(&self) -> &[Rejection] {
        &self.rejections
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<Plugin>> {
        self.plugins.iter()
    }

    pub fn len(&self) -> usize {
        self.plugins.len()
    }

    pub fn is_empty(&self) -> bool {
        self.plugins.is_empty()
    }

    pub fn get(&self, name: &str) -> Option<&Arc<Plugin>> {
        self.plugins.iter().find(|p| p.manifest.name == name)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("plugins directory {path}: {source}")]
pub struct DirError {
    pub path: String,
    pub source: std::io::Error,
}

/// Loads every `*.toml` manifest in `path`, in name order. A plugin that
/// fails to load is kept as a rejection and does not stop the others.
pub fn load_dir(runtime: &PluginRuntime, path: &Path, bounds: ManifestBounds) -> Result<PluginSet, DirError> {
    let dir_error = |source| DirError {
        path: path.display().to_string(),
        source,
    };
    let dir = Dir::open_ambient_dir(path, ambient_authority()).map_err(dir_error)?;
    let mut files = Vec::new();
    for entry in dir.entries().map_err(dir_error)? {
        let name = entry
            .map_err(dir_error)?
            .file_name()
            .to_string_lossy()
            .into_owned();
        if name.ends_with(".toml") && !name.starts_with('.') {
            files.push(name);
        }
    }
    files.sort();

    let mut plugins: Vec<Arc<Plugin>> = Vec::new();
    let mut rejections = Vec::new();
    for file in files {
        match load_one(runtime, &dir, &file, bounds) {
            Ok(plugin) => {
                if let Some(first) = plugins.iter().find(|p| p.manifest.name == plugin.manifest.name) {
                    rejections.push(Rejection {
                        reason: format!(
                            "plugin name {:?} is already used by {}",
                            plugin.manifest.name, first.manifest_file
                        ),
                        file,
                    });
                } else {
                    plugins.push(Arc::new(plugin));
                }
            }
            Err(reason) => rejections.push(Rejection { file, reason }),
        }
    }
    Ok(PluginSet::new(plugins, rejections))
}

fn load_one(
    runtime: &PluginRuntime,
    dir: &Dir,
    file: &str,
    bounds: ManifestBounds,
) -> Result<Plugin, String> {
    let text = dir
        .read_to_string(file)
        .map_err(|e| format!("cannot read manifest: {e}"))?;
    let manifest = Manifest::parse(file, &text, bounds).map_err(|e| e.to_string())?;
    let bytes = dir
        .read(&manifest.component)
        .map_err(|e| format!("component {}: {e}", manifest.component))?;
    let component = runtime
        .load(&bytes)
        .map_err(|e| format!("component {}: {e}", manifest.component))?;
    Ok(Plugin {
        manifest,
        component,
        manifest_file: file.to_owned(),
    })
}
