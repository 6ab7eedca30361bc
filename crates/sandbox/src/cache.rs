//! On-disk cache of precompiled components.
//!
//! Compiling a component takes tens of milliseconds; loading a precompiled
//! artifact takes well under one. Artifacts are keyed by the component's
//! SHA-256 and the engine's compatibility hash (an artifact built with other
//! engine settings cannot be loaded), and each file starts with the SHA-256 of
//! the artifact so that a truncated or foreign file is never handed to
//! `Component::deserialize`.

use std::hash::{Hash, Hasher};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use cap_std::ambient_authority;
use cap_std::fs::Dir;
use sha2::{Digest, Sha256};

/// A cached artifact as read: its checksum, then the artifact.
pub struct Artifact(Vec<u8>);

impl std::ops::Deref for Artifact {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.0[32..]
    }
}

/// Compiled components on disk, keyed by the component's hash and the engine's configuration, so that a restart does not compile again.
pub struct ArtifactCache {
    dir: Option<Dir>,
    engine_key: String,
}

impl ArtifactCache {
    /// A cache in `path` (created if missing). If the directory cannot be
    /// used the cache is disabled with a warning: it only costs speed.
    pub fn open(path: &Path, engine: &wasmtime::Engine) -> Self {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let engine_key = format!("{:016x}", hasher.finish());
        let dir = std::fs::create_dir_all(path)
            .and_then(|()| Dir::open_ambient_dir(path, ambient_authority()))
            .inspect_err(|e| tracing::warn!(path = %path.display(), error = %e, "compile cache disabled"))
            .ok();
        Self { dir, engine_key }
    }

    /// A cache that never stores anything.
    pub fn disabled() -> Self {
        Self {
            dir: None,
            engine_key: String::new(),
        }
    }

    fn file_name(&self, component_hash: &str) -> String {
        format!("{component_hash}-{}.cwasm", self.engine_key)
    }

    /// The artifact for a component, if cached and intact.
    pub fn get(&self, component_hash: &str) -> Option<Artifact> {
        let data = self.dir.as_ref()?.read(self.file_name(component_hash)).ok()?;
        let (checksum, artifact) = data.split_at_checked(32)?;
        // The file as read, not a copy of it: a Python plugin's is ~37 MB.
        (Sha256::digest(artifact).as_slice() == checksum).then_some(Artifact(data))
    }

    /// Stores an artifact; written to a temporary name and renamed, so a
    /// crash never leaves a half-written artifact under the real name.
    pub fn put(&self, component_hash: &str, artifact: &[u8]) {
        let Some(dir) = &self.dir else { return };
        let name = self.file_name(component_hash);
        static WRITES: AtomicU64 = AtomicU64::new(0);
        let tmp = format!(
            "{name}.tmp-{}-{}",
            std::process::id(),
            WRITES.fetch_add(1, Ordering::Relaxed)
        );
        let mut data = Sha256::digest(artifact).to_vec();
        data.extend_from_slice(artifact);
        let result = dir.write(&tmp, &data).and_then(|()| dir.rename(&tmp, dir, &name));
        if let Err(e) = result {
            tracing::warn!(error = %e, artifact = %name, "could not write compile cache");
            let _ = dir.remove_file(&tmp);
        }
    }
}
