//! `autoheal plugin test|check` reuse the host's authenticated compile
//! cache: a second run of an unchanged plugin loads its artifact instead of
//! compiling, and an artifact that does not verify is refused and compiled again.

use std::path::{Path, PathBuf};

use serde_json::json;

use crate::plugin_cli::{cli, write};
use crate::support::*;

/// `plugin test` of `manifest` on `alert` with `args`: exit code, stdout, stderr.
fn plugin_test(manifest: &Path, alert: &Path, args: &[&str]) -> (i32, String, String) {
    let output = cli()
        .args(["plugin", "test"])
        .arg(manifest)
        .arg("--alert")
        .arg(alert)
        .args(args)
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The artifact files in a cache directory.
fn artifacts(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "cwasm"))
        .collect()
}

/// A plugins directory with `component` and the manifest `file` of
/// plugins/`crate_dir`, and an alert for it.
fn staged(
    component: &str,
    crate_dir: &str,
    file: &str,
    alertname: &str,
) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(guest(component), dir.path().join(format!("{component}.wasm"))).unwrap();
    let manifest = dir.path().join(file);
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../plugins")
        .join(crate_dir)
        .join(file);
    std::fs::copy(shipped, &manifest).unwrap();
    let mut alert = opted_in(alertname);
    alert["labels"]["container"] = json!("crm-api");
    let alert = write(dir.path(), "alert.json", alert);
    (dir, manifest, alert)
}

#[test]
fn a_second_plugin_test_of_a_python_plugin_is_served_from_the_cache() {
    let (dir, manifest, alert) = staged(
        "restart_unhealthy_py",
        "restart-unhealthy-py",
        "restart-unhealthy-py.toml",
        "ContainerUnhealthyPy",
    );
    let cache = dir.path().join("cache");
    let cache_arg = cache.to_str().unwrap();
    let (code, first, err) = plugin_test(&manifest, &alert, &["--cache-dir", cache_arg]);
    assert_eq!(code, 0, "{first}{err}");
    assert!(err.contains("compiled in"), "the first run compiles: {err}");
    assert_eq!(artifacts(&cache).len(), 1, "and caches the artifact");
    assert!(
        dir.path().join("cache.key").exists(),
        "its key beside, outside the cache"
    );

    let (code, second, err) = plugin_test(&manifest, &alert, &["--cache-dir", cache_arg]);
    assert_eq!(code, 0, "{second}{err}");
    assert!(err.contains("loaded from the compile cache"), "{err}");
    assert!(!err.contains("compiled in"), "{err}");
    assert!(
        second.contains("result    skipped: crm-api has no health check"),
        "{second}"
    );
    // The same answer as the compiled run (but for the durations: the
    // run's, and each call's `(N ms)`).
    let answer = |out: &str| {
        out.lines()
            .filter(|l| !l.starts_with("duration"))
            .map(|l| match l.rfind(" (") {
                Some(at) if l.ends_with(" ms)") => &l[..at],
                _ => l,
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(answer(&first), answer(&second));

    // `plugin check` reads the same cache.
    let output = cli()
        .args(["plugin", "check", "--cache-dir", cache_arg])
        .arg(&manifest)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{err}");
    assert!(err.contains("loaded from the compile cache"), "{err}");
}

#[test]
fn a_tampered_cache_entry_is_refused_and_compiled_again() {
    let (dir, manifest, alert) = staged(
        "restart_container",
        "restart-container",
        "restart-crm-api.toml",
        "TcpEndpointDownFast",
    );
    let cache = dir.path().join("cache");
    let cache_arg = cache.to_str().unwrap();
    let (code, _, err) = plugin_test(&manifest, &alert, &["--cache-dir", cache_arg]);
    assert_eq!(code, 0, "{err}");
    let [artifact] = artifacts(&cache).try_into().unwrap();
    // One bit of the compiled code changed, as by someone who can write the cache.
    let mut bytes = std::fs::read(&artifact).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&artifact, &bytes).unwrap();

    let (code, out, err) = plugin_test(&manifest, &alert, &["--cache-dir", cache_arg]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(err.contains("compile cache entry refused"), "{err}");
    assert!(err.contains("MAC does not match"), "{err}");
    assert!(err.contains("compiled in"), "{err}");
    assert!(out.contains("result    ok: restarted crm-api"), "{out}");
    // Compiled again and written back: the next run is served from the cache.
    assert_ne!(std::fs::read(&artifact).unwrap(), bytes);
    let (_, _, err) = plugin_test(&manifest, &alert, &["--cache-dir", cache_arg]);
    assert!(err.contains("loaded from the compile cache"), "{err}");

    // An artifact under another key (a cache copied from elsewhere) is refused too.
    std::fs::write(dir.path().join("cache.key"), [7u8; 32]).unwrap();
    let (_, _, err) = plugin_test(&manifest, &alert, &["--cache-dir", cache_arg]);
    assert!(err.contains("compile cache entry refused"), "{err}");
}

#[test]
fn without_a_flag_the_cache_is_the_configs_or_else_the_users() {
    let (dir, manifest, alert) = staged(
        "restart_container",
        "restart-container",
        "restart-crm-api.toml",
        "TcpEndpointDownFast",
    );
    // No config: $XDG_CACHE_HOME/autoheal/components, key beside it.
    let xdg = dir.path().join("xdg");
    let output = cli()
        .env("XDG_CACHE_HOME", &xdg)
        .args(["plugin", "test"])
        .arg(&manifest)
        .arg("--alert")
        .arg(&alert)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(artifacts(&xdg.join("autoheal/components")).len(), 1);
    assert!(xdg.join("autoheal/components.key").exists());

    // A host config: the host's own cache_dir, so the host loads what the CLI compiled.
    let host_cache = dir.path().join("host-cache");
    let config = dir.path().join("autoheal.toml");
    std::fs::write(
        &config,
        format!("cache_dir = {:?}\n", host_cache.to_str().unwrap()),
    )
    .unwrap();
    let (code, _, err) = plugin_test(&manifest, &alert, &["--config", config.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(artifacts(&host_cache).len(), 1, "{err}");
    assert!(dir.path().join("host-cache.key").exists());
}
