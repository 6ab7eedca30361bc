//! `cargo bench -p autoheal-core --bench scan`: reading the trail backwards
//! (as every start does, for cooldowns and the breaker) over one huge line
//! and over a million ordinary events; then `GET /audit`'s `read_tail` on a
//! mixed million-event trail for each filter, against parsing every line
//! (what `read_tail` did before its byte-level look).

use std::ops::ControlFlow;
use std::time::Instant;

use autoheal_core::audit::{AuditFilter, read_tail, scan_backwards};

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

    audit_queries(&path);
}

/// A million events, oldest first: 90 % `decision_skip`, 10 % `action_ok`,
/// one in a thousand about `DiskFull`, one `ack` (a rare kind) among the
/// first hundred; `ts` rises by 1 ms per event.
fn mixed_trail(path: &std::path::Path) {
    use std::fmt::Write;
    let mut text = String::with_capacity(230 << 20);
    for i in 0..1_000_000u64 {
        let ts = 1_796_000_000.0 + i as f64 / 1000.0;
        let alertname = if i % 1000 == 7 {
            "DiskFull"
        } else {
            "TcpEndpointDownFast"
        };
        let kind = match i {
            50 => "ack",
            _ if i % 10 == 3 => "action_ok",
            _ => "decision_skip",
        };
        writeln!(
            text,
            r#"{{"alertname":"{alertname}","detail":"alert has no annotation autoheal: \"true\"","fingerprint":"{i:016x}","id":{id},"kind":"{kind}","reason":"not_annotated","status":"firing","ts":{ts}}}"#,
            id = i + 1
        )
        .unwrap();
    }
    std::fs::write(path, text).unwrap();
}

fn median_of(runs: usize, mut f: impl FnMut() -> usize) -> (usize, std::time::Duration) {
    let mut times = Vec::new();
    let mut found = 0;
    for _ in 0..runs {
        let started = Instant::now();
        found = f();
        times.push(started.elapsed());
    }
    times.sort();
    (found, times[runs / 2])
}

fn audit_queries(path: &std::path::Path) {
    mixed_trail(path);
    println!(
        "\nGET /audit's read_tail, n=200, on 1,000,000 mixed events ({} MiB), median of 5:\n",
        std::fs::metadata(path).unwrap().len() >> 20
    );
    println!("| filter | events | read_tail | parse every line (before) | before / now |");
    println!("|---|---|---|---|---|");
    let since = 1_796_000_000.0 + 990_000.0 / 1000.0;
    let filters: [(&str, AuditFilter); 6] = [
        ("none (`n` only)", AuditFilter::default()),
        ("common kind (`decision_skip`)", kinds(&["decision_skip"])),
        ("rare kind (`ack`, 1 event, near the start)", kinds(&["ack"])),
        ("absent kind (`approval_granted`)", kinds(&["approval_granted"])),
        (
            "`alertname=DiskFull` + `since` (last 10,000 events)",
            AuditFilter {
                alertname: Some("DiskFull".into()),
                since: Some(since),
                ..AuditFilter::default()
            },
        ),
        (
            "`contains=diskfull`",
            AuditFilter {
                contains: Some("diskfull".into()),
                ..AuditFilter::default()
            },
        ),
    ];
    for (name, filter) in filters {
        let (found, now) = median_of(5, || read_tail(path, &filter, 200).unwrap().len());
        let (_, before) = median_of(5, || parse_every_line(path, &filter, 200));
        println!(
            "| {name} | {found} | {:.1} ms | {:.1} ms | {:.0}x |",
            now.as_secs_f64() * 1e3,
            before.as_secs_f64() * 1e3,
            before.as_secs_f64() / now.as_secs_f64()
        );
    }
}

fn kinds(kinds: &[&str]) -> AuditFilter {
    AuditFilter {
        kinds: kinds.iter().map(|k| k.to_string()).collect(),
        ..AuditFilter::default()
    }
}

/// The cost of the old `read_tail`: every line scanned is parsed, then
/// filtered (a lower bound of it: the filter check here is cheaper).
fn parse_every_line(path: &std::path::Path, filter: &AuditFilter, n: usize) -> usize {
    let mut found = 0;
    scan_backwards(path, |line| {
        let Ok(event) = serde_json::from_slice::<serde_json::Value>(line) else {
            return ControlFlow::Continue(());
        };
        if let Some(since) = filter.since
            && event["ts"].as_f64().unwrap_or(0.0) < since
        {
            return ControlFlow::Break(());
        }
        let kind_ok = filter.kinds.is_empty() || filter.kinds.iter().any(|k| event["kind"] == k.as_str());
        let name_ok = filter
            .alertname
            .as_ref()
            .is_none_or(|a| event["alertname"] == a.as_str());
        let text_ok = filter.contains.as_ref().is_none_or(|c| {
            String::from_utf8_lossy(line)
                .to_lowercase()
                .contains(&c.to_lowercase())
        });
        if kind_ok && name_ok && text_ok {
            found += 1;
        }
        if found >= n {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })
    .unwrap();
    found
}
