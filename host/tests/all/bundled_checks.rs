//! The bundled plugins that check before they act and call out, through the
//! real server with their shipped manifests (only names, addresses and the
//! cooldowns and uptime guard a few-seconds-old test container needs
//! changed — said where it is done):
//! `restart-if-still-failing` asks a real Prometheus, scraping a real target
//! started here, whether the container still fails: it restarts a real
//! Podman container while `probe_success` is 0 and records `recovered by
//! itself` once it is 1; `call-runbook` POSTs the alert to a real HTTP
//! service started here, with the host's token put in by the host and
//! never in the trail, and in dry-run sends nothing.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;

use crate::bundled_calls::{alert, shipped};
use crate::real::{Podman, Prometheus, ServedHost, free_port, unique, wait_until};

/// Answers every request on `listener` with `body()`, reading the request
/// head and, if it has one, its body; each request is handed to `seen`.
fn serve(
    listener: TcpListener,
    body: impl Fn() -> String + Send + 'static,
    seen: impl Fn(String) + Send + 'static,
) {
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let (mut request, mut line, mut length) = (String::new(), String::new(), 0usize);
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = value.trim().parse().unwrap_or(0);
                }
                request.push_str(&line);
                line.clear();
            }
            let mut content = vec![0; length];
            let _ = reader.read_exact(&mut content);
            request.push_str("\r\n");
            request.push_str(&String::from_utf8_lossy(&content));
            seen(request);
            let body = body();
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_if_still_failing_restarts_only_while_prometheus_sees_the_probe_fail() {
    let podman = Podman::start();
    let name = unique("crm-api");
    podman.run_script(&name, &[], "sleep 3600");

    // The probe's result, as a blackbox exporter would expose it.
    let probe = Arc::new(AtomicU8::new(0));
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let target = listener.local_addr().unwrap().to_string();
    let exposed = (probe.clone(), name.clone());
    serve(
        listener,
        move || {
            format!(
                "# TYPE probe_success gauge\nprobe_success{{target=\"{}\"}} {}\n",
                exposed.1,
                exposed.0.load(Ordering::SeqCst)
            )
        },
        |_| {},
    );
    let check = format!("probe_success{{target=\"{name}\"}}");
    let prometheus = {
        let check = check.clone();
        tokio::task::spawn_blocking(move || {
            let prometheus = Prometheus::start(free_port(), &[("127.0.0.1:9105", &target)]);
            wait_until("the probe to be scraped", Duration::from_secs(60), || {
                (prometheus.query(&check) == Some(0.0)).then_some(())
            });
            prometheus
        })
        .await
        .unwrap()
    };

    let (file, text) = shipped(
        "restart-if-still-failing",
        &[
            ("\"crm-api\", \"billing-api\"", &format!("{name:?}")),
            // The container is seconds old: the shipped guard (60 s) would skip it.
            ("min_uptime_sec = \"60\"", "min_uptime_sec = \"0\""),
            // Two alerts about one container within minutes: the shipped
            // cooldown would hold back the second.
            ("cooldown = \"10m\"", "cooldown = \"0s\""),
        ],
    );
    let url = prometheus.url.clone();
    let host = ServedHost::start_staged(
        0,
        &["restart_if_still_failing"],
        &[(&file, text)],
        podman.runtime(),
        |config| {
            crate::support::real(config);
            config.prometheus_url = url;
        },
    )
    .await;

    let before = podman.started_at(&name);
    host.post_alerts(json!([alert(
        json!({ "alertname": "ProbeFailing", "container": name, "round": "1" })
    )]))
    .await;
    let first = host
        .wait_for("action_ok,action_fail,action_skipped", 1, Duration::from_secs(60))
        .await;
    let restarted = &first[0];
    assert_eq!(restarted["kind"], "action_ok", "{restarted:#}");
    let calls: Vec<&str> = restarted["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["capability"].as_str().unwrap())
        .collect();
    assert_eq!(
        calls,
        ["prometheus.query", "containers.inspect", "containers.restart"]
    );
    assert_eq!(restarted["calls"][0]["target"], check.as_str());
    assert_ne!(podman.started_at(&name), before, "the container was restarted");

    // It recovers by itself: the next alert finds the probe passing.
    probe.store(1, Ordering::SeqCst);
    let check_now = check.clone();
    let prometheus = tokio::task::spawn_blocking(move || {
        wait_until("the passing probe to be scraped", Duration::from_secs(60), || {
            (prometheus.query(&check_now) == Some(1.0)).then_some(())
        });
        prometheus
    })
    .await
    .unwrap();
    let restarted_at = podman.started_at(&name);
    host.post_alerts(json!([alert(
        json!({ "alertname": "ProbeFailing", "container": name, "round": "2" })
    )]))
    .await;
    let events = host
        .wait_for("action_ok,action_fail,action_skipped", 2, Duration::from_secs(60))
        .await;
    let skipped = events.last().unwrap();
    assert_eq!(skipped["kind"], "action_skipped", "{skipped:#}");
    let reason = skipped["output"].as_str().unwrap_or_default();
    assert!(reason.starts_with("recovered by itself"), "{skipped:#}");
    assert_eq!(
        skipped["calls"].as_array().unwrap().len(),
        1,
        "a query, no restart"
    );
    assert_eq!(podman.started_at(&name), restarted_at, "not restarted again");
    let metrics = host.get_ok("/metrics").await;
    let metrics = metrics.as_str().unwrap_or_default();
    let queries = "autoheal_capability_calls_total{capability=\"prometheus.query\",outcome=\"ok\",plugin=\"restart-if-still-failing\"} 2";
    assert!(metrics.contains(queries), "{metrics}");
    drop(prometheus);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_runbook_posts_the_alert_with_a_token_it_never_reads() {
    const TOKEN: &str = "rb-7f3a9c1e5d2b8046";
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let received = Arc::new(Mutex::new(Vec::<String>::new()));
    let log = received.clone();
    serve(
        listener,
        || format!("flushed; your token was {TOKEN}"),
        move |request| log.lock().unwrap().push(request),
    );
    let (file, text) = shipped(
        "call-runbook",
        // Both the allow-list and the URL name the service's address.
        &[("127.0.0.1:8080", &format!("127.0.0.1:{port}"))],
    );
    let start = |real: bool| {
        let (file, text) = (file.clone(), text.clone());
        async move {
            ServedHost::start_staged(
                0,
                &["call_runbook"],
                &[(&file, text)],
                Arc::new(autoheal_containers::FakeRuntime::new()),
                move |config| {
                    if real {
                        crate::support::real(config);
                    }
                    config.secrets.insert(
                        "RUNBOOK_TOKEN".into(),
                        autoheal::config::RawSecret {
                            value: Some(TOKEN.into()),
                            ..Default::default()
                        },
                    );
                },
            )
            .await
        }
    };
    let labels = json!({ "alertname": "SessionCacheSaturated", "service": "crm web" });

    // Dry-run (the default): the POST is recorded, not sent.
    let dry = start(false).await;
    dry.post_alerts(json!([alert(labels.clone())])).await;
    let events = dry
        .wait_for("action_dry_run,action_fail", 1, Duration::from_secs(60))
        .await;
    assert_eq!(events[0]["kind"], "action_dry_run", "{:#}", events[0]);
    assert_eq!(events[0]["calls"][0]["outcome"], "recorded");
    assert!(received.lock().unwrap().is_empty(), "nothing sent in dry-run");
    drop(dry);

    let host = start(true).await;
    host.post_alerts(json!([alert(labels)])).await;
    let events = host
        .wait_for("action_ok,action_fail", 1, Duration::from_secs(60))
        .await;
    let ok = &events[0];
    assert_eq!(ok["kind"], "action_ok", "{ok:#}");
    let request = received
        .lock()
        .unwrap()
        .first()
        .cloned()
        .expect("the runbook got the POST");
    assert!(
        request.starts_with("POST /runbooks/flush-sessions/crm%20web HTTP/1.1"),
        "{request}"
    );
    assert!(
        request
            .to_ascii_lowercase()
            .contains(&format!("authorization: bearer {TOKEN}").to_ascii_lowercase()),
        "the host put the token in: {request}"
    );
    assert!(
        request.contains(r#""alertname":"SessionCacheSaturated""#),
        "{request}"
    );
    assert!(request.contains(r#""service":"crm web""#), "{request}");
    assert_eq!(host.audit("effect_intent").await.len(), 1, "the intent first");
    let trail = serde_json::to_string(&host.audit("").await).unwrap();
    assert!(!trail.contains(TOKEN), "the token is never in the trail");
    let metrics = host.get_ok("/metrics").await;
    let metrics = metrics.as_str().unwrap_or_default();
    let sent = "autoheal_capability_calls_total{capability=\"http.request\",outcome=\"ok\",plugin=\"call-runbook\"} 1";
    assert!(metrics.contains(sent), "{metrics}");
}
