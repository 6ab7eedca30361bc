//! The `containers` capability (`wit/containers.wit`; its manifest section
//! is `autoheal_manifest::ContainerGrant`): which container a call may name,
//! and each call's own check, bounds, dry-run rule and record.
//!
//! | call | allowed by | kind |
//! |---|---|---|
//! | `inspect` | the container | read |
//! | `restart` | the container | effect (restart breaker, joins within the target cooldown) |
//! | `signal` | the container and `signals` | effect (signal breaker) |
//! | `exec` | the container and an `[[exec]]` rule | effect (exec breaker) |
//! | `logs` | the container and `[logs]` | read, at most `max_lines`/`max_bytes` |
//! | `list-by-label` | a `label:` entry, exactly | read |

use autoheal_containers::{ContainerInfo, ExecLimits, ExecOutput, LabelSelector, Logs};
use autoheal_manifest::{
    LABEL_PREFIX, MAX_CONTAINER_NAME, Unresolved, is_container_target, resolve_container, signal_name,
};

use crate::capability::{Capability, CapabilityGate, Effect, GateError, cut};

/// Most names of a `list-by-label` answer kept in its record.
const LISTED_IN_DETAIL: usize = 8;
/// Bytes of each output stream of an exec kept in its record.
const OUTPUT_IN_DETAIL: usize = 200;

/// What an exec answers the plugin: `None` when it was recorded, not run.
pub(crate) type ExecAnswer = Option<ExecOutput>;

impl CapabilityGate {
    /// `containers.inspect`, if the manifest allows `name`.
    pub async fn inspect(&mut self, name: String) -> Result<ContainerInfo, GateError> {
        const CAPABILITY: Capability = Capability::ContainersInspect;
        let name = self.container(CAPABILITY, name).await?;
        let result = self.services.containers.inspect(&name).await;
        self.record_read(CAPABILITY, name, &result, |_| None);
        result.map_err(GateError::from)
    }

    /// `containers.restart`, if the manifest allows `name` and its breaker is closed; only recorded in dry-run.
    pub async fn restart(&mut self, name: String) -> Result<(), GateError> {
        const CAPABILITY: Capability = Capability::ContainersRestart;
        let name = self.container(CAPABILITY, name).await?;
        let engine = self.services.containers.clone();
        let (target, stop) = (name.clone(), self.stop_timeout);
        let send = async move { engine.restart(&target, stop).await };
        self.effect(CAPABILITY, name, String::new(), send, |_| None)
            .await
            .map(|_| ())
    }

    /// `containers.signal`, if the manifest allows `name` and lists the signal.
    pub async fn signal(&mut self, name: String, signal: String) -> Result<(), GateError> {
        const CAPABILITY: Capability = Capability::ContainersSignal;
        let name = self.container(CAPABILITY, name).await?;
        let allowed = signal_name(&signal).filter(|s| self.grant.signals.iter().any(|a| a == s));
        let Some(signal) = allowed else {
            let reason = format!(
                "signal {:?} is not one the manifest lists under capabilities.signals ({})",
                cut(signal, 32),
                self.grant.signals.join(", ")
            );
            return Err(self.deny(CAPABILITY, name, reason));
        };
        let engine = self.services.containers.clone();
        let target = name.clone();
        let send = async move { engine.signal(&target, signal).await };
        self.effect(CAPABILITY, name, format!("SIG{signal}"), send, |_| None)
            .await
            .map(|_| ())
    }

    /// `containers.exec`, if the manifest allows `name` and a rule allows
    /// `argv`; recorded, not run, in dry-run (`None`).
    pub async fn exec(&mut self, name: String, argv: Vec<String>) -> Result<ExecAnswer, GateError> {
        const CAPABILITY: Capability = Capability::ContainersExec;
        let name = self.container(CAPABILITY, name).await?;
        let Some(rule) = self.grant.exec_rule(&argv) else {
            let reason = format!(
                "command {} is not one the manifest allows under [[capabilities.exec]]",
                argv_text(&argv)
            );
            return Err(self.deny(CAPABILITY, name, reason));
        };
        let limits = ExecLimits {
            timeout: rule.timeout,
            max_output_bytes: rule.max_output_bytes,
        };
        let engine = self.services.containers.clone();
        let detail = argv_text(&argv);
        let target = name.clone();
        let send = async move { engine.exec(&target, &argv, &limits).await };
        match self.effect(CAPABILITY, name, detail, send, exec_detail).await? {
            Effect::Sent(output) => Ok(Some(output)),
            Effect::Recorded | Effect::Joined => Ok(None),
        }
    }

    /// `containers.logs`, if the manifest allows `name` and has `[logs]`:
    /// at most its `max_lines` (a larger `tail` is cut to it) and `max_bytes`.
    pub async fn logs(&mut self, name: String, tail: u32) -> Result<Logs, GateError> {
        const CAPABILITY: Capability = Capability::ContainersLogs;
        let name = self.container(CAPABILITY, name).await?;
        let Some(bounds) = self.grant.logs else {
            let reason = "the manifest has no [capabilities.logs]".to_owned();
            return Err(self.deny(CAPABILITY, name, reason));
        };
        let lines = tail.min(bounds.max_lines);
        let result = self
            .services
            .containers
            .logs(&name, lines, bounds.max_bytes)
            .await;
        self.record_read(CAPABILITY, name, &result, |logs| {
            let asked = if tail > lines {
                format!(" ({tail} asked, at most max_lines = {})", bounds.max_lines)
            } else {
                String::new()
            };
            let cut = if logs.truncated {
                ", older ones left out past max_bytes"
            } else {
                ""
            };
            Some(format!("{} of {lines} lines read{asked}{cut}", logs.lines.len()))
        });
        result.map_err(GateError::from)
    }

    /// `containers.list-by-label`: the containers carrying `selector`, which
    /// must be one of the manifest's `label:` entries exactly.
    pub async fn list_by_label(&mut self, selector: String) -> Result<Vec<String>, GateError> {
        const CAPABILITY: Capability = Capability::ContainersListByLabel;
        self.begin()?;
        let target = format!("{LABEL_PREFIX}{}", cut(selector.clone(), 300));
        let Some(label) = self.grant.has_label(&selector).cloned() else {
            let reason = format!(
                "label selector {:?} is not one the manifest lists under capabilities.containers \
                 (a selector is matched exactly, never widened)",
                cut(selector, 300)
            );
            return Err(self.deny(CAPABILITY, target, reason));
        };
        let result = self.services.containers.list(&label).await;
        self.record_read(CAPABILITY, target, &result, |names| {
            let shown: Vec<&str> = names.iter().take(LISTED_IN_DETAIL).map(String::as_str).collect();
            let more = names.len().saturating_sub(LISTED_IN_DETAIL);
            let more = if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            };
            Some(format!("{} found: {}{more}", names.len(), shown.join(", ")))
        });
        result.map_err(GateError::from)
    }

    /// The check every call naming a container starts with: the budget, a
    /// name that can be a container's, then the allow-list: by name (the
    /// answer is the allow-list's entry, `edge/crm-api` for `crm-api`
    /// allowed on engine `edge` only: the name the engine, the breaker and
    /// the audit see), else by a label the container carries (asked of
    /// the engine now: labels are the engine's to say, not the plugin's).
    async fn container(&mut self, capability: Capability, target: String) -> Result<String, GateError> {
        self.begin()?;
        if !is_container_target(&target) {
            // Recorded by its length only: the bytes are the plugin's to choose.
            self.invalid_targets += 1;
            let reason = format!(
                "not a container name ({} bytes): names are 1 to {MAX_CONTAINER_NAME} characters of \
                 [a-zA-Z0-9_.-], starting with a letter or digit, optionally after `ENGINE/`",
                target.len()
            );
            return Err(self.deny(capability, format!("<invalid: {} bytes>", target.len()), reason));
        }
        let by_name = match resolve_container(&self.grant.names, &target) {
            Ok(entry) => return Ok(entry.to_owned()),
            Err(Unresolved::NotAllowed) => None,
            Err(ambiguous) => Some(format!("container {target:?} is {ambiguous}")),
        };
        if by_name.is_none() && !self.grant.labels.is_empty() {
            match self.carried_label(&target).await {
                Ok(true) => return Ok(target),
                Ok(false) => {}
                Err(e) => {
                    let reason = format!("container {target:?} could not be checked for its labels: {e}");
                    return Err(self.deny(capability, target, reason));
                }
            }
        }
        let reason = by_name.unwrap_or_else(|| {
            format!(
                "plugin {} may not touch container {target:?}: its manifest allows {}",
                self.plugin,
                self.allowed_text()
            )
        });
        Err(self.deny(capability, target, reason))
    }

    /// Whether the container carries one of the manifest's labels.
    async fn carried_label(&self, target: &str) -> Result<bool, autoheal_containers::ContainerError> {
        let info = self.services.containers.inspect(target).await?;
        Ok(self
            .grant
            .labels
            .iter()
            .any(|LabelSelector { key, value }| info.labels.get(key) == Some(value)))
    }

    fn allowed_text(&self) -> String {
        let labels = self.grant.labels.iter().map(|l| format!("{LABEL_PREFIX}{l}"));
        let all: Vec<String> = self.grant.names.iter().cloned().chain(labels).collect();
        format!("{all:?}")
    }
}

/// A command as the record shows it: its words, quoted, bounded.
fn argv_text(argv: &[String]) -> String {
    let words: Vec<String> = argv
        .iter()
        .take(16)
        .map(|w| format!("{:?}", cut(w.clone(), 64)))
        .collect();
    let more = if argv.len() > 16 {
        format!(" +{} words", argv.len() - 16)
    } else {
        String::new()
    };
    format!("[{}]{more}", words.join(", "))
}

/// What a sent exec's record adds: its exit, and the start of its output.
fn exec_detail(output: &ExecOutput) -> Option<String> {
    let exit = match (output.timed_out, output.exit_code) {
        (true, _) => "timed out".to_owned(),
        (false, Some(code)) => format!("exit {code}"),
        (false, None) => "exit unknown".to_owned(),
    };
    let stream = |name: &str, text: &str| {
        (!text.is_empty()).then(|| format!("; {name}: {:?}", cut(text.to_owned(), OUTPUT_IN_DETAIL)))
    };
    Some(format!(
        "{exit}{}{}{}",
        stream("stdout", &output.stdout).unwrap_or_default(),
        stream("stderr", &output.stderr).unwrap_or_default(),
        if output.truncated {
            " (output cut to max_output_bytes)"
        } else {
            ""
        }
    ))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::breaker::{Joining, RestartBreaker};
    use crate::capability::{
        Breakers, CallOutcome, ExecutionMode, HostServices, MAX_CALLS_PER_INVOCATION, NoIntentLog,
    };
    use autoheal_containers::{ContainerRuntime, FakeRuntime};
    use autoheal_manifest::{ContainerGrant, is_container_name};

    #[test]
    fn container_names_are_what_docker_accepts() {
        for ok in ["crm-api", "db", "a", "web_1.blue", "0abc"] {
            assert!(is_container_name(ok), "{ok}");
        }
        let long = "a".repeat(MAX_CONTAINER_NAME + 1);
        for bad in [
            "", "/crm-api", "-x", ".x", "crm api", "crm-api ", "a/../b", "a\0", "a%2Fb", "é", &long,
        ] {
            assert!(!is_container_name(bad), "{bad:?}");
        }
    }

    fn services(fake: Arc<FakeRuntime>) -> HostServices {
        HostServices::offline(
            fake,
            Breakers::new(
                Arc::new(RestartBreaker::new(2, Duration::from_secs(3600))),
                2,
                2,
                Duration::from_secs(3600),
            ),
            Arc::new(NoIntentLog),
        )
    }

    fn gate(mode: ExecutionMode, fake: Arc<FakeRuntime>) -> CapabilityGate {
        CapabilityGate::new(
            "p".into(),
            Arc::new(ContainerGrant::of_names(["crm-api"])),
            mode,
            services(fake),
            Duration::ZERO,
            Joining::default(),
        )
    }

    #[tokio::test]
    async fn outside_the_allow_list_is_denied_and_never_reaches_the_engine() {
        let fake = Arc::new(FakeRuntime::new());
        fake.add_running("db", Duration::from_secs(100));
        let mut gate = gate(ExecutionMode::Real, fake.clone());
        let err = gate.restart("db".into()).await.unwrap_err();
        assert!(
            matches!(err, GateError::Denied(ref m) if m.contains("\"db\"")),
            "{err:?}"
        );
        assert!(fake.restarts().is_empty());
        assert_eq!(gate.calls()[0].outcome, CallOutcome::Denied);
    }

    #[tokio::test]
    async fn dry_run_records_restart_but_reads_for_real() {
        let fake = Arc::new(FakeRuntime::new());
        fake.add_running("crm-api", Duration::from_secs(100));
        let mut gate = gate(ExecutionMode::DryRun, fake.clone());
        assert_eq!(gate.inspect("crm-api".into()).await.unwrap().name, "crm-api");
        gate.restart("crm-api".into()).await.unwrap();
        assert!(fake.restarts().is_empty());
        let outcomes: Vec<_> = gate.calls().iter().map(|c| (c.capability, c.outcome)).collect();
        assert_eq!(
            outcomes,
            [
                (Capability::ContainersInspect, CallOutcome::Ok),
                (Capability::ContainersRestart, CallOutcome::Recorded)
            ]
        );
    }

    #[tokio::test]
    async fn real_mode_restarts_and_maps_engine_errors() {
        let fake = Arc::new(FakeRuntime::new());
        fake.add_running("crm-api", Duration::from_secs(100));
        let mut gate = gate(ExecutionMode::Real, fake.clone());
        gate.restart("crm-api".into()).await.unwrap();
        assert_eq!(fake.restarts(), ["crm-api"]);

        let mut gate = CapabilityGate::new(
            "p".into(),
            Arc::new(ContainerGrant::of_names(["gone"])),
            ExecutionMode::Real,
            services(fake),
            Duration::ZERO,
            Joining::default(),
        );
        let err = gate.inspect("gone".into()).await.unwrap_err();
        assert_eq!(err, GateError::NotFound("container gone not found".into()));
        assert_eq!(gate.calls()[0].outcome, CallOutcome::Failed);
    }

    #[tokio::test]
    async fn the_breaker_refuses_real_restarts_beyond_its_limit_but_not_dry_runs() {
        let fake = Arc::new(FakeRuntime::new());
        fake.add_running("crm-api", Duration::from_secs(100));
        let mut gate = gate(ExecutionMode::Real, fake.clone());
        gate.restart("crm-api".into()).await.unwrap();
        gate.restart("crm-api".into()).await.unwrap();
        let err = gate.restart("crm-api".into()).await.unwrap_err();
        assert!(
            matches!(err, GateError::Denied(ref m) if m.starts_with("circuit_open")),
            "{err:?}"
        );
        assert_eq!(fake.restarts().len(), 2);
        assert_eq!(gate.calls()[2].outcome, CallOutcome::CircuitOpen);

        let mut dry = CapabilityGate::new(
            "p".into(),
            Arc::new(ContainerGrant::of_names(["crm-api"])),
            ExecutionMode::DryRun,
            gate.services.clone(),
            Duration::ZERO,
            Joining::default(),
        );
        dry.restart("crm-api".into()).await.unwrap();
        assert_eq!(dry.calls()[0].outcome, CallOutcome::Recorded);
    }

    #[tokio::test]
    async fn a_second_restart_within_the_target_cooldown_joins_the_first() {
        let fake = Arc::new(FakeRuntime::new());
        fake.add_running("crm-api", Duration::from_secs(3600));
        let services = services(fake.clone());
        let gate = |plugin: &str, alert: &str| {
            CapabilityGate::new(
                plugin.into(),
                Arc::new(ContainerGrant::of_names(["crm-api"])),
                ExecutionMode::Real,
                services.clone(),
                Duration::ZERO,
                Joining {
                    within: Duration::from_secs(60),
                    alert: alert.into(),
                },
            )
        };
        let (mut first, mut second) = (gate("probe-fix", "probe"), gate("scrape-fix", "scrape"));
        first.restart("crm-api".into()).await.unwrap();
        second.restart("crm-api".into()).await.unwrap();
        assert_eq!(fake.restarts(), ["crm-api"], "one fault, one restart");
        assert_eq!(first.calls()[0].outcome, CallOutcome::Ok);
        assert_eq!(second.calls()[0].outcome, CallOutcome::Joined);
        let detail = second.calls()[0].detail.as_deref().unwrap();
        assert!(
            detail.contains("within this plugin's target_cooldown of 1m"),
            "{detail}"
        );
        // The join spent none of the breaker's two places.
        let mut third = CapabilityGate::new(
            "p".into(),
            Arc::new(ContainerGrant::of_names(["crm-api"])),
            ExecutionMode::Real,
            services.clone(),
            Duration::ZERO,
            Joining::default(),
        );
        third.restart("crm-api".into()).await.unwrap();
        assert_eq!(fake.restarts().len(), 2);
    }

    #[tokio::test]
    async fn call_budget_is_enforced() {
        let fake = Arc::new(FakeRuntime::new());
        fake.add_running("crm-api", Duration::from_secs(100));
        let mut gate = gate(ExecutionMode::DryRun, fake);
        for _ in 0..MAX_CALLS_PER_INVOCATION {
            gate.restart("crm-api".into()).await.unwrap();
        }
        assert_eq!(gate.over_budget(), 0);
        for _ in 0..3 {
            assert!(matches!(
                gate.restart("crm-api".into()).await,
                Err(GateError::Denied(_))
            ));
        }
        // An invalid name past the budget is refused and counted the same way.
        assert!(gate.inspect("not a name!".into()).await.is_err());
        assert_eq!(gate.calls().len(), MAX_CALLS_PER_INVOCATION);
        assert_eq!(gate.over_budget(), 4, "every call past the budget is counted");
    }

    #[tokio::test]
    async fn a_container_on_a_named_engine_is_called_there_and_broken_per_engine() {
        let (default, edge) = (Arc::new(FakeRuntime::new()), Arc::new(FakeRuntime::new()));
        default.add_running("api", Duration::from_secs(100));
        edge.add_running("api", Duration::from_secs(100));
        edge.add_running("billing", Duration::from_secs(100));
        let named = [("edge".to_owned(), edge.clone() as Arc<dyn ContainerRuntime>)].into();
        let engines: Arc<dyn ContainerRuntime> =
            Arc::new(autoheal_containers::Engines::new(default.clone(), named));
        let allowed = Arc::new(ContainerGrant::of_names(["api", "edge/api", "edge/billing"]));
        let mut services = services(default.clone());
        services.containers = engines;
        let mut gate = CapabilityGate::new(
            "p".into(),
            allowed,
            ExecutionMode::Real,
            services,
            Duration::ZERO,
            Joining::default(),
        );
        // A bare name on one engine only goes to that engine, under its qualified name.
        gate.restart("billing".into()).await.unwrap();
        assert_eq!(edge.restarts(), ["billing"]);
        assert_eq!(gate.calls()[0].target, "edge/billing");
        // `api` is allowed on both: the bare name is the default engine's entry.
        gate.restart("api".into()).await.unwrap();
        gate.restart("api".into()).await.unwrap();
        assert_eq!(default.restarts(), ["api", "api"]);
        // The default's `api` is at the breaker's limit of 2; edge's is not.
        assert!(gate.restart("api".into()).await.is_err());
        gate.restart("edge/api".into()).await.unwrap();
        assert_eq!(edge.restarts(), ["billing", "api"]);
        let outsider = gate.restart("far/api".into()).await.unwrap_err();
        assert!(matches!(outsider, GateError::Denied(_)), "{outsider:?}");
    }

    /// A gate of `toml` (a `[capabilities]` body) on `fake`, in `mode`.
    fn gate_of(toml: &str, mode: ExecutionMode, fake: Arc<FakeRuntime>) -> CapabilityGate {
        let manifest = format!(
            "name = \"p\"\nversion = \"1\"\ncomponent = \"p.wasm\"\n[limits]\ntimeout_ms = 20000\n\
             stop_timeout_sec = 1\n[capabilities]\n{toml}"
        );
        let manifest = parse_manifest(&manifest);
        CapabilityGate::new(
            "p".into(),
            manifest.container_grant,
            mode,
            services(fake),
            Duration::ZERO,
            Joining::default(),
        )
    }

    fn parse_manifest(text: &str) -> autoheal_manifest::Manifest {
        let bounds = autoheal_manifest::ManifestBounds { max_memory_mb: 64 };
        autoheal_manifest::Manifest::parse("p.toml", text, bounds).unwrap()
    }

    fn words(argv: &[&str]) -> Vec<String> {
        argv.iter().map(|w| w.to_string()).collect()
    }

    #[tokio::test]
    async fn signals_go_only_as_listed_and_only_for_real_outside_dry_run() {
        let fake = Arc::new(FakeRuntime::new());
        fake.add_running("web", Duration::from_secs(100));
        fake.add_running("db", Duration::from_secs(100));
        let caps = "containers = [\"web\"]\nsignals = [\"HUP\"]";
        let mut gate = gate_of(caps, ExecutionMode::Real, fake.clone());
        gate.signal("web".into(), "SIGHUP".into()).await.unwrap();
        let kill = gate.signal("web".into(), "KILL".into()).await.unwrap_err();
        assert!(
            matches!(kill, GateError::Denied(ref m) if m.contains("\"KILL\"")),
            "{kill:?}"
        );
        assert!(gate.signal("db".into(), "HUP".into()).await.is_err());
        assert_eq!(fake.signals(), [("web".to_owned(), "HUP".to_owned())]);
        let calls = gate.calls();
        assert_eq!(calls[0].detail.as_deref(), Some("SIGHUP"));
        assert!(calls[0].duration_ms.is_some());
        assert_eq!(
            calls.iter().map(|c| c.outcome).collect::<Vec<_>>(),
            [CallOutcome::Ok, CallOutcome::Denied, CallOutcome::Denied]
        );

        let mut dry = gate_of(caps, ExecutionMode::DryRun, fake.clone());
        dry.signal("web".into(), "HUP".into()).await.unwrap();
        assert_eq!(fake.signals().len(), 1, "dry-run sends nothing");
        assert_eq!(dry.calls()[0].outcome, CallOutcome::Recorded);
    }

    #[tokio::test]
    async fn signals_and_execs_have_breakers_of_their_own() {
        let fake = Arc::new(FakeRuntime::new());
        fake.add_running("web", Duration::from_secs(100));
        let caps = "containers = [\"web\"]\nsignals = [\"HUP\"]\n[[capabilities.exec]]\nargv = [\"true\"]";
        let mut gate = gate_of(caps, ExecutionMode::Real, fake.clone());
        for _ in 0..2 {
            gate.signal("web".into(), "HUP".into()).await.unwrap();
            gate.exec("web".into(), words(&["true"])).await.unwrap();
        }
        let open = gate.signal("web".into(), "HUP".into()).await.unwrap_err();
        assert!(
            matches!(open, GateError::Denied(ref m) if m.contains("signalled 2 times")),
            "{open:?}"
        );
        assert!(gate.exec("web".into(), words(&["true"])).await.is_err());
        // The restart breaker counted none of them.
        gate.restart("web".into()).await.unwrap();
        assert_eq!(
            (fake.signals().len(), fake.execs().len(), fake.restarts().len()),
            (2, 2, 1)
        );
    }

    #[tokio::test]
    async fn exec_runs_only_allowed_commands_and_bounds_what_it_records() {
        let fake = Arc::new(FakeRuntime::new());
        fake.add_running("cache", Duration::from_secs(100));
        fake.script_exec(
            "cache",
            autoheal_containers::ExecOutput {
                exit_code: Some(0),
                stdout: "x".repeat(10_000),
                ..Default::default()
            },
        );
        let caps = "containers = [\"cache\"]\n[[capabilities.exec]]\nargv = [\"redis-cli\", \"DEL\"]\n\
                    max_extra_args = 1\nextra_arg_pattern = \"[a-z0-9:]{1,32}\"\nmax_output_bytes = 4096";
        let mut gate = gate_of(caps, ExecutionMode::Real, fake.clone());
        let output = gate
            .exec("cache".into(), words(&["redis-cli", "DEL", "session:1"]))
            .await
            .unwrap()
            .expect("ran");
        assert_eq!(
            (output.exit_code, output.stdout.len(), output.truncated),
            (Some(0), 4096, true)
        );
        let detail = gate.calls()[0].detail.clone().unwrap();
        assert!(
            detail.starts_with("[\"redis-cli\", \"DEL\", \"session:1\"]: exit 0"),
            "{detail}"
        );
        assert!(
            detail.len() <= crate::capability::MAX_DETAIL_BYTES + 8,
            "{}",
            detail.len()
        );
        let huge = "a".repeat(1 << 20);
        for hostile in [
            words(&["redis-cli", "DEL", "k;reboot"]),
            words(&["redis-cli", "DEL", "$(reboot)"]),
            words(&["redis-cli", "DEL", "../../etc/passwd"]),
            words(&["redis-cli", "DEL", "a", "b"]),
            words(&["sh", "-c", "redis-cli DEL a"]),
            vec!["redis-cli".into(), "DEL".into(), huge.clone()],
        ] {
            let err = gate.exec("cache".into(), hostile).await.unwrap_err();
            assert!(matches!(err, GateError::Denied(_)), "{err:?}");
        }
        assert_eq!(fake.execs().len(), 1, "no refused command reached the engine");
        let record = gate.calls().last().unwrap().detail.clone().unwrap();
        assert!(
            record.len() < 2048,
            "a 1 MB argument is recorded bounded: {}",
            record.len()
        );

        let mut dry = gate_of(caps, ExecutionMode::DryRun, fake.clone());
        let answer = dry
            .exec("cache".into(), words(&["redis-cli", "DEL", "k"]))
            .await
            .unwrap();
        assert!(answer.is_none(), "recorded, not run");
        assert_eq!(fake.execs().len(), 1);
    }

    #[tokio::test]
    async fn logs_need_their_table_and_a_huge_tail_is_cut_to_max_lines() {
        let fake = Arc::new(FakeRuntime::new());
        fake.add_running("web", Duration::from_secs(100));
        for i in 0..50 {
            fake.log(
                "web",
                autoheal_containers::LogLine {
                    stream: autoheal_containers::LogStream::Stdout,
                    text: format!("line {i}"),
                },
            );
        }
        let mut without = gate_of("containers = [\"web\"]", ExecutionMode::Real, fake.clone());
        assert!(matches!(
            without.logs("web".into(), 10).await,
            Err(GateError::Denied(_))
        ));
        let mut gate = gate_of(
            "containers = [\"web\"]\n[capabilities.logs]\nmax_lines = 20",
            ExecutionMode::DryRun,
            fake.clone(),
        );
        let logs = gate.logs("web".into(), u32::MAX).await.unwrap();
        assert_eq!(
            logs.lines.len(),
            20,
            "reads are performed in dry-run too, bounded"
        );
        assert_eq!(logs.lines.last().unwrap().text, "line 49");
        let detail = gate.calls()[0].detail.clone().unwrap();
        assert!(detail.contains("at most max_lines = 20"), "{detail}");
    }

    #[tokio::test]
    async fn containers_allowed_by_label_are_those_carrying_it_and_selectors_never_widen() {
        let fake = Arc::new(FakeRuntime::new());
        for name in ["app-1", "app-2", "db"] {
            fake.add_running(name, Duration::from_secs(100));
        }
        fake.set_label("app-1", "com.docker.compose.service", "app");
        fake.set_label("app-2", "com.docker.compose.service", "app");
        fake.set_label("db", "com.docker.compose.service", "db");
        let caps = "containers = [\"label:com.docker.compose.service=app\"]";
        let mut gate = gate_of(caps, ExecutionMode::Real, fake.clone());
        let found = gate
            .list_by_label("com.docker.compose.service=app".into())
            .await
            .unwrap();
        assert_eq!(found, ["app-1", "app-2"]);
        for name in found {
            gate.restart(name).await.unwrap();
        }
        assert!(matches!(
            gate.restart("db".into()).await,
            Err(GateError::Denied(_))
        ));
        for wider in [
            "com.docker.compose.service=db",
            "com.docker.compose.service=app,x=y",
            "com.docker.compose.service",
            "com.docker.compose.service=",
            "com.docker.compose.service=*",
        ] {
            let err = gate.list_by_label(wider.into()).await.unwrap_err();
            assert!(matches!(err, GateError::Denied(_)), "{wider}: {err:?}");
        }
        assert_eq!(fake.restarts(), ["app-1", "app-2"]);
        assert_eq!(gate.calls()[0].detail.as_deref(), Some("2 found: app-1, app-2"));
    }

    #[tokio::test]
    async fn a_real_effect_is_an_intent_before_it_is_sent() {
        struct Recording(std::sync::Mutex<Vec<(Capability, String, String)>>);
        #[async_trait::async_trait]
        impl crate::capability::IntentLog for Recording {
            async fn intent(
                &self,
                _plugin: &str,
                capability: Capability,
                target: &str,
                detail: &str,
            ) -> Result<Option<u64>, crate::capability::IntentError> {
                let mut seen = self.0.lock().unwrap();
                seen.push((capability, target.into(), detail.into()));
                Ok(Some(seen.len() as u64))
            }
        }
        let fake = Arc::new(FakeRuntime::new());
        fake.add_running("web", Duration::from_secs(100));
        let intents = Arc::new(Recording(Default::default()));
        let mut services = services(fake.clone());
        services.intents = intents.clone();
        let grant = parse_manifest(
            "name = \"p\"\nversion = \"1\"\ncomponent = \"p.wasm\"\n[capabilities]\ncontainers = [\"web\"]\n\
             signals = [\"USR1\"]\n[[capabilities.exec]]\nargv = [\"true\"]",
        )
        .container_grant;
        let mut gate = CapabilityGate::new(
            "p".into(),
            grant,
            ExecutionMode::Real,
            services,
            Duration::ZERO,
            Joining::default(),
        );
        gate.signal("web".into(), "USR1".into()).await.unwrap();
        gate.exec("web".into(), words(&["true"])).await.unwrap();
        gate.inspect("web".into()).await.unwrap();
        let seen = intents.0.lock().unwrap().clone();
        assert_eq!(
            seen,
            [
                (Capability::ContainersSignal, "web".into(), "SIGUSR1".into()),
                (Capability::ContainersExec, "web".into(), "[\"true\"]".into()),
            ],
            "reads write no intent"
        );
        assert_eq!(gate.calls()[1].intent, Some(2));
    }
}
