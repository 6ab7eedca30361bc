//! `run-fix`: run one command inside a container (flush a cache, rotate a
//! log, `nginx -s reload`) and act on its exit code.
//!
//! The command is never run through a shell: its words are the argv, and the
//! manifest's `[[capabilities.exec]]` must allow exactly that argv (or a
//! prefix with bounded extra arguments), or the host denies it.
//!
//! # Config keys (the manifest's `[config]` table)
//!
//! - `container` or `container_label` (exactly one): the container, or the
//!   alert label that names it (the SDK's [`Target`]).
//! - `command` (required): the argv, words separated by blanks
//!   (`"redis-cli FLUSHDB"`). No quoting: a word cannot hold a blank.
//!
//! # What it does
//!
//! 1. A resolved alert: nothing.
//! 2. A bad config: fail, before any host call.
//! 3. Inspect the container. Not found, denied, or the engine cannot say:
//!    fail. Not running: skip (there is nothing to run the command in).
//! 4. Run the command. Exit code 0: acted, with the first line of its
//!    output. Another code: fail with its stderr (or stdout). Timed out:
//!    fail. In dry-run the host records it without running it: acted,
//!    saying so.

use autoheal_sdk::containers::ExecOutput;
use autoheal_sdk::prelude::*;
use autoheal_sdk::remedy;
use autoheal_sdk::target::Target;

export_plugin!(handle);

/// The most of a command's output quoted in a summary or an error.
const MAX_QUOTED: usize = 300;

/// The plugin's config, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Settings {
    target: Target,
    argv: Vec<String>,
}

impl Settings {
    fn from_config(config: &Config) -> Result<Self, String> {
        let target = Target::from_config(config)?;
        let argv: Vec<String> = config
            .require("command")?
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        if argv.is_empty() {
            return Err("config key `command` must not be empty".to_owned());
        }
        Ok(Settings { target, argv })
    }
}

/// What the command's result means: acted (with a summary) or failed.
fn judge(name: &str, command: &str, out: &ExecOutput) -> Result<String, String> {
    if !out.ran {
        return Ok(format!("recorded `{command}` in {name} (dry-run: not run)"));
    }
    if out.timed_out {
        return Err(format!(
            "`{command}` in {name} did not finish within the manifest's exec timeout"
        ));
    }
    match out.exit_code {
        Some(0) => {
            let said = first_line(&out.stdout);
            if said.is_empty() {
                Ok(format!("ran `{command}` in {name}"))
            } else {
                Ok(format!("ran `{command}` in {name}: {said}"))
            }
        }
        Some(code) => {
            let why = if out.stderr.trim().is_empty() {
                &out.stdout
            } else {
                &out.stderr
            };
            Err(format!(
                "`{command}` in {name} exited with {code}: {}",
                quoted(why.trim())
            ))
        }
        None => Err(format!("`{command}` in {name} gave no exit code")),
    }
}

/// The first non-blank line, bounded.
fn first_line(text: &str) -> String {
    quoted(text.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or(""))
}

/// At most [`MAX_QUOTED`] characters of `text`, its end kept (where an
/// error usually says what went wrong).
fn quoted(text: &str) -> String {
    let count = text.chars().count();
    if count <= MAX_QUOTED {
        return text.to_owned();
    }
    let tail: String = text.chars().skip(count - MAX_QUOTED).collect();
    format!("…{tail}")
}

/// The plugin's entry point: act on one alert.
fn handle(alert: Alert, config: Config) -> Result<Outcome, String> {
    if let Some(answer) = remedy::skip_resolved(&alert) {
        return Ok(answer);
    }
    let settings = Settings::from_config(&config)?;
    let name = settings.target.resolve(&alert)?;
    let command = settings.argv.join(" ");
    let info = containers::inspect(&name).map_err(|e| format!("cannot inspect {name}: {e}"))?;
    if !info.is_running() {
        return Ok(remedy::skip(format!(
            "{name} is {}, not running: `{command}` cannot run in it",
            info.state
        )));
    }
    let out = containers::exec(&name, &settings.argv).map_err(|e| format!("`{command}` in {name}: {e}"))?;
    let summary = judge(&name, &command, &out)?;
    log::info(&summary);
    Ok(Outcome::acted(summary))
}

#[cfg(test)]
mod tests {
    use super::*;
    use autoheal_sdk::testing::{
        FakeContainer, FakeHost, assert_resolved_alert_does_nothing, config, firing,
    };

    const FLUSH: &[&str] = &["redis-cli", "FLUSHDB"];

    fn bundled_config() -> Config {
        config(&[("container", "crm-cache"), ("command", "redis-cli FLUSHDB")])
    }

    /// The bundled manifest's allow-lists, `crm-cache` answering `out`.
    fn bundled_host(out: ExecOutput) -> FakeHost {
        FakeHost::new()
            .with(FakeContainer::running("crm-cache").on_exec(FLUSH, out))
            .allow(["crm-cache"])
            .allow_exec(FLUSH)
    }

    #[test]
    fn exit_code_zero_is_acted() {
        let host = bundled_host(ExecOutput::exited(0, "OK\n", "")).install();
        let answer = handle(firing(&[]), bundled_config());
        assert_eq!(
            answer,
            Ok(Outcome::acted("ran `redis-cli FLUSHDB` in crm-cache: OK"))
        );
        assert_eq!(
            host.executed(),
            vec![(
                "crm-cache".to_string(),
                vec!["redis-cli".to_string(), "FLUSHDB".to_string()]
            )]
        );
        assert_eq!(
            host.logged("info"),
            vec!["ran `redis-cli FLUSHDB` in crm-cache: OK"]
        );
    }

    #[test]
    fn another_exit_code_fails_with_stderr() {
        let _host = bundled_host(ExecOutput::exited(
            1,
            "",
            "READONLY You can't write against a read only replica.\n",
        ))
        .install();
        let err = handle(firing(&[]), bundled_config()).unwrap_err();
        assert_eq!(
            err,
            "`redis-cli FLUSHDB` in crm-cache exited with 1: READONLY You can't write against a read only replica."
        );
    }

    #[test]
    fn a_stopped_container_is_skipped_without_running_anything() {
        let host = FakeHost::new()
            .with(FakeContainer::running("crm-cache").state("exited"))
            .install();
        let answer = handle(firing(&[]), bundled_config()).unwrap();
        assert!(answer.is_skip(), "{answer:?}");
        assert_eq!(
            answer.text(),
            "crm-cache is exited, not running: `redis-cli FLUSHDB` cannot run in it"
        );
        assert!(host.executed().is_empty());
    }

    #[test]
    fn a_command_the_manifest_does_not_allow_is_denied() {
        let host = bundled_host(ExecOutput::exited(0, "", "")).install();
        let cfg = config(&[("container", "crm-cache"), ("command", "redis-cli FLUSHALL")]);
        let err = handle(firing(&[]), cfg).unwrap_err();
        assert!(
            err.starts_with("`redis-cli FLUSHALL` in crm-cache: denied:"),
            "{err}"
        );
        assert!(host.executed().is_empty());
    }

    #[test]
    fn dry_run_is_acted_saying_it_was_not_run() {
        let _host = bundled_host(ExecOutput::exited(0, "OK", "")).dry_run().install();
        assert_eq!(
            handle(firing(&[]), bundled_config()),
            Ok(Outcome::acted(
                "recorded `redis-cli FLUSHDB` in crm-cache (dry-run: not run)"
            ))
        );
    }

    #[test]
    fn judging_outputs() {
        let timed_out = ExecOutput {
            ran: true,
            timed_out: true,
            ..ExecOutput::default()
        };
        let err = judge("c", "x", &timed_out).unwrap_err();
        assert!(err.contains("did not finish"), "{err}");
        assert_eq!(
            judge("c", "x", &ExecOutput::exited(0, "\n\n", "")),
            Ok("ran `x` in c".into())
        );
        assert_eq!(
            judge("c", "x", &ExecOutput::exited(2, "only stdout", " ")),
            Err("`x` in c exited with 2: only stdout".into())
        );
        let long = "e".repeat(1000) + "END";
        let err = judge("c", "x", &ExecOutput::exited(3, "", &long)).unwrap_err();
        assert!(
            err.ends_with("eEND") && err.contains('…') && err.chars().count() < 400,
            "{err}"
        );
    }

    #[test]
    fn config_errors_and_resolved_alerts_need_no_host() {
        assert_resolved_alert_does_nothing(handle, bundled_config());
        let err = handle(firing(&[]), config(&[("container", "crm-cache")])).unwrap_err();
        assert_eq!(err, "config key `command` is required");
        let err = handle(
            firing(&[]),
            config(&[("container", "crm-cache"), ("command", "  ")]),
        )
        .unwrap_err();
        assert_eq!(err, "config key `command` must not be empty");
        let err = handle(firing(&[]), config(&[("command", "true")])).unwrap_err();
        assert!(err.contains("`container`"), "{err}");
    }
}
