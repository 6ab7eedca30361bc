//! The preview an operator approves: one line per call the plugin's dry-run
//! made, with what the container engine says of each container it would
//! restart now ("restart crm-api — up 3 h 12 m, restart count 2").

use autoheal_containers::{ContainerRuntime, uptime_seconds};
use autoheal_core::invocation::{CallOutcome, Capability, CapabilityCall};

/// The preview of `calls`; containers to restart are inspected by the host
/// (they are in the plugin's allow-list: the dry-run recorded them).
pub async fn preview(calls: &[CapabilityCall], containers: &dyn ContainerRuntime) -> Vec<String> {
    let mut lines = Vec::with_capacity(calls.len());
    for call in calls {
        let line = match (call.capability, call.outcome) {
            (Capability::ContainersRestart, CallOutcome::Recorded) => {
                let state = match containers.inspect(&call.target).await {
                    Ok(info) => {
                        let up = uptime_seconds(&info.started_at)
                            .map_or_else(|| "uptime unknown".to_owned(), |s| format!("up {}", span(s)));
                        let health = info.health.map(|h| format!(", {h}")).unwrap_or_default();
                        format!(
                            "{}, {up}, restart count {}{health}",
                            info.state, info.restart_count
                        )
                    }
                    Err(e) => format!("state unknown: {e}"),
                };
                format!("restart {} — {state}", call.target)
            }
            (capability, CallOutcome::Ok | CallOutcome::Recorded) => {
                format!("{} {}", verb(capability), call.target)
            }
            (capability, outcome) => format!(
                "{} {} — {}{}",
                verb(capability),
                call.target,
                outcome.as_str(),
                call.detail
                    .as_deref()
                    .map(|d| format!(": {d}"))
                    .unwrap_or_default()
            ),
        };
        lines.push(line);
    }
    lines
}

fn verb(capability: Capability) -> &'static str {
    match capability {
        Capability::ContainersInspect => "inspect",
        Capability::ContainersRestart => "restart",
    }
}

/// Seconds as people say them: `3 h 12 m`, `4 m 5 s`, `2 d 1 h`.
fn span(seconds: u64) -> String {
    let (d, h, m, s) = (
        seconds / 86_400,
        seconds / 3600 % 24,
        seconds / 60 % 60,
        seconds % 60,
    );
    match (d, h, m) {
        (0, 0, 0) => format!("{s} s"),
        (0, 0, _) => format!("{m} m {s} s"),
        (0, _, _) => format!("{h} h {m} m"),
        _ => format!("{d} d {h} h"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use autoheal_containers::FakeRuntime;

    #[test]
    fn spans_read_as_people_say_them() {
        assert_eq!(span(5), "5 s");
        assert_eq!(span(245), "4 m 5 s");
        assert_eq!(span(3 * 3600 + 12 * 60 + 9), "3 h 12 m");
        assert_eq!(span(2 * 86_400 + 3600), "2 d 1 h");
    }

    #[tokio::test]
    async fn a_recorded_restart_shows_the_container_as_it_is() {
        let engine = FakeRuntime::new();
        engine.add_running("crm-api", std::time::Duration::from_secs(3 * 3600 + 12 * 60));
        let calls = vec![
            CapabilityCall {
                capability: Capability::ContainersInspect,
                detail: None,
                intent: None,
                outcome: CallOutcome::Ok,
                target: "crm-api".into(),
            },
            CapabilityCall {
                capability: Capability::ContainersRestart,
                detail: None,
                intent: None,
                outcome: CallOutcome::Recorded,
                target: "crm-api".into(),
            },
            CapabilityCall {
                capability: Capability::ContainersRestart,
                detail: Some("not in the allow-list".into()),
                intent: None,
                outcome: CallOutcome::Denied,
                target: "db".into(),
            },
        ];
        let lines = preview(&calls, &engine).await;
        assert_eq!(lines[0], "inspect crm-api");
        assert!(
            lines[1].starts_with("restart crm-api — running, up 3 h 12 m"),
            "{}",
            lines[1]
        );
        assert!(lines[1].contains("restart count 0"), "{}", lines[1]);
        assert_eq!(lines[2], "restart db — denied: not in the allow-list");
    }
}
