//! Hot reload of the plugins directory, with the watcher running.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::real::wait_until;
use crate::support::*;

/// Writes a file the way deploy tools do: a temporary name, then a rename.
pub(crate) fn put(dir: &Path, name: &str, bytes: &[u8]) {
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, dir.join(name)).unwrap();
}

fn serving(h: &Harness, name: &str) -> Option<String> {
    h.remediator
        .plugins()
        .get(name)
        .map(|p| p.manifest.version.clone())
}

fn wait_for_version(h: &Harness, name: &str, version: Option<&str>) {
    wait_until(
        &format!("{name} to serve {version:?}"),
        Duration::from_secs(10),
        || (serving(h, name).as_deref() == version).then_some(()),
    );
}

fn versioned(version: &str, mode: &str) -> String {
    fixture("Reloaded", mode, "", "").replace("version = \"1.0.0\"", &format!("version = {version:?}"))
}

async fn answer(h: &Harness) -> Value {
    h.process(json!([opted_in("Reloaded")])).await;
    h.events(&["action_dry_run", "action_fail", "decision_skip"])
        .pop()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_change_break_fix_remove() {
    let h = harness(&[], |c| {
        c.cooldowns.insert("Reloaded".into(), 0);
    })
    .await;
    let _watch = autoheal::reload::watch(h.host.clone()).unwrap();
    let dir = h.plugins_dir();

    // Add: a new manifest (the component is already there) goes live.
    put(&dir, "reloaded.toml", versioned("1.0.0", "ok").as_bytes());
    wait_for_version(&h, "Reloaded", Some("1.0.0"));
    assert_eq!(answer(&h).await["output"], "ok");
    let loaded = h.events(&["plugin_loaded"]).pop().unwrap();
    assert_eq!(loaded["plugin"], "Reloaded");
    assert_eq!(loaded["version"], "1.0.0");
    assert!(loaded["component_hash"].as_str().unwrap().len() == 64);

    // Change: the new version answers.
    put(&dir, "reloaded.toml", versioned("2.0.0", "env").as_bytes());
    wait_for_version(&h, "Reloaded", Some("2.0.0"));
    assert_eq!(answer(&h).await["output"], "env=0 args=0");
    assert_eq!(
        h.events(&["plugin_loaded"]).pop().unwrap()["replaces_version"],
        "1.0.0"
    );

    // Break: a manifest that does not parse leaves 2.0.0 serving.
    let broken = versioned("3.0.0", "ok").replace("[capabilities]", "[capabilities]\nsockets = true");
    put(&dir, "reloaded.toml", broken.as_bytes());
    let rejected = wait_until("a rejection", Duration::from_secs(10), || {
        h.remediator.plugins().rejections().first().cloned()
    });
    assert!(rejected.reason.contains("sockets"), "{rejected:?}");
    h.remediator.drain().await;
    let event = h.events(&["plugin_rejected"]).pop().unwrap();
    assert_eq!(event["still_serving"], "2.0.0");
    assert_eq!(serving(&h, "Reloaded").as_deref(), Some("2.0.0"));
    assert_eq!(answer(&h).await["output"], "env=0 args=0");

    // Fix: the fixed file loads.
    put(&dir, "reloaded.toml", versioned("3.0.0", "ok").as_bytes());
    wait_for_version(&h, "Reloaded", Some("3.0.0"));
    assert!(h.remediator.plugins().rejections().is_empty());
    assert_eq!(answer(&h).await["output"], "ok");

    // Remove: unloaded, and the alert has no plugin any more.
    std::fs::remove_file(dir.join("reloaded.toml")).unwrap();
    wait_for_version(&h, "Reloaded", None);
    assert_eq!(answer(&h).await["reason"], "no_plugin");
    h.remediator.drain().await;
    assert_eq!(h.events(&["plugin_unloaded"]).pop().unwrap()["version"], "3.0.0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_written_in_place_is_not_loaded_half_written() {
    let h = harness(&[], |_| {}).await;
    let _watch = autoheal::reload::watch(h.host.clone()).unwrap();
    let dir = h.plugins_dir();
    let component = std::fs::read(guest("misbehave")).unwrap();
    let manifest = fixture("Copied", "ok", "", "").replace("misbehave.wasm", "copied.wasm");

    // The manifest arrives first, then the component is written in place in
    // two halves, as a slow copy would.
    put(&dir, "copied.toml", manifest.as_bytes());
    let half = component.len() / 2;
    std::fs::write(dir.join("copied.wasm"), &component[..half]).unwrap();
    wait_until(
        "the half-written component to be rejected",
        Duration::from_secs(10),
        || {
            h.remediator
                .plugins()
                .rejections()
                .iter()
                .find(|r| r.file == "copied.toml")
                .cloned()
        },
    );
    assert!(serving(&h, "Copied").is_none());
    {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(dir.join("copied.wasm"))
            .unwrap();
        file.write_all(&component[half..]).unwrap();
    }
    wait_for_version(&h, "Copied", Some("1.0.0"));
    h.process(json!([opted_in("Copied")])).await;
    assert_eq!(h.only("action_dry_run")["output"], "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invocation_running_during_a_swap_finishes_on_its_version() {
    let h = harness(&[("swap.toml", swap_manifest("1.0.0"))], real).await;
    // A slow engine keeps the first invocation inside its restart call.
    let slow =
        Arc::new(autoheal_containers::FakeRuntime::new().with_restart_delay(Duration::from_millis(1500)));
    slow.add_running("crm-api", Duration::from_secs(3600));
    let mut config = test_config(h.dir.path());
    real(&mut config);
    config.cooldowns.insert("Swap".into(), 0);
    let host = autoheal::app::start(config.validate().unwrap(), slow.clone())
        .await
        .unwrap();
    let _watch = autoheal::reload::watch(host.clone()).unwrap();
    let remediator = host.remediator.clone();
    let alert = || serde_json::from_value(json!([opted_in("Swap")])).unwrap();

    webhook(&remediator, alert()).await;
    // While it runs, version 2 replaces version 1.
    put(&h.plugins_dir(), "swap.toml", swap_manifest("2.0.0").as_bytes());
    wait_until("version 2 to serve", Duration::from_secs(10), || {
        (remediator.plugins().get("Swap")?.manifest.version == "2.0.0").then_some(())
    });
    webhook(&remediator, alert()).await;
    remediator.drain().await;

    let done = h.events(&["action_ok", "action_fail"]);
    let versions: Vec<&str> = done
        .iter()
        .map(|e| e["plugin_version"].as_str().unwrap())
        .collect();
    assert_eq!(versions, ["1.0.0", "2.0.0"], "{done:#?}");
    assert_eq!(slow.restarts().len(), 2);
}

fn swap_manifest(version: &str) -> String {
    fixture("Swap", "deny", "timeout_ms = 5000", "container = \"crm-api\"")
        .replace("version = \"1.0.0\"", &format!("version = {version:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_plugins_reload_rescans_without_a_watcher() {
    use axum::body::Body;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    let h = harness(&[], |c| c.watch_plugins = false).await;
    put(
        &h.plugins_dir(),
        "late.toml",
        fixture("Late", "ok", "", "").as_bytes(),
    );
    assert!(serving(&h, "Late").is_none(), "nothing watches the directory");
    let request = axum::http::Request::post("/plugins/reload")
        .header("authorization", authorization_for("/plugins/reload"))
        .body(Body::empty())
        .unwrap();
    let response = autoheal::http::router(h.host.clone())
        .oneshot(request)
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value =
        serde_json::from_slice(&response.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(body["loaded"], json!(["Late"]));
    assert_eq!(body["serving"], 1);
    assert_eq!(serving(&h, "Late").as_deref(), Some("1.0.0"));
}

/// `GET /` through the real router.
async fn status(h: &Harness) -> Value {
    let request = axum::http::Request::get("/")
        .header("authorization", authorization_for("/"))
        .body(axum::body::Body::empty())
        .unwrap();
    h.send(request).await.1
}

fn compiling_names(status: &Value) -> Vec<String> {
    status["plugin_compiling"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_owned())
        .collect()
}

/// The bundled Python component as a new plugin `Slow{n}` answering
/// `SlowDown{n}`, its bytes made its own (a custom section naming it) so
/// that each copy compiles rather than being read from the cache.
pub(crate) fn stage_python_copy(dir: &Path, n: usize) {
    let mut bytes = std::fs::read(guest("restart_unhealthy_py")).unwrap();
    let name = b"autoheal-test";
    let payload = format!("copy {n}");
    let size = 1 + name.len() + payload.len();
    assert!(size < 128, "one-byte LEB128 sizes");
    bytes.extend([0u8, size as u8, name.len() as u8]);
    bytes.extend(name);
    bytes.extend(payload.as_bytes());
    std::fs::write(dir.join(format!("slow{n}.wasm")), bytes).unwrap();
}

pub(crate) fn slow_manifest(n: usize) -> String {
    format!(
        "name = \"Slow{n}\"\nversion = \"1.0.0\"\ncomponent = \"slow{n}.wasm\"\n\
         [match]\nalertnames = [\"SlowDown{n}\"]\n[capabilities]\ncontainers = [\"crm-api\"]\n\
         [limits]\ntimeout_ms = 20000\n[config]\ncontainer_label = \"container\"\nmin_uptime_sec = \"60\"\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rust_plugin_dropped_in_beside_three_python_ones_goes_live_first_and_their_alerts_wait() {
    // A cache of its own: the Python components really compile (seconds
    // each), whatever other tests compiled before.
    let h = harness(&[], |c| {
        c.cache_dir = c.plugins_dir.with_file_name("cache");
        for n in 1..=3 {
            c.cooldowns.insert(format!("SlowDown{n}"), 0);
        }
        // No Alertmanager: a kept alert is not found resolved by whatever
        // one the machine runs.
        c.alertmanager_url = "http://127.0.0.1:9".into();
    })
    .await;
    let _watch = autoheal::reload::watch(h.host.clone()).unwrap();
    let dir = h.plugins_dir();
    for n in 1..=3 {
        stage_python_copy(&dir, n);
    }
    for n in 1..=3 {
        put(&dir, &format!("slow{n}.toml"), slow_manifest(n).as_bytes());
    }

    // GET / says what compiles, while it does: with two compile slots,
    // one Python component compiles at a time, the others wait.
    let mut shown = Value::Null;
    for _ in 0..1000 {
        shown = status(&h).await;
        if compiling_names(&shown).len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let listed = compiling_names(&shown);
    assert!(listed.len() >= 2, "{shown}");
    let compiling = &shown["plugin_compiling"][1];
    let waiting = compiling["name"].as_str().unwrap().to_owned();
    assert!(waiting.starts_with("Slow"), "{compiling}");
    assert_eq!(compiling["version"], "1.0.0");
    assert_eq!(compiling["file"], format!("{}.toml", waiting.to_lowercase()));
    assert!(
        compiling["component_bytes"].as_u64().unwrap() > 10_000_000,
        "{compiling}"
    );
    assert!(compiling["since"].as_f64().unwrap() > 0.0);

    // An alert for one of them meanwhile is kept for it, not skipped as if
    // there were no plugin.
    let alertname = waiting.replace("Slow", "SlowDown");
    h.process(json!([alert(
        &alertname,
        "firing",
        json!({ "autoheal": "true" })
    )]))
    .await;
    let kept = h.events(&["alert_deferred"]);
    assert_eq!(kept.len(), 1, "{kept:#?}");
    assert_eq!(kept[0]["plugin"], waiting.as_str());
    assert_eq!(kept[0]["retry"]["reason"], "plugin_compiling");
    let skip = h.events(&["decision_skip"]).pop().unwrap();
    assert_eq!(skip["plugin"], waiting.as_str());
    assert!(skip["detail"].as_str().unwrap().contains("compiling"), "{skip}");

    // A Rust plugin dropped in beside them does not wait for them.
    put(&dir, "fast.toml", fixture("Fast", "ok", "", "").as_bytes());
    // Generous for a loaded test machine; what is asserted is the order.
    wait_until("Fast to load", Duration::from_secs(120), || serving(&h, "Fast"));
    let meanwhile = compiling_names(&status(&h).await);
    assert!(!meanwhile.is_empty(), "a Python plugin compiles still");
    assert!(meanwhile.iter().all(|n| serving(&h, n).is_none()));

    // Then they load, and the alert kept is decided by its plugin.
    for n in 1..=3 {
        wait_until("the Python plugins to load", Duration::from_secs(600), || {
            serving(&h, &format!("Slow{n}"))
        });
    }
    // A plugin serves as its compile ends; its `plugin_loaded` is written
    // just after (on a loaded machine, read a moment later).
    let loaded: Vec<Value> = wait_until("the four plugin_loaded events", Duration::from_secs(30), || {
        let loaded = h.events(&["plugin_loaded"]);
        (loaded.len() >= 4).then_some(loaded)
    });
    let order: Vec<&str> = loaded.iter().map(|e| e["plugin"].as_str().unwrap()).collect();
    assert_eq!(order.len(), 4, "{order:?}");
    assert_ne!(order[3], "Fast", "the small one does not load last: {order:?}");
    let fast = loaded.iter().find(|e| e["plugin"] == "Fast").unwrap();
    assert_eq!(
        fast["queued_ms"], 0,
        "the small one took the slot kept for it: {fast}"
    );
    assert!(
        loaded.iter().any(|e| e["queued_ms"].as_u64().unwrap() > 0),
        "a Python one waited for the large slot: {loaded:#?}"
    );
    for python in loaded.iter().filter(|e| e["plugin"] != "Fast") {
        assert_eq!(python["from_cache"], false);
        assert!(python["compile_ms"].as_u64().unwrap() > 0, "{python}");
    }
    assert!(compiling_names(&status(&h).await).is_empty());
    let decided = wait_until("the kept alert to be decided", Duration::from_secs(30), || {
        h.events(&[
            "action_dry_run",
            "action_ok",
            "action_fail",
            "action_skipped",
            "decision_skip",
        ])
        .into_iter()
        .find(|e| e["plugin"] == waiting.as_str() && e["reason"] != "no_plugin")
    });
    assert_eq!(decided["alertname"], alertname.as_str(), "{decided}");
    assert_eq!(h.events(&["deferred_due"]).len(), 1);
}
