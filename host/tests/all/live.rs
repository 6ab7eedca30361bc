//! The live surface over loopback: SSE, metrics, and acks against a real
//! Alertmanager.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::{Value, json};

use crate::real::*;
use crate::support::*;

/// One SSE message: `id` (if any), `event` name (if any), data.
#[derive(Debug, Clone)]
struct Message {
    id: Option<u64>,
    event: Option<String>,
    data: String,
}

impl Message {
    fn json(&self) -> Value {
        serde_json::from_str(&self.data).unwrap()
    }
}

/// A raw SSE client on a blocking socket.
struct SseClient {
    reader: BufReader<TcpStream>,
    pub status: u16,
}

impl SseClient {
    fn connect(base: &str, path: &str, last_event_id: Option<u64>) -> SseClient {
        let addr = base.trim_start_matches("http://");
        let mut stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let resume = last_event_id
            .map(|id| format!("Last-Event-ID: {id}\r\n"))
            .unwrap_or_default();
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n{resume}\r\n"
        )
        .unwrap();
        let mut reader = BufReader::new(stream);
        let mut status_line = String::new();
        reader.read_line(&mut status_line).unwrap();
        let status = status_line.split_whitespace().nth(1).unwrap().parse().unwrap();
        loop {
            let mut header = String::new();
            reader.read_line(&mut header).unwrap();
            if header == "\r\n" || header.is_empty() {
                break;
            }
        }
        SseClient { reader, status }
    }

    /// The next message (skipping comments and chunk-size lines).
    fn next(&mut self) -> Message {
        let (mut id, mut event, mut data) = (None, None, None);
        loop {
            let mut line = String::new();
            let n = self.reader.read_line(&mut line).expect("SSE stream read");
            assert!(n > 0, "SSE stream closed");
            let line = line.trim_end_matches(['\r', '\n']);
            if let Some(v) = line.strip_prefix("id: ").or_else(|| line.strip_prefix("id:")) {
                id = v.trim().parse().ok();
            } else if let Some(v) = line
                .strip_prefix("event: ")
                .or_else(|| line.strip_prefix("event:"))
            {
                event = Some(v.trim().to_owned());
            } else if let Some(v) = line.strip_prefix("data: ").or_else(|| line.strip_prefix("data:")) {
                data = Some(v.to_owned());
            } else if line.is_empty()
                && let Some(data) = data.take()
            {
                return Message { id, event, data };
            }
        }
    }

    /// Messages until one satisfies `done` (included).
    fn until(&mut self, mut done: impl FnMut(&Message) -> bool) -> Vec<Message> {
        let mut seen = Vec::new();
        loop {
            let message = self.next();
            let stop = done(&message);
            seen.push(message);
            if stop {
                return seen;
            }
        }
    }
}

fn kind(m: &Message) -> String {
    m.json()["kind"].as_str().unwrap_or("").to_owned()
}

async fn host_with_bundled(configure: impl FnOnce(&mut autoheal::config::RawConfig)) -> ServedHost {
    ServedHost::start(
        &[("crm.toml", bundled_manifest())],
        std::sync::Arc::new(autoheal_containers::NoEngine),
        configure,
    )
    .await
}

/// Runs blocking client code off the async runtime.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_receives_the_events_of_a_webhook_and_filters_apply() {
    let host = host_with_bundled(|_| {}).await;
    let url = host.url.clone();
    let (mut all, mut dry_only) = blocking(move || {
        (
            SseClient::connect(&url, "/events", None),
            SseClient::connect(
                &url,
                "/events?kind=action_dry_run&alertname=TcpEndpointDownFast",
                None,
            ),
        )
    })
    .await;
    assert_eq!(all.status, 200);
    host.post_alerts(json!([
        alert("Quiet", "firing", json!({})),
        opted_in("TcpEndpointDownFast")
    ]))
    .await;

    let events = blocking(move || all.until(|m| kind(m) == "action_dry_run")).await;
    let kinds: Vec<String> = events.iter().map(kind).collect();
    assert_eq!(
        kinds,
        [
            "webhook_received",
            "decision_skip",
            "action_started",
            "action_dry_run"
        ]
    );
    let ids: Vec<u64> = events.iter().map(|m| m.id.unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[1] == w[0] + 1), "{ids:?}");
    assert_eq!(events[3].json()["id"], ids[3], "the SSE id is the event id");

    let first = blocking(move || dry_only.next()).await;
    assert_eq!(kind(&first), "action_dry_run", "the filter let through {first:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resuming_with_last_event_id_loses_nothing() {
    let host = host_with_bundled(|_| {}).await;
    let url = host.url.clone();
    let mut client = blocking(move || SseClient::connect(&url, "/events", None)).await;
    host.post_alerts(json!([alert("First", "firing", json!({}))]))
        .await;
    let seen = blocking(move || {
        let seen = client.until(|m| kind(m) == "decision_skip");
        drop(client); // disconnect
        seen
    })
    .await;
    let last = seen.last().unwrap().id.unwrap();

    // Events happen while the client is away.
    for name in ["Second", "Third"] {
        host.post_alerts(json!([alert(name, "firing", json!({}))])).await;
    }
    host.remediator.drain().await;
    let url = host.url.clone();
    let resumed = blocking(move || {
        let mut client = SseClient::connect(&url, "/events", Some(last));
        client.until(|m| m.json()["alertname"] == "Third")
    })
    .await;
    let ids: Vec<u64> = resumed.iter().map(|m| m.id.unwrap()).collect();
    let expected: Vec<u64> = (last + 1..=last + ids.len() as u64).collect();
    assert_eq!(ids, expected, "resumed stream must continue exactly after {last}");
    let names: Vec<String> = resumed
        .iter()
        .filter_map(|m| m.json()["alertname"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(names, ["Second", "Third"]);

    // The query-parameter form works too (EventSource cannot set headers on the first connect).
    let url = host.url.clone();
    let again =
        blocking(move || SseClient::connect(&url, &format!("/events?last_event_id={last}"), None).next())
            .await;
    assert_eq!(again.id, Some(last + 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_subscriber_delays_no_one_and_is_caught_up_from_the_audit() {
    let host = host_with_bundled(|c| c.audit_fsync = autoheal_core::audit::FsyncPolicy::Never).await;
    let url = host.url.clone();
    let (stalled, mut reader) = blocking(move || {
        (
            SseClient::connect(&url, "/events", None),
            SseClient::connect(&url, "/events", None),
        )
    })
    .await;

    // 200 webhooks of 100 unannotated alerts: 20,200 events of over 1 KB, far
    // more than the broadcast buffer (4096 events) and the socket buffers of
    // the stalled client (a few MB).
    let long = "x".repeat(1000);
    let batch: Vec<Value> = (0..100)
        .map(|i| alert(&format!("Noise{i}{long}"), "firing", json!({})))
        .collect();
    // The other subscriber reads all along, until the marker posted last.
    let reading = tokio::task::spawn_blocking(move || reader.until(|m| m.data.contains("FinalMarker")));
    let total_before = host.host.audit.next_id();
    for _ in 0..200 {
        host.post_alerts(json!(batch)).await;
    }
    host.post_alerts(json!([alert("FinalMarker", "firing", json!({}))]))
        .await;
    host.remediator.drain().await;
    let last_id = host.host.audit.next_id() - 1;
    assert!(last_id - total_before >= 20_000);

    // The reading subscriber got everything, in order, without gaps.
    let received = reading.await.unwrap();
    let ids: Vec<u64> = received.iter().filter_map(|m| m.id).collect();
    assert!(ids.windows(2).all(|w| w[1] == w[0] + 1), "the reader lost events");
    assert_eq!(*ids.last().unwrap(), last_id);

    // The stalled one, read now, was told it fell behind and was resumed from
    // the audit trail: it still sees every event, in order.
    let mut stalled = stalled;
    let late = blocking(move || stalled.until(|m| m.id == Some(last_id))).await;
    assert!(
        late.iter().any(|m| m.event.as_deref() == Some("lagged")),
        "no lagged notice"
    );
    let ids: Vec<u64> = late.iter().filter_map(|m| m.id).collect();
    assert!(
        ids.windows(2).all(|w| w[1] == w[0] + 1),
        "the stalled subscriber lost events"
    );
    assert_eq!(*ids.last().unwrap(), last_id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_subscriber_cap_answers_503() {
    let host = host_with_bundled(|c| c.sse_max_subscribers = 1).await;
    let url = host.url.clone();
    let (first, second) = blocking(move || {
        let first = SseClient::connect(&url, "/events", None);
        let second = SseClient::connect(&url, "/events", None);
        (first, second)
    })
    .await;
    assert_eq!(first.status, 200);
    assert_eq!(second.status, 503);
    drop(first);
    // The slot is given back when the first client goes away.
    let url = host.url.clone();
    let third = blocking(move || {
        wait_until("a free subscriber slot", Duration::from_secs(10), || {
            let client = SseClient::connect(&url, "/events", None);
            (client.status == 200).then_some(client)
        })
    })
    .await;
    assert_eq!(third.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_follow_a_scripted_sequence() {
    let host = host_with_bundled(|_| {}).await;
    host.post_alerts(json!([
        opted_in("TcpEndpointDownFast"),
        alert("Quiet", "firing", json!({}))
    ]))
    .await;
    host.post_alerts(json!([opted_in("TcpEndpointDownFast")])).await;
    let url = host.url.clone();
    let (status, _) = blocking(move || http(&url, "POST", "/alert", "{broken").unwrap()).await;
    assert_eq!(status, 400);
    host.remediator.drain().await;

    let url = host.url.clone();
    let text = blocking(move || {
        let (status, body) = http(&url, "GET", "/metrics", "").unwrap();
        assert_eq!(status, 200);
        body.as_str().unwrap().to_owned()
    })
    .await;
    let value = |series: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
            .unwrap_or_else(|| panic!("no {series} in\n{text}"))
            .rsplit(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    let expected = [
        ("autoheal_enabled", 0.0),
        ("autoheal_dry_run", 1.0),
        ("autoheal_plugins_loaded", 1.0),
        ("autoheal_event_total{kind=\"webhook_received\"}", 2.0),
        ("autoheal_event_total{kind=\"webhook_rejected\"}", 1.0),
        ("autoheal_event_total{kind=\"action_dry_run\"}", 1.0),
        (
            "autoheal_actions_total{alertname=\"TcpEndpointDownFast\",mode=\"dry_run\",result=\"dry_run\"}",
            1.0,
        ),
        (
            "autoheal_actions_total{alertname=\"TcpEndpointDownFast\",mode=\"\",result=\"skip\"}",
            1.0,
        ),
        // No manifest or config names `Quiet`: it shares the series of all such alerts.
        (
            "autoheal_actions_total{alertname=\"(other)\",mode=\"\",result=\"skip\"}",
            1.0,
        ),
        ("autoheal_webhook_requests_total{status=\"200\"}", 2.0),
        ("autoheal_webhook_requests_total{status=\"400\"}", 1.0),
        (
            "autoheal_plugin_invocations_total{mode=\"dry_run\",plugin=\"restart-crm-api\",result=\"dry_run\"}",
            1.0,
        ),
        (
            "autoheal_capability_calls_total{capability=\"containers.restart\",outcome=\"recorded\",plugin=\"restart-crm-api\"}",
            1.0,
        ),
        (
            "autoheal_plugin_invocation_duration_seconds_count{plugin=\"restart-crm-api\"}",
            1.0,
        ),
    ];
    for (series, want) in expected {
        assert_eq!(value(series), want, "{series}");
    }
    let cooldown = value("autoheal_cooldown_remaining_seconds{alertname=\"TcpEndpointDownFast\"}");
    assert!((590.0..=600.0).contains(&cooldown), "{cooldown}");
    let now = autoheal_core::util::unix_now();
    for series in ["autoheal_last_event_timestamp", "autoheal_last_action_epoch"] {
        assert!((now - value(series)).abs() < 60.0, "{series}");
    }
    // The seed series exist from the start, at 0: no failure yet.
    assert_eq!(
        value("autoheal_action_failures_total{alertname=\"TcpEndpointDownFast\",mode=\"real\"}"),
        0.0
    );
    assert_eq!(
        value("autoheal_action_failures_total{alertname=\"(other)\",mode=\"dry_run\"}"),
        0.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ack_creates_a_silence_in_a_real_alertmanager() {
    // Alertmanager delivers to the host; the host acks against Alertmanager.
    let (host, am) = host_with_alertmanager().await;

    // GET with the original system's JSON labels.
    let labels = urlencode(r#"{"alertname":"SilencedAlert"}"#);
    let (url, path) = (host.url.clone(), format!("/ack?labels={labels}&duration=2h"));
    let (status, reply) = blocking(move || http(&url, "GET", &path, "").unwrap()).await;
    assert_eq!(status, 200, "{reply}");
    let id = reply["silence_id"].as_str().unwrap().to_owned();
    assert!(
        reply["url"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/#/silences/{id}"))
    );

    let am_url = am.url.clone();
    let (_, silences) = blocking(move || http(&am_url, "GET", "/api/v2/silences", "").unwrap()).await;
    let silence = silences
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == id.as_str())
        .unwrap()
        .clone();
    // Alertmanager's UI says who acked: the verified caller (here the shared operator token).
    assert_eq!(silence["createdBy"], "autoheal (operator)");
    assert_eq!(silence["status"]["state"], "active");
    assert_eq!(silence["matchers"][0]["name"], "alertname");
    assert_eq!(silence["matchers"][0]["value"], "SilencedAlert");
    assert_eq!(silence["matchers"][0]["isRegex"], false);
    let ends = chrono::DateTime::parse_from_rfc3339(silence["endsAt"].as_str().unwrap()).unwrap();
    let expected_end = chrono::Utc::now() + chrono::Duration::hours(2);
    assert!((ends.timestamp() - expected_end.timestamp()).abs() < 60, "{ends}");
    let ack = host.audit("ack").await.remove(0);
    assert_eq!(ack["silence_id"], id.as_str());
    assert_eq!(ack["alertname"], "SilencedAlert");
    assert_eq!(ack["duration"], "2h");
    assert_eq!(
        (&ack["by"], &ack["by_kind"]),
        (&json!("operator"), &json!("shared_token"))
    );

    // POST with Alertmanager matcher syntax.
    let url = host.url.clone();
    let body = json!({ "labels": "alertname=~\"Tcp.*\", service=\"crm-api\"", "duration": "1d", "comment": "deploy" });
    let (status, reply) = blocking(move || http(&url, "POST", "/ack", &body.to_string()).unwrap()).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["matchers"][0]["isRegex"], true);

    // The silenced alert is not delivered; another one is.
    am.push(json!({"alertname": "SilencedAlert"}), json!({}), None);
    am.push(json!({"alertname": "DeliveredAlert"}), json!({}), None);
    let skips = host.wait_for("decision_skip", 1, Duration::from_secs(30)).await;
    assert_eq!(skips[0]["alertname"], "DeliveredAlert");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let names: Vec<Value> = host
        .audit("decision_skip")
        .await
        .iter()
        .map(|e| e["alertname"].clone())
        .collect();
    assert!(
        !names.contains(&json!("SilencedAlert")),
        "the silenced alert was delivered: {names:?}"
    );

    // Error paths.
    let cases = [
        (format!("/ack?labels={labels}&duration=soon"), 400, "duration"),
        ("/ack?labels=%7B%7D&duration=1h".to_owned(), 400, "matcher"),
        ("/ack?duration=1h".to_owned(), 400, "labels"),
        (
            format!("/ack?labels={}&duration=1h", urlencode("alertname=~\".+\"")),
            400,
            "equality matcher",
        ),
        (
            format!("/ack?labels={labels}&duration=2d"),
            400,
            "ack_max_duration",
        ),
        (
            // Alertmanager's own refusal (a bad regex) is passed on.
            format!(
                "/ack?labels={}&duration=1h",
                urlencode("alertname=\"X\", service=~\"(\"")
            ),
            502,
            "refused",
        ),
    ];
    for (path, want, words) in cases {
        let url = host.url.clone();
        let p = path.clone();
        let (status, reply) = blocking(move || http(&url, "GET", &p, "").unwrap()).await;
        assert_eq!(status, want, "{path}: {reply}");
        assert!(
            reply["error"].as_str().unwrap().contains(words),
            "{path}: {reply}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ack_with_alertmanager_down_is_a_502_that_says_so() {
    let closed = free_port();
    let host =
        host_with_bundled(move |c| c.alertmanager_url = format!("http://127.0.0.1:{closed}").into()).await;
    let url = host.url.clone();
    let labels = urlencode(r#"{"alertname":"X"}"#);
    let (status, reply) =
        blocking(move || http(&url, "GET", &format!("/ack?labels={labels}&duration=30m"), "").unwrap()).await;
    assert_eq!(status, 502);
    let error = reply["error"].as_str().unwrap();
    assert!(
        error.contains("not reachable") && error.contains(&closed.to_string()),
        "{error}"
    );
    assert!(host.audit("ack").await.is_empty());
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A trail of `events` events (ids 1..=events, oldest first): `decision_skip`
/// lines, one in ten about `DiskFull`.
fn seeded_trail(path: &std::path::Path, events: u64) {
    use std::fmt::Write as _;
    let mut text = String::new();
    for id in 1..=events {
        let alertname = if id % 10 == 0 { "DiskFull" } else { "Quiet" };
        writeln!(
            text,
            r#"{{"alertname":"{alertname}","detail":"alert has no annotation autoheal: \"true\"","fingerprint":"{id:016x}","id":{id},"kind":"decision_skip","reason":"not_annotated","status":"firing","ts":{}}}"#,
            1_796_000_000.0 + id as f64 / 1000.0
        )
        .unwrap();
    }
    std::fs::write(path, text).unwrap();
}

/// More events than several replay batches (2,000 lines each).
const SEEDED: u64 = 5_000;

/// A host on a trail of [`SEEDED`] events, with one audit read at a time.
async fn host_on_seeded_trail(trail: &tempfile::TempDir) -> ServedHost {
    let path = trail.path().join("audit.jsonl");
    seeded_trail(&path, SEEDED);
    host_with_bundled(|config| {
        config.audit_path = path;
        config.max_concurrent_audit_reads = 1;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_event_id_0_replays_the_whole_trail_once_in_order_then_live_events() {
    let trail = tempfile::tempdir().unwrap();
    let host = host_on_seeded_trail(&trail).await;
    let url = host.url.clone();
    let (client, replayed) = blocking(move || {
        let mut client = SseClient::connect(&url, "/events", Some(0));
        let replayed = client.until(|m| m.id == Some(SEEDED));
        (client, replayed)
    })
    .await;
    let ids: Vec<u64> = replayed.iter().map(|m| m.id.unwrap()).collect();
    assert_eq!(
        ids,
        (1..=SEEDED).collect::<Vec<_>>(),
        "every event once, in order"
    );
    assert_eq!(replayed[41].json()["id"], 42, "the data is the event");

    // What the host recorded at start, then what happens now: no gap, no repeat.
    host.post_alerts(json!([alert("LiveOne", "firing", json!({}))]))
        .await;
    let mut client = client;
    let after =
        blocking(move || client.until(|m| m.json()["alertname"] == "LiveOne" && kind(m) == "decision_skip"))
            .await;
    let ids: Vec<u64> = after.iter().map(|m| m.id.unwrap()).collect();
    let expected: Vec<u64> = (SEEDED + 1..=SEEDED + ids.len() as u64).collect();
    assert_eq!(ids, expected);
    assert!(after.iter().any(|m| kind(m) == "host_started"), "{after:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catch_ups_share_the_audit_read_limit_with_audit_and_filters_apply() {
    let trail = tempfile::tempdir().unwrap();
    let host = host_on_seeded_trail(&trail).await;
    // With one read at a time, two catch-ups (one filtered) and `GET /audit`
    // polls all take turns and all complete.
    let catch_up = |path: &'static str, last: u64| {
        let url = host.url.clone();
        tokio::task::spawn_blocking(move || {
            let mut client = SseClient::connect(&url, path, Some(0));
            client.until(|m| m.id == Some(last))
        })
    };
    let all = catch_up("/events", SEEDED);
    let disk = catch_up("/events?alertname=DiskFull&kind=decision_skip", SEEDED);
    let url = host.url.clone();
    let polls = tokio::task::spawn_blocking(move || {
        (0..20)
            .map(|_| http(&url, "GET", "/audit?n=5000", "").unwrap().0)
            .collect::<Vec<u16>>()
    });
    let deadline = Duration::from_secs(60);
    let all = tokio::time::timeout(deadline, all).await.unwrap().unwrap();
    let disk = tokio::time::timeout(deadline, disk).await.unwrap().unwrap();
    let polls = tokio::time::timeout(deadline, polls).await.unwrap().unwrap();
    assert_eq!(all.len() as u64, SEEDED);
    let disk_ids: Vec<u64> = disk.iter().map(|m| m.id.unwrap()).collect();
    assert_eq!(disk_ids, (1..=SEEDED / 10).map(|i| i * 10).collect::<Vec<_>>());
    assert!(polls.iter().all(|&status| status == 200), "{polls:?}");
}
