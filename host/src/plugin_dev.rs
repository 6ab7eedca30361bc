//! `autoheal plugin dev [DIR]`: the author's loop. On every change to the
//! project's sources it runs the project's own build, tests the component
//! on the fixture alerts through `plugin test` (with the compile cache, so
//! an unchanged component is not compiled again) and, when asked, installs
//! it into a host. Language-agnostic: a project with a `build.sh` (what
//! `plugin new --lang python|js` writes) is built by it, a Cargo project by
//! `cargo build --target wasm32-wasip2 --release`, anything else is tested
//! as it is.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, bail};
use notify::{RecursiveMode, Watcher};
use tokio::signal::unix::SignalKind;

use autoheal_sandbox::manifest::Manifest;

use crate::ops_cmd::{Remote, Scope};
use crate::plugin_run::{HostSettings, TestOptions, test};

#[derive(clap::Args)]
pub struct DevArgs {
    /// The plugin project (the directory with its manifest, NAME.toml).
    #[arg(default_value = ".")]
    dir: PathBuf,
    /// The manifest, when the project has more than one.
    #[arg(long)]
    manifest: Option<PathBuf>,
    /// The alerts to test with. Default: `alert.json` in the project, else
    /// every `*.json` in its `alerts/` folder.
    #[arg(long)]
    alert: Option<PathBuf>,
    /// Container states for `inspect`, as for `plugin test`.
    #[arg(long)]
    containers: Option<PathBuf>,
    /// Recorded answers for the plugin's reads, as for `plugin test`.
    /// Default: the project's `answers.json`, when it has one.
    #[arg(long)]
    answers: Option<PathBuf>,
    /// Send the reads the answers do not cover to the real services, as
    /// for `plugin test`.
    #[arg(long)]
    live_reads: bool,
    /// The host's config file, as for `plugin test`.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Where compiled components are cached, as for `plugin test`.
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    /// Install each version that passes into this plugins directory (the
    /// host's `plugins_dir`; its watcher or `--host` reloads it).
    #[arg(long)]
    plugins_dir: Option<PathBuf>,
    /// A running host to reload after installing (`POST /plugins/reload`,
    /// with the operator token from AUTOHEAL_OPERATOR_TOKEN). Needs
    /// `--plugins-dir`: the host has no route to upload a plugin.
    #[arg(long)]
    host: Option<String>,
    /// Run one build-and-test and exit (non-zero when it fails).
    #[arg(long)]
    once: bool,
}

/// Directories that hold build output or tools, never sources: changes
/// there (the build's own writes) do not start a build.
const NOT_SOURCES: &[&str] = &["target", "node_modules", ".venv", ".git", "__pycache__"];

/// The project's recorded answers for `plugin test`, when it has them.
const ANSWERS: &str = "answers.json";

/// How long to wait after a change for the editor's other writes (a save is
/// often several events).
const SETTLE: Duration = Duration::from_millis(200);

struct Project {
    dir: PathBuf,
    manifest: PathBuf,
    component: String,
    build: Build,
    alerts: Vec<PathBuf>,
}

enum Build {
    /// The project's own `build.sh`.
    Script(PathBuf),
    /// A Rust crate: `cargo build --target wasm32-wasip2 --release`.
    Cargo,
    /// Nothing to build: the component is tested as it is.
    None,
}

pub async fn run(args: DevArgs) -> anyhow::Result<bool> {
    if args.host.is_some() && args.plugins_dir.is_none() {
        bail!(
            "--host needs --plugins-dir: the host has no route to upload a plugin, so `plugin dev` \
             copies it into the host's plugins directory and asks the host to reload"
        );
    }
    let settings = HostSettings::load(args.config.as_deref(), args.cache_dir.as_deref())?;
    // One runtime for the whole session: its engine and cache are reused.
    let runtime = settings.runtime()?;
    let project = Project::find(&args, &settings)?;
    if args.once {
        return iteration(&project, &args, &settings, &runtime).await;
    }

    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event
            && !matches!(event.kind, notify::EventKind::Access(_))
        {
            let _ = tx.send(());
        }
    })
    .context("cannot watch the project")?;
    watcher
        .watch(&project.dir, RecursiveMode::Recursive)
        .with_context(|| format!("cannot watch {}", project.dir.display()))?;
    // One stream for the whole session, made before the first turn: a
    // Ctrl-C that comes while a turn runs is kept for the next wait, not
    // lost as it would be with a `ctrl_c()` made afresh for each wait.
    let mut interrupt =
        tokio::signal::unix::signal(SignalKind::interrupt()).context("cannot handle Ctrl-C")?;
    let mut seen = sources(&project.dir);
    loop {
        tokio::select! {
            biased;
            _ = interrupt.recv() => return Ok(true),
            turn = iteration(&project, &args, &settings, &runtime) => { turn?; }
        }
        println!("watching {} (Ctrl-C ends)", project.dir.display());
        // Wait for a change to the sources: events from the build's own
        // writes (the component, caches) leave the snapshot as it was.
        loop {
            tokio::select! {
                biased;
                _ = interrupt.recv() => return Ok(true),
                event = rx.recv() => if event.is_none() { bail!("the watcher stopped") },
            }
            tokio::time::sleep(SETTLE).await;
            while rx.try_recv().is_ok() {}
            let now = sources(&project.dir);
            if now != seen {
                seen = now;
                break;
            }
        }
    }
}

/// Build, test, install: one turn of the loop. Build and test failures are
/// printed and make the turn fail; only what the session cannot go on
/// without (no project, no runtime) is an error.
async fn iteration(
    project: &Project,
    args: &DevArgs,
    settings: &HostSettings,
    runtime: &autoheal_sandbox::PluginRuntime,
) -> anyhow::Result<bool> {
    let started = Instant::now();
    if let Err(e) = project.build() {
        println!("build FAILED: {e:#}\n");
        return Ok(false);
    }
    let built = started.elapsed().as_secs_f64();
    println!("built in {built:.1} s");
    // Looked for on every turn: an answers file added or edited during the
    // session counts from the next turn (it is a source: saving it starts one).
    let answers = project.answers(args);
    if let Some(file) = &answers {
        println!("answers   {}", file.display());
    }
    let options = TestOptions {
        containers: args.containers.as_deref(),
        answers: answers.as_deref(),
        live_reads: args.live_reads,
        ..TestOptions::default()
    };
    let passed = match test(
        runtime,
        &project.manifest,
        &project.alerts,
        &options,
        &settings.config,
    )
    .await
    {
        Ok(passed) => passed,
        Err(e) => {
            println!("test FAILED: {e:#}\n");
            return Ok(false);
        }
    };
    if !passed {
        println!("test FAILED: not installed\n");
        return Ok(false);
    }
    if let Some(plugins_dir) = &args.plugins_dir {
        project.install(plugins_dir)?;
        println!("installed into {}", plugins_dir.display());
        if let Some(host) = &args.host {
            println!("{}", reload(host).await?);
        }
    }
    println!("done in {:.1} s\n", started.elapsed().as_secs_f64());
    Ok(true)
}

impl Project {
    fn find(args: &DevArgs, settings: &HostSettings) -> anyhow::Result<Self> {
        let dir = args
            .dir
            .canonicalize()
            .with_context(|| format!("no plugin project at {}", args.dir.display()))?;
        let bounds = settings.config.manifest_bounds();
        let manifests: Vec<PathBuf> = match &args.manifest {
            Some(path) => vec![dir.join(path)],
            None => {
                let mut found = Vec::new();
                for entry in
                    std::fs::read_dir(&dir).with_context(|| format!("cannot read {}", dir.display()))?
                {
                    let path = entry?.path();
                    let name = path
                        .file_name()
                        .unwrap_or_default()
                        .to_string_lossy()
                        .into_owned();
                    if name.ends_with(".toml")
                        && name != "Cargo.toml"
                        && std::fs::read_to_string(&path)
                            .is_ok_and(|t| Manifest::parse(&name, &t, bounds).is_ok())
                    {
                        found.push(path);
                    }
                }
                found.sort();
                found
            }
        };
        let manifest = match manifests.as_slice() {
            [one] => one.clone(),
            [] => bail!("no plugin manifest (NAME.toml) in {}", dir.display()),
            several => bail!(
                "several manifests in {} ({}); pass one with --manifest",
                dir.display(),
                names(several)
            ),
        };
        let name = manifest
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let text = std::fs::read_to_string(&manifest)
            .with_context(|| format!("cannot read {}", manifest.display()))?;
        let component = Manifest::parse(&name, &text, bounds)
            .map_err(|e| anyhow::anyhow!("{}: {e}", manifest.display()))?
            .component;
        let build = if dir.join("build.sh").is_file() {
            Build::Script(dir.join("build.sh"))
        } else if dir.join("Cargo.toml").is_file() {
            Build::Cargo
        } else {
            Build::None
        };
        let alerts = fixtures(&dir, args.alert.as_deref())?;
        Ok(Self {
            dir,
            manifest,
            component,
            build,
            alerts,
        })
    }

    /// The recorded answers to test with: `--answers`, else the project's
    /// `answers.json` (beside `alert.json`), if it has one.
    fn answers(&self, args: &DevArgs) -> Option<PathBuf> {
        args.answers
            .clone()
            .or_else(|| Some(self.dir.join(ANSWERS)).filter(|p| p.is_file()))
    }

    fn build(&self) -> anyhow::Result<()> {
        match &self.build {
            Build::Script(script) => {
                let status = Command::new(script)
                    .current_dir(&self.dir)
                    .status()
                    .with_context(|| format!("cannot run {}", script.display()))?;
                if !status.success() {
                    bail!("{} {status}", script.display());
                }
                Ok(())
            }
            Build::Cargo => self.cargo_build(),
            Build::None => Ok(()),
        }
    }

    /// `cargo build`, then the built component copied beside the manifest
    /// under the name the manifest gives it (what the generated README
    /// says to do by hand). Cargo's JSON messages say where it wrote the
    /// `.wasm`, wherever the target directory is.
    fn cargo_build(&self) -> anyhow::Result<()> {
        let output = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
            .args(["build", "--target", "wasm32-wasip2", "--release"])
            .arg("--message-format=json-render-diagnostics")
            .current_dir(&self.dir)
            .stderr(Stdio::inherit())
            .output()
            .context("cannot run cargo")?;
        if !output.status.success() {
            bail!("cargo build {}", output.status);
        }
        let mut built = Vec::new();
        for line in String::from_utf8_lossy(&output.stdout).lines() {
            let Ok(message) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            let is_cdylib = message["target"]["kind"]
                .as_array()
                .is_some_and(|kinds| kinds.iter().any(|k| k == "cdylib"));
            if message["reason"] != "compiler-artifact" || !is_cdylib {
                continue;
            }
            for file in message["filenames"].as_array().into_iter().flatten() {
                if let Some(file) = file.as_str().filter(|f| f.ends_with(".wasm")) {
                    built.push(PathBuf::from(file));
                }
            }
        }
        let wasm = match built.as_slice() {
            [one] => one.clone(),
            [] => bail!("cargo built no .wasm component (is the crate a cdylib?)"),
            several => several
                .iter()
                .find(|f| {
                    f.file_name()
                        .is_some_and(|n| n.to_string_lossy() == self.component)
                })
                .cloned()
                .with_context(|| {
                    format!(
                        "cargo built several components ({}); none is {}",
                        names(several),
                        self.component
                    )
                })?,
        };
        copy_atomically(&wasm, &self.dir.join(&self.component))
    }

    /// The component, then the manifest, each renamed into place: the host
    /// never reads half a file, and the manifest it rescans names a
    /// component already there.
    fn install(&self, plugins_dir: &Path) -> anyhow::Result<()> {
        copy_atomically(
            &self.dir.join(&self.component),
            &plugins_dir.join(&self.component),
        )?;
        let name = self.manifest.file_name().context("a manifest has a file name")?;
        copy_atomically(&self.manifest, &plugins_dir.join(name))
    }
}

/// The fixture alerts: `--alert`, else `alert.json`, else `alerts/*.json`.
fn fixtures(dir: &Path, given: Option<&Path>) -> anyhow::Result<Vec<PathBuf>> {
    if let Some(path) = given {
        return Ok(vec![path.to_owned()]);
    }
    if dir.join("alert.json").is_file() {
        return Ok(vec![dir.join("alert.json")]);
    }
    let folder = dir.join("alerts");
    let mut found: Vec<PathBuf> = std::fs::read_dir(&folder)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    found.sort();
    if found.is_empty() {
        bail!(
            "no alerts to test with: put one in {}/alert.json, some in {}/*.json, or pass --alert",
            dir.display(),
            folder.display()
        );
    }
    Ok(found)
}

fn copy_atomically(from: &Path, to: &Path) -> anyhow::Result<()> {
    if from == to {
        return Ok(());
    }
    let mut tmp = to.as_os_str().to_owned();
    tmp.push(format!(".tmp-{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    std::fs::copy(from, &tmp)
        .and_then(|_| std::fs::rename(&tmp, to))
        .with_context(|| format!("cannot copy {} to {}", from.display(), to.display()))
        .inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })
}

/// Asks the host to rescan its plugins directory now, rather than wait for
/// its watcher; returns what it said.
async fn reload(host: &str) -> anyhow::Result<String> {
    let url = format!("{}/plugins/reload", host.trim_end_matches('/'));
    // The operator token as every command finds it (a list sends its
    // first, or `..._FILE`); a reload answers once the compiles it
    // started end, so it is given longer than other commands.
    let request = Remote::at(host)
        .request(reqwest::Method::POST, "/plugins/reload", Scope::Operator)?
        .timeout(Duration::from_secs(120));
    let response = request
        .send()
        .await
        .with_context(|| format!("cannot reach {url}"))?;
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    if !status.is_success() {
        bail!("{url} answered {status}: {body}");
    }
    Ok(format!("host reloaded: {body}"))
}

/// The project's source files and when each last changed: what a build
/// depends on, without the build's own output.
fn sources(dir: &Path) -> Vec<(PathBuf, SystemTime, u64)> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(at) = pending.pop() {
        for entry in std::fs::read_dir(&at).into_iter().flatten().flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                if !NOT_SOURCES.contains(&name.as_str()) {
                    pending.push(path);
                }
            } else if is_source(&name) {
                files.push((
                    path,
                    meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                    meta.len(),
                ));
            }
        }
    }
    files.sort();
    files
}

/// Not a build output, a lock file the build writes, or an editor's scratch file.
fn is_source(name: &str) -> bool {
    !(name.ends_with(".wasm")
        || name == "Cargo.lock"
        || name == "package-lock.json"
        || name.contains(".wasm.tmp")
        || name.contains(".tmp-")
        || name.ends_with('~')
        || name.ends_with(".swp")
        || name.starts_with(".#"))
}

fn names(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.file_name().unwrap_or_default().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_output_and_editor_files_are_not_sources() {
        for name in [
            "app.wasm",
            "Cargo.lock",
            "package-lock.json",
            "app.wasm.tmp",
            "x.toml.tmp-12",
            "lib.rs~",
            ".lib.rs.swp",
            ".#app.py",
        ] {
            assert!(!is_source(name), "{name}");
        }
        for name in ["app.py", "lib.rs", "alert.json", "plugin.toml", "build.sh"] {
            assert!(is_source(name), "{name}");
        }
    }

    #[test]
    fn only_a_change_to_a_source_changes_the_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("app.py"), "a").unwrap();
        std::fs::create_dir(dir.path().join("node_modules")).unwrap();
        let before = sources(dir.path());
        std::fs::write(dir.path().join("app.wasm"), "built").unwrap();
        std::fs::write(dir.path().join("node_modules/x.js"), "tool").unwrap();
        assert_eq!(sources(dir.path()), before);
        std::fs::write(dir.path().join("app.py"), "ab").unwrap();
        assert_ne!(sources(dir.path()), before);
    }

    #[test]
    fn fixtures_are_alert_json_else_the_alerts_folder_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let missing = fixtures(dir.path(), None).unwrap_err().to_string();
        assert!(missing.contains("no alerts to test with"), "{missing}");
        std::fs::create_dir(dir.path().join("alerts")).unwrap();
        for name in ["b.json", "a.json", "notes.txt"] {
            std::fs::write(dir.path().join("alerts").join(name), "{}").unwrap();
        }
        let found = fixtures(dir.path(), None).unwrap();
        assert_eq!(names(&found), "a.json, b.json");
        std::fs::write(dir.path().join("alert.json"), "{}").unwrap();
        assert_eq!(names(&fixtures(dir.path(), None).unwrap()), "alert.json");
    }
}
