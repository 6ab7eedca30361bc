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

/// A new or changed plugin, read and checked: its component is still to
/// be compiled (or read from the compile cache), the slow part, which its
/// caller runs where it likes (off the serving path, several at once).
pub struct Pending {
    /// The manifest's file name.
    pub file: String,
    /// The validated manifest.
    pub manifest: Manifest,
    manifest_hash: String,
    component_hash: String,
    bytes: Vec<u8>,
}

impl Pending {
    /// The component's size.
    pub fn component_bytes(&self) -> usize {
        self.bytes.len()
    }

    /// Which version of its file this is (the manifest's and the
    /// component's hashes): a compile of the same version already under
    /// way serves it.
    pub fn version_key(&self) -> String {
        format!("{}/{}", self.manifest_hash, self.component_hash)
    }

    /// Compiles (or reads from the cache) and pre-instantiates the component.
    pub fn load(self, runtime: &PluginRuntime) -> Result<Arc<Plugin>, PluginFileError> {
        let component = runtime
            .load(&self.bytes)
            .map_err(|source| PluginFileError::Component {
                component: self.manifest.component.clone(),
                source,
            })?;
        Ok(Arc::new(Plugin {
            manifest: self.manifest,
            component,
            manifest_file: self.file,
            manifest_hash: self.manifest_hash,
        }))
    }
}

/// What a scan found for one manifest file.
pub enum Planned {
    /// The same files as the version serving: it goes on serving.
    Unchanged(Arc<Plugin>),
    /// New or changed: to compile (boxed: it holds the component's bytes
    /// and manifest, the other variants a pointer or an error).
    Pending(Box<Pending>),
    /// Does not load (before any compile: the manifest, the component's
    /// file or its pinned hash).
    Rejected(PluginFileError),
}

/// A scan of the plugins directory, before any compile.
pub struct DirPlan {
    /// Each manifest file, in name order, and what it needs.
    pub files: Vec<(String, Planned)>,
    /// The plugins of the previous set whose manifest is gone.
    pub gone: Vec<Arc<Plugin>>,
}

impl DirPlan {
    /// The set that serves while the pending plugins compile: the unchanged
    /// ones, and for a pending or rejected file the version of it that
    /// served before (if any); with the changes that makes (unloaded,
    /// rejected), a rejection already reported with the same reason not again.
    pub fn serving_meanwhile(&self, previous: &PluginSet) -> (PluginSet, Vec<Change>) {
        let before = |file: &str| previous.iter().find(|p| p.manifest_file == file).cloned();
        let mut plugins = Vec::new();
        let mut rejections = Vec::new();
        let mut changes = Vec::new();
        for (file, planned) in &self.files {
            match planned {
                Planned::Unchanged(plugin) => plugins.push(plugin.clone()),
                Planned::Pending(_) => {
                    plugins.extend(before(file));
                    // Kept until the compile ends: a failure with the same
                    // reason is not reported again.
                    rejections.extend(previous.rejections().iter().filter(|r| r.file == *file).cloned());
                }
                Planned::Rejected(reason) => {
                    let rejection = Rejection {
                        file: file.clone(),
                        reason: reason.to_string(),
                    };
                    let kept = before(file);
                    plugins.extend(kept.clone());
                    if !previous.rejections().contains(&rejection) {
                        changes.push(Change::Rejected {
                            rejection: rejection.clone(),
                            kept,
                        });
                    }
                    rejections.push(rejection);
                }
            }
        }
        changes.extend(self.gone.iter().cloned().map(Change::Unloaded));
        (PluginSet::new(plugins, rejections), changes)
    }
}

/// Reads and checks every `*.toml` manifest in `path` and its component,
/// in name order, without compiling: which plugins of `previous` are
/// unchanged, which are new or changed, which do not load, which are gone.
pub fn plan_dir(path: &Path, bounds: ManifestBounds, previous: &PluginSet) -> Result<DirPlan, DirError> {
    let dir = Dir::open_ambient_dir(path, ambient_authority()).map_err(|source| DirError {
        path: path.display().to_string(),
        source,
    })?;
    let files = manifest_files(&dir, path)?;
    let planned = files
        .iter()
        .map(|file| {
            let old = previous.iter().find(|p| p.manifest_file == *file);
            let planned = match read_one(&dir, file, bounds, old) {
                Ok(Read::Unchanged(plugin)) => Planned::Unchanged(plugin),
                Ok(Read::Changed(pending)) => Planned::Pending(pending),
                Err(e) => Planned::Rejected(e),
            };
            (file.clone(), planned)
        })
        .collect();
    let planned = reject_duplicate_names(planned);
    let gone = previous
        .iter()
        .filter(|p| !files.contains(&p.manifest_file))
        .cloned()
        .collect();
    Ok(DirPlan { files: planned, gone })
}

/// The first manifest in name order that names a plugin keeps the name; a
/// later one is rejected before anything compiles, so that which one serves
/// does not depend on which compile ends first.
fn reject_duplicate_names(planned: Vec<(String, Planned)>) -> Vec<(String, Planned)> {
    let mut first_file: std::collections::HashMap<String, String> = std::collections::HashMap::new();
    planned
        .into_iter()
        .map(|(file, planned)| {
            let name = match &planned {
                Planned::Unchanged(plugin) => plugin.manifest.name.clone(),
                Planned::Pending(pending) => pending.manifest.name.clone(),
                Planned::Rejected(_) => return (file, planned),
            };
            match first_file.get(&name) {
                Some(first) => {
                    let duplicate = PluginFileError::DuplicateName {
                        name,
                        first_file: first.clone(),
                    };
                    (file, Planned::Rejected(duplicate))
                }
                None => {
                    first_file.insert(name, file.clone());
                    (file, planned)
                }
            }
        })
        .collect()
}

impl PluginSet {
    /// This set with `plugin` (just compiled) serving for its manifest
    /// file, in file order, and the change that is; a plugin whose name
    /// another file already serves is a rejection instead (the version of
    /// its file that served goes on serving).
    pub fn with_loaded(&self, plugin: Arc<Plugin>) -> (PluginSet, Option<Change>) {
        let file = plugin.manifest_file.clone();
        if let Some(other) = self
            .plugins
            .iter()
            .find(|p| p.manifest.name == plugin.manifest.name && p.manifest_file != file)
        {
            let reason = PluginFileError::DuplicateName {
                name: plugin.manifest.name.clone(),
                first_file: other.manifest_file.clone(),
            };
            return self.with_rejected(&file, reason.to_string());
        }
        let old = self.plugins.iter().find(|p| p.manifest_file == file).cloned();
        let mut plugins: Vec<Arc<Plugin>> = self
            .plugins
            .iter()
            .filter(|p| p.manifest_file != file)
            .cloned()
            .collect();
        let at = plugins.partition_point(|p| p.manifest_file < file);
        plugins.insert(at, plugin.clone());
        let rejections = self
            .rejections
            .iter()
            .filter(|r| r.file != file)
            .cloned()
            .collect();
        let change = match old {
            Some(old) => Change::Replaced { old, new: plugin },
            None => Change::Loaded(plugin),
        };
        (PluginSet::new(plugins, rejections), Some(change))
    }

    /// This set with `file` rejected for `reason`: the version of it that
    /// served goes on serving. No change when the same rejection was
    /// already in the set (it was reported then).
    pub fn with_rejected(&self, file: &str, reason: String) -> (PluginSet, Option<Change>) {
        let rejection = Rejection {
            file: file.to_owned(),
            reason,
        };
        let reported = self.rejections.contains(&rejection);
        let kept = self.plugins.iter().find(|p| p.manifest_file == file).cloned();
        let mut rejections: Vec<Rejection> = self
            .rejections
            .iter()
            .filter(|r| r.file != file)
            .cloned()
            .collect();
        rejections.push(rejection.clone());
        rejections.sort_by(|a, b| a.file.cmp(&b.file));
        let set = PluginSet::new(self.plugins.clone(), rejections);
        (set, (!reported).then_some(Change::Rejected { rejection, kept }))
    }
}

/// A manifest file read: unchanged from the version serving, or to compile.
enum Read {
    Unchanged(Arc<Plugin>),
    Changed(Box<Pending>),
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
    match read_one(&opened, file, bounds, None)? {
        Read::Unchanged(plugin) => Ok(plugin),
        Read::Changed(pending) => (*pending).load(runtime),
    }
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

/// Reads and checks one manifest and its component; an unchanged one is
/// `previous` itself.
fn read_one(
    dir: &Dir,
    file: &str,
    bounds: ManifestBounds,
    previous: Option<&Arc<Plugin>>,
) -> Result<Read, PluginFileError> {
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
    let component_hash = sha256_hex(&bytes);
    if let Some(pinned) = &manifest.sha256
        && *pinned != component_hash
    {
        return Err(PluginFileError::HashMismatch {
            component: manifest.component.clone(),
            pinned: pinned.clone(),
            actual: component_hash,
        });
    }
    // Unchanged means the same files, byte for byte: the hashes are what an
    // approval compares (also after a restart), so a manifest edited only
    // in its comments is a new version here too.
    let manifest_hash = sha256_hex(text.as_bytes());
    if let Some(previous) = previous
        && previous.manifest == manifest
        && previous.manifest_hash == manifest_hash
        && previous.component.hash == component_hash
    {
        return Ok(Read::Unchanged(previous.clone()));
    }
    Ok(Read::Changed(Box::new(Pending {
        file: file.to_owned(),
        manifest,
        manifest_hash,
        component_hash,
        bytes,
    })))
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
