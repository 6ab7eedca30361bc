//! The `prometheus` and `state` calls of `autoheal:plugin@0.4.0` through the
//! real server. Queries go to a real Prometheus scraping a real target
//! started here (`up`, a range, a bad query, and 5,000 series bounded by
//! `max_series` and `max_bytes`; a range over them of 1.5 million samples
//! read no further than `max_bytes`); state is set in one invocation and
//! read in the next, across a restart of the host, past its TTL, not kept
//! in dry-run, and refused past its bounds. Calls are made by the
//! `prom-state-calls` fixture, straight on the WIT bindings.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::time::Duration;

use serde_json::{Value, json};

use crate::real::{Prometheus, ServedHost, free_port, wait_until};
use crate::support::alert;

/// Series of the many-series metric the target exposes.
const MANY: usize = 5000;

/// A Prometheus target on loopback: `prom34_one 42` and `MANY` series of
/// `prom34_many{i="N"}`. Serves until the process ends.
fn start_target() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let mut body = String::from("# TYPE prom34_one gauge\nprom34_one 42\n# TYPE prom34_many gauge\n");
    for i in 0..MANY {
        body.push_str(&format!("prom34_many{{i=\"{i}\"}} {i}\n"));
    }
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            // The request head, up to its blank line.
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                line.clear();
            }
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    address
}

/// A manifest of the fixture for `alertnames`, with `capabilities` and `config`.
fn plugin(name: &str, alertnames: &[&str], capabilities: &str, config: &str) -> (String, String) {
    (
        format!("{name}.toml"),
        format!(
            "name = {name:?}\nversion = \"1.0.0\"\ncomponent = \"prom_state_calls.wasm\"\n\
             [match]\nalertnames = {alertnames:?}\n{capabilities}\n\
             [limits]\ntimeout_ms = 20000\ncooldown = \"0s\"\n[config]\n{config}\n"
        ),
    )
}

/// Posts one alert per (name, steps), waits for their action events, and
/// returns them in order. Each alert has its own `round` label, so that none
/// is taken for another.
async fn act(host: &ServedHost, alerts: &[(&str, Option<&str>)]) -> Vec<Value> {
    let round = crate::real::unique("round");
    let bodies: Vec<Value> = alerts
        .iter()
        .map(|(name, steps)| {
            let mut annotations = json!({ "autoheal": "true" });
            if let Some(steps) = steps {
                annotations["steps"] = json!(steps);
            }
            let mut alert = alert(name, "firing", annotations);
            alert["labels"]["round"] = json!(round);
            alert
        })
        .collect();
    let before = host.audit("action_ok,action_fail,action_dry_run").await.len();
    host.post_alerts(json!(bodies)).await;
    let events = host
        .wait_for(
            "action_ok,action_fail,action_dry_run",
            before + alerts.len(),
            Duration::from_secs(60),
        )
        .await;
    alerts
        .iter()
        .map(|(name, _)| {
            events
                .iter()
                .rev()
                .find(|e| e["alertname"] == *name)
                .unwrap_or_else(|| panic!("no action for {name}: {events:#?}"))
                .clone()
        })
        .collect()
}

fn output(event: &Value) -> String {
    event["output"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_reach_a_real_prometheus_within_their_bounds() {
    let target = start_target();
    let prometheus = tokio::task::spawn_blocking(move || {
        let prometheus = Prometheus::start(free_port(), &[("127.0.0.1:9105", &target)]);
        // A few scrapes of the target, so that a range has points.
        wait_until("the target to be scraped", Duration::from_secs(60), || {
            (prometheus.query("count(count_over_time(prom34_one[1m]) >= 4)") == Some(1.0)
                && prometheus.query("count(prom34_many)") == Some(MANY as f64))
            .then_some(())
        });
        prometheus
    })
    .await
    .unwrap();

    let allow = "[capabilities.prometheus]\ntimeout = \"10s\"";
    let plugins = [
        plugin(
            "prom-up",
            &["PromUp"],
            allow,
            "call = \"query\"\npromql = 'up{job=\"crm\"}'",
        ),
        plugin(
            "prom-range",
            &["PromRange"],
            allow,
            "call = \"range\"\npromql = \"prom34_one\"\nrange_seconds = \"3\"\nstep = \"1\"",
        ),
        plugin(
            "prom-bad",
            &["PromBad"],
            allow,
            "call = \"query\"\npromql = \"sum(prom34_one\"",
        ),
        plugin(
            "prom-many",
            &["PromMany"],
            "[capabilities.prometheus]\nmax_series = 100",
            "call = \"query\"\npromql = \"prom34_many\"",
        ),
        plugin(
            "prom-bytes",
            &["PromBytes"],
            "[capabilities.prometheus]\nmax_series = 10000\nmax_bytes = 4096",
            "call = \"query\"\npromql = \"prom34_many\"",
        ),
        // 5,000 series x 301 points: 1.5 million samples, tens of MB of
        // JSON, of which the host reads the default 1 MiB.
        plugin(
            "prom-flood",
            &["PromFlood"],
            "[capabilities.prometheus]\nmax_series = 10000\ntimeout = \"15s\"",
            "call = \"range\"\npromql = \"prom34_many\"\nrange_seconds = \"60\"\nstep = \"0.2\"",
        ),
        plugin(
            "prom-none",
            &["PromNone"],
            "",
            "call = \"query\"\npromql = \"up\"",
        ),
    ];
    let plugins: Vec<(&str, String)> = plugins.iter().map(|(f, t)| (f.as_str(), t.clone())).collect();
    let url = prometheus.url.clone();
    let host = ServedHost::start_staged(
        0,
        &["prom_state_calls"],
        &plugins,
        std::sync::Arc::new(autoheal_containers::FakeRuntime::new()),
        |c| c.prometheus_url = url,
    )
    .await;
    let events = act(
        &host,
        &[
            ("PromUp", None),
            ("PromRange", None),
            ("PromBad", None),
            ("PromMany", None),
            ("PromBytes", None),
            ("PromFlood", None),
            ("PromNone", None),
        ],
    )
    .await;
    let [up, range, bad, many, bytes, flood, none] = &events[..] else {
        unreachable!()
    };

    // The target's `up`, with its labels; a read, performed in dry-run.
    let said = output(up);
    assert!(
        said.starts_with("series=1 samples=1 truncated=false first={"),
        "{said}"
    );
    assert!(
        said.contains("__name__=up") && said.contains("job=crm") && said.ends_with("}=1"),
        "{said}"
    );
    assert_eq!(up["kind"], "action_dry_run", "{up:#}");
    let call = &up["calls"][0];
    assert_eq!(call["capability"], "prometheus.query");
    assert_eq!(call["outcome"], "ok");
    assert_eq!(call["target"], "up{job=\"crm\"}");
    assert_eq!(call["detail"], "1 series, 1 samples");
    assert!(call["duration_ms"].as_u64().is_some(), "{call}");

    // A range of 3 s every second: one series of 4 points of 42.
    let said = output(range);
    assert!(said.starts_with("series=1 samples=4 truncated=false"), "{said}");
    assert!(said.ends_with("}=42"), "{said}");
    assert_eq!(range["calls"][0]["capability"], "prometheus.query-range");

    // PromQL Prometheus refuses: its message, as bad-query.
    let said = output(bad);
    assert!(
        said.starts_with("bad-query: ") && said.contains("parse error"),
        "{said}"
    );
    assert_eq!(bad["calls"][0]["outcome"], "failed");

    // 5,000 series: the first 100.
    assert!(
        output(many).starts_with("series=100 samples=100 truncated=true"),
        "{}",
        output(many)
    );
    assert_eq!(many["calls"][0]["detail"], "100 series, 100 samples, truncated");

    // 4 KiB of the answer: the series read whole in it, a few dozen.
    let said = output(bytes);
    let series: usize = said
        .strip_prefix("series=")
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{said}"));
    assert!(
        (1..100).contains(&series) && said.contains("truncated=true"),
        "{said}"
    );

    // 1.5 million samples asked: at most 1 MiB read, the answer truncated.
    let said = output(flood);
    assert!(said.contains("truncated=true"), "{said}");
    let samples: usize = said
        .split(' ')
        .find_map(|w| w.strip_prefix("samples="))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{said}"));
    // Each sample is at least 15 bytes of JSON (`[1700000000.2,"1"]`).
    assert!(samples > 1000 && samples < (1 << 20) / 15, "{said}");
    eprintln!(
        "prom34: the flood read {samples} samples in {} ms",
        flood["calls"][0]["duration_ms"]
    );

    // No [capabilities.prometheus]: denied, never sent.
    let said = output(none);
    assert!(
        said.starts_with("denied: ") && said.contains("[capabilities.prometheus]"),
        "{said}"
    );
    assert_eq!(none["calls"][0]["outcome"], "denied");
}

/// A server at `prometheus_url` whose every answer is an instant vector
/// of `series` series, streamed as it is written (no length known ahead).
/// Returns its address and how many bytes it managed to send, which stops
/// growing once the host stops reading.
fn start_flood(series: usize) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::Ordering;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = sent.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                line.clear();
            }
            let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n\
                        {\"status\":\"success\",\"data\":{\"resultType\":\"vector\",\"result\":[";
            if stream.write_all(head.as_bytes()).is_err() {
                continue;
            }
            let mut chunk = String::new();
            for i in 0..series {
                if i > 0 {
                    chunk.push(',');
                }
                chunk.push_str(&format!(
                    "{{\"metric\":{{\"__name__\":\"flood\",\"i\":\"{i}\"}},\"value\":[1700000000,\"{i}\"]}}"
                ));
                if chunk.len() > 64 * 1024 {
                    if stream.write_all(chunk.as_bytes()).is_err() {
                        break;
                    }
                    counted.fetch_add(chunk.len(), Ordering::SeqCst);
                    chunk.clear();
                }
            }
            let _ = stream.write_all(format!("{chunk}]}}}}").as_bytes());
        }
    });
    (address, sent)
}

/// PromQL that selects a million series (what `{__name__=~".+"}` does on
/// a large Prometheus), answered by a server at `prometheus_url` that
/// streams them: the host reads `max_bytes` of it, answers the series read
/// whole (at most `max_series`) as truncated, and stops reading; the
/// server's writes stall far short of the ~80 MB it would send.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_that_selects_a_million_series_costs_max_bytes() {
    const SERIES: usize = 1_000_000;
    let (url, sent) = start_flood(SERIES);
    let plugins = [plugin(
        "prom-million",
        &["PromMillion"],
        "[capabilities.prometheus]\nmax_series = 10000\ntimeout = \"20s\"",
        "call = \"query\"\npromql = '{__name__=~\".+\"}'",
    )];
    let plugins: Vec<(&str, String)> = plugins.iter().map(|(f, t)| (f.as_str(), t.clone())).collect();
    let host = ServedHost::start_staged(
        0,
        &["prom_state_calls"],
        &plugins,
        std::sync::Arc::new(autoheal_containers::FakeRuntime::new()),
        |c| c.prometheus_url = url,
    )
    .await;
    let events = act(&host, &[("PromMillion", None)]).await;
    let said = output(&events[0]);
    let series: usize = said
        .strip_prefix("series=")
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{said}"));
    // The default max_bytes, 1 MiB, holds some 15,000 of these series:
    // max_series (10,000) comes first.
    assert_eq!(series, 10_000, "{said}");
    assert!(said.contains("truncated=true"), "{said}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let written = sent.load(std::sync::atomic::Ordering::SeqCst);
    // What the server got into the socket: what the host read, plus the
    // kernel's buffers, never the whole answer.
    assert!(written < 16 << 20, "the server sent {written} bytes of ~80 MB");
    eprintln!(
        "prom34: a million series: {series} read, the server sent {written} bytes, in {} ms",
        events[0]["calls"][0]["duration_ms"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_is_kept_across_invocations_and_restarts_within_its_bounds() {
    let plugins = [
        plugin(
            "keeper",
            &["StateOne", "StateTwo", "StateThree"],
            "[capabilities.state]\nmax_ttl = \"1h\"",
            "",
        ),
        plugin(
            "bounded",
            &["StateBounds"],
            "[capabilities.state]\nmax_keys = 2\nmax_value_bytes = 8\nmax_ttl = \"1m\"",
            "steps = \"set a 1 ; set b 1 ; set c 1 ; set a #9 ; set a 1 61 ; set ../x 1 ; get a\"",
        ),
        plugin(
            "flood",
            &["StateFlood"],
            "[capabilities.state]",
            "steps = \"set k v\"\ntimes = \"10000\"",
        ),
        plugin("stateless", &["StateNone"], "", "steps = \"get a\""),
    ];
    let plugins: Vec<(&str, String)> = plugins.iter().map(|(f, t)| (f.as_str(), t.clone())).collect();
    let host = ServedHost::start_staged(
        0,
        &["prom_state_calls"],
        &plugins,
        std::sync::Arc::new(autoheal_containers::FakeRuntime::new()),
        crate::support::real,
    )
    .await;

    let events = act(
        &host,
        &[
            ("StateOne", Some("set count 1 ; set brief v 1 ; del nothing")),
            ("StateBounds", None),
            ("StateFlood", None),
            ("StateNone", None),
        ],
    )
    .await;
    assert_eq!(output(&events[0]), "ok ; ok ; deleted=false");
    let calls: Vec<(&str, &str)> = events[0]["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["capability"].as_str().unwrap(), c["outcome"].as_str().unwrap()))
        .collect();
    assert_eq!(
        calls,
        [("state.set", "ok"), ("state.set", "ok"), ("state.delete", "ok")]
    );
    // A write is no intent, and no container the action acted on: state
    // touches nothing outside the host.
    assert!(events[0]["calls"][0]["intent"].is_null(), "{:#}", events[0]);
    assert!(events[0]["target"].is_null(), "{:#}", events[0]);

    let bounds: Vec<String> = output(&events[1]).split(" ; ").map(str::to_owned).collect();
    assert_eq!(bounds[..2], ["ok", "ok"]);
    for (answer, says) in bounds[2..6]
        .iter()
        .zip(["max_keys", "max_value_bytes", "max_ttl", "state key"])
    {
        assert!(
            answer.starts_with("denied: ") && answer.contains(says),
            "{answer}"
        );
    }
    assert_eq!(bounds[6], "a=1");

    // 10,000 writes: the budget of 64 calls, then refusals; the host goes on.
    assert_eq!(output(&events[2]), "ok=64 denied=9936");
    assert_eq!(events[2]["calls"].as_array().unwrap().len(), 64);

    assert!(
        output(&events[3]).starts_with("denied: "),
        "{}",
        output(&events[3])
    );

    // The next invocation reads what the first kept; the 1 s key expires.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let next = act(
        &host,
        &[("StateTwo", Some("get count ; get brief ; set count 2"))],
    )
    .await;
    assert_eq!(output(&next[0]), "count=1 ; brief unset ; ok");

    // On disk beside the trail; read back by a restarted host.
    let file = std::path::Path::new(&host.host.config.audit_path)
        .parent()
        .unwrap()
        .join("state/keeper.json");
    let kept: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(kept["count"]["value"], "2", "{kept:#}");
    assert!(kept.get("brief").is_none(), "{kept:#}");
    let host = host.restart().await;
    let after = act(
        &host,
        &[("StateThree", Some("get count ; del count ; get count"))],
    )
    .await;
    assert_eq!(output(&after[0]), "count=2 ; deleted=true ; count unset");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_records_state_writes_and_keeps_none() {
    let plugins = [plugin("dry", &["StateDry"], "[capabilities.state]", "")];
    let plugins: Vec<(&str, String)> = plugins.iter().map(|(f, t)| (f.as_str(), t.clone())).collect();
    let host = ServedHost::start_staged(
        0,
        &["prom_state_calls"],
        &plugins,
        std::sync::Arc::new(autoheal_containers::FakeRuntime::new()),
        |_| {},
    )
    .await;
    let events = act(&host, &[("StateDry", Some("set k v ; get k ; del k"))]).await;
    assert_eq!(events[0]["kind"], "action_dry_run");
    assert_eq!(output(&events[0]), "ok ; k unset ; deleted=false");
    let outcomes: Vec<&str> = events[0]["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["recorded", "ok", "recorded"]);
    let state = std::path::Path::new(&host.host.config.audit_path)
        .parent()
        .unwrap()
        .join("state/dry.json");
    assert!(!state.exists(), "a dry run wrote {}", state.display());
}

#[test]
fn plugin_test_starts_from_a_state_file_and_prints_the_state_left() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::copy(
        crate::support::guest("prom_state_calls"),
        d.join("prom_state_calls.wasm"),
    )
    .unwrap();
    let (file, text) = plugin("keeper", &["StateCli"], "[capabilities.state]", "");
    std::fs::write(d.join(&file), text).unwrap();
    let alert = alert(
        "StateCli",
        "firing",
        json!({ "autoheal": "true", "steps": "get count ; set count 2 ; set other x" }),
    );
    std::fs::write(d.join("alert.json"), alert.to_string()).unwrap();
    let state = json!({ "count": { "value": "1", "expires": 4_000_000_000u64 } }).to_string();
    std::fs::write(d.join("keeper.json"), &state).unwrap();

    let run = |extra: &[&str]| {
        let output = crate::plugin_cli::cli()
            .args(["plugin", "test"])
            .arg(d.join(&file))
            .arg("--alert")
            .arg(d.join("alert.json"))
            .args(extra)
            .output()
            .unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr),
        )
    };
    let state_file = d.join("keeper.json").display().to_string();
    let (code, out) = run(&["--state", &state_file]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("result    ok: count=1 ; ok ; ok"), "{out}");
    assert!(
        out.contains("state     count = \"2\"\nstate     other = \"x\""),
        "{out}"
    );
    // The trial's copy changed; the file it started from did not.
    assert_eq!(std::fs::read_to_string(d.join("keeper.json")).unwrap(), state);

    let (_, out) = run(&["--state", &state_file, "--json"]);
    let end = out.rfind("]\n").expect("a JSON list of reports") + 1;
    let reports: Value = serde_json::from_str(&out[..end]).unwrap();
    assert_eq!(reports[0]["state"], json!({ "count": "2", "other": "x" }));
    assert_eq!(reports[0]["calls"][1]["outcome"], "recorded");

    // Without --state it starts empty; a --state that is not there is an error.
    let (_, out) = run(&[]);
    assert!(out.contains("result    ok: count unset ; ok ; ok"), "{out}");
    let (code, out) = run(&["--state", &d.join("missing.json").display().to_string()]);
    assert_ne!(code, Some(0), "{out}");
    assert!(out.contains("--state") && out.contains("missing.json"), "{out}");
}

/// Replicas share plugins' state through etcd: what one replica's
/// invocation sets, another's reads, and a trial on either starts from it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_state_through_etcd() {
    let etcd = crate::cluster::Etcd::start(1);
    let plugins = [plugin(
        "keeper",
        &["StateA", "StateB"],
        "[capabilities.state]\nmax_keys = 2",
        "",
    )];
    let plugins: Vec<(&str, String)> = plugins.iter().map(|(f, t)| (f.as_str(), t.clone())).collect();
    let mut replicas = Vec::new();
    for name in ["r1", "r2"] {
        let raw = crate::cluster::raw_cluster(&etcd, name);
        replicas.push(
            ServedHost::start_staged(
                0,
                &["prom_state_calls"],
                &plugins,
                std::sync::Arc::new(autoheal_containers::FakeRuntime::new()),
                move |c| {
                    crate::support::real(c);
                    c.cluster = raw;
                },
            )
            .await,
        );
    }
    let set = act(&replicas[0], &[("StateA", Some("set count 7 ; set other x"))]).await;
    assert_eq!(output(&set[0]), "ok ; ok", "{:#}", set[0]);
    let read = act(
        &replicas[1],
        &[("StateB", Some("get count ; set third y ; del other ; get other"))],
    )
    .await;
    // Two keys held: a third is past max_keys, on whichever replica.
    let answers: Vec<String> = output(&read[0]).split(" ; ").map(str::to_owned).collect();
    assert_eq!(answers[0], "count=7", "{answers:?}");
    assert!(
        answers[1].starts_with("denied: ") && answers[1].contains("max_keys"),
        "{answers:?}"
    );
    assert_eq!(answers[2..], ["deleted=true", "other unset"]);
    // No state file on either replica: etcd holds it.
    for replica in &replicas {
        let dir = std::path::Path::new(&replica.host.config.audit_path)
            .parent()
            .unwrap()
            .to_owned();
        assert!(!dir.join("state/keeper.json").exists());
    }
}
