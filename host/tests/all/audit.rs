//! The audit trail across restarts: ids continue, a torn last line is set
//! aside, cooldowns come back.

use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn ids_continue_after_reopening() {
    let h = harness(&[], |_| {}).await;
    h.process(json!([opted_in("A")])).await;
    let before: Vec<u64> = h.events(&[]).iter().map(|e| e["id"].as_u64().unwrap()).collect();
    let h = h.restart(|_| {}).await;
    h.process(json!([opted_in("A")])).await;
    let after: Vec<u64> = h.events(&[]).iter().map(|e| e["id"].as_u64().unwrap()).collect();
    assert!(after.len() > before.len());
    assert_eq!(&after[..before.len()], &before[..]);
    let expected: Vec<u64> = (1..=after.len() as u64).collect();
    assert_eq!(after, expected, "ids are 1, 2, 3, ... with no gap or repeat");
}

#[tokio::test]
async fn a_torn_last_line_is_set_aside_with_a_warning() {
    let h = harness(&[], |_| {}).await;
    h.process(json!([opted_in("A")])).await;
    let last_id = h.events(&[]).last().unwrap()["id"].as_u64().unwrap();
    let torn = br#"{"id":999,"ts":1.0,"kind":"action_o"#;
    {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(h.audit_path())
            .unwrap();
        file.write_all(torn).unwrap();
    }
    let h = h.restart(|_| {}).await;
    let warning = h.only("audit_recovered");
    assert_eq!(warning["bytes"], torn.len());
    assert_eq!(
        warning["id"],
        last_id + 1,
        "the torn line's id must not be reused or skipped to"
    );
    let set_aside = warning["set_aside"].as_str().unwrap();
    assert_eq!(std::fs::read(set_aside).unwrap(), torn);
    // Every line of the trail is whole JSON again.
    let text = std::fs::read_to_string(h.audit_path()).unwrap();
    assert!(text.ends_with('\n'));
    for line in text.lines() {
        serde_json::from_str::<serde_json::Value>(line).unwrap();
    }
}

#[tokio::test]
async fn cooldowns_are_rebuilt_after_a_restart() {
    let plugins = [("crm.toml", bundled_manifest())];
    let h = harness(&plugins, |_| {}).await;
    h.process(json!([opted_in("TcpEndpointDownFast")])).await;
    assert_eq!(h.events(&["action_dry_run"]).len(), 1);
    let h = h.restart(|_| {}).await;
    assert_eq!(
        h.events(&["host_started"]).last().unwrap()["cooldowns_restored"],
        1
    );
    let decisions = h.process(json!([opted_in("TcpEndpointDownFast")])).await;
    assert_eq!(decisions[0]["reason"], "cooldown", "{decisions:?}");
    assert!(decisions[0]["remaining_sec"].as_u64().unwrap() > 590);
    // Another alert of the same plugin is not cooling down.
    let decisions = h.process(json!([opted_in("UptimeProbeFailing")])).await;
    assert_eq!(decisions[0]["decision"], "act");
}
