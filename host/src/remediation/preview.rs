//! The preview an operator approves: one line per call the plugin's dry-run
//! made, with what the container engine says of each container it would
//! restart now ("restart crm-api — running, up 3h 12m, restart count 2").

use autoheal_containers::{ContainerRuntime, uptime_seconds};
use autoheal_core::invocation::{CallOutcome, Capability, CapabilityCall};
use autoheal_core::util::age_text;

/// The preview of `calls`; containers to restart are inspected by the host
/// (they are in the plugin's allow-list: the dry-run recorded them).
pub async fn preview(calls: &[CapabilityCall], containers: &dyn ContainerRuntime) -> Vec<String> {
    let mut lines = Vec::with_capacity(calls.len());
    for call in calls {
        let line = match (call.capability, call.outcome) {
            (Capability::ContainersRestart, CallOutcome::Recorded) => {
                let state = match containers.inspect(&call.target).await {
                    Ok(info) => {
                        let up = uptime_seconds(&info.started_at).map_or_else(
                            || "uptime unknown".to_owned(),
                            |s| format!("up {}", age_text(s as f64)),
                        );
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
                format!("{} {}", capability.verb(), call.target)
            }
            (capability, outcome) => format!(
                "{} {} — {}{}",
                capability.verb(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use autoheal_containers::FakeRuntime;

    #[tokio::test]
    async fn a_recorded_restart_shows_the_container_as_it_is() {
        let engine = FakeRuntime::new();
        engine.add_running("crm-api", std::time::Duration::from_secs(3 * 3600 + 12 * 60));
        let calls = vec![
            CapabilityCall {
                capability: Capability::ContainersInspect,
                detail: None,
                duration_ms: None,
                intent: None,
                outcome: CallOutcome::Ok,
                target: "crm-api".into(),
            },
            CapabilityCall {
                capability: Capability::ContainersRestart,
                detail: None,
                duration_ms: None,
                intent: None,
                outcome: CallOutcome::Recorded,
                target: "crm-api".into(),
            },
            CapabilityCall {
                capability: Capability::ContainersRestart,
                detail: Some("not in the allow-list".into()),
                duration_ms: None,
                intent: None,
                outcome: CallOutcome::Denied,
                target: "db".into(),
            },
        ];
        let lines = preview(&calls, &engine).await;
        assert_eq!(lines[0], "inspect crm-api");
        assert!(
            lines[1].starts_with("restart crm-api — running, up 3h 12m"),
            "{}",
            lines[1]
        );
        assert!(lines[1].contains("restart count 0"), "{}", lines[1]);
        assert_eq!(lines[2], "restart db — denied: not in the allow-list");
    }
}
