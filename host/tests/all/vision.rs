//! The operations view against the real thing: the payment simulator
//! scraped by a real Prometheus that evaluates the shipped rules, a real
//! Alertmanager, and the host serving `GET /vision`; `autoheal vision` run as
//! a process. Then each source goes down, and the view says so.

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use payment_sim::{Mode, Settings, Simulator};
use serde_json::{Value, json};

use crate::real::*;
use crate::support::*;

/// The simulator, Alertmanager, Prometheus and the host, wired together.
pub struct VisionStack {
    pub sim: Arc<Simulator>,
    /// `None` once stopped.
    pub alertmanager: Option<Alertmanager>,
    pub prometheus: Option<Prometheus>,
    pub prometheus_url: String,
    pub alertmanager_url: String,
    pub host: ServedHost,
    _stop_sim: tokio::sync::oneshot::Sender<()>,
}

impl VisionStack {
    /// Starts everything; the simulator is steady. Blocks (in a blocking
    /// task) until Prometheus has computed a runway.
    pub async fn start() -> VisionStack {
        // 50 payments/s: the baseline (0.1 %) fails one every 20 s, the dip
        // (5 %) 2.5 a second, reached 2 s after switching.
        let settings = Settings {
            payments_per_sec: 50.0,
            ramp: Duration::from_secs(2),
            ..Settings::default()
        };
        let sim = Simulator::new(settings, Mode::Steady);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let sim_address = listener.local_addr().unwrap().to_string();
        let (stop_sim, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(payment_sim::serve(listener, sim.clone(), async {
            let _ = stopped.await;
        }));

        let host_port = free_port();
        let prometheus_port = free_port();
        let prometheus_url = format!("http://127.0.0.1:{prometheus_port}");
        let alertmanager = Alertmanager::start(&format!("http://127.0.0.1:{host_port}/alert"));
        let alertmanager_url = alertmanager.url.clone();
        let host = {
            let (p, a) = (prometheus_url.clone(), alertmanager_url.clone());
            ServedHost::start_on(
                host_port,
                &[("crm.toml", bundled_manifest())],
                Arc::new(autoheal_containers::NoEngine),
                move |c| {
                    c.prometheus_url = p;
                    c.alertmanager_url = a.into();
                    // Each look below must see the sources as they are now.
                    c.vision_cache_ms = 0;
                },
            )
            .await
        };
        let host_address = format!("127.0.0.1:{host_port}");
        let alertmanager_address = alertmanager_url.trim_start_matches("http://").to_owned();
        let prometheus = tokio::task::spawn_blocking(move || {
            let prometheus = Prometheus::start(
                prometheus_port,
                &[
                    ("127.0.0.1:9009", &host_address),
                    ("127.0.0.1:9105", &sim_address),
                    ("127.0.0.1:9093", &alertmanager_address),
                ],
            );
            wait_until("a runway from the shipped rules", Duration::from_secs(60), || {
                prometheus.query("slo:payment_rate:hours_to_breach")
            });
            prometheus
        })
        .await
        .unwrap();
        VisionStack {
            sim,
            alertmanager: Some(alertmanager),
            prometheus: Some(prometheus),
            prometheus_url,
            alertmanager_url,
            host,
            _stop_sim: stop_sim,
        }
    }

    pub async fn vision(&self) -> Value {
        let url = self.host.url.clone();
        let (status, body) =
            tokio::task::spawn_blocking(move || http(&url, "GET", "/vision?range=10m", "").unwrap())
                .await
                .unwrap();
        assert_eq!(status, 200, "{body}");
        body
    }

    /// `autoheal vision` against this stack: (exit code, stdout).
    pub fn cli(&self, extra: &[&str]) -> (i32, String) {
        let output = Command::new(env!("CARGO_BIN_EXE_autoheal"))
            .args(["vision", "--prometheus-url", &self.prometheus_url])
            .args(["--alertmanager-url", &self.alertmanager_url])
            .args(extra)
            .env_remove("PROMETHEUS_URL")
            .env_remove("ALERTMANAGER_URL")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!stderr.contains("panicked"), "{stderr}");
        (output.status.code().unwrap_or(-1), stdout)
    }

    /// Polls the recorded conservative runway until `accept` takes it.
    pub async fn wait_for_runway(&self, what: &str, accept: impl Fn(f64) -> bool + Send + 'static) -> f64 {
        let url = self.prometheus.as_ref().unwrap().url.clone();
        let what = what.to_owned();
        tokio::task::spawn_blocking(move || {
            wait_until(&what, Duration::from_secs(90), || {
                prometheus_query(&url, "slo:payment_rate:hours_to_breach").filter(|h| accept(*h))
            })
        })
        .await
        .unwrap()
    }
}

fn number(value: &Value) -> f64 {
    value
        .as_f64()
        .unwrap_or_else(|| panic!("expected a number, got {value}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vision_follows_the_runway_through_real_prometheus_and_alertmanager_and_says_when_they_are_down() {
    let mut stack = VisionStack::start().await;

    // Steady: 0.1 % failures against a 0.5 % budget is a long runway.
    let steady = stack.wait_for_runway("a steady runway", |_| true).await;
    assert!(
        steady >= 20.0 * 24.0,
        "steady traffic gives {steady} h, not a long runway"
    );

    // Two alerts straight into Alertmanager, and one action by the host.
    let am = stack.alertmanager.as_ref().unwrap();
    am.push(
        json!({"alertname": "VisionCritical", "severity": "critical"}),
        json!({"summary": "a critical one"}),
        None,
    );
    am.push(
        json!({"alertname": "VisionWarning", "severity": "warning"}),
        json!({}),
        None,
    );
    let report = stack.vision().await;
    assert_eq!(report["prometheus"]["reachable"], true, "{report:#}");
    assert_eq!(report["alertmanager"]["reachable"], true, "{report:#}");
    let rules = &report["prometheus"]["rules"];
    assert!(
        number(&rules["recording"]) >= 20.0 && number(&rules["alerting"]) >= 10.0,
        "{rules}"
    );
    assert_eq!(
        rules["failing"], 0,
        "a shipped rule fails to evaluate: {report:#}"
    );
    let slo = &report["slo"];
    assert_eq!(slo["status"], "green", "{report:#}");
    assert_eq!(slo["objective"], 0.995);
    assert!(number(&slo["days_to_breach"]) >= 20.0, "{slo}");
    assert!(number(&slo["error_budget_remaining"]) > 0.0, "{slo}");
    let alerts = &report["alerts"];
    assert!(
        number(&alerts["critical"]) >= 1.0 && number(&alerts["warning"]) >= 1.0,
        "{alerts}"
    );
    assert_eq!(
        alerts["list"][0]["severity"], "critical",
        "most severe first: {alerts}"
    );
    assert!(report["probes"].is_object(), "{report:#}");
    assert_eq!(report["autoheal"]["source"], "host");
    assert_eq!(report["autoheal"]["enabled"], false);
    assert_eq!(report["autoheal"]["dry_run"], true);
    assert_eq!(
        report["autoheal"]["last_action_age_sec"],
        Value::Null,
        "no action yet"
    );

    stack
        .host
        .post_alerts(json!([opted_in("TcpEndpointDownFast")]))
        .await;
    stack.host.remediator.drain().await;
    let acted = stack.vision().await;
    assert!(
        number(&acted["autoheal"]["last_action_age_sec"]) < 60.0,
        "{acted:#}"
    );

    let (code, text) = stack.cli(&[]);
    assert_eq!(code, 0, "{text}");
    for expected in [
        "alerting rules loaded",
        "Days to breach",
        "Alerts firing",
        "1 critical",
        "Probes up",
    ] {
        assert!(text.contains(expected), "no {expected:?} in:\n{text}");
    }
    assert!(
        text.contains("green") || text.contains("no breach foreseen"),
        "{text}"
    );

    // The dip: the runway collapses, below the critical 6 h.
    stack.sim.set_mode(Mode::Dip);
    let dipped = stack
        .wait_for_runway("the runway to fall under 6 h", |h| h < 6.0)
        .await;
    assert!(dipped < steady);
    let report = stack.vision().await;
    assert_eq!(report["slo"]["status"], "red", "{report:#}");
    assert!(number(&report["slo"]["burn_rate_1h"]) > 1.0, "{report:#}");
    let trend = &report["runway_trend"]["series"];
    for series in ["1h", "6h", "conservative"] {
        let points = trend[series]
            .as_array()
            .unwrap_or_else(|| panic!("no {series} trend: {trend}"));
        assert!(points.len() >= 2, "{series}: {points:?}");
    }
    let conservative = trend["conservative"].as_array().unwrap();
    let first = number(&conservative.first().unwrap()[1]);
    let last = number(&conservative.last().unwrap()[1]);
    assert!(last < first, "the trend shows the fall: {conservative:?}");
    let (code, text) = stack.cli(&["--json"]);
    assert_eq!(code, 0, "{text}");
    let json: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json["slo"]["status"], "red");
    assert_eq!(json["autoheal"]["source"], "prometheus");

    // Alertmanager down: the alerts are unknown, not zero; the rest stands.
    drop(stack.alertmanager.take());
    let report = stack.vision().await;
    assert_eq!(report["alertmanager"]["reachable"], false, "{report:#}");
    assert!(report["alertmanager"]["error"].is_string());
    assert_eq!(report["alerts"], Value::Null);
    assert_eq!(report["slo"]["status"], "red");
    let (code, text) = stack.cli(&[]);
    assert_eq!(code, 0, "Prometheus is still up: {text}");
    assert!(
        text.contains("UNREACHABLE") && text.contains("Alertmanager unreachable"),
        "{text}"
    );

    // Prometheus down too: no runway at all, and the command fails.
    drop(stack.prometheus.take());
    let report = stack.vision().await;
    assert_eq!(report["prometheus"]["reachable"], false, "{report:#}");
    for part in ["slo", "runway_trend", "probes", "alerts"] {
        assert_eq!(report[part], Value::Null, "{part} without its source: {report:#}");
    }
    assert_eq!(
        report["autoheal"]["enabled"], false,
        "the host still knows itself"
    );
    let (code, text) = stack.cli(&[]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("Prometheus unreachable"), "{text}");
}

#[tokio::test]
async fn vision_rejects_bad_ranges() {
    let host = ServedHost::start(&[], Arc::new(autoheal_containers::NoEngine), |c| {
        c.prometheus_url = format!("http://127.0.0.1:{}", free_port());
    })
    .await;
    for (query, status) in [("range=5s", 400), ("range=soon", 400), ("colour=red", 400)] {
        let url = host.url.clone();
        let path = format!("/vision?{query}");
        let (got, body) = tokio::task::spawn_blocking(move || http(&url, "GET", &path, "").unwrap())
            .await
            .unwrap();
        assert_eq!(got, status, "{query}: {body}");
        assert!(body["error"].is_string(), "{body}");
    }
}

/// A stand-in for Prometheus and Alertmanager that answers every request
/// slowly and counts them: in all, and at most at once.
#[derive(Default)]
struct Upstream {
    requests: std::sync::atomic::AtomicUsize,
    in_flight: std::sync::atomic::AtomicUsize,
    most_in_flight: std::sync::atomic::AtomicUsize,
}

async fn counting_upstream() -> (String, Arc<Upstream>) {
    use std::sync::atomic::Ordering::SeqCst;
    let upstream = Arc::new(Upstream::default());
    let counts = upstream.clone();
    let app = axum::Router::new().fallback(move || {
        let counts = counts.clone();
        async move {
            counts.requests.fetch_add(1, SeqCst);
            let now = counts.in_flight.fetch_add(1, SeqCst) + 1;
            counts.most_in_flight.fetch_max(now, SeqCst);
            tokio::time::sleep(Duration::from_millis(200)).await;
            counts.in_flight.fetch_sub(1, SeqCst);
            axum::Json(json!({"status": "success", "data": {"resultType": "vector", "result": []}}))
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, upstream)
}

async fn get_vision(host: &ServedHost, query: &str) -> Value {
    let (url, path) = (host.url.clone(), format!("/vision?{query}"));
    let (status, body) = tokio::task::spawn_blocking(move || http(&url, "GET", &path, "").unwrap())
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_readers_of_vision_cost_prometheus_one_read_at_a_time() {
    use std::sync::atomic::Ordering::SeqCst;
    let (url, upstream) = counting_upstream().await;
    let upstream_url = url.clone();
    let host = ServedHost::start(&[], Arc::new(autoheal_containers::NoEngine), move |c| {
        c.prometheus_url = upstream_url.clone();
        c.alertmanager_url = upstream_url.into();
        c.vision_cache_ms = 30_000;
    })
    .await;
    // One collection is four upstream requests (instant, range, rules,
    // alerts). 50 readers at once share one.
    let readers: Vec<_> = (0..50).map(|_| get_vision(&host, "range=1h")).collect();
    let reports = futures_util::future::join_all(readers).await;
    assert_eq!(upstream.requests.load(SeqCst), 4);
    // Each still sees the host's own state, not a cached one.
    assert!(
        reports.iter().all(|r| r["autoheal"]["source"] == "host"),
        "{}",
        reports[0]
    );
    // 30 readers each with a range of their own: read one after another,
    // never more than one collection at once.
    let host = &host;
    let readers: Vec<_> = (0..30)
        .map(|i| async move { get_vision(host, &format!("range={}m", 2 + i)).await })
        .collect();
    futures_util::future::join_all(readers).await;
    assert_eq!(upstream.requests.load(SeqCst), 4 + 30 * 4);
    assert!(
        upstream.most_in_flight.load(SeqCst) <= 4,
        "{}",
        upstream.most_in_flight.load(SeqCst)
    );
}

/// The last action is read back from the trail at start: after a restart of
/// the host, `/vision` (which the console shows) and `/metrics` still name
/// it, not "never".
#[tokio::test]
async fn the_last_action_is_remembered_across_a_restart() {
    let nowhere = format!("http://127.0.0.1:{}", free_port());
    let host = ServedHost::start(
        &[("crm.toml", bundled_manifest())],
        Arc::new(autoheal_containers::NoEngine),
        move |c| {
            c.prometheus_url = nowhere.clone();
            c.alertmanager_url = nowhere.into();
        },
    )
    .await;
    let before = get_vision(&host, "").await;
    assert!(before["autoheal"]["last_action_epoch"].is_null(), "{before:#}");

    host.post_alerts(json!([opted_in("TcpEndpointDownFast")])).await;
    let acted = host.wait_for("action_dry_run", 1, Duration::from_secs(10)).await;
    let ts = number(&acted[0]["ts"]);
    let now = get_vision(&host, "").await;
    assert_eq!(number(&now["autoheal"]["last_action_epoch"]), ts, "{now:#}");

    let host = host.restart().await;
    let after = get_vision(&host, "").await;
    assert_eq!(
        number(&after["autoheal"]["last_action_epoch"]),
        ts,
        "the last action after a restart: {after:#}"
    );
    let url = host.url.clone();
    let (status, metrics) = tokio::task::spawn_blocking(move || http(&url, "GET", "/metrics", "").unwrap())
        .await
        .unwrap();
    assert_eq!(status, 200, "{metrics}");
    let metrics = metrics.as_str().unwrap().to_owned();
    let gauge = |name: &str| -> f64 {
        metrics
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in /metrics:\n{metrics}"))
    };
    assert_eq!(gauge("autoheal_last_action_epoch "), ts);
    assert_eq!(
        gauge("autoheal_action_last_timestamp{alertname=\"TcpEndpointDownFast\"}"),
        ts
    );
}
