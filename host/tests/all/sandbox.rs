//! The sandbox against misbehaving guests (tests/fixtures/misbehave): each
//! failure becomes `action_fail` with a classified reason, and the host
//! serves the next alert afterwards.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::*;

/// Runs one fixture mode, then a well-behaved plugin, and returns the
/// fixture's final event. Proves the host still serves after the failure.
async fn run_mode(mode: &str, limits: &str, config: &str, real_mode: bool) -> (Harness, Value) {
    let plugins = [
        ("fixture.toml", fixture("Fixture", mode, limits, config)),
        ("ok.toml", fixture("Healthy", "ok", "", "")),
    ];
    let h = harness(&plugins, |c| {
        if real_mode {
            real(c)
        }
    })
    .await;
    h.process(json!([opted_in("Fixture")])).await;
    let events = h.events(&["action_ok", "action_fail", "action_dry_run"]);
    assert_eq!(events.len(), 1, "{events:#?}");
    let outcome = events[0].clone();

    h.process(json!([opted_in("Healthy")])).await;
    let after = h.events(&["action_ok", "action_fail", "action_dry_run"]);
    assert_eq!(after.len(), 2, "{after:#?}");
    assert_eq!(after[1]["plugin"], "Healthy");
    assert_eq!(after[1]["output"], "ok", "the host must still serve: {after:#?}");
    (h, outcome)
}

#[tokio::test]
async fn an_infinite_loop_is_stopped_by_the_deadline() {
    let (_h, event) = run_mode("loop", "timeout_ms = 200", "", false).await;
    assert_eq!(event["kind"], "action_fail");
    assert_eq!(event["reason"], "timeout", "{event}");
    let ms = event["duration_ms"].as_f64().unwrap();
    assert!(ms >= 190.0, "stopped before its deadline: {ms} ms");
}

#[tokio::test]
async fn unbounded_allocation_is_stopped_by_the_memory_cap() {
    let (_h, event) = run_mode("alloc", "memory_mb = 8", "", false).await;
    assert_eq!(event["kind"], "action_fail");
    assert_eq!(event["reason"], "memory", "{event}");
}

#[tokio::test]
async fn a_panic_is_a_trap_with_the_message_in_stderr() {
    let (_h, event) = run_mode("panic", "", "", false).await;
    assert_eq!(event["kind"], "action_fail");
    let reason = event["reason"].as_str().unwrap();
    assert!(reason.starts_with("trap: "), "{reason}");
    assert!(
        event["stderr"].as_str().unwrap().contains("fixture panic"),
        "{event}"
    );
}

#[tokio::test]
async fn a_plugin_error_is_reported_as_such() {
    let (_h, event) = run_mode("err", "", "", false).await;
    assert_eq!(event["kind"], "action_fail");
    assert_eq!(event["reason"], "plugin_error");
    assert_eq!(event["error"], "fixture error");
}

#[tokio::test]
async fn a_container_outside_the_allow_list_is_denied_and_recorded() {
    let (h, event) = run_mode("deny", "", "container = \"db\"", true).await;
    assert!(
        h.fake.restarts().is_empty(),
        "the denied restart reached the engine"
    );
    let output = event["output"].as_str().unwrap();
    assert!(output.starts_with("restart=denied"), "{output}");
    let call = &event["calls"][0];
    assert_eq!(call["capability"], "containers.restart");
    assert_eq!(call["target"], "db");
    assert_eq!(call["outcome"], "denied");
    let denied = h.only("capability_denied");
    assert_eq!(denied["plugin"], "Fixture");
    assert_eq!(denied["target"], "db");
    // Nothing denied means no restart in the event's targets either.
    assert!(event.get("target").is_none(), "{event}");
}

#[tokio::test]
async fn files_environment_and_sockets_give_nothing() {
    let (_h, event) = run_mode("read_file", "", "path = \"/etc/hostname\"", false).await;
    assert_eq!(event["output"], "file=denied", "{event}");

    let (_h, event) = run_mode("env", "", "", false).await;
    assert_eq!(event["output"], "env=0 args=0", "{event}");

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (_h, event) = run_mode("socket", "", &format!("addr = {addr:?}"), false).await;
    assert_eq!(event["output"], "socket=denied", "{event}");
    assert!(listener.accept().is_err(), "the plugin reached a socket");
}

#[tokio::test]
async fn chatty_output_is_capped_not_fatal() {
    let (_h, event) = run_mode("stdout", "", "", false).await;
    assert_eq!(event["output"], "printed", "{event}");
    let stdout = event["stdout"].as_str().unwrap();
    assert!(stdout.starts_with("line 0\n"), "{}", &stdout[..40]);
    assert!(stdout.len() < 17 * 1024, "stdout kept {} bytes", stdout.len());
    assert!(stdout.contains("more bytes dropped]"));
}

#[tokio::test]
async fn a_slow_engine_call_cannot_outlive_the_deadline() {
    // The restart blocks in the host (no wasm runs, so epochs cannot stop it):
    // the wall-clock guard does.
    let plugins = [(
        "fixture.toml",
        fixture("Fixture", "deny", "timeout_ms = 100", "container = \"crm-api\""),
    )];
    let h = harness(&plugins, real).await;
    let slow = std::sync::Arc::new(
        autoheal_containers::FakeRuntime::new().with_restart_delay(Duration::from_secs(30)),
    );
    slow.add_running("crm-api", Duration::from_secs(3600));
    let host = autoheal::app::start(
        {
            let mut c = test_config(h.dir.path());
            real(&mut c);
            c.validate().unwrap()
        },
        slow,
    )
    .await
    .unwrap();
    let started = std::time::Instant::now();
    webhook(
        &host.remediator,
        serde_json::from_value(json!([opted_in("Fixture")])).unwrap(),
    )
    .await;
    host.remediator.drain().await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let fails = h.events(&["action_fail"]);
    assert_eq!(fails.len(), 1, "{fails:#?}");
    assert_eq!(fails[0]["reason"], "timeout");
}

#[tokio::test]
async fn broken_plugins_are_rejected_and_the_others_load() {
    let good = ("good.toml", fixture("Good", "ok", "", ""));
    let bad_key = (
        "bad-key.toml",
        fixture("BadKey", "ok", "", "").replace("[capabilities]", "[capabilities]\nsockets = true"),
    );
    let wrong_world = (
        "wrong.toml",
        manifest("wrong", "wrong_world.wasm", &["X"], &[], ""),
    );
    let missing = ("missing.toml", manifest("missing", "nope.wasm", &["X"], &[], ""));
    let not_component = (
        "garbage.toml",
        manifest("garbage", "garbage.wasm", &["X"], &[], ""),
    );
    let escape = ("escape.toml", manifest("escape", "escape.wasm", &["X"], &[], ""));
    let duplicate = ("zz-duplicate.toml", fixture("Good", "ok", "", ""));
    let h = harness(
        &[
            good,
            bad_key,
            wrong_world,
            missing,
            not_component,
            escape,
            duplicate,
        ],
        |_| {},
    )
    .await;
    // Written after start would not count; these exist before the restart below.
    std::fs::write(h.plugins_dir().join("garbage.wasm"), b"\0asm not really").unwrap();
    let outside = h.dir.path().join("outside.wasm");
    std::fs::copy(guest("misbehave"), &outside).unwrap();
    std::os::unix::fs::symlink(&outside, h.plugins_dir().join("escape.wasm")).unwrap();
    let h = h.restart(|_| {}).await;

    let loaded: Vec<_> = h
        .remediator
        .plugins()
        .iter()
        .map(|p| p.manifest.name.clone())
        .collect();
    assert_eq!(loaded, ["Good"]);
    let rejected: Vec<(String, String)> = h
        .events(&["plugin_rejected"])
        .iter()
        .map(|e| {
            (
                e["file"].as_str().unwrap().to_owned(),
                e["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    // Rejections of the second start (the first start lacked garbage/escape files too).
    let last: Vec<_> = rejected[rejected.len() - 6..].to_vec();
    let reason = |file: &str| {
        last.iter()
            .find(|(f, _)| f == file)
            .map(|(_, r)| r.clone())
            .unwrap_or_default()
    };
    assert!(reason("bad-key.toml").contains("sockets"), "{last:#?}");
    assert!(reason("wrong.toml").contains("does not implement"), "{last:#?}");
    assert!(reason("missing.toml").contains("nope.wasm"), "{last:#?}");
    assert!(
        reason("garbage.toml").contains("not a valid WebAssembly component"),
        "{last:#?}"
    );
    assert!(reason("escape.toml").contains("escape.wasm"), "{last:#?}");
    assert!(reason("zz-duplicate.toml").contains("already used"), "{last:#?}");

    h.process(json!([opted_in("Good")])).await;
    assert_eq!(h.only("action_dry_run")["output"], "ok");
}

#[tokio::test]
async fn the_compile_cache_is_used_at_the_next_start() {
    let private_cache =
        |c: &mut autoheal::config::RawConfig| c.cache_dir = c.audit_path.with_file_name("cache");
    let h = harness(&[("a.toml", fixture("A", "ok", "", ""))], private_cache).await;
    let h = h.restart(private_cache).await;
    let loaded = h.events(&["plugin_loaded"]);
    let from_cache: Vec<bool> = loaded
        .iter()
        .map(|e| e["from_cache"].as_bool().unwrap())
        .collect();
    assert_eq!(from_cache, [false, true], "{loaded:#?}");

    // A damaged artifact is detected and recompiled, never deserialized.
    let cache = h.dir.path().join("cache");
    for entry in std::fs::read_dir(&cache).unwrap() {
        let path = entry.unwrap().path();
        // The artifacts; `incremental/` holds the compiler's functions,
        // which incremental_cache.rs damages and checks.
        if path.is_dir() {
            continue;
        }
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&path, bytes).unwrap();
    }
    let h = h.restart(private_cache).await;
    assert_eq!(h.events(&["plugin_loaded"]).last().unwrap()["from_cache"], false);
    h.process(json!([opted_in("A")])).await;
    assert_eq!(h.only("action_dry_run")["output"], "ok");
}
