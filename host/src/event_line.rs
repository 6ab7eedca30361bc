//! An event of the audit trail as the CLI holds it, and as one line for
//! people: `2026-12-02T17:03:11Z  action_ok  CrmDown  restart-crm-api  crm-api  ok`.
//!
//! The CLI keeps each event as the host wrote it (`--json` prints that, so a
//! script sees every field, also of a newer host) and reads it as the typed
//! [`Event`], whose variants the printer matches. A line this build cannot
//! read as an `Event` — a kind a newer host added, or a line of the original
//! system's trail (no `id`, fewer fields) — is still shown, from an
//! [`EventOutline`]: the fields most kinds share, each read only if it has
//! the expected type, so the outline never fails on a JSON object.

use autoheal_core::event::{Event, EventBody, PauseEndReason, RetryReason};
use serde::Deserialize;
use serde_json::value::RawValue;

/// One event received from a host or read from a trail file.
pub(crate) struct ReceivedEvent {
    /// The line as written.
    pub(crate) raw: Box<RawValue>,
    /// What this build makes of it.
    pub(crate) reading: Reading,
}

/// An event read as its type, or only in outline.
pub(crate) enum Reading {
    /// A kind (and shape) this build knows.
    Typed(Box<Event>),
    /// A kind or a shape it does not.
    Outline(Box<EventOutline>),
}

impl ReceivedEvent {
    /// Reads `raw`, typed if it can be.
    pub(crate) fn new(raw: Box<RawValue>) -> Self {
        let reading = match serde_json::from_str::<Event>(raw.get()) {
            Ok(event) => Reading::Typed(Box::new(event)),
            Err(_) => Reading::Outline(Box::new(serde_json::from_str(raw.get()).unwrap_or_default())),
        };
        Self { raw, reading }
    }

    /// Its id (0 for a line without one: the original system wrote none).
    pub(crate) fn id(&self) -> u64 {
        match &self.reading {
            Reading::Typed(event) => event.id,
            Reading::Outline(outline) => outline.id.get().unwrap_or(0),
        }
    }
}

/// The fields an event of any kind may have, for one this build cannot read
/// as an [`Event`].
#[derive(Debug, Default, Deserialize)]
pub(crate) struct EventOutline {
    #[serde(default)]
    id: Lenient<u64>,
    #[serde(default)]
    ts: Lenient<f64>,
    #[serde(default)]
    replica: Lenient<String>,
    #[serde(default)]
    kind: Lenient<String>,
    #[serde(default)]
    alertname: Lenient<String>,
    #[serde(default)]
    plugin: Lenient<String>,
    #[serde(default)]
    target: Lenient<String>,
    #[serde(default)]
    container: Lenient<String>,
    #[serde(default)]
    error: Lenient<String>,
    #[serde(default)]
    detail: Lenient<String>,
    #[serde(default)]
    reason: Lenient<String>,
}

/// A field kept when it has the type `T` and ignored otherwise (a newer
/// kind may use a common name for something else).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Lenient<T> {
    Is(T),
    Other(serde::de::IgnoredAny),
}

impl<T> Default for Lenient<T> {
    fn default() -> Self {
        Self::Other(serde::de::IgnoredAny)
    }
}

impl<T: Clone> Lenient<T> {
    fn get(&self) -> Option<T> {
        match self {
            Self::Is(value) => Some(value.clone()),
            Self::Other(_) => None,
        }
    }
}

impl Lenient<String> {
    fn text(&self) -> Option<&str> {
        match self {
            Self::Is(value) => Some(value),
            Self::Other(_) => None,
        }
    }
}

/// The columns of one line.
struct Columns<'a> {
    ts: Option<f64>,
    replica: Option<&'a str>,
    kind: &'a str,
    alertname: Option<&'a str>,
    plugin: Option<&'a str>,
    target: Option<&'a str>,
    outcome: String,
    /// The ANSI colour of the kind on a terminal.
    colour: &'static str,
}

/// The event as one line: time (and replica), kind, alert, plugin, target,
/// outcome; the kind coloured when `colour`.
pub(crate) fn format_event(reading: &Reading, colour: bool) -> String {
    let columns = match reading {
        Reading::Typed(event) => typed_columns(event),
        Reading::Outline(outline) => outline_columns(outline),
    };
    let time = columns.ts.map(rfc3339).unwrap_or_else(|| "-".to_owned());
    // A replica's events say which replica recorded them.
    let time = match columns.replica {
        Some(replica) => format!("{time}  {replica}"),
        None => time,
    };
    let kind = columns.kind;
    let shown_kind = if colour {
        format!("\x1b[{}m{kind:<18}\x1b[0m", columns.colour)
    } else {
        format!("{kind:<18}")
    };
    format!(
        "{time}  {shown_kind}  {:<24}  {:<20}  {:<16}  {}",
        columns.alertname.unwrap_or("-"),
        columns.plugin.unwrap_or("-"),
        columns.target.unwrap_or("-"),
        columns.outcome
    )
    .trim_end()
    .to_owned()
}

fn typed_columns(event: &Event) -> Columns<'_> {
    let body = &event.body;
    let target = match body {
        EventBody::ActionDryRun(a)
        | EventBody::ActionOk(a)
        | EventBody::ActionFail(a)
        | EventBody::ActionSkipped(a) => a.target.as_deref(),
        EventBody::CapabilityDenied(d) => Some(d.target.as_str()),
        EventBody::RestartIntent(r) => Some(r.container.as_str()),
        EventBody::EffectIntent(e) => Some(e.target.as_str()),
        EventBody::ActionInterrupted(i) => Some(i.container.as_str()),
        _ => None,
    };
    let colour = match body {
        EventBody::ActionOk(_) => "32",
        EventBody::ActionFail(_)
        | EventBody::CapabilityDenied(_)
        | EventBody::AuthFailed(_)
        | EventBody::ActionInterrupted(_) => "31",
        EventBody::ActionDryRun(_) => "36",
        // Yellow: the plugin looked and did nothing, neither green nor red.
        EventBody::ActionSkipped(_) => "33",
        EventBody::DecisionSkip(_) => "2",
        _ => "0",
    };
    Columns {
        ts: Some(event.ts),
        replica: event.replica.as_deref(),
        kind: event.kind().as_str(),
        alertname: body.alertname(),
        plugin: body.plugin(),
        target,
        outcome: outcome(body),
        colour,
    }
}

/// Who acted, as the `by` fields say: `ci (token)`, `Alice Liddell
/// (person) — "typed this"`; an event from before roles, only `by`.
fn who(
    by: &Option<String>,
    kind: &Option<String>,
    name: &Option<String>,
    comment: &Option<String>,
) -> String {
    let mut text = name
        .clone()
        .or_else(|| by.clone())
        .unwrap_or_else(|| "-".to_owned());
    if let Some(kind) = kind {
        text.push_str(&format!(" ({})", kind.replace('_', " ")));
    }
    if let Some(comment) = comment {
        text.push_str(&format!(" \u{2014} {comment:?}"));
    }
    text
}

/// What came of it, in a few words. No wildcard arm: a new kind of event
/// makes the compiler ask what its line says.
fn outcome(body: &EventBody) -> String {
    let or_dash = |text: Option<&str>| text.unwrap_or("-").to_owned();
    match body {
        EventBody::WebhookReceived(w) => format!("{} alerts", w.alerts),
        EventBody::WebhookRejected(r) => format!("{}: {}", r.status, r.error),
        // A cap reached wants a person: the line says which and over what window.
        EventBody::DecisionSkip(s) if s.repeat_cap.is_some() => {
            format!("{}: {}", s.reason.as_str(), s.detail)
        }
        EventBody::DecisionSkip(s) => match (&s.pause_id, &s.pause_reason) {
            (Some(id), reason) => format!("{} by {id}: {}", s.reason.as_str(), or_dash(reason.as_deref())),
            (None, _) => s.reason.as_str().to_owned(),
        },
        EventBody::ActionStarted(s) => match s.queued_sec {
            Some(waited) => format!("mode {}, after {waited:.1} s in the queue", s.mode.as_str()),
            None => format!("mode {}", s.mode.as_str()),
        },
        EventBody::ActionQueued(q) => format!("queued behind {}: {}", q.ahead, q.waiting_for),
        EventBody::ActionDropped(d) => d.detail.clone(),
        EventBody::ActionOk(_) => "ok".to_owned(),
        EventBody::ActionDryRun(_) => "dry-run".to_owned(),
        EventBody::ActionFail(a) => format!("failed: {}", or_dash(a.error.as_deref())),
        EventBody::ActionSkipped(a) => format!("skipped: {}", or_dash(a.output.as_deref())),
        EventBody::CapabilityDenied(d) => format!("denied: {}", d.reason.as_str()),
        EventBody::RestartIntent(_) => "restart intended".to_owned(),
        EventBody::EffectIntent(e) => format!("{} intended: {}", e.capability.as_str(), e.detail),
        EventBody::ActionInterrupted(i) => format!("interrupted: intent {} has no outcome", i.intent),
        EventBody::Ack(a) => match &a.by {
            Some(_) => format!(
                "silence {} until {} by {}",
                a.silence_id,
                a.ends_at,
                who(&a.by, &a.by_kind, &a.by_name, &a.by_comment)
            ),
            None => format!("silence {} until {}", a.silence_id, a.ends_at),
        },
        EventBody::ModeChanged(m) => format!(
            "mode {} by {}",
            m.mode.as_str(),
            who(&m.by, &m.by_kind, &m.by_name, &m.by_comment)
        ),
        EventBody::AuthFailed(a) => match &a.role {
            Some(role) => format!("{}: {} {} needs {role}", a.reason, a.method, a.path),
            None => format!("{}: {} {}", a.reason, a.method, a.path),
        },
        EventBody::SignedIn(s) => format!("signed in: {}", s.by_name.as_deref().unwrap_or(&s.by)),
        EventBody::SignedOut(s) => format!("signed out: {}", s.by_name.as_deref().unwrap_or(&s.by)),
        EventBody::PluginLoaded(p) | EventBody::PluginUnloaded(p) => p.version.clone(),
        EventBody::PluginRejected(r) => r.reason.clone(),
        EventBody::AuditRecovered(r) => r.detail.clone(),
        EventBody::AuditRotated(r) => format!("rolled {} bytes into {}", r.bytes, r.segment),
        EventBody::HostWarning(w) => w.detail.clone().unwrap_or_else(|| w.warning.as_str().to_owned()),
        EventBody::HostStarted(h) => {
            format!("{}, mode {}, {} plugins", h.version, h.mode.as_str(), h.plugins)
        }
        EventBody::ApprovalRequested(a) => format!("approval {}", a.approval),
        EventBody::ApprovalRecorded(r) => format!(
            "approval {}: {} of {} approvals, by {}",
            r.approval,
            r.approvals,
            r.approvals_required,
            r.by_name.as_deref().unwrap_or(&r.by)
        ),
        EventBody::ApprovalGranted(e) | EventBody::ApprovalDenied(e) => {
            let by = e.by_name.as_deref().or(e.by.as_deref());
            format!("approval {} by {}", e.approval, or_dash(by))
        }
        EventBody::ApprovalExpired(e) => format!("approval {}", e.approval),
        EventBody::ApprovalCancelled(e) => format!(
            "{} (approval {})",
            or_dash(e.reason.map(|r| r.as_str())),
            e.approval
        ),
        EventBody::RemediationWatched(w) => format!("step {} of {}", w.chain.step, w.chain.chain.len()),
        EventBody::RemediationVerified(v) => format!(
            "resolved {} after the action",
            autoheal_core::util::age_text(v.time_to_recover_sec)
        ),
        EventBody::RemediationIneffective(i) => i.detail.clone(),
        EventBody::PauseStarted(p) => {
            let scope = match (&p.plugin, &p.matchers) {
                (None, None) => "everything".to_owned(),
                (Some(plugin), None) => format!("plugin {plugin}"),
                (None, Some(matchers)) => format!("alerts {matchers}"),
                (Some(plugin), Some(matchers)) => format!("plugin {plugin}, alerts {matchers}"),
            };
            let until = rfc3339(p.until);
            format!(
                "pause {} of {scope} until {until} by {}: {}",
                p.pause_id,
                who(&p.by, &p.by_kind, &p.by_name, &p.by_comment),
                p.reason
            )
        }
        EventBody::PauseEnded(e) => match e.why {
            PauseEndReason::Expired => format!("pause {} expired", e.pause_id),
            PauseEndReason::Resumed => {
                format!(
                    "pause {} resumed by {}",
                    e.pause_id,
                    who(&e.by, &e.by_kind, &e.by_name, &e.by_comment)
                )
            }
        },
        EventBody::WindowOpened(w) => format!("{} open until {}: {}", w.name, rfc3339(w.until), w.reason),
        EventBody::WindowClosed(w) => format!("{} closed at {}", w.name, rfc3339(w.closed_at)),
        EventBody::AlertDeferred(d) => match d.retry {
            Some(retry) if retry.reason == RetryReason::ClusterUnavailable => format!(
                "kept after {} (attempt {}): decided again once the cluster answers",
                retry.reason.as_str(),
                retry.attempt
            ),
            Some(retry) if retry.reason == RetryReason::PluginCompiling => format!(
                "kept after {} (attempt {}): decided once {} is loaded",
                retry.reason.as_str(),
                retry.attempt,
                d.plugin
            ),
            Some(retry) => format!(
                "kept after {} (attempt {}): decided again at {}",
                retry.reason.as_str(),
                retry.attempt,
                rfc3339(d.until)
            ),
            None => format!("held until {}", rfc3339(d.until)),
        },
        EventBody::DeferredDue(d) => format!("{} held alerts came due", d.held.len()),
    }
}

/// A unix time as RFC 3339 to the second (`-` when out of range).
fn rfc3339(ts: f64) -> String {
    chrono::DateTime::from_timestamp(ts as i64, 0)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_else(|| "-".to_owned())
}

/// What can be said of an event this build does not know: its error as a
/// failure, else its detail or reason, whichever it has.
fn outline_columns(outline: &EventOutline) -> Columns<'_> {
    let outcome = match (outline.error.text(), outline.detail.text(), outline.reason.text()) {
        (Some(error), _, _) => format!("failed: {error}"),
        (None, Some(detail), _) => detail.to_owned(),
        (None, None, Some(reason)) => reason.to_owned(),
        (None, None, None) => String::new(),
    };
    Columns {
        ts: outline.ts.get(),
        replica: outline.replica.text(),
        kind: outline.kind.text().unwrap_or("-"),
        alertname: outline.alertname.text(),
        plugin: outline.plugin.text(),
        target: outline.target.text().or(outline.container.text()),
        outcome,
        colour: "0",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(json: &str) -> String {
        let event = ReceivedEvent::new(RawValue::from_string(json.to_owned()).unwrap());
        format_event(&event.reading, false)
    }

    fn typed(json: &str) -> ReceivedEvent {
        let event = ReceivedEvent::new(RawValue::from_string(json.to_owned()).unwrap());
        assert!(matches!(event.reading, Reading::Typed(_)), "{json} reads typed");
        event
    }

    #[test]
    fn an_action_shows_its_alert_plugin_target_and_result() {
        let ok = typed(
            r#"{"id":7,"ts":1796230991.2,"kind":"action_ok","alertname":"CrmDown","calls":[],"dry_run":false,"duration_ms":12.5,"fingerprint":"f1","logs":[],"plugin":"restart-crm-api","plugin_version":"0.1.0","status":"firing","target":"crm-api","targets":["crm-api"]}"#,
        );
        assert_eq!(ok.id(), 7);
        assert_eq!(
            format_event(&ok.reading, false),
            "2026-12-02T17:03:11Z  action_ok           CrmDown                   restart-crm-api       crm-api           ok"
        );
        let failed = line(
            r#"{"id":8,"ts":1796230991.2,"kind":"action_fail","alertname":"CrmDown","calls":[],"dry_run":false,"duration_ms":1.0,"error":"engine said 500","fingerprint":"f1","logs":[],"plugin":"restart-crm-api","plugin_version":"0.1.0","status":"firing","targets":[]}"#,
        );
        assert!(
            failed.contains("  -                 failed: engine said 500"),
            "{failed}"
        );
    }

    #[test]
    fn who_acted_shows_the_verified_caller_and_the_typed_text_as_a_comment() {
        let token = line(
            r#"{"id":2,"ts":1796230991.0,"kind":"mode_changed","by":"ci","by_kind":"token","dry_run":true,"enabled":true,"mode":"dry_run","previous_dry_run":false,"previous_enabled":true}"#,
        );
        assert!(token.ends_with("mode dry_run by ci (token)"), "{token}");
        let person = line(
            r#"{"id":3,"ts":1796230991.0,"kind":"pause_ended","by":"a1b2","by_comment":"alice typed this","by_kind":"person","by_name":"Alice Liddell","pause_id":"ab12","why":"resumed"}"#,
        );
        assert!(
            person.ends_with("pause ab12 resumed by Alice Liddell (person) \u{2014} \"alice typed this\""),
            "{person}"
        );
        let refused = line(
            r#"{"id":4,"ts":1796230991.0,"kind":"auth_failed","method":"POST","path":"/admin/enabled","reason":"forbidden","role":"operator of every plugin","scope":"operator"}"#,
        );
        assert!(
            refused.ends_with("forbidden: POST /admin/enabled needs operator of every plugin"),
            "{refused}"
        );
    }

    #[test]
    fn skips_switches_and_replicas_read_as_before() {
        let skip = line(
            r#"{"id":1,"ts":1796230991.0,"replica":"r2","kind":"decision_skip","alertname":"DiskFull","detail":"no autoheal annotation","fingerprint":"f2","reason":"not_annotated","status":"firing"}"#,
        );
        assert!(
            skip.starts_with("2026-12-02T17:03:11Z  r2  decision_skip"),
            "{skip}"
        );
        assert!(skip.ends_with("not_annotated"), "{skip}");
        let flip = line(
            r#"{"id":2,"ts":1796230991.0,"kind":"mode_changed","by":"alice","dry_run":true,"enabled":true,"mode":"dry_run","previous_dry_run":false,"previous_enabled":true}"#,
        );
        assert!(flip.ends_with("mode dry_run by alice"), "{flip}");
        let webhook = line(r#"{"id":3,"ts":1796230991.0,"kind":"webhook_received","alerts":2}"#);
        assert!(webhook.ends_with("2 alerts"), "{webhook}");
    }

    #[test]
    fn a_repeat_cap_skip_names_the_cap_and_its_window() {
        let skip = line(
            r#"{"id":4,"ts":1796230991.0,"kind":"decision_skip","alertname":"CrmDown","cooldown_key":"restart-crm-api|CrmDown","detail":"3 actions in the last 1h (limits.max_actions \"3/1h\")","fingerprint":"f1","plugin":"restart-crm-api","reason":"repeat_cap","repeat_cap":"3/1h","repeat_cap_key":"max_actions","repeat_cap_until":1796234000.0,"status":"firing"}"#,
        );
        assert!(
            skip.ends_with("repeat_cap: 3 actions in the last 1h (limits.max_actions \"3/1h\")"),
            "{skip}"
        );
    }

    #[test]
    fn pauses_and_paused_skips_say_which_pause_and_why() {
        let started = line(
            r#"{"id":4,"ts":1796230991.0,"kind":"pause_started","by":"alice","matchers":"service=\"crm\"","pause_id":"ab12","reason":"release 4.2","until":1796238191.0}"#,
        );
        assert!(
            started.ends_with(
                r#"pause ab12 of alerts service="crm" until 2026-12-02T19:03:11Z by alice: release 4.2"#
            ),
            "{started}"
        );
        let skip = line(
            r#"{"id":5,"ts":1796230991.0,"kind":"decision_skip","alertname":"CrmDown","detail":"d","fingerprint":"f","pause_id":"ab12","pause_reason":"release 4.2","paused_until":1796238191.0,"plugin":"p","reason":"paused","status":"firing"}"#,
        );
        assert!(skip.ends_with("paused by ab12: release 4.2"), "{skip}");
        let ended = line(
            r#"{"id":6,"ts":1796230991.0,"kind":"pause_ended","by":"bob","pause_id":"ab12","why":"resumed"}"#,
        );
        assert!(ended.ends_with("pause ab12 resumed by bob"), "{ended}");
    }

    #[test]
    fn the_colour_follows_the_variant() {
        let ok = typed(
            r#"{"id":7,"ts":1.0,"kind":"action_skipped","alertname":"CrmDown","calls":[],"dry_run":false,"duration_ms":1.0,"fingerprint":"f1","logs":[],"output":"healthy","plugin":"p","plugin_version":"1","status":"firing","targets":[]}"#,
        );
        let shown = format_event(&ok.reading, true);
        assert!(shown.contains("\x1b[33maction_skipped"), "{shown:?}");
        assert!(shown.ends_with("skipped: healthy"), "{shown:?}");
    }

    /// A newer host's kind, and a kind this build knows in a shape it does
    /// not (a new skip reason), print in outline instead of failing.
    #[test]
    fn an_event_this_build_does_not_know_prints_in_outline() {
        let newer = ReceivedEvent::new(
            RawValue::from_string(
                r#"{"id":41,"ts":1796230991.0,"kind":"container_quarantined","alertname":"CrmDown","plugin":"quarantine","container":"crm-api","detail":"moved to quarantine","target":{"new":"shape"}}"#
                    .to_owned(),
            )
            .unwrap(),
        );
        assert!(matches!(newer.reading, Reading::Outline(_)));
        assert_eq!(newer.id(), 41);
        let shown = format_event(&newer.reading, true);
        assert_eq!(
            shown,
            "2026-12-02T17:03:11Z  \x1b[0mcontainer_quarantined\x1b[0m  CrmDown                   quarantine            crm-api           moved to quarantine"
        );
        let new_reason = line(
            r#"{"id":42,"ts":1796230991.0,"kind":"decision_skip","alertname":"DiskFull","detail":"maintenance window","fingerprint":"f","reason":"maintenance","status":"firing"}"#,
        );
        assert!(new_reason.ends_with("maintenance window"), "{new_reason}");
        // The original system's lines: no id, few fields.
        let original = ReceivedEvent::new(
            RawValue::from_string(
                r#"{"ts": 1730540200.0, "kind": "action_fail", "alertname": "UptimeProbeFailing", "cmd": "docker restart crm-api", "error": "exit 1"}"#
                    .to_owned(),
            )
            .unwrap(),
        );
        assert_eq!(original.id(), 0);
        let shown = format_event(&original.reading, false);
        assert!(
            shown.starts_with("2024-11-02T09:36:40Z  action_fail         UptimeProbeFailing")
                && shown.ends_with("failed: exit 1"),
            "{shown}"
        );
    }
}
