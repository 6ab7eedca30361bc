//! Slow and idle clients against the real server on loopback (`[http]`):
//! a head or a body that trickles is cut at its deadline, idle connections
//! are closed (at once when the connection cap is reached) so that a fresh
//! `GET /` is answered, and a stop with a slow body in flight ends within
//! `stop_timeout`.

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::real::{ServedHost, free_port, http};
use crate::support::*;

async fn served(configure: impl FnOnce(&mut autoheal::config::RawConfig)) -> ServedHost {
    ServedHost::start(
        &[("crm.toml", bundled_manifest())],
        Arc::new(autoheal_containers::NoEngine),
        configure,
    )
    .await
}

fn addr(host: &ServedHost) -> String {
    host.url.trim_start_matches("http://").to_owned()
}

/// Reads until the server closes `stream`, which it must within `within`:
/// what it sent, and how long that took.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> (String, Duration) {
    let start = Instant::now();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(within, async {
        let mut buf = [0u8; 4096];
        // A reset is as closed as an end of stream.
        while let Ok(n @ 1..) = stream.read(&mut buf).await {
            answer.extend_from_slice(&buf[..n]);
        }
    })
    .await;
    assert!(read.is_ok(), "the connection was still open after {within:?}");
    (String::from_utf8_lossy(&answer).into_owned(), start.elapsed())
}

/// A webhook's head, with its `Content-Length`, and the body it announces.
fn webhook_request(addr: &str) -> (String, String) {
    let body = json!({ "version": "4", "status": "firing", "receiver": "autoheal",
        "alerts": [opted_in("TcpEndpointDownFast")] })
    .to_string();
    let head = format!(
        "POST /alert HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {WEBHOOK_TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    (head, body)
}

async fn post_webhook(host: &ServedHost) -> u16 {
    let url = host.url.clone();
    let (_, body) = webhook_request("");
    tokio::task::spawn_blocking(move || http(&url, "POST", "/alert", &body).unwrap().0)
        .await
        .unwrap()
}

async fn get_status(host: &ServedHost) -> u16 {
    let url = host.url.clone();
    tokio::task::spawn_blocking(move || http(&url, "GET", "/", "").unwrap().0)
        .await
        .unwrap()
}

/// Half a request line, then nothing; and a head sent a byte at a time,
/// each byte well within any deadline but the whole past the head's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_head_is_cut_at_header_timeout() {
    let host = served(|c| {
        c.http.header_timeout = "500ms".into();
        c.http.idle_timeout = "30s".into();
    })
    .await;
    let mut half = TcpStream::connect(addr(&host)).await.unwrap();
    half.write_all(b"GET / HT").await.unwrap();
    let (answer, took) = closed_within(&mut half, Duration::from_secs(5)).await;
    assert!(answer.is_empty(), "{answer}");
    assert!(took >= Duration::from_millis(400), "closed after {took:?}");

    let mut trickle = TcpStream::connect(addr(&host)).await.unwrap();
    let head = format!(
        "GET / HTTP/1.1\r\nHost: {}\r\nX-Slow: {}\r\n\r\n",
        addr(&host),
        "a".repeat(40)
    );
    let start = Instant::now();
    let mut cut = false;
    for byte in head.as_bytes() {
        if trickle.write_all(&[*byte]).await.is_err() {
            cut = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if !cut {
        closed_within(&mut trickle, Duration::from_secs(5)).await;
    }
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "a trickled head lasted {:?}",
        start.elapsed()
    );
    assert_eq!(get_status(&host).await, 200);
}

/// A body that trickles gets a 503 with `Retry-After` at `body_timeout`
/// (Alertmanager retries a 5xx; a 408 it would drop) and gives its webhook
/// slot back; webhooks sent meanwhile are answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_body_gets_503_to_retry_and_gives_its_webhook_slot_back() {
    let host = served(|c| {
        c.http.body_timeout = "1s".into();
        c.max_concurrent_webhooks = 2;
    })
    .await;
    let addr = addr(&host);
    let (head, body) = webhook_request(&addr);
    let slow = |addr: String| {
        let (head, body) = (head.clone(), body.clone());
        tokio::spawn(async move {
            let mut stream = TcpStream::connect(&addr).await.unwrap();
            stream.write_all(head.as_bytes()).await.unwrap();
            let start = Instant::now();
            for byte in body.as_bytes() {
                if stream.write_all(&[*byte]).await.is_err() || start.elapsed() > Duration::from_secs(5) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let (answer, _) = closed_within(&mut stream, Duration::from_secs(5)).await;
            (answer, start.elapsed())
        })
    };
    let first = slow(addr.clone());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        post_webhook(&host).await,
        200,
        "a webhook sent meanwhile is answered"
    );
    let (answer, took) = first.await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.to_ascii_lowercase().contains("retry-after: 1"), "{answer}");
    assert!(answer.contains("body_timeout"), "{answer}");
    assert!(took < Duration::from_secs(3), "cut after {took:?}");
    let rejected = host.audit("webhook_rejected").await;
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    assert_eq!(rejected[0]["status"], 503);

    // Its slot is free again: with a second slow body holding one of the
    // two, a webhook still finds the other.
    let second = slow(addr.clone());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        post_webhook(&host).await,
        200,
        "the first slow body kept its slot"
    );
    second.abort();
    let metrics = {
        let url = host.url.clone();
        tokio::task::spawn_blocking(move || {
            let addr = url.trim_start_matches("http://").to_owned();
            let mut stream = std::net::TcpStream::connect(&addr).unwrap();
            use std::io::{Read, Write};
            write!(
                stream,
                "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {OPERATOR_TOKEN}\r\nConnection: close\r\n\r\n"
            )
            .unwrap();
            let mut text = String::new();
            stream.read_to_string(&mut text).unwrap();
            text
        })
        .await
        .unwrap()
    };
    // The series exists from the start, at 0: the hit is its value.
    let hits: f64 = metrics
        .lines()
        .find_map(|line| line.strip_prefix("autoheal_bounds_hit_total{bound=\"body_timeout\"} "))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("no body_timeout series:\n{metrics}"));
    assert!(hits >= 1.0, "{metrics}");
}

/// A kept-alive connection is closed after `idle_timeout` with no request;
/// past `max_connections`, idle ones are closed at once to make room, so a
/// fresh `GET /` is answered however many idle connections are open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed_and_make_room_at_the_cap() {
    let host = served(|c| c.http.idle_timeout = "500ms".into()).await;
    let mut kept = TcpStream::connect(addr(&host)).await.unwrap();
    let request = format!(
        "GET / HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {OPERATOR_TOKEN}\r\n\r\n",
        addr(&host)
    );
    kept.write_all(request.as_bytes()).await.unwrap();
    let (answer, took) = closed_within(&mut kept, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(took >= Duration::from_millis(400), "closed after {took:?}");
    drop(host);

    // Idle connections that would outlive the test, more than the cap.
    let cap = 4;
    let host = served(|c| {
        c.http.idle_timeout = "60s".into();
        c.http.max_connections = cap;
    })
    .await;
    let mut idle = Vec::new();
    for _ in 0..cap * 2 {
        idle.push(TcpStream::connect(addr(&host)).await.unwrap());
    }
    let start = Instant::now();
    assert_eq!(get_status(&host).await, 200);
    assert!(
        start.elapsed() < Duration::from_secs(8),
        "GET / waited {:?}",
        start.elapsed()
    );
    // The first ones were accepted and closed to make room.
    for stream in &mut idle[..cap] {
        closed_within(stream, Duration::from_secs(1)).await;
    }
}

/// SIGTERM with a slow body in flight: the real binary exits within
/// `stop_timeout`, not when the body would have timed out.
#[test]
fn a_stop_with_a_slow_body_in_flight_ends_within_stop_timeout() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    stage_plugins(dir.path(), &[], &[]);
    std::fs::write(
        dir.path().join("autoheal.toml"),
        "[http]\nstop_timeout = \"1s\"\nbody_timeout = \"60s\"\n",
    )
    .unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let base = format!("http://{addr}");
    let mut host = serve_command(
        dir.path(),
        &addr,
        &shared_cache_dir(),
        &dir.path().join("no-engine.sock"),
    )
    .spawn()
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !matches!(http(&base, "GET", "/", ""), Ok((200, _))) {
        assert!(Instant::now() < deadline, "the host did not come up");
        std::thread::sleep(Duration::from_millis(20));
    }
    let (head, body) = webhook_request(&addr);
    let mut slow = std::net::TcpStream::connect(&addr).unwrap();
    slow.write_all(head.as_bytes()).unwrap();
    slow.write_all(&body.as_bytes()[..10]).unwrap();
    std::thread::sleep(Duration::from_millis(300));

    let start = Instant::now();
    assert!(
        Command::new("kill")
            .args(["-TERM", &host.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let status = loop {
        if let Some(status) = host.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > Duration::from_secs(10) {
            host.kill().unwrap();
            panic!("still running {:?} after SIGTERM", start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let took = start.elapsed();
    assert!(status.success(), "{status}");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(4),
        "stopped after {took:?}"
    );
    // The slow request was cut, not answered.
    slow.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut answer = String::new();
    let _ = slow.read_to_string(&mut answer);
    assert!(answer.is_empty(), "{answer}");
}
