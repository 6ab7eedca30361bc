//! The kill switch and dry-run flipped at runtime: who may, what it does to
//! the next action, what it leaves in the audit trail, and that it survives
//! a restart of the host.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};

use autoheal::switches::{SwitchState, Switches};
use autoheal_core::mode::ExecutionMode;
use axum::body::Body;
use axum::http::Request;
use serde_json::{Value, json};

use crate::real::{ServedHost, http};
use crate::support::*;

async fn call(h: &Harness, uri: &str, token: Option<&str>, body: Value) -> (u16, Value) {
    let mut request = Request::post(uri).header("content-type", "application/json");
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    h.send(request.body(Body::from(body.to_string())).unwrap()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switches_flip_at_runtime_are_audited_and_survive_a_restart() {
    // Configured safe: disabled, dry-run.
    let h = harness(&[crm_plugin()], |c| c.default_cooldown_sec = 0).await;
    let on = json!({ "enabled": true, "by": "alice" });
    let (status, _) = call(&h, "/admin/enabled", None, on.clone()).await;
    assert_eq!(status, 401, "the operator token is needed");
    let (status, _) = call(&h, "/admin/enabled", Some(WEBHOOK_TOKEN), on.clone()).await;
    assert_eq!(status, 401, "a webhook token is not an operator token");
    let (status, reply) = call(
        &h,
        "/admin/enabled",
        Some(OPERATOR_TOKEN),
        json!({ "enabled": "yes" }),
    )
    .await;
    assert_eq!(status, 400, "{reply}");

    let (status, reply) = call(&h, "/admin/enabled", Some(OPERATOR_TOKEN), on).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["mode"], "dry_run");
    assert_eq!(reply["dry_run_reason"], "dry_run");
    h.process(json!([opted_in("TcpEndpointDownFast")])).await;
    assert!(h.fake.restarts().is_empty(), "still dry-run");

    let (status, reply) = call(
        &h,
        "/admin/dry-run",
        Some(OPERATOR_TOKEN),
        json!({ "dry_run": false, "by": "alice" }),
    )
    .await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["mode"], "real");
    let page = h.status_page().await;
    assert_eq!(
        (
            page["enabled"].clone(),
            page["dry_run"].clone(),
            page["mode"].clone()
        ),
        (json!(true), json!(false), json!("real"))
    );
    h.process(json!([opted_in("TcpEndpointDownFast")])).await;
    assert_eq!(h.fake.restarts(), ["crm-api"], "the next action is real");

    let changes = h.events(&["mode_changed"]);
    assert_eq!(changes.len(), 2);
    assert_eq!(
        (
            &changes[0]["by"],
            &changes[0]["by_kind"],
            &changes[0]["by_comment"]
        ),
        (&json!("operator"), &json!("shared_token"), &json!("alice"))
    );
    assert_eq!(
        (
            changes[0]["previous_enabled"].clone(),
            changes[0]["enabled"].clone()
        ),
        (json!(false), json!(true))
    );
    assert_eq!(
        (
            changes[1]["previous_dry_run"].clone(),
            changes[1]["dry_run"].clone()
        ),
        (json!(true), json!(false))
    );
    assert_eq!(changes[1]["mode"], "real");

    // A restart keeps what the operator set, not what the config says.
    let h = h.restart(|c| c.default_cooldown_sec = 0).await;
    let page = h.status_page().await;
    assert_eq!(page["mode"], "real", "{page:#}");
    let started = h.events(&["host_started"]);
    assert_eq!(started.last().unwrap()["enabled"], true);
    let (status, reply) = call(
        &h,
        "/admin/enabled",
        Some(OPERATOR_TOKEN),
        json!({ "enabled": false }),
    )
    .await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["dry_run_reason"], "disabled");
    h.process(json!([opted_in("TcpEndpointDownFast")])).await;
    assert_eq!(
        h.fake.restarts().len(),
        1,
        "the kill switch holds the next one back"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_mode_is_refused_at_runtime_while_the_webhook_is_open() {
    let h = harness(&[crm_plugin()], |c| c.auth.webhook_tokens.clear()).await;
    let (status, _) = call(
        &h,
        "/admin/enabled",
        Some(OPERATOR_TOKEN),
        json!({ "enabled": true }),
    )
    .await;
    assert_eq!(status, 200, "enabled but still dry-run is safe");
    let (status, reply) = call(
        &h,
        "/admin/dry-run",
        Some(OPERATOR_TOKEN),
        json!({ "dry_run": false }),
    )
    .await;
    assert_eq!(status, 409, "{reply}");
    assert!(
        reply["error"]
            .as_str()
            .unwrap()
            .contains("AUTOHEAL_WEBHOOK_TOKEN"),
        "{reply}"
    );
    assert_eq!(h.status_page().await["mode"], "dry_run");
}

/// Flips `n` operators make at once over HTTP, half `enabled = true`, half
/// `dry_run = false` (each safe alone on a host in dry-run and disabled);
/// every answer, which must be a flip that did not reach real mode (200)
/// or the interlock's refusal (409). Returns how many were refused.
pub(crate) async fn race_the_halves(url: &str, n: usize) -> usize {
    let url = url.to_owned();
    let answers = tokio::task::spawn_blocking(move || {
        let start = Barrier::new(n);
        std::thread::scope(|scope| {
            let flips: Vec<_> = (0..n)
                .map(|i| {
                    let (url, start) = (&url, &start);
                    scope.spawn(move || {
                        let (path, body) = if i % 2 == 0 {
                            (
                                "/admin/enabled",
                                json!({ "enabled": true, "by": format!("op{i}") }),
                            )
                        } else {
                            (
                                "/admin/dry-run",
                                json!({ "dry_run": false, "by": format!("op{i}") }),
                            )
                        };
                        start.wait();
                        http(url, "POST", path, &body.to_string()).unwrap()
                    })
                })
                .collect();
            flips.into_iter().map(|f| f.join().unwrap()).collect::<Vec<_>>()
        })
    })
    .await
    .unwrap();
    let mut refused = 0;
    for (status, reply) in answers {
        match status {
            200 => assert_eq!(reply["real"], false, "a flip reached real mode: {reply}"),
            409 => {
                assert!(
                    reply["error"]
                        .as_str()
                        .unwrap()
                        .contains("AUTOHEAL_WEBHOOK_TOKEN"),
                    "{reply}"
                );
                refused += 1;
            }
            _ => panic!("{status}: {reply}"),
        }
    }
    refused
}

/// Puts the host back to disabled and dry-run over HTTP.
pub(crate) async fn make_safe(url: &str) {
    let url = url.to_owned();
    tokio::task::spawn_blocking(move || {
        for (path, body) in [
            ("/admin/enabled", json!({ "enabled": false })),
            ("/admin/dry-run", json!({ "dry_run": true })),
        ] {
            let (status, reply) = http(&url, "POST", path, &body.to_string()).unwrap();
            assert_eq!(status, 200, "{reply}");
        }
    })
    .await
    .unwrap();
}

/// Watches a host's switches, in memory and in `switches.json`, from
/// another thread for as long as it lives: neither may ever say real mode.
pub(crate) struct NeverReal {
    watching: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<usize>>,
}

impl NeverReal {
    pub(crate) fn watch(switches: Arc<Switches>, saved: PathBuf) -> NeverReal {
        let watching = Arc::new(AtomicBool::new(true));
        let thread = {
            let watching = watching.clone();
            std::thread::spawn(move || {
                let mut read = 0;
                while watching.load(Ordering::SeqCst) {
                    assert_ne!(switches.mode().0, ExecutionMode::Real, "real mode in memory");
                    if let Some(state) = saved_switches(&saved) {
                        assert_ne!(state.mode().0, ExecutionMode::Real, "real mode saved");
                        read += 1;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
                read
            })
        };
        NeverReal {
            watching,
            thread: Some(thread),
        }
    }

    /// Stops watching; fails the test if the watcher saw real mode or never
    /// read the file.
    pub(crate) fn stop(mut self) {
        self.watching.store(false, Ordering::SeqCst);
        let read = self
            .thread
            .take()
            .unwrap()
            .join()
            .expect("the switches never said real");
        assert!(read > 0, "the watcher never read switches.json");
    }
}

impl Drop for NeverReal {
    fn drop(&mut self) {
        self.watching.store(false, Ordering::SeqCst);
    }
}

/// What `switches.json` holds (written by rename: never half a file).
pub(crate) fn saved_switches(path: &Path) -> Option<SwitchState> {
    std::fs::read(path)
        .ok()
        .map(|bytes| serde_json::from_slice(&bytes).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_flips_never_reach_real_mode_while_the_webhook_is_open() {
    let served = ServedHost::start(&[crm_plugin()], Arc::new(autoheal_containers::NoEngine), |c| {
        c.auth.webhook_tokens.clear()
    })
    .await;
    let saved = Switches::path_for(&served.host.config.audit_path);
    let watcher = NeverReal::watch(served.host.switches.clone(), saved.clone());
    for _ in 0..10 {
        make_safe(&served.url).await;
        let refused = race_the_halves(&served.url, 8).await;
        // Whichever half is applied first, the other half is refused.
        assert_eq!(refused, 4, "each of the other half is refused");
    }
    watcher.stop();
    let real = served.audit("mode_changed").await;
    assert!(real.iter().all(|e| e["mode"] == "dry_run"), "{real:#?}");
    assert!(saved_switches(&saved).is_some_and(|s| s.mode().0 != ExecutionMode::Real));

    // What was saved does not stop the next start.
    let served = served.restart().await;
    let started = served.audit("host_started").await;
    assert_eq!(started.len(), 2, "{started:#?}");
    assert_eq!(started[1]["mode"], "dry_run");
    make_safe(&served.url).await;
}
