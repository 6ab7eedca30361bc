//! What the benches share: the repository, the bundled component, and
//! making a copy of it with other bytes.

use std::path::{Path, PathBuf};

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The bundled restart-container component, as `cargo xtask build-plugins` built it.
pub fn component() -> Vec<u8> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"));
    let path = target.join("wasm32-wasip2/plugin/restart_container.wasm");
    std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; run `cargo xtask build-plugins` first", path.display()))
}

/// The bundled manifest for it.
pub fn manifest_text() -> String {
    std::fs::read_to_string(root().join("plugins/restart-container/restart-crm-api.toml")).unwrap()
}

/// `bytes` with a custom section named after `tag` appended: the same code,
/// another hash, so it is compiled and cached as a component of its own.
pub fn with_tag(mut bytes: Vec<u8>, tag: &str) -> Vec<u8> {
    let name = b"bench";
    bytes.push(0); // custom section id
    bytes.push((1 + name.len() + tag.len()) as u8);
    bytes.push(name.len() as u8);
    bytes.extend_from_slice(name);
    bytes.extend_from_slice(tag.as_bytes());
    bytes
}
pub mod loadgen;
