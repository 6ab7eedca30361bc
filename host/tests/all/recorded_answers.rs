//! `autoheal plugin test --answers FILE [--live-reads]`, the real binary:
//! recorded HTTP and PromQL answers (and container states) stand in for
//! the services, with no network and no Prometheus; a read with no answer
//! fails saying where to add one; a malformed file is refused naming the
//! file and the problem; `--live-reads` reaches a real HTTP server and a
//! real Prometheus scraping it, while a POST is recorded and never
//! received. Calls are made by the `http-calls` and `prom-state-calls`
//! fixtures, straight on the WIT bindings. The documented example file is
//! read here too.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use crate::plugin_cli::{cli, write};
use crate::real::{Prometheus, free_port, wait_until};
use crate::support::{guest, opted_in};

/// A scratch directory with both fixture components and an alert for them.
struct Scratch {
    dir: tempfile::TempDir,
    alert: PathBuf,
}

impl Scratch {
    fn new() -> Scratch {
        let dir = tempfile::tempdir().unwrap();
        for component in ["http_calls", "prom_state_calls"] {
            std::fs::copy(guest(component), dir.path().join(format!("{component}.wasm"))).unwrap();
        }
        let alert = write(dir.path(), "alert.json", opted_in("RecordedCheck"));
        Scratch { dir, alert }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A manifest of the `http-calls` fixture allowed GETs of
    /// `https://runbooks.example/api/` (a name that resolves nowhere) and,
    /// when given, GETs and a POST to `/flush` on `server`; `config` says
    /// which request it makes.
    fn http_plugin(&self, name: &str, server: Option<&str>, config: &str) -> PathBuf {
        let local = server
            .map(|s| format!(", \"GET http://{s}/\", \"POST http://{s}/flush\""))
            .unwrap_or_default();
        let text = format!(
            "name = {name:?}\nversion = \"1.0.0\"\ncomponent = \"http_calls.wasm\"\n\
             [match]\nalertnames = [\"RecordedCheck\"]\n\
             [capabilities.http]\nallow = [\"GET https://runbooks.example/api/\"{local}]\ntimeout = \"2s\"\n\
             [limits]\ntimeout_ms = 20000\n[config]\n{config}\n"
        );
        let path = self.path().join(format!("{name}.toml"));
        std::fs::write(&path, text).unwrap();
        path
    }

    /// A manifest of the `prom-state-calls` fixture that asks `promql`.
    fn prom_plugin(&self, name: &str, promql: &str) -> PathBuf {
        let text = format!(
            "name = {name:?}\nversion = \"1.0.0\"\ncomponent = \"prom_state_calls.wasm\"\n\
             [match]\nalertnames = [\"RecordedCheck\"]\n\
             [capabilities.prometheus]\ntimeout = \"5s\"\n\
             [limits]\ntimeout_ms = 20000\n[config]\ncall = \"query\"\npromql = '{promql}'\n"
        );
        let path = self.path().join(format!("{name}.toml"));
        std::fs::write(&path, text).unwrap();
        path
    }

    /// `plugin test MANIFEST --alert ALERT EXTRA...` with `prometheus_url`
    /// set to `prometheus`: its exit code and its stdout then stderr.
    fn test(&self, manifest: &Path, prometheus: &str, extra: &[&str]) -> (i32, String) {
        test_plugin(manifest, &self.alert, prometheus, extra)
    }
}

fn test_plugin(manifest: &Path, alert: &Path, prometheus: &str, extra: &[&str]) -> (i32, String) {
    let output = cli()
        .args(["plugin", "test"])
        .arg(manifest)
        .arg("--alert")
        .arg(alert)
        .args(extra)
        .env("PROMETHEUS_URL", prometheus)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
    (output.status.code().unwrap_or(-1), text)
}

/// An address where nothing listens: a Prometheus that is not running.
fn nowhere() -> String {
    format!("http://127.0.0.1:{}", free_port())
}

fn reports_of(out: &str) -> Value {
    let end = out.rfind("]\n").expect("a JSON list of reports") + 1;
    serde_json::from_str(&out[..end]).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// Two series of `up{job="crm"}`, the first one down, in the API's shape.
fn up_answer() -> Value {
    json!({
        "query": "up{job=\"crm\"}",
        "data": { "resultType": "vector", "result": [
            { "metric": { "__name__": "up", "job": "crm", "instance": "a:9105" }, "value": [1700000000, "0"] },
            { "metric": { "__name__": "up", "job": "crm", "instance": "b:9105" }, "value": [1700000000, "1"] }
        ]}
    })
}

#[test]
fn recorded_answers_stand_in_for_http_prometheus_and_containers() {
    let s = Scratch::new();
    let answers = write(
        s.path(),
        "answers.json",
        json!({
            "http": [
                { "method": "GET", "url": "https://runbooks.example/api/status",
                  "headers": { "content-type": "application/json" }, "body": "{\"healthy\": false}" },
                { "url_prefix": "https://runbooks.example/api/", "status": 404, "body": "no such runbook" }
            ],
            "prometheus": [up_answer()],
            "containers": [{ "name": "crm-api", "health": "unhealthy", "uptime_sec": 600 }]
        }),
    );
    let answers = answers.to_string_lossy().into_owned();
    // No Prometheus runs, and runbooks.example resolves nowhere: only the
    // file can answer.
    let prometheus = nowhere();

    let status = s.http_plugin(
        "check-status",
        None,
        "url = \"https://runbooks.example/api/status\"",
    );
    let (code, out) = s.test(&status, &prometheus, &["--answers", &answers]);
    assert_eq!(code, 0, "{out}");
    for line in [
        "http.request https://runbooks.example:443 → ok — GET https://runbooks.example:443/api/status: 200 — 18 bytes",
        r#"result    ok: sent=true status=200 truncated=false bytes=18 body="{\"healthy\": false}""#,
    ] {
        assert!(out.contains(line), "missing {line:?} in\n{out}");
    }
    assert!(!out.contains("no answer"), "{out}");
    // A URL under the prefix, with no exact answer, gets the prefix's.
    let other = s.http_plugin(
        "check-other",
        None,
        "url = \"https://runbooks.example/api/other\"",
    );
    let (code, out) = s.test(&other, &prometheus, &["--answers", &answers]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("status=404"), "{out}");

    let up = s.prom_plugin("check-up", "up{job=\"crm\"}");
    let (code, out) = s.test(&up, &prometheus, &["--answers", &answers]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(
            "result    ok: series=2 samples=2 truncated=false first={__name__=up,instance=a:9105,job=crm}=0"
        ),
        "{out}"
    );
    assert!(out.contains("prometheus.query up{job=\"crm\"} → ok"), "{out}");

    // The file's container states seed the runtime as --containers does:
    // restart-unhealthy restarts the unhealthy crm-api (recorded, dry-run).
    let bundled = crate::plugin_cli::plugins_dir();
    let unhealthy = write(bundled.path(), "unhealthy.json", opted_in("ContainerUnhealthy"));
    let manifest = bundled.path().join("restart-unhealthy-crm-api.toml");
    let (code, out) = test_plugin(&manifest, &unhealthy, &prometheus, &["--answers", &answers]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("containers.restart crm-api → recorded"), "{out}");
    let (_, out) = test_plugin(&manifest, &unhealthy, &prometheus, &[]);
    assert!(out.contains("skipped: crm-api has no health check"), "{out}");
}

#[test]
fn a_read_without_a_recorded_answer_fails_saying_where_to_add_one() {
    let s = Scratch::new();
    let answers = write(
        s.path(),
        "answers.json",
        json!({ "http": [{ "url": "https://runbooks.example/api/other", "body": "x" }] }),
    );
    let file = answers.to_string_lossy().into_owned();
    let prometheus = nowhere();
    let status = s.http_plugin(
        "check-status",
        None,
        "url = \"https://runbooks.example/api/status\"",
    );

    let (code, out) = s.test(&status, &prometheus, &["--answers", &file]);
    // The fixture answers what the host said; it does not fail itself.
    assert_eq!(code, 0, "{out}");
    let expected = format!(
        "result    ok: failed: no recorded answer for GET https://runbooks.example:443/api/status; \
         add one to {file} or pass --live-reads"
    );
    assert!(out.contains(&expected), "missing {expected:?} in\n{out}");
    assert!(
        out.contains("no answer GET https://runbooks.example:443/api/status\n"),
        "{out}"
    );
    let (_, out) = s.test(&status, &prometheus, &["--answers", &file, "--json"]);
    let reports = reports_of(&out);
    assert_eq!(
        reports[0]["unanswered"],
        json!(["GET https://runbooks.example:443/api/status"])
    );
    assert_eq!(reports[0]["calls"][0]["outcome"], "failed");

    // With no answers file at all, a plugin's reads are not sent either:
    // they fail the same way, and say how to answer them.
    let up = s.prom_plugin("check-up", "up{job=\"crm\"}");
    let (code, out) = s.test(&up, &prometheus, &[]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(
            "result    ok: failed: no recorded answer for PromQL up{job=\"crm\"} (no --answers file); \
             pass --answers FILE or --live-reads"
        ),
        "{out}"
    );
    assert!(out.contains("no answer PromQL up{job=\"crm\"}"), "{out}");
}

#[test]
fn a_malformed_answers_file_is_refused_naming_the_file_and_the_problem() {
    let s = Scratch::new();
    let status = s.http_plugin(
        "check-status",
        None,
        "url = \"https://runbooks.example/api/status\"",
    );
    for (name, text, problem) in [
        (
            "truncated.json",
            "{\"http\": [",
            "not an answers file: EOF while parsing",
        ),
        (
            "both.json",
            r#"{"http": [{"url": "https://runbooks.example/api/x", "url_prefix": "https://runbooks.example/"}]}"#,
            "http[0]: give exactly one of `url` (that URL) and `url_prefix`",
        ),
        (
            "post.json",
            r#"{"http": [{"method": "POST", "url": "https://runbooks.example/api/flush"}]}"#,
            "http[0]: method POST: only reads (GET, HEAD) are answered",
        ),
        (
            "promql.json",
            r#"{"prometheus": [{"query": "up", "data": {"resultType": "string", "result": [1, "x"]}}]}"#,
            "prometheus[0]: data is not the Prometheus API's vector, matrix or scalar",
        ),
        (
            "typo.json",
            r#"{"prometheus": [], "htp": []}"#,
            "unknown field `htp`",
        ),
    ] {
        let path = s.path().join(name);
        std::fs::write(&path, text).unwrap();
        let (code, out) = s.test(&status, &nowhere(), &["--answers", &path.to_string_lossy()]);
        assert_ne!(code, 0, "{name}: {out}");
        let expected = format!("--answers {}: ", path.display());
        assert!(out.contains(&expected), "{name}: missing {expected:?} in\n{out}");
        assert!(out.contains(problem), "{name}: missing {problem:?} in\n{out}");
        assert!(!out.contains("result    "), "{name}: the plugin ran:\n{out}");
    }
    let missing = s.path().join("missing.json");
    let (code, out) = s.test(&status, &nowhere(), &["--answers", &missing.to_string_lossy()]);
    assert_ne!(code, 0, "{out}");
    assert!(
        out.contains(&format!("--answers {}: cannot read it", missing.display())),
        "{out}"
    );
}

/// An HTTP/1.1 server on 127.0.0.1 that answers `ok PATH`, and `/metrics`
/// with `recorded_live_value 7` (a Prometheus target); it remembers every
/// request as `METHOD PATH`.
struct CountingServer {
    address: String,
    seen: Arc<Mutex<Vec<String>>>,
}

impl CountingServer {
    fn start() -> CountingServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut first = String::new();
                let _ = reader.read_line(&mut first);
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                    line.clear();
                }
                let mut words = first.split_whitespace();
                let (method, path) = (words.next().unwrap_or_default(), words.next().unwrap_or_default());
                record.lock().unwrap().push(format!("{method} {path}"));
                let body = if path == "/metrics" {
                    "# TYPE recorded_live_value gauge\nrecorded_live_value 7\n".to_owned()
                } else {
                    format!("ok {path}")
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        CountingServer { address, seen }
    }

    /// The requests made to it but its scrapes.
    fn requests(&self) -> Vec<String> {
        let seen = self.seen.lock().unwrap();
        seen.iter().filter(|r| *r != "GET /metrics").cloned().collect()
    }
}

#[test]
fn live_reads_reach_the_real_services_and_effects_are_never_sent() {
    let server = CountingServer::start();
    let prometheus = Prometheus::start(free_port(), &[("127.0.0.1:9105", &server.address)]);
    wait_until("the target to be scraped", Duration::from_secs(60), || {
        (prometheus.query("recorded_live_value") == Some(7.0)).then_some(())
    });
    let s = Scratch::new();
    let at = server.address.as_str();

    // A GET goes to the real server.
    let get = s.http_plugin("get-live", Some(at), &format!("url = \"http://{at}/status\""));
    let (code, out) = s.test(&get, &prometheus.url, &["--live-reads"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(r#"result    ok: sent=true status=200 truncated=false bytes=10 body="ok /status""#),
        "{out}"
    );
    assert_eq!(server.requests(), ["GET /status"]);

    // A POST is recorded, not sent, whatever the flags.
    let post = s.http_plugin(
        "post-live",
        Some(at),
        &format!("method = \"POST\"\nurl = \"http://{at}/flush\"\nbody = \"all\""),
    );
    let answers = write(
        s.path(),
        "answers.json",
        json!({
            "http": [{ "url": format!("http://{at}/covered"), "body": "from the file" }],
            "prometheus": [up_answer()]
        }),
    );
    let answers = answers.to_string_lossy().into_owned();
    for flags in [
        &["--live-reads"][..],
        &["--live-reads", "--answers", &answers],
        &[][..],
    ] {
        let (code, out) = s.test(&post, &prometheus.url, flags);
        assert_eq!(code, 0, "{flags:?}: {out}");
        assert!(out.contains("result    ok: sent=false"), "{flags:?}: {out}");
        assert!(
            out.contains(&format!(
                "http.request http://{at} → recorded — POST http://{at}/flush"
            )),
            "{flags:?}: {out}"
        );
    }
    assert_eq!(server.requests(), ["GET /status"], "a POST reached the server");

    // A recorded answer wins over the live service for what it covers.
    let covered = s.http_plugin("get-covered", Some(at), &format!("url = \"http://{at}/covered\""));
    let (code, out) = s.test(
        &covered,
        &prometheus.url,
        &["--live-reads", "--answers", &answers],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(r#"body="from the file""#), "{out}");
    assert_eq!(server.requests(), ["GET /status"]);

    // PromQL: the real Prometheus with --live-reads (also beside answers
    // that do not cover the query); never without.
    let live = s.prom_plugin("prom-live", "recorded_live_value");
    for flags in [&["--live-reads"][..], &["--live-reads", "--answers", &answers]] {
        let (code, out) = s.test(&live, &prometheus.url, flags);
        assert_eq!(code, 0, "{flags:?}: {out}");
        assert!(
            out.contains("result    ok: series=1 samples=1 truncated=false first={"),
            "{out}"
        );
        assert!(out.contains("}=7\n"), "{flags:?}: {out}");
    }
    let (_, out) = s.test(&live, &prometheus.url, &["--answers", &answers]);
    assert!(
        out.contains("failed: no recorded answer for PromQL recorded_live_value"),
        "{out}"
    );
}

/// `plugin dev` tests a project with its own `answers.json`: a project
/// of a built component (nothing to build), its manifest and alert.
#[test]
fn plugin_dev_answers_a_projects_reads_from_its_answers_json() {
    let s = Scratch::new();
    s.http_plugin("dev-check", None, "url = \"https://runbooks.example/api/status\"");
    std::fs::remove_file(s.path().join("prom_state_calls.wasm")).unwrap();
    let dev = |extra: &[&str]| {
        let output = cli()
            .args(["plugin", "dev"])
            .arg(s.path())
            .arg("--once")
            .args(extra)
            .env("PROMETHEUS_URL", nowhere())
            .output()
            .unwrap();
        let text =
            String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
        (output.status.code().unwrap_or(-1), text)
    };
    // Without answers.json the read has no answer (the plugin still passes:
    // it reports what the host said).
    let (code, out) = dev(&[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("failed: no recorded answer for GET"), "{out}");
    assert!(!out.contains("answers   "), "{out}");

    let answers = write(
        s.path(),
        "answers.json",
        json!({ "http": [{ "url": "https://runbooks.example/api/status", "body": "up" }] }),
    );
    let (code, out) = dev(&[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&format!("answers   {}", answers.display())), "{out}");
    assert!(
        out.contains(r#"result    ok: sent=true status=200 truncated=false bytes=2 body="up""#),
        "{out}"
    );

    // --answers names another file instead.
    let other = write(
        s.path(),
        "other.json",
        json!({ "http": [{ "url": "https://runbooks.example/api/status", "status": 503 }] }),
    );
    let (code, out) = dev(&["--answers", &other.to_string_lossy()]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("status=503"), "{out}");
}

/// The example answers file of docs/plugins.md is one `plugin test` reads.
#[test]
fn the_documented_answers_file_is_read() {
    let guide = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/plugins.md");
    let text = std::fs::read_to_string(guide).unwrap();
    let marker =
        "<!-- not-run: an answers file; host/tests/all/recorded_answers.rs runs plugin test with it -->";
    let start = text
        .find(marker)
        .expect("the example's marker in docs/plugins.md");
    let body = &text[start..];
    let open = body.find("```json\n").unwrap() + "```json\n".len();
    let close = open + body[open..].find("```").unwrap();
    let example: Value = serde_json::from_str(&body[open..close]).unwrap();
    assert!(
        example["http"].as_array().is_some_and(|h| !h.is_empty())
            && example["prometheus"].as_array().is_some_and(|p| !p.is_empty())
            && example["containers"].as_array().is_some_and(|c| !c.is_empty()),
        "the example shows every section: {example}"
    );

    let s = Scratch::new();
    let file = write(s.path(), "answers.json", example.clone());
    let file = file.to_string_lossy().into_owned();
    let url = example["http"][0]["url"].as_str().unwrap();
    let status = s.http_plugin("documented-http", None, &format!("url = {url:?}"));
    let (code, out) = s.test(&status, &nowhere(), &["--answers", &file]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("result    ok: sent=true status=200"), "{out}");
    let promql = example["prometheus"][0]["query"].as_str().unwrap();
    let up = s.prom_plugin("documented-prom", promql);
    let (code, out) = s.test(&up, &nowhere(), &["--answers", &file]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("result    ok: series="), "{out}");
    assert!(!out.contains("no answer"), "{out}");
}

/// An `openssl s_server` on 127.0.0.1 with a certificate of the CA in `dir`
/// (`-www`: any GET answers its status page). Killed when dropped.
struct TlsServer {
    child: std::process::Child,
    port: u16,
}

impl TlsServer {
    fn start(dir: &Path) -> TlsServer {
        let port = free_port();
        let child = std::process::Command::new("openssl")
            .current_dir(dir)
            .args([
                "s_server",
                "-quiet",
                "-www",
                "-cert",
                "server.pem",
                "-key",
                "server.key",
            ])
            .args(["-accept", &format!("127.0.0.1:{port}")])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("openssl is installed");
        wait_until("openssl s_server", Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).ok()
        });
        TlsServer { child, port }
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `https://` goes through rustls with the system's roots: a server whose
/// CA the process trusts (`SSL_CERT_FILE`, as an operator adds a private
/// CA) answers; the same server with the default roots fails the
/// handshake, and the plugin hears `failed`, not an answer.
#[test]
fn an_https_read_is_verified_against_the_roots_the_host_trusts() {
    let s = Scratch::new();
    crate::cluster::certificates(s.path());
    let server = TlsServer::start(s.path());
    let url = format!("https://127.0.0.1:{}/", server.port);
    let manifest = s.path().join("tls.toml");
    std::fs::write(
        &manifest,
        format!(
            "name = \"tls\"\nversion = \"1.0.0\"\ncomponent = \"http_calls.wasm\"\n\
             [match]\nalertnames = [\"RecordedCheck\"]\n\
             [capabilities.http]\nallow = [\"GET {url}\"]\ntimeout = \"5s\"\n\
             [limits]\ntimeout_ms = 20000\n[config]\nurl = \"{url}\"\n"
        ),
    )
    .unwrap();
    let run = |trust: bool| {
        let mut command = cli();
        command
            .args(["plugin", "test"])
            .arg(&manifest)
            .arg("--alert")
            .arg(&s.alert)
            .args(["--live-reads", "--json"]);
        if trust {
            command.env("SSL_CERT_FILE", s.path().join("ca.pem"));
        }
        let output = command.output().unwrap();
        let text =
            String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
        reports_of(&text)[0].clone()
    };

    let trusted = run(true);
    let answer = trusted["output"].as_str().unwrap_or_default().to_owned();
    assert!(answer.starts_with("sent=true status=200"), "{trusted:#}");
    assert!(
        answer.contains("s_server"),
        "the server's page came back: {trusted:#}"
    );
    assert_eq!(trusted["calls"][0]["outcome"], "ok", "{trusted:#}");

    let untrusted = run(false);
    let answer = untrusted.to_string();
    assert!(answer.contains("failed"), "{untrusted:#}");
    let lower = answer.to_ascii_lowercase();
    assert!(
        lower.contains("certificate") || lower.contains("tls"),
        "why it failed: {untrusted:#}"
    );
    assert!(!answer.contains("status=200"), "{untrusted:#}");
}
