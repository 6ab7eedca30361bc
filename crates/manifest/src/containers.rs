//! The `containers` capability's part of a manifest: which containers a
//! plugin may touch (by name, or every container carrying a label), which
//! signals it may send them, which commands it may run in them, and how much
//! of their logs it may read. Parsed strictly and bounded here, so that the
//! gate only ever compares a call with what was validated.
//!
//! ```toml
//! [capabilities]
//! containers = ["crm-api", "label:com.docker.compose.service=crm-api"]
//! signals = ["HUP"]
//! [capabilities.logs]
//! max_lines = 200
//! [[capabilities.exec]]
//! argv = ["redis-cli", "DEL"]
//! max_extra_args = 1
//! extra_arg_pattern = "[a-z0-9:_-]{1,64}"
//! ```

use std::time::Duration;

pub use autoheal_containers::LabelSelector;
use autoheal_core::util::parse_duration;
use serde::Deserialize;

use crate::{MAX_CONTAINER_NAME, is_container_target};

/// What an allow-list entry starts with when it names a label, not a container.
pub const LABEL_PREFIX: &str = "label:";
/// Label entries one manifest may list.
pub const MAX_LABEL_ENTRIES: usize = 16;

/// Signals a manifest may list, by their names without `SIG`.
pub const KNOWN_SIGNALS: &[&str] = &[
    "HUP", "INT", "QUIT", "USR1", "USR2", "TERM", "KILL", "WINCH", "ALRM", "CONT", "STOP", "TSTP",
];

/// Lines of `logs` when `[capabilities.logs]` does not say, and the most it may say.
pub const DEFAULT_LOG_LINES: u32 = 100;
/// The most `[capabilities.logs] max_lines` may be.
pub const MAX_LOG_LINES: u32 = 1000;
/// Bytes of log text one `logs` call answers when the manifest does not say.
pub const DEFAULT_LOG_BYTES: usize = 64 * 1024;
/// The most `max_bytes` (logs) and `max_output_bytes` (exec) may be.
pub const MAX_READ_BYTES: usize = 1024 * 1024;

/// Commands one manifest may allow.
pub const MAX_EXEC_RULES: usize = 32;
/// Words of an allowed command's `argv`.
pub const MAX_ARGV_WORDS: usize = 16;
/// Longest word of an allowed `argv`, and longest extra argument.
pub const MAX_ARG_BYTES: usize = 1024;
/// The most `max_extra_args` may be.
pub const MAX_EXTRA_ARGS: usize = 8;
/// An exec's deadline when its rule does not say.
pub const DEFAULT_EXEC_TIMEOUT: Duration = Duration::from_secs(10);
/// Output kept per stream of an exec when its rule does not say.
pub const DEFAULT_EXEC_OUTPUT: usize = 64 * 1024;

/// Programs that interpret their arguments as commands: never allowed to
/// take arguments the plugin chooses (the host never runs a shell, and a
/// rule must not let a plugin bring one).
const SHELLS: &[&str] = &[
    "sh", "bash", "dash", "ash", "zsh", "ksh", "busybox", "env", "xargs", "su", "sudo", "nsenter", "chroot",
    "python", "python3", "perl", "ruby", "node",
];

/// `[capabilities]` as written (the sections of other capabilities are
/// their modules' own).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCapabilities {
    #[serde(default)]
    pub containers: Vec<String>,
    #[serde(default)]
    signals: Vec<String>,
    logs: Option<RawLogs>,
    #[serde(default)]
    exec: Vec<RawExec>,
    /// `[capabilities.http]`, validated by `crate::http`.
    pub http: Option<crate::http::RawHttp>,
    /// `[capabilities.prometheus]` (`crate::prometheus`).
    pub prometheus: Option<crate::prometheus::RawPrometheus>,
    /// `[capabilities.state]` (`crate::state`).
    pub state: Option<crate::state::RawState>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLogs {
    max_lines: Option<u32>,
    max_bytes: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExec {
    argv: Vec<String>,
    #[serde(default)]
    max_extra_args: usize,
    extra_arg_pattern: Option<String>,
    timeout: Option<String>,
    max_output_bytes: Option<usize>,
}

/// How much of a container's logs one `logs` call may read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogBounds {
    /// Lines asked beyond this are not read (the call is answered with these).
    pub max_lines: u32,
    /// Bytes of text answered; older lines are left out beyond it.
    pub max_bytes: usize,
}

/// One command a plugin may run in its containers.
#[derive(Debug, Clone)]
pub struct ExecRule {
    /// The command exactly, or the prefix extra arguments follow.
    pub argv: Vec<String>,
    /// Arguments a call may add after `argv` (0: exactly `argv`).
    pub max_extra_args: usize,
    /// What each extra argument must match, whole.
    pub extra_arg_pattern: Option<regex::Regex>,
    /// The command's deadline.
    pub timeout: Duration,
    /// Output kept per stream.
    pub max_output_bytes: usize,
}

impl PartialEq for ExecRule {
    fn eq(&self, other: &Self) -> bool {
        self.argv == other.argv
            && self.max_extra_args == other.max_extra_args
            && self.extra_arg_pattern.as_ref().map(regex::Regex::as_str)
                == other.extra_arg_pattern.as_ref().map(regex::Regex::as_str)
            && self.timeout == other.timeout
            && self.max_output_bytes == other.max_output_bytes
    }
}

impl ExecRule {
    /// Whether `argv` is this rule's command, with extra arguments it allows.
    pub fn allows(&self, argv: &[String]) -> bool {
        let Some(extra) = argv.strip_prefix(self.argv.as_slice()) else {
            return false;
        };
        if extra.len() > self.max_extra_args {
            return false;
        }
        extra.iter().all(|arg| {
            arg.len() <= MAX_ARG_BYTES
                && !arg.contains('\0')
                && self.extra_arg_pattern.as_ref().is_some_and(|p| p.is_match(arg))
        })
    }
}

/// What the `containers` capability allows a plugin, validated.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ContainerGrant {
    /// Containers allowed by name (`crm-api`, `edge/crm-api`).
    pub names: Vec<String>,
    /// Containers allowed by a label they carry, on every engine.
    pub labels: Vec<LabelSelector>,
    /// Signals `containers.signal` may send (names without `SIG`).
    pub signals: Vec<String>,
    /// `containers.logs`, if allowed.
    pub logs: Option<LogBounds>,
    /// Commands `containers.exec` may run.
    pub exec: Vec<ExecRule>,
}

impl ContainerGrant {
    /// A grant of these containers by name and nothing else (tests, tools).
    pub fn of_names<S: Into<String>>(names: impl IntoIterator<Item = S>) -> Self {
        Self {
            names: names.into_iter().map(Into::into).collect(),
            ..Self::default()
        }
    }

    /// The exec rule that allows `argv`, if one does.
    pub fn exec_rule(&self, argv: &[String]) -> Option<&ExecRule> {
        self.exec.iter().find(|rule| rule.allows(argv))
    }

    /// Whether `selector` (`key=value`) is one of the label entries, exactly.
    pub fn has_label(&self, selector: &str) -> Option<&LabelSelector> {
        self.labels.iter().find(|l| l.to_string() == selector)
    }

    /// Whether it allows no container at all (by name or by label).
    pub fn is_empty(&self) -> bool {
        self.names.is_empty() && self.labels.is_empty()
    }
}

/// The name a signal is listed and sent by: `HUP` for `HUP`, `SIGHUP`,
/// `hup`; `None` for a signal the host does not know.
pub fn signal_name(text: &str) -> Option<&'static str> {
    let upper = text.to_ascii_uppercase();
    let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
    KNOWN_SIGNALS.iter().copied().find(|s| *s == bare)
}

/// Validates `[capabilities]`; `timeout` is the plugin's deadline, which
/// every exec must end within.
pub(crate) fn grant(raw: &RawCapabilities, timeout: Duration) -> Result<ContainerGrant, String> {
    let mut grant = ContainerGrant::default();
    for entry in &raw.containers {
        if let Some(label) = entry.strip_prefix(LABEL_PREFIX) {
            let label =
                LabelSelector::parse(label).map_err(|e| format!("key `capabilities.containers`: {e}"))?;
            grant.labels.push(label);
        } else if is_container_target(entry) {
            grant.names.push(entry.clone());
        } else {
            // An entry no container can have is a typo that would fail
            // every restart at 3 a.m.: say so when the plugin is loaded.
            return Err(format!(
                "key `capabilities.containers`: {entry:?} is not a container name \
                 ([a-zA-Z0-9][a-zA-Z0-9_.-]*, at most {MAX_CONTAINER_NAME} bytes), \
                 optionally after an engine of [engines] and a `/` (`edge/crm-api`), \
                 nor `{LABEL_PREFIX}KEY=VALUE`"
            ));
        }
    }
    if grant.labels.len() > MAX_LABEL_ENTRIES {
        return Err(format!(
            "key `capabilities.containers`: {} label entries, at most {MAX_LABEL_ENTRIES}",
            grant.labels.len()
        ));
    }
    let allows_some = !grant.is_empty();
    for signal in &raw.signals {
        let Some(name) = signal_name(signal) else {
            return Err(format!(
                "key `capabilities.signals`: {signal:?} is not one of {}",
                KNOWN_SIGNALS.join(", ")
            ));
        };
        if !grant.signals.iter().any(|s| s == name) {
            grant.signals.push(name.to_owned());
        }
    }
    if let Some(logs) = &raw.logs {
        let max_lines = logs.max_lines.unwrap_or(DEFAULT_LOG_LINES);
        if max_lines == 0 || max_lines > MAX_LOG_LINES {
            return Err(format!(
                "key `capabilities.logs.max_lines`: {max_lines} must be between 1 and {MAX_LOG_LINES}"
            ));
        }
        let max_bytes = logs.max_bytes.unwrap_or(DEFAULT_LOG_BYTES);
        if max_bytes == 0 || max_bytes > MAX_READ_BYTES {
            return Err(format!(
                "key `capabilities.logs.max_bytes`: {max_bytes} must be between 1 and {MAX_READ_BYTES}"
            ));
        }
        grant.logs = Some(LogBounds { max_lines, max_bytes });
    }
    if raw.exec.len() > MAX_EXEC_RULES {
        return Err(format!(
            "key `capabilities.exec`: {} commands, at most {MAX_EXEC_RULES}",
            raw.exec.len()
        ));
    }
    for (i, rule) in raw.exec.iter().enumerate() {
        let rule = exec_rule(rule, timeout).map_err(|e| format!("key `capabilities.exec[{i}]`: {e}"))?;
        grant.exec.push(rule);
    }
    let asks_more = !grant.signals.is_empty() || grant.logs.is_some() || !grant.exec.is_empty();
    if asks_more && !allows_some {
        return Err(
            "key `capabilities.containers`: signals, logs and exec act on the containers listed \
             there, and it lists none"
                .into(),
        );
    }
    Ok(grant)
}

fn exec_rule(raw: &RawExec, plugin_timeout: Duration) -> Result<ExecRule, String> {
    if raw.argv.is_empty() || raw.argv.len() > MAX_ARGV_WORDS {
        return Err(format!(
            "`argv` must have 1 to {MAX_ARGV_WORDS} words, has {}",
            raw.argv.len()
        ));
    }
    if let Some(bad) = raw
        .argv
        .iter()
        .find(|w| w.is_empty() || w.len() > MAX_ARG_BYTES || w.chars().any(char::is_control))
    {
        return Err(format!(
            "`argv` word {bad:?} must be 1 to {MAX_ARG_BYTES} bytes without control characters"
        ));
    }
    if raw.max_extra_args > MAX_EXTRA_ARGS {
        return Err(format!(
            "`max_extra_args` = {} is more than {MAX_EXTRA_ARGS}",
            raw.max_extra_args
        ));
    }
    // The program that will interpret the extra arguments: for a multi-call
    // binary (`busybox echo`), the applet it runs.
    let base = |word: &str| word.rsplit('/').next().unwrap_or(word).to_owned();
    let program = match raw.argv.as_slice() {
        [multi, applet, ..] if base(multi) == "busybox" => base(applet),
        [first, ..] => base(first),
        [] => String::new(),
    };
    let program = program.as_str();
    let extra_arg_pattern = match (&raw.extra_arg_pattern, raw.max_extra_args) {
        (None, 0) => None,
        (None, _) => {
            return Err(
                "`max_extra_args` needs `extra_arg_pattern`, which every extra argument must match".into(),
            );
        }
        (Some(_), 0) => {
            return Err("`extra_arg_pattern` without `max_extra_args` allows nothing".into());
        }
        (Some(_), _) if SHELLS.contains(&program) => {
            return Err(format!(
                "{program:?} runs its arguments as commands: it may be allowed as an exact \
                 command, never with arguments the plugin chooses"
            ));
        }
        (Some(pattern), _) => {
            // Anchored: the pattern is what a whole argument is, not a part of it.
            let anchored = format!("^(?:{pattern})$");
            let regex = regex::RegexBuilder::new(&anchored)
                .size_limit(1 << 20)
                .build()
                .map_err(|e| format!("`extra_arg_pattern` {pattern:?}: {e}"))?;
            Some(regex)
        }
    };
    let timeout = match &raw.timeout {
        None => DEFAULT_EXEC_TIMEOUT.min(plugin_timeout),
        Some(text) => parse_duration(text).map_err(|e| format!("`timeout` {text:?}: {e}"))?,
    };
    if timeout.is_zero() || timeout > plugin_timeout {
        return Err(format!(
            "`timeout` of {} ms must be more than zero and at most the plugin's limits.timeout_ms ({} ms)",
            timeout.as_millis(),
            plugin_timeout.as_millis()
        ));
    }
    let max_output_bytes = raw.max_output_bytes.unwrap_or(DEFAULT_EXEC_OUTPUT);
    if max_output_bytes == 0 || max_output_bytes > MAX_READ_BYTES {
        return Err(format!(
            "`max_output_bytes` = {max_output_bytes} must be between 1 and {MAX_READ_BYTES}"
        ));
    }
    Ok(ExecRule {
        argv: raw.argv.clone(),
        max_extra_args: raw.max_extra_args,
        extra_arg_pattern,
        timeout,
        max_output_bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml: &str) -> Result<ContainerGrant, String> {
        let raw: RawCapabilities = toml::from_str(toml).map_err(|e| e.to_string())?;
        grant(&raw, Duration::from_secs(20))
    }

    #[test]
    fn names_and_labels_are_told_apart_and_checked() {
        let g =
            parse(r#"containers = ["crm-api", "edge/db", "label:com.docker.compose.service=crm"]"#).unwrap();
        assert_eq!(g.names, ["crm-api", "edge/db"]);
        assert_eq!(g.labels[0].to_string(), "com.docker.compose.service=crm");
        assert!(g.has_label("com.docker.compose.service=crm").is_some());
        assert!(g.has_label("com.docker.compose.service=crm,x=y").is_none());
        for bad in [
            r#"containers = ["label:noequals"]"#,
            r#"containers = ["label:=v"]"#,
            r#"containers = ["label:k=v=w"]"#,
            r#"containers = ["label:k y=v"]"#,
            r#"containers = ["lable:k=v"]"#,
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn signals_are_known_names_and_need_containers() {
        let g = parse("containers = [\"a\"]\nsignals = [\"HUP\", \"SIGUSR1\", \"hup\"]").unwrap();
        assert_eq!(g.signals, ["HUP", "USR1"]);
        let err = parse("containers = [\"a\"]\nsignals = [\"SIGFOO\"]").unwrap_err();
        assert!(err.contains("not one of"), "{err}");
        let err = parse("signals = [\"HUP\"]").unwrap_err();
        assert!(err.contains("lists none"), "{err}");
        assert_eq!(signal_name("sigterm"), Some("TERM"));
        assert_eq!(signal_name("9"), None);
    }

    #[test]
    fn logs_bounds_default_and_cap() {
        let g = parse("containers = [\"a\"]\n[logs]").unwrap();
        assert_eq!(
            g.logs,
            Some(LogBounds {
                max_lines: DEFAULT_LOG_LINES,
                max_bytes: DEFAULT_LOG_BYTES
            })
        );
        assert!(parse("containers = [\"a\"]\n[logs]\nmax_lines = 100000").is_err());
        assert!(parse("containers = [\"a\"]\n[logs]\nmax_bytes = 0").is_err());
    }

    #[test]
    fn exec_rules_allow_exact_commands_and_bounded_arguments_only() {
        let g = parse(
            r#"containers = ["a"]
[[exec]]
argv = ["nginx", "-s", "reload"]
[[exec]]
argv = ["redis-cli", "DEL"]
max_extra_args = 2
extra_arg_pattern = "[a-z0-9:_-]{1,64}"
timeout = "2s"
"#,
        )
        .unwrap();
        let argv = |words: &[&str]| words.iter().map(|w| w.to_string()).collect::<Vec<_>>();
        assert!(g.exec_rule(&argv(&["nginx", "-s", "reload"])).is_some());
        assert!(g.exec_rule(&argv(&["nginx", "-s", "reload", "now"])).is_none());
        assert!(g.exec_rule(&argv(&["nginx", "-s"])).is_none());
        assert!(g.exec_rule(&argv(&["redis-cli", "DEL", "k1", "k2"])).is_some());
        assert_eq!(
            g.exec_rule(&argv(&["redis-cli", "DEL"])).unwrap().timeout,
            Duration::from_secs(2)
        );
        let huge = "a".repeat(1 << 20);
        for hostile in [
            vec!["redis-cli", "DEL", "k1", "k2", "k3"],
            vec!["redis-cli", "DEL", "k;rm -rf /"],
            vec!["redis-cli", "DEL", "$(reboot)"],
            vec!["redis-cli", "DEL", "../etc"],
            vec!["redis-cli", "DEL", "k\0"],
            vec!["redis-cli", "DEL", "K1"],
            vec!["redis-cli", "DEL", huge.as_str()],
            vec!["redis-cli", "del", "k1"],
        ] {
            assert!(
                g.exec_rule(&argv(&hostile)).is_none(),
                "{:?}",
                &hostile[..hostile.len().min(3)]
            );
        }
    }

    #[test]
    fn exec_rules_that_would_hand_out_a_shell_or_no_bound_are_refused() {
        let cases = [
            (
                "argv = [\"sh\", \"-c\"]\nmax_extra_args = 1\nextra_arg_pattern = \".*\"",
                "runs its arguments",
            ),
            (
                "argv = [\"/bin/bash\"]\nmax_extra_args = 1\nextra_arg_pattern = \".*\"",
                "runs its arguments",
            ),
            (
                "argv = [\"redis-cli\"]\nmax_extra_args = 1",
                "needs `extra_arg_pattern`",
            ),
            ("argv = []", "1 to 16 words"),
            ("argv = [\"x\"]\ntimeout = \"1h\"", "at most the plugin's"),
            ("argv = [\"x\"]\nmax_output_bytes = 100000000", "between 1 and"),
            (
                "argv = [\"x\"]\nmax_extra_args = 1\nextra_arg_pattern = \"(\"",
                "extra_arg_pattern",
            ),
            (
                "argv = [\"x\"]\nmax_extra_args = 99\nextra_arg_pattern = \"a\"",
                "more than 8",
            ),
        ];
        for (rule, expected) in cases {
            let err = parse(&format!("containers = [\"a\"]\n[[exec]]\n{rule}")).unwrap_err();
            assert!(err.contains(expected), "{rule}: {err}");
        }
        // busybox runs its applets: `busybox echo` may take arguments,
        // `busybox sh` may not, nor `busybox` alone (its first argument
        // would choose the applet).
        let busybox = |argv: &str| {
            parse(&format!(
                "containers = [\"a\"]\n[[exec]]\nargv = {argv}\nmax_extra_args = 1\nextra_arg_pattern = \"[a-z]+\""
            ))
        };
        assert!(busybox("[\"/bin/busybox\", \"echo\"]").is_ok());
        assert!(busybox("[\"/bin/busybox\", \"sh\"]").is_err());
        assert!(busybox("[\"/bin/busybox\"]").is_err());
        // An exact shell command is the manifest author's own choice.
        assert!(parse("containers = [\"a\"]\n[[exec]]\nargv = [\"sh\", \"-c\", \"kill -HUP 1\"]").is_ok());
    }
}
