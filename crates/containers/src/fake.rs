//! An in-process container engine for tests and `plugin test`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;

use super::output::{ExecCapture, LogTail};
use super::{
    ContainerError, ContainerInfo, ContainerRuntime, ExecLimits, ExecOutput, LabelSelector, LogLine, Logs,
};

/// An in-process engine for tests and `plugin test`: containers live in a
/// map, a restart bumps the restart count and the start time; execs answer
/// what was scripted, logs are what was written with [`FakeRuntime::log`].
#[derive(Default)]
pub struct FakeRuntime {
    containers: Mutex<HashMap<String, ContainerInfo>>,
    restarts: Mutex<Vec<String>>,
    restart_delay: Option<Duration>,
    signals: Mutex<Vec<(String, String)>>,
    execs: Mutex<Vec<(String, Vec<String>)>>,
    /// Per container: what its execs answer (exit 0, no output, if unset).
    exec_scripts: Mutex<HashMap<String, ExecOutput>>,
    logs: Mutex<HashMap<String, Vec<LogLine>>>,
}

fn locked<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

impl FakeRuntime {
    /// An engine with no containers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Restarts take this long (to test deadlines and concurrency).
    pub fn with_restart_delay(mut self, delay: Duration) -> Self {
        self.restart_delay = Some(delay);
        self
    }

    /// Adds a running container started `uptime` ago.
    pub fn add_running(&self, name: &str, uptime: Duration) {
        let started = chrono::Utc::now() - chrono::Duration::from_std(uptime).unwrap_or_default();
        self.add(ContainerInfo {
            name: name.into(),
            state: "running".into(),
            started_at: started.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
            restart_count: 0,
            health: None,
            labels: BTreeMap::new(),
        });
    }

    /// Adds (or replaces) a container.
    pub fn add(&self, info: ContainerInfo) {
        self.lock().insert(info.name.clone(), info);
    }

    /// Sets label `key` to `value` on the container `name`, if it exists.
    pub fn set_label(&self, name: &str, key: &str, value: &str) {
        if let Some(info) = self.lock().get_mut(name) {
            info.labels.insert(key.into(), value.into());
        }
    }

    /// What every exec in `name` answers from now on (its output is still
    /// cut to the caller's `max_output_bytes`).
    pub fn script_exec(&self, name: &str, output: ExecOutput) {
        locked(&self.exec_scripts).insert(name.into(), output);
    }

    /// Appends a line to the log of `name`.
    pub fn log(&self, name: &str, line: LogLine) {
        locked(&self.logs).entry(name.into()).or_default().push(line);
    }

    /// Names of the containers restarted so far, in order.
    pub fn restarts(&self) -> Vec<String> {
        locked(&self.restarts).clone()
    }

    /// (container, signal) sent so far, in order.
    pub fn signals(&self) -> Vec<(String, String)> {
        locked(&self.signals).clone()
    }

    /// (container, argv) run so far, in order.
    pub fn execs(&self) -> Vec<(String, Vec<String>)> {
        locked(&self.execs).clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, ContainerInfo>> {
        locked(&self.containers)
    }

    /// The container `name`, which must be running for `what`.
    fn running(&self, name: &str, what: &str) -> Result<(), ContainerError> {
        let containers = self.lock();
        let info = containers
            .get(name)
            .ok_or_else(|| ContainerError::NotFound(name.into()))?;
        if info.state != "running" {
            return Err(ContainerError::Runtime(format!(
                "cannot {what} container {name}: it is {}, not running",
                info.state
            )));
        }
        Ok(())
    }
}

#[async_trait]
impl ContainerRuntime for FakeRuntime {
    fn describe(&self) -> String {
        "in-process fake".into()
    }

    async fn version(&self) -> Result<String, ContainerError> {
        Ok("fake".into())
    }

    async fn inspect(&self, name: &str) -> Result<ContainerInfo, ContainerError> {
        self.lock()
            .get(name)
            .cloned()
            .ok_or_else(|| ContainerError::NotFound(name.into()))
    }

    async fn restart(&self, name: &str, _stop: Duration) -> Result<(), ContainerError> {
        if let Some(delay) = self.restart_delay {
            tokio::time::sleep(delay).await;
        }
        {
            let mut containers = self.lock();
            let info = containers
                .get_mut(name)
                .ok_or_else(|| ContainerError::NotFound(name.into()))?;
            info.restart_count += 1;
            info.state = "running".into();
            info.started_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
        }
        locked(&self.restarts).push(name.into());
        Ok(())
    }

    async fn signal(&self, name: &str, signal: &str) -> Result<(), ContainerError> {
        self.running(name, "signal")?;
        locked(&self.signals).push((name.into(), signal.into()));
        Ok(())
    }

    async fn exec(
        &self,
        name: &str,
        argv: &[String],
        limits: &ExecLimits,
    ) -> Result<ExecOutput, ContainerError> {
        self.running(name, "exec in")?;
        locked(&self.execs).push((name.into(), argv.to_vec()));
        let script = locked(&self.exec_scripts).get(name).cloned();
        let script = script.unwrap_or(ExecOutput {
            exit_code: Some(0),
            ..ExecOutput::default()
        });
        // The same bounds as a real engine's output.
        let mut capture = ExecCapture::new(limits.max_output_bytes);
        capture.push(super::LogStream::Stdout, script.stdout.as_bytes());
        capture.push(super::LogStream::Stderr, script.stderr.as_bytes());
        let (stdout, stderr, truncated) = capture.finish();
        Ok(ExecOutput {
            stdout,
            stderr,
            truncated: truncated || script.truncated,
            ..script
        })
    }

    async fn logs(&self, name: &str, tail: u32, max_bytes: usize) -> Result<Logs, ContainerError> {
        if !self.lock().contains_key(name) {
            return Err(ContainerError::NotFound(name.into()));
        }
        let logs = locked(&self.logs);
        let all = logs.get(name).map(Vec::as_slice).unwrap_or_default();
        let last = &all[all.len().saturating_sub(tail as usize)..];
        let mut kept = LogTail::new(max_bytes);
        for line in last {
            kept.push(line.stream, line.text.as_bytes());
            kept.push(line.stream, b"\n");
        }
        Ok(kept.finish())
    }

    async fn list(&self, selector: &LabelSelector) -> Result<Vec<String>, ContainerError> {
        let mut names: Vec<String> = self
            .lock()
            .values()
            .filter(|info| selector.matches(&info.labels))
            .map(|info| info.name.clone())
            .collect();
        names.sort();
        Ok(names)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{LogStream, uptime_seconds};

    #[tokio::test]
    async fn fake_restart_bumps_count_and_start_time() {
        let fake = FakeRuntime::new();
        fake.add_running("crm-api", Duration::from_secs(3600));
        let before = fake.inspect("crm-api").await.unwrap();
        assert!(uptime_seconds(&before.started_at).unwrap() >= 3599);
        fake.restart("crm-api", Duration::ZERO).await.unwrap();
        let after = fake.inspect("crm-api").await.unwrap();
        assert_eq!(after.restart_count, 1);
        assert!(uptime_seconds(&after.started_at).unwrap() < 5);
        assert_eq!(fake.restarts(), ["crm-api"]);
        assert_eq!(
            fake.restart("db", Duration::ZERO).await,
            Err(ContainerError::NotFound("db".into()))
        );
    }

    #[tokio::test]
    async fn fake_records_signals_and_execs_and_answers_scripts_within_limits() {
        let fake = FakeRuntime::new();
        fake.add_running("web", Duration::from_secs(60));
        fake.signal("web", "HUP").await.unwrap();
        assert_eq!(fake.signals(), [("web".to_owned(), "HUP".to_owned())]);

        let argv = vec!["nginx".to_owned(), "-s".to_owned(), "reload".to_owned()];
        let limits = ExecLimits {
            timeout: Duration::from_secs(5),
            max_output_bytes: 4,
        };
        let plain = fake.exec("web", &argv, &limits).await.unwrap();
        assert_eq!(plain.exit_code, Some(0));
        fake.script_exec(
            "web",
            ExecOutput {
                exit_code: Some(2),
                stdout: "reloaded".into(),
                stderr: "no".into(),
                ..ExecOutput::default()
            },
        );
        let scripted = fake.exec("web", &argv, &limits).await.unwrap();
        assert_eq!(
            (
                scripted.exit_code,
                scripted.stdout.as_str(),
                scripted.stderr.as_str()
            ),
            (Some(2), "relo", "no")
        );
        assert!(scripted.truncated && !scripted.timed_out);
        assert_eq!(
            fake.execs(),
            [("web".to_owned(), argv.clone()), ("web".to_owned(), argv.clone())]
        );

        assert_eq!(
            fake.signal("db", "HUP").await,
            Err(ContainerError::NotFound("db".into()))
        );
        let mut stopped = fake.inspect("web").await.unwrap();
        stopped.name = "old".into();
        stopped.state = "exited".into();
        fake.add(stopped);
        let refused = fake.exec("old", &argv, &limits).await.unwrap_err().to_string();
        assert!(refused.contains("not running"), "{refused}");
        assert_eq!(fake.execs().len(), 2, "a refused exec is not recorded");
    }

    #[tokio::test]
    async fn fake_logs_tail_and_list_by_label() {
        let fake = FakeRuntime::new();
        for name in ["app-2", "app-1", "db"] {
            fake.add_running(name, Duration::from_secs(60));
        }
        fake.set_label("app-1", "service", "app");
        fake.set_label("app-2", "service", "app");
        fake.set_label("db", "service", "db");
        let selector = LabelSelector::parse("service=app").unwrap();
        assert_eq!(fake.list(&selector).await.unwrap(), ["app-1", "app-2"]);
        assert_eq!(fake.inspect("db").await.unwrap().labels["service"], "db");

        for n in 1..=5 {
            let stream = if n % 2 == 0 {
                LogStream::Stderr
            } else {
                LogStream::Stdout
            };
            fake.log(
                "db",
                LogLine {
                    stream,
                    text: format!("l{n}"),
                },
            );
        }
        let logs = fake.logs("db", 3, 1000).await.unwrap();
        let texts: Vec<_> = logs.lines.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(texts, ["l3", "l4", "l5"]);
        assert_eq!(logs.lines[1].stream, LogStream::Stderr);
        let bounded = fake.logs("db", 5, 4).await.unwrap();
        assert_eq!(bounded.lines.len(), 2);
        assert!(bounded.truncated);
        assert!(fake.logs("db", 0, 1000).await.unwrap().lines.is_empty());
        assert!(fake.logs("app-1", 10, 1000).await.unwrap().lines.is_empty());
        assert_eq!(
            fake.logs("nope", 1, 1).await,
            Err(ContainerError::NotFound("nope".into()))
        );
    }
}
