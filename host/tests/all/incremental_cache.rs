//! The compiler's incremental cache (`<cache_dir>/incremental/`): a
//! component that shares most of its functions with one compiled before (a
//! JavaScript plugin after an edit carries the same interpreter) takes them
//! from there, and an entry that does not verify under the cache key is
//! never used.

use std::path::{Path, PathBuf};

use serde_json::json;

use crate::plugin_cli::{cli, write};
use crate::support::*;

/// The stderr of `plugin ARGS`, which must succeed; and its stdout.
fn plugin(args: &[&str], manifest: &Path) -> (String, String) {
    let output = cli().arg("plugin").args(args).arg(manifest).output().unwrap();
    let out = String::from_utf8_lossy(&output.stdout).into_owned();
    let err = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{out}{err}");
    (out, err)
}

/// `(reused, functions)` of "compiled in 3.1 s (R of N functions from the
/// incremental cache…)".
fn reused(stderr: &str) -> (u64, u64) {
    let at = stderr
        .find(" functions from the incremental cache")
        .unwrap_or_else(|| panic!("no incremental cache report: {stderr}"));
    let words: Vec<&str> = stderr[..at].rsplit(['(', ' ']).take(3).collect();
    let [functions, "of", reused] = words[..] else {
        panic!("unexpected report: {stderr}")
    };
    (reused.parse().unwrap(), functions.parse().unwrap())
}

/// Copies the bundled `component` and the manifest `file` of
/// plugins/`crate_dir` into `dir`; the manifest's path.
fn stage(dir: &Path, component: &str, crate_dir: &str, file: &str) -> PathBuf {
    std::fs::copy(guest(component), dir.join(format!("{component}.wasm"))).unwrap();
    let manifest = dir.join(file);
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../plugins")
        .join(crate_dir)
        .join(file);
    std::fs::copy(shipped, &manifest).unwrap();
    manifest
}

/// Removes the compiled artifacts, so that the next run compiles again.
fn forget_artifacts(cache: &Path) {
    for entry in std::fs::read_dir(cache).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|x| x == "cwasm") {
            std::fs::remove_file(path).unwrap();
        }
    }
}

#[test]
fn a_javascript_plugin_compiles_from_the_functions_of_another() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let cache_arg = cache.to_str().unwrap();
    let first = stage(
        dir.path(),
        "restart_unhealthy_js",
        "restart-unhealthy-js",
        "restart-unhealthy-js.toml",
    );
    // The same JavaScript runtime, other application code.
    let second = stage(
        dir.path(),
        "restart_on_log_pattern",
        "restart-on-log-pattern",
        "restart-on-log-pattern.toml",
    );

    let (_, err) = plugin(&["check", "--cache-dir", cache_arg], &first);
    // Even a first compile reuses some: a component holds identical
    // functions (adapters, trampolines), compiled once.
    let (cold, functions) = reused(&err);
    let entries = std::fs::read_dir(cache.join("incremental")).unwrap().count() as u64;
    // One entry for each function not reused (fewer when two identical
    // functions were compiled at once, on two threads, and wrote one entry).
    assert!(
        cold + entries <= functions && entries * 10 >= (functions - cold) * 9,
        "{entries} entries: {err}"
    );

    let (_, err) = plugin(&["check", "--cache-dir", cache_arg], &second);
    let (warm, functions) = reused(&err);
    assert!(
        warm > cold && warm * 100 >= functions * 90,
        "the other plugin's interpreter comes from the store: {err}"
    );
}

#[test]
fn a_tampered_incremental_entry_is_never_used() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let cache_arg = cache.to_str().unwrap();
    let manifest = stage(
        dir.path(),
        "restart_container",
        "restart-container",
        "restart-crm-api.toml",
    );
    let mut alert = opted_in("TcpEndpointDownFast");
    alert["labels"]["container"] = json!("crm-api");
    let alert = write(dir.path(), "alert.json", alert);
    let test = [
        "test",
        "--cache-dir",
        cache_arg,
        "--alert",
        alert.to_str().unwrap(),
    ];
    plugin(&test, &manifest);

    // Every entry's compiled code changed by one bit, as by someone who can
    // write the cache directory.
    let entries: Vec<PathBuf> = std::fs::read_dir(cache.join("incremental"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(!entries.is_empty());
    let mut tampered = Vec::new();
    for entry in &entries {
        let mut bytes = std::fs::read(entry).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(entry, &bytes).unwrap();
        tampered.push(bytes);
    }
    forget_artifacts(&cache);

    let (out, err) = plugin(&test, &manifest);
    assert!(out.contains("result    ok: restarted crm-api"), "{out}");
    let (reused_now, functions) = reused(&err);
    let rejected: u64 = err
        .split(" entries failed their MAC check and were compiled again")
        .next()
        .and_then(|before| before.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count of rejected entries: {err}"));
    // Every tampered entry the compile looked up was refused and compiled
    // again: what it reused is only a function identical to another of the
    // same compile, whose entry it had just rewritten. Not every entry is
    // looked up: wasmtime gives some functions a new key on each compile
    // (BENCHMARKS.md, "Edit → test"), about a tenth of them in the runs
    // seen, so "most" is what this can ask without depending on that share.
    let tampered_count = entries.len() as u64;
    assert!(
        rejected * 4 >= tampered_count * 3 && rejected + reused_now <= functions,
        "{tampered_count} entries tampered with: {err}"
    );
    let still_tampered = entries
        .iter()
        .zip(&tampered)
        .filter(|(entry, bytes)| std::fs::read(entry).unwrap() == **bytes)
        .count() as u64;
    assert!(
        still_tampered <= tampered_count - rejected.min(tampered_count),
        "each refused entry is rewritten: {still_tampered} of {tampered_count} left as tampered, {rejected} refused"
    );
    // Rewritten, they serve the next compile (which refuses again only
    // entries the compile before did not look up, left as tampered).
    forget_artifacts(&cache);
    let (out, err) = plugin(&test, &manifest);
    let (reused_after, _) = reused(&err);
    assert!(
        reused_after * 4 >= functions * 3 && reused_after > reused_now,
        "{still_tampered} entries left as tampered: {err}"
    );
    assert!(out.contains("result    ok: restarted crm-api"), "{out}");
}
