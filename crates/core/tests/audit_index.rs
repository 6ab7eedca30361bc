//! `GET /audit`'s index: lines found at start and lines the writer appends
//! answer every kind and alertname filter as a scan of the file does.

use autoheal_core::audit::{AuditFilter, AuditLog, FsyncPolicy, read_tail, read_tail_as_written};
use autoheal_core::event::{Event, EventKind};
use serde_json::Value;
use serde_json::value::RawValue;

const OLD_TRAIL: &str = include_str!("fixtures/audit-before-typed-events.jsonl");

fn filters(alertnames: &[String]) -> Vec<AuditFilter> {
    let mut filters = Vec::new();
    for kind in EventKind::ALL {
        filters.push(AuditFilter {
            kinds: vec![kind.as_str().to_owned()],
            ..AuditFilter::default()
        });
        for alertname in alertnames {
            filters.push(AuditFilter {
                kinds: vec![kind.as_str().to_owned(), "action_ok".to_owned()],
                alertname: Some(alertname.clone()),
                ..AuditFilter::default()
            });
        }
    }
    for alertname in alertnames {
        filters.push(AuditFilter {
            alertname: Some(alertname.clone()),
            ..AuditFilter::default()
        });
    }
    filters.push(AuditFilter {
        kinds: vec!["no_such_kind".to_owned()],
        ..AuditFilter::default()
    });
    filters.push(AuditFilter {
        alertname: Some("NoSuchAlert".to_owned()),
        ..AuditFilter::default()
    });
    filters
}

#[test]
fn the_index_answers_as_the_file_does_before_and_after_a_restart() {
    let events: Vec<Event> = OLD_TRAIL
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut alertnames: Vec<String> = events
        .iter()
        .filter_map(|e| e.alertname().map(str::to_owned))
        .collect();
    alertnames.sort();
    alertnames.dedup();
    assert!(alertnames.len() >= 2, "the fixture names several alerts");

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    // Half the trail is there at start (with a line that is not an event,
    // and one written with spaces, as the original system did); the writer
    // appends the rest.
    let lines: Vec<&str> = OLD_TRAIL.lines().collect();
    let (before, after) = lines.split_at(events.len() / 2);
    let spaced =
        r#"{"ts": 1.0, "kind": "action_ok", "alertname": "Spaced", "cmd": "docker restart crm-api"}"#;
    std::fs::write(&path, format!("{}\nnot an event\n{spaced}\n", before.join("\n"))).unwrap();
    alertnames.push("Spaced".to_owned());

    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let check = |log: &AuditLog| {
        for filter in filters(&alertnames) {
            for n in [1, 3, 5000] {
                let indexed = log.read_tail(&filter, n).unwrap();
                let scanned = read_tail_as_written(&path, &filter, n).unwrap();
                let text =
                    |lines: &[Box<RawValue>]| lines.iter().map(|l| l.get().to_owned()).collect::<Vec<_>>();
                assert_eq!(text(&indexed), text(&scanned), "{filter:?} n={n}");
                // As written, and the same events as the parsed answer.
                let parsed: Vec<Value> = indexed
                    .iter()
                    .map(|l| serde_json::from_str(l.get()).unwrap())
                    .collect();
                assert_eq!(parsed, read_tail(&path, &filter, n).unwrap(), "{filter:?} n={n}");
            }
        }
    };
    {
        let (log, _) = AuditLog::open(&path, FsyncPolicy::Never, None).unwrap();
        check(&log);
        let first_new = log.next_id();
        let mut appended_kinds = Vec::new();
        for line in after {
            let event: Event = serde_json::from_str(line).unwrap();
            appended_kinds.push(event.kind());
            log.emit(event.body);
        }
        runtime.block_on(log.flush()).unwrap();
        check(&log);
        // The newest of each appended kind is a line the writer added.
        for kind in appended_kinds {
            let filter = AuditFilter {
                kinds: vec![kind.as_str().to_owned()],
                ..AuditFilter::default()
            };
            let newest: Value = serde_json::from_str(log.read_tail(&filter, 1).unwrap()[0].get()).unwrap();
            assert!(newest["id"].as_u64().unwrap() >= first_new, "{kind:?}");
        }
    }
    // A restart rebuilds the index from the file alone.
    let (log, _) = AuditLog::open(&path, FsyncPolicy::Never, None).unwrap();
    check(&log);
}

#[test]
fn names_past_the_table_bound_are_still_found() {
    // A decision_skip to copy, renamed per line.
    let skip: Event = OLD_TRAIL
        .lines()
        .map(|l| serde_json::from_str::<Event>(l).unwrap())
        .find(|e| e.kind() == EventKind::DecisionSkip)
        .unwrap();
    let named = |name: &str| {
        let mut body = skip.body.clone();
        let autoheal_core::event::EventBody::DecisionSkip(e) = &mut body else {
            unreachable!()
        };
        e.alertname = name.to_owned();
        body
    };
    // More unique names than the table holds, some longer than it keeps,
    // half in the file at start and half appended; early names come back
    // after the table is full.
    let name = |i: usize| match i % 50 {
        0 => format!("Long{i}{}", "x".repeat(4096)),
        _ => format!("Alert{i}"),
    };
    let total = 6_000;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    {
        let (log, _) = AuditLog::open(&path, FsyncPolicy::Never, None).unwrap();
        log.emit_all((0..total / 2).map(|i| named(&name(i))).collect());
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(log.flush())
            .unwrap();
    }
    let (log, _) = AuditLog::open(&path, FsyncPolicy::Never, None).unwrap();
    log.emit_all((total / 2..total).map(|i| named(&name(i))).collect());
    log.emit_all((0..20).map(|i| named(&name(i))).collect());
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(log.flush())
        .unwrap();

    let probes: Vec<String> = [0, 1, 2, 11, 2999, 3000, 3001, 4000, 4650, 5555, 5950, 5999]
        .into_iter()
        .map(name)
        .chain(["NoSuchAlert".to_owned()])
        .collect();
    let check = |log: &AuditLog| {
        for probe in &probes {
            for kinds in [
                vec![],
                vec!["decision_skip".to_owned()],
                vec!["action_ok".to_owned()],
            ] {
                let filter = AuditFilter {
                    kinds,
                    alertname: Some(probe.clone()),
                    ..AuditFilter::default()
                };
                let indexed = log.read_tail(&filter, 10).unwrap();
                let scanned = read_tail_as_written(&path, &filter, 10).unwrap();
                let text =
                    |lines: &[Box<RawValue>]| lines.iter().map(|l| l.get().to_owned()).collect::<Vec<_>>();
                assert_eq!(text(&indexed), text(&scanned), "{:.40} {:?}", probe, filter.kinds);
                let expected = match probe.strip_prefix("Alert").or(probe.strip_prefix("Long")) {
                    _ if filter.kinds == ["action_ok"] => 0,
                    Some(_) if probes[..4].contains(probe) => 2,
                    Some(_) => 1,
                    None => 0,
                };
                assert_eq!(indexed.len(), expected, "{:.40} {:?}", probe, filter.kinds);
            }
        }
    };
    check(&log);
    drop(log);
    // A restart rebuilds the table from the file, to the same bound.
    let (log, _) = AuditLog::open(&path, FsyncPolicy::Never, None).unwrap();
    check(&log);
}
