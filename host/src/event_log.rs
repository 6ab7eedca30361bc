//! Log lines for what the host did with alerts: every action run (done,
//! recorded in dry-run, skipped by its plugin, failed), every decision to skip and every refused
//! capability call, each naming the plugin, the alert and the target. They
//! are written from the audit trail's observer, so that no path that
//! records an outcome can forget to log it; the trail stays the record,
//! these lines are what a person tailing the log reads.

use autoheal_core::event::{ActionFinished, Event, EventBody};

/// Logs `event` if it is an action's outcome, a skip or a denial.
pub fn log(event: &Event) {
    match &event.body {
        EventBody::ActionOk(done) => {
            tracing::info!(
                plugin = %done.plugin,
                alertname = %done.alertname,
                fingerprint = %done.fingerprint,
                target = %target(done),
                duration_ms = done.duration_ms.round(),
                "action done"
            );
        }
        EventBody::ActionDryRun(done) => {
            tracing::info!(
                plugin = %done.plugin,
                alertname = %done.alertname,
                fingerprint = %done.fingerprint,
                target = %target(done),
                duration_ms = done.duration_ms.round(),
                "action recorded, not done (dry-run)"
            );
        }
        EventBody::ActionSkipped(skipped) => {
            tracing::info!(
                plugin = %skipped.plugin,
                alertname = %skipped.alertname,
                fingerprint = %skipped.fingerprint,
                target = %target(skipped),
                reason = %skipped.reason.as_deref().unwrap_or("-"),
                output = %skipped.output.as_deref().unwrap_or("-"),
                "action skipped: the plugin decided not to act"
            );
        }
        EventBody::ActionFail(failed) => {
            tracing::warn!(
                plugin = %failed.plugin,
                alertname = %failed.alertname,
                fingerprint = %failed.fingerprint,
                target = %target(failed),
                reason = %failed.reason.as_deref().unwrap_or("-"),
                error = %failed.error.as_deref().unwrap_or("-"),
                "action failed"
            );
        }
        EventBody::DecisionSkip(skip) => {
            tracing::info!(
                plugin = %skip.plugin.as_deref().unwrap_or("-"),
                alertname = %skip.alertname,
                fingerprint = %skip.fingerprint,
                reason = %skip.reason.as_str(),
                detail = %skip.detail,
                "decision: skip"
            );
        }
        EventBody::CapabilityDenied(denied) => {
            tracing::warn!(
                plugin = %denied.plugin,
                alertname = %denied.alertname,
                fingerprint = %denied.fingerprint,
                target = %denied.target,
                capability = %denied.capability.as_str(),
                reason = %denied.reason.as_str(),
                detail = %denied.detail.as_deref().unwrap_or("-"),
                "capability call refused"
            );
        }
        _ => {}
    }
}

/// The containers an action aimed at, or `-`.
fn target(finished: &ActionFinished) -> String {
    match (&finished.target, finished.targets.as_slice()) {
        (_, [_, _, ..]) => finished.targets.join(","),
        (Some(target), _) => target.clone(),
        (None, [only]) => only.clone(),
        (None, []) => "-".to_owned(),
    }
}
