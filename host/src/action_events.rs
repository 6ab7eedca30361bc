//! Turning one plugin invocation into its events: a `capability_denied` for
//! each refused call, then one `action_dry_run`, `action_ok`,
//! `action_skipped` or `action_fail` with everything the invocation did.

use autoheal_core::alert::Alert;
use autoheal_core::event::{ActionFinished, ActionSubject, CapabilityDenied, DenialReason, EventBody};
use autoheal_core::invocation::{CallOutcome, Capability, CapabilityCall};
use autoheal_core::mode::ExecutionMode;

use autoheal_sandbox::capability::HostServices;
use autoheal_sandbox::registry::Plugin;
use autoheal_sandbox::{Invocation, Outcome, PluginRuntime};

/// Invokes `plugin` once on `alert` and returns what it did as events, for
/// the caller to record: a `capability_denied` per refused call, then the
/// outcome (always last). Nothing else of an action happens here (no
/// admission, cooldown or recording). A
/// real action fails on purpose with probability `chaos_rate` (a chaos
/// drill): the plugin is not run and nothing is touched.
pub async fn invoke_to_events(
    runtime: &PluginRuntime,
    services: HostServices,
    plugin: &Plugin,
    alert: &Alert,
    mode: ExecutionMode,
    chaos_rate: f64,
) -> Vec<EventBody> {
    let subject = ActionSubject::new(alert, &plugin.manifest.name, &plugin.manifest.version);
    if mode == ExecutionMode::Real && chaos_rate > 0.0 && random_unit() < chaos_rate {
        tracing::warn!(plugin = %subject.plugin, alertname = %subject.alertname, "chaos drill: action failed on purpose");
        return vec![chaos_failure(subject, chaos_rate)];
    }
    let invocation = runtime
        .invoke(&plugin.component, &plugin.manifest, alert, mode, services)
        .await;
    let mut events: Vec<EventBody> = denials(&invocation, &subject)
        .into_iter()
        .map(EventBody::CapabilityDenied)
        .collect();
    events.push(outcome(invocation, subject, mode));
    events
}

/// A number in [0, 1), from the standard library's per-process random keys.
fn random_unit() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let bits = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

/// The `action_fail` of a chaos drill.
fn chaos_failure(subject: ActionSubject, rate: f64) -> EventBody {
    EventBody::ActionFail(ActionFinished {
        alertname: subject.alertname,
        calls: Vec::new(),
        chaos: true,
        cmd: None,
        cooldown_key: None,
        cooldown_until: None,
        dry_run: false,
        duration_ms: 0.0,
        error: Some(format!(
            "chaos drill: failed on purpose (AUTOHEAL_CHAOS_FAILURE_RATE = {rate}); the plugin did not run"
        )),
        fingerprint: subject.fingerprint,
        generator_url: subject.generator_url,
        logs: Vec::new(),
        output: None,
        plugin: subject.plugin,
        plugin_version: subject.plugin_version,
        reason: Some("chaos".into()),
        status: subject.status,
        stderr: None,
        stdout: None,
        target: None,
        targets: Vec::new(),
        truncated: Vec::new(),
    })
}

/// A `capability_denied` for each call the host refused.
fn denials(invocation: &Invocation, subject: &ActionSubject) -> Vec<CapabilityDenied> {
    invocation
        .calls
        .iter()
        .filter_map(|call| {
            let reason = match call.outcome {
                CallOutcome::Denied => DenialReason::NotAllowed,
                CallOutcome::CircuitOpen => DenialReason::CircuitOpen,
                _ => return None,
            };
            let subject = subject.clone();
            Some(CapabilityDenied {
                alertname: subject.alertname,
                capability: call.capability,
                detail: call.detail.clone(),
                fingerprint: subject.fingerprint,
                generator_url: subject.generator_url,
                plugin: subject.plugin,
                plugin_version: subject.plugin_version,
                reason,
                status: subject.status,
                target: call.target.clone(),
            })
        })
        .collect()
}

/// The most an action event may hold of what the plugin chose (answer,
/// calls, logs, output). Each part has its own bound; this one holds their
/// sum even with a large `[sandbox] output_limit_bytes`.
pub const MAX_ACTION_EVENT_BYTES: usize = 256 * 1024;

/// Bytes of the plugin-chosen parts of an invocation.
fn plugin_bytes(invocation: &Invocation) -> usize {
    let result = match &invocation.result {
        Ok(outcome) => outcome.text().len(),
        Err(error) => error.to_string().len(),
    };
    let calls: usize = invocation
        .calls
        .iter()
        .map(|c| c.target.len() + c.detail.as_ref().map_or(0, String::len))
        .sum();
    let logs: usize = invocation.logs.iter().map(|l| l.message.len()).sum();
    result + calls + logs + invocation.stdout.len() + invocation.stderr.len()
}

/// Drops stdout, stderr, then the logs until the event fits
/// [`MAX_ACTION_EVENT_BYTES`]; says whether anything was dropped.
fn fit(invocation: &mut Invocation) -> bool {
    let mut dropped = false;
    for part in 0..3 {
        if plugin_bytes(invocation) <= MAX_ACTION_EVENT_BYTES {
            break;
        }
        dropped = true;
        match part {
            0 => {
                invocation.stdout =
                    format!("[stdout dropped: the event was over {MAX_ACTION_EVENT_BYTES} bytes]")
            }
            1 => {
                invocation.stderr =
                    format!("[stderr dropped: the event was over {MAX_ACTION_EVENT_BYTES} bytes]")
            }
            _ => invocation.logs.clear(),
        }
    }
    dropped
}

/// The invocation's result event.
fn outcome(mut invocation: Invocation, subject: ActionSubject, mode: ExecutionMode) -> EventBody {
    // Effects (restarts, signals, commands) that were carried out, recorded
    // (dry-run), or sent and failed: the containers the action acted on.
    let effects: Vec<&CapabilityCall> = invocation
        .calls
        .iter()
        .filter(|c| c.is_effect_attempt())
        .collect();
    let mut targets: Vec<String> = Vec::with_capacity(effects.len());
    for call in &effects {
        if !targets.contains(&call.target) {
            targets.push(call.target.clone());
        }
    }
    // The original system's `restart a; restart b`, with the other effects
    // said the same way (`signal a: SIGHUP`).
    let cmd = effects
        .iter()
        .map(|c| match (c.capability, &c.detail) {
            (Capability::ContainersRestart, _) | (_, None) => format!("{} {}", c.capability.verb(), c.target),
            (_, Some(detail)) => format!("{} {}: {detail}", c.capability.verb(), c.target),
        })
        .collect::<Vec<_>>()
        .join("; ");
    let mut truncated = Vec::new();
    if invocation.result_truncated {
        truncated.push("result".to_owned());
    }
    if invocation.invalid_targets > 0 {
        truncated.push("target".to_owned());
    }
    if fit(&mut invocation) {
        truncated.push("event".to_owned());
    }
    let (output, reason, error) = match &invocation.result {
        Ok(outcome) => (Some(outcome.text().to_owned()), None, None),
        Err(error) => (None, Some(error.reason()), Some(error.to_string())),
    };
    let finished = ActionFinished {
        alertname: subject.alertname,
        calls: invocation.calls,
        chaos: false,
        cmd: (!cmd.is_empty()).then_some(cmd),
        // Set by the engine, which knows the cooldown (for a skip).
        cooldown_key: None,
        cooldown_until: None,
        dry_run: mode == ExecutionMode::DryRun,
        // Milliseconds, rounded to the microsecond.
        duration_ms: (invocation.duration.as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0,
        error,
        fingerprint: subject.fingerprint,
        generator_url: subject.generator_url,
        logs: invocation.logs,
        output,
        plugin: subject.plugin,
        plugin_version: subject.plugin_version,
        reason,
        status: subject.status,
        stderr: (!invocation.stderr.is_empty()).then_some(invocation.stderr),
        stdout: (!invocation.stdout.is_empty()).then_some(invocation.stdout),
        target: targets.first().cloned(),
        targets,
        truncated,
    };
    // A plugin that says it skipped but tried an effect did act: its
    // effect gets the full cooldown, not a skip's (which could let it
    // restart again at every webhook).
    let skipped = matches!(&invocation.result, Ok(Outcome::Skipped(_))) && finished.targets.is_empty();
    match (&invocation.result, mode) {
        (Ok(_), _) if skipped => EventBody::ActionSkipped(finished),
        (Ok(_), ExecutionMode::DryRun) => EventBody::ActionDryRun(finished),
        (Ok(_), ExecutionMode::Real) => EventBody::ActionOk(finished),
        (Err(_), _) => EventBody::ActionFail(finished),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use autoheal_core::invocation::LogLine;

    fn invocation(stdout: usize, logs: usize) -> Invocation {
        Invocation {
            result: Ok(Outcome::Acted("ok".into())),
            calls: Vec::new(),
            logs: (0..logs)
                .map(|_| LogLine {
                    level: "info".into(),
                    message: "l".repeat(1024),
                })
                .collect(),
            stdout: "o".repeat(stdout),
            stderr: String::new(),
            duration: std::time::Duration::ZERO,
            result_truncated: false,
            invalid_targets: 0,
            calls_over_budget: 0,
        }
    }

    #[test]
    fn an_event_over_its_bound_drops_output_then_logs() {
        let mut small = invocation(1024, 10);
        assert!(!fit(&mut small));
        assert_eq!(small.logs.len(), 10);

        let mut big = invocation(1 << 20, 100);
        assert!(fit(&mut big));
        assert!(big.stdout.starts_with("[stdout dropped"));
        assert_eq!(big.logs.len(), 100, "the logs fit once stdout is gone");
        assert!(plugin_bytes(&big) <= MAX_ACTION_EVENT_BYTES);

        let mut logs = invocation(0, 300);
        assert!(fit(&mut logs));
        assert!(logs.logs.is_empty());
    }
}
