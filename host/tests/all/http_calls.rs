//! `http.request` of `autoheal:plugin@0.4.0` through the real server, to a
//! real HTTP server the test starts on 127.0.0.1 (which the manifests allow
//! literally): a GET read in dry-run, a POST recorded in dry-run and sent
//! for real after its intent, a secret put in by the host that an echoing
//! endpoint sends back (the plugin, its log line, its error and the trail
//! see `[secret TOKEN]`), and the hostile list — a name resolving to
//! loopback, odd spellings of 127.0.0.1, userinfo, a redirect elsewhere, an
//! endless response, a trickling one, 10,000 requests, a secret the
//! manifest does not map. Requests are made by the `http-calls` fixture,
//! straight on the WIT bindings, so that hostile arguments reach the host
//! as given.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::container_calls::act;
use crate::real::ServedHost;

/// The host's value of the secret `TOKEN`.
const TOKEN: &str = "tok-3f9a1c7e5b2d";

/// A request the test server received: its method, path and head.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    head: String,
}

/// An HTTP/1.1 server on 127.0.0.1 that answers by path: `/echo` sends the
/// request's head back (as body and in `x-echo`), `/flush` says `flushed`,
/// `/redirect` sends a 302 to `elsewhere`, `/huge` streams forever,
/// `/trickle` sends a byte a second; anything else `ok`.
struct TestServer {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl TestServer {
    async fn start(elsewhere: &str) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (record, elsewhere) = (seen.clone(), elsewhere.to_owned());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(answer(stream, record.clone(), elsewhere.clone()));
            }
        });
        TestServer { addr, seen }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

async fn answer(mut stream: TcpStream, record: Arc<Mutex<Vec<Seen>>>, elsewhere: String) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).await.unwrap_or(0) == 0 {
            return;
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let mut words = head.split_whitespace();
    let (method, path) = (
        words.next().unwrap_or_default().to_owned(),
        words.next().unwrap_or_default().to_owned(),
    );
    record.lock().unwrap().push(Seen {
        method,
        path: path.clone(),
        head: head.clone(),
    });
    let reply = |status: &str, extra: &str, body: &str| {
        format!(
            "HTTP/1.1 {status}\r\n{extra}content-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
    };
    let text = match path.as_str() {
        "/echo" => {
            let auth = head
                .lines()
                .find_map(|l| {
                    l.strip_prefix("authorization: ")
                        .or_else(|| l.strip_prefix("Authorization: "))
                })
                .unwrap_or_default()
                .to_owned();
            reply("200 OK", &format!("x-echo: {auth}\r\n"), &head)
        }
        "/flush" => reply("200 OK", "", "flushed"),
        "/redirect" => reply("302 Found", &format!("location: {elsewhere}\r\n"), ""),
        "/huge" => {
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n")
                .await;
            let chunk = vec![b'x'; 64 * 1024];
            // Forever, 1 GB and beyond, until the host stops reading.
            while stream.write_all(&chunk).await.is_ok() {}
            return;
        }
        "/trickle" => {
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\nconnection: close\r\n\r\n")
                .await;
            for _ in 0..100 {
                if stream.write_all(b"x").await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            return;
        }
        _ => reply("200 OK", "", "ok"),
    };
    let _ = stream.write_all(text.as_bytes()).await;
}

/// A plugin of the fixture for the alert `name`, allowed GETs and a POST to
/// `/flush` on `server`, and GETs of `localhost` on the same port (which
/// resolves to loopback, which it does not write literally).
fn plugin(name: &str, server: SocketAddr, config: &str) -> (String, String) {
    let port = server.port();
    (
        format!("{name}.toml"),
        format!(
            r#"name = {name:?}
version = "1.0.0"
component = "http_calls.wasm"
[match]
alertnames = [{name:?}]
[capabilities.http]
allow = ["GET http://{server}/", "POST http://{server}/flush", "GET http://localhost:{port}/"]
secrets = {{ TOKEN = "header:Authorization:Bearer {{}}" }}
timeout = "2s"
max_response_bytes = 65536
[limits]
timeout_ms = 20000
cooldown = "0s"
target_cooldown = "0s"
[config]
{config}
"#
        ),
    )
}

fn output(event: &Value) -> String {
    event["output"].as_str().unwrap_or_default().to_owned()
}

fn with_token(config: &mut autoheal::config::RawConfig) {
    config.secrets.insert(
        "TOKEN".into(),
        autoheal::config::RawSecret {
            value: Some(TOKEN.into()),
            ..Default::default()
        },
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_run_in_dry_run_effects_are_recorded_and_secrets_never_come_back() {
    let elsewhere = TestServer::start("").await;
    let server = TestServer::start(&elsewhere.url("/evil")).await;
    let s = server.addr;
    let q = |text: &str| format!("{text:?}");
    let plugins = [
        plugin(
            "HttpRead",
            s,
            &format!("url = {}", q(&server.url("/status?token=abc123"))),
        ),
        plugin(
            "HttpPost",
            s,
            &format!(
                "method = \"POST\"\nurl = {}\nbody = \"now\"",
                q(&server.url("/flush"))
            ),
        ),
        plugin(
            "HttpEcho",
            s,
            &format!(
                "url = {}\nsecrets = \"TOKEN\"\nleak = \"log\"",
                q(&server.url("/echo"))
            ),
        ),
        plugin(
            "HttpEchoFail",
            s,
            &format!(
                "url = {}\nsecrets = \"TOKEN\"\nleak = \"error\"",
                q(&server.url("/echo"))
            ),
        ),
        plugin(
            "HttpStranger",
            s,
            &format!("url = {}\nsecrets = \"OTHER\"", q(&server.url("/echo"))),
        ),
        plugin(
            "HttpLocalhost",
            s,
            &format!("url = \"http://localhost:{}/echo\"", s.port()),
        ),
        plugin(
            "HttpDecimal",
            s,
            &format!("url = \"http://2130706433:{}/echo\"", s.port()),
        ),
        plugin(
            "HttpOctal",
            s,
            &format!("url = \"http://0177.0.0.1:{}/echo\"", s.port()),
        ),
        plugin(
            "HttpMapped",
            s,
            &format!("url = \"http://[::ffff:127.0.0.1]:{}/echo\"", s.port()),
        ),
        plugin(
            "HttpUserinfo",
            s,
            &format!("url = \"http://{s}@127.0.0.2:{}/echo\"", s.port()),
        ),
        plugin(
            "HttpRedirect",
            s,
            &format!("url = {}", q(&server.url("/redirect"))),
        ),
        plugin("HttpHuge", s, &format!("url = {}", q(&server.url("/huge")))),
        plugin("HttpTrickle", s, &format!("url = {}", q(&server.url("/trickle")))),
        plugin(
            "HttpFlood",
            s,
            &format!("url = {}\ntimes = 10000", q(&server.url("/ok"))),
        ),
    ];
    let plugins: Vec<(&str, String)> = plugins.iter().map(|(f, t)| (f.as_str(), t.clone())).collect();
    let host = ServedHost::start_staged(
        0,
        &["http_calls"],
        &plugins,
        Arc::new(autoheal_containers::FakeRuntime::new()),
        with_token,
    )
    .await;
    let names: Vec<&str> = plugins.iter().map(|(f, _)| f.trim_end_matches(".toml")).collect();
    let events = act(&host, &names).await;
    let by = |name: &str| events.iter().find(|(n, _)| n == name).unwrap().1.clone();

    // A GET is a read: performed in dry-run, recorded without query values.
    let read = by("HttpRead");
    assert_eq!(
        output(&read),
        "sent=true status=200 truncated=false bytes=2 body=\"ok\"",
        "{read:#}"
    );
    let call = &read["calls"][0];
    assert_eq!(call["capability"], "http.request");
    assert_eq!(call["outcome"], "ok");
    assert_eq!(call["target"], format!("http://{s}"));
    let detail = call["detail"].as_str().unwrap();
    assert!(
        detail.starts_with(&format!("GET http://{s}/status?token=[…]: 200")),
        "{detail}"
    );
    assert!(call["duration_ms"].as_u64().is_some());

    // A POST is an effect: recorded, not sent, in dry-run.
    let post = by("HttpPost");
    assert_eq!(
        output(&post),
        "sent=false status=0 truncated=false bytes=0 body=\"\"",
        "{post:#}"
    );
    assert_eq!(post["calls"][0]["outcome"], "recorded");
    assert!(
        server.seen().iter().all(|r| r.method != "POST"),
        "nothing POSTed in dry-run"
    );

    // The host put the secret in (the server saw it) ...
    let echoed: Vec<Seen> = server.seen().into_iter().filter(|r| r.path == "/echo").collect();
    assert_eq!(
        echoed.len(),
        2,
        "only the two allowed echo requests arrived: {echoed:#?}"
    );
    for request in &echoed {
        assert!(
            request.head.contains(&format!("authorization: Bearer {TOKEN}")),
            "{}",
            request.head
        );
    }
    // ... and the plugin saw `[secret TOKEN]`, in the body and in the header.
    let echo = by("HttpEcho");
    assert!(
        output(&echo).contains("authorization: Bearer [secret TOKEN]"),
        "{echo:#}"
    );
    let logged = echo["logs"].to_string();
    assert!(logged.contains("Bearer [secret TOKEN]"), "{logged}");
    let failed = by("HttpEchoFail");
    assert_eq!(failed["kind"], "action_fail");
    assert!(
        failed["error"]
            .as_str()
            .unwrap()
            .contains("Bearer [secret TOKEN]"),
        "{failed:#}"
    );
    assert!(
        output(&by("HttpStranger")).starts_with("denied: ") && output(&by("HttpStranger")).contains("OTHER"),
        "{:#}",
        by("HttpStranger")
    );

    // The hostile list: refused before anything is sent.
    for (name, why) in [
        (
            "HttpLocalhost",
            "loopback, which the allow-list does not name literally",
        ),
        ("HttpDecimal", "not spelled canonically"),
        ("HttpOctal", "not spelled canonically"),
        ("HttpMapped", "IPv4-mapped"),
        ("HttpUserinfo", "userinfo"),
    ] {
        let answer = output(&by(name));
        assert!(
            answer.starts_with("denied: ") && answer.contains(why),
            "{name}: {answer}"
        );
        assert_eq!(by(name)["calls"][0]["outcome"], "denied", "{name}");
    }
    // A redirect is answered as it came, never followed.
    let redirect = output(&by("HttpRedirect"));
    assert!(redirect.starts_with("sent=true status=302"), "{redirect}");
    assert!(elsewhere.seen().is_empty(), "the redirect was not followed");
    // An endless response is cut at max_response_bytes.
    assert_eq!(
        output(&by("HttpHuge")),
        format!(
            "sent=true status=200 truncated=true bytes=65536 body={:?}",
            "x".repeat(300)
        )
    );
    // A trickle runs into the timeout.
    let trickle = output(&by("HttpTrickle"));
    assert!(
        trickle.starts_with("timeout: ") && trickle.contains("2s"),
        "{trickle}"
    );
    // 10,000 requests: the call budget's 64 made, the rest refused.
    assert_eq!(output(&by("HttpFlood")), "sent=64 denied=9936");
    let flood = by("HttpFlood");
    assert_eq!(flood["calls"].as_array().unwrap().len(), 64);
    assert_eq!(server.seen().iter().filter(|r| r.path == "/ok").count(), 64);

    // The secret's value is nowhere in the trail.
    let trail = host.audit("").await;
    assert!(
        !json!(trail).to_string().contains(TOKEN),
        "the trail holds the secret"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_post_is_sent_after_its_intent() {
    let server = TestServer::start("").await;
    let plugins = [plugin(
        "HttpFlush",
        server.addr,
        &format!(
            "method = \"POST\"\nurl = {:?}\nbody = \"now\"\nsecrets = \"TOKEN\"",
            server.url("/flush")
        ),
    )];
    let plugins: Vec<(&str, String)> = plugins.iter().map(|(f, t)| (f.as_str(), t.clone())).collect();
    let host = ServedHost::start_staged(
        0,
        &["http_calls"],
        &plugins,
        Arc::new(autoheal_containers::FakeRuntime::new()),
        |c| {
            crate::support::real(c);
            with_token(c);
        },
    )
    .await;
    let events = act(&host, &["HttpFlush"]).await;
    let event = &events[0].1;
    assert_eq!(event["kind"], "action_ok", "{event:#}");
    assert_eq!(
        output(event),
        "sent=true status=200 truncated=false bytes=7 body=\"flushed\""
    );
    let posted: Vec<Seen> = server.seen().into_iter().filter(|r| r.method == "POST").collect();
    assert_eq!(posted.len(), 1);
    assert!(posted[0].head.contains(&format!("Bearer {TOKEN}")));
    let call = &event["calls"][0];
    assert_eq!(call["outcome"], "ok");
    let intent = call["intent"].as_u64().expect("an intent before the POST");
    let intents = host.audit("effect_intent").await;
    let written = intents
        .iter()
        .find(|e| e["id"].as_u64() == Some(intent))
        .unwrap_or_else(|| panic!("intent {intent} in the trail: {intents:#?}"));
    assert_eq!(written["capability"], "http.request");
    assert_eq!(written["target"], format!("http://{}", server.addr));
    assert!(
        written["detail"].as_str().unwrap().starts_with("POST http://"),
        "{written:#}"
    );
    assert_eq!(event["targets"], json!([format!("http://{}", server.addr)]));
    assert!(!json!(host.audit("").await).to_string().contains(TOKEN));
}
