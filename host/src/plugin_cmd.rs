//! `autoheal plugin ...`: check, test and create plugins (`plugin dev`,
//! the watch loop, is `plugin_dev`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};

use autoheal::config::Config;
use autoheal::plugin_trial::{ContainerSeed, TestReport, load_plugin, parse_alerts, run, seeded_runtime};
use autoheal_api::alert::Decision;
use autoheal_sandbox::capability::MAX_CALLS_PER_INVOCATION;
use autoheal_sandbox::registry::Plugin;
use autoheal_sandbox::{CacheLocation, PluginRuntime};

#[derive(clap::Subcommand)]
pub enum PluginCommand {
    /// Run a plugin against an alert in the server's sandbox, always in
    /// dry-run against a recording container runtime, and print what it did.
    /// Exits non-zero when the plugin fails.
    Test {
        /// The manifest (NAME.toml), or the component beside its manifest.
        path: PathBuf,
        /// An alert, a list of alerts, or a whole Alertmanager webhook (JSON).
        #[arg(long)]
        alert: PathBuf,
        /// Container states for `inspect` (JSON list of {name, state, uptime_sec
        /// or started_at, health, restart_count}). Default: every container the
        /// manifest allows, running for an hour.
        #[arg(long)]
        containers: Option<PathBuf>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// The host's config file (as for `serve`): its sandbox bounds and
        /// cooldowns apply. The environment overrides it, as for `serve`.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Where compiled components are cached (key: `DIR.key` beside it).
        /// Default: the config's `cache_dir` when a config is given, else
        /// `$XDG_CACHE_HOME/autoheal/components` (`~/.cache/...`).
        #[arg(long)]
        cache_dir: Option<PathBuf>,
    },
    /// Validate a manifest and its component without running it.
    Check {
        /// The manifest (NAME.toml), or the component beside its manifest.
        path: PathBuf,
        /// The host's config file (as for `serve`): the manifest is checked
        /// against its sandbox bounds. The environment overrides it.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Where compiled components are cached, as for `plugin test`.
        #[arg(long)]
        cache_dir: Option<PathBuf>,
    },
    /// Rebuild a plugin project on every change to its sources, run its
    /// fixture alerts through `plugin test`, and optionally install it into
    /// a host. Ctrl-C ends it.
    Dev(crate::plugin_dev::DevArgs),
    /// Create a new plugin project that builds with one command and passes `plugin test`.
    New {
        /// Plugin name (letters, digits, - and _).
        name: String,
        /// Parent directory of the new project.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// What to write it in: a Rust crate, or a Python or JavaScript
        /// project with the SDK inside and a `build.sh`.
        #[arg(long, value_enum, default_value_t = Lang::Rust)]
        lang: Lang,
        /// The autoheal Rust SDK (the repository's sdk/ directory), for `--lang rust`.
        #[arg(long)]
        sdk: Option<PathBuf>,
    },
}

pub async fn run_command(command: PluginCommand) -> anyhow::Result<bool> {
    match command {
        PluginCommand::Test {
            path,
            alert,
            containers,
            json,
            config,
            cache_dir,
        } => {
            let host = HostSettings::load(config.as_deref(), cache_dir.as_deref())?;
            let runtime = host.runtime()?;
            test(
                &runtime,
                &path,
                &[alert],
                containers.as_deref(),
                json,
                &host.config,
            )
            .await
        }
        PluginCommand::Check {
            path,
            config,
            cache_dir,
        } => {
            let host = HostSettings::load(config.as_deref(), cache_dir.as_deref())?;
            check(&host.runtime()?, &path, &host.config).map(|()| true)
        }
        PluginCommand::Dev(args) => crate::plugin_dev::run(args).await,
        PluginCommand::New { name, dir, lang, sdk } => match lang {
            Lang::Rust => new(&name, &dir, sdk.as_deref()).map(|()| true),
            Lang::Python | Lang::Js => new_scripted(&name, &dir, lang).map(|()| true),
        },
    }
}

/// The host config and compile cache a CLI run of a plugin uses.
pub(crate) struct HostSettings {
    pub config: Config,
    pub cache: Option<CacheLocation>,
}

impl HostSettings {
    /// The config `serve` would run with (file, then environment), so that
    /// a plugin is checked and tested against the same bounds it will be
    /// loaded with; and where its compiled component is cached.
    pub fn load(config_file: Option<&Path>, cache_dir: Option<&Path>) -> anyhow::Result<Self> {
        let config = crate::config_with(config_file, [])?;
        let cache =
            crate::plugin_cache::location(cache_dir, config_file, &config, |var| std::env::var_os(var));
        Ok(Self { config, cache })
    }

    pub fn runtime(&self) -> anyhow::Result<PluginRuntime> {
        PluginRuntime::new(&self.config.sandbox, self.cache.as_ref()).map_err(|e| anyhow::anyhow!("{e:#}"))
    }
}

/// Loads the plugin and says on stderr whether its component came from the
/// compile cache or was compiled (and how long that took): the author sees
/// why a run was slow, and stdout stays the report.
pub(crate) fn load_reporting_cache(
    runtime: &PluginRuntime,
    path: &Path,
    config: &Config,
) -> anyhow::Result<Arc<Plugin>> {
    let started = Instant::now();
    let plugin = load_plugin(runtime, path, config.manifest_bounds())?;
    let took = started.elapsed().as_secs_f64();
    let component = &plugin.component;
    let hash = component.hash.get(..12).unwrap_or(&component.hash);
    if component.from_cache {
        eprintln!("component {hash} loaded from the compile cache in {took:.2} s");
    } else {
        if let Some(why) = &component.cache_rejected {
            eprintln!("compile cache entry refused: {why}");
        }
        eprintln!("component {hash} compiled in {took:.2} s");
    }
    Ok(plugin)
}

fn check(runtime: &PluginRuntime, path: &Path, config: &Config) -> anyhow::Result<()> {
    let plugin = load_reporting_cache(runtime, path, config)?;
    let m = &plugin.manifest;
    println!("ok: {} {} ({})", m.name, m.version, plugin.manifest_file);
    println!(
        "  component   {} implements autoheal:plugin/action@0.1.0",
        m.component
    );
    println!("  sha256      {}", plugin.component.hash);
    println!("  language    {}", m.language.as_str());
    println!("  alertnames  {}", list(&m.matcher.alertnames));
    if !m.matcher.labels.is_empty() {
        println!("  labels      {:?}", m.matcher.labels);
    }
    println!("  containers  {}", list(&m.containers));
    let cooldown = m.cooldown.map(|c| humantime::format_duration(c).to_string());
    println!(
        "  limits      timeout {:?}, memory {} MiB, stop timeout {:?}, cooldown {}",
        m.timeout,
        m.memory_bytes >> 20,
        m.stop_timeout,
        cooldown.as_deref().unwrap_or("host default")
    );
    Ok(())
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "(none)".into()
    } else {
        items.join(", ")
    }
}

/// Runs the plugin at `path` on the alerts of every file in `alert_files`
/// and prints the reports; true when every run returned `ok`.
pub(crate) async fn test(
    runtime: &PluginRuntime,
    path: &Path,
    alert_files: &[PathBuf],
    containers: Option<&Path>,
    json: bool,
    config: &Config,
) -> anyhow::Result<bool> {
    let plugin = load_reporting_cache(runtime, path, config)?;
    let mut alerts = Vec::new();
    for alert in alert_files {
        let text =
            std::fs::read_to_string(alert).with_context(|| format!("cannot read {}", alert.display()))?;
        alerts.extend(parse_alerts(&text).map_err(|e| anyhow::anyhow!("{}: {e}", alert.display()))?);
    }
    let seeds: Option<Vec<ContainerSeed>> = match containers {
        Some(path) => {
            let text =
                std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
            Some(
                serde_json::from_str(&text)
                    .with_context(|| format!("{}: not a list of containers", path.display()))?,
            )
        }
        None => None,
    };
    let fake = seeded_runtime(seeds, &plugin.manifest);
    let mut reports = Vec::new();
    for alert in alerts {
        reports.push(run(runtime, &plugin, alert, fake.clone(), config).await);
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&reports)?);
    } else {
        for report in &reports {
            print_report(report);
        }
    }
    Ok(reports.iter().all(|r| r.ok))
}

fn print_report(r: &TestReport) {
    println!("plugin    {} {}  (dry-run)", r.plugin, r.version);
    println!("alert     {} ({:?})", r.alertname, r.status);
    match r.decision {
        Decision::Act | Decision::Approval => {
            println!(
                "decision  {}: the engine would run this plugin",
                r.decision.as_str()
            )
        }
        _ => println!(
            "decision  skip ({}): {}  [the plugin ran anyway for this test]",
            r.skip_reason.map(|s| s.as_str()).unwrap_or_default(),
            r.skip_detail.as_deref().unwrap_or("")
        ),
    }
    if r.calls.is_empty() {
        println!("calls     (none)");
    }
    for (i, call) in r.calls.iter().enumerate() {
        let label = if i == 0 { "calls" } else { "" };
        let detail = call
            .detail
            .as_deref()
            .map(|d| format!(" — {d}"))
            .unwrap_or_default();
        println!(
            "{label:<9} {} {} → {}{detail}",
            call.capability.as_str(),
            call.target,
            call.outcome.as_str()
        );
    }
    if r.calls_over_budget > 0 {
        println!(
            "          … and {} more call(s) refused: the budget of {MAX_CALLS_PER_INVOCATION} calls per invocation was used up",
            r.calls_over_budget
        );
    }
    for line in &r.logs {
        println!("log       [{}] {}", line.level, line.message);
    }
    for (name, text) in [("stdout", &r.stdout), ("stderr", &r.stderr)] {
        if !text.is_empty() {
            println!("{name}    {}", text.trim_end().replace('\n', "\n          "));
        }
    }
    match (&r.output, &r.error) {
        (Some(output), _) if r.skipped => println!("result    skipped: {output}"),
        (Some(output), _) => println!("result    ok: {output}"),
        (_, Some(error)) => println!(
            "result    FAILED ({}): {error}",
            r.reason.as_deref().unwrap_or("")
        ),
        _ => {}
    }
    println!("duration  {:.2} ms\n", r.duration_ms);
}

const CARGO_TOML: &str = include_str!("../templates/plugin/Cargo.toml.tmpl");
const LIB_RS: &str = include_str!("../templates/plugin/lib.rs.tmpl");
const MANIFEST: &str = include_str!("../templates/plugin/manifest.toml.tmpl");
const ALERT: &str = include_str!("../templates/plugin/alert.json");
const README: &str = include_str!("../templates/plugin/README.md.tmpl");

/// What `plugin new` writes a plugin in.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    /// A Rust crate on the autoheal SDK.
    Rust,
    /// Python, built with componentize-py.
    Python,
    /// JavaScript (or TypeScript), built with esbuild and componentize-js.
    Js,
}

/// The WIT the Python and JavaScript projects are built against.
const WIT: &str = include_str!("../../wit/plugin.wit");

/// pytest finds `app` and the SDK in `src/`, and the tests in `tests/`.
const PYTEST_INI: &str = "[pytest]\npythonpath = src\ntestpaths = tests\n";

/// The build tools' pins, and the SDK in `sdk/` linked as "autoheal-sdk"
/// by `npm install` (so that plain `node --test` finds it).
const JS_PACKAGE: &str = include_str!("../../sdk/js/tools/package.json");

/// The files of a Python or JavaScript project: (path, text, executable).
fn scripted_files(lang: Lang) -> Vec<(&'static str, &'static str, bool)> {
    let common = [("wit/plugin.wit", WIT, false), ("alert.json", ALERT, false)];
    let own: &[(&str, &str, bool)] = match lang {
        Lang::Python => &[
            (
                "src/app.py",
                include_str!("../templates/plugin-python/app.py.tmpl"),
                false,
            ),
            (
                "src/autoheal_sdk/__init__.py",
                include_str!("../../sdk/python/autoheal_sdk/__init__.py"),
                false,
            ),
            (
                "src/autoheal_sdk/_preload.py",
                include_str!("../../sdk/python/autoheal_sdk/_preload.py"),
                false,
            ),
            (
                "src/autoheal_sdk/testing.py",
                include_str!("../../sdk/python/autoheal_sdk/testing.py"),
                false,
            ),
            (
                "tests/test_app.py",
                include_str!("../templates/plugin-python/test_app.py.tmpl"),
                false,
            ),
            ("pytest.ini", PYTEST_INI, false),
            (
                "requirements.txt",
                include_str!("../../sdk/python/requirements.txt"),
                false,
            ),
            (
                "build.sh",
                include_str!("../templates/plugin-python/build.sh.tmpl"),
                true,
            ),
            (
                "README.md",
                include_str!("../templates/plugin-python/README.md.tmpl"),
                false,
            ),
            (".gitignore", ".venv/\n__pycache__/\n*.wasm\n*.wasm.tmp\n", false),
        ],
        Lang::Js => &[
            (
                "app.js",
                include_str!("../templates/plugin-js/app.js.tmpl"),
                false,
            ),
            (
                "sdk/autoheal-sdk.js",
                include_str!("../../sdk/js/autoheal-sdk.js"),
                false,
            ),
            ("sdk/core.js", include_str!("../../sdk/js/core.js"), false),
            ("sdk/testing.js", include_str!("../../sdk/js/testing.js"), false),
            (
                "sdk/package.json",
                include_str!("../../sdk/js/package.json"),
                false,
            ),
            (
                "test/app.test.js",
                include_str!("../templates/plugin-js/app.test.js.tmpl"),
                false,
            ),
            (
                "sdk/autoheal-sdk.d.ts",
                include_str!("../../sdk/js/autoheal-sdk.d.ts"),
                false,
            ),
            (
                "sdk/testing.d.ts",
                include_str!("../../sdk/js/testing.d.ts"),
                false,
            ),
            ("build.mjs", include_str!("../../sdk/js/tools/build.mjs"), false),
            ("package.json", JS_PACKAGE, false),
            (
                "build.sh",
                include_str!("../templates/plugin-js/build.sh.tmpl"),
                true,
            ),
            (
                "README.md",
                include_str!("../templates/plugin-js/README.md.tmpl"),
                false,
            ),
            (".gitignore", "node_modules/\n*.wasm\n*.wasm.tmp\n", false),
        ],
        Lang::Rust => &[],
    };
    common.into_iter().chain(own.iter().copied()).collect()
}

/// `plugin new --lang python|js`: a project whose `./build.sh` installs its
/// pinned tools the first time and builds the component.
fn new_scripted(name: &str, parent: &Path, lang: Lang) -> anyhow::Result<()> {
    check_plugin_name(name)?;
    let root = parent.join(name);
    if root.exists() {
        bail!("{} already exists", root.display());
    }
    let crate_name = name.replace('-', "_");
    let language = if lang == Lang::Python {
        "python"
    } else {
        "javascript"
    };
    let fill = |template: &str| {
        template
            .replace("{{name}}", name)
            .replace("{{crate}}", &crate_name)
            .replace(
                "\"dependencies\": {\n",
                "\"dependencies\": {\n    \"autoheal-sdk\": \"file:sdk\",\n",
            )
    };
    let manifest = fill(MANIFEST)
        .replace("component =", &format!("language = {language:?}\ncomponent ="))
        .replace("memory_mb = 16\n", "")
        .replace(
            "container = \"example\"\n",
            "container = \"example\"\nmin_uptime_sec = \"60\"\n",
        );
    let mut files: Vec<(String, String, bool)> = scripted_files(lang)
        .into_iter()
        .map(|(path, text, exec)| (path.to_owned(), fill(text), exec))
        .collect();
    files.push((format!("{name}.toml"), manifest, false));
    for (path, text, executable) in files {
        let path = root.join(path);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
        if executable {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
                .with_context(|| format!("cannot make {} executable", path.display()))?;
        }
    }
    println!("created plugin {name} ({language}) in {}", root.display());
    println!("next:\n  cd {}\n  ./build.sh", root.display());
    println!("  autoheal plugin test {name}.toml --alert alert.json");
    let unit = if lang == Lang::Python {
        "pytest"
    } else {
        "node --test"
    };
    println!("  {unit}   (the unit tests, the host faked)");
    Ok(())
}

fn check_plugin_name(name: &str) -> anyhow::Result<()> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        bail!("{name:?}: a plugin name uses only letters, digits, '-' and '_'");
    }
    Ok(())
}

fn new(name: &str, parent: &Path, sdk: Option<&Path>) -> anyhow::Result<()> {
    check_plugin_name(name)?;
    let sdk = match sdk {
        Some(path) => path.to_owned(),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../sdk"),
    };
    let sdk = sdk
        .canonicalize()
        .with_context(|| format!("the autoheal SDK is not at {}; pass --sdk PATH", sdk.display()))?;
    let root = parent.join(name);
    if root.exists() {
        bail!("{} already exists", root.display());
    }
    let crate_name = name.replace('-', "_");
    let fill = |template: &str| {
        template
            .replace("{{name}}", name)
            .replace("{{crate}}", &crate_name)
            .replace("{{sdk}}", &sdk.display().to_string())
    };
    std::fs::create_dir_all(root.join("src")).with_context(|| format!("cannot create {}", root.display()))?;
    let files = [
        ("Cargo.toml", fill(CARGO_TOML)),
        ("src/lib.rs", fill(LIB_RS)),
        (&format!("{name}.toml") as &str, fill(MANIFEST)),
        ("alert.json", ALERT.to_owned()),
        ("README.md", fill(README)),
    ];
    for (file, text) in files {
        std::fs::write(root.join(file), text).with_context(|| format!("cannot write {file}"))?;
    }
    println!("created plugin {name} in {}", root.display());
    println!(
        "next:\n  cd {}\n  cargo build --release --target wasm32-wasip2",
        root.display()
    );
    println!("  cp target/wasm32-wasip2/release/{crate_name}.wasm .");
    println!("  autoheal plugin test {name}.toml --alert alert.json");
    Ok(())
}
