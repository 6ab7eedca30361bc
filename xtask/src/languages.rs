//! Guests written in Python and JavaScript: their build tools installed from
//! PyPI and npm at pinned versions under `target/guest-tools/`, and each
//! guest built into a component beside the Rust ones, again only when one
//! of its inputs (its sources, the SDK, the WIT, the pins) is newer.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use crate::{Result, root, status, target_dir};

/// What a guest is written in.
#[derive(Clone, Copy, PartialEq)]
enum Language {
    Python,
    JavaScript,
}

/// The guests in other languages: the bundled examples and the hostile
/// fixtures (true: only the tests need it). Each builds to `<directory name
/// with _>.wasm`.
const GUESTS: &[(&str, Language, bool)] = &[
    ("plugins/restart-unhealthy-py", Language::Python, false),
    ("plugins/restart-unhealthy-js", Language::JavaScript, false),
    ("plugins/restart-on-log-pattern", Language::JavaScript, false),
    ("tests/fixtures/misbehave-py", Language::Python, true),
    ("tests/fixtures/misbehave-js", Language::JavaScript, true),
    ("tests/fixtures/sdk-calls-py", Language::Python, true),
    ("tests/fixtures/sdk-calls-js", Language::JavaScript, true),
];

/// Builds the guests of [`GUESTS`] that are out of date into `built` (the
/// fixtures too when `fixtures`): the Python ones and the JavaScript ones at
/// the same time, each with its own tools.
pub fn build(built: &Path, fixtures: bool) -> Result {
    let chosen = |language: Language| -> Vec<&'static str> {
        GUESTS
            .iter()
            .filter(|(_, l, fixture)| *l == language && (fixtures || !fixture))
            .map(|(dir, _, _)| *dir)
            .collect()
    };
    let (python, javascript) = (chosen(Language::Python), chosen(Language::JavaScript));
    std::thread::scope(|scope| {
        let js = scope.spawn(|| build_each(built, Language::JavaScript, &javascript));
        let py = build_each(built, Language::Python, &python);
        let js = js
            .join()
            .unwrap_or_else(|_| Err("the JavaScript build panicked".into()));
        py.and(js)
    })
}

fn build_each(built: &Path, language: Language, dirs: &[&str]) -> Result {
    let root = root();
    let wit = root.join("wit");
    for dir in dirs {
        let dir = root.join(dir);
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().replace('-', "_"))
            .unwrap_or_default();
        let out = built.join(format!("{name}.wasm"));
        let sdk = match language {
            Language::Python => root.join("sdk/python/autoheal_sdk"),
            Language::JavaScript => root.join("sdk/js"),
        };
        if is_fresh(&out, &[&dir, &sdk, &wit]) {
            continue;
        }
        let tmp = out.with_extension("wasm.tmp");
        match language {
            Language::Python => {
                let mut command = Command::new(python_tools()?.join("bin/componentize-py"));
                // No __pycache__ beside the sources.
                command.env("PYTHONDONTWRITEBYTECODE", "1");
                command
                    .arg("-d")
                    .arg(&wit)
                    .args(["-w", "action", "componentize", "-p"])
                    .arg(sdk.parent().unwrap_or(&sdk))
                    .arg("-p")
                    .arg(&dir)
                    .arg("app")
                    .arg("-o")
                    .arg(&tmp);
                status(command)?;
            }
            Language::JavaScript => {
                let tools = js_tools()?;
                let mut command = Command::new("node");
                command
                    .arg(tools.join("build.mjs"))
                    .arg(dir.join("app.js"))
                    .arg(&tmp)
                    .arg(&wit)
                    .arg(sdk.join("autoheal-sdk.js"));
                status(command)?;
            }
        }
        std::fs::rename(&tmp, &out).map_err(|e| format!("rename {}: {e}", tmp.display()))?;
    }
    Ok(())
}

/// A virtualenv with componentize-py at the pinned version; reinstalled
/// when the pins change.
fn python_tools() -> Result<PathBuf> {
    let tools = target_dir().join("guest-tools/python");
    let pins = root().join("sdk/python/requirements.txt");
    if is_fresh(&tools.join(".installed"), &[&pins]) {
        return Ok(tools);
    }
    let mut venv = Command::new("python3");
    venv.args(["-m", "venv", "--clear"]).arg(&tools);
    status(venv)?;
    let mut pip = Command::new(tools.join("bin/pip"));
    pip.args(["install", "--quiet", "--disable-pip-version-check", "-r"])
        .arg(&pins);
    status(pip)?;
    touch(&tools.join(".installed"))?;
    Ok(tools)
}

/// `node_modules` with esbuild and componentize-js at the pinned versions,
/// beside a copy of the SDK's build script (which resolves them from there).
fn js_tools() -> Result<PathBuf> {
    let tools = target_dir().join("guest-tools/js");
    let sdk = root().join("sdk/js/tools");
    std::fs::create_dir_all(&tools).map_err(|e| format!("{}: {e}", tools.display()))?;
    for file in ["package.json", "build.mjs"] {
        std::fs::copy(sdk.join(file), tools.join(file)).map_err(|e| format!("copy {file}: {e}"))?;
    }
    let pins = sdk.join("package.json");
    if is_fresh(&tools.join(".installed"), &[&pins]) {
        return Ok(tools);
    }
    let mut npm = Command::new("npm");
    npm.args(["install", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(&tools);
    status(npm)?;
    touch(&tools.join(".installed"))?;
    Ok(tools)
}

/// Whether `out` exists and is newer than every file under `inputs`.
fn is_fresh(out: &Path, inputs: &[&Path]) -> bool {
    let Some(built) = modified(out) else {
        return false;
    };
    inputs
        .iter()
        .all(|input| newest(input).is_none_or(|newest| newest <= built))
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// The newest modification time of `path` and everything below it
/// (skipping `node_modules` and caches).
fn newest(path: &Path) -> Option<SystemTime> {
    let mut newest = modified(path);
    if path.is_dir() {
        for entry in std::fs::read_dir(path).into_iter().flatten().flatten() {
            let child = entry.path();
            let name = entry.file_name();
            if name == "node_modules" || name == "__pycache__" {
                continue;
            }
            newest = newest.max(self::newest(&child));
        }
    }
    newest
}

fn touch(path: &Path) -> Result {
    std::fs::write(path, b"").map_err(|e| format!("{}: {e}", path.display()))
}

/// Runs the SDKs' own unit tests and the bundled Python and JavaScript
/// plugins' tests natively: pytest (Debian's `python3-pytest`) and node's
/// built-in runner, each SDK standing in for the host with its fakes.
pub fn unit_tests() -> Result {
    let root = root();
    let mut sdk = Command::new("pytest-3");
    sdk.current_dir(root.join("sdk/python"))
        .env("PYTHONDONTWRITEBYTECODE", "1");
    status(sdk)?;
    let mut sdk = Command::new("node");
    sdk.arg("--test").current_dir(root.join("sdk/js"));
    status(sdk)?;
    for (dir, language, _) in GUESTS {
        let dir = root.join(dir);
        if !dir.join("tests").is_dir() && !dir.join("test").is_dir() {
            continue;
        }
        let mut plugin = match language {
            Language::Python => {
                let mut pytest = Command::new("pytest-3");
                pytest
                    .args(["-q", "-p", "no:cacheprovider", "tests"])
                    .env("PYTHONPATH", format!(".:{}", root.join("sdk/python").display()))
                    .env("PYTHONDONTWRITEBYTECODE", "1");
                pytest
            }
            Language::JavaScript => {
                // "autoheal-sdk" resolved to the SDK without a node_modules link.
                let mut node = Command::new("node");
                node.arg("--import")
                    .arg(root.join("sdk/js/register.mjs"))
                    .arg("--test");
                node
            }
        };
        plugin.current_dir(&dir);
        status(plugin)?;
    }
    Ok(())
}
