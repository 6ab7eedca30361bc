//! Trails written before the typed event keep working: every line of a
//! trail of every kind, written by the string-keyed events of autoheal
//! before this type, parses as a typed event and is written back byte for
//! byte.

use std::collections::BTreeSet;

use autoheal_core::event::{Event, EventKind};

const OLD_TRAIL: &str = include_str!("fixtures/audit-before-typed-events.jsonl");

#[test]
fn every_line_of_an_old_trail_is_written_back_identically() {
    for (number, line) in OLD_TRAIL.lines().enumerate() {
        let event: Event =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("line {}: {e}\n{line}", number + 1));
        let written = serde_json::to_string(&event).unwrap();
        assert_eq!(written, line, "line {} changed", number + 1);
        let kind: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(kind["kind"], event.kind().as_str(), "line {}", number + 1);
    }
}

/// Kinds added after the fixture was written; they have no old lines to keep.
const ADDED_SINCE: &[&str] = &[
    "auth_failed",
    "mode_changed",
    "restart_intent",
    "effect_intent",
    "action_interrupted",
    "audit_recovered",
    "approval_requested",
    "approval_recorded",
    "approval_granted",
    "approval_denied",
    "approval_expired",
    "approval_cancelled",
    "remediation_verified",
    "remediation_ineffective",
    "action_skipped",
    "remediation_watched",
    "action_queued",
    "action_dropped",
    "pause_started",
    "pause_ended",
    "window_opened",
    "window_closed",
    "alert_deferred",
    "deferred_due",
    "audit_rotated",
    "signed_in",
    "signed_out",
];

#[test]
fn a_signed_in_line_is_written_back_identically() {
    let line = r#"{"id":11,"ts":1796602542.0,"kind":"signed_in","by":"alice","by_kind":"person","by_name":"Alice Liddell","groups":["sre"]}"#;
    let event: Event = serde_json::from_str(line).unwrap();
    assert_eq!(event.kind(), EventKind::SignedIn);
    assert_eq!(serde_json::to_string(&event).unwrap(), line);
}

/// An `action_skipped` as the host writes it: read and written back byte
/// for byte, its cooldown fields included.
#[test]
fn an_action_skipped_line_is_written_back_identically() {
    let line = r#"{"id":7,"ts":1796602540.5,"kind":"action_skipped","alertname":"ContainerUnhealthy","calls":[{"capability":"containers.inspect","outcome":"ok","target":"crm-api"}],"cooldown_key":"restart-unhealthy-crm-api|ContainerUnhealthy","cooldown_until":1796602540.49,"dry_run":false,"duration_ms":1.25,"fingerprint":"47d40e4dcd0a59d6","logs":[],"output":"crm-api is healthy","plugin":"restart-unhealthy-crm-api","plugin_version":"0.1.0","status":"firing","targets":[]}"#;
    let event: Event = serde_json::from_str(line).unwrap();
    assert_eq!(event.kind(), EventKind::ActionSkipped);
    assert_eq!(serde_json::to_string(&event).unwrap(), line);
}

/// A `remediation_watched` as the host writes it (the alert as received,
/// the chain, the deadline): read and written back byte for byte, so that
/// a restart resumes exactly the watch that was begun.
#[test]
fn a_remediation_watched_line_is_written_back_identically() {
    let line = r#"{"id":9,"ts":1796602541.0,"kind":"remediation_watched","alert":{"status":"firing","labels":{"alertname":"TcpEndpointDownFast","instance":"crm-api:8000"},"annotations":{"autoheal":"true"},"startsAt":"2026-12-07T01:00:00Z","generatorURL":"","fingerprint":"47d40e4dcd0a59d6"},"alertname":"TcpEndpointDownFast","chain":{"chain":["restart-crm-api","restart-by-label"],"step":1,"within_sec":60.0},"deadline":1796602600.5,"dry_run":false,"fingerprint":"47d40e4dcd0a59d6","plugin":"restart-crm-api","started_at":1796602540.5}"#;
    let event: Event = serde_json::from_str(line).unwrap();
    assert_eq!(event.kind(), EventKind::RemediationWatched);
    assert_eq!(serde_json::to_string(&event).unwrap(), line);
}

#[test]
fn the_old_trail_holds_every_kind() {
    let seen: BTreeSet<&str> = OLD_TRAIL
        .lines()
        .map(|line| serde_json::from_str::<Event>(line).unwrap().kind().as_str())
        .collect();
    let all: BTreeSet<&str> = EventKind::ALL
        .iter()
        .map(|k| k.as_str())
        .filter(|k| !ADDED_SINCE.contains(k))
        .collect();
    assert_eq!(seen, all);
}

#[test]
fn kind_names_are_the_serde_names() {
    for kind in EventKind::ALL {
        assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str());
    }
}

#[test]
fn skip_and_denial_reason_names_are_the_serde_names() {
    use autoheal_core::event::{DenialReason, SkipReason};
    let skips = [
        SkipReason::NotAnnotated,
        SkipReason::NoPlugin,
        SkipReason::Resolved,
        SkipReason::Cooldown,
        SkipReason::NotMatched,
        SkipReason::Overloaded,
        SkipReason::Budget,
        SkipReason::AwaitingApproval,
        SkipReason::Claimed,
        SkipReason::Paused,
        SkipReason::RepeatCap,
    ];
    for reason in skips {
        assert_eq!(serde_json::to_value(reason).unwrap(), reason.as_str());
    }
    for reason in [DenialReason::NotAllowed, DenialReason::CircuitOpen] {
        assert_eq!(serde_json::to_value(reason).unwrap(), reason.as_str());
    }
}
