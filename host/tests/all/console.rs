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
pub(crate) struct Browser {
    driver: Child,
    base: String,
    session: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    pub(crate) fn start() -> Browser {
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

    pub(crate) fn goto(&self, url: &str) {
        self.call("POST", "/url", json!({ "url": url }));
    }

    /// Runs `body` as the body of a function in the page; its return value.
    pub(crate) fn js(&self, body: &str) -> Value {
        self.call("POST", "/execute/sync", json!({ "script": body, "args": [] }))
    }

    /// Runs `body` as an asynchronous script: it ends by calling its last
    /// argument with the value to return.
    pub(crate) fn js_async(&self, body: &str) -> Value {
        self.call("POST", "/execute/async", json!({ "script": body, "args": [] }))
    }

    /// The cookies the browser holds for the current page, as WebDriver
    /// lists them (`name`, `value`, `httpOnly`, `sameSite`, `path`, `secure`).
    pub(crate) fn cookies(&self) -> Vec<Value> {
        self.call("GET", "/cookie", Value::Null)
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Polls `body` until it returns something other than null or false.
    pub(crate) fn wait_for(&self, what: &str, timeout: Duration, body: &str) -> Value {
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
    pub(crate) fn snapshot(&self) -> Value {
        self.js("return {
                conn: document.querySelector('#conn-status').dataset.state,
                notice: document.querySelector('#notice').innerText,
                mode: document.querySelector('#state-mode').innerText,
                filter: document.querySelector('#filter-kind').value,
                rows: [...document.querySelectorAll('#stream .event')].slice(0, 30)
                    .map(r => `${r.dataset.id} ${r.dataset.kind} ${r.dataset.alertname}`),
                view: document.body.dataset.view,
                vision: document.body.dataset.view === 'vision'
                    ? document.querySelector('#vision').innerText.slice(0, 4000) : undefined,
                vision_lines: [...document.querySelectorAll('#vision-chart polyline')]
                    .map(l => `${l.dataset.series}: ${l.dataset.points} points`),
            };")
    }

    /// Types the operator token into the console's header form and saves
    /// it, as an operator would once (acks, pauses and resets need it).
    pub(crate) fn sign_in_as_operator(&self) {
        self.js(&format!(
            "document.querySelector('#auth-token').value = {:?}; return true;",
            crate::support::OPERATOR_TOKEN
        ));
        self.click("#auth-save");
    }

    pub(crate) fn click(&self, css: &str) {
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

    pub(crate) fn screenshot(&self, path: &Path) {
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

pub(crate) fn artifact(name: &str) -> PathBuf {
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
    // Acks take the operator token: typed once into the header's form, as an operator would.
    browser.sign_in_as_operator();
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

/// Blocking browser work on this thread of a multi-threaded runtime.
fn blocking<T>(work: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(work)
}

/// The Operations view (`GET /vision`) against the real stack of
/// [`crate::vision::VisionStack`]: the payment simulator scraped by a real
/// Prometheus running the shipped rules, and a real Alertmanager.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_operations_view_follows_the_runway_and_says_when_sources_are_down() {
    let started = Instant::now();
    let mut stack = crate::vision::VisionStack::start().await;
    let host = stack.host.url.clone();
    blocking(|| {
        stack.alertmanager.as_ref().unwrap().push(
            json!({"alertname": "ConsoleVisionCritical", "severity": "critical"}),
            json!({"summary": "pushed by the console test"}),
            None,
        )
    });
    let browser = blocking(Browser::start);

    // Steady traffic: a long runway, green, with a number of days.
    let steady = blocking(|| {
        browser.goto(&format!("{host}/console?view=vision"));
        browser.wait_for(
            "days to breach: green, with a number",
            Duration::from_secs(30),
            r#"const d = document.querySelector('#vision-days');
               return d && d.dataset.status === 'green' && /\d/.test(d.textContent) && {
                   days: d.textContent,
                   view: document.body.dataset.view,
                   hash: location.hash,
                   search: location.search,
                   tab: document.querySelector('#tab-vision').getAttribute('aria-selected'),
                   slo: document.querySelector('#vision-slo').innerText,
                   hours: document.querySelector('#vision-hours').textContent,
                   budget: document.querySelector('#vision-budget').textContent,
                   burn: document.querySelector('#vision-burn-1h').textContent,
                   prometheus: document.querySelector('#vision-prometheus').dataset.reachable,
                   prometheus_text: document.querySelector('#vision-prometheus').textContent,
               };"#,
        )
    });
    assert_eq!(steady["view"], "vision", "{steady:#}");
    assert_eq!(steady["tab"], "true", "{steady:#}");
    assert_eq!(
        (steady["hash"].as_str(), steady["search"].as_str()),
        (Some("#vision"), Some("")),
        "?view=vision becomes #vision: {steady:#}"
    );
    assert!(steady["days"].as_str().unwrap().ends_with('d'), "{steady:#}");
    assert!(steady["hours"].as_str().unwrap().contains(" h"), "{steady:#}");
    assert!(steady["budget"].as_str().unwrap().contains('%'), "{steady:#}");
    assert!(steady["burn"].as_str().unwrap().contains('×'), "{steady:#}");
    assert_eq!(steady["prometheus"], "true", "{steady:#}");
    assert!(
        steady["prometheus_text"]
            .as_str()
            .unwrap()
            .contains("alerting rules"),
        "{steady:#}"
    );

    // The alert pushed into Alertmanager, counted and listed; autoheal's state.
    let alerts = blocking(|| {
        browser.wait_for(
            "the pushed critical alert",
            Duration::from_secs(30),
            r#"const a = document.querySelector('#vision-alerts');
               const row = a.querySelector('.vision-alert[data-alertname="ConsoleVisionCritical"]');
               return row && {
                   firing: Number(a.dataset.firing), critical: Number(a.dataset.critical),
                   warning: Number(a.dataset.warning), severity: row.dataset.severity, row: row.innerText,
                   first: a.querySelector('.vision-alert').dataset.severity,
               };"#,
        )
    });
    assert!(alerts["critical"].as_f64() >= Some(1.0), "{alerts:#}");
    assert!(
        alerts["firing"].as_f64() >= alerts["critical"].as_f64(),
        "{alerts:#}"
    );
    assert_eq!(alerts["severity"], "critical", "{alerts:#}");
    assert_eq!(alerts["first"], "critical", "most severe first: {alerts:#}");
    let row = alerts["row"].as_str().unwrap();
    assert!(row.contains("pushed by the console test"), "{alerts:#}");
    assert!(row.contains("ago") || row.contains("just now"), "{alerts:#}");
    let side = blocking(|| {
        browser.js(
            r#"const a = document.querySelector('#vision-autoheal');
               const p = document.querySelector('#vision-probes');
               return {
                   enabled: a.dataset.enabled, dry_run: a.dataset.dryRun, mode: a.dataset.mode, text: a.innerText,
                   last: document.querySelector('#vision-last-action').textContent,
                   probes_up: p.dataset.up ?? null, probes: p.innerText,
               };"#,
        )
    });
    assert_eq!(
        (&side["enabled"], &side["dry_run"], &side["mode"]),
        (&json!("false"), &json!("true"), &json!("dry_run")),
        "{side:#}"
    );
    let text = side["text"].as_str().unwrap();
    assert!(text.contains("disabled") && text.contains("DRY-RUN"), "{side:#}");
    let last = side["last"].as_str().unwrap();
    assert!(
        last == "never" || last.contains("ago") || last == "just now",
        "{side:#}"
    );
    assert!(side["probes_up"].is_string(), "probes counted: {side:#}");
    assert!(
        side["probes"].as_str().unwrap().to_lowercase().contains("http"),
        "innerText follows text-transform: {side:#}"
    );
    // The trend over the last 15 minutes (the default 6 h has 1 min steps; this stack is young).
    blocking(|| {
        browser.js("const range = document.querySelector('#vision-range');
             range.value = '15m';
             range.dispatchEvent(new Event('change'));");
        // A few samples for the picture: refresh every 2 s rather than wait for the 15 s poll.
        browser.wait_for(
            "a 15 min trend with a few samples",
            Duration::from_secs(30),
            "const legend = document.querySelector('#vision-legend');
             const line = document.querySelector('#vision-chart polyline[data-series=conservative]');
             if (legend !== null && legend.textContent.includes('last 15 min')
                 && line !== null && Number(line.dataset.points) >= 4) return true;
             if (!(Date.now() - window.refreshedByTest < 2000)) {
                 window.refreshedByTest = Date.now();
                 document.querySelector('#vision-refresh').click();
             }
             return false;",
        );
        browser.screenshot(&artifact("console-vision-steady.png"));
    });

    // The dip: the runway collapses; the view turns red and the trend shows the fall.
    stack.sim.set_mode(payment_sim::Mode::Dip);
    let runway = stack
        .wait_for_runway("the runway to fall under 6 h", |h| h < 6.0)
        .await;
    let dip = blocking(|| {
        browser.click("#vision-refresh");
        browser.wait_for(
            "days to breach red, and three trend lines",
            Duration::from_secs(40),
            r#"const d = document.querySelector('#vision-days');
               const lines = [...document.querySelectorAll('#vision-chart polyline')];
               if (d.dataset.status !== 'red' || lines.length !== 3
                   || !lines.every(l => Number(l.dataset.points) >= 2)) return null;
               const ys = (l) => l.getAttribute('points').split(' ').map(p => Number(p.split(',')[1]));
               return {
                   days: d.textContent,
                   slo: document.querySelector('#vision-slo').innerText,
                   series: lines.map(l => l.dataset.series).sort(),
                   conservative: ys(lines.find(l => l.dataset.series === 'conservative')),
                   legend: document.querySelector('#vision-legend').innerText,
               };"#,
        )
    });
    assert_eq!(dip["series"], json!(["1h", "6h", "conservative"]), "{dip:#}");
    assert!(
        /* a number */ dip["days"].as_str().unwrap().chars().any(|c| c.is_ascii_digit()),
        "{dip:#}"
    );
    assert!(
        dip["slo"]
            .as_str()
            .unwrap()
            .contains("PaymentRatePredictedBreachCritical"),
        "under 6 h the card names the alert: {dip:#}"
    );
    let ys: Vec<f64> = dip["conservative"]
        .as_array()
        .unwrap()
        .iter()
        .map(|y| y.as_f64().unwrap())
        .collect();
    // SVG y grows downwards: the fall ends lower on the chart than it began.
    assert!(ys.last() > ys.first(), "the chart shows the fall: {ys:?}");
    blocking(|| browser.screenshot(&artifact("console-vision-dip.png")));

    // Alertmanager down: the alerts are unknown, not zero; the runway stays.
    blocking(|| drop(stack.alertmanager.take()));
    let am_down = blocking(|| {
        browser.click("#vision-refresh");
        browser.wait_for(
            "Alertmanager unreachable",
            Duration::from_secs(40),
            r#"const am = document.querySelector('#vision-alertmanager');
               const a = document.querySelector('#vision-alerts');
               const d = document.querySelector('#vision-days');
               return am.dataset.reachable === 'false' && {
                   am: am.textContent, alerts: a.innerText, critical: a.dataset.critical ?? null,
                   rows: a.querySelectorAll('.vision-alert').length,
                   status: d.dataset.status, days: d.textContent,
                   prometheus: document.querySelector('#vision-prometheus').dataset.reachable,
               };"#,
        )
    });
    assert!(
        am_down["am"]
            .as_str()
            .unwrap()
            .contains("Alertmanager unreachable: "),
        "{am_down:#}"
    );
    assert!(
        am_down["alerts"]
            .as_str()
            .unwrap()
            .contains("Alertmanager unreachable: "),
        "{am_down:#}"
    );
    assert_eq!(
        (&am_down["critical"], &am_down["rows"]),
        (&Value::Null, &json!(0)),
        "{am_down:#}"
    );
    assert_eq!(am_down["status"], "red", "the SLO part still shows: {am_down:#}");
    assert!(
        am_down["days"]
            .as_str()
            .unwrap()
            .chars()
            .any(|c| c.is_ascii_digit()),
        "{am_down:#}"
    );
    assert_eq!(am_down["prometheus"], "true", "{am_down:#}");

    // Prometheus down too: no runway at all, said plainly, and no numbers.
    blocking(|| drop(stack.prometheus.take()));
    let down = blocking(|| {
        browser.click("#vision-refresh");
        browser.wait_for(
            "Prometheus unreachable",
            Duration::from_secs(40),
            r#"const p = document.querySelector('#vision-prometheus');
               const d = document.querySelector('#vision-days');
               return p.dataset.reachable === 'false' && {
                   prometheus: p.textContent, status: d.dataset.status, days: d.textContent,
                   slo: document.querySelector('#vision-slo').innerText,
                   trend: document.querySelector('#vision-trend').innerText,
                   chart: document.querySelector('#vision-chart') !== null,
                   probes: document.querySelector('#vision-probes').innerText,
                   probes_up: document.querySelector('#vision-probes').dataset.up ?? null,
                   autoheal: document.querySelector('#vision-autoheal').dataset.enabled,
               };"#,
        )
    });
    for part in ["prometheus", "slo", "trend", "probes"] {
        assert!(
            down[part].as_str().unwrap().contains("Prometheus unreachable: "),
            "{part}: {down:#}"
        );
    }
    assert_eq!(down["status"], "unknown", "{down:#}");
    assert!(
        !down["days"].as_str().unwrap().chars().any(|c| c.is_ascii_digit()),
        "no number for days to breach: {down:#}"
    );
    assert_eq!(
        (&down["chart"], &down["probes_up"]),
        (&json!(false), &Value::Null),
        "{down:#}"
    );
    assert_eq!(down["autoheal"], "false", "the host still knows itself: {down:#}");
    blocking(|| browser.screenshot(&artifact("console-vision-down.png")));

    // No payment series at all (a report as the host would give it, served to
    // the page in place of GET /vision's): "no payment data", "no trend yet".
    let no_data = json!({
        "generated_at": "2026-01-01T00:00:00Z",
        "prometheus": { "url": "http://127.0.0.1:9090", "reachable": true, "error": null,
                        "rules": { "recording": 30, "alerting": 12, "failing": 0 } },
        "alertmanager": { "url": "http://127.0.0.1:9093", "reachable": true, "error": null },
        "slo": { "objective": 0.995, "window_hours": 720.0, "days_to_breach": null, "hours_to_breach": null,
                 "hours_to_breach_1h": null, "hours_to_breach_6h": null, "error_budget_remaining": null,
                 "burn_rate_1h": null, "burn_rate_6h": null, "status": "no_data", "no_breach_foreseen": false },
        "runway_trend": { "range_sec": 900, "step_sec": 3,
                          "series": { "1h": [], "6h": [], "conservative": [] } },
        "alerts": { "firing": 0, "critical": 0, "warning": 0, "info": 0, "other": 0, "list": [] },
        "probes": { "http_up": 6.0, "tcp_up": 2.0, "up": 8.0 },
        "autoheal": { "source": "host", "enabled": false, "dry_run": true, "mode": "dry_run",
                      "last_action_epoch": null, "last_action_age_sec": null },
    });
    let typed: autoheal_vision::VisionReport = serde_json::from_value(no_data.clone()).unwrap();
    assert_eq!(
        serde_json::to_value(typed).unwrap(),
        no_data,
        "the stand-in is a real report"
    );
    let nothing = blocking(|| {
        browser.js(&format!(
            "const real = window.fetch;
             const report = {};
             window.fetch = (url, options) => String(url).startsWith('/vision')
                 ? Promise.resolve(new Response(JSON.stringify(report), {{ status: 200 }}))
                 : real(url, options);",
            no_data
        ));
        browser.click("#vision-refresh");
        browser.wait_for(
            "no payment data",
            Duration::from_secs(10),
            r#"const d = document.querySelector('#vision-days');
               const empty = document.querySelector('#vision-trend-empty');
               return d.dataset.status === 'no_data' && empty !== null && {
                   days: d.textContent, slo: document.querySelector('#vision-slo').innerText,
                   trend: empty.textContent, alerts: document.querySelector('#vision-alerts').innerText,
                   critical: document.querySelector('#vision-alerts').dataset.critical,
                   probes: document.querySelector('#vision-probes').dataset.up,
               };"#,
        )
    });
    assert_eq!(nothing["days"], "no payment data", "{nothing:#}");
    assert!(
        nothing["slo"].as_str().unwrap().contains("crm_payments_total"),
        "{nothing:#}"
    );
    assert!(
        nothing["trend"].as_str().unwrap().starts_with("no trend yet"),
        "{nothing:#}"
    );
    assert!(
        nothing["alerts"].as_str().unwrap().contains("nothing firing"),
        "{nothing:#}"
    );
    assert_eq!(
        (&nothing["critical"], &nothing["probes"]),
        (&json!("0"), &json!("8")),
        "{nothing:#}"
    );

    // GET /vision itself failing: said so, the last report kept but marked.
    let failed = blocking(|| {
        browser.js(
            "const real = window.fetch;
             window.fetch = (url, options) => String(url).startsWith('/vision')
                 ? Promise.resolve(new Response(JSON.stringify({ error: 'the test says no' }), { status: 503 }))
                 : real(url, options);",
        );
        browser.click("#vision-refresh");
        browser.wait_for(
            "the failed GET /vision",
            Duration::from_secs(10),
            "const v = document.querySelector('#vision');
             return v.dataset.state === 'error' && document.querySelector('#vision-error').textContent;",
        )
    });
    assert!(
        failed
            .as_str()
            .unwrap()
            .contains("GET /vision failed: the test says no"),
        "{failed}"
    );

    // Back to the events view: as it was.
    let events = blocking(|| {
        browser.click("#tab-events");
        browser.wait_for(
            "the events view",
            Duration::from_secs(10),
            &format!(
                "return document.body.dataset.view === 'events' && {CONNECTED}
                    && getComputedStyle(document.querySelector('#vision')).display === 'none'
                    && getComputedStyle(document.querySelector('.layout')).display === 'grid'
                    && {{ hash: location.hash, tab: document.querySelector('#tab-events').getAttribute('aria-selected') }};"
            ),
        )
    });
    assert_eq!(events, json!({ "hash": "", "tab": "true" }));
    eprintln!(
        "console: operations view steady, dip (runway {runway:.2} h), Alertmanager and Prometheus down, \
         in {:?}; screenshots in {}",
        started.elapsed(),
        artifact("").display()
    );
}

/// The console (every HTML answer) comes with a strict policy: only its own
/// inline script and style run, it talks to this host only, and no page
/// frames it. The browser tests above run the console under it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_is_served_with_a_strict_content_security_policy() {
    let host = crate::real::ServedHost::start(
        &[crm_plugin()],
        std::sync::Arc::new(autoheal_containers::NoEngine),
        |_| {},
    )
    .await;
    let response = reqwest::get(format!("{}/console", host.url)).await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let policy = response
        .headers()
        .get("content-security-policy")
        .expect("the console has a Content-Security-Policy")
        .to_str()
        .unwrap()
        .to_owned();
    for directive in [
        "default-src 'self'",
        "connect-src 'self'",
        "img-src 'self' data:",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "form-action 'self'",
    ] {
        assert!(policy.contains(directive), "{directive} in {policy}");
    }
    assert!(policy.contains("script-src 'self' 'sha256-"), "{policy}");
    assert!(policy.contains("style-src 'self' 'sha256-"), "{policy}");
    assert!(!policy.contains("unsafe"), "{policy}");
    // JSON answers need none.
    let status = reqwest::get(format!("{}/", host.url)).await.unwrap();
    assert!(status.headers().get("content-security-policy").is_none());
}

/// The restart circuit breaker, visible before it trips: a dry-run restart
/// is recorded, not counted; each real restart through Podman counts. `GET /`,
/// `autoheal status` and the console say how many of the 3 allowed are
/// spent and when the oldest leaves the window, and the console follows the
/// third restart live.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_and_console_show_the_restart_breaker_before_it_trips() {
    let podman = Podman::start();
    let container = unique("crm-api");
    podman.run_httpd(&container, free_port());
    let manifest = crate::e2e::crm_manifest(&container, "0s");
    let served = ServedHost::start(&[("crm.toml", manifest)], podman.runtime(), |c| {
        c.enabled = true;
        c.dry_run = true;
    })
    .await;
    let alert = json!([{
        "status": "firing",
        "labels": { "alertname": "TcpEndpointDownFast", "service": container, "instance": format!("{container}:8000") },
        "annotations": { "autoheal": "true" },
    }]);
    let status = |url: String| async move {
        let (code, body) = tokio::task::spawn_blocking(move || http(&url, "GET", "/", "").unwrap())
            .await
            .unwrap();
        assert_eq!(code, 200, "{body}");
        body
    };

    // Recorded in dry-run: not a restart the breaker counts.
    served.post_alerts(alert.clone()).await;
    served
        .wait_for("action_dry_run", 1, Duration::from_secs(30))
        .await;
    let page = status(served.url.clone()).await;
    assert_eq!(page["breaker"]["max_restarts"], 3, "{page:#}");
    assert_eq!(page["breaker"]["window_sec"], 3600.0, "{page:#}");
    assert_eq!(page["breaker"]["containers"], json!([]), "{page:#}");

    let url = served.url.clone();
    let (code, flipped) = tokio::task::spawn_blocking(move || {
        http(
            &url,
            "POST",
            "/admin/dry-run",
            r#"{"dry_run": false, "by": "test"}"#,
        )
        .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(code, 200, "{flipped}");
    let first = autoheal_core::util::unix_now();
    for n in 1..=2 {
        served.post_alerts(alert.clone()).await;
        served.remediator.drain().await;
        served.wait_for("action_ok", n, Duration::from_secs(30)).await;
    }
    let page = status(served.url.clone()).await;
    let spent = &page["breaker"]["containers"][0];
    assert_eq!(spent["container"], container.as_str(), "{page:#}");
    assert_eq!(
        (spent["spent"].clone(), spent["allowed"].clone()),
        (json!(2), json!(3)),
        "{page:#}"
    );
    assert_eq!(spent["open"], false, "{page:#}");
    let frees_at = spent["frees_at"].as_f64().unwrap();
    assert!(
        frees_at >= first + 3600.0 && frees_at <= autoheal_core::util::unix_now() + 3600.0,
        "the oldest real restart leaves the window an hour after it: {page:#}"
    );
    assert!(spent["frees_in_sec"].as_f64().unwrap() > 3500.0, "{page:#}");

    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_autoheal"));
    command
        .env_clear()
        .env("AUTOHEAL_URL", &served.url)
        .env("AUTOHEAL_OPERATOR_TOKEN", OPERATOR_TOKEN)
        .arg("status");
    let output = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "{text}");
    assert!(
        text.contains("restart breaker: 3 restarts per container per 1h:")
            && text.contains(&format!("{container} — 2 of 3 spent; a place frees in 59m")),
        "{text}"
    );

    let browser = tokio::task::spawn_blocking({
        let (url, container) = (served.url.clone(), container.clone());
        move || {
            let browser = Browser::start();
            browser.goto(&format!("{url}/console"));
            browser.sign_in_as_operator();
            let row = browser.wait_for(
                "the breaker row, 2 of 3",
                Duration::from_secs(15),
                &format!(
                    "const row = document.querySelector('#breaker .breaker-row[data-container=\"{container}\"]');
                     return row && row.dataset.spent === '2' && row.dataset.allowed === '3'
                        && row.dataset.open === 'false' && row.innerText;"
                ),
            );
            let row = row.as_str().unwrap().to_owned();
            assert!(row.contains("2 / 3") && row.contains("a place frees in 59m"), "{row}");
            browser
        }
    })
    .await
    .unwrap();

    // The third real restart: the console follows it without a reload.
    served.post_alerts(alert.clone()).await;
    served.remediator.drain().await;
    served.wait_for("action_ok", 3, Duration::from_secs(30)).await;
    let row = tokio::task::spawn_blocking({
        let container = container.clone();
        move || {
            browser.wait_for(
                "the breaker row, 3 of 3 and open",
                Duration::from_secs(15),
                &format!(
                    "const row = document.querySelector('#breaker .breaker-row[data-container=\"{container}\"]');
                     return row && row.dataset.spent === '3' && row.dataset.open === 'true' && row.innerText;"
                ),
            )
        }
    })
    .await
    .unwrap();
    let row = row.as_str().unwrap();
    assert!(row.contains("3 / 3") && row.contains("restarts refused"), "{row}");
    let page = status(served.url.clone()).await;
    assert_eq!(page["breaker"]["containers"][0]["spent"], 3, "{page:#}");
    assert_eq!(page["breaker"]["containers"][0]["open"], true, "{page:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_lists_pauses_adds_one_and_resumes_one() {
    let fake = std::sync::Arc::new(autoheal_containers::FakeRuntime::new());
    let served = ServedHost::start(&[crm_plugin()], fake, |_| {}).await;
    let url = served.url.clone();
    let outcome = tokio::task::spawn_blocking(move || pauses_scenario(&url)).await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

fn pauses_scenario(host: &str) {
    let (status, made) = http(
        host,
        "POST",
        "/pauses",
        r#"{"plugin":"restart-crm-api","duration":"2h","reason":"release 4.2","by":"alice"}"#,
    )
    .unwrap();
    assert_eq!(status, 200, "{made}");
    let id = made["id"].as_str().unwrap().to_owned();

    let browser = Browser::start();
    browser.goto(&format!("{host}/console"));
    browser.sign_in_as_operator();
    let shown = browser.wait_for(
        "the pause in the panel",
        Duration::from_secs(10),
        &format!(
            "const p = document.querySelector('#pauses .pause-item[data-pause=\"{id}\"]');
             return p && {{
                scope: p.querySelector('.pause-scope').textContent,
                reason: p.querySelector('.pause-reason').textContent,
                by: p.querySelector('.pause-by').textContent,
                until: p.querySelector('.pause-until').textContent,
             }};"
        ),
    );
    assert_eq!(shown["scope"], "plugin restart-crm-api", "{shown:#}");
    assert_eq!(shown["reason"], "release 4.2", "{shown:#}");
    // Who paused is the verified caller; what it typed as `by` a comment.
    assert_eq!(shown["by"], "operator", "{shown:#}");
    assert!(
        shown["until"].as_str().unwrap().starts_with("1h")
            || shown["until"].as_str().unwrap().starts_with("2h"),
        "{shown:#}"
    );

    // Added from the form, as an operator would.
    browser.js("document.querySelector('#pause-match').value = 'service=\"crm\"';
         document.querySelector('#pause-for').value = '30m';
         document.querySelector('#pause-reason').value = 'db migration';
         return true;");
    browser.click("#pause-add");
    let result = browser.wait_for(
        "the form's answer and the second pause",
        Duration::from_secs(10),
        "const r = document.querySelector('#pause-result');
         return r.dataset.outcome && document.querySelector('#pauses').dataset.count === '2'
            && { outcome: r.dataset.outcome, text: r.textContent };",
    );
    assert_eq!(result["outcome"], "ok", "{result:#}");
    let (_, listed) = http(host, "GET", "/pauses", "").unwrap();
    let added = listed["pauses"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] != json!(id))
        .cloned()
        .unwrap();
    assert_eq!(
        (&added["matchers"], &added["reason"], &added["by_comment"]),
        (
            &json!("service=\"crm\""),
            &json!("db migration"),
            &json!("console")
        ),
        "{added}"
    );
    browser.screenshot(&artifact("console-pauses.png"));

    // Resumed from its button.
    browser.click(&format!("#pauses .pause-item[data-pause=\"{id}\"] .resume"));
    browser.wait_for(
        "the resumed pause to leave the panel",
        Duration::from_secs(10),
        &format!(
            "return document.querySelector('#pauses').dataset.count === '1'
                && !document.querySelector('#pauses .pause-item[data-pause=\"{id}\"]');"
        ),
    );
    let (_, ended) = http(host, "GET", "/audit?kind=pause_ended", "").unwrap();
    let ended = &ended["events"][0];
    assert_eq!(
        (
            &ended["pause_id"],
            &ended["why"],
            &ended["by"],
            &ended["by_comment"]
        ),
        (
            &json!(id),
            &json!("resumed"),
            &json!("operator"),
            &json!("console")
        ),
        "{ended}"
    );
}

/// The maintenance windows panel, in a real Chromium against the real
/// server: the open window first, with when it closes, its scope and
/// reason; the closed one with when it next opens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_shows_the_open_maintenance_window_and_the_next_one() {
    let fake = std::sync::Arc::new(autoheal_containers::FakeRuntime::new());
    let served = ServedHost::start(&[crm_plugin()], fake, crate::maintenance::windows).await;
    let url = served.url.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        let browser = Browser::start();
        browser.goto(&format!("{url}/console"));
        let shown = browser.wait_for(
            "the windows in the panel",
            Duration::from_secs(10),
            "const box = document.querySelector('#maintenance');
             const rows = [...box.querySelectorAll('.window')];
             return rows.length === 2 && {
                open: box.dataset.open,
                order: rows.map((r) => r.dataset.name + ':' + r.dataset.open),
                scope: rows[0].querySelector('.window-scope').textContent,
                reason: rows[0].querySelector('.window-reason').textContent,
                closes: rows[0].querySelector('.window-until')?.textContent,
                opens: rows[1].querySelector('.window-next')?.textContent,
             };",
        );
        assert_eq!(shown["open"], "1", "{shown:#}");
        assert_eq!(
            shown["order"],
            json!(["db-upgrade:true", "new-year:false"]),
            "{shown:#}"
        );
        assert_eq!(
            shown["scope"], "every plugin, alerts service=\"crm\"",
            "{shown:#}"
        );
        assert_eq!(shown["reason"], "DB upgrade 4.2", "{shown:#}");
        // Open an hour from its last minute's start; New Year is weeks or months away.
        let closes = shown["closes"].as_str().unwrap();
        assert!(closes.contains('m') || closes.contains('h'), "{shown:#}");
        assert!(shown["opens"].as_str().unwrap().contains('d'), "{shown:#}");
        browser.screenshot(&artifact("console-maintenance.png"));
    })
    .await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_shows_the_plugins_compiling_then_their_cards() {
    let fake = std::sync::Arc::new(autoheal_containers::FakeRuntime::new());
    // A cache of its own: the Python components really compile.
    let served = ServedHost::start(&[crm_plugin()], fake, |c| {
        c.cache_dir = c.plugins_dir.with_file_name("cache");
    })
    .await;
    let _watch = autoheal::reload::watch(served.host.clone()).unwrap();
    let dir = served.host.config.plugins_dir.clone();
    let url = served.url.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        let browser = Browser::start();
        browser.goto(&format!("{url}/console"));
        browser.wait_for(
            "the plugin cards",
            Duration::from_secs(20),
            "return document.querySelectorAll('#plugins .plugin').length === 1;",
        );
        // Three Python plugins: with two compile slots they compile one
        // after another, long enough to be seen at the 5 s status refresh.
        for n in 1..=3 {
            crate::reload::stage_python_copy(&dir, n);
        }
        for n in 1..=3 {
            crate::reload::put(
                &dir,
                &format!("slow{n}.toml"),
                crate::reload::slow_manifest(n).as_bytes(),
            );
        }
        let shown = browser.wait_for(
            "a compiling plugin in the panel",
            Duration::from_secs(60),
            "const rows = [...document.querySelectorAll('#plugins .plugin-compiling')];
             return rows.length > 0 && {
                plugin: rows[0].dataset.plugin,
                file: rows[0].dataset.file,
                text: rows[0].textContent,
                heading: document.querySelector('#plugins h2').textContent,
             };",
        );
        let plugin = shown["plugin"].as_str().unwrap();
        assert!(plugin.starts_with("Slow"), "{shown:#}");
        assert_eq!(
            shown["file"],
            format!("{}.toml", plugin.to_lowercase()),
            "{shown:#}"
        );
        let text = shown["text"].as_str().unwrap();
        // The copy's size (the Python example and a few bytes), as the console rounds it.
        let copy = crate::support::guest("restart_unhealthy_py");
        let mb = (std::fs::metadata(copy).unwrap().len() + 20) as f64 / 1e6;
        assert!(
            text.contains(&format!("compiling {mb:.1} MB")) && text.contains("1.0.0"),
            "{shown:#}"
        );
        assert!(
            shown["heading"].as_str().unwrap().starts_with("Compiling ("),
            "{shown:#}"
        );
        browser.screenshot(&artifact("console-compiling.png"));
        // Once compiled, each is a card and none is shown compiling.
        browser.wait_for(
            "the compiled plugins' cards",
            Duration::from_secs(600),
            "return document.querySelectorAll('#plugins .plugin').length === 4
                && document.querySelectorAll('#plugins .plugin-compiling').length === 0;",
        );
    })
    .await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// The console asks `GET /auth/me` who its token proves and hides (not
/// only disables) what that caller may not do: a viewer-only named token
/// sees no pause form, resume or ack; the operator token sees them all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_hides_the_controls_a_viewer_may_not_use() {
    let tokens_dir = tempfile::tempdir().unwrap();
    let tokens = crate::roles::named_tokens(tokens_dir.path());
    let fake = std::sync::Arc::new(autoheal_containers::FakeRuntime::new());
    let served = ServedHost::start(&[crm_plugin()], fake, |c| c.auth.tokens = tokens).await;
    let url = served.url.clone();
    let outcome = tokio::task::spawn_blocking(move || hidden_controls_scenario(&url)).await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

fn hidden_controls_scenario(host: &str) {
    let (status, made) = http(
        host,
        "POST",
        "/pauses",
        r#"{"plugin":"restart-crm-api","duration":"2h","reason":"release 4.2"}"#,
    )
    .unwrap();
    assert_eq!(status, 200, "{made}");
    post_alerts(host, json!([opted_in("SomethingElse")]));

    let browser = Browser::start();
    browser.goto(&format!("{host}/console"));
    let sign_in = |token: &str| {
        browser.js(&format!(
            "document.querySelector('#auth-token').value = {token:?}; return true;"
        ));
        browser.click("#auth-save");
    };
    // Each control: whether it is hidden and whether it takes up room on the page.
    let controls = |who: &str| {
        browser.wait_for(
            &format!("the controls judged for {who}"),
            Duration::from_secs(15),
            &format!(
                "if (document.body.dataset.who !== {who:?}) return null;
                 const seen = (el) => ({{ hidden: el.hidden, shown: el.offsetParent !== null }});
                 const resume = [...document.querySelectorAll('#pauses .resume')].map(seen);
                 const ack = [...document.querySelectorAll('span.ack')].map(seen);
                 if (!resume.length || !ack.length) return null;
                 return {{ form: seen(document.querySelector('#pause-form')), resume, ack }};"
            ),
        )
    };

    sign_in(crate::roles::DASH_TOKEN);
    let viewer = controls("token:dash");
    let hidden = json!({"hidden": true, "shown": false});
    assert_eq!(viewer["form"], hidden, "{viewer:#}");
    assert!(
        viewer["resume"].as_array().unwrap().iter().all(|c| *c == hidden),
        "{viewer:#}"
    );
    assert!(
        viewer["ack"].as_array().unwrap().iter().all(|c| *c == hidden),
        "{viewer:#}"
    );

    browser.sign_in_as_operator();
    let operator = controls("shared_token:operator");
    let visible = json!({"hidden": false, "shown": true});
    assert_eq!(operator["form"], visible, "{operator:#}");
    assert!(
        operator["resume"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| *c == visible),
        "{operator:#}"
    );
    assert!(
        operator["ack"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["hidden"] == false),
        "{operator:#}"
    );
    browser.screenshot(&artifact("console-roles.png"));
}
