//! Blast-radius budgets (`[budget]`): real actions bounded across all
//! plugins, in a burst, across a restart; dry-run untouched.

use std::time::Duration;

use serde_json::{Value, json};

use autoheal::config::RawConfig;

use crate::support::*;

/// Real mode, no cooldown (every alert of the burst would act), a breaker
/// that would let all ten through: only the budget stops them.
fn two_per_hour(config: &mut RawConfig) {
    real(config);
    config.default_cooldown_sec = 0;
    config.circuit_breaker.max_restarts = 100;
    config.budget.max_actions = 2;
    config.budget.window = "1h".into();
}

/// Ten firing alerts, each its own instance.
fn burst(count: usize) -> Value {
    let alerts: Vec<Value> = (0..count)
        .map(|i| {
            let mut alert = opted_in("TcpEndpointDownFast");
            alert["labels"]["instance"] = json!(format!("crm-api-{i}:8000"));
            alert
        })
        .collect();
    json!(alerts)
}

#[tokio::test]
async fn a_budget_of_two_stops_the_third_real_action_of_a_burst_even_after_a_restart() {
    // Each alert of the burst restarts the one fake container: the target
    // cooldown, which would join them, is off so that the budget is what stops them.
    let h = harness(&[crm_plugin_with(NO_TARGET_COOLDOWN)], two_per_hour).await;
    h.fake.add_running("crm-api", Duration::from_secs(3600));

    let decisions = h.process(burst(10)).await;
    let acted = decisions.iter().filter(|d| d["decision"] == "act").count();
    assert_eq!(acted, 2, "{decisions:#?}");
    assert_eq!(h.fake.restarts().len(), 2);
    let skips = h.events(&["decision_skip"]);
    assert_eq!(skips.len(), 8, "{skips:#?}");
    for skip in &skips {
        assert_eq!(skip["reason"], "budget", "{skip}");
        assert_eq!(skip["budget"], "max_actions", "{skip}");
        assert_eq!(skip["plugin"], "restart-crm-api", "{skip}");
        let detail = skip["detail"].as_str().unwrap();
        assert!(detail.contains("budget.max_actions = 2"), "{detail}");
    }
    let page = h.status_page().await;
    assert_eq!(page["budget"]["max_actions"], 2, "{page:#}");
    assert_eq!(page["budget"]["started_in_window"], 2, "{page:#}");
    assert_eq!(page["budget"]["in_flight"], 0, "{page:#}");
    let metrics = h.host.metrics.render(1, &[], &[]);
    assert!(
        metrics.contains("autoheal_budget_skips_total{budget=\"max_actions\"} 8"),
        "{metrics}"
    );

    // The two starts are in the trail: a restarted host does not hand the
    // budget out again.
    let h = h.restart(two_per_hour).await;
    let decisions = h.process(burst(1)).await;
    assert_eq!(decisions[0]["reason"], "budget", "{decisions:#?}");
    assert_eq!(h.fake.restarts().len(), 2);

    // Dry-run touches nothing: neither counted nor bounded.
    let h = h
        .restart(|c| {
            two_per_hour(c);
            c.dry_run = true;
        })
        .await;
    let decisions = h.process(burst(3)).await;
    assert!(decisions.iter().all(|d| d["decision"] == "act"), "{decisions:#?}");
    assert_eq!(h.fake.restarts().len(), 2);
}

#[tokio::test]
async fn a_window_that_has_passed_gives_the_budget_back() {
    let one_per_second = |c: &mut RawConfig| {
        two_per_hour(c);
        c.budget.max_actions = 1;
        c.budget.window = "1s".into();
    };
    let h = harness(&[crm_plugin()], one_per_second).await;
    h.fake.add_running("crm-api", Duration::from_secs(3600));
    let first = h.process(burst(2)).await;
    assert_eq!(
        (first[0]["decision"].clone(), first[1]["reason"].clone()),
        (json!("act"), json!("budget"))
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let later = h.process(burst(1)).await;
    assert_eq!(later[0]["decision"], "act", "{later:#?}");
    assert_eq!(h.fake.restarts().len(), 2);
}

#[tokio::test]
async fn a_budget_that_cannot_be_met_is_refused_at_start_by_name() {
    let mut raw = test_config(std::path::Path::new("/nonexistent"));
    raw.budget.per_label = "service".into();
    raw.budget.max_in_flight_per_label = 0;
    let err = raw.validate().unwrap_err().to_string();
    assert!(err.contains("budget.max_in_flight_per_label"), "{err}");
    raw.budget.max_in_flight_per_label = 1;
    raw.budget.window = "soon".into();
    let err = raw.validate().unwrap_err().to_string();
    assert!(err.contains("budget.window"), "{err}");
}
