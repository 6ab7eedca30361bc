//! The operator's commands against a running host — `status`, `enable`,
//! `disable`, `dry-run`, `audit`, `ack` — in place of curl and jq. Each is a
//! thin client of the HTTP surface (docs/http.md), so they can never do
//! more than the token they send allows.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use autoheal_api::ack::{AckAnswer, AckRequest, AlertmanagerSilence, SilenceState};
use autoheal_api::alert::AlertAnswer;
use autoheal_api::audit::AuditAnswer;
use autoheal_api::error::ErrorAnswer;
use autoheal_api::status::{BreakerReport, BreakerSource, EffectBreakerReport, Readiness, StatusAnswer};
use autoheal_api::switches::{DryRunRequest, EnabledRequest, SwitchesAnswer};
use autoheal_core::alert::{Alert, AlertStatus, WebhookPayload};
use autoheal_core::audit::{AuditFilter, read_tail_as_written};
use autoheal_core::event::EventBody;
use autoheal_core::failover::{Failure, Members};
use autoheal_core::util::parse_duration;
use serde_json::value::RawValue;

use crate::event_line::{Reading, ReceivedEvent, format_event};

/// Where the host is and how to prove who is asking.
#[derive(clap::Args, Clone)]
pub struct Remote {
    /// The host's address.
    #[arg(long, env = "AUTOHEAL_URL", default_value = "http://127.0.0.1:9009")]
    url: String,
    /// A file whose first line is the token. Without it: AUTOHEAL_OPERATOR_TOKEN
    /// (or ..._FILE), then, for commands that only read, AUTOHEAL_READ_TOKEN (or ..._FILE).
    #[arg(long)]
    token_file: Option<PathBuf>,
}

/// Whether a command changes something (operator token) or only reads.
#[derive(Clone, Copy, PartialEq)]
pub(crate) enum Scope {
    Read,
    Operator,
}

impl Remote {
    /// The host at `url`, with the tokens of the environment.
    pub(crate) fn at(url: &str) -> Self {
        Self {
            url: url.to_owned(),
            token_file: None,
        }
    }

    fn token(&self, scope: Scope) -> anyhow::Result<Option<String>> {
        if let Some(path) = &self.token_file {
            return first_line(path).map(Some);
        }
        let mut sources = vec!["AUTOHEAL_OPERATOR_TOKEN"];
        if scope == Scope::Read {
            sources.push("AUTOHEAL_READ_TOKEN");
        }
        for var in sources {
            if let Some(token) = env_token(var)? {
                return Ok(Some(token));
            }
        }
        // Then the person's own token, kept by `autoheal login` for this host.
        Ok(crate::login_cmd::stored_token(&self.url))
    }

    pub(crate) fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        scope: Scope,
    ) -> anyhow::Result<reqwest::RequestBuilder> {
        let url = format!("{}{path}", self.url.trim_end_matches('/'));
        let mut request = reqwest::Client::new().request(method, url);
        if let Some(token) = self.token(scope)? {
            request = request.bearer_auth(token);
        }
        Ok(request)
    }

    /// Sends the request: the answer's status and body, whatever the status.
    async fn send(&self, request: reqwest::RequestBuilder) -> anyhow::Result<(reqwest::StatusCode, String)> {
        let response = request
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .with_context(|| format!("cannot reach autoheal at {}", self.url))?;
        let status = response.status();
        Ok((status, response.text().await.unwrap_or_default()))
    }

    /// A non-2xx answer as an error with the host's message (its
    /// [`ErrorAnswer`], or the body as it came when it is not one).
    fn refusal(&self, status: reqwest::StatusCode, body: &str) -> anyhow::Error {
        let message = serde_json::from_str::<ErrorAnswer>(body)
            .map(|answer| answer.error)
            .unwrap_or_else(|_| body.to_owned());
        anyhow::anyhow!("autoheal at {} answered {status}: {message}", self.url)
    }

    /// `body` read as the API's type `T`.
    fn read<T: serde::de::DeserializeOwned>(&self, body: &str) -> anyhow::Result<T> {
        serde_json::from_str(body).with_context(|| {
            format!(
                "autoheal at {} answered in a shape this CLI does not know",
                self.url
            )
        })
    }

    /// Sends the request and reads the answer as the API's type `T`; a
    /// non-2xx answer is an error with the host's message.
    pub(crate) async fn fetch<T: serde::de::DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> anyhow::Result<T> {
        let (status, body) = self.send(request).await?;
        if !status.is_success() {
            return Err(self.refusal(status, &body));
        }
        self.read(&body)
    }

    /// A page that is not JSON (`/console`, `/metrics`); a non-2xx answer is an error.
    async fn get_text(&self, path: &str) -> anyhow::Result<String> {
        let response = self
            .request(reqwest::Method::GET, path, Scope::Read)?
            .send()
            .await?;
        anyhow::ensure!(
            response.status().is_success(),
            "GET {path} answered {}",
            response.status()
        );
        Ok(response.text().await?)
    }
}

/// The token in `var` (a list, for rotation, sends its first token), else
/// the first line of the file `<var>_FILE` names, as the host reads them.
fn env_token(var: &str) -> anyhow::Result<Option<String>> {
    let listed = std::env::var(var).ok().and_then(|v| {
        v.split(',')
            .map(str::trim)
            .find(|t| !t.is_empty())
            .map(str::to_owned)
    });
    match (listed, std::env::var(format!("{var}_FILE"))) {
        (Some(token), _) => Ok(Some(token)),
        (None, Ok(path)) => first_line(&PathBuf::from(path)).map(Some),
        (None, Err(_)) => Ok(None),
    }
}

fn first_line(path: &PathBuf) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read token file {}", path.display()))?;
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(str::to_owned)
        .with_context(|| format!("token file {} is empty", path.display()))
}

/// `autoheal status`.
#[derive(clap::Args)]
pub struct StatusArgs {
    #[command(flatten)]
    remote: Remote,
    /// Print `GET /` as JSON.
    #[arg(long)]
    json: bool,
}

/// `autoheal status`: `GET /`, readable.
pub async fn status(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let remote = &args.remote;
    let (code, body) = remote
        .send(remote.request(reqwest::Method::GET, "/", Scope::Read)?)
        .await?;
    // A host loading its plugins answers 503 with its state: shown, and
    // the exit says it is not ready yet.
    let starting_answer = (code == reqwest::StatusCode::SERVICE_UNAVAILABLE)
        .then(|| serde_json::from_str::<StatusAnswer>(&body).ok())
        .flatten()
        .filter(|answer| answer.status == Readiness::Starting);
    let answer = match starting_answer {
        Some(answer) => answer,
        None if !code.is_success() => return Err(remote.refusal(code, &body)),
        None => remote.read::<StatusAnswer>(&body)?,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&answer)?);
    } else {
        print!("{}", render_status(&answer));
    }
    Ok(if answer.status == Readiness::Starting {
        ExitCode::from(3)
    } else {
        ExitCode::SUCCESS
    })
}

fn render_status(answer: &StatusAnswer) -> String {
    let mut out = String::new();
    let why = answer
        .dry_run_reason
        .map(|r| format!(" ({})", r.as_str()))
        .unwrap_or_default();
    out.push_str(&format!(
        "autoheal {}: mode {}{why}\n",
        answer.version,
        answer.mode.as_str()
    ));
    if answer.status == Readiness::Starting {
        let progress = &answer.startup;
        let loading = match &progress.current {
            Some(name) => format!("loading plugin {name} ({}/{})", progress.position, progress.total),
            None => "loading plugins".to_owned(),
        };
        out.push_str(&format!(
            "  STARTING: {loading}; webhooks are answered 503 (Alertmanager retries) until then\n"
        ));
    }
    out.push_str(&format!(
        "  enabled {}   dry-run {}   audit {} ({})\n",
        answer.enabled,
        answer.dry_run,
        answer.audit_path,
        if answer.audit_writable {
            "writable"
        } else {
            "NOT WRITABLE"
        }
    ));
    // The trail's size across its segments and the room left for it.
    if let (Some(trail), Some(free)) = (answer.audit_bytes, answer.audit_filesystem_free_bytes) {
        out.push_str(&format!(
            "  audit trail {} with its segments, {} free on its disk\n",
            mebibytes(trail),
            mebibytes(free)
        ));
    }
    out.push_str(&match &answer.container_engine {
        Some(engine) => format!(
            "  container engine {} — {}\n",
            engine.address,
            if engine.reachable {
                format!("reachable, {}", engine.version.as_deref().unwrap_or("-"))
            } else {
                format!("unreachable: {}", engine.error.as_deref().unwrap_or("-"))
            }
        ),
        None => "  container engine: none\n".to_owned(),
    });
    out.push_str(&format!("  plugins ({}):\n", answer.plugins.len()));
    for p in &answer.plugins {
        out.push_str(&format!(
            "    {} {} — alerts {}, containers {}\n",
            p.name,
            p.version,
            json_list(&p.alertnames),
            json_list(&p.containers)
        ));
    }
    for r in &answer.plugins_rejected {
        out.push_str(&format!("    REJECTED {}: {}\n", r.file, r.reason));
    }
    if let Some(cluster) = &answer.cluster {
        out.push_str(&crate::cluster_text::render_cluster(
            cluster,
            autoheal_core::util::unix_now(),
        ));
    }
    out.push_str(&render_breaker(&answer.breaker));
    for effect in &answer.effect_breakers {
        out.push_str(&render_effect_breaker(effect));
    }
    if !answer.cooldowns.is_empty() {
        out.push_str(&format!("  cooldowns ({}):\n", answer.cooldowns.len()));
        for c in &answer.cooldowns {
            out.push_str(&format!("    {} — {} s left\n", c.key, c.remaining_sec));
        }
    }
    out
}

/// A list of names as `status` has always shown them: `["a","b"]`.
fn json_list(names: &[String]) -> String {
    serde_json::to_string(names).unwrap_or_default()
}

/// The restart circuit breaker of `GET /`: per container, the restarts
/// spent of those allowed in the window, and when the oldest leaves it.
fn render_breaker(breaker: &BreakerReport) -> String {
    let window = humantime::format_duration(Duration::from_secs(breaker.window_sec as u64));
    let mut out = format!(
        "  restart breaker: {} restarts per container per {window}",
        breaker.max_restarts
    );
    if breaker.source == BreakerSource::Cluster {
        out.push_str(", every replica's");
    }
    if let Some(error) = &breaker.shared_error {
        out.push_str(&format!(" (this replica's only: {error})"));
    }
    if breaker.containers.is_empty() {
        out.push_str(", none spent\n");
        return out;
    }
    out.push_str(":\n");
    for c in &breaker.containers {
        let frees_at = chrono::DateTime::from_timestamp(c.frees_at as i64, 0)
            .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
            .unwrap_or_else(|| "-".into());
        out.push_str(&format!(
            "    {} — {} of {} spent{}; a place frees in {} (at {frees_at})\n",
            c.container,
            c.spent,
            c.allowed,
            if c.open { ", OPEN: restarts refused" } else { "" },
            autoheal_core::util::age_text(c.frees_in_sec),
        ));
    }
    out
}

/// The breaker of signals or commands: only the containers that spent
/// some, one line when none did.
fn render_effect_breaker(breaker: &EffectBreakerReport) -> String {
    let window = humantime::format_duration(Duration::from_secs(breaker.window_sec as u64));
    let mut out = format!(
        "  {} breaker: {} per container per {window}",
        breaker.capability, breaker.max
    );
    if breaker.containers.is_empty() {
        out.push_str(", none spent\n");
        return out;
    }
    out.push_str(":\n");
    for c in &breaker.containers {
        out.push_str(&format!(
            "    {} — {} of {} spent{}; a place frees in {}\n",
            c.container,
            c.spent,
            c.allowed,
            if c.open { ", OPEN: refused" } else { "" },
            autoheal_core::util::age_text(c.frees_in_sec),
        ));
    }
    out
}

/// `autoheal enable` and `autoheal disable`.
#[derive(clap::Args)]
pub struct SwitchArgs {
    #[command(flatten)]
    remote: Remote,
    /// A comment on who flips it, for the `mode_changed` event (`by_comment`; `by` is who the token proves) [default: $USER].
    #[arg(long)]
    by: Option<String>,
}

/// `on` or `off`.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum OnOff {
    /// Record what would be done; do nothing.
    On,
    /// Act for real (still under the kill switch).
    Off,
}

/// `autoheal dry-run on|off`.
#[derive(clap::Args)]
pub struct DryRunArgs {
    /// `on`: record only; `off`: act for real.
    state: OnOff,
    #[command(flatten)]
    switch: SwitchArgs,
}

/// `autoheal enable|disable`: the runtime kill switch.
pub async fn set_enabled(args: SwitchArgs, enabled: bool) -> anyhow::Result<ExitCode> {
    let body = EnabledRequest {
        enabled,
        by: Some(who(args.by.clone())),
    };
    flip(&args, "/admin/enabled", &body).await
}

/// `autoheal dry-run on|off`.
pub async fn set_dry_run(args: DryRunArgs) -> anyhow::Result<ExitCode> {
    let body = DryRunRequest {
        dry_run: matches!(args.state, OnOff::On),
        by: Some(who(args.switch.by.clone())),
    };
    flip(&args.switch, "/admin/dry-run", &body).await
}

/// `--by`, else `$USER`, else `autoheal-cli`.
pub(crate) fn who(by: Option<String>) -> String {
    by.or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "autoheal-cli".to_owned())
}

async fn flip(args: &SwitchArgs, path: &str, body: &impl serde::Serialize) -> anyhow::Result<ExitCode> {
    let remote = &args.remote;
    let answer: SwitchesAnswer = remote
        .fetch(
            remote
                .request(reqwest::Method::POST, path, Scope::Operator)?
                .json(body),
        )
        .await?;
    println!(
        "enabled {}, dry-run {}: mode {}",
        answer.enabled,
        answer.dry_run,
        answer.mode.as_str()
    );
    Ok(ExitCode::SUCCESS)
}

/// `autoheal ack`.
#[derive(clap::Args)]
pub struct AckArgs {
    #[command(flatten)]
    remote: Remote,
    /// Matchers: `alertname="CrmDown", service=~"crm.*"` or a JSON object of labels.
    matchers: String,
    /// How long the silence lasts (`30m`, `2h`, `1d`) [host default: 30m].
    #[arg(long = "for")]
    duration: Option<String>,
    /// Why, for the silence and the `ack` event.
    #[arg(long)]
    comment: Option<String>,
}

/// `autoheal ack`: a silence in Alertmanager, through the host.
pub async fn ack(args: AckArgs) -> anyhow::Result<ExitCode> {
    let remote = &args.remote;
    let body = AckRequest {
        // The matchers as text: the host parses them (or a JSON object of labels).
        labels: Some(serde_json::Value::String(args.matchers.clone())),
        duration: args.duration.clone(),
        comment: args.comment.clone(),
    };
    let answer: AckAnswer = remote
        .fetch(
            remote
                .request(reqwest::Method::POST, "/ack", Scope::Operator)?
                .json(&body),
        )
        .await?;
    println!(
        "silence {} until {}: {}",
        answer.silence_id, answer.ends_at, answer.url
    );
    Ok(ExitCode::SUCCESS)
}

/// `autoheal audit`.
#[derive(clap::Args)]
pub struct AuditArgs {
    #[command(flatten)]
    remote: Remote,
    /// Read this trail file directly (read-only) instead of asking a host.
    #[arg(long)]
    file: Option<PathBuf>,
    /// Only these kinds (repeat, or separate with commas).
    #[arg(long, value_delimiter = ',')]
    kind: Vec<String>,
    /// Only events about this alert.
    #[arg(long)]
    alertname: Option<String>,
    /// Only events this recent (`30m`, `2h`) or after this unix time.
    #[arg(long)]
    since: Option<String>,
    /// Only events whose JSON contains this text (case-insensitive).
    #[arg(long)]
    contains: Option<String>,
    /// How many of the newest matching events.
    #[arg(short, default_value_t = 50)]
    n: usize,
    /// One JSON event per line, for scripts.
    #[arg(long)]
    json: bool,
    /// Keep printing new events as they happen (over SSE, resuming after a
    /// dropped connection from the last event seen).
    #[arg(long)]
    follow: bool,
    /// Every replica's trail merged by time (a replica of a cluster).
    #[arg(long, conflicts_with_all = ["file", "follow"])]
    cluster: bool,
}

/// `autoheal audit`: the trail, one line per event.
pub async fn audit(args: AuditArgs) -> anyhow::Result<ExitCode> {
    let since = args.since.as_deref().map(parse_since).transpose()?;
    let filter = AuditFilter {
        kinds: args.kind.clone(),
        alertname: args.alertname.clone(),
        since,
        contains: args.contains.clone(),
    };
    let printer = Printer::new(args.json);
    let mut newest_before = 0;
    let events = match &args.file {
        Some(path) => {
            if args.follow {
                bail!("--follow needs a running host (--url), not --file");
            }
            if !path.exists() {
                bail!("no audit trail at {}", path.display());
            }
            read_tail_as_written(path, &filter, args.n)
                .with_context(|| format!("cannot read {}", path.display()))?
        }
        None => {
            if args.follow {
                // Following starts after the newest event now, whatever the filter and `-n`.
                let remote = &args.remote;
                let newest: AuditAnswer = remote
                    .fetch(remote.request(reqwest::Method::GET, "/audit?n=1", Scope::Read)?)
                    .await?;
                newest_before = newest
                    .events
                    .into_iter()
                    .next()
                    .map_or(0, |raw| ReceivedEvent::new(raw).id());
            }
            let mut query = audit_query(&filter, args.n);
            if args.cluster {
                query.push_str("&cluster=true");
            }
            let remote = &args.remote;
            let answer: AuditAnswer = remote
                .fetch(remote.request(reqwest::Method::GET, &format!("/audit?{query}"), Scope::Read)?)
                .await?;
            for replica in answer.replicas.iter().flatten() {
                if let Some(error) = &replica.error {
                    eprintln!("autoheal audit: replica {} not read: {error}", replica.replica);
                }
            }
            answer.events
        }
    };
    let mut last_id = newest_before;
    for raw in events {
        let event = ReceivedEvent::new(raw);
        printer.print(&event)?;
        last_id = last_id.max(event.id());
    }
    if args.follow {
        eprintln!("autoheal audit: following new events after event {last_id}");
        follow(&args.remote, &filter, last_id, &printer).await?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `30m` (that long ago) or a unix time.
fn parse_since(text: &str) -> anyhow::Result<f64> {
    if let Ok(ts) = text.trim().parse::<f64>() {
        return Ok(ts);
    }
    let ago = parse_duration(text).map_err(|e| anyhow::anyhow!("--since: {e}, or a unix time"))?;
    Ok(autoheal_core::util::unix_now() - ago.as_secs_f64())
}

/// The filters `/events` takes as well as `/audit`: kind and alertname.
fn stream_pairs(filter: &AuditFilter) -> Vec<(&'static str, String)> {
    let mut pairs = Vec::new();
    if !filter.kinds.is_empty() {
        pairs.push(("kind", filter.kinds.join(",")));
    }
    if let Some(a) = &filter.alertname {
        pairs.push(("alertname", a.clone()));
    }
    pairs
}

fn audit_query(filter: &AuditFilter, n: usize) -> String {
    let mut pairs = vec![("n", n.to_string())];
    pairs.extend(stream_pairs(filter));
    if let Some(s) = filter.since {
        pairs.push(("since", s.to_string()));
    }
    if let Some(c) = &filter.contains {
        pairs.push(("contains", c.clone()));
    }
    serde_urlencoded::to_string(pairs).unwrap_or_default()
}

/// New events from `GET /events`, for ever: after a dropped connection it
/// reconnects with `Last-Event-ID`, so nothing is missed or shown twice.
async fn follow(
    remote: &Remote,
    filter: &AuditFilter,
    mut last_id: u64,
    printer: &Printer,
) -> anyhow::Result<()> {
    let path = format!(
        "/events?{}",
        serde_urlencoded::to_string(stream_pairs(filter)).unwrap_or_default()
    );
    let needle = filter.contains.as_ref().map(|c| c.to_lowercase());
    loop {
        let request = remote
            .request(reqwest::Method::GET, &path, Scope::Read)?
            .header("last-event-id", last_id.to_string());
        let response = match request.send().await {
            Ok(r) if r.status().is_success() => r,
            Ok(r) => bail!("autoheal at {} answered {} to {path}", remote.url, r.status()),
            Err(e) => {
                eprintln!("autoheal audit: event stream lost ({e}); reconnecting");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let mut events = EventStream::new(response);
        while let Ok(Some(event)) = events.next().await {
            let id = event.id();
            if id <= last_id {
                continue;
            }
            last_id = id;
            if needle
                .as_ref()
                .is_none_or(|n| event.raw.get().to_lowercase().contains(n))
            {
                printer.print(&event)?;
            }
        }
        eprintln!("autoheal audit: event stream ended; reconnecting after event {last_id}");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// The events of an SSE response, one at a time. A message is parsed once
/// its blank line has arrived, from bytes, so that neither a line nor a
/// character split across two reads is lost.
struct EventStream {
    response: reqwest::Response,
    pending: Vec<u8>,
    ready: std::collections::VecDeque<ReceivedEvent>,
}

impl EventStream {
    fn new(response: reqwest::Response) -> Self {
        Self {
            response,
            pending: Vec::new(),
            ready: Default::default(),
        }
    }

    /// The next event; `None` when the stream ends.
    async fn next(&mut self) -> anyhow::Result<Option<ReceivedEvent>> {
        loop {
            if let Some(event) = self.ready.pop_front() {
                return Ok(Some(event));
            }
            let Some(chunk) = self.response.chunk().await? else {
                return Ok(None);
            };
            self.pending.extend_from_slice(&chunk);
            while let Some(end) = self.pending.windows(2).position(|w| w == b"\n\n") {
                let message: Vec<u8> = self.pending.drain(..end + 2).collect();
                let message = String::from_utf8_lossy(&message);
                self.ready.extend(
                    message
                        .lines()
                        .filter_map(|l| l.strip_prefix("data:"))
                        .filter_map(|data| RawValue::from_string(data.trim().to_owned()).ok())
                        .map(ReceivedEvent::new),
                );
            }
        }
    }
}

/// One event per line: JSON for scripts, or columns for people (coloured
/// on a terminal unless `NO_COLOR` is set).
struct Printer {
    json: bool,
    colour: bool,
}

impl Printer {
    fn new(json: bool) -> Self {
        let colour = !json && std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        Self { json, colour }
    }

    /// The line as the host wrote it (`--json`), or formatted for people.
    fn print(&self, event: &ReceivedEvent) -> anyhow::Result<()> {
        let line = if self.json {
            event.raw.get().to_owned()
        } else {
            format_event(&event.reading, self.colour)
        };
        let mut out = std::io::stdout().lock();
        // A closed pipe (`| head`) ends the command quietly.
        if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
            std::process::exit(0);
        }
        Ok(())
    }
}

/// `autoheal smoke`.
#[derive(clap::Args)]
pub struct SmokeArgs {
    #[command(flatten)]
    remote: Remote,
    /// The Alertmanager the host acks against, or the members of its HA
    /// cluster, comma-separated [default: the host's `alertmanager_urls`,
    /// from `GET /`]
    #[arg(long, env = "ALERTMANAGER_URL")]
    alertmanager_url: Option<String>,
    /// How long to wait for the test alert's events.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    timeout: Duration,
}

/// The alert `smoke` posts: not annotated `autoheal: "true"`, so it is
/// recorded and decided (`not_annotated`) and never acted on.
const SMOKE_ALERTNAME: &str = "AutohealSmokeTest";

/// Bytes as people read them: `12.3 MiB`.
fn mebibytes(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1u64 << 20) as f64)
}

/// Series a dashboard of the original system reads; each must be exported.
const SMOKE_SERIES: &[&str] = &[
    "autoheal_enabled",
    "autoheal_actions_total",
    "autoheal_action_failures_total",
    "autoheal_event_total",
    "autoheal_last_event_timestamp",
    "autoheal_last_action_epoch",
    "autoheal_audit_writable",
];

/// `autoheal smoke`: a deployment checked end to end, as the original
/// system's event-stream smoke test did. Each check prints PASS or FAIL;
/// any failure exits 1. The test alert it posts is never acted on.
pub async fn smoke(args: SmokeArgs) -> anyhow::Result<ExitCode> {
    let remote = &args.remote;
    let mut failed = 0;
    let mut check = |name: &str, outcome: anyhow::Result<String>| match outcome {
        Ok(detail) => println!("PASS  {name}: {detail}"),
        Err(e) => {
            failed += 1;
            println!("FAIL  {name}: {e:#}");
        }
    };

    let health = async {
        let answer: StatusAnswer = remote
            .fetch(remote.request(reqwest::Method::GET, "/", Scope::Read)?)
            .await?;
        anyhow::ensure!(
            answer.service == "autoheal",
            "GET / is not autoheal's: service {:?}",
            answer.service
        );
        Ok(format!(
            "mode {}, {} plugins",
            answer.mode.as_str(),
            answer.plugins.len()
        ))
    };
    check("health (GET /)", health.await);

    let console = async {
        let html = remote.get_text("/console").await?;
        anyhow::ensure!(
            html.contains("<html") || html.contains("<!doctype"),
            "GET /console is not a page"
        );
        Ok(format!("{} bytes of HTML", html.len()))
    };
    check("console (GET /console)", console.await);

    // SSE first, so that the posted alert's events arrive on it.
    let stream = async {
        let path = format!("/events?alertname={SMOKE_ALERTNAME}");
        let response = remote
            .request(reqwest::Method::GET, &path, Scope::Read)?
            .send()
            .await?;
        anyhow::ensure!(
            response.status().is_success(),
            "GET /events answered {}",
            response.status()
        );
        Ok(response)
    }
    .await;
    let posted = post_smoke_alert(remote).await;
    let posted_ok = posted.is_ok();
    check("webhook (POST /alert)", posted);
    match stream {
        Ok(response) if posted_ok => {
            let kinds = tokio::time::timeout(args.timeout, smoke_events(response)).await;
            check(
                "event stream (GET /events)",
                match kinds {
                    Ok(Ok(kinds)) => Ok(format!("received {}", kinds.join(", "))),
                    Ok(Err(e)) => Err(e),
                    Err(_) => Err(anyhow::anyhow!(
                        "no webhook_received and decision for the test alert within {:?}",
                        args.timeout
                    )),
                },
            );
        }
        Ok(_) => check(
            "event stream (GET /events)",
            Err(anyhow::anyhow!("skipped: the test alert was not accepted")),
        ),
        Err(e) => check("event stream (GET /events)", Err(e)),
    }

    for (name, query) in [
        (
            "audit kind + alertname",
            format!("kind=decision_skip&alertname={SMOKE_ALERTNAME}&n=5"),
        ),
        ("audit contains", format!("contains={SMOKE_ALERTNAME}&n=5")),
        (
            "audit since",
            format!(
                "since={}&alertname={SMOKE_ALERTNAME}&n=5",
                autoheal_core::util::unix_now() - 600.0
            ),
        ),
    ] {
        let filtered = async {
            let answer: AuditAnswer = remote
                .fetch(remote.request(reqwest::Method::GET, &format!("/audit?{query}"), Scope::Read)?)
                .await?;
            let count = answer.count;
            anyhow::ensure!(
                count > 0,
                "GET /audit?{query} found none of the test alert's events"
            );
            Ok(format!("{count} events"))
        };
        check(name, filtered.await);
    }

    let metrics = async {
        let text = remote.get_text("/metrics").await?;
        let missing: Vec<&str> = SMOKE_SERIES
            .iter()
            .copied()
            .filter(|s| !text.contains(s))
            .collect();
        anyhow::ensure!(missing.is_empty(), "missing series {}", missing.join(", "));
        Ok(format!("{} series present", SMOKE_SERIES.len()))
    };
    check("metrics (GET /metrics)", metrics.await);

    let alertmanager = async {
        let urls = match &args.alertmanager_url {
            Some(urls) => autoheal::config::UrlList::parse_comma_separated(urls).0,
            None => host_urls(remote).await?.alertmanager,
        };
        let (url, _) = alertmanager_get(&members(urls)?, "/-/healthy").await?;
        Ok(url)
    };
    check("Alertmanager reachable", alertmanager.await);

    Ok(if failed == 0 {
        println!("all checks passed");
        ExitCode::SUCCESS
    } else {
        println!("{failed} checks failed");
        ExitCode::from(1)
    })
}

/// Posts the test alert with the webhook token (AUTOHEAL_WEBHOOK_TOKEN, or
/// the first line of ..._FILE) when there is one.
async fn post_smoke_alert(remote: &Remote) -> anyhow::Result<String> {
    let token = env_token("AUTOHEAL_WEBHOOK_TOKEN")?;
    let url = format!("{}/alert", remote.url.trim_end_matches('/'));
    let alert = Alert {
        status: AlertStatus::Firing,
        labels: [("alertname", SMOKE_ALERTNAME), ("severity", "none")]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .into(),
        annotations: [(
            "summary".to_owned(),
            "autoheal smoke test: recorded, never acted on".to_owned(),
        )]
        .into(),
        starts_at: String::new(),
        ends_at: None,
        generator_url: String::new(),
        // Left to the host, which derives it from the labels.
        fingerprint: String::new(),
    };
    let payload = WebhookPayload {
        version: Some("4".to_owned()),
        group_key: None,
        status: Some("firing".to_owned()),
        receiver: Some("autoheal-smoke".to_owned()),
        truncated_alerts: None,
        alerts: vec![alert],
    };
    let mut request = reqwest::Client::new().post(&url).json(&payload);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let answer: AlertAnswer = remote.fetch(request).await?;
    Ok(format!("{} decision", answer.received))
}

/// Reads the stream until the test alert's `webhook_received` and its decision.
async fn smoke_events(response: reqwest::Response) -> anyhow::Result<Vec<&'static str>> {
    let mut events = EventStream::new(response);
    let mut kinds = Vec::new();
    while let Some(event) = events.next().await? {
        let Reading::Typed(event) = &event.reading else {
            continue;
        };
        let kind = event.kind().as_str();
        if !kinds.contains(&kind) {
            kinds.push(kind);
        }
        if matches!(event.body, EventBody::DecisionSkip(_)) {
            return Ok(kinds);
        }
    }
    bail!("the stream ended before the test alert's decision")
}

/// Alertmanager's members, as given or as the host said.
fn members(urls: Vec<String>) -> anyhow::Result<Members> {
    Members::new(urls).context("--alertmanager-url")
}

/// A `GET` on one Alertmanager member that did not succeed.
#[derive(Debug, thiserror::Error)]
enum AlertmanagerGetError {
    #[error("cannot reach Alertmanager at {url}: {message}")]
    Unreachable { url: String, message: String },
    #[error("Alertmanager at {url} answered {status}")]
    Status {
        url: String,
        status: reqwest::StatusCode,
    },
}

/// No answer or a 5xx: the next member may answer; a 4xx stands.
impl Failure for AlertmanagerGetError {
    fn try_next(&self) -> bool {
        match self {
            Self::Unreachable { .. } => true,
            Self::Status { status, .. } => status.is_server_error(),
        }
    }
}

/// `GET path` on the first Alertmanager member that answers, with that
/// member's URL; no answer or a non-2xx one is an error naming the URL.
async fn alertmanager_get(alertmanager: &Members, path: &str) -> anyhow::Result<(String, reqwest::Response)> {
    let client = reqwest::Client::new();
    let got = alertmanager
        .first(|base| {
            let client = client.clone();
            async move {
                let url = format!("{}{path}", base.trim_end_matches('/'));
                let response = client
                    .get(&url)
                    .timeout(Duration::from_secs(10))
                    .send()
                    .await
                    .map_err(|e| AlertmanagerGetError::Unreachable {
                        url: url.clone(),
                        message: autoheal_core::util::error_chain(&e),
                    })?;
                if !response.status().is_success() {
                    return Err(AlertmanagerGetError::Status {
                        url,
                        status: response.status(),
                    });
                }
                Ok((base, response))
            }
        })
        .await?;
    Ok(got)
}

/// `autoheal silences`.
#[derive(clap::Args)]
pub struct SilencesArgs {
    /// The host, asked for its `alertmanager_url` when none is given.
    #[command(flatten)]
    remote: Remote,
    /// The Alertmanager the host acks against, or the members of its HA
    /// cluster, comma-separated [default: the host's `alertmanager_urls`,
    /// from `GET /`; if the host does not answer, http://127.0.0.1:9093]
    #[arg(long, env = "ALERTMANAGER_URL")]
    alertmanager_url: Option<String>,
    /// Also show expired ones.
    #[arg(long)]
    all: bool,
    /// One JSON silence per line.
    #[arg(long)]
    json: bool,
}

/// `autoheal silences`: the silences autoheal made (`createdBy: autoheal`),
/// read from Alertmanager.
pub async fn silences(args: SilencesArgs) -> anyhow::Result<ExitCode> {
    let alertmanager = match &args.alertmanager_url {
        Some(urls) => autoheal::config::UrlList::parse_comma_separated(urls).0,
        None => host_urls_or_defaults(&args.remote).await.alertmanager,
    };
    // Members share silences by gossip: any one that answers lists them all.
    let (_, response) = alertmanager_get(&members(alertmanager)?, "/api/v2/silences").await?;
    let silences: Vec<AlertmanagerSilence> = response
        .json()
        .await
        .context("Alertmanager's answer is not a list of silences")?;
    let mut ours: Vec<&AlertmanagerSilence> = silences
        .iter()
        .filter(|s| s.is_autoheal())
        .filter(|s| args.all || s.status.state != SilenceState::Expired)
        .collect();
    ours.sort_by(|a, b| a.ends_at.cmp(&b.ends_at));
    for silence in ours {
        if args.json {
            println!("{}", serde_json::to_string(silence)?);
            continue;
        }
        let matchers: Vec<String> = silence.matchers.iter().map(|m| m.to_string()).collect();
        println!(
            "{}  {:<8}  until {}  {}  {}",
            silence.id,
            silence.status.state.as_str(),
            silence.ends_at,
            matchers.join(", "),
            silence.comment
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The Alertmanager and Prometheus a host is configured with.
pub(crate) struct HostUrls {
    /// Every member, in the host's order.
    pub(crate) alertmanager: Vec<String>,
    pub(crate) prometheus: String,
}

/// Where the host at `remote` finds Alertmanager and Prometheus (`GET /`):
/// the commands that read them use the same ones unless told otherwise.
pub(crate) async fn host_urls(remote: &Remote) -> anyhow::Result<HostUrls> {
    let answer: StatusAnswer = remote
        .fetch(remote.request(reqwest::Method::GET, "/", Scope::Read)?)
        .await?;
    Ok(HostUrls {
        // A host older than `alertmanager_urls` names one.
        alertmanager: if answer.alertmanager_urls.is_empty() {
            vec![answer.alertmanager_url]
        } else {
            answer.alertmanager_urls
        },
        prometheus: answer.prometheus_url,
    })
}

/// [`host_urls`], or the built-in defaults (with a note on stderr) when the
/// host cannot be asked: reading Alertmanager or Prometheus does not need
/// the host to be up.
pub(crate) async fn host_urls_or_defaults(remote: &Remote) -> HostUrls {
    host_urls(remote).await.unwrap_or_else(|e| {
        let defaults = autoheal::config::RawConfig::default();
        eprintln!(
            "note: {e:#}; using Alertmanager at {} and Prometheus at {} (set them with --alertmanager-url, --prometheus-url)",
            defaults.alertmanager_url, defaults.prometheus_url
        );
        HostUrls {
            alertmanager: defaults.alertmanager_url.0,
            prometheus: defaults.prometheus_url,
        }
    })
}
