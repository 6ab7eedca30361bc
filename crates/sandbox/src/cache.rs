//! On-disk cache of precompiled components, trusted only when it can prove
//! this host wrote the artifact for this exact component.
//!
//! Compiling a component takes tens of milliseconds (a Python one, seconds);
//! loading a precompiled artifact takes well under one. But an artifact is
//! native code that `Component::deserialize` maps and runs unchecked, so
//! whoever can write `cache_dir` could otherwise run code in a process that
//! holds the container engine's socket. Each file therefore carries an
//! HMAC-SHA256 over the component's hash, the engine's compatibility key and
//! the artifact, under a key kept *outside* the cache directory (the key file,
//! `0600`, made on first use). A file that is swapped from another component,
//! edited, written under another key or in an older format fails the check:
//! it is recompiled, never deserialized, and the load says why.

use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};

use cap_std::ambient_authority;
use cap_std::fs::{Dir, OpenOptions, OpenOptionsExt as _};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The first bytes of every artifact file of this format.
const MAGIC: &[u8; 8] = b"AHCWASM1";
/// Bytes of the key and of the MAC.
pub(crate) const KEY_LEN: usize = 32;
pub(crate) const MAC_LEN: usize = 32;
const HEADER_LEN: usize = MAGIC.len() + MAC_LEN;

pub(crate) type HmacSha256 = Hmac<Sha256>;

/// A MAC under the cache key: what every file the compile cache keeps
/// (artifacts, and the compiler's incremental entries) is checked with.
pub(crate) fn keyed_mac(key: &[u8; KEY_LEN]) -> HmacSha256 {
    HmacSha256::new_from_slice(key).expect("HMAC takes any key length")
}

/// Where the cache lives and where its key is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheLocation {
    /// The directory of artifacts.
    pub dir: PathBuf,
    /// The MAC key: a file outside `dir`, so that writing the cache
    /// directory is not enough to forge an artifact.
    pub key_file: PathBuf,
}

impl CacheLocation {
    /// The cache in `dir`, its key in the sibling file `DIR.key`
    /// (`data/cache` → `data/cache.key`).
    pub fn beside(dir: &Path) -> Self {
        let mut key_name = dir
            .file_name()
            .map(|n| n.to_os_string())
            .unwrap_or_else(|| "cache".into());
        key_name.push(".key");
        Self {
            dir: dir.to_path_buf(),
            key_file: dir.with_file_name(key_name),
        }
    }
}

/// A cached artifact, verified, in a private unnamed file of its own (an
/// `O_TMPFILE` beside the cache): what was checked is what is mapped.
///
/// Mapped, not read: wasmtime maps the file and only the pages of code
/// that run become resident (a Python plugin's artifact is ~37 MB, most of
/// it an interpreter that a plugin never calls). Not the cache file itself:
/// whoever can write that could change code after the check (a mapping
/// sees later writes to its file); the copy has no name, so nobody else
/// can open it short of being allowed to trace this process.
///
/// A filesystem without unnamed files (`O_TMPFILE`) gets the verified bytes
/// in memory instead, as before: resident, but just as safe.
pub enum Artifact {
    /// In a private unnamed file, to be mapped.
    Mapped(std::fs::File),
    /// In memory (no unnamed files where the cache is).
    Read(Vec<u8>),
}

impl Artifact {
    /// The component of this artifact.
    ///
    /// # Safety
    ///
    /// As [`wasmtime::component::Component::deserialize`]: the artifact must
    /// be one this host's engine wrote — what a cache hit's MAC proves.
    pub unsafe fn deserialize(
        &self,
        engine: &wasmtime::Engine,
    ) -> wasmtime::Result<wasmtime::component::Component> {
        use wasmtime::component::Component;
        match self {
            Artifact::Mapped(file) => {
                use std::os::fd::AsRawFd as _;
                // This process's descriptor of the copy: the file wasmtime opens is the one checked.
                let path = format!("/proc/self/fd/{}", file.as_raw_fd());
                // SAFETY: the caller's promise.
                unsafe { Component::deserialize_file(engine, path) }
            }
            // SAFETY: the caller's promise.
            Artifact::Read(bytes) => unsafe { Component::deserialize(engine, bytes) },
        }
    }
}

/// What the cache had for a component.
pub enum Lookup {
    /// Nothing cached (or the cache is off).
    Miss,
    /// An artifact this host wrote for this component and engine.
    Hit(Artifact),
    /// A file that is not provably ours; the reason, for the load's record.
    Rejected(String),
}

/// Compiled components on disk, keyed by the component's hash and the engine's configuration, so that a restart does not compile again.
pub struct ArtifactCache {
    dir: Option<Dir>,
    key: [u8; KEY_LEN],
    engine_key: String,
}

impl ArtifactCache {
    /// A cache at `location` (directory `0700` and key `0600` created if
    /// missing). If either cannot be used the cache is disabled with a
    /// warning: it only costs speed.
    pub fn open(location: &CacheLocation, engine: &wasmtime::Engine) -> Self {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let engine_key = format!("{:016x}", hasher.finish());
        let opened = open_dir(&location.dir)
            .map_err(|e| format!("{}: {e}", location.dir.display()))
            .and_then(|dir| Ok((dir, load_or_make_key(&location.key_file)?)));
        match opened {
            Ok((dir, key)) => Self {
                dir: Some(dir),
                key,
                engine_key,
            },
            Err(why) => {
                tracing::warn!(error = %why, "compile cache disabled");
                Self::disabled()
            }
        }
    }

    /// Whether artifacts are stored (the directory and key could be used).
    pub fn is_enabled(&self) -> bool {
        self.dir.is_some()
    }

    /// A cache that never stores anything.
    pub fn disabled() -> Self {
        Self {
            dir: None,
            key: [0; KEY_LEN],
            engine_key: String::new(),
        }
    }

    fn file_name(&self, component_hash: &str) -> String {
        format!("{component_hash}-{}.cwasm", self.engine_key)
    }

    /// The MAC binds the artifact to this component and this engine: the
    /// file of one component renamed to another's name does not verify.
    fn mac(&self, component_hash: &str, artifact: &[u8]) -> HmacSha256 {
        let mut mac = keyed_mac(&self.key);
        for part in [
            MAGIC.as_slice(),
            component_hash.as_bytes(),
            b"\0",
            self.engine_key.as_bytes(),
            b"\0",
        ] {
            mac.update(part);
        }
        mac.update(artifact);
        mac
    }

    /// The artifact for a component, if cached and provably written by this
    /// host for it.
    pub fn get(&self, component_hash: &str) -> Lookup {
        let Some(dir) = &self.dir else { return Lookup::Miss };
        let name = self.file_name(component_hash);
        let file = match dir.open(&name) {
            Ok(file) => file.into_std(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Lookup::Miss,
            Err(e) => return Lookup::Rejected(format!("cached artifact {name} unreadable: {e}")),
        };
        match self.verified_copy(dir, component_hash, file) {
            Ok(Ok(copy)) => Lookup::Hit(copy),
            Ok(Err(why)) => Lookup::Rejected(format!("cached artifact {name} rejected: {why}")),
            Err(e) => Lookup::Rejected(format!("cached artifact {name} unreadable: {e}")),
        }
    }

    /// Copies the artifact of `file` into a private unnamed file (or, where
    /// there are none, memory) while its MAC is computed, a chunk at a time;
    /// the copy if the MAC matches, else why not.
    fn verified_copy(
        &self,
        dir: &Dir,
        component_hash: &str,
        mut file: std::fs::File,
    ) -> std::io::Result<Result<Artifact, &'static str>> {
        use std::io::Read as _;
        let mut header = [0u8; HEADER_LEN];
        if file.read_exact(&mut header).is_err() || !header.starts_with(MAGIC) {
            return Ok(Err("not in this host's artifact format"));
        }
        let mut copy = match private_file(dir) {
            Ok(private) => Artifact::Mapped(private),
            Err(e) if unnamed_files_unsupported(&e) => Artifact::Read(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut mac = self.mac(component_hash, &[]);
        let mut chunk = vec![0u8; 1 << 20];
        loop {
            let n = file.read(&mut chunk)?;
            if n == 0 {
                break;
            }
            mac.update(&chunk[..n]);
            match &mut copy {
                Artifact::Mapped(private) => private.write_all(&chunk[..n])?,
                Artifact::Read(bytes) => bytes.extend_from_slice(&chunk[..n]),
            }
        }
        if mac.verify_slice(&header[MAGIC.len()..]).is_err() {
            return Ok(Err(
                "its MAC does not match (edited, swapped from another component, or written under another key)",
            ));
        }
        Ok(Ok(copy))
    }

    /// Stores an artifact, `0600`; written to a temporary name and renamed,
    /// so a crash never leaves a half-written artifact under the real name.
    pub fn put(&self, component_hash: &str, artifact: &[u8]) {
        let Some(dir) = &self.dir else { return };
        let name = self.file_name(component_hash);
        static WRITES: AtomicU64 = AtomicU64::new(0);
        let tmp = format!(
            "{name}.tmp-{}-{}",
            std::process::id(),
            WRITES.fetch_add(1, Ordering::Relaxed)
        );
        let mac = self.mac(component_hash, artifact).finalize().into_bytes();
        let result = dir
            .open_with(&tmp, OpenOptions::new().write(true).create_new(true).mode(0o600))
            .and_then(|mut file| {
                file.write_all(MAGIC)?;
                file.write_all(&mac)?;
                file.write_all(artifact)
            })
            .and_then(|()| dir.rename(&tmp, dir, &name));
        if let Err(e) = result {
            tracing::warn!(error = %e, artifact = %name, "could not write compile cache");
            let _ = dir.remove_file(&tmp);
        }
    }
}

/// A new unnamed file (`O_TMPFILE`, `0600`) in `dir`, open for reading and
/// writing: no path leads to it, and it is gone when closed.
fn private_file(dir: &Dir) -> std::io::Result<std::fs::File> {
    use std::os::fd::{AsRawFd as _, FromRawFd as _};
    // SAFETY: `openat` on a directory descriptor this cache owns, with a
    // constant path; the descriptor it returns is owned by the `File` below.
    let fd = unsafe {
        libc::openat(
            dir.as_raw_fd(),
            c".".as_ptr(),
            libc::O_TMPFILE | libc::O_RDWR | libc::O_CLOEXEC,
            0o600,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` was just opened and is owned by nothing else.
    Ok(unsafe { std::fs::File::from_raw_fd(fd) })
}

/// The filesystem (or kernel) has no `O_TMPFILE`.
fn unnamed_files_unsupported(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EOPNOTSUPP | libc::EISDIR | libc::EINVAL | libc::ENOENT)
    )
}

pub(crate) fn open_dir(path: &Path) -> std::io::Result<Dir> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)?;
    Dir::open_ambient_dir(path, ambient_authority())
}

/// Reads the key, or makes one: random, `0600`, written whole under a
/// temporary name and then linked into place, so that hosts starting at once
/// never read a half-written key and all agree on the one that won.
pub(crate) fn load_or_make_key(path: &Path) -> Result<[u8; KEY_LEN], String> {
    let fail = |e: std::io::Error| format!("key file {}: {e}", path.display());
    let read = || -> Result<[u8; KEY_LEN], String> {
        let bytes = std::fs::read(path).map_err(fail)?;
        bytes.try_into().map_err(|bytes: Vec<u8>| {
            format!(
                "key file {}: {} bytes, expected {KEY_LEN} (remove it to make a new key)",
                path.display(),
                bytes.len()
            )
        })
    };
    if path.exists() {
        return read();
    }
    let mut key = [0; KEY_LEN];
    getrandom::fill(&mut key).map_err(|e| format!("no randomness for a cache key: {e}"))?;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(fail)?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp-{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut file| file.write_all(&key).and_then(|()| file.sync_all()))
        .and_then(|()| std::fs::hard_link(&tmp, path));
    let _ = std::fs::remove_file(&tmp);
    match written {
        Ok(()) => Ok(key),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read(),
        Err(e) => Err(fail(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_sits_beside_the_cache_directory() {
        let location = CacheLocation::beside(Path::new("data/cache"));
        assert_eq!(location.key_file, Path::new("data/cache.key"));
    }

    #[test]
    fn a_key_is_made_once_private_and_then_read_back() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/cache.key");
        let made = load_or_make_key(&path).unwrap();
        assert_eq!(load_or_make_key(&path).unwrap(), made);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        std::fs::write(&path, b"short").unwrap();
        let refused = load_or_make_key(&path).unwrap_err();
        assert!(refused.contains("5 bytes, expected 32"), "{refused}");
    }

    #[test]
    fn a_hit_is_a_private_unnamed_copy_that_later_writes_do_not_reach() {
        use std::io::{Read as _, Seek as _};
        use std::os::unix::fs::MetadataExt as _;
        let dir = tempfile::tempdir().unwrap();
        let cache = ArtifactCache::open(
            &CacheLocation::beside(&dir.path().join("cache")),
            &wasmtime::Engine::default(),
        );
        // Bigger than one chunk of the copy.
        let artifact: Vec<u8> = (0..(3u32 << 19)).map(|i| i as u8).collect();
        cache.put("c0ffee", &artifact);
        let Lookup::Hit(Artifact::Mapped(mut copy)) = cache.get("c0ffee") else {
            panic!("expected a verified copy in an unnamed file")
        };
        assert_eq!(copy.metadata().unwrap().nlink(), 0, "no path leads to the copy");
        // The cache file edited after the check: the copy is what was checked.
        let name = cache.file_name("c0ffee");
        std::fs::write(dir.path().join("cache").join(&name), b"AHCWASM1 edited").unwrap();
        let mut read = Vec::new();
        copy.rewind().unwrap();
        copy.read_to_end(&mut read).unwrap();
        assert!(read == artifact, "the copy holds the artifact as verified");
        // And the edited file is refused from then on.
        assert!(matches!(cache.get("c0ffee"), Lookup::Rejected(_)));
    }
}
