//! A full disk under the audit trail (a small tmpfs): no action without a
//! record, 503s while it is full, no torn or glued lines, recovery by itself
//! when space returns, cooldowns intact across a restart.

use std::path::{Path, PathBuf};
use std::process::Command;

use axum::body::Body;
use axum::http::Request;
use serde_json::{Value, json};

use crate::support::*;

/// A tmpfs of `size`, unmounted on drop.
pub(crate) struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    pub(crate) fn mount(size: &str) -> SmallDisk {
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("mount runs (the suite runs as root)");
        assert!(status.success(), "mount a tmpfs (the suite runs as root)");
        SmallDisk { dir }
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Fills what is left with a file; returns it.
    fn fill(&self) -> PathBuf {
        use std::io::Write;
        let filler = self.path().join("filler");
        let mut file = std::fs::File::create(&filler).unwrap();
        // Pages, then single bytes: not one byte left.
        let chunk = vec![0u8; 4096];
        while file.write_all(&chunk).is_ok() {}
        while file.write_all(&[0]).is_ok() {}
        let _ = file.flush();
        filler
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

/// A firing alert for `instance` (each instance has its own cooldown).
async fn post_alert(h: &Harness, instance: &str) -> (u16, Value) {
    let mut alert = opted_in("TcpEndpointDownFast");
    alert["labels"]["instance"] = json!(instance);
    let body = json!({ "version": "4", "status": "firing", "alerts": [alert] }).to_string();
    let request = Request::post("/alert")
        .header("authorization", authorization_for("/alert"))
        .body(Body::from(body))
        .unwrap();
    h.send(request).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_stops_actions_until_space_returns_and_corrupts_nothing() {
    let disk = SmallDisk::mount("256k");
    let audit_path = disk.path().join("audit.jsonl");
    let on_disk = {
        let audit_path = audit_path.clone();
        move |c: &mut autoheal::config::RawConfig| {
            real(c);
            c.audit_path = audit_path.clone();
            // Counted here by intents, not held back by the breaker.
            c.circuit_breaker.max_restarts = 100;
        }
    };
    let h = harness(
        // Each alert restarts for real (no joining): restarts and intents are counted.
        &[crm_plugin_with(&format!(
            "[cooldown_key]\nlabels = [\"instance\"]\n{NO_TARGET_COOLDOWN}"
        ))],
        on_disk.clone(),
    )
    .await;
    let filler = disk.fill();

    // The last page of the trail may still take a few lines (and a batch
    // that fails is rolled back, freeing its bytes again), so post until
    // the first 503; each webhook is finished before the next one.
    let mut answers = Vec::new();
    for i in 0..50 {
        let (status, reply) = post_alert(&h, &format!("full-{i}")).await;
        answers.push(status);
        if status == 503 {
            assert!(
                reply["error"]
                    .as_str()
                    .unwrap()
                    .contains("audit trail cannot be written"),
                "{reply}"
            );
            break;
        }
        h.remediator.drain().await;
    }
    assert_eq!(answers.last(), Some(&503), "{answers:?}");
    // Nothing else is pending: the host says the trail cannot be written.
    assert!(!h.host.audit.is_writable());
    let page = h.status_page().await;
    assert_eq!(page["audit_writable"], false);
    h.remediator.drain().await;
    // Every restart that happened has its committed intent.
    let intents = |path: &Path| {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .filter(|l| l.contains("\"kind\":\"restart_intent\""))
            .count()
    };
    assert_eq!(
        h.fake.restarts().len(),
        intents(&audit_path),
        "an action without a record"
    );
    let before = h.fake.restarts().len();

    // Space comes back: the next webhook is recorded and acted on.
    std::fs::remove_file(filler).unwrap();
    let (status, reply) = post_alert(&h, "recovered").await;
    assert_eq!(status, 200, "{reply}");
    h.remediator.drain().await;
    assert_eq!(h.fake.restarts().len(), before + 1);
    assert_eq!(
        h.fake.restarts().len(),
        intents(&audit_path),
        "{}",
        std::fs::read_to_string(&audit_path)
            .unwrap()
            .lines()
            .map(|l| &l[..l.len().min(160)])
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(h.host.audit.is_writable());

    // Every line of the trail is whole, and ids only go up.
    let text = std::fs::read_to_string(&audit_path).unwrap();
    let mut last = 0;
    for line in text.lines() {
        let event: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("torn line {line:?}: {e}"));
        let id = event["id"].as_u64().unwrap();
        assert!(id > last, "ids go up: {id} after {last}");
        last = id;
    }

    // After a restart the cooldown still holds: no second restart.
    let h = h.restart(on_disk).await;
    let (status, reply) = post_alert(&h, "recovered").await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["decisions"][0]["reason"], "cooldown");
    h.remediator.drain().await;
    assert_eq!(h.fake.restarts().len(), before + 1);
}
