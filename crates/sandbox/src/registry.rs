//! The set of loaded plugins, and loading it from the plugins directory.
//!
//! The directory is reached through a cap-std `Dir`: a manifest whose
//! `component` points outside it, directly or through a symlink, cannot
//! make the host read anything else.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use cap_std::ambient_authority;
use cap_std::fs::Dir;

use crate::manifest::{Manifest, ManifestBounds, ManifestError};
use crate::{LoadError, LoadedComponent, PluginRuntime, sha256_hex};

/// A loaded plugin: its manifest and its ready component.
pub struct Plugin {
    /// The validated manifest.
    pub manifest: Manifest,
    /// The component, compiled and pre-instantiated.
    pub component: LoadedComponent,
    /// The manifest's file name in the plugins directory.
    pub manifest_file: String,
    /// SHA-256 of the manifest file's text, hex: with the component's
    /// hash, which version of the plugin this is (an approval runs only
    /// the version its preview ran).
    pub manifest_hash: String,
}

/// A plugin that could not be loaded, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    /// The manifest's file name.
    pub file: String,
    /// Why it was not loaded.
    pub reason: String,
}

/// The plugins that loaded, and the manifests that did not.
#[derive(Default, Clone)]
pub struct PluginSet {
    plugins: Vec<Arc<Plugin>>,
    rejections: Vec<Rejection>,
}

impl PluginSet {
    /// A set of these plugins and rejections.
    pub fn new(plugins: Vec<Arc<Plugin>>, rejections: Vec<Rejection>) -> Self {
        Self { plugins, rejections }
    }

    /// The manifests that did not load.
    pub fn rejections(&self) -> &[Rejection] {
        &self.rejections
    }

    /// The loaded plugins, in manifest file order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Plugin>> {
        self.plugins.iter()
    }

    /// How many plugins are loaded.
    pub fn len(&self) -> usize {
        self.plugins.len()
    }

    /// True when no plugin is loaded.
    pub fn is_empty(&self) -> bool {
        self.plugins.is_empty()
    }

    /// The plugin of this name.
    pub fn get(&self, name: &str) -> Option<&Arc<Plugin>> {
        self.plugins.iter().find(|p| p.manifest.name == name)
    }
}

/// What to do about a plugins directory that does not exist: a newcomer's
/// first `autoheal serve` outside the checkout meets this.
fn missing_dir_hint(source: &std::io::Error) -> &'static str {
    if source.kind() == std::io::ErrorKind::NotFound {
        " (it does not exist: create it, or point plugins_dir / AUTOHEAL_PLUGINS_DIR at a \
         directory of plugins; in a checkout, `cargo xtask build-plugins` stages the bundled \
         ones in target/plugins.d)"
    } else {
        ""
    }
}

/// The plugins directory could not be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read the plugins directory {path}{hint}", hint = missing_dir_hint(source))]
pub struct DirError {
    /// The directory.
    pub path: String,
    /// What the filesystem said.
    pub source: std::io::Error,
}

/// What a scan of the plugins directory changed, compared with the set
/// that was serving before it.
pub enum Change {
    /// A new plugin.
    Loaded(Arc<Plugin>),
    /// A new version of a plugin that was loaded.
    Replaced {
        /// The version that served until now.
        old: Arc<Plugin>,
        /// The version that serves from now.
        new: Arc<Plugin>,
    },
    /// A plugin whose manifest is gone.
    Unloaded(Arc<Plugin>),
    /// A manifest that does not load. If an earlier version of it loaded,
    /// that version keeps serving (`kept`).
    Rejected {
        /// The file and why.
        rejection: Rejection,
        /// The version of it that goes on serving, if one did.
        kept: Option<Arc<Plugin>>,
    },
}

/// The result of scanning the plugins directory.
pub struct Scan {
    /// The plugins that serve from now.
    pub set: PluginSet,
    /// How they differ from the previous set.
    pub changes: Vec<Change>,
}

/// A step of a scan that compiles: what a start says while plugins load.
#[derive(Debug, Clone, PartialEq)]
pub enum Progress<'a> {
    /// A new or changed plugin's component is about to be compiled (or
    /// read from the compile cache).
    Loading {
        /// The plugin's name.
        name: &'a str,
        /// Its place among the manifest files (from 1).
        position: usize,
        /// How many manifest files there are.
        total: usize,
        /// The component's size.
        component_bytes: usize,
    },
    /// That component is ready.
    Loaded {
        /// The plugin's name.
        name: &'a str,
        /// Its place among the manifest files (from 1).
        position: usize,
        /// How many manifest files there are.
        total: usize,
        /// How long compiling (or reading the cache) took.
        seconds: f64,
        /// Read from the compile cache rather than compiled.
        from_cache: bool,
    },
}

/// Loads every `*.toml` manifest in `path`, in name order, reusing the
/// plugins of `previous` whose manifest and component are unchanged. A
/// plugin that fails to load is a rejection and does not stop the others;
/// a file that loaded before keeps its previous version serving. A rejection
/// already reported with the same reason is not reported again.
pub fn scan_dir(
    runtime: &PluginRuntime,
    path: &Path,
    bounds: ManifestBounds,
    previous: &PluginSet,
) -> Result<Scan, DirError> {
    scan_dir_reporting(runtime, path, bounds, previous, &mut |_| {})
}

/// The `*.toml` files of `dir`, in name order.
fn manifest_files(dir: &Dir, path: &Path) -> Result<Vec<String>, DirError> {
    let dir_error = |source| DirError {
        path: path.display().to_string(),
        source,
    };
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
    Ok(files)
}

/// The manifests of `path` that parse, without reading or compiling their
/// components: what a start needs to know before the (slow) compiles,
/// such as the longest cooldown.
pub fn read_manifests(path: &Path, bounds: ManifestBounds) -> Result<Vec<Manifest>, DirError> {
    let dir = Dir::open_ambient_dir(path, ambient_authority()).map_err(|source| DirError {
        path: path.display().to_string(),
        source,
    })?;
    Ok(manifest_files(&dir, path)?
        .iter()
        .filter_map(|file| {
            let text = read_regular(&dir, file, MAX_MANIFEST_BYTES).ok()?;
            Manifest::parse(file, &String::from_utf8(text).ok()?, bounds).ok()
        })
        .collect())
}

/// As [`scan_dir`], telling `report` before and after each component it
/// compiles or reads from the cache (unchanged plugins are not reported).
pub fn scan_dir_reporting(
    runtime: &PluginRuntime,
    path: &Path,
    bounds: ManifestBounds,
    previous: &PluginSet,
    report: &mut dyn FnMut(Progress<'_>),
) -> Result<Scan, DirError> {
    let dir = Dir::open_ambient_dir(path, ambient_authority()).map_err(|source| DirError {
        path: path.display().to_string(),
        source,
    })?;
    let files = manifest_files(&dir, path)?;

    let before = |file: &str| previous.iter().find(|p| p.manifest_file == file).cloned();
    let mut plugins: Vec<Arc<Plugin>> = Vec::new();
    let mut rejections = Vec::new();
    let mut changes = Vec::new();
    let total = files.len();
    for (index, file) in files.iter().enumerate() {
        let old = before(file);
        let place = Place {
            position: index + 1,
            total,
            report: &mut *report,
        };
        let loaded =
            load_one(runtime, &dir, file, bounds, old.as_ref(), Some(place)).and_then(|plugin| match plugins
                .iter()
                .find(|p| p.manifest.name == plugin.manifest.name)
            {
                Some(first) => Err(PluginFileError::DuplicateName {
                    name: plugin.manifest.name.clone(),
                    first_file: first.manifest_file.clone(),
                }),
                None => Ok(plugin),
            });
        match (loaded, old) {
            (Ok(plugin), Some(old)) if Arc::ptr_eq(&plugin, &old) => plugins.push(plugin),
            (Ok(plugin), Some(old)) => {
                plugins.push(plugin.clone());
                changes.push(Change::Replaced { old, new: plugin });
            }
            (Ok(plugin), None) => {
                plugins.push(plugin.clone());
                changes.push(Change::Loaded(plugin));
            }
            (Err(reason), kept) => {
                let rejection = Rejection {
                    file: file.clone(),
                    reason: reason.to_string(),
                };
                let reported = previous.rejections().contains(&rejection);
                if let Some(kept) = &kept {
                    plugins.push(kept.clone());
                }
                if !reported {
                    changes.push(Change::Rejected {
                        rejection: rejection.clone(),
                        kept,
                    });
                }
                rejections.push(rejection);
            }
        }
    }
    for gone in previous.iter().filter(|p| !files.contains(&p.manifest_file)) {
        changes.push(Change::Unloaded(gone.clone()));
    }
    Ok(Scan {
        set: PluginSet::new(plugins, rejections),
        changes,
    })
}

/// Why one plugin (a manifest and its component) did not load.
#[derive(Debug, thiserror::Error)]
pub enum PluginFileError {
    /// The directory holding it cannot be opened.
    #[error("{}: {source}", dir.display())]
    OpenDir {
        /// The directory.
        dir: PathBuf,
        /// What the filesystem said.
        source: std::io::Error,
    },
    /// The manifest cannot be read.
    #[error("cannot read manifest: {0}")]
    ReadManifest(std::io::Error),
    /// The manifest is not valid.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// The component the manifest names cannot be read.
    #[error("component {component}: {source}")]
    ReadComponent {
        /// The component's file name.
        component: String,
        /// What the filesystem said.
        source: std::io::Error,
    },
    /// The component is not a loadable plugin.
    #[error("component {component}: {source}")]
    Component {
        /// The component's file name.
        component: String,
        /// What the runtime said.
        source: LoadError,
    },
    /// The component's hash is not the one the manifest pins.
    #[error("component {component}: its SHA-256 is {actual}, but the manifest pins {pinned}")]
    HashMismatch {
        /// The component's file name.
        component: String,
        /// The manifest's `sha256`.
        pinned: String,
        /// The file's.
        actual: String,
    },
    /// Another manifest, earlier in name order, already uses the name.
    #[error("plugin name {name:?} is already used by {first_file}")]
    DuplicateName {
        /// The plugin name.
        name: String,
        /// The manifest file that has it.
        first_file: String,
    },
}

/// Loads one manifest file of `dir` and its component (for `autoheal plugin`).
pub fn load_file(
    runtime: &PluginRuntime,
    dir: &Path,
    file: &str,
    bounds: ManifestBounds,
) -> Result<Arc<Plugin>, PluginFileError> {
    let opened =
        Dir::open_ambient_dir(dir, ambient_authority()).map_err(|source| PluginFileError::OpenDir {
            dir: dir.to_owned(),
            source,
        })?;
    load_one(runtime, &opened, file, bounds, None, None)
}

/// Where a plugin is in a reporting scan, and whom to tell.
struct Place<'r> {
    position: usize,
    total: usize,
    report: &'r mut dyn FnMut(Progress<'_>),
}

/// Largest manifest file read.
pub const MAX_MANIFEST_BYTES: u64 = 64 * 1024;
/// Largest component file read.
pub const MAX_COMPONENT_BYTES: u64 = 64 * 1024 * 1024;

/// The bytes of `name` if it is a regular file of at most `max` bytes. A
/// FIFO, device or socket is refused before it is opened (opening a FIFO
/// would block the scan until someone writes to it).
fn read_regular(dir: &Dir, name: &str, max: u64) -> std::io::Result<Vec<u8>> {
    use std::io::{Error, ErrorKind, Read};
    let metadata = dir.metadata(name)?;
    if !metadata.is_file() {
        let kind = if metadata.is_dir() {
            "a directory"
        } else {
            "not a regular file (a FIFO, device or socket)"
        };
        return Err(Error::new(ErrorKind::InvalidInput, format!("{name} is {kind}")));
    }
    if metadata.len() > max {
        return Err(Error::new(
            ErrorKind::InvalidData,
            format!("{name} is {} bytes; at most {max} are read", metadata.len()),
        ));
    }
    let mut bytes = Vec::with_capacity(metadata.len() as usize);
    // `take`: the file may have grown since its size was read.
    dir.open(name)?.take(max + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(Error::new(
            ErrorKind::InvalidData,
            format!("{name} is more than {max} bytes"),
        ));
    }
    Ok(bytes)
}

/// Loads one manifest and its component; an unchanged one is `previous` itself.
fn load_one(
    runtime: &PluginRuntime,
    dir: &Dir,
    file: &str,
    bounds: ManifestBounds,
    previous: Option<&Arc<Plugin>>,
    mut place: Option<Place<'_>>,
) -> Result<Arc<Plugin>, PluginFileError> {
    let text = read_regular(dir, file, MAX_MANIFEST_BYTES).map_err(PluginFileError::ReadManifest)?;
    let text = String::from_utf8(text).map_err(|_| {
        PluginFileError::ReadManifest(std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8"))
    })?;
    let manifest = Manifest::parse(file, &text, bounds)?;
    let bytes = read_regular(dir, &manifest.component, MAX_COMPONENT_BYTES).map_err(|source| {
        PluginFileError::ReadComponent {
            component: manifest.component.clone(),
            source,
        }
    })?;
    if let Some(pinned) = &manifest.sha256 {
        let actual = sha256_hex(&bytes);
        if *pinned != actual {
            return Err(PluginFileError::HashMismatch {
                component: manifest.component.clone(),
                pinned: pinned.clone(),
                actual,
            });
        }
    }
    // Unchanged means the same files, byte for byte: the hashes are what an
    // approval compares (also after a restart), so a manifest edited only
    // in its comments is a new version here too.
    let manifest_hash = sha256_hex(text.as_bytes());
    if let Some(previous) = previous
        && previous.manifest == manifest
        && previous.manifest_hash == manifest_hash
        && previous.component.hash == sha256_hex(&bytes)
    {
        return Ok(previous.clone());
    }
    if let Some(place) = &mut place {
        (place.report)(Progress::Loading {
            name: &manifest.name,
            position: place.position,
            total: place.total,
            component_bytes: bytes.len(),
        });
    }
    let began = std::time::Instant::now();
    let component = runtime
        .load(&bytes)
        .map_err(|source| PluginFileError::Component {
            component: manifest.component.clone(),
            source,
        })?;
    if let Some(place) = &mut place {
        (place.report)(Progress::Loaded {
            name: &manifest.name,
            position: place.position,
            total: place.total,
            seconds: began.elapsed().as_secs_f64(),
            from_cache: component.from_cache,
        });
    }
    Ok(Arc::new(Plugin {
        manifest,
        component,
        manifest_file: file.to_owned(),
        manifest_hash,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_plugins_directory_says_what_to_do_and_says_it_once() {
        let missing = read_manifests(
            Path::new("/nonexistent/plugins.d"),
            ManifestBounds { max_memory_mb: 64 },
        )
        .unwrap_err();
        let shown = format!("{missing}");
        assert!(
            shown.contains("it does not exist") && shown.contains("target/plugins.d"),
            "{shown}"
        );
        // The filesystem's words come from the source, not again from the message.
        assert!(!shown.contains("os error"), "{shown}");

        let unreadable = DirError {
            path: "plugins.d".into(),
            source: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        };
        assert_eq!(
            unreadable.to_string(),
            "cannot read the plugins directory plugins.d"
        );
    }
}
