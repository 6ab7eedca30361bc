//! `payment-sim`: serve synthetic CRM payment metrics, and switch a running simulator's mode.

use std::io::IsTerminal as _;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use payment_sim::{Client, DEFAULT_URL, Mode, Settings, Simulator, Status};

#[derive(Debug, Parser)]
#[command(
    name = "payment-sim",
    version,
    about = "Synthetic CRM payment metrics for watching the payment-rate SLO runway",
    long_about = "Serves crm_payments_total{outcome=\"success\"|\"failure\"} on /metrics for Prometheus \
                  (job `crm`, 127.0.0.1:9105) and switches between steady, dip (rising failure rate) \
                  and recovery, so slo:payment_rate:hours_to_breach can be watched shrinking and recovering."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the simulator: GET /metrics, GET / (status), POST /mode/{steady|dip|recovery}.
    Serve(ServeArgs),
    /// Ramp the failure ratio up to the dip ratio (was simulate_payment_rate_dip).
    Dip(ClientArgs),
    /// Ramp the failure ratio back down to the baseline (was simulate_payment_rate_recovery).
    Recovery(ClientArgs),
    /// Reset the failure ratio to the baseline at once.
    Steady(ClientArgs),
    /// Print the status of a running simulator.
    Status(ClientArgs),
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// Address to listen on (the Prometheus `crm` job scrapes 127.0.0.1:9105).
    #[arg(long, default_value = "127.0.0.1:9105", env = "PAYMENT_SIM_LISTEN")]
    listen: SocketAddr,
    /// Payment attempts per second.
    #[arg(long, default_value_t = Settings::default().payments_per_sec, allow_negative_numbers = true)]
    rate: f64,
    /// Failure ratio in steady mode and after recovery (0.001 = 0.1 %, burn rate 0.2).
    #[arg(long, default_value_t = Settings::default().baseline_failure_ratio, allow_negative_numbers = true)]
    baseline: f64,
    /// Failure ratio reached by a dip (0.05 = 5 %, burn rate 10).
    #[arg(long, default_value_t = Settings::default().dip_failure_ratio, allow_negative_numbers = true)]
    dip: f64,
    /// How long dip and recovery take to reach their ratio, e.g. 30s, 2m, 0s.
    #[arg(long, default_value = "60s", value_parser = payment_sim::parse_duration)]
    ramp: Duration,
    /// Mode to start in.
    #[arg(long, default_value = "steady")]
    mode: Mode,
}

#[derive(Debug, Args)]
struct ClientArgs {
    /// Base URL of the running simulator.
    #[arg(long, default_value = DEFAULT_URL, env = "PAYMENT_SIM_URL")]
    url: String,
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // The message chain, without a backtrace: these are errors for people.
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PAYMENT_SIM_LOG").unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        // Colours only on a terminal: logs piped to a file or a test stay plain text.
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    match cli.command {
        Command::Serve(args) => runtime.block_on(serve(args)),
        Command::Dip(args) => runtime.block_on(switch(args, Some(Mode::Dip))),
        Command::Recovery(args) => runtime.block_on(switch(args, Some(Mode::Recovery))),
        Command::Steady(args) => runtime.block_on(switch(args, Some(Mode::Steady))),
        Command::Status(args) => runtime.block_on(switch(args, None)),
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let settings = Settings {
        payments_per_sec: args.rate,
        baseline_failure_ratio: args.baseline,
        dip_failure_ratio: args.dip,
        ramp: args.ramp,
    };
    settings.validate().context("invalid settings")?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr().context("cannot read the listen address")?;
    let sim = Simulator::new(settings.clone(), args.mode);
    tracing::info!(
        mode = %args.mode,
        payments_per_sec = settings.payments_per_sec,
        baseline_failure_ratio = settings.baseline_failure_ratio,
        dip_failure_ratio = settings.dip_failure_ratio,
        ramp_secs = settings.ramp.as_secs_f64(),
        "payment simulator listening on http://{addr} (metrics on http://{addr}/metrics)"
    );
    tracing::info!(
        "switch modes with `payment-sim dip|recovery|steady --url http://{addr}` \
         or `curl -X POST http://{addr}/mode/dip`"
    );
    payment_sim::serve(listener, sim, shutdown_signal())
        .await
        .context("the HTTP server failed")?;
    tracing::info!("payment simulator stopped");
    Ok(())
}

/// Completes on Ctrl-C or (on Unix) SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("Ctrl-C received, shutting down"),
        () = terminate => tracing::info!("SIGTERM received, shutting down"),
    }
}

/// Switches to `mode` (or only reads the status with `None`) and prints the status as JSON.
async fn switch(args: ClientArgs, mode: Option<Mode>) -> anyhow::Result<()> {
    let client = Client::new(&args.url)?;
    let status: Status = match mode {
        Some(mode) => client.set_mode(mode).await?,
        None => client.status().await?,
    };
    println!("{}", serde_json::to_string_pretty(&status)?);
    Ok(())
}
