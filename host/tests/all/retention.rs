//! A trail that never fills the disk: it rolls into compressed segments,
//! a cooldown recorded in a rolled segment still holds after a restart,
//! `GET /audit` reads back across segments, the disk metrics are exported
//! and shown on `GET /`, retention keeps a small tmpfs from filling while
//! the host goes on answering, and `autoheal serve` aborted at each step of
//! a rotation (`AUTOHEAL_TEST_ROTATION_CRASH`) loses nothing.

use std::ops::ControlFlow;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use autoheal_core::audit::{ROTATION_STEPS, list_segments, scan_backwards, total_bytes};
use autoheal_core::event::{EventBody, HostWarning, Warning};
use axum::body::Body;
use axum::http::Request;
use serde_json::{Value, json};

use crate::diskfull::SmallDisk;
use crate::real::{free_port, http};
use crate::support::*;

fn padding(i: usize) -> EventBody {
    EventBody::HostWarning(HostWarning {
        detail: Some(format!("padding {i}: {}", "p".repeat(200))),
        ..HostWarning::bare(Warning::HostStopping)
    })
}

/// Every id in the trail at `path` (live file and segments), oldest first.
fn all_ids(path: &Path) -> Vec<u64> {
    let mut ids = Vec::new();
    scan_backwards(path, |line| {
        let event: Value =
            serde_json::from_slice(line).unwrap_or_else(|e| panic!("a line that is not JSON: {e}"));
        ids.push(event["id"].as_u64().expect("every event has an id"));
        ControlFlow::Continue(())
    })
    .unwrap();
    ids.reverse();
    ids
}

async fn get(h: &Harness, path: &str) -> Value {
    let request = Request::get(path)
        .header("authorization", authorization_for(path))
        .body(Body::empty())
        .unwrap();
    let (status, body) = h.send(request).await;
    assert_eq!(status, 200, "{path}: {body}");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cooldown_in_a_rolled_segment_holds_after_a_restart_and_reads_span_segments() {
    let small = |c: &mut autoheal::config::RawConfig| {
        real(c);
        c.audit.max_bytes = "64KiB".into();
    };
    let h = harness(&[crm_plugin()], small).await;
    let decisions = h.process(json!([opted_in("TcpEndpointDownFast")])).await;
    assert_eq!(decisions[0]["decision"], "act", "{decisions:?}");
    assert_eq!(h.fake.restarts().len(), 1);
    let acted: Value = h.only("action_ok");

    // Enough other events that the action is two rotations back.
    let path = h.audit_path();
    let mut i = 0;
    while list_segments(&path).unwrap().len() < 2 {
        h.host.audit.emit(padding(i));
        i += 1;
        if i % 100 == 0 {
            h.host.audit.flush().await.unwrap();
        }
        assert!(i < 10_000, "the trail did not roll");
    }
    h.host.audit.flush().await.unwrap();
    let segments = list_segments(&path).unwrap();
    assert!(segments.iter().all(|s| s.compressed), "{segments:?}");
    let live = std::fs::read_to_string(&path).unwrap();
    assert!(
        !live.contains("\"kind\":\"action_ok\""),
        "the action is in a segment now"
    );

    // GET /audit finds it through the index's kind filter, then the segments,
    // and a `since` older than the live file answers.
    let found = get(&h, "/audit?kind=action_ok").await;
    assert_eq!(found["events"][0]["id"], acted["id"], "{found}");
    let since = get(
        &h,
        &format!("/audit?kind=action_ok,audit_rotated&since={}", acted["ts"]),
    )
    .await;
    let kinds: Vec<&str> = since["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.first(), Some(&"action_ok"), "{kinds:?}");
    assert!(
        kinds.iter().filter(|k| **k == "audit_rotated").count() >= 2,
        "{kinds:?}"
    );

    // The disk is measured: the trail across its segments, and free space.
    let metrics = h.metrics_text().await;
    let trail = sample(&metrics, "autoheal_audit_bytes");
    assert!(trail > 0.0);
    assert!(
        (trail - total_bytes(&path).unwrap() as f64).abs() < 64.0 * 1024.0,
        "{trail}"
    );
    assert!(sample(&metrics, "autoheal_audit_filesystem_free_bytes") > 0.0);
    let page = h.status_page().await;
    assert!(page["audit_bytes"].as_u64().unwrap() > 0, "{page}");
    assert!(
        page["audit_filesystem_free_bytes"].as_u64().unwrap() > 0,
        "{page}"
    );

    // After a restart the cooldown, recorded only in a rolled segment, holds,
    // and ids go on after the last.
    let last = *all_ids(&path).last().unwrap();
    let h = h.restart(small).await;
    let decisions = h.process(json!([opted_in("TcpEndpointDownFast")])).await;
    assert_eq!(decisions[0]["reason"], "cooldown", "{decisions:?}");
    assert_eq!(h.fake.restarts().len(), 1);
    let ids = all_ids(&path);
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "ids only go up across segments and a restart"
    );
    assert!(*ids.last().unwrap() > last);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_keeps_a_small_disk_from_filling_and_the_host_goes_on_answering() {
    let disk = SmallDisk::mount("2m");
    let path = disk.path().join("audit.jsonl");
    let on_disk = {
        let path = path.clone();
        move |c: &mut autoheal::config::RawConfig| {
            c.audit_path = path.clone();
            c.audit.max_bytes = "64KiB".into();
            c.audit.keep_segments = 3;
        }
    };
    let h = harness(&[], on_disk).await;
    // Leave 512 KiB; the metric sees it.
    let free = autoheal::audit_disk::measure(&path).free_bytes.unwrap();
    std::fs::write(
        disk.path().join("filler"),
        vec![0u8; (free - 512 * 1024) as usize],
    )
    .unwrap();
    let free = sample(&h.metrics_text().await, "autoheal_audit_filesystem_free_bytes");
    assert!(
        (256.0 * 1024.0..=600.0 * 1024.0).contains(&free),
        "{free} bytes free"
    );

    // Four times the free space written: rotation compresses and retention
    // removes, so every write succeeds.
    let mut written = 0usize;
    let mut i = 0;
    while written < 4 * 512 * 1024 {
        let event = h.host.audit.emit(padding(i));
        written += serde_json::to_string(&event).unwrap().len() + 1;
        i += 1;
        if i % 200 == 0 {
            h.host.audit.flush().await.unwrap();
            assert!(h.host.audit.is_writable(), "a write failed after {written} bytes");
        }
    }
    h.host.audit.flush().await.unwrap();
    assert!(h.host.audit.is_writable());
    let numbers: Vec<u32> = list_segments(&path).unwrap().iter().map(|s| s.number).collect();
    assert_eq!(numbers, [1, 2, 3]);
    let metrics = h.metrics_text().await;
    let trail = sample(&metrics, "autoheal_audit_bytes");
    assert!(
        trail < 160.0 * 1024.0,
        "the trail holds {trail} bytes after {written} written"
    );
    assert!(sample(&metrics, "autoheal_audit_filesystem_free_bytes") > 300.0 * 1024.0);

    // And the host still answers webhooks.
    let body = json!({ "version": "4", "status": "firing", "alerts": [opted_in("TcpEndpointDownFast")] })
        .to_string();
    let request = Request::post("/alert")
        .header("authorization", authorization_for("/alert"))
        .body(Body::from(body))
        .unwrap();
    let (status, reply) = h.send(request).await;
    assert_eq!(status, 200, "{reply}");
    drop(h);
}

/// `autoheal serve` on the trail in `dir`, rolling at 64 KiB; aborted at
/// `crash_at` of its first rotation when given.
fn serve(dir: &Path, addr: &str, crash_at: Option<&str>) -> std::process::Child {
    std::fs::write(dir.join("autoheal.toml"), "[audit]\nmax_bytes = \"64KiB\"\n").unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_autoheal"));
    command
        .args(["serve", "--listen", addr, "--config"])
        .arg(dir.join("autoheal.toml"))
        .arg("--plugins-dir")
        .arg(dir.join("plugins"))
        .arg("--audit-path")
        .arg(dir.join("audit.jsonl"))
        .arg("--cache-dir")
        .arg(dir.join("cache"))
        .env_remove("AUTOHEAL_ENABLED")
        .env_remove("AUTOHEAL_DRY_RUN")
        .env_remove("AUTOHEAL_TEST_ROTATION_CRASH")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(step) = crash_at {
        command.env("AUTOHEAL_TEST_ROTATION_CRASH", step);
    }
    command.spawn().unwrap()
}

fn wait_up(base: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !matches!(http(base, "GET", "/", ""), Ok((200, _))) {
        assert!(Instant::now() < deadline, "the host did not come up");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A webhook of 20 alerts nobody acts on: 21 events recorded.
fn storm() -> String {
    let alerts: Vec<Value> = (0..20)
        .map(|i| alert(&format!("Storm{i}"), "firing", json!({})))
        .collect();
    json!({ "version": "4", "status": "firing", "alerts": alerts }).to_string()
}

#[test]
fn a_host_aborted_at_each_step_of_a_rotation_loses_nothing_at_the_next_start() {
    for &step in ROTATION_STEPS {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("plugins")).unwrap();
        let path = dir.path().join("audit.jsonl");
        let addr = format!("127.0.0.1:{}", free_port());
        let base = format!("http://{addr}");

        let mut host = serve(dir.path(), &addr, Some(step));
        wait_up(&base);
        // Webhooks until the first rotation aborts the host.
        let mut answered = 0;
        let status = loop {
            if let Some(status) = host.try_wait().unwrap() {
                break status;
            }
            if let Ok((200, _)) = http(&base, "POST", "/alert", &storm()) {
                answered += 1;
            }
            assert!(answered < 500, "{step}: no rotation aborted the host");
        };
        assert_eq!(status.signal(), Some(libc::SIGABRT), "{step}: {status:?}");

        // What was there at the crash: every answered webhook is in the trail.
        let received = |path: &Path| {
            let mut count = 0;
            scan_backwards(path, |line| {
                let needle = b"\"kind\":\"webhook_received\"";
                count += usize::from(line.windows(needle.len()).any(|w| w == needle));
                ControlFlow::Continue(())
            })
            .unwrap();
            count
        };
        let mut host = serve(dir.path(), &addr, None);
        wait_up(&base);
        let (code, _) = http(&base, "POST", "/alert", &storm()).unwrap();
        assert_eq!(code, 200, "{step}");
        let _ = host.kill();
        let _ = host.wait();

        let ids = all_ids(&path);
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "{step}: every event once, in order ({} ids)",
            ids.len()
        );
        assert!(
            received(&path) > answered,
            "{step}: {answered} answered before the crash"
        );
        let leftovers: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{step}: {leftovers:?}");
    }
}

#[test]
fn autoheal_audit_file_reads_the_live_file_and_its_segments() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let rotation = autoheal_core::audit::Rotation {
        max_bytes: Some(16 * 1024),
        ..Default::default()
    };
    let (log, _) = autoheal_core::audit::AuditLog::open_with(
        &path,
        autoheal_core::audit::FsyncPolicy::Never,
        rotation,
        None,
    )
    .unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    for i in 0..400 {
        log.emit(padding(i));
        if i % 20 == 0 {
            runtime.block_on(log.flush()).unwrap();
        }
    }
    runtime.block_on(log.flush()).unwrap();
    drop(log);
    assert!(list_segments(&path).unwrap().len() >= 3);

    let output = Command::new(env!("CARGO_BIN_EXE_autoheal"))
        .args(["audit", "--file"])
        .arg(&path)
        .args(["--kind", "host_warning", "-n", "5000", "--json"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let ids: Vec<u64> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            serde_json::from_str::<Value>(line).unwrap()["id"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(ids.len(), 400, "every padding event, from the segments too");
    assert!(ids.windows(2).all(|w| w[0] < w[1]));
}
