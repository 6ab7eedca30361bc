//! Turning one plugin invocation into its events: a `capability_denied` for
//! each refused call, then one `action_dry_run`, `action_ok` or
//! `action_fail` with everything the invocation did.

use std::sync::Arc;

use autoheal_core::alert::Alert;
use autoheal_core::audit::AuditLog;
use autoheal_core::event::{ActionFinished, ActionSubject, CapabilityDenied, DenialReason, EventBody};
use autoheal_core::invocation::CallOutcome;
use autoheal_core::mode::ExecutionMode;

use autoheal_sandbox::capability::HostServices;
use autoheal_sandbox::registry::Plugin;
use autoheal_sandbox::{Invocation, PluginRuntime};

/// Runs `plugin` on `alert` and records what it did.
pub async fn run_action(
    audit: Arc<AuditLog>,
    runtime: Arc<PluginRuntime>,
    services: HostServices,
    plugin: Arc<Plugin>,
    alert: Arc<Alert>,
    mode: ExecutionMode,
) {
    let invocation = runtime
        .invoke(&plugin.component, &plugin.manifest, &alert, mode, services)
        .await;
    let subject = ActionSubject::new(&alert, &plugin.manifest.name, &plugin.manifest.version);
    for denied in denials(&invocation, &subject) {
        audit.emit(EventBody::CapabilityDenied(denied));
    }
    audit.emit(outcome(invocation, subject, mode));
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

/// The invocation's result event.
fn outcome(invocation: Invocation, subject: ActionSubject, mode: ExecutionMode) -> EventBody {
    // Restarts that were carried out, recorded (dry-run), or sent and failed.
    let targets: Vec<String> = invocation
        .calls
        .iter()
        .filter(|c| c.is_restart_attempt())
        .map(|c| c.target.clone())
        .collect();
    let cmd = targets
        .iter()
        .map(|t| format!("restart {t}"))
        .collect::<Vec<_>>()
        .join("; ");
    let mut truncated = Vec::new();
    if invocation.result_truncated {
        truncated.push("result".to_owned());
    }
    if invocation.invalid_targets > 0 {
        truncated.push("target".to_owned());
    }
    let (output, reason, error) = match &invocation.result {
        Ok(output) => (Some(output.clone()), None, None),
        Err(error) => (None, Some(error.reason()), Some(error.to_string())),
    };
    let finished = ActionFinished {
        alertname: subject.alertname,
        calls: invocation.calls,
        cmd: (!cmd.is_empty()).then_some(cmd),
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
    match (&invocation.result, mode) {
        (Ok(_), ExecutionMode::DryRun) => EventBody::ActionDryRun(finished),
        (Ok(_), ExecutionMode::Real) => EventBody::ActionOk(finished),
        (Err(_), _) => EventBody::ActionFail(finished),
    }
}
