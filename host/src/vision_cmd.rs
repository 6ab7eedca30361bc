//! `autoheal vision`: the operations view on the command line.

use std::path::PathBuf;
use std::process::ExitCode;

use autoheal_vision::{Sources, collect, parse_trend_range, render_text};

#[derive(clap::Args)]
pub struct VisionArgs {
    /// TOML config file: `prometheus_url` and `alertmanager_url` are read
    /// from it (then from PROMETHEUS_URL and ALERTMANAGER_URL, then flags).
    /// Without it, what the environment and flags leave unset is asked of
    /// the host (`GET /` at --url).
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Prometheus [default: the host's `prometheus_url`; if the host does
    /// not answer, http://127.0.0.1:9090]
    #[arg(long)]
    prometheus_url: Option<String>,
    /// Alertmanager, or the members of its HA cluster, comma-separated
    /// [default: the host's `alertmanager_urls`; if the host does not
    /// answer, http://127.0.0.1:9093]
    #[arg(long)]
    alertmanager_url: Option<String>,
    /// The host asked for the URLs it is configured with.
    #[command(flatten)]
    remote: crate::ops_cmd::Remote,
    /// Span of the runway trend in the --json report, from 1m to 7d.
    #[arg(long, default_value = "6h", value_parser = parse_trend_range)]
    range: std::time::Duration,
    /// Print the report as JSON (the body of GET /vision).
    #[arg(long)]
    json: bool,
}

pub async fn run(args: VisionArgs) -> anyhow::Result<ExitCode> {
    let (mut prometheus, mut alertmanager) = (args.prometheus_url.clone(), args.alertmanager_url.clone());
    // Given by a flag, the variable or the config file, a URL is not asked
    // for; the rest are the host's, so that this command reads what the
    // host's `GET /vision` reads.
    let unset = |flag: &Option<String>, var: &str| {
        flag.is_none() && args.config.is_none() && std::env::var_os(var).is_none()
    };
    let (ask_prometheus, ask_alertmanager) = (
        unset(&prometheus, "PROMETHEUS_URL"),
        unset(&alertmanager, "ALERTMANAGER_URL"),
    );
    if ask_prometheus || ask_alertmanager {
        let host = crate::ops_cmd::host_urls_or_defaults(&args.remote).await;
        if ask_prometheus {
            prometheus = Some(host.prometheus);
        }
        if ask_alertmanager {
            alertmanager = Some(host.alertmanager.join(","));
        }
    }
    let config = crate::config_with(
        args.config.as_deref(),
        [("prometheus_url", prometheus), ("alertmanager_url", alertmanager)],
    )?;
    let client = reqwest::Client::new();
    let sources = Sources {
        client: &client,
        prometheus_url: &config.prometheus_url,
        alertmanager: &config.alertmanager,
        // The text does not show the trend: do not ask for it.
        trend_range: args.json.then_some(args.range),
    };
    // autoheal's state as Prometheus scraped it: this command does not need
    // the host to be running.
    let report = collect(&sources, None).await;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render_text(&report));
    }
    Ok(if report.prometheus.source.reachable {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
