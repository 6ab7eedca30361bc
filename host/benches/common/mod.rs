//! What the benches share: the repository, the bundled component, and
//! making a copy of it with other bytes.

use std::path::{Path, PathBuf};

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The sandbox as shipped, compiling with the `autoheal` binary (a bench
/// runs in a binary of its own, which is not a compiler).
pub fn sandbox() -> autoheal_sandbox::SandboxConfig {
    autoheal_sandbox::SandboxConfig {
        compiler: Some(env!("CARGO_BIN_EXE_autoheal").into()),
        ..Default::default()
    }
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

/// A `Name:   1234 kB` field of `/proc/PID/status` (`pid` "self" for this
/// process: `VmRSS:` is resident now, `VmHWM:` at its most), in KiB; 0 when
/// unknown.
pub fn proc_status_kib(pid: &str, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    autoheal::memory::field_bytes(&status, field).map_or(0, |bytes| bytes / 1024)
}

/// A real `autoheal serve` process on a free loopback port, with an empty
/// plugins directory, its trail and cache in `dir` and no container engine;
/// `extra` adds to its command (variables) before it is spawned. Returns
/// once it accepts connections, with its address.
pub fn serve_process(
    dir: &Path,
    extra: impl FnOnce(&mut std::process::Command),
) -> (std::process::Child, String) {
    std::fs::create_dir_all(dir.join("plugins")).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_autoheal"));
    command
        .args(["serve", "--listen", &addr, "--plugins-dir"])
        .arg(dir.join("plugins"))
        .arg("--audit-path")
        .arg(dir.join("audit.jsonl"))
        .arg("--cache-dir")
        .arg(dir.join("cache"))
        .env("AUTOHEAL_CONTAINER_ENGINE", "none")
        .env("AUTOHEAL_LOG", "warn");
    extra(&mut command);
    let host = command.spawn().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while std::net::TcpStream::connect(&addr).is_err() {
        assert!(std::time::Instant::now() < deadline, "host did not start");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    (host, addr)
}
