//! A real Prometheus, with the shipped config and rules, scrapes the host.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::real::*;
use crate::support::*;

struct Prometheus {
    process: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// Prometheus running `monitoring/prometheus.yml`, aimed at `target`, with
/// 1 s scrape and evaluation intervals so that the test is quick.
fn prometheus(target: &str) -> Prometheus {
    let monitoring = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../monitoring");
    let shipped = std::fs::read_to_string(monitoring.join("prometheus.yml")).unwrap();
    let config = shipped
        .replace("scrape_interval: 15s", "scrape_interval: 1s")
        .replace("evaluation_interval: 15s", "evaluation_interval: 1s")
        .replace("127.0.0.1:9009", target)
        .replace(
            "rules/*.yml",
            &monitoring.join("rules/*.yml").display().to_string(),
        )
        .replace("127.0.0.1:9093", &format!("127.0.0.1:{}", free_port()));
    for changed in ["1s", target] {
        assert!(
            config.contains(changed),
            "the shipped prometheus.yml changed shape: {shipped}"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("prometheus.yml");
    std::fs::write(&path, config).unwrap();
    let port = free_port();
    let process = Command::new("prometheus")
        .arg(format!("--config.file={}", path.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("prometheus is installed (apt-get install prometheus)");
    let prometheus = Prometheus {
        process,
        url: format!("http://127.0.0.1:{port}"),
        _dir: dir,
    };
    wait_until("Prometheus to be ready", Duration::from_secs(60), || {
        http(&prometheus.url, "GET", "/-/ready", "")
            .ok()
            .filter(|(s, _)| *s == 200)
    });
    prometheus
}

/// The value of an instant query with a single result, if there is one.
fn query(prometheus: &Prometheus, expr: &str) -> Option<f64> {
    let encoded: String = expr
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' | b'-' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    let (_, body) = http(
        &prometheus.url,
        "GET",
        &format!("/api/v1/query?query={encoded}"),
        "",
    )
    .ok()?;
    let result = body["data"]["result"].as_array()?;
    let value = result.first()?["value"][1].as_str()?;
    value.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_the_host_and_evaluates_the_shipped_rules() {
    let host = ServedHost::start(
        &[("crm.toml", bundled_manifest())],
        std::sync::Arc::new(autoheal::containers::NoEngine),
        |_| {},
    )
    .await;
    host.post_alerts(json!([
        opted_in("TcpEndpointDownFast"),
        alert("Quiet", "firing", json!({}))
    ]))
    .await;
    host.engine.drain().await;

    let target = host.url.trim_start_matches("http://").to_owned();
    let values = tokio::task::spawn_blocking(move || {
        let prometheus = prometheus(&target);
        let (_, rules) = http(&prometheus.url, "GET", "/api/v1/rules", "").unwrap();
        let loaded: Vec<Value> = rules["data"]["groups"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|g| g["rules"].as_array().unwrap().clone())
            .collect();
        let heartbeat = wait_until("recording rules to have values", Duration::from_secs(60), || {
            // rate() needs two scrapes: wait until every recording rule has a value.
            let ready = [
                "autoheal:cooldown_active",
                "autoheal:actions:rate_5m",
                "autoheal:action_fail_rate_15m",
            ]
            .iter()
            .all(|rule| query(&prometheus, rule).is_some());
            query(&prometheus, "autoheal:heartbeat:age_seconds").filter(|_| ready)
        });
        (
            loaded.len(),
            heartbeat,
            query(&prometheus, "up{job=\"autoheal\"}"),
            query(&prometheus, "autoheal:cooldown_active"),
            query(
                &prometheus,
                "autoheal_actions_total{alertname=\"TcpEndpointDownFast\",result=\"dry_run\"}",
            ),
            query(&prometheus, "autoheal_enabled"),
            query(&prometheus, "count(autoheal:actions:rate_5m)"),
            query(&prometheus, "count(autoheal:action_fail_rate_15m)"),
        )
    })
    .await
    .unwrap();
    let (rules, heartbeat, up, cooldown_active, dry_runs, enabled, rate, fail_rate) = values;
    assert_eq!(rules, 8, "4 recording and 4 alerting rules");
    assert!((0.0..120.0).contains(&heartbeat), "heartbeat age {heartbeat}");
    assert_eq!(up, Some(1.0));
    assert_eq!(cooldown_active, Some(1.0), "one alertname in cooldown");
    assert_eq!(dry_runs, Some(1.0));
    assert_eq!(enabled, Some(0.0));
    assert_eq!(rate, Some(1.0), "autoheal:actions:rate_5m is recorded");
    assert_eq!(fail_rate, Some(1.0), "autoheal:action_fail_rate_15m is recorded");
}
