//! `autoheal plugin ...`: check, test and create plugins (`plugin dev`,
//! the watch loop, is `plugin_dev`).

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use autoheal::config::Config;
use autoheal_sandbox::PluginRuntime;

use crate::plugin_run::{HostSettings, TestOptions, load_reporting_cache, test};

#[derive(clap::Subcommand)]
pub enum PluginCommand {
    /// Run a plugin against an alert in the server's sandbox, always in
    /// dry-run against a recording container runtime, its reads answered
    /// from --answers (or, with --live-reads, by the real services), and
    /// print what it did. Exits non-zero when the plugin fails.
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
        /// The plugin's state to start from: a state file as the host keeps
        /// them (`<trail's directory>/state/<plugin>.json`). Default: empty.
        /// The state the run leaves is printed (dry-run writes change only
        /// the trial's copy).
        #[arg(long)]
        state: Option<PathBuf>,
        /// Recorded answers for the plugin's reads (JSON: `http` answers by
        /// method and URL or URL prefix, `prometheus` answers by PromQL,
        /// `containers` as for --containers). Without --live-reads, a read
        /// with no answer here fails and is listed in the report.
        #[arg(long)]
        answers: Option<PathBuf>,
        /// Send the reads the answers do not cover (HTTP GET/HEAD, PromQL) to
        /// the real services: the network, the config's `prometheus_url`.
        /// Effects are never sent either way.
        #[arg(long)]
        live_reads: bool,
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
            state,
            answers,
            live_reads,
            json,
            config,
            cache_dir,
        } => {
            let host = HostSettings::load(config.as_deref(), cache_dir.as_deref())?;
            let runtime = host.runtime()?;
            let options = TestOptions {
                containers: containers.as_deref(),
                state: state.as_deref(),
                answers: answers.as_deref(),
                live_reads,
                json,
            };
            test(&runtime, &path, &[alert], &options, &host.config).await
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

fn check(runtime: &PluginRuntime, path: &Path, config: &Config) -> anyhow::Result<()> {
    let plugin = load_reporting_cache(runtime, path, config)?;
    let m = &plugin.manifest;
    println!("ok: {} {} ({})", m.name, m.version, plugin.manifest_file);
    println!(
        "  component   {} implements autoheal:plugin/action@{}",
        m.component,
        plugin.component.pre.version().as_str()
    );
    println!("  sha256      {}", plugin.component.hash);
    println!("  language    {}", m.language.as_str());
    println!("  alertnames  {}", list(&m.matcher.alertnames));
    if !m.matcher.labels.is_empty() {
        println!("  labels      {:?}", m.matcher.labels);
    }
    println!("  containers  {}", list(&m.containers));
    let grant = &m.container_grant;
    if !grant.signals.is_empty() {
        println!("  signals     {}", list(&grant.signals));
    }
    if let Some(logs) = grant.logs {
        println!(
            "  logs        at most {} lines, {} bytes a read",
            logs.max_lines, logs.max_bytes
        );
    }
    for rule in &grant.exec {
        let extra = match &rule.extra_arg_pattern {
            Some(pattern) => format!(
                " + up to {} args matching {}",
                rule.max_extra_args,
                pattern.as_str()
            ),
            None => String::new(),
        };
        println!(
            "  exec        {:?}{extra} (timeout {:?}, output {} bytes)",
            rule.argv, rule.timeout, rule.max_output_bytes
        );
    }
    if let Some(http) = &m.http_grant {
        for rule in &http.rules {
            println!(
                "  http        {} {}{}",
                rule.method,
                rule.prefix.origin(),
                rule.prefix.target
            );
        }
        for (name, placement) in &http.secrets {
            println!(
                "  secret      {name} in {} (the host's, never the plugin's)",
                placement.header
            );
        }
        println!(
            "              timeout {:?}, request {} bytes, response {} bytes{}",
            http.timeout,
            http.max_request_bytes,
            http.max_response_bytes,
            if http.effects.is_empty() {
                String::new()
            } else {
                format!(", {} as effects", http.effects.join(", "))
            }
        );
    }
    if let Some(prometheus) = &m.prometheus {
        println!(
            "  prometheus  queries: timeout {:?}, at most {} series, {} bytes",
            prometheus.timeout, prometheus.max_series, prometheus.max_bytes
        );
    }
    if let Some(state) = &m.state {
        println!(
            "  state       at most {} keys of {} bytes, kept up to {}",
            state.max_keys,
            state.max_value_bytes,
            humantime::format_duration(state.max_ttl)
        );
    }
    if m.approval_required || m.approvals_required > 1 || !m.approvers.is_empty() {
        let who: Vec<String> = m.approvers.iter().map(ToString::to_string).collect();
        println!(
            "  approval    {}{} of {}, expires after {}",
            m.approvals_required,
            if m.approval_required {
                " required"
            } else {
                " when asked"
            },
            match who.is_empty() {
                true => "anyone with the approver role".to_owned(),
                false => who.join(", "),
            },
            humantime::format_duration(m.approval_expires)
        );
    }
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

/// The WIT the Python and JavaScript projects are built against: the
/// package's files, one per capability beside the world's.
const WIT: &str = include_str!("../../wit/plugin.wit");
const WIT_CONTAINERS: &str = include_str!("../../wit/containers.wit");
const WIT_HTTP: &str = include_str!("../../wit/http.wit");
const WIT_PROMETHEUS: &str = include_str!("../../wit/prometheus.wit");
const WIT_STATE: &str = include_str!("../../wit/state.wit");

/// pytest finds `app` and the SDK in `src/`, and the tests in `tests/`.
const PYTEST_INI: &str = "[pytest]\npythonpath = src\ntestpaths = tests\n";

/// The build tools' pins, and the SDK in `sdk/` linked as "autoheal-sdk"
/// by `npm install` (so that plain `node --test` finds it).
const JS_PACKAGE: &str = include_str!("../../sdk/js/tools/package.json");

/// The files of a Python or JavaScript project: (path, text, executable).
fn scripted_files(lang: Lang) -> Vec<(&'static str, &'static str, bool)> {
    let common = [
        ("wit/plugin.wit", WIT, false),
        ("wit/containers.wit", WIT_CONTAINERS, false),
        ("wit/http.wit", WIT_HTTP, false),
        ("wit/prometheus.wit", WIT_PROMETHEUS, false),
        ("wit/state.wit", WIT_STATE, false),
        ("alert.json", ALERT, false),
    ];
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
