//! `cargo bench -p autoheal-core --bench scan`: reading the trail backwards
//! (as every start does, for cooldowns and the breaker) over one huge line
//! and over a million ordinary events. `GET /audit` on big trails is the
//! host's `audit` bench.

use std::ops::ControlFlow;
use std::time::Instant;

use autoheal_core::audit::scan_backwards;

fn time_scan(path: &std::path::Path) -> (usize, std::time::Duration) {
    let started = Instant::now();
    let mut lines = 0;
    scan_backwards(path, |_| {
        lines += 1;
        ControlFlow::Continue(())
    })
    .unwrap();
    (lines, started.elapsed())
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");

    let huge = format!("{{\"id\":2,\"kind\":\"x\",\"v\":\"{}\"}}", "z".repeat(134 << 20));
    std::fs::write(&path, format!("{{\"id\":1}}\n{huge}\n")).unwrap();
    let (lines, took) = time_scan(&path);
    println!("one 134 MiB line: {lines} lines in {took:?}");

    let event = r#"{"alertname":"TcpEndpointDownFast","detail":"alert has no annotation autoheal: \"true\"","fingerprint":"717fc25c13187b79","id":1,"kind":"decision_skip","reason":"not_annotated","status":"firing","ts":1796223724.39}"#;
    let mut text = String::with_capacity(event.len() * 1_000_001);
    for _ in 0..1_000_000 {
        text.push_str(event);
        text.push('\n');
    }
    std::fs::write(&path, text).unwrap();
    let (lines, took) = time_scan(&path);
    println!(
        "1,000,000 events ({} MiB): {lines} lines in {took:?}",
        std::fs::metadata(&path).unwrap().len() >> 20
    );
}
