//! `cargo xtask image` and `cargo xtask deb`: the release binary and the
//! bundled plugins, packaged by the scripts in `packaging/` (which the tests
//! run on the debug build), and the lint's check of the systemd units.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{Result, build_plugins, cargo, root, status, target_dir};

/// Builds what a package holds: the release binary and the bundled plugins.
fn release_build() -> Result<(PathBuf, PathBuf)> {
    let plugins = build_plugins(false)?;
    let mut build = cargo();
    build.args([
        "build",
        "--release",
        "--locked",
        "-p",
        "autoheal",
        "--bin",
        "autoheal",
    ]);
    status(build)?;
    Ok((target_dir().join("release/autoheal"), plugins))
}

fn version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

/// `cargo xtask image [TAG]`: `localhost/autoheal:VERSION` (and `:latest`,
/// the name docs/replicas/compose.yaml runs) unless TAG is given.
pub fn image(args: &[String]) -> Result {
    let tag = args
        .first()
        .cloned()
        .unwrap_or_else(|| format!("localhost/autoheal:{}", version()));
    let (binary, plugins) = release_build()?;
    let mut build = Command::new(root().join("packaging/image.sh"));
    build.arg(&binary).arg(&plugins).arg(&tag).arg(version());
    status(build)?;
    if args.is_empty() {
        let mut latest = Command::new("podman");
        latest.args(["tag", &tag, "localhost/autoheal:latest"]);
        status(latest)?;
    }
    Ok(())
}

/// `cargo xtask deb`: target/deb/autoheal_VERSION_ARCH.deb.
pub fn deb() -> Result {
    let (binary, plugins) = release_build()?;
    let mut build = Command::new(root().join("packaging/deb/build.sh"));
    build
        .arg(&binary)
        .arg(&plugins)
        .arg(target_dir().join("deb"))
        .arg(version());
    status(build)
}

/// The units the project ships, as `systemd-analyze verify` judges them:
/// the package's and the replicas' template (as an instance).
const UNITS: &[(&str, &str)] = &[
    ("packaging/deb/autoheal.service", "autoheal.service"),
    ("docs/replicas/autoheal@.service", "autoheal@1.service"),
];

/// `systemd-analyze verify` on every unit, in a scratch root holding the
/// unit, the binary its ExecStart names (verify checks it is executable)
/// and the system's targets. Any message fails: verify exits 0 on some
/// warnings (an unknown key), which are mistakes here too.
pub fn verify_units() -> Result {
    let scratch = target_dir().join("units-verify");
    let _ = std::fs::remove_dir_all(&scratch);
    let units = scratch.join("lib/systemd/system");
    std::fs::create_dir_all(&units).map_err(|e| format!("{}: {e}", units.display()))?;
    let system = Path::new("/lib/systemd/system");
    for entry in std::fs::read_dir(system).map_err(|e| format!("{}: {e}", system.display()))? {
        let path = entry.map_err(|e| e.to_string())?.path();
        if path.extension().is_some_and(|x| x == "target") {
            copy_file(&path, &units.join(path.file_name().unwrap_or_default()))?;
        }
    }
    let mut problems = Vec::new();
    for (source, instance) in UNITS {
        let source = root().join(source);
        let text = std::fs::read_to_string(&source).map_err(|e| format!("{}: {e}", source.display()))?;
        for binary in exec_binaries(&text) {
            let at = scratch.join(binary.trim_start_matches('/'));
            if let Some(dir) = at.parent() {
                std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
            }
            copy_file(Path::new("/bin/true"), &at)?;
        }
        copy_file(&source, &units.join(source.file_name().unwrap_or_default()))?;
        let output = Command::new("systemd-analyze")
            .args(["verify", "--man=no"])
            .arg(format!("--root={}", scratch.display()))
            .arg(format!("/lib/systemd/system/{instance}"))
            .output()
            .map_err(|e| format!("cannot run systemd-analyze (Debian's systemd): {e}"))?;
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        if !output.status.success() || !said.trim().is_empty() {
            problems.push(format!("{}:\n{}", source.display(), said.trim()));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("systemd-analyze verify:\n{}", problems.join("\n")))
    }
}

/// The programs a unit's `Exec*=` lines run (absolute paths, without
/// systemd's `-`, `@`, `+` prefixes).
fn exec_binaries(unit: &str) -> Vec<String> {
    unit.lines()
        .filter(|line| line.starts_with("Exec"))
        .filter_map(|line| line.split_once('=').map(|(_, value)| value))
        .filter_map(|value| value.split_whitespace().next())
        .map(|program| program.trim_start_matches(['-', '@', '+', '!', ':']).to_owned())
        .filter(|program| program.starts_with('/'))
        .collect()
}

fn copy_file(from: &Path, to: &Path) -> Result {
    std::fs::copy(from, to)
        .map(|_| ())
        .map_err(|e| format!("copy {} -> {}: {e}", from.display(), to.display()))
}
