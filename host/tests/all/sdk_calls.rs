//! The Python and JavaScript SDKs' `http`, `prometheus` and `state`
//! wrappers through the real server: the `sdk-calls-py` and `sdk-calls-js`
//! fixtures ask a real Prometheus scraping a target started here (a value,
//! a threshold, an alert condition, a range, a bad query), keep a counter
//! in state across two invocations, GET the target with a secret named, not
//! read (the target echoes the request's headers, and the secret comes back
//! scrubbed), and are refused a POST the manifest does not allow.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::real::{Prometheus, ServedHost, free_port, unique, wait_until};
use crate::support::alert;

// A Python or JavaScript component takes 10-35 s to compile in a debug
// build on a quiet machine, and several times that on a busy one.
const WAIT: Duration = Duration::from_secs(300);

const TOKEN: &str = "sdk34-token-the-plugin-never-reads";

/// A target on loopback: `sdk34_gauge 42` on any path, and on `/echo` the
/// request's head as its body. Serves until the process ends.
fn start_target() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut head = String::new();
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                head.push_str(&line);
                line.clear();
            }
            let body = if head.starts_with("GET /echo") {
                head
            } else {
                "# TYPE sdk34_gauge gauge\nsdk34_gauge 42\n".to_owned()
            };
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    address
}

/// The manifest of a fixture: Prometheus, state, and GETs of the target
/// with the `TOKEN` secret put in a header.
fn manifest(name: &str, language: &str, alertname: &str, target: &str) -> (String, String) {
    (
        format!("{name}.toml"),
        format!(
            r#"name = {name:?}
version = "1.0.0"
component = "{component}.wasm"
language = {language:?}
[match]
alertnames = [{alertname:?}]
[capabilities.prometheus]
timeout = "10s"
[capabilities.state]
[capabilities.http]
allow = ["GET http://{target}/"]
secrets = {{ TOKEN = "header:X-Token:{{}}" }}
[limits]
timeout_ms = 20000
cooldown = "0s"
target_cooldown = "0s"
[config]
metric = "sdk34_gauge"
url = "http://{target}/echo"
"#,
            component = name.replace('-', "_"),
        ),
    )
}

/// Posts one firing `alertname` and waits for its action event.
async fn act(host: &ServedHost, alertname: &str) -> Value {
    let before = host.audit("action_ok,action_fail").await.len();
    let mut one = alert(alertname, "firing", json!({ "autoheal": "true" }));
    one["labels"]["round"] = json!(unique("round"));
    host.post_alerts(json!([one])).await;
    host.wait_for("action_ok,action_fail", before + 1, WAIT)
        .await
        .into_iter()
        .rev()
        .find(|e| e["alertname"] == alertname)
        .unwrap_or_else(|| panic!("no action for {alertname}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_and_javascript_plugins_query_keep_state_and_call_http_through_the_sdks() {
    let target = start_target();
    let scraped = target.clone();
    let prometheus = tokio::task::spawn_blocking(move || {
        let prometheus = Prometheus::start(free_port(), &[("127.0.0.1:9105", &scraped)]);
        wait_until("the target to be scraped", Duration::from_secs(60), || {
            (prometheus.query("sdk34_gauge") == Some(42.0)).then_some(())
        });
        prometheus
    })
    .await
    .unwrap();
    let plugins = [
        manifest("sdk-calls-py", "python", "SdkPy", &target),
        manifest("sdk-calls-js", "javascript", "SdkJs", &target),
    ];
    let plugins: Vec<(&str, String)> = plugins.iter().map(|(f, t)| (f.as_str(), t.clone())).collect();
    let url = prometheus.url.clone();
    let host = ServedHost::start_staged(
        0,
        &["sdk_calls_py", "sdk_calls_js"],
        &plugins,
        Arc::new(autoheal_containers::FakeRuntime::new()),
        |c| {
            crate::support::real(c);
            c.prometheus_url = url;
            c.secrets.insert(
                "TOKEN".into(),
                autoheal::config::RawSecret {
                    value: Some(TOKEN.into()),
                    ..Default::default()
                },
            );
        },
    )
    .await;

    for alertname in ["SdkPy", "SdkJs"] {
        let first = act(&host, alertname).await;
        assert_eq!(first["kind"], "action_ok", "{first:#}");
        assert_eq!(
            first["output"],
            "value=42 above41=True failing=False range=1 bad=bad_query runs=1 deleted=False \
             http=200 sees=True plugin_header=True post=denied",
            "{first:#}"
        );
        assert!(!first.to_string().contains(TOKEN), "{first:#}");
        let calls: Vec<&str> = first["calls"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["capability"].as_str().unwrap())
            .collect();
        for wanted in [
            "prometheus.query",
            "prometheus.query-range",
            "state.get",
            "state.set",
            "state.delete",
            "http.request",
        ] {
            assert!(calls.contains(&wanted), "{wanted} not in {calls:?}");
        }

        // The next invocation reads what the first kept.
        let second = act(&host, alertname).await;
        let said = second["output"].as_str().unwrap_or_default();
        assert!(said.contains("runs=2 "), "{second:#}");
    }
}
