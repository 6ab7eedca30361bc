//! The one event type that flows everywhere: the engine and the host build
//! it, the audit trail gives it an id and a time and persists it, SSE
//! subscribers and metrics consume it.
//!
//! An [`Event`] is `{"id":..,"ts":..,"kind":..,<fields>}` on one JSONL
//! line. Its [`EventBody`] has one variant per kind, each a struct; the
//! `kind` tag and the field names are the audit trail's format and keep the
//! original system's names.
//!
//! **Field order.** Trails written before this type existed have each
//! event's fields (after `kind`) in alphabetical order. Every struct here
//! declares its fields alphabetically so that old and new lines look the
//! same; `tests/typed_events.rs` reads a trail of every kind written by the
//! old code and checks that each line is written back byte for byte.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::alert::{Alert, AlertStatus};
use crate::invocation::{Capability, CapabilityCall, LogLine};
use crate::mode::{DryRunReason, ExecutionMode};

/// A recorded event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Monotonic across restarts of the host.
    pub id: u64,
    /// Unix seconds with sub-second precision.
    pub ts: f64,
    /// The replica that recorded it, when the host runs as one of a
    /// cluster (`[cluster]`); absent on a single host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica: Option<String>,
    /// What happened (its `kind` and fields).
    #[serde(flatten)]
    pub body: EventBody,
}

impl Event {
    /// The event's kind.
    pub fn kind(&self) -> EventKind {
        self.body.kind()
    }

    /// The alert the event is about, if it is about one.
    pub fn alertname(&self) -> Option<&str> {
        self.body.alertname()
    }
}

/// What happened, one variant per kind. The first six kinds are the
/// original system's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EventBody {
    /// A webhook was accepted; its alerts are decided next.
    WebhookReceived(WebhookReceived),
    /// An alert (or one plugin for it) was not acted on.
    DecisionSkip(DecisionSkip),
    /// An action ran in dry-run: its side effects were recorded, not done.
    ActionDryRun(ActionFinished),
    /// An action ran for real and its plugin returned `ok`.
    ActionOk(ActionFinished),
    /// An action failed: the plugin returned an error, trapped, timed out
    /// or hit its memory cap.
    ActionFail(ActionFinished),
    /// An operator acknowledged an alert: a silence was created.
    Ack(Ack),
    /// A webhook body that could not be accepted (4xx).
    WebhookRejected(WebhookRejected),
    /// An action was dispatched; its cooldown starts here.
    ActionStarted(ActionStarted),
    /// A capability call refused by the host (allow-list or a guard).
    CapabilityDenied(CapabilityDenied),
    /// A plugin was loaded (or replaced by a new version).
    PluginLoaded(PluginInfo),
    /// A manifest that did not load.
    PluginRejected(PluginRejected),
    /// A plugin's manifest left the plugins directory.
    PluginUnloaded(PluginInfo),
    /// A request without valid credentials for its route (no secret in it).
    AuthFailed(AuthFailed),
    /// An operator flipped the kill switch or dry-run at runtime.
    ModeChanged(ModeChanged),
    /// A real restart is about to be sent (committed before it is).
    RestartIntent(RestartIntent),
    /// A real effect other than a restart (a signal, a command run in a
    /// container) is about to be sent (committed before it is).
    EffectIntent(EffectIntent),
    /// At start: a restart intent whose action never recorded its outcome
    /// (the host died during it). It counts as done.
    ActionInterrupted(ActionInterrupted),
    /// At start: the trail ended in a write a crash cut short; what it held
    /// was moved aside to a file this event names.
    AuditRecovered(AuditRecovered),
    /// Something the operator should know about the host itself.
    HostWarning(HostWarning),
    /// The host started, and what it restored.
    HostStarted(HostStarted),
    /// An action waits for an operator: its plugin ran in dry-run and these
    /// are the calls it would make.
    ApprovalRequested(ApprovalRequested),
    /// An approver granted, but more grants are required before it runs.
    ApprovalRecorded(ApprovalRecorded),
    /// An operator approved: the action runs for real (under every gate).
    ApprovalGranted(ApprovalEnded),
    /// An operator denied: nothing runs.
    ApprovalDenied(ApprovalEnded),
    /// Nobody decided before the approval's deadline: nothing runs.
    ApprovalExpired(ApprovalEnded),
    /// The alert resolved before anyone decided: nothing runs.
    ApprovalCancelled(ApprovalEnded),
    /// After an action, the alert resolved within `[verify] within`.
    RemediationVerified(RemediationVerified),
    /// After an action, the alert was still firing at the deadline (or the
    /// action failed); the chain's next plugin, if any, runs next.
    RemediationIneffective(RemediationIneffective),
    /// The plugin ran, looked, and decided not to act (a healthy or
    /// too-young container, ...): neither a success nor a failure. Its
    /// cooldown is cut to the manifest's `cooldown_after_skip`, and nothing
    /// is verified after it.
    ActionSkipped(ActionFinished),
    /// After an action of a plugin with `[verify]`, its alert is watched
    /// until it resolves or the deadline passes; recorded so that the watch
    /// is resumed after a restart of the host.
    RemediationWatched(RemediationWatched),
    /// An admitted action waits for a place to run (its plugin's
    /// `max_concurrent`, or `[budget]` actions in flight, are taken); its
    /// cooldown and claim are taken already, and `action_started` follows
    /// when it runs.
    ActionQueued(ActionQueued),
    /// At start: an action that was queued when the host stopped, and had not
    /// run; its alert is decided afresh now.
    ActionDropped(ActionDropped),
    /// An operator paused remediation for part of the fleet (or all of it)
    /// until a time, saying why; on a replica, also a pause adopted from
    /// another replica.
    PauseStarted(PauseStarted),
    /// A pause ended: it expired, or an operator resumed.
    PauseEnded(PauseEnded),
    /// A maintenance window of the config (`[[maintenance]]`) opened: the
    /// actions it covers are skipped as `paused` until it closes.
    WindowOpened(WindowOpened),
    /// A maintenance window closed: the actions it covered run again.
    WindowClosed(WindowClosed),
    /// The alert has not been firing for the plugin's `[match] firing_for`
    /// yet: it is held until `until`, then decided afresh unless it
    /// resolved. It carries the whole alert, so that a restart holds it again.
    AlertDeferred(AlertDeferred),
    /// Held alerts came due: the decisions that follow in the same write are
    /// theirs, made afresh as if the alerts had arrived in a webhook now.
    DeferredDue(DeferredDue),
    /// The live trail file passed `[audit] max_bytes` or `max_age` and was
    /// rolled into a numbered segment; the first event of the new live file
    /// but for the events queued while it rolled.
    AuditRotated(AuditRotated),
    /// A person signed in to the console through the identity provider.
    SignedIn(Signed),
    /// A person signed out of the console.
    SignedOut(Signed),
}

/// The kinds of event, for filters and metric labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)] // each is documented on its `EventBody` variant
pub enum EventKind {
    WebhookReceived,
    DecisionSkip,
    ActionDryRun,
    ActionOk,
    ActionFail,
    Ack,
    WebhookRejected,
    ActionStarted,
    CapabilityDenied,
    PluginLoaded,
    PluginRejected,
    PluginUnloaded,
    AuthFailed,
    ModeChanged,
    RestartIntent,
    EffectIntent,
    ActionInterrupted,
    AuditRecovered,
    HostWarning,
    HostStarted,
    ApprovalRequested,
    ApprovalRecorded,
    ApprovalGranted,
    ApprovalDenied,
    ApprovalExpired,
    ApprovalCancelled,
    RemediationVerified,
    RemediationIneffective,
    ActionSkipped,
    RemediationWatched,
    ActionQueued,
    ActionDropped,
    PauseStarted,
    PauseEnded,
    WindowOpened,
    WindowClosed,
    AlertDeferred,
    DeferredDue,
    AuditRotated,
    SignedIn,
    SignedOut,
}

impl EventKind {
    /// Every kind, in the order of [`EventBody`].
    pub const ALL: [EventKind; 41] = [
        Self::WebhookReceived,
        Self::DecisionSkip,
        Self::ActionDryRun,
        Self::ActionOk,
        Self::ActionFail,
        Self::Ack,
        Self::WebhookRejected,
        Self::ActionStarted,
        Self::CapabilityDenied,
        Self::PluginLoaded,
        Self::PluginRejected,
        Self::PluginUnloaded,
        Self::AuthFailed,
        Self::ModeChanged,
        Self::RestartIntent,
        Self::EffectIntent,
        Self::ActionInterrupted,
        Self::AuditRecovered,
        Self::HostWarning,
        Self::HostStarted,
        Self::ApprovalRequested,
        Self::ApprovalRecorded,
        Self::ApprovalGranted,
        Self::ApprovalDenied,
        Self::ApprovalExpired,
        Self::ApprovalCancelled,
        Self::RemediationVerified,
        Self::RemediationIneffective,
        Self::ActionSkipped,
        Self::RemediationWatched,
        Self::ActionQueued,
        Self::ActionDropped,
        Self::PauseStarted,
        Self::PauseEnded,
        Self::WindowOpened,
        Self::WindowClosed,
        Self::AlertDeferred,
        Self::DeferredDue,
        Self::AuditRotated,
        Self::SignedIn,
        Self::SignedOut,
    ];

    /// The name on the wire, e.g. `decision_skip`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::WebhookReceived => "webhook_received",
            Self::DecisionSkip => "decision_skip",
            Self::ActionDryRun => "action_dry_run",
            Self::ActionOk => "action_ok",
            Self::ActionFail => "action_fail",
            Self::Ack => "ack",
            Self::WebhookRejected => "webhook_rejected",
            Self::ActionStarted => "action_started",
            Self::CapabilityDenied => "capability_denied",
            Self::PluginLoaded => "plugin_loaded",
            Self::PluginRejected => "plugin_rejected",
            Self::PluginUnloaded => "plugin_unloaded",
            Self::AuthFailed => "auth_failed",
            Self::ModeChanged => "mode_changed",
            Self::RestartIntent => "restart_intent",
            Self::EffectIntent => "effect_intent",
            Self::ActionInterrupted => "action_interrupted",
            Self::AuditRecovered => "audit_recovered",
            Self::HostWarning => "host_warning",
            Self::HostStarted => "host_started",
            Self::ApprovalRequested => "approval_requested",
            Self::ApprovalRecorded => "approval_recorded",
            Self::ApprovalGranted => "approval_granted",
            Self::ApprovalDenied => "approval_denied",
            Self::ApprovalExpired => "approval_expired",
            Self::ApprovalCancelled => "approval_cancelled",
            Self::RemediationVerified => "remediation_verified",
            Self::RemediationIneffective => "remediation_ineffective",
            Self::ActionSkipped => "action_skipped",
            Self::RemediationWatched => "remediation_watched",
            Self::ActionQueued => "action_queued",
            Self::ActionDropped => "action_dropped",
            Self::PauseStarted => "pause_started",
            Self::PauseEnded => "pause_ended",
            Self::WindowOpened => "window_opened",
            Self::WindowClosed => "window_closed",
            Self::AlertDeferred => "alert_deferred",
            Self::DeferredDue => "deferred_due",
            Self::AuditRotated => "audit_rotated",
            Self::SignedIn => "signed_in",
            Self::SignedOut => "signed_out",
        }
    }
}

impl EventBody {
    /// The body's kind.
    pub fn kind(&self) -> EventKind {
        match self {
            Self::WebhookReceived(_) => EventKind::WebhookReceived,
            Self::DecisionSkip(_) => EventKind::DecisionSkip,
            Self::ActionDryRun(_) => EventKind::ActionDryRun,
            Self::ActionOk(_) => EventKind::ActionOk,
            Self::ActionFail(_) => EventKind::ActionFail,
            Self::Ack(_) => EventKind::Ack,
            Self::WebhookRejected(_) => EventKind::WebhookRejected,
            Self::ActionStarted(_) => EventKind::ActionStarted,
            Self::CapabilityDenied(_) => EventKind::CapabilityDenied,
            Self::PluginLoaded(_) => EventKind::PluginLoaded,
            Self::PluginRejected(_) => EventKind::PluginRejected,
            Self::PluginUnloaded(_) => EventKind::PluginUnloaded,
            Self::AuthFailed(_) => EventKind::AuthFailed,
            Self::ModeChanged(_) => EventKind::ModeChanged,
            Self::RestartIntent(_) => EventKind::RestartIntent,
            Self::EffectIntent(_) => EventKind::EffectIntent,
            Self::ActionInterrupted(_) => EventKind::ActionInterrupted,
            Self::AuditRecovered(_) => EventKind::AuditRecovered,
            Self::HostWarning(_) => EventKind::HostWarning,
            Self::HostStarted(_) => EventKind::HostStarted,
            Self::ApprovalRequested(_) => EventKind::ApprovalRequested,
            Self::ApprovalRecorded(_) => EventKind::ApprovalRecorded,
            Self::ApprovalGranted(_) => EventKind::ApprovalGranted,
            Self::ApprovalDenied(_) => EventKind::ApprovalDenied,
            Self::ApprovalExpired(_) => EventKind::ApprovalExpired,
            Self::ApprovalCancelled(_) => EventKind::ApprovalCancelled,
            Self::RemediationVerified(_) => EventKind::RemediationVerified,
            Self::RemediationIneffective(_) => EventKind::RemediationIneffective,
            Self::ActionSkipped(_) => EventKind::ActionSkipped,
            Self::RemediationWatched(_) => EventKind::RemediationWatched,
            Self::ActionQueued(_) => EventKind::ActionQueued,
            Self::ActionDropped(_) => EventKind::ActionDropped,
            Self::PauseStarted(_) => EventKind::PauseStarted,
            Self::PauseEnded(_) => EventKind::PauseEnded,
            Self::WindowOpened(_) => EventKind::WindowOpened,
            Self::WindowClosed(_) => EventKind::WindowClosed,
            Self::AlertDeferred(_) => EventKind::AlertDeferred,
            Self::DeferredDue(_) => EventKind::DeferredDue,
            Self::AuditRotated(_) => EventKind::AuditRotated,
            Self::SignedIn(_) => EventKind::SignedIn,
            Self::SignedOut(_) => EventKind::SignedOut,
        }
    }

    /// The alert the event is about, if it is about one.
    pub fn alertname(&self) -> Option<&str> {
        match self {
            Self::DecisionSkip(e) => Some(&e.alertname),
            Self::ActionDryRun(e) | Self::ActionOk(e) | Self::ActionFail(e) | Self::ActionSkipped(e) => {
                Some(&e.alertname)
            }
            Self::ActionStarted(e) => Some(&e.alertname),
            Self::CapabilityDenied(e) => Some(&e.alertname),
            Self::Ack(e) => e.alertname.as_deref(),
            Self::ApprovalRequested(e) => Some(&e.alertname),
            Self::ApprovalRecorded(e) => Some(&e.alertname),
            Self::ApprovalGranted(e)
            | Self::ApprovalDenied(e)
            | Self::ApprovalExpired(e)
            | Self::ApprovalCancelled(e) => Some(&e.alertname),
            Self::RemediationVerified(e) => Some(&e.alertname),
            Self::RemediationIneffective(e) => Some(&e.alertname),
            Self::RemediationWatched(e) => Some(&e.alertname),
            Self::ActionQueued(e) => Some(&e.alertname),
            Self::ActionDropped(e) => Some(&e.alertname),
            Self::AlertDeferred(e) => Some(&e.alertname),
            Self::WebhookReceived(_)
            | Self::DeferredDue(_)
            | Self::AuditRotated(_)
            | Self::WebhookRejected(_)
            | Self::PluginLoaded(_)
            | Self::PluginRejected(_)
            | Self::PluginUnloaded(_)
            | Self::AuthFailed(_)
            | Self::ModeChanged(_)
            | Self::RestartIntent(_)
            | Self::EffectIntent(_)
            | Self::ActionInterrupted(_)
            | Self::AuditRecovered(_)
            | Self::HostWarning(_)
            | Self::HostStarted(_)
            | Self::PauseStarted(_)
            | Self::PauseEnded(_) => None,
            Self::WindowOpened(_) | Self::WindowClosed(_) => None,
            Self::SignedIn(_) | Self::SignedOut(_) => None,
        }
    }

    /// The plugin the event is about, if it is about one.
    pub fn plugin(&self) -> Option<&str> {
        match self {
            Self::DecisionSkip(e) => e.plugin.as_deref(),
            Self::ActionDryRun(e) | Self::ActionOk(e) | Self::ActionFail(e) | Self::ActionSkipped(e) => {
                Some(&e.plugin)
            }
            Self::ActionStarted(e) => Some(&e.plugin),
            Self::CapabilityDenied(e) => Some(&e.plugin),
            Self::PluginLoaded(e) | Self::PluginUnloaded(e) => Some(&e.plugin),
            Self::RestartIntent(e) => Some(&e.plugin),
            Self::EffectIntent(e) => Some(&e.plugin),
            Self::ActionInterrupted(e) => Some(&e.plugin),
            Self::ApprovalRequested(e) => Some(&e.plugin),
            Self::ApprovalRecorded(e) => Some(&e.plugin),
            Self::ApprovalGranted(e)
            | Self::ApprovalDenied(e)
            | Self::ApprovalExpired(e)
            | Self::ApprovalCancelled(e) => Some(&e.plugin),
            Self::RemediationVerified(e) => Some(&e.plugin),
            Self::RemediationIneffective(e) => Some(&e.plugin),
            Self::RemediationWatched(e) => Some(&e.plugin),
            Self::ActionQueued(e) => Some(&e.plugin),
            Self::ActionDropped(e) => Some(&e.plugin),
            Self::AlertDeferred(e) => Some(&e.plugin),
            _ => None,
        }
    }
}

/// `signed_in` / `signed_out`: a person's console session began or ended.
/// It names the person as the identity provider proved them, never a
/// token, cookie or code.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Signed {
    /// The person's subject (the ID token's `sub`).
    pub by: String,
    /// `person`.
    pub by_kind: String,
    /// Their display name, when the provider gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by_name: Option<String>,
    /// Their groups from the groups claim (what their roles come from).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
}

/// `auth_failed`: a request refused for its credentials or its origin. It
/// never holds the credentials themselves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuthFailed {
    /// The HTTP method.
    pub method: String,
    /// The request path, without the query.
    pub path: String,
    /// `missing`, `wrong`, `not_configured`, `host_not_allowed`,
    /// `cross_origin` or `forbidden`.
    pub reason: String,
    /// For `forbidden`: the role the route (or the plugin) needs, e.g.
    /// `operator of every plugin`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Which credentials the route takes: `webhook`, `operator` or `read`.
    pub scope: String,
}

/// Who acted, as the `by` fields of the events that record it carry it:
/// `by` the verified id, the rest beside it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ActedBy {
    /// The verified caller's id.
    pub by: Option<String>,
    /// The free text the caller typed as `by`.
    pub by_comment: Option<String>,
    /// How the caller was proven.
    pub by_kind: Option<String>,
    /// A person's display name.
    pub by_name: Option<String>,
}

impl ActedBy {
    /// Only an id, as another replica shares it.
    pub fn id(by: Option<String>) -> Self {
        ActedBy {
            by,
            ..ActedBy::default()
        }
    }
}

/// `mode_changed`: the kill switch or dry-run flipped at runtime (through
/// `POST /admin/enabled` or `POST /admin/dry-run`, with the operator token).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModeChanged {
    /// Who: the verified caller's id (a person's subject, a token's name,
    /// `operator` for the shared operator token).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// The free text the caller typed as `by` (`--by`): only a comment now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by_comment: Option<String>,
    /// How `by` was proven: `person`, `token`, `shared_token` or `anonymous`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by_kind: Option<String>,
    /// A person's display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by_name: Option<String>,
    /// Dry-run now.
    pub dry_run: bool,
    /// The kill switch now.
    pub enabled: bool,
    /// The resulting mode.
    pub mode: ExecutionMode,
    /// Dry-run before.
    pub previous_dry_run: bool,
    /// The kill switch before.
    pub previous_enabled: bool,
}

/// `restart_intent`: written and fsynced before a real restart is sent, so
/// that no restart happens without a record, and a restart cut short by a
/// crash is still counted by the breaker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RestartIntent {
    /// The container to restart.
    pub container: String,
    /// The plugin asking.
    pub plugin: String,
}

/// `effect_intent`: written and fsynced before a real effect other than a
/// restart (`containers.signal`, `containers.exec`) is sent, for the same
/// reasons as [`RestartIntent`]: no effect without a record, and one cut
/// short by a crash still counts against its breaker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EffectIntent {
    /// The call (`containers.signal`).
    pub capability: Capability,
    /// The container it acts on.
    pub target: String,
    /// What it sends: the signal, or the command's words.
    pub detail: String,
    /// The plugin asking.
    pub plugin: String,
}

/// `action_interrupted`: at start, a `restart_intent` or `effect_intent` no
/// action event answered. The effect may or may not have happened; it
/// counts as done.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionInterrupted {
    /// The container.
    pub container: String,
    /// The effect, when it was not a restart (absent: `containers.restart`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capability: Option<Capability>,
    /// The id of the intent.
    pub intent: u64,
    /// When the intent was recorded (unix seconds).
    pub intent_ts: f64,
    /// The plugin.
    pub plugin: String,
}

/// `audit_recovered`: the bytes of a write torn by a crash (a partial last
/// line, and a webhook group it cut short) were moved out of the trail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecovered {
    /// How many bytes were moved aside.
    pub bytes: u64,
    /// What happened, in words.
    pub detail: String,
    /// The file that holds them now, for a person to look at.
    pub set_aside: PathBuf,
}

/// `audit_rotated`: the live file was rolled into segment 1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRotated {
    /// The segment the live file became (its file name, beside the trail).
    pub segment: String,
    /// Bytes of the live file rolled (before compression).
    pub bytes: u64,
    /// Bytes of the segment as written (after compression, if any).
    pub segment_bytes: u64,
    /// Lines (events) in the segment.
    pub events: u64,
    /// Why it rolled: `max_bytes` or `max_age`.
    pub reason: String,
    /// Segments removed by retention (`keep_segments`, `keep_bytes`, `keep_age`), oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removed: Vec<String>,
}

/// `webhook_received`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookReceived {
    /// Alerts in the payload.
    pub alerts: usize,
    /// Decision events that follow in the same write; recovery uses it to
    /// tell a whole webhook from one a crash cut short.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decisions: Option<usize>,
    /// Alertmanager's group key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_key: Option<String>,
    /// The receiver that sent it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receiver: Option<String>,
    /// The group's status (`firing`, `resolved`), as sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Alerts Alertmanager left out of the payload (only when some were).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncated_alerts: Option<u64>,
}

/// `webhook_rejected`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookRejected {
    /// What was wrong with the request.
    pub error: String,
    /// The HTTP status it was answered with.
    pub status: u16,
}

/// Why an alert (or one plugin for it) was not acted on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// The alert does not opt in (`autoheal: "true"`).
    NotAnnotated,
    /// No loaded plugin handles it.
    NoPlugin,
    /// The alert is resolved.
    Resolved,
    /// The plugin acted on it recently.
    Cooldown,
    /// `autoheal_action` names a plugin whose `[match]` does not accept the
    /// alert: an annotation chooses among the plugins that match, no more.
    NotMatched,
    /// Too many actions are pending (in all, or for the plugin).
    Overloaded,
    /// A blast-radius budget (`[budget]`) is spent; `budget` says which.
    Budget,
    /// The plugin's action for this alert already waits for an approval.
    AwaitingApproval,
    /// Another replica of the cluster holds the claim on this action
    /// (`claimed_by` names it): it acts, this replica does not.
    Claimed,
    /// An active pause or maintenance window (`pause_id` `window:<name>`)
    /// covers the action
    /// (`pause_id`, `pause_reason`, `paused_until` say which, why and until
    /// when); no cooldown starts and no budget is spent.
    Paused,
    /// The plugin acted as often as a repeat cap of its manifest allows
    /// (`limits.max_actions`, `max_actions_all_keys`; `repeat_cap` names
    /// which): an action that keeps being needed is not working, and a
    /// person must look.
    RepeatCap,
}

impl SkipReason {
    /// The name in events, logs and notices, e.g. `not_annotated`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotAnnotated => "not_annotated",
            Self::NoPlugin => "no_plugin",
            Self::Resolved => "resolved",
            Self::Cooldown => "cooldown",
            Self::NotMatched => "not_matched",
            Self::Overloaded => "overloaded",
            Self::Budget => "budget",
            Self::AwaitingApproval => "awaiting_approval",
            Self::Claimed => "claimed",
            Self::Paused => "paused",
            Self::RepeatCap => "repeat_cap",
        }
    }
}

/// A blast-radius budget of `[budget]`, by its config key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Budget {
    /// Real actions started per window, across all plugins.
    MaxActions,
    /// Real actions running at once.
    MaxInFlight,
    /// Real actions running at once for one value of a label.
    MaxInFlightPerLabel,
}

impl Budget {
    /// The config key (and the value in events and metrics).
    pub fn as_str(self) -> &'static str {
        match self {
            Budget::MaxActions => "max_actions",
            Budget::MaxInFlight => "max_in_flight",
            Budget::MaxInFlightPerLabel => "max_in_flight_per_label",
        }
    }
}

/// `decision_skip`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecisionSkip {
    #[allow(missing_docs)]
    pub alertname: String,
    /// Which budget was spent, for `reason: budget`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<Budget>,
    /// The pause that stopped the action, for `reason: paused` (a
    /// maintenance window's is `window:<name>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause_id: Option<String>,
    /// Why the pause was made, for `reason: paused`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause_reason: Option<String>,
    /// When the pause ends (unix seconds), for `reason: paused`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused_until: Option<f64>,
    /// The replica holding the claim, for `reason: claimed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claimed_by: Option<String>,
    /// The cooldown key whose actions were counted, for `reason: repeat_cap`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cooldown_key: Option<String>,
    /// Why, in words.
    pub detail: String,
    #[allow(missing_docs)]
    pub fingerprint: String,
    /// The plugin that would have acted (for cooldowns).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin: Option<String>,
    /// For an action that waited in the queue and leaves it without
    /// running (its alert resolved, or the budget was spent by its turn):
    /// when it was queued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queued_at: Option<f64>,
    #[allow(missing_docs)]
    pub reason: SkipReason,
    /// Seconds left in the cooldown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remaining_sec: Option<u64>,
    /// The cap reached, as the manifest writes it (`3/1h`), for `reason: repeat_cap`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeat_cap: Option<String>,
    /// The manifest key of that cap: `max_actions` (per cooldown key) or
    /// `max_actions_all_keys` (the plugin's actions whatever their key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeat_cap_key: Option<String>,
    /// When (unix seconds) the oldest action counted leaves the window, and
    /// the cap lets one more through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeat_cap_until: Option<f64>,
    #[allow(missing_docs)]
    pub status: AlertStatus,
}

impl DecisionSkip {
    /// A skip of `alert`.
    pub fn new(alert: &Alert, reason: SkipReason, detail: String) -> Self {
        Self {
            alertname: alert.alertname().to_owned(),
            budget: None,
            pause_id: None,
            pause_reason: None,
            paused_until: None,
            claimed_by: None,
            cooldown_key: None,
            detail,
            fingerprint: alert.fingerprint.clone(),
            plugin: None,
            queued_at: None,
            reason,
            remaining_sec: None,
            repeat_cap: None,
            repeat_cap_key: None,
            repeat_cap_until: None,
            status: alert.status,
        }
    }
}

/// `pause_started`: remediation stops, until `until`, for the alerts the
/// scope covers (`plugin` and `matchers`; neither: everything).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PauseStarted {
    /// Who: the verified caller's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// The free text the caller typed as `by` (`--by`): only a comment now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by_comment: Option<String>,
    /// How `by` was proven: `person`, `token`, `shared_token` or `anonymous`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by_kind: Option<String>,
    /// A person's display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by_name: Option<String>,
    /// Only alerts whose labels match these (Alertmanager's syntax).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matchers: Option<String>,
    /// The pause's id (`autoheal resume ID`; `id` is the event's own).
    pub pause_id: String,
    /// Only this plugin's actions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin: Option<String>,
    /// Why, as the operator said.
    pub reason: String,
    /// On a replica, the replica it was made on, when another.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared_from: Option<String>,
    /// When it ends by itself (unix seconds).
    pub until: f64,
}

/// Why a pause ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PauseEndReason {
    /// Its time ran out.
    Expired,
    /// An operator resumed (`by` names them).
    Resumed,
}

impl PauseEndReason {
    /// The name in events, e.g. `expired`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Expired => "expired",
            Self::Resumed => "resumed",
        }
    }
}

/// `pause_ended`: a pause no longer stops anything.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PauseEnded {
    /// For `resumed`: who, the verified caller's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// The free text the caller typed as `by` (`--by`): only a comment now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by_comment: Option<String>,
    /// How `by` was proven: `person`, `token`, `shared_token` or `anonymous`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by_kind: Option<String>,
    /// A person's display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by_name: Option<String>,
    /// The pause's id.
    pub pause_id: String,
    /// `expired` or `resumed`.
    pub why: PauseEndReason,
}

/// Which alert and which plugin an action event is about.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionSubject {
    /// The alert's name.
    pub alertname: String,
    /// The alert's fingerprint.
    pub fingerprint: String,
    /// Where the alert came from (left out when empty).
    pub generator_url: Option<String>,
    /// The plugin's name.
    pub plugin: String,
    /// The plugin's version.
    pub plugin_version: String,
    /// The alert's status.
    pub status: AlertStatus,
}

impl ActionSubject {
    /// `plugin` (name, version) acting on `alert`.
    pub fn new(alert: &Alert, plugin: &str, plugin_version: &str) -> Self {
        Self {
            alertname: alert.alertname().to_owned(),
            fingerprint: alert.fingerprint.clone(),
            generator_url: (!alert.generator_url.is_empty()).then(|| alert.generator_url.clone()),
            plugin: plugin.to_owned(),
            plugin_version: plugin_version.to_owned(),
            status: alert.status,
        }
    }
}

/// `action_started`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)] // the alert and plugin fields are those of `ActionSubject`
pub struct ActionStarted {
    pub alertname: String,
    /// Plugin + alertname + the labels the manifest names.
    pub cooldown_key: String,
    /// Length of the cooldown.
    pub cooldown_sec: u64,
    /// Unix time the cooldown ends.
    pub cooldown_until: f64,
    /// Why the action runs in dry-run, if it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dry_run_reason: Option<DryRunReason>,
    pub fingerprint: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generator_url: Option<String>,
    pub mode: ExecutionMode,
    pub plugin: String,
    pub plugin_version: String,
    /// Seconds it waited in the queue, for an action that was queued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queued_sec: Option<f64>,
    pub status: AlertStatus,
}

/// `action_queued`: an admitted action waiting for a place to run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)] // the alert, plugin and cooldown fields are those of `ActionStarted`
pub struct ActionQueued {
    /// Actions queued ahead of it (of any plugin) when it was queued.
    pub ahead: usize,
    /// The whole alert: a queued action the host stops before it runs is
    /// decided afresh at the next start, from this.
    pub alert: Alert,
    pub alertname: String,
    pub cooldown_key: String,
    pub cooldown_sec: u64,
    pub cooldown_until: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dry_run_reason: Option<DryRunReason>,
    pub fingerprint: String,
    pub mode: ExecutionMode,
    pub plugin: String,
    pub plugin_version: String,
    pub status: AlertStatus,
    /// What it waits for, in words (the bound that is full).
    pub waiting_for: String,
}

/// `action_dropped`: at start, an action that was queued and never ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct ActionDropped {
    pub alertname: String,
    /// The cooldown it had taken, given back.
    pub cooldown_key: String,
    /// Why, in words.
    pub detail: String,
    pub fingerprint: String,
    pub plugin: String,
    /// Unix time it was queued.
    pub queued_at: f64,
}

/// Why the host refused a capability call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DenialReason {
    /// Outside the manifest's allow-list, or past the call budget.
    NotAllowed,
    /// The restart circuit breaker is open for the container.
    CircuitOpen,
}

impl DenialReason {
    /// The name in events and logs, e.g. `circuit_open`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotAllowed => "not_allowed",
            Self::CircuitOpen => "circuit_open",
        }
    }
}

/// `capability_denied`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)] // the alert and plugin fields are those of `ActionSubject`
pub struct CapabilityDenied {
    pub alertname: String,
    /// What the plugin called.
    pub capability: Capability,
    /// The refusal, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    pub fingerprint: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generator_url: Option<String>,
    pub plugin: String,
    pub plugin_version: String,
    pub reason: DenialReason,
    pub status: AlertStatus,
    /// The container named in the call.
    pub target: String,
}

/// `action_dry_run`, `action_ok`, `action_fail` and `action_skipped`: an
/// invocation's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)] // the alert and plugin fields are those of `ActionSubject`
pub struct ActionFinished {
    pub alertname: String,
    /// Every capability call, with its outcome.
    pub calls: Vec<CapabilityCall>,
    /// A chaos drill failed this action on purpose (`AUTOHEAL_CHAOS_FAILURE_RATE`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub chaos: bool,
    /// The restarts as the original system's `cmd` (`restart a; restart b`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<String>,
    /// `action_skipped`: the cooldown key the action was dispatched under,
    /// whose cooldown the skip cut (read back at start with `cooldown_until`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cooldown_key: Option<String>,
    /// `action_skipped`: when that cooldown now ends (unix seconds; the
    /// skip's own time when the manifest's `cooldown_after_skip` is 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cooldown_until: Option<f64>,
    pub dry_run: bool,
    /// Wall-clock time of the invocation, in ms (µs precision).
    pub duration_ms: f64,
    /// The failure, in words (`action_fail`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub fingerprint: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generator_url: Option<String>,
    /// What the plugin logged.
    pub logs: Vec<LogLine>,
    /// What the plugin returned (`action_ok`, `action_dry_run`), or why it
    /// declined (`action_skipped`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    pub plugin: String,
    pub plugin_version: String,
    /// The classified failure (`timeout`, `memory`, `trap: ..`, `plugin_error`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub status: AlertStatus,
    /// The plugin's stderr (bounded), when it wrote any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stderr: Option<String>,
    /// The plugin's stdout (bounded), when it wrote any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdout: Option<String>,
    /// The first container restarted (or recorded), as the original system's `target`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Every container restarted (or recorded).
    pub targets: Vec<String>,
    /// The bounds this invocation hit (`result`: its answer was cut;
    /// `target`: it named something that is not a container name). Absent
    /// when none was hit, so older lines read the same.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub truncated: Vec<String>,
}

/// `ack`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ack {
    /// The alert silenced, when the matchers name exactly one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alertname: Option<String>,
    /// Who: the verified caller's id (also the silence's `createdBy`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// The free text the caller typed as `by` (`--by`): only a comment now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by_comment: Option<String>,
    /// How `by` was proven: `person`, `token`, `shared_token` or `anonymous`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by_kind: Option<String>,
    /// A person's display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by_name: Option<String>,
    /// The silence's comment.
    pub comment: String,
    /// As asked for, e.g. `2h`.
    pub duration: String,
    /// When the silence ends (Alertmanager's time).
    pub ends_at: String,
    /// The matchers, as text.
    pub labels: Vec<String>,
    /// Alertmanager's id of the silence.
    pub silence_id: String,
    /// Where to see it in Alertmanager.
    pub silence_url: String,
}

/// `plugin_loaded` and `plugin_unloaded`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PluginInfo {
    /// The alertnames the manifest matches.
    pub alertnames: Vec<String>,
    /// Why a cached artifact for the component was not trusted and it was
    /// compiled again (an edited, swapped or foreign file in `cache_dir`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_rejected: Option<String>,
    /// SHA-256 of the component.
    pub component_hash: String,
    /// The containers the manifest allows.
    pub containers: Vec<String>,
    /// The manifest's file name.
    pub file: String,
    /// Whether the compiled component came from the artifact cache.
    pub from_cache: bool,
    /// The plugin's name.
    pub plugin: String,
    /// The hash of the version this one replaces (a reload).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaces_hash: Option<String>,
    /// The version this one replaces (a reload).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaces_version: Option<String>,
    /// The plugin's version.
    pub version: String,
    /// How long compiling its component (or reading it from the compile
    /// cache) took, in milliseconds, not counting `queued_ms`. Absent in
    /// older trails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compile_ms: Option<u64>,
    /// How long its compile waited for a slot (`[sandbox]
    /// compile_concurrency`), in milliseconds. Absent in older trails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queued_ms: Option<u64>,
    /// The version of the plugin contract (`autoheal:plugin@…`) its
    /// component implements: `0.2.0`, or `0.1.0` for one built before
    /// plugins could say that they skipped. Absent in older trails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wit: Option<String>,
}

/// `plugin_rejected`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PluginRejected {
    /// The manifest's file name.
    pub file: String,
    /// Why it did not load.
    pub reason: String,
    /// The version of it that keeps serving, if an earlier one loaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub still_serving: Option<String>,
}

/// What a `host_warning` is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Warning {
    /// The trail ended in a partial line at start; it was set aside.
    /// Trails written before `audit_recovered` existed.
    TornAuditLine,
    /// The host is stopping (everything before this event is committed).
    HostStopping,
    /// The cluster (etcd) stopped answering: no real action runs until it
    /// is back (`detail` says what failed).
    ClusterUnavailable,
    /// The cluster answers again: actions may run for real.
    ClusterAvailable,
    /// An answer to one of this replica's approvals was found in etcd
    /// without a valid proof (not written by a replica holding the cluster
    /// secret), or proven but not this principal's to give (the plugin's
    /// `[policy] approvers`, or a second grant by the same one): it was not
    /// applied and was removed (`detail` says which approval and why).
    ClusterAnswerRefused,
    /// Two loaded plugins may act on one alert's container together: an
    /// alert both match, a container both may restart (`detail` names
    /// them). Written at start and after each reload that changed the set.
    PluginsOverlap,
}

impl Warning {
    /// The name on the wire, e.g. `cluster_unavailable`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TornAuditLine => "torn_audit_line",
            Self::HostStopping => "host_stopping",
            Self::ClusterUnavailable => "cluster_unavailable",
            Self::ClusterAvailable => "cluster_available",
            Self::ClusterAnswerRefused => "cluster_answer_refused",
            Self::PluginsOverlap => "plugins_overlap",
        }
    }
}

/// `host_warning`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostWarning {
    /// Bytes set aside (a torn line).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// What happened, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Where the torn bytes were kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_aside: Option<PathBuf>,
    #[allow(missing_docs)]
    pub warning: Warning,
}

impl HostWarning {
    /// A warning with nothing more to say.
    pub fn bare(warning: Warning) -> Self {
        Self {
            bytes: None,
            detail: None,
            set_aside: None,
            warning,
        }
    }
}

/// `host_started`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostStarted {
    /// The sandbox's instance allocator (`pooling`, `on_demand`).
    pub allocator: String,
    /// Where container calls go.
    pub container_engine: String,
    /// Cooldowns still running, restored from the trail.
    pub cooldowns_restored: usize,
    #[allow(missing_docs)]
    pub dry_run: bool,
    /// Why the host runs in dry-run, if it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dry_run_reason: Option<DryRunReason>,
    #[allow(missing_docs)]
    pub enabled: bool,
    #[allow(missing_docs)]
    pub mode: ExecutionMode,
    /// Plugins loaded.
    pub plugins: usize,
    /// Real restarts inside the breaker's window, restored from the trail.
    pub recent_restarts_restored: usize,
    /// The host's version.
    pub version: String,
}

/// Why an action waits for an operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalCause {
    /// The manifest's `[policy] approval = "required"`.
    Manifest,
    /// The alert's `autoheal_approval: "required"` annotation.
    Annotation,
}

/// Where an action stands in its plugin's escalation chain: step 1 is the
/// plugin the alert chose, the next ones its `[escalate] then`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChainStep {
    /// Every plugin of the chain, the first one included.
    pub chain: Vec<String>,
    /// This step, counting from 1.
    pub step: usize,
    /// How long each step has to make the alert resolve, in seconds.
    pub within_sec: f64,
}

/// `approval_requested`: everything needed to run the action once it is
/// approved, also after a restart of the host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApprovalRequested {
    /// The alert the action is for, as it was received.
    pub alert: Alert,
    #[allow(missing_docs)]
    pub alertname: String,
    /// The approval's id, for `POST /approvals/{id}/approve|deny`.
    pub approval: String,
    /// How many different approvers must grant (`[policy]
    /// approvals_required`; absent: 1, as on trails from before it existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approvals_required: Option<u32>,
    /// Who may answer beyond the approver role (`[policy] approvers`, as
    /// written: `group:sre`, `user:alice`, `token:ci`); empty: anyone with it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approvers: Vec<String>,
    /// The calls the dry-run made: what a real run would do.
    pub calls: Vec<CapabilityCall>,
    /// The escalation chain the action belongs to, when its plugin verifies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain: Option<ChainStep>,
    /// Why it waits.
    pub cause: ApprovalCause,
    /// SHA-256 of the component the preview ran: the approved action runs
    /// only that component (absent on trails from before it was recorded,
    /// whose approvals cannot be checked and are refused as stale).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component_hash: Option<String>,
    /// The cooldown the action starts.
    pub cooldown_key: String,
    /// Unix time after which it is `approval_expired`.
    pub expires_at: f64,
    #[allow(missing_docs)]
    pub fingerprint: String,
    /// SHA-256 of the manifest file the preview ran with: the approved
    /// action runs only under that manifest (absent as `component_hash` is).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest_hash: Option<String>,
    #[allow(missing_docs)]
    pub plugin: String,
    #[allow(missing_docs)]
    pub plugin_version: String,
    /// The preview, for people: one line a call, e.g. `restart crm-api —
    /// up 3h 12m, restart count 2`.
    pub preview: Vec<String>,
    /// Who sent the webhook that asked for it (absent when the host decided
    /// alone: a held alert come due, a restart's requeue). Not enough alone
    /// to approve it: at least one grant must come from someone else.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<Actor>,
    /// What the plugin's dry-run answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
}

/// `approval_granted`, `approval_denied`, `approval_expired` and
/// `approval_cancelled`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApprovalEnded {
    #[allow(missing_docs)]
    pub alertname: String,
    /// The approval's id.
    pub approval: String,
    /// Everyone who granted it, in order (`approval_granted`: as many as
    /// it required; on other endings, the grants it had).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approved_by: Vec<Actor>,
    /// Who decided, as verified (`Principal::id`); for an approval found
    /// expired or stale when answered, who answered; absent when the host
    /// ended it alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// What the caller typed as `by`: only a comment now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by_comment: Option<String>,
    /// How `by` was proven: `person`, `token`, `shared_token`, `anonymous`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by_kind: Option<String>,
    /// A person's display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by_name: Option<String>,
    /// Why, when the operator said (or what ended it, in words).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[allow(missing_docs)]
    pub fingerprint: String,
    #[allow(missing_docs)]
    pub plugin: String,
    /// Why the host cancelled it (`approval_cancelled` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<CancelReason>,
}

/// A verified principal, as an approval's events name it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// `Principal::id`: a person's subject, a token's name, `operator`.
    pub id: String,
    /// `Principal::kind`: `person`, `token`, `shared_token`, `anonymous`.
    pub kind: String,
    /// A person's display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl Actor {
    /// Whether `self` and `other` are the same principal (kind and id).
    pub fn same(&self, other: &Actor) -> bool {
        self.kind == other.kind && self.id == other.id
    }

    /// For people: the name, else the id.
    pub fn label(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.id)
    }
}

/// `approval_recorded`: an approver granted, and the approval waits for
/// more grants (`approvals` of `approvals_required` so far).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApprovalRecorded {
    #[allow(missing_docs)]
    pub alertname: String,
    /// The approval's id.
    pub approval: String,
    /// Grants so far, this one included.
    pub approvals: u32,
    /// Grants it needs before it runs.
    pub approvals_required: u32,
    /// Who granted, as verified (`Principal::id`).
    pub by: String,
    /// What the caller typed as `by`: only a comment now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by_comment: Option<String>,
    /// How `by` was proven.
    pub by_kind: String,
    /// A person's display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by_name: Option<String>,
    /// Why, when the approver said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[allow(missing_docs)]
    pub fingerprint: String,
    #[allow(missing_docs)]
    pub plugin: String,
}

impl ApprovalRecorded {
    /// Who granted, as an [`Actor`].
    pub fn actor(&self) -> Actor {
        Actor {
            id: self.by.clone(),
            kind: self.by_kind.clone(),
            name: self.by_name.clone(),
        }
    }
}

/// Why the host cancelled an approval nobody granted or denied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CancelReason {
    /// The alert resolved before anyone decided.
    AlertResolved,
    /// It was approved, but what its preview ran (the plugin's component
    /// or manifest) is no longer what is loaded under the plugin's name.
    ApprovalStale,
}

impl CancelReason {
    /// The name on the wire, e.g. `alert_resolved`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AlertResolved => "alert_resolved",
            Self::ApprovalStale => "approval_stale",
        }
    }
}

/// How the host learnt that an alert resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResolvedVia {
    /// Alertmanager sent a resolved webhook for it.
    Webhook,
    /// It was no longer among Alertmanager's alerts (`GET /api/v2/alerts`).
    Alertmanager,
}

/// `remediation_verified`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RemediationVerified {
    #[allow(missing_docs)]
    pub alertname: String,
    /// Whether the action that worked ran in dry-run (a rehearsal).
    pub dry_run: bool,
    #[allow(missing_docs)]
    pub fingerprint: String,
    /// The plugin whose action preceded the recovery.
    pub plugin: String,
    /// Its step in the chain, from 1.
    pub step: usize,
    /// Seconds from the action's start to the alert's resolution.
    pub time_to_recover_sec: f64,
    /// How the resolution was seen.
    pub via: ResolvedVia,
}

/// `remediation_watched`: what the watch of an action's effect needs to be
/// resumed after a restart of the host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RemediationWatched {
    /// The alert acted on, as it was received (the chain's next step runs on it).
    pub alert: Alert,
    #[allow(missing_docs)]
    pub alertname: String,
    /// The chain, and this step of it.
    pub chain: ChainStep,
    /// Unix time at which the step is judged ineffective if the alert still fires.
    pub deadline: f64,
    /// Whether the action ran in dry-run (a rehearsal).
    pub dry_run: bool,
    /// Why it ran in dry-run: only an operator's choice (`disabled`,
    /// `dry_run`) is watched, so a restart resumes only those. Absent for a
    /// real action, and on lines written before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dry_run_reason: Option<DryRunReason>,
    #[allow(missing_docs)]
    pub fingerprint: String,
    /// The plugin that acted.
    pub plugin: String,
    /// Unix time the action started.
    pub started_at: f64,
}

/// `remediation_ineffective`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RemediationIneffective {
    #[allow(missing_docs)]
    pub alertname: String,
    /// What happened, in words.
    pub detail: String,
    /// Whether the action ran in dry-run (a rehearsal).
    pub dry_run: bool,
    #[allow(missing_docs)]
    pub fingerprint: String,
    /// The plugin of the chain that runs next; absent at the end of the chain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
    /// The plugin whose action did not help.
    pub plugin: String,
    /// Its step in the chain, from 1.
    pub step: usize,
    /// The seconds it had.
    pub within_sec: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `as_str` of each enum the CLI prints is its serde name.
    #[test]
    fn names_are_the_wire_names() {
        for warning in [
            Warning::TornAuditLine,
            Warning::HostStopping,
            Warning::ClusterUnavailable,
            Warning::ClusterAvailable,
            Warning::ClusterAnswerRefused,
        ] {
            assert_eq!(serde_json::to_value(warning).unwrap(), warning.as_str());
        }
        for reason in [CancelReason::AlertResolved, CancelReason::ApprovalStale] {
            assert_eq!(serde_json::to_value(reason).unwrap(), reason.as_str());
        }
    }
}

/// `window_opened`: a maintenance window of the config began.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowOpened {
    /// The window's `name`.
    pub name: String,
    /// When the occurrence that opened it began (unix seconds): earlier
    /// than the event's `ts` when the host was not running then.
    pub opened_at: f64,
    /// Its `reason`, or the default that names the window.
    pub reason: String,
    /// Its `schedule`, as written.
    pub schedule: String,
    /// When it closes, as known when it opened (unix seconds); an
    /// occurrence that begins before then holds it open longer.
    pub until: f64,
}

/// `window_closed`: a maintenance window of the config ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowClosed {
    /// The window's `name`.
    pub name: String,
    /// When it ended (unix seconds): earlier than the event's `ts` when the
    /// host was not running then.
    pub closed_at: f64,
    /// Its `schedule`, as written.
    pub schedule: String,
}

/// `alert_deferred`: an alert held for one plugin and decided afresh
/// later: because it is younger than the plugin's `[match] firing_for`
/// (held until `until`), or, with `retry`, because its action was refused
/// or failed for a passing reason (kept and tried again once that clears). One hold
/// per plugin and fingerprint: a copy re-sent while it is held is recorded
/// again with the same `until`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertDeferred {
    /// The alert as received, decided afresh at `until`.
    pub alert: Alert,
    #[allow(missing_docs)]
    pub alertname: String,
    /// The plugin's grace, in seconds (0 for a retry).
    pub firing_for_sec: f64,
    #[allow(missing_docs)]
    pub fingerprint: String,
    /// The plugin that waits (other plugins matching the alert do not).
    pub plugin: String,
    /// When the alert is decided afresh (unix seconds); for a retry after
    /// `cluster_unavailable`, the soonest, once the cluster answers again.
    pub until: f64,
    /// Present when the alert is kept to be tried again, not for a grace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<Retry>,
}

/// Why an alert is kept to be decided again, and for how long already.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Retry {
    /// What refused its action.
    pub reason: RetryReason,
    /// How many times it has been refused so far (1 the first time).
    pub attempt: u32,
    /// When it was first refused (unix seconds): it is kept at most
    /// [`Retry::KEPT_FOR_SEC`] from then.
    pub since: f64,
}

impl Retry {
    /// How long an alert is kept to be tried again, at most: past it, its
    /// last attempt is decided as any alert is and it is not kept again
    /// (Alertmanager's `repeat_interval` sends it again if it still fires).
    pub const KEPT_FOR_SEC: f64 = 3600.0;

    /// The first refusal, at `now`.
    pub fn first(reason: RetryReason, now: f64) -> Self {
        Self {
            reason,
            attempt: 1,
            since: now,
        }
    }

    /// Refused again at `now` (for `reason`), if it may still be kept.
    pub fn again(self, reason: RetryReason, now: f64) -> Option<Self> {
        (now - self.since < Self::KEPT_FOR_SEC).then_some(Self {
            reason,
            attempt: self.attempt.saturating_add(1),
            since: self.since,
        })
    }
}

/// A passing reason an action was refused, after which its alert is kept
/// and decided again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RetryReason {
    /// In a cluster, etcd could not be asked for the action's claim: it ran
    /// in dry-run (`dry_run_reason: cluster_unavailable`). Decided again as
    /// soon as the cluster answers.
    ClusterUnavailable,
    /// `max_pending_actions` actions were queued or running: it was skipped
    /// `overloaded`. Decided again after a pause that doubles each time.
    Overloaded,
    /// A real action failed at a container call and its engine did not
    /// answer a moment later: nothing was done. Decided again after a
    /// pause that doubles each time.
    EngineUnreachable,
    /// The plugin that would handle it was new and still compiling (a
    /// reload): nothing could decide it yet. Decided again as soon as the
    /// compile ends (loaded, it acts; rejected, `no_plugin`).
    PluginCompiling,
}

impl RetryReason {
    /// The name on the wire, e.g. `cluster_unavailable`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClusterUnavailable => "cluster_unavailable",
            Self::Overloaded => "overloaded",
            Self::EngineUnreachable => "engine_unreachable",
            Self::PluginCompiling => "plugin_compiling",
        }
    }
}

/// `deferred_due`: held alerts came due and are decided afresh; their
/// decisions follow in the same write.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeferredDue {
    /// Decision events that follow in the same write (as `webhook_received`'s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decisions: Option<usize>,
    /// The holds that ended, one per plugin and alert.
    pub held: Vec<HeldAlert>,
}

/// One hold that came due: which alert, for which plugin.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct HeldAlert {
    #[allow(missing_docs)]
    pub alertname: String,
    #[allow(missing_docs)]
    pub fingerprint: String,
    /// The plugin that waited.
    pub plugin: String,
}
