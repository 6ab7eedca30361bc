//! Running a plugin from the command line, for `plugin check`, `plugin
//! test` and `plugin dev`: the host settings and compile cache a run uses,
//! loading with a word on stderr about the cache, and a test run with its
//! printed report.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;

use autoheal::config::Config;
use autoheal::plugin_trial::{
    ContainerSeed, TestReport, TrialReads, load_plugin, parse_alerts, run_with, seeded_runtime, trial_state,
};
use autoheal::recorded::{Answers, trial_reads};
use autoheal_api::alert::Decision;
use autoheal_sandbox::capability::MAX_CALLS_PER_INVOCATION;
use autoheal_sandbox::registry::Plugin;
use autoheal_sandbox::{CacheLocation, PluginRuntime};

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
        match &component.incremental {
            Some(stats) => eprintln!("component {hash} compiled in {took:.2} s ({stats})"),
            None => eprintln!("component {hash} compiled in {took:.2} s"),
        }
    }
    Ok(plugin)
}

/// How `plugin test` runs a plugin, besides the plugin and its alerts.
#[derive(Default)]
pub(crate) struct TestOptions<'a> {
    /// `--containers`: container states (they win over the answers file's).
    pub containers: Option<&'a Path>,
    /// `--state`: the state to start from.
    pub state: Option<&'a Path>,
    /// `--answers`: recorded HTTP and PromQL answers and container states.
    pub answers: Option<&'a Path>,
    /// `--live-reads`: reads the answers do not cover go to the real services.
    pub live_reads: bool,
    /// `--json`.
    pub json: bool,
}

/// Runs the plugin at `path` on the alerts of every file in `alert_files`
/// and prints the reports; true when every run returned `ok`.
pub(crate) async fn test(
    runtime: &PluginRuntime,
    path: &Path,
    alert_files: &[PathBuf],
    options: &TestOptions<'_>,
    config: &Config,
) -> anyhow::Result<bool> {
    // Before the plugin loads (a compile can take a while): a bad file is
    // said at once.
    let mut answers = match options.answers {
        Some(file) => Answers::read(file).map_err(|e| anyhow::anyhow!("--answers {e}"))?,
        None => Answers::none(),
    };
    let plugin = load_reporting_cache(runtime, path, config)?;
    // One copy of the state for every alert: what one run sets, the next reads.
    let state =
        trial_state(&plugin.manifest.name, options.state).map_err(|e| anyhow::anyhow!("--state: {e}"))?;
    let mut alerts = Vec::new();
    for alert in alert_files {
        let text =
            std::fs::read_to_string(alert).with_context(|| format!("cannot read {}", alert.display()))?;
        alerts.extend(parse_alerts(&text).map_err(|e| anyhow::anyhow!("{}: {e}", alert.display()))?);
    }
    let seeds: Option<Vec<ContainerSeed>> = match options.containers {
        Some(path) => {
            let text =
                std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
            Some(
                serde_json::from_str(&text)
                    .with_context(|| format!("{}: not a list of containers", path.display()))?,
            )
        }
        None => answers.containers.take(),
    };
    let fake = seeded_runtime(seeds, &plugin.manifest);
    // Reads: the real services only with --live-reads (and then only for
    // what the answers do not cover); else the answers, and nothing else.
    let live = options.live_reads.then(|| TrialReads::live(config));
    let answers = Arc::new(answers);
    let mut reports = Vec::new();
    for alert in alerts {
        let reads = match (&live, options.answers) {
            (Some(live), None) => live.clone(),
            (live, _) => trial_reads(answers.clone(), live.as_ref()),
        };
        reports.push(
            run_with(
                runtime,
                &plugin,
                alert,
                fake.clone(),
                config,
                state.clone(),
                reads,
            )
            .await,
        );
    }
    if options.json {
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
        let took = call
            .duration_ms
            .map(|ms| format!(" ({ms} ms)"))
            .unwrap_or_default();
        println!(
            "{label:<9} {} {} → {}{detail}{took}",
            call.capability.as_str(),
            call.target,
            call.outcome.as_str()
        );
    }
    for (i, read) in r.unanswered.iter().enumerate() {
        let label = if i == 0 { "no answer" } else { "" };
        println!("{label:<9} {read}");
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
    if let Some(state) = &r.state {
        if state.is_empty() {
            println!("state     (empty)");
        }
        for (key, value) in state {
            println!("state     {key} = {value:?}");
        }
    }
    println!("duration  {:.2} ms\n", r.duration_ms);
}
