//! No restart without a durable record: the intent is committed before the
//! engine hears of the restart, and an intent whose action never finished
//! (the host died) is reported at the next start and counted by the breaker.

use serde_json::{Value, json};

use autoheal_core::event::{EventBody, RestartIntent};

use crate::support::*;

fn position(events: &[Value], kind: &str) -> usize {
    events
        .iter()
        .position(|e| e["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_restart_is_preceded_by_its_intent() {
    let h = harness(&[crm_plugin()], real).await;
    h.process(json!([opted_in("TcpEndpointDownFast")])).await;
    assert_eq!(h.fake.restarts(), ["crm-api"]);
    let events = h.events(&[]);
    let intent = &events[position(&events, "restart_intent")];
    let done = &events[position(&events, "action_ok")];
    assert!(position(&events, "restart_intent") < position(&events, "action_ok"));
    assert_eq!(intent["container"], "crm-api");
    assert_eq!(intent["plugin"], "restart-crm-api");
    let restart = done["calls"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["capability"] == "containers.restart")
        .unwrap();
    assert_eq!(restart["intent"], intent["id"], "the call names its intent");

    // Dry-run restarts are only recorded: no intent.
    let h = harness(&[crm_plugin()], |_| {}).await;
    h.process(json!([opted_in("TcpEndpointDownFast")])).await;
    assert!(h.events(&["restart_intent"]).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_intent_without_an_outcome_is_interrupted_and_counts_as_done() {
    let one_restart = |c: &mut autoheal::config::RawConfig| {
        real(c);
        c.circuit_breaker.max_restarts = 1;
        c.default_cooldown_sec = 0;
    };
    let h = harness(&[crm_plugin()], one_restart).await;
    // The host dies right after committing an intent: no action event follows.
    let intent = h
        .host
        .audit
        .emit_durable(EventBody::RestartIntent(RestartIntent {
            container: "crm-api".into(),
            plugin: "restart-crm-api".into(),
        }))
        .await
        .unwrap();
    let h = h.restart(one_restart).await;
    let interrupted = h.only("action_interrupted");
    assert_eq!(interrupted["intent"], intent.id);
    assert_eq!(interrupted["container"], "crm-api");
    let started = h.events(&["host_started"]);
    assert_eq!(started.last().unwrap()["recent_restarts_restored"], 1);

    // It counts as a restart: with max_restarts = 1 the next one is refused.
    h.process(json!([opted_in("TcpEndpointDownFast")])).await;
    assert!(
        h.fake.restarts().is_empty(),
        "the breaker let a second restart through"
    );
    let denied = h.only("capability_denied");
    assert_eq!(denied["reason"], "circuit_open");

    // Reported once, not at every start.
    let h = h.restart(one_restart).await;
    assert_eq!(h.events(&["action_interrupted"]).len(), 1);
}
