//! Whether a real action that failed failed for want of its container
//! engine: a container call failed and the engine it went to does not
//! answer a moment later. Then nothing was done, and its alert is kept and
//! decided again (`retry`, `engine_unreachable`) rather than left to
//! Alertmanager's next resend.

use std::collections::BTreeSet;
use std::time::Duration;

use autoheal_containers::{ContainerRuntime, DEFAULT_ENGINE, NO_ENGINE};
use autoheal_core::invocation::{CallOutcome, CapabilityCall};

/// How long the engine is given to answer the question.
const PROBE_LIMIT: Duration = Duration::from_secs(2);

/// The engines `calls` failed on: `NAME` for `NAME/container`, the default
/// engine for a bare name.
fn engines_failed_on(calls: &[CapabilityCall]) -> BTreeSet<&str> {
    calls
        .iter()
        .filter(|call| call.outcome == CallOutcome::Failed)
        .map(|call| match call.target.split_once('/') {
            Some((engine, _)) => engine,
            None => DEFAULT_ENGINE,
        })
        .collect()
}

/// Whether one of the engines `calls` failed on does not answer now. A
/// host with no engine configured has none to wait for: not this.
pub(super) async fn engine_unreachable(containers: &dyn ContainerRuntime, calls: &[CapabilityCall]) -> bool {
    let engines = engines_failed_on(calls);
    if engines.is_empty() {
        return false;
    }
    containers.reachability(PROBE_LIMIT).await.iter().any(|reach| {
        engines.contains(reach.name.as_str()) && reach.version.as_ref().is_err_and(|e| e != NO_ENGINE)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use autoheal_core::invocation::Capability;

    fn call(target: &str, outcome: CallOutcome) -> CapabilityCall {
        CapabilityCall {
            capability: Capability::ContainersInspect,
            detail: None,
            duration_ms: None,
            intent: None,
            outcome,
            target: target.to_owned(),
        }
    }

    #[test]
    fn only_failed_calls_name_their_engine() {
        let calls = [
            call("api", CallOutcome::Failed),
            call("b/db", CallOutcome::Failed),
            call("c/cache", CallOutcome::Ok),
            call("d/queue", CallOutcome::Denied),
        ];
        assert_eq!(engines_failed_on(&calls), BTreeSet::from([DEFAULT_ENGINE, "b"]));
    }

    #[tokio::test]
    async fn a_failure_on_an_engine_that_answers_is_not_its_absence() {
        let failed = [call("api", CallOutcome::Failed)];
        let answering = autoheal_containers::FakeRuntime::new();
        assert!(!engine_unreachable(&answering, &failed).await);
        // Where nothing listens: gone.
        let gone = autoheal_containers::DockerRuntime::new(
            autoheal_containers::EngineAddress::Unix("/nonexistent/engine.sock".into()),
            Duration::from_secs(1),
        );
        assert!(engine_unreachable(&gone, &failed).await);
        assert!(!engine_unreachable(&gone, &[]).await, "no failed call");
        // None configured: never there, nothing to wait for.
        assert!(!engine_unreachable(&autoheal_containers::NoEngine, &failed).await);
    }
}
