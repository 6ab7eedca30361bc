//! The `autoheal` command line.

mod approval_cmd;
mod cluster_text;
mod event_line;
mod login_cmd;
mod ops_cmd;
mod pause_cmd;
mod plugin_cache;
mod plugin_cmd;
mod plugin_dev;
mod plugin_run;
mod vision_cmd;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};

use autoheal::config::{Config, ENV_VARS, EngineSetting, RawConfig};

// The webhook paths make many small allocations on both cores; mimalloc
// spends less on them than glibc's malloc (BENCHMARKS.md, webhook paths).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use autoheal_containers::{ContainerRuntime, DockerRuntime, NoEngine, discover};
use autoheal_core::event::{EventBody, HostWarning, Warning};

/// How long shutdown waits for actions in flight.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Parser)]
#[command(name = "autoheal", version, about = "Auto-remediation host for Prometheus Alertmanager: sandboxed WebAssembly plugins act on alerts", after_help = env_help())]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the webhook, audit and status endpoints.
    #[command(after_help = env_help())]
    Serve(ServeArgs),
    /// Check, test and create plugins.
    #[command(subcommand)]
    Plugin(plugin_cmd::PluginCommand),
    /// Print the operations view: SLO runway, firing alerts, probes and
    /// autoheal's state, read from Prometheus and Alertmanager. Exits 1 when
    /// Prometheus cannot be read.
    #[command(after_help = env_help())]
    Vision(vision_cmd::VisionArgs),
    /// Show a running host's state (`GET /`): mode, plugins, engine, breaker,
    /// cooldowns. Exits 3 while the host is still loading its plugins.
    Status(ops_cmd::StatusArgs),
    /// Turn the kill switch off: actions may run (operator token).
    Enable(ops_cmd::SwitchArgs),
    /// Turn the kill switch on: no action runs (operator token).
    Disable(ops_cmd::SwitchArgs),
    /// Record what would be done (`on`) or act for real (`off`) (operator token).
    DryRun(ops_cmd::DryRunArgs),
    /// Print the audit trail of a running host (or of a trail file), one line
    /// per event; `--follow` keeps printing new ones.
    Audit(ops_cmd::AuditArgs),
    /// Silence alerts in Alertmanager through the host (operator token).
    Ack(ops_cmd::AckArgs),
    /// List the actions that wait for an operator's approval, with their previews.
    Approvals(approval_cmd::ListArgs),
    /// Approve a waiting action: it runs for real, under every gate (operator token).
    Approve(approval_cmd::AnswerArgs),
    /// Deny a waiting action: it does not run (operator token).
    Deny(approval_cmd::AnswerArgs),
    /// Pause remediation for a plugin, matching alerts, or everything, for a while, saying why (operator token).
    Pause(pause_cmd::PauseArgs),
    /// List the active pauses: id, end, scope, who, why.
    Pauses(pause_cmd::ListArgs),
    /// End a pause now (on a replica, on every replica) (operator token).
    Resume(pause_cmd::ResumeArgs),
    /// Keep a personal token the console issued (read from standard input)
    /// for `--url`: the operator's commands then act as you.
    Login(login_cmd::LoginArgs),
    /// Check a running deployment end to end: health, console, webhook, event
    /// stream, audit filters, metrics, Alertmanager. Exits 1 if a check fails.
    Smoke(ops_cmd::SmokeArgs),
    /// List the silences autoheal made in Alertmanager, with their expiry.
    Silences(ops_cmd::SilencesArgs),
    /// Write a man page for each command into DIR.
    Man {
        /// Where to write `autoheal.1`, `autoheal-status.1`, ...
        dir: PathBuf,
    },
    /// Print a shell completion script: `autoheal completions bash > /etc/bash_completion.d/autoheal`.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
}

#[derive(clap::Args)]
struct ServeArgs {
    /// TOML config file (unknown keys are errors). Precedence: flags, then
    /// environment variables, then this file, then built-in defaults.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:9009]
    #[arg(long)]
    listen: Option<String>,
    /// Directory of plugin manifests and components [default: plugins.d]
    #[arg(long)]
    plugins_dir: Option<PathBuf>,
    /// The JSONL audit trail [default: data/audit.jsonl]
    #[arg(long)]
    audit_path: Option<PathBuf>,
    /// Directory for precompiled plugins [default: data/cache]
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    /// etcd client URLs, comma-separated: run as one replica of a cluster
    /// (`[cluster] etcd`)
    #[arg(long)]
    cluster: Option<String>,
    /// This replica's name [default: HOSTNAME:PORT]
    #[arg(long)]
    replica: Option<String>,
}

fn env_help() -> String {
    let mut text = String::from("Environment variables (override the config file):\n");
    for (var, key) in ENV_VARS {
        text.push_str(&format!("  {var:<32} sets `{key}`\n"));
    }
    text.push_str("\nSafe defaults: enabled=false, dry_run=true. Actions run for real only when\nAUTOHEAL_ENABLED=true and AUTOHEAL_DRY_RUN=false.");
    text
}

fn main() -> std::process::ExitCode {
    // The host runs this binary again to compile a component within limits
    // (autoheal_sandbox's `compiler`); that child does nothing else.
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some(autoheal_sandbox::COMPILER_COMMAND) {
        let code = autoheal_sandbox::compiler_main(&args[1..]);
        return std::process::ExitCode::from(u8::try_from(code).unwrap_or(1));
    }
    match run() {
        Ok(code) => code,
        Err(e) => {
            // The message chain, without a backtrace: these are errors for people.
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<std::process::ExitCode> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("AUTOHEAL_LOG").unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal: a log file, journald
        // or a pipe gets plain text (NO_COLOR also turns them off).
        .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none())
        .init();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    match cli.command {
        Command::Serve(args) => runtime
            .block_on(serve(args))
            .map(|()| std::process::ExitCode::SUCCESS),
        Command::Plugin(command) => Ok(match runtime.block_on(plugin_cmd::run_command(command))? {
            true => std::process::ExitCode::SUCCESS,
            // The plugin failed; the report says how.
            false => std::process::ExitCode::from(1),
        }),
        Command::Vision(args) => runtime.block_on(vision_cmd::run(args)),
        Command::Status(args) => runtime.block_on(ops_cmd::status(args)),
        Command::Enable(args) => runtime.block_on(ops_cmd::set_enabled(args, true)),
        Command::Disable(args) => runtime.block_on(ops_cmd::set_enabled(args, false)),
        Command::DryRun(args) => runtime.block_on(ops_cmd::set_dry_run(args)),
        Command::Audit(args) => runtime.block_on(ops_cmd::audit(args)),
        Command::Ack(args) => runtime.block_on(ops_cmd::ack(args)),
        Command::Approvals(args) => runtime.block_on(approval_cmd::list(args)),
        Command::Approve(args) => runtime.block_on(approval_cmd::answer(args, true)),
        Command::Deny(args) => runtime.block_on(approval_cmd::answer(args, false)),
        Command::Pause(args) => runtime.block_on(pause_cmd::pause(args)),
        Command::Pauses(args) => runtime.block_on(pause_cmd::list(args)),
        Command::Resume(args) => runtime.block_on(pause_cmd::resume(args)),
        Command::Login(args) => runtime.block_on(login_cmd::login(args)),
        Command::Smoke(args) => runtime.block_on(ops_cmd::smoke(args)),
        Command::Silences(args) => runtime.block_on(ops_cmd::silences(args)),
        Command::Man { dir } => {
            std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
            clap_mangen::generate_to(<Cli as clap::CommandFactory>::command(), &dir)
                .with_context(|| format!("cannot write man pages into {}", dir.display()))?;
            Ok(std::process::ExitCode::SUCCESS)
        }
        Command::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut command, "autoheal", &mut std::io::stdout());
            Ok(std::process::ExitCode::SUCCESS)
        }
    }
}

fn load_config(args: &ServeArgs) -> anyhow::Result<Config> {
    let flags = [
        ("listen", args.listen.clone()),
        (
            "plugins_dir",
            args.plugins_dir.as_ref().map(|p| p.display().to_string()),
        ),
        (
            "audit_path",
            args.audit_path.as_ref().map(|p| p.display().to_string()),
        ),
        (
            "cache_dir",
            args.cache_dir.as_ref().map(|p| p.display().to_string()),
        ),
        ("cluster.etcd", args.cluster.clone()),
        ("cluster.replica", args.replica.clone()),
    ];
    config_with(args.config.as_deref(), flags)
}

/// The config file (if any), then the environment, then `flags` as
/// `(key, value)`, validated.
fn config_with(
    file: Option<&std::path::Path>,
    flags: impl IntoIterator<Item = (&'static str, Option<String>)>,
) -> anyhow::Result<Config> {
    let mut raw = match file {
        Some(path) => RawConfig::from_file(path)?,
        None => RawConfig::default(),
    };
    raw.apply_env(|var| std::env::var(var).ok())?;
    for (key, value) in flags {
        if let Some(value) = value {
            raw.set(key, &value)
                .map_err(|e| anyhow::anyhow!("--{}: {e}", key.replace('_', "-")))?;
        }
    }
    Ok(raw.validate()?)
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let config = load_config(&args)?;
    let listen = config.listen;
    let containers = container_runtime(&config)?;
    // The quick half of the start, then the port: the plugins compile while
    // the host answers (503 to webhooks until they are loaded, see
    // `autoheal::startup`), so a slow first start is not a closed port.
    let opened = autoheal::app::open(config, containers).await?;
    let host = opened.host.clone();
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    tracing::info!(
        address = %listener.local_addr()?,
        audit = %host.audit.path().display(),
        plugins_dir = %host.config.plugins_dir.display(),
        "autoheal listening; loading plugins (POST /alert answers 503 until they are loaded)"
    );
    // Stops the server if loading fails.
    let failed = tokio_util::sync::CancellationToken::new();
    let stop = {
        let (shutdown, failed) = (host.shutdown.clone(), failed.clone());
        async move {
            tokio::select! {
                () = shutdown_signal() => {
                    tracing::info!("stop requested: closing event streams (a second signal stops at once)");
                }
                () = failed.cancelled() => {}
            }
            shutdown.cancel();
            tokio::spawn(async {
                shutdown_signal().await;
                // The audit trail loses at most the unflushed tail; the
                // next start sets any torn line aside.
                eprintln!("second stop signal: exiting now");
                std::process::exit(130);
            });
        }
    };
    let server = tokio::spawn(autoheal::http::serve(listener, host.clone(), stop));
    let loaded = tokio::select! {
        loaded = opened.load_plugins() => Some(loaded),
        // Stopped while loading: what is loaded so far is dropped.
        () = host.shutdown.cancelled() => None,
    };
    let _watch = match loaded {
        Some(Ok(host)) => {
            let (mode, why) = host.switches.mode();
            tracing::info!(
                plugins = host.remediator.plugins().len(),
                rejected = host.remediator.plugins().rejections().len(),
                ?mode,
                dry_run_reason = why.map_or("-", |w| w.as_str()),
                "autoheal serving"
            );
            if host.config.watch_plugins {
                Some(autoheal::reload::watch(host.clone()).context("cannot watch the plugins directory")?)
            } else {
                None
            }
        }
        Some(Err(e)) => {
            failed.cancel();
            let _ = server.await;
            return Err(e.into());
        }
        None => None,
    };
    // Returns once requests in flight are done, or `[http] stop_timeout`.
    let _ = server.await;

    let queued = host.remediator.queued_actions();
    tracing::info!(
        queued,
        "shutting down: waiting for actions in flight; queued ones are decided afresh at the next start"
    );
    host.remediator.close_queue();
    if tokio::time::timeout(DRAIN_TIMEOUT, host.remediator.drain())
        .await
        .is_err()
    {
        tracing::warn!("actions still running after {DRAIN_TIMEOUT:?}; stopping anyway");
    }
    // Everything queued before this event is committed once it is.
    host.audit
        .emit_durable(EventBody::HostWarning(HostWarning::bare(Warning::HostStopping)))
        .await?;
    Ok(())
}

fn container_runtime(config: &Config) -> anyhow::Result<Arc<dyn ContainerRuntime>> {
    let configured = match &config.container_engine {
        EngineSetting::Disabled => {
            return Ok(autoheal::container_engines::runtime(
                Arc::new(NoEngine),
                &config.engines,
                config.engine_timeout,
            ));
        }
        EngineSetting::Discover => None,
        EngineSetting::At(address) => Some(address),
    };
    let address = discover(configured, |var| std::env::var(var).ok(), |path| path.exists())?;
    let default = Arc::new(DockerRuntime::new(address, config.engine_timeout));
    Ok(autoheal::container_engines::runtime(
        default,
        &config.engines,
        config.engine_timeout,
    ))
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("install SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

#[cfg(test)]
mod tests {
    use super::Cli;

    /// `--help`, completions and man pages come from the clap definitions;
    /// this keeps the command-line page (`docs/cli.md`) from forgetting a
    /// command.
    #[test]
    fn the_cli_page_shows_every_command() {
        let page = include_str!("../../docs/cli.md");
        let command = <Cli as clap::CommandFactory>::command();
        for sub in command.get_subcommands() {
            let name = sub.get_name();
            assert!(
                page.contains(&format!("autoheal {name}")),
                "docs/cli.md never shows `autoheal {name}`"
            );
        }
    }
}
