//! A fake host for native unit tests: seeded containers that answer the
//! container calls as the host does, a record of every call, and a capture
//! of the plugin's log.
//!
//! ```
//! use autoheal_sdk::containers::{self, ExecOutput};
//! use autoheal_sdk::testing::{FakeContainer, FakeHost};
//!
//! let host = FakeHost::new()
//!     .with(
//!         FakeContainer::running("cache")
//!             .on_exec(&["redis-cli", "FLUSHALL"], ExecOutput::exited(0, "OK", "")),
//!     )
//!     .allow(["cache"])
//!     .install();
//! let out = containers::exec("cache", &["redis-cli", "FLUSHALL"]).unwrap();
//! assert_eq!(out.stdout, "OK");
//! assert!(containers::restart("db").is_err(), "not in the allow-list: denied");
//! assert_eq!(host.executed(), vec![("cache".to_string(), vec!["redis-cli".to_string(), "FLUSHALL".to_string()])]);
//! ```
//!
//! It answers as the host does: a container outside [`FakeHost::allow`] is
//! `Denied` (the manifest's `[capabilities] containers`, names or
//! `label:KEY=VALUE`), one in [`FakeHost::fail`] a `Runtime` error, one not
//! seeded `NotFound`; a signal outside [`FakeHost::allow_signals`] and a
//! command outside [`FakeHost::allow_exec`] are `Denied`. Without an
//! allow-list everything is allowed. In [`FakeHost::dry_run`] the effects
//! are recorded and not performed (`exec` answers `ran: false`).

// Inside a component the SDK calls the host's imports, and the fake's
// answering half goes unused.
#![cfg_attr(target_arch = "wasm32", allow(dead_code))]

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Deref;
use std::rc::Rc;

use crate::containers::{ContainerError, ContainerInfo, ExecOutput, LogLine, LogSource, LogTail};

mod services;

/// A seeded container: what `inspect` tells of it, its output for `logs`,
/// and the output of the commands `exec` runs in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeContainer {
    info: ContainerInfo,
    output: Vec<LogLine>,
    execs: Vec<(Vec<String>, ExecOutput)>,
}

impl FakeContainer {
    /// A container running for an hour (started `2024-05-01T09:00:00Z`),
    /// no health check, no labels, no output.
    pub fn running(name: &str) -> Self {
        FakeContainer {
            info: ContainerInfo {
                name: name.to_owned(),
                state: "running".to_owned(),
                started_at: "2024-05-01T09:00:00Z".to_owned(),
                uptime_seconds: Some(3600),
                restart_count: 0,
                health: None,
                labels: BTreeMap::new(),
            },
            output: Vec::new(),
            execs: Vec::new(),
        }
    }

    /// Its engine state (`"exited"`, `"restarting"`, ...).
    pub fn state(mut self, state: &str) -> Self {
        self.info.state = state.to_owned();
        self
    }

    /// Its uptime (`None`: the engine gave no parsable start time).
    pub fn uptime(mut self, seconds: Option<u64>) -> Self {
        self.info.uptime_seconds = seconds;
        self
    }

    /// Its health-check status.
    pub fn health(mut self, health: &str) -> Self {
        self.info.health = Some(health.to_owned());
        self
    }

    /// A label it carries.
    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.info.labels.insert(key.to_owned(), value.to_owned());
        self
    }

    /// A line it wrote to stdout (after the ones before).
    pub fn stdout(mut self, text: &str) -> Self {
        self.output.push(LogLine {
            source: LogSource::Stdout,
            text: text.to_owned(),
        });
        self
    }

    /// A line it wrote to stderr (after the ones before).
    pub fn stderr(mut self, text: &str) -> Self {
        self.output.push(LogLine {
            source: LogSource::Stderr,
            text: text.to_owned(),
        });
        self
    }

    /// What `exec` of exactly `argv` answers. A command not scripted exits 0
    /// with no output.
    pub fn on_exec(mut self, argv: &[&str], output: ExecOutput) -> Self {
        let argv = argv.iter().map(|a| a.to_string()).collect();
        self.execs.push((argv, output));
        self
    }
}

/// One call the plugin made, in order, whatever its answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// `"inspect"`, `"restart"`, `"signal"`, `"exec"`, `"logs"` or
    /// `"list-by-label"` (the WIT names).
    pub capability: &'static str,
    /// The container name, or the selector of `list-by-label`.
    pub target: String,
    /// The signal (without `SIG`), the argv joined by spaces, the tail; empty
    /// for the others.
    pub detail: String,
    /// What the fake answered: `Ok`, or the error.
    pub result: Result<(), ContainerError>,
}

#[derive(Debug, Default)]
struct State {
    containers: BTreeMap<String, FakeContainer>,
    allowed: Option<BTreeSet<String>>,
    signals: Option<BTreeSet<String>>,
    commands: Option<Vec<Vec<String>>>,
    failing: BTreeMap<String, String>,
    dry_run: bool,
    calls: Vec<Call>,
    /// The commands run, whole (a call's detail joins the words).
    executed: Vec<(String, Vec<String>)>,
    log: Vec<(String, String)>,
    /// HTTP, Prometheus and state (`services`).
    services: services::Services,
}

/// The fake host: build it, [`install`](FakeHost::install) it, run the
/// plugin's `handle`, then read what it did.
#[derive(Debug, Clone, Default)]
pub struct FakeHost {
    state: Rc<RefCell<State>>,
}

impl FakeHost {
    /// A host with no containers and no allow-lists.
    pub fn new() -> Self {
        FakeHost::default()
    }

    /// Seeds a container.
    pub fn with(self, container: FakeContainer) -> Self {
        let name = container.info.name.clone();
        self.state.borrow_mut().containers.insert(name, container);
        self
    }

    /// The manifest's `[capabilities] containers`: names, or
    /// `label:KEY=VALUE` (every container carrying that label, and that
    /// selector for `list_by_label`). Any other container is `Denied`.
    pub fn allow<I: IntoIterator<Item = S>, S: Into<String>>(self, containers: I) -> Self {
        self.state.borrow_mut().allowed = Some(containers.into_iter().map(Into::into).collect());
        self
    }

    /// The manifest's `[capabilities] signals` (`"HUP"`; `"SIGHUP"` is the
    /// same). Any other signal is `Denied`.
    pub fn allow_signals<I: IntoIterator<Item = S>, S: AsRef<str>>(self, signals: I) -> Self {
        let signals = signals.into_iter().map(|s| signal_name(s.as_ref())).collect();
        self.state.borrow_mut().signals = Some(signals);
        self
    }

    /// A command of the manifest's `[[capabilities.exec]]`, exactly this
    /// argv (the fake knows no prefixes). Once one is allowed, any other
    /// command is `Denied`.
    pub fn allow_exec(self, argv: &[&str]) -> Self {
        let argv = argv.iter().map(|a| a.to_string()).collect();
        self.state
            .borrow_mut()
            .commands
            .get_or_insert_with(Vec::new)
            .push(argv);
        self
    }

    /// Every call on `name` fails with a `Runtime` error saying `message`
    /// (the engine cannot be reached).
    pub fn fail(self, name: &str, message: &str) -> Self {
        (self.state.borrow_mut().failing).insert(name.to_owned(), message.to_owned());
        self
    }

    /// Dry-run: effects are recorded, not performed (`exec` answers
    /// `ran: false`); reads answer as always.
    pub fn dry_run(self) -> Self {
        self.state.borrow_mut().dry_run = true;
        self
    }

    /// Makes this the host of the SDK's calls on this thread until the
    /// returned guard is dropped (each `#[test]` runs on a thread of its
    /// own). The guard reads like the host.
    pub fn install(self) -> Installed {
        let before = INSTALLED.with(|slot| slot.replace(Some(self.clone())));
        Installed { host: self, before }
    }

    /// Every call, in order, denied ones too.
    pub fn calls(&self) -> Vec<Call> {
        self.state.borrow().calls.clone()
    }

    /// The containers restarted (in dry-run: whose restart was recorded).
    pub fn restarted(&self) -> Vec<String> {
        self.effects("restart").map(|call| call.target).collect()
    }

    /// The signals sent, as `(container, signal without SIG)`.
    pub fn signalled(&self) -> Vec<(String, String)> {
        self.effects("signal")
            .map(|call| (call.target, call.detail))
            .collect()
    }

    /// The commands run, as `(container, argv)`.
    pub fn executed(&self) -> Vec<(String, Vec<String>)> {
        self.state.borrow().executed.clone()
    }

    /// The plugin's log lines, as `(level, message)`.
    pub fn log_lines(&self) -> Vec<(String, String)> {
        self.state.borrow().log.clone()
    }

    /// The messages logged at `level`.
    pub fn logged(&self, level: &str) -> Vec<String> {
        let state = self.state.borrow();
        state
            .log
            .iter()
            .filter(|(l, _)| l == level)
            .map(|(_, m)| m.clone())
            .collect()
    }

    /// A seeded container as `inspect` would tell of it now.
    pub fn container(&self, name: &str) -> Option<ContainerInfo> {
        self.state.borrow().containers.get(name).map(|c| c.info.clone())
    }

    fn effects(&self, capability: &'static str) -> impl Iterator<Item = Call> {
        self.calls()
            .into_iter()
            .filter(move |call| call.capability == capability && call.result.is_ok())
    }

    fn record<T>(
        &self,
        capability: &'static str,
        target: &str,
        detail: String,
        result: Result<T, ContainerError>,
    ) -> Result<T, ContainerError> {
        self.state.borrow_mut().calls.push(Call {
            capability,
            target: target.to_owned(),
            detail,
            result: result.as_ref().map(|_| ()).map_err(Clone::clone),
        });
        result
    }

    /// The container a call may reach: allowed, not failing, seeded.
    fn reach(&self, name: &str) -> Result<(), ContainerError> {
        let state = self.state.borrow();
        if let Some(allowed) = &state.allowed {
            let by_label = state.containers.get(name).is_some_and(|c| {
                c.info
                    .labels
                    .iter()
                    .any(|(k, v)| allowed.contains(&format!("label:{k}={v}")))
            });
            if !allowed.contains(name) && !by_label {
                return Err(ContainerError::Denied(format!(
                    "container {name} is not in the manifest's containers"
                )));
            }
        }
        if let Some(message) = state.failing.get(name) {
            return Err(ContainerError::Runtime(message.clone()));
        }
        if !state.containers.contains_key(name) {
            return Err(ContainerError::NotFound(name.to_owned()));
        }
        Ok(())
    }

    pub(crate) fn inspect(&self, name: &str) -> Result<ContainerInfo, ContainerError> {
        let result = self.reach(name).map(|()| {
            let state = self.state.borrow();
            state.containers[name].info.clone()
        });
        self.record("inspect", name, String::new(), result)
    }

    pub(crate) fn restart(&self, name: &str) -> Result<(), ContainerError> {
        let result = self.reach(name).map(|()| {
            let mut state = self.state.borrow_mut();
            if !state.dry_run {
                let info = &mut state.containers.get_mut(name).expect("reached").info;
                info.state = "running".to_owned();
                info.uptime_seconds = Some(0);
                info.restart_count += 1;
            }
        });
        self.record("restart", name, String::new(), result)
    }

    pub(crate) fn signal(&self, name: &str, signal: &str) -> Result<(), ContainerError> {
        let signal = signal_name(signal);
        let result = self.reach(name).and_then(|()| {
            let state = self.state.borrow();
            match &state.signals {
                Some(allowed) if !allowed.contains(&signal) => Err(ContainerError::Denied(format!(
                    "signal {signal} is not in the manifest's signals"
                ))),
                _ => Ok(()),
            }
        });
        self.record("signal", name, signal, result)
    }

    pub(crate) fn exec(&self, name: &str, argv: &[String]) -> Result<ExecOutput, ContainerError> {
        let result = self.reach(name).and_then(|()| {
            let mut state = self.state.borrow_mut();
            if argv.is_empty() {
                return Err(ContainerError::Denied("exec needs a command".to_owned()));
            }
            if let Some(commands) = &state.commands
                && !commands.iter().any(|allowed| allowed == argv)
            {
                return Err(ContainerError::Denied(format!(
                    "command {argv:?} is not in the manifest's exec"
                )));
            }
            state.executed.push((name.to_owned(), argv.to_vec()));
            if state.dry_run {
                return Ok(ExecOutput::not_run());
            }
            let scripted = state.containers[name].execs.iter().find(|(a, _)| a == argv);
            Ok(scripted.map_or_else(|| ExecOutput::exited(0, "", ""), |(_, out)| out.clone()))
        });
        self.record("exec", name, argv.join(" "), result)
    }

    pub(crate) fn logs(&self, name: &str, tail: u32) -> Result<LogTail, ContainerError> {
        let result = self.reach(name).map(|()| {
            let state = self.state.borrow();
            let output = &state.containers[name].output;
            let skip = output.len().saturating_sub(tail as usize);
            LogTail {
                lines: output[skip..].to_vec(),
                truncated: false,
            }
        });
        self.record("logs", name, tail.to_string(), result)
    }

    pub(crate) fn list_by_label(&self, selector: &str) -> Result<Vec<String>, ContainerError> {
        let result = (|| {
            let state = self.state.borrow();
            let Some((key, value)) = selector.split_once('=').filter(|(k, _)| !k.is_empty()) else {
                return Err(ContainerError::Denied(format!(
                    "selector {selector:?} is not KEY=VALUE"
                )));
            };
            if let Some(allowed) = &state.allowed
                && !allowed.contains(&format!("label:{selector}"))
            {
                return Err(ContainerError::Denied(format!(
                    "selector {selector} is not in the manifest's containers"
                )));
            }
            Ok(state
                .containers
                .values()
                .filter(|c| c.info.labels.get(key).is_some_and(|v| v == value))
                .map(|c| c.info.name.clone())
                .collect())
        })();
        self.record("list-by-label", selector, String::new(), result)
    }

    pub(crate) fn log(&self, level: &str, message: &str) {
        let mut state = self.state.borrow_mut();
        state.log.push((level.to_owned(), message.to_owned()));
    }
}

/// `"SIGHUP"`, `"hup"` and `"HUP"` are one signal: `"HUP"`.
fn signal_name(signal: &str) -> String {
    let upper = signal.trim().to_ascii_uppercase();
    upper.strip_prefix("SIG").unwrap_or(&upper).to_owned()
}

thread_local! {
    static INSTALLED: RefCell<Option<FakeHost>> = const { RefCell::new(None) };
}

/// A [`FakeHost`] installed as the SDK's host, until dropped (then the one
/// before it, if any, is back).
#[derive(Debug)]
pub struct Installed {
    host: FakeHost,
    before: Option<FakeHost>,
}

impl Deref for Installed {
    type Target = FakeHost;

    fn deref(&self) -> &FakeHost {
        &self.host
    }
}

impl Drop for Installed {
    fn drop(&mut self) {
        let before = self.before.take();
        INSTALLED.with(|slot| slot.replace(before));
    }
}

/// Runs `call` on the installed fake host; without one, panics saying how
/// to install one (a host call natively has nowhere else to go).
#[cfg_attr(target_arch = "wasm32", allow(dead_code))]
pub(crate) fn with_installed<T>(call: &str, call_host: impl FnOnce(&FakeHost) -> T) -> T {
    let host = INSTALLED.with(|slot| slot.borrow().clone());
    match host {
        Some(host) => call_host(&host),
        None => panic!(
            "autoheal_sdk: {call}() has no host outside a component; in a test, install one: \
             `let host = autoheal_sdk::testing::FakeHost::new().with(...).install();`"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::containers;
    use crate::log;

    fn argv(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    #[test]
    #[should_panic(expected = "FakeHost::new()")]
    fn without_a_fake_a_call_says_how_to_install_one() {
        let _ = containers::restart("web");
    }

    #[test]
    fn inspect_and_restart_answer_from_the_seeded_containers() {
        let host = FakeHost::new()
            .with(
                FakeContainer::running("web")
                    .uptime(Some(10))
                    .health("unhealthy")
                    .label("tier", "front"),
            )
            .install();
        let info = containers::inspect("web").unwrap();
        assert_eq!(
            (info.health.as_deref(), info.label("tier")),
            (Some("unhealthy"), Some("front"))
        );
        containers::restart("web").unwrap();
        let after = containers::inspect("web").unwrap();
        assert_eq!((after.uptime_seconds, after.restart_count), (Some(0), 1));
        assert_eq!(
            containers::inspect("db"),
            Err(ContainerError::NotFound("db".into()))
        );
        assert_eq!(host.restarted(), vec!["web"]);
        let calls: Vec<_> = host
            .calls()
            .iter()
            .map(|c| (c.capability, c.target.clone()))
            .collect();
        assert_eq!(
            calls,
            vec![
                ("inspect", "web".into()),
                ("restart", "web".into()),
                ("inspect", "web".into()),
                ("inspect", "db".into()),
            ]
        );
    }

    #[test]
    fn allow_lists_deny_and_a_failing_engine_is_a_runtime_error() {
        let host = FakeHost::new()
            .with(FakeContainer::running("web"))
            .with(FakeContainer::running("db"))
            .with(FakeContainer::running("crm-api-1").label("com.docker.compose.service", "crm-api"))
            .allow(["web", "label:com.docker.compose.service=crm-api"])
            .allow_signals(["SIGHUP"])
            .allow_exec(&["nginx", "-s", "reload"])
            .fail("web", "engine down")
            .install();
        assert!(matches!(
            containers::restart("db"),
            Err(ContainerError::Denied(_))
        ));
        assert_eq!(
            containers::inspect("web"),
            Err(ContainerError::Runtime("engine down".into()))
        );
        // Allowed by its label.
        containers::signal("crm-api-1", "hup").unwrap();
        let kill = containers::signal("crm-api-1", "KILL").unwrap_err();
        assert_eq!(
            kill,
            ContainerError::Denied("signal KILL is not in the manifest's signals".into())
        );
        containers::exec("crm-api-1", &["nginx", "-s", "reload"]).unwrap();
        assert!(matches!(
            containers::exec("crm-api-1", &["nginx", "-s", "reload", "now"]),
            Err(ContainerError::Denied(_))
        ));
        assert!(matches!(
            containers::exec("crm-api-1", &[] as &[&str]),
            Err(ContainerError::Denied(_))
        ));
        assert_eq!(
            host.signalled(),
            vec![("crm-api-1".to_string(), "HUP".to_string())]
        );
        assert_eq!(
            host.executed(),
            vec![("crm-api-1".to_string(), argv(&["nginx", "-s", "reload"]))]
        );
        assert!(host.restarted().is_empty(), "a denied restart is not a restart");
        assert_eq!(host.calls().len(), 7, "denied calls are recorded too");
    }

    #[test]
    fn exec_answers_what_was_scripted_and_dry_run_records_without_running() {
        let seeded = || {
            FakeContainer::running("cache")
                .on_exec(&["redis-cli", "FLUSHALL"], ExecOutput::exited(1, "", "READONLY"))
        };
        let host = FakeHost::new().with(seeded()).install();
        let out = containers::exec("cache", &["redis-cli", "FLUSHALL"]).unwrap();
        assert_eq!((out.exit_code, out.stderr.as_str()), (Some(1), "READONLY"));
        assert!(
            containers::exec("cache", &["true"]).unwrap().success(),
            "unscripted: exit 0"
        );
        drop(host);

        let host = FakeHost::new().with(seeded()).dry_run().install();
        assert_eq!(
            containers::exec("cache", &["redis-cli", "FLUSHALL"]),
            Ok(ExecOutput::not_run())
        );
        containers::restart("cache").unwrap();
        assert_eq!(
            host.container("cache").unwrap().restart_count,
            0,
            "dry-run changes nothing"
        );
        assert_eq!(host.restarted(), vec!["cache"], "but records the restart");
        assert_eq!(host.executed().len(), 1);
    }

    #[test]
    fn logs_answer_the_last_lines_and_list_by_label_the_carriers() {
        let host = FakeHost::new()
            .with(
                FakeContainer::running("api")
                    .stdout("one")
                    .stderr("two")
                    .stdout("three"),
            )
            .with(FakeContainer::running("app-1").label("svc", "app"))
            .with(FakeContainer::running("app-2").label("svc", "app"))
            .with(FakeContainer::running("other").label("svc", "other"))
            .install();
        let tail = containers::logs("api", 2).unwrap();
        let texts: Vec<_> = tail.lines.iter().map(|l| (l.source, l.text.as_str())).collect();
        assert_eq!(
            texts,
            vec![(LogSource::Stderr, "two"), (LogSource::Stdout, "three")]
        );
        assert_eq!(containers::logs("api", 100).unwrap().lines.len(), 3);
        assert!(containers::logs("api", 0).unwrap().lines.is_empty());
        assert_eq!(
            containers::list_by_label("svc=app").unwrap(),
            vec!["app-1", "app-2"]
        );
        assert_eq!(
            containers::list_by_label("svc=none").unwrap(),
            Vec::<String>::new()
        );
        assert!(matches!(
            containers::list_by_label("svc"),
            Err(ContainerError::Denied(_))
        ));
        assert!(matches!(
            containers::list_by_label("=app"),
            Err(ContainerError::Denied(_))
        ));
        drop(host);

        let _host = FakeHost::new()
            .with(FakeContainer::running("app-1").label("svc", "app"))
            .allow(["label:svc=app"])
            .install();
        assert!(containers::list_by_label("svc=app").is_ok());
        assert!(
            matches!(
                containers::list_by_label("svc=other"),
                Err(ContainerError::Denied(_))
            ),
            "a selector the manifest does not list is denied"
        );
    }

    #[test]
    fn the_log_is_captured_and_a_guard_puts_back_the_host_before_it() {
        let outer = FakeHost::new().install();
        log::info("outer");
        {
            let inner = FakeHost::new().install();
            log::warn("inner");
            assert_eq!(inner.log_lines(), vec![("warn".to_string(), "inner".to_string())]);
        }
        log::error("outer again");
        assert_eq!(outer.logged("info"), vec!["outer"]);
        assert_eq!(outer.logged("error"), vec!["outer again"]);
        assert_eq!(signal_name(" SIGusr1 "), "USR1");
    }
}
