//! The operator console (`GET /console`) in a real browser: Debian's
//! chromium, driven through chromedriver with the W3C WebDriver protocol
//! (a tiny client over [`http`]), against the host on loopback and a real
//! Alertmanager.
//!
//! Needs Debian's chromium, chromium-driver and prometheus-alertmanager
//! (`cargo xtask test` installs them).

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::real::*;
use crate::support::*;

/// The W3C key of an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A headless chromium behind its own chromedriver. Dropping it ends the
/// session and kills the driver's whole process group (chromium included).
struct Browser {
    driver: Child,
    base: String,
    session: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    fn start() -> Browser {
        let port = free_port();
        let profile = tempfile::tempdir().unwrap();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver is installed (apt-get install chromium chromium-driver)");
        let mut browser = Browser {
            driver,
            base: format!("http://127.0.0.1:{port}"),
            session: String::new(),
            _profile: profile,
        };
        wait_until("chromedriver to be ready", Duration::from_secs(20), || {
            wd_http(&browser.base, "GET", "/status", "")
                .ok()
                .filter(|(status, body)| *status == 200 && body["value"]["ready"] == true)
        });
        let capabilities = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    "--no-first-run", "--window-size=1440,1000",
                    format!("--user-data-dir={}", browser._profile.path().display()),
                ],
            },
        }}});
        let (status, reply) = wd_http(&browser.base, "POST", "/session", &capabilities.to_string())
            .expect("chromedriver answers POST /session");
        assert_eq!(status, 200, "chromedriver could not start chromium: {reply}");
        browser.session = reply["value"]["sessionId"]
            .as_str()
            .expect("a session id")
            .to_owned();
        browser
    }

    /// One WebDriver command of this session; its `value`.
    fn call(&self, method: &str, path: &str, body: Value) -> Value {
        let path = format!("/session/{}{path}", self.session);
        let body = if method == "GET" {
            String::new()
        } else {
            body.to_string()
        };
        let (status, reply) = wd_http(&self.base, method, &path, &body)
            .unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}"));
        assert_eq!(status, 200, "WebDriver {method} {path}: {reply}");
        reply["value"].clone()
    }

    fn goto(&self, url: &str) {
        self.call("POST", "/url", json!({ "url": url }));
    }

    /// Runs `body` as the body of a function in the page; its return value.
    fn js(&self, body: &str) -> Value {
        self.call("POST", "/execute/sync", json!({ "script": body, "args": [] }))
    }

    /// Polls `body` until it returns something other than null or false.
    fn wait_for(&self, what: &str, timeout: Duration, body: &str) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let value = self.js(body);
            if !value.is_null() && value != false {
                return value;
            }
            if Instant::now() >= deadline {
                panic!(
                    "timed out after {timeout:?} waiting for {what}; the page shows:\n{:#}",
                    self.snapshot()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// What the page shows, for failure messages.
    fn snapshot(&self) -> Value {
        self.js("return {
                conn: document.querySelector('#conn-status').dataset.state,
                notice: document.querySelector('#notice').innerText,
                mode: document.querySelector('#state-mode').innerText,
                filter: document.querySelector('#filter-kind').value,
                rows: [...document.querySelectorAll('#stream .event')].slice(0, 30)
                    .map(r => `${r.dataset.id} ${r.dataset.kind} ${r.dataset.alertname}`),
            };")
    }

    fn click(&self, css: &str) {
        let found = self.call(
            "POST",
            "/element",
            json!({ "using": "css selector", "value": css }),
        );
        let id = found[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element {css}: {found}"));
        self.call("POST", &format!("/element/{id}/click"), json!({}));
    }

    fn screenshot(&self, path: &Path) {
        let png = self.call("GET", "/screenshot", Value::Null);
        let bytes = base64_decode(png.as_str().expect("base64 PNG"));
        assert!(bytes.starts_with(b"\x89PNG"), "not a PNG");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = wd_http(&self.base, "DELETE", &format!("/session/{}", self.session), "");
        }
        // chromedriver leads its own process group; chromium is in it.
        let _ = Command::new("kill")
            .args(["-9", "--", &format!("-{}", self.driver.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// One request to chromedriver. It keeps connections open whatever the
/// request says, so the answer is read by its Content-Length, not to EOF.
fn wd_http(base: &str, method: &str, path: &str, body: &str) -> std::io::Result<(u16, Value)> {
    use std::io::{BufRead, BufReader, Read, Write};
    let addr = base.trim_start_matches("http://");
    let stream = std::net::TcpStream::connect(addr)?;
    // Starting chromium can take a while on a loaded machine.
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    write!(
        &stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut length = None;
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.trim().eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse::<usize>().ok();
        }
    }
    let mut bytes = Vec::new();
    match length {
        Some(n) => {
            bytes.resize(n, 0);
            reader.read_exact(&mut bytes)?;
        }
        None => {
            reader.read_to_end(&mut bytes)?;
        }
    }
    let text = String::from_utf8_lossy(&bytes);
    Ok((
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text.into_owned())),
    ))
}

fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => (c - b'A') as u32,
            b'a'..=b'z' => (c - b'a' + 26) as u32,
            b'0'..=b'9' => (c - b'0' + 52) as u32,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {c:?}"),
        }
    };
    let clean: Vec<u8> = text
        .bytes()
        .filter(|c| !c.is_ascii_whitespace() && *c != b'=')
        .collect();
    let mut out = Vec::with_capacity(clean.len() * 3 / 4);
    for chunk in clean.chunks(4) {
        let mut n = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            n |= value(*c) << (18 - 6 * i);
        }
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    out
}

#[test]
fn base64_decodes_padded_and_unpadded_input() {
    assert_eq!(base64_decode("aGVsbG8="), b"hello");
    assert_eq!(base64_decode("aGVsbG8h"), b"hello!");
    assert_eq!(base64_decode("aGk="), b"hi");
    assert_eq!(base64_decode(""), b"");
}

fn post_alerts(host: &str, alerts: Value) {
    let body = json!({ "version": "4", "status": "firing", "receiver": "autoheal", "alerts": alerts });
    let (status, reply) = http(host, "POST", "/alert", &body.to_string()).unwrap();
    assert_eq!(status, 200, "{reply}");
}

/// Waits until `GET /audit?{query}` holds at least one event.
fn wait_audit(host: &str, query: &str) {
    wait_until(
        &format!("/audit?{query} to hold an event"),
        Duration::from_secs(10),
        || {
            let (status, body) = http(host, "GET", &format!("/audit?{query}"), "").ok()?;
            (status == 200 && body["count"].as_u64() > Some(0)).then_some(())
        },
    );
}

fn artifact(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/test-artifacts")
        .join(name)
}

/// Rows in the stream that match `selector` (after `.event`).
fn count(selector: &str) -> String {
    format!("document.querySelectorAll(`#stream .event{selector}`).length")
}

const CONNECTED: &str = "document.querySelector('#conn-status').dataset.state === 'connected'";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_shows_history_and_live_events_filters_pauses_and_acks() {
    let (host, am) = host_with_alertmanager().await;
    let (host_url, am_url) = (host.url.clone(), am.url.clone());
    let outcome = tokio::task::spawn_blocking(move || console_scenario(&host_url, &am_url)).await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

fn console_scenario(host: &str, am: &str) {
    let started = Instant::now();
    // Before the page opens: one action and one skip, for the history.
    post_alerts(
        host,
        json!([
            opted_in("TcpEndpointDownFast"),
            alert("DiskAlmostFull", "firing", json!({}))
        ]),
    );
    wait_audit(host, "kind=action_dry_run");

    let browser = Browser::start();
    browser.goto(&format!("{host}/console"));
    let opened = Instant::now();
    browser.wait_for(
        "the console with its history, state and plugins",
        Duration::from_secs(10),
        &format!(
            "return document.querySelector('#state-mode').textContent === 'DRY-RUN'
                && document.querySelector('#plugins .plugin[data-plugin=\"restart-crm-api\"]') !== null
                && {} === 1 && {} === 1 && {CONNECTED};",
            count("[data-kind='action_dry_run'][data-alertname='TcpEndpointDownFast']"),
            count("[data-kind='decision_skip'][data-alertname='DiskAlmostFull']"),
        ),
    );
    let loaded = opened.elapsed();
    let page = browser.js(
        "const plugin = document.querySelector('#plugins .plugin[data-plugin=\"restart-crm-api\"]');
         return {
            enabled: document.querySelector('#state-enabled').textContent,
            engine: document.querySelector('#engine').textContent,
            plugin: plugin.textContent,
            last: plugin.querySelector('.plugin-last').textContent,
            cooldown: plugin.querySelector('.plugin-cooldown').textContent,
            links: [...document.querySelectorAll('#stream .event[data-kind=action_dry_run] a')]
                .map(a => a.className + ' ' + a.getAttribute('href')),
         };",
    );
    assert_eq!(page["enabled"], "disabled", "{page:#}");
    assert!(
        page["engine"].as_str().unwrap().contains("no container engine"),
        "{page:#}"
    );
    for alertname in [
        "TcpEndpointDownFast",
        "UptimeProbeFailing",
        "CrmMetricsScrapeStale",
    ] {
        assert!(page["plugin"].as_str().unwrap().contains(alertname), "{page:#}");
    }
    assert!(
        page["last"].as_str().unwrap().contains("restart crm-api"),
        "{page:#}"
    );
    assert!(
        page["cooldown"].as_str().unwrap().contains("TcpEndpointDownFast"),
        "{page:#}"
    );
    let links: Vec<&str> = page["links"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    assert!(
        links.contains(&"gen http://prometheus.example/graph"),
        "{links:?}"
    );
    assert!(
        links.iter().any(|l| l.starts_with("audit-link /audit?")),
        "{links:?}"
    );

    // A live event shows up at the top without a reload.
    let sent = Instant::now();
    post_alerts(host, json!([opted_in("UptimeProbeFailing")]));
    browser.wait_for(
        "the live row",
        Duration::from_secs(5),
        &format!(
            "return {} === 1;",
            count("[data-kind='action_dry_run'][data-alertname='UptimeProbeFailing']")
        ),
    );
    let live_latency = sent.elapsed();
    let order = browser.js(
        "const rows = [...document.querySelectorAll('#stream .event')];
         return {
            first_action: document.querySelector('#stream .event[data-kind=action_dry_run]').dataset.alertname,
            ids: rows.map(r => Number(r.dataset.id)),
         };",
    );
    assert_eq!(
        order["first_action"], "UptimeProbeFailing",
        "newest first: {order:#}"
    );
    let ids: Vec<u64> = order["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i.as_u64().unwrap())
        .collect();
    assert!(
        ids.windows(2).all(|w| w[0] > w[1]),
        "newest first, no duplicates: {ids:?}"
    );

    // Paused: nothing arrives; resumed: the server replays what was missed.
    browser.click("#pause");
    browser.wait_for(
        "the paused state",
        Duration::from_secs(5),
        "return document.querySelector('#conn-status').dataset.state === 'paused';",
    );
    post_alerts(host, json!([opted_in("TcpEndpointDownFast")]));
    wait_audit(host, "kind=decision_skip&alertname=TcpEndpointDownFast");
    std::thread::sleep(Duration::from_millis(300));
    let cooldown_skips = count("[data-kind='decision_skip'][data-alertname='TcpEndpointDownFast']");
    assert_eq!(
        browser.js(&format!("return {cooldown_skips};")),
        0,
        "paused, yet a row arrived"
    );
    browser.click("#pause");
    browser.wait_for(
        "the event missed while paused",
        Duration::from_secs(5),
        &format!("return {cooldown_skips} === 1 && {CONNECTED};"),
    );

    // Filter: only some kinds, so decision_skip rows go, at once and server-side.
    browser.js(
        "document.querySelector('#filter-kind').value = 'action_dry_run,action_started,webhook_received,ack';",
    );
    browser.click("#apply-filters");
    browser.wait_for(
        "the filtered history",
        Duration::from_secs(5),
        &format!(
            "return {} === 0 && {} === 2 && {} === 2 && {CONNECTED};",
            count("[data-kind='decision_skip']"),
            count("[data-kind='action_dry_run']"),
            count("[data-kind='action_started']"),
        ),
    );
    let chip = browser.js("return document.querySelector('#kind-chips input[value=decision_skip]').checked;");
    assert_eq!(chip, false, "the decision_skip checkbox follows the text filter");
    post_alerts(
        host,
        json!([
            alert("NoisyAlert", "firing", json!({})),
            opted_in("CrmMetricsScrapeStale")
        ]),
    );
    browser.wait_for(
        "a live row through the filter",
        Duration::from_secs(5),
        &format!(
            "return {} === 1;",
            count("[data-kind='action_dry_run'][data-alertname='CrmMetricsScrapeStale']")
        ),
    );
    // NoisyAlert's skip came before that action in the trail, and was filtered out.
    assert_eq!(
        browser.js(&format!("return {};", count("[data-kind='decision_skip']"))),
        0
    );
    assert_eq!(
        browser.js(&format!("return {};", count("[data-alertname='NoisyAlert']"))),
        0
    );

    // Ack from a row: a 2h silence in Alertmanager.
    let row = ".event[data-kind='action_dry_run'][data-alertname='TcpEndpointDownFast']";
    browser.js(&format!(
        "const select = document.querySelector(\"#stream {row} .ack select\");
         select.value = '2h';
         select.dispatchEvent(new Event('change'));"
    ));
    browser.click(&format!("#stream {row} .ack button"));
    let result = browser.wait_for(
        "the ack result",
        Duration::from_secs(10),
        &format!(
            "const r = document.querySelector(\"#stream {row} .ack-result\");
             if (r.classList.contains('err')) return {{ error: r.textContent }};
             return r.dataset.silenceId
                ? {{ id: r.dataset.silenceId, text: r.textContent, href: r.querySelector('a').href }}
                : null;"
        ),
    );
    assert!(result["error"].is_null(), "ack failed: {result:#}");
    let silence_id = result["id"].as_str().unwrap();
    assert!(
        result["text"].as_str().unwrap().contains(silence_id),
        "{result:#}"
    );
    assert!(
        result["href"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/#/silences/{silence_id}")),
        "{result:#}"
    );
    let (status, silences) = http(am, "GET", "/api/v2/silences", "").unwrap();
    assert_eq!(status, 200, "{silences}");
    let silence = silences
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == silence_id)
        .unwrap_or_else(|| panic!("silence {silence_id} not in Alertmanager: {silences:#}"));
    assert_eq!(silence["status"]["state"], "active", "{silence:#}");
    assert_eq!(
        silence["matchers"],
        json!([{ "name": "alertname", "value": "TcpEndpointDownFast", "isRegex": false, "isEqual": true }]),
        "{silence:#}"
    );
    let ends = chrono::DateTime::parse_from_rfc3339(silence["endsAt"].as_str().unwrap()).unwrap();
    let expected = chrono::Utc::now() + chrono::Duration::hours(2);
    assert!(
        (ends.timestamp() - expected.timestamp()).abs() < 120,
        "{silence:#}"
    );
    // The ack is an event too, and the filter lets it through.
    browser.wait_for(
        "the ack row",
        Duration::from_secs(5),
        &format!(
            "return {} === 1;",
            count("[data-kind='ack'][data-alertname='TcpEndpointDownFast']")
        ),
    );

    // Every kind again; open one row's details; keep a picture of the page.
    browser.js("document.querySelector('#filter-kind').value = '';");
    browser.click("#apply-filters");
    browser.wait_for(
        "the unfiltered history",
        Duration::from_secs(5),
        &format!(
            "return {} === 3 && {} === 1 && {CONNECTED};",
            count("[data-kind='decision_skip']"),
            count("[data-kind='ack']")
        ),
    );
    let path = artifact("console.png");
    browser.screenshot(&path);
    browser.click("#stream .event[data-kind='action_dry_run'][data-alertname='CrmMetricsScrapeStale'] .sum");
    let shown = browser.wait_for(
        "the expanded row",
        Duration::from_secs(5),
        "const pre = document.querySelector('#stream .event .detail pre.json');
         return pre && JSON.parse(pre.textContent);",
    );
    assert_eq!(shown["kind"], "action_dry_run", "{shown:#}");
    assert_eq!(shown["cmd"], "restart crm-api", "{shown:#}");
    browser.screenshot(&artifact("console-detail.png"));
    eprintln!(
        "console: page with history and live stream in {loaded:?}, a live event in {live_latency:?}, \
         whole scenario {:?}; screenshot {}",
        started.elapsed(),
        path.display()
    );
}
