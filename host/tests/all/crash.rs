//! The real binary under continuous webhook load, acting for real on a real
//! podman container, killed with SIGKILL twenty times and restarted each
//! time on the same trail: at random moments, and in some rounds while a
//! restart is under way (after its intent, before podman is done: the
//! container's PID 1 ignores SIGTERM, so a restart waits out its 2 s stop
//! timeout). Then: the trail parses, ids only go up, every answered webhook
//! and every received alert has its record, interrupted restarts are
//! recorded as such, and podman's own events show no more restarts than the
//! breaker allows, none within the cooldown of the one before, each with its
//! committed intent.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::process::{Child, Command};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::e2e::crm_manifest;
use crate::real::{Podman, free_port, http, unique};
use crate::support::*;

const ROUNDS: usize = 20;
const MAX_RESTARTS: usize = 5;
const COOLDOWN: Duration = Duration::from_secs(3);
/// Rounds that kill during a restart, while the breaker still allows one.
const DURING_RESTART_EVERY: usize = 3;

fn random_ms(low: u64, high: u64) -> u64 {
    low + RandomState::new().build_hasher().finish() % (high - low)
}

fn spawn_host(dir: &std::path::Path, addr: &str, socket: &std::path::Path) -> Child {
    serve_command(dir, addr, &dir.join("cache"), socket)
        .spawn()
        .unwrap()
}

fn wait_up(base: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !matches!(http(base, "GET", "/", ""), Ok((200, _))) {
        assert!(Instant::now() < deadline, "the host did not come up");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn kill_dash_nine_under_load_loses_nothing_and_restarts_nothing_twice() {
    let podman = Podman::start();
    let container = unique("crash");
    podman.run_httpd(&container, free_port());
    let since = chrono::Utc::now().timestamp().to_string();

    let dir = tempfile::tempdir().unwrap();
    let manifest = crm_manifest(&container, &format!("{}s", COOLDOWN.as_secs()))
        .replace("stop_timeout_sec = 1", "stop_timeout_sec = 2");
    stage_plugins(dir.path(), &["restart_container"], &[("crm.toml", manifest)]);
    std::fs::write(
        dir.path().join("autoheal.toml"),
        format!("[circuit_breaker]\nmax_restarts = {MAX_RESTARTS}\nwindow = \"30m\"\n"),
    )
    .unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let base = format!("http://{addr}");
    let body = json!({
        "version": "4", "status": "firing", "receiver": "autoheal",
        "alerts": [{
            "status": "firing",
            "labels": { "alertname": "TcpEndpointDownFast", "service": container, "instance": format!("{container}:8000") },
            "annotations": { "autoheal": "true" },
        }],
    })
    .to_string();

    let trail = dir.path().join("audit.jsonl");
    let intents = || {
        std::fs::read_to_string(&trail)
            .unwrap_or_default()
            .matches("\"kind\":\"restart_intent\"")
            .count()
    };
    let answered = Arc::new(AtomicUsize::new(0));
    for round in 0..ROUNDS {
        let intents_before = intents();
        let mut host = spawn_host(dir.path(), &addr, &podman.socket);
        wait_up(&base);
        let stop = Arc::new(AtomicBool::new(false));
        let load = {
            let (base, body, stop, answered) = (base.clone(), body.clone(), stop.clone(), answered.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    if let Ok((200, _)) = http(&base, "POST", "/alert", &body) {
                        answered.fetch_add(1, Ordering::SeqCst);
                    }
                }
            })
        };
        if round % DURING_RESTART_EVERY == 1 && intents_before < MAX_RESTARTS {
            // Wait for this run's first intent, then kill before podman is done.
            let deadline = Instant::now() + COOLDOWN * 3;
            while intents() == intents_before && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            std::thread::sleep(Duration::from_millis(random_ms(50, 1200)));
        } else {
            std::thread::sleep(Duration::from_millis(random_ms(100, 1500)));
        }
        host.kill().unwrap(); // SIGKILL
        host.wait().unwrap();
        stop.store(true, Ordering::SeqCst);
        load.join().unwrap();
    }
    // One clean start and stop: it reports what the kills interrupted.
    let mut host = spawn_host(dir.path(), &addr, &podman.socket);
    wait_up(&base);
    assert!(
        Command::new("kill")
            .args(["-TERM", &host.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    assert!(host.wait().unwrap().success());

    // The trail: whole lines, ids that only go up.
    let text = std::fs::read_to_string(dir.path().join("audit.jsonl")).unwrap();
    let events: Vec<Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("a torn line {line:?}: {e}")))
        .collect();
    for pair in events.windows(2) {
        assert!(
            pair[1]["id"].as_u64() > pair[0]["id"].as_u64(),
            "ids go up: {} then {}",
            pair[0]["id"],
            pair[1]["id"]
        );
    }
    let kind = |k: &str| events.iter().filter(|e| e["kind"] == k).count();
    assert_eq!(kind("host_started"), ROUNDS + 1);

    // Every answered webhook has its record, and every received alert its decision,
    // committed in the same write (the next id).
    let answered = answered.load(Ordering::SeqCst);
    assert!(answered > ROUNDS, "the load was light: {answered} answers");
    assert!(
        kind("webhook_received") >= answered,
        "{} received, {answered} answered",
        kind("webhook_received")
    );
    for (i, event) in events.iter().enumerate() {
        if event["kind"] == "webhook_received" {
            let next = &events[i + 1];
            assert!(
                next["kind"] == "decision_skip" || next["kind"] == "action_started",
                "webhook_received {} without its decision: {next}",
                event["id"]
            );
        }
    }

    // Kills during a restart: at the next start, the intent without an
    // outcome is recorded as interrupted (and counts as done).
    assert!(
        kind("action_interrupted") >= 2,
        "{} interrupted restarts recorded; the rounds meant to kill during a restart missed",
        kind("action_interrupted")
    );

    // Podman's own count: no more restarts than the breaker allows, each with its intent.
    let times: Vec<chrono::DateTime<chrono::Utc>> = podman
        .restart_events(&since, Some(&container))
        .iter()
        .map(|event| {
            event["Time"]
                .as_str()
                .and_then(|t| t.parse().ok())
                .unwrap_or_else(|| panic!("podman event time in {event}"))
        })
        .collect();
    let restarts = times.len();
    // Each restart waits the same stop timeout, so the gaps between their
    // ends are the gaps between their starts, give or take scheduling.
    for pair in times.windows(2) {
        let gap = (pair[1] - pair[0]).to_std().unwrap_or_default();
        assert!(
            gap + Duration::from_millis(1000) >= COOLDOWN,
            "two restarts {gap:?} apart, within the {COOLDOWN:?} cooldown"
        );
    }
    assert!(
        (1..=MAX_RESTARTS).contains(&restarts),
        "podman restarted the container {restarts} times"
    );
    assert!(
        restarts <= kind("restart_intent"),
        "{restarts} restarts, {} intents",
        kind("restart_intent")
    );
    eprintln!(
        "{ROUNDS} kills: {answered} webhooks answered, {} received, {} intents, {} interrupted, {restarts} podman restarts",
        kind("webhook_received"),
        kind("restart_intent"),
        kind("action_interrupted")
    );
}
