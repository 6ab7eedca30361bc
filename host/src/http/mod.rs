//! The HTTP surface. `router(host)` builds the whole app so that tests can
//! drive it in-process with `tower::ServiceExt::oneshot`; `serve` runs it
//! on a listener, within `[http]`'s limits. Each handler names, as
//! `State<_>` extractors, the parts of the host it uses.

mod ack;
mod admin;
mod approvals;
mod cluster_audit;
mod conn;
mod csp;
mod deadline;
mod events;
mod guard;
mod pauses;
mod server;
mod signin;
mod status;
mod vision;
mod vision_cache;

pub use server::serve;

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use axum::body::Body;
use axum::extract::{FromRef, RawQuery, State};
use axum::http::StatusCode;
use axum::middleware::from_fn_with_state;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter, on};
use axum::{Json, Router};
use http_body_util::{BodyExt, LengthLimitError, Limited};

use autoheal_api::alert::AlertAnswer;
use autoheal_api::audit::AuditAnswer;
use autoheal_api::auth::{GrantAnswer, MeAnswer};
use autoheal_api::error::ErrorAnswer;
use autoheal_api::plugins::TrialAnswer;
use autoheal_api::routes::{Access, Method, Route};
use autoheal_core::alert::WebhookPayload;
use autoheal_core::audit::{AuditLog, AuditQuery};
use autoheal_core::event::{ActedBy, EventBody, SkipReason, WebhookReceived, WebhookRejected};
use autoheal_core::query::{Query, QueryError};
use autoheal_core::util::truncate_with_marker;
use tokio_util::sync::CancellationToken;

use crate::app::Host;
use crate::auth::{Plugins, Principal, Role};
use crate::config::Config;
use crate::metrics::Metrics;
use crate::remediation::Remediator;
use crate::startup::{RETRY_AFTER_SEC, Startup};
use crate::switches::Switches;

/// What the handlers share; each takes only its parts (see `FromRef` below).
#[derive(Clone)]
struct AppState {
    host: Host,
    /// For Alertmanager's and Prometheus's APIs (acks, the operations view).
    client: reqwest::Client,
    subscribers: SseSubscribers,
    webhooks: WebhookSlots,
    audit_reads: AuditReads,
    /// `auth_failed` events left this second.
    auth_events: Arc<guard::AuthEventBudget>,
    /// For other replicas (`GET /audit?cluster=true`).
    peers: cluster_audit::PeerClient,
    vision: vision_cache::VisionCache,
    /// Sign-in through the OpenID provider, when `[auth.oidc]` is set.
    signin: Option<Arc<signin::SignInService>>,
}

/// Places for webhook requests handled at once (`max_concurrent_webhooks`).
#[derive(Clone)]
struct WebhookSlots(Arc<tokio::sync::Semaphore>);

/// Reads of the audit trail at once (`max_concurrent_audit_reads`): each
/// holds a blocking thread and a core until it ends, even if its client
/// has gone. A `GET /audit` takes one for its read, a `GET /events`
/// subscriber catching up one for each batch it reads.
#[derive(Clone)]
struct AuditReads(Arc<tokio::sync::Semaphore>);

/// Connected SSE subscribers, for the cap.
#[derive(Clone, Default)]
struct SseSubscribers(Arc<AtomicUsize>);

/// `impl FromRef<AppState>` for each part a handler may ask for.
macro_rules! state_parts {
    ($($part:ty => |$state:ident| $get:expr;)*) => {
        $(impl FromRef<AppState> for $part {
            fn from_ref($state: &AppState) -> Self {
                $get
            }
        })*
    };
}

state_parts! {
    Host => |s| s.host.clone();
    Arc<Config> => |s| s.host.config.clone();
    Arc<AuditLog> => |s| s.host.audit.clone();
    Arc<Remediator> => |s| s.host.remediator.clone();
    Arc<Metrics> => |s| s.host.metrics.clone();
    Arc<Switches> => |s| s.host.switches.clone();
    admin::Flip => |s| admin::Flip {
        audit: s.host.audit.clone(),
        metrics: s.host.metrics.clone(),
        switches: s.host.switches.clone(),
        cluster: s.host.cluster.clone(),
    };
    events::Trail => |s| events::Trail {
        audit: s.host.audit.clone(),
        reads: s.audit_reads.clone(),
    };
    CancellationToken => |s| s.host.shutdown.clone();
    reqwest::Client => |s| s.client.clone();
    SseSubscribers => |s| s.subscribers.clone();
    WebhookSlots => |s| s.webhooks.clone();
    AuditReads => |s| s.audit_reads.clone();
    cluster_audit::PeerClient => |s| s.peers.clone();
    vision_cache::VisionCache => |s| s.vision.clone();
    Arc<Startup> => |s| s.host.startup.clone();
}

/// The whole HTTP surface on `host`.
pub fn router(host: Host) -> Router {
    let webhook_slots = host.config.max_concurrent_webhooks;
    let audit_reads = host.config.max_concurrent_audit_reads;
    let signin = signin::SignInService::start(&host.config, host.cluster.clone(), host.shutdown.clone());
    let state = AppState {
        host,
        client: reqwest::Client::new(),
        subscribers: SseSubscribers::default(),
        webhooks: WebhookSlots(Arc::new(tokio::sync::Semaphore::new(webhook_slots))),
        audit_reads: AuditReads(Arc::new(tokio::sync::Semaphore::new(audit_reads))),
        auth_events: Arc::default(),
        peers: cluster_audit::PeerClient::new(),
        vision: vision_cache::VisionCache::default(),
        signin,
    };
    // Each route behind the guard, which knows the route and so the role it
    // needs; the routes are the API's table, so the served routes are the
    // documented ones. The console page and the API's description hold no
    // data: the console asks for the token itself, and the description is
    // the same for every host (it is committed as docs/openapi.json).
    Route::ALL
        .into_iter()
        .fold(Router::new(), |router, route| {
            let method_router = match route.access() {
                Access::Open => handler(route),
                _ => handler(route).route_layer(from_fn_with_state((state.clone(), route), guard::guard)),
            };
            router.route(route.path(), method_router)
        })
        .layer(axum::middleware::map_response(csp::on_html))
        .with_state(state)
}

/// The handler of each route of the API's table, on the table's method.
fn handler(route: Route) -> MethodRouter<AppState> {
    let method = match route.method() {
        Method::Get => MethodFilter::GET,
        Method::Post => MethodFilter::POST,
        Method::Delete => MethodFilter::DELETE,
    };
    match route {
        Route::Alert => on(method, alert),
        Route::AckGet => on(method, ack::ack_get),
        Route::AckPost => on(method, ack::ack_post),
        Route::PluginsReload => on(method, reload_plugins),
        Route::PluginTest => on(method, test_plugin),
        Route::AdminEnabled => on(method, admin::set_enabled),
        Route::AdminDryRun => on(method, admin::set_dry_run),
        Route::Approve => on(method, approvals::approve),
        Route::Deny => on(method, approvals::deny),
        Route::Status => on(method, status::status),
        Route::Audit => on(method, audit),
        Route::Approvals => on(method, approvals::list),
        Route::Pauses => on(method, pauses::list),
        Route::Pause => on(method, pauses::pause),
        Route::Resume => on(method, pauses::resume),
        Route::Events => on(method, events::events),
        Route::Metrics => on(method, metrics),
        Route::Vision => on(method, vision::vision),
        Route::AuthMe => on(method, auth_me),
        Route::Console => on(method, console),
        Route::OpenApi => on(method, openapi),
        Route::SignIn => on(method, signin::login),
        Route::SignInCallback => on(method, signin::callback),
        Route::SignOut => on(method, signin::logout),
        Route::Session => on(method, signin::session),
        Route::CliToken => on(method, signin::cli_token),
    }
}

/// The OpenAPI document, built once.
async fn openapi() -> Response {
    static DOCUMENT: std::sync::LazyLock<String> =
        std::sync::LazyLock::new(autoheal_api::openapi::document_json);
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        DOCUMENT.as_str(),
    )
        .into_response()
}

/// A JSON error: `{"error": "..."}` with a status.
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(ErrorAnswer { error: self.1 })).into_response()
    }
}

/// `GET /auth/me`: the caller as the guard proved it. It takes any valid
/// credential, not only a viewer's: a caller (a webhook or approver-only
/// token) may always learn what it may do, and the answer says nothing
/// about anyone else.
async fn auth_me(axum::Extension(principal): axum::Extension<Principal>) -> Json<MeAnswer> {
    Json(MeAnswer {
        kind: principal.kind.as_str().to_owned(),
        id: principal.id,
        name: principal.name,
        groups: principal.groups,
        grants: grant_answers(principal.grants),
    })
}

/// Grants as `GET /auth/me` and `GET /auth/session` show them: every
/// plugin as `["*"]`.
fn grant_answers(grants: Vec<crate::auth::Grant>) -> Vec<GrantAnswer> {
    grants
        .into_iter()
        .map(|grant| GrantAnswer {
            role: grant.role.as_str().to_owned(),
            plugins: match grant.plugins {
                Plugins::All => vec!["*".to_owned()],
                Plugins::Matching(globs) => globs,
            },
            rule: grant.rule,
        })
        .collect()
}

/// Who acted, for an event's `by` fields: the verified caller, and what it
/// typed as `by` kept only as a comment.
fn actor(principal: &Principal, comment: Option<String>) -> ActedBy {
    ActedBy {
        by: Some(principal.id.clone()),
        by_comment: admin::bounded(comment, admin::MAX_BY_BYTES),
        by_kind: Some(principal.kind.as_str().to_owned()),
        by_name: principal.name.clone(),
    }
}

/// The operator console: one self-contained page (inline CSS and JS, which
/// its Content-Security-Policy allows by hash, see `csp`) that reads `/`,
/// `/audit`, `/events` and posts `/ack`.
async fn console() -> Html<&'static str> {
    Html(csp::CONSOLE_HTML)
}

/// While the plugins load, a 503 with `Retry-After` for a route that would
/// act on them (an answer to an approval); `None` once the host is ready.
fn starting(host: &Host) -> Option<Response> {
    if host.startup.is_ready() {
        return None;
    }
    let response = ApiError(StatusCode::SERVICE_UNAVAILABLE, host.startup.describe()).into_response();
    Some(retry_after(response, RETRY_AFTER_SEC))
}

/// Runs a loaded plugin on the alert(s) in the body, always in dry-run:
/// `inspect` reads the real engine, `restart` is only recorded, and nothing
/// is audited or cooled down.
async fn test_plugin(
    State(state): State<AppState>,
    axum::Extension(principal): axum::Extension<Principal>,
    axum::extract::Path(name): axum::extract::Path<String>,
    body: axum::body::Bytes,
) -> Response {
    // The guard asked for an operator of some plugin; this one is named here.
    if let Err(denied) = principal.may(Role::Operator, Some(&name)) {
        let path = format!("/plugins/{name}/test");
        return guard::forbid(
            &state,
            ("POST", &path),
            Role::Operator,
            Some(&name),
            &principal,
            denied,
        );
    }
    let host = state.host;
    let Some(plugin) = host.remediator.plugins().get(&name).cloned() else {
        return ApiError(
            StatusCode::NOT_FOUND,
            format!("no plugin named {name:?} is loaded"),
        )
        .into_response();
    };
    let alerts = match crate::plugin_trial::parse_alerts(&String::from_utf8_lossy(&body)) {
        Ok(alerts) => alerts,
        Err(e) => return ApiError(StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    // The trial starts from the plugin's state as this host keeps it, in a
    // copy of its own: its writes never reach the host's.
    let start = match plugin.manifest.state {
        Some(_) => match host.remediator.state_store().entries(&plugin.manifest.name).await {
            Ok(state) => state,
            Err(e) => return ApiError(StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response(),
        },
        None => Default::default(),
    };
    let state = Arc::new(autoheal_sandbox::capability::MemoryStateStore::scratch(
        &plugin.manifest.name,
        start,
    ));
    let mut reports = Vec::new();
    for alert in alerts {
        reports.push(
            crate::plugin_trial::run(
                &host.runtime,
                &plugin,
                alert,
                host.containers.clone(),
                &host.config,
                state.clone(),
            )
            .await,
        );
    }
    Json(TrialAnswer { reports }).into_response()
}

/// Forces a rescan of the plugins directory.
async fn reload_plugins(State(host): State<Host>) -> Response {
    match crate::reload::reload(&host).await {
        Ok(summary) => Json(summary).into_response(),
        Err(e) => ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

async fn metrics(
    State(metrics): State<Arc<Metrics>>,
    State(remediator): State<Arc<Remediator>>,
    State(audit): State<Arc<AuditLog>>,
    State(host): State<Host>,
) -> Response {
    let cooldowns: Vec<_> = remediator.active_cooldowns();
    metrics.audit_writable.set(i64::from(audit.is_writable()));
    let disk = crate::audit_disk::measure(audit.path());
    if let Some(bytes) = disk.trail_bytes {
        metrics.audit_bytes.set(bytes.min(i64::MAX as u64) as i64);
    }
    if let Some(free) = disk.free_bytes {
        metrics
            .audit_filesystem_free_bytes
            .set(free.min(i64::MAX as u64) as i64);
    }
    metrics.deferred_alerts.set(remediator.held_count() as i64);
    if let Some(cluster) = &host.cluster {
        metrics.cluster_available.set(i64::from(cluster.is_available()));
    }
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        metrics.render(
            remediator.plugins().len(),
            &cooldowns,
            &paused(&host.config.maintenance, &remediator.pauses()),
        ),
    )
        .into_response()
}

/// `autoheal_paused`'s series now: one per maintenance window, open or
/// not, and one per operator's pause while it lasts (an ended pause's
/// series goes with it).
fn paused(
    windows: &[crate::maintenance::Window],
    pauses: &[autoheal_api::pauses::Pause],
) -> Vec<crate::metrics::Paused> {
    let now = autoheal_core::util::unix_now();
    let windows = windows.iter().map(|w| crate::metrics::Paused {
        source: "window",
        name: w.name.clone(),
        open: matches!(w.phase_at(now), crate::maintenance::Phase::Open { .. }),
    });
    let pauses = pauses.iter().map(|p| crate::metrics::Paused {
        source: "pause",
        name: p.id.clone(),
        open: true,
    });
    windows.chain(pauses).collect()
}

/// The Alertmanager webhook. Bad input is a 4xx (never a 5xx, which
/// Alertmanager would retry forever) and is audited as `webhook_rejected`;
/// a trail that cannot be written is a 503 (retried) with nothing done, and
/// so is a webhook of which some alert found no room (`overloaded`): the
/// others are decided, and Alertmanager's retry brings that one back.
// Each argument is an axum extractor: the state parts and the principal.
#[allow(clippy::too_many_arguments)]
async fn alert(
    State(config): State<Arc<Config>>,
    State(audit): State<Arc<AuditLog>>,
    State(remediator): State<Arc<Remediator>>,
    State(metrics): State<Arc<Metrics>>,
    State(WebhookSlots(slots)): State<WebhookSlots>,
    State(startup): State<Arc<Startup>>,
    axum::Extension(principal): axum::Extension<crate::auth::Principal>,
    body: Body,
) -> Response {
    // Not before the plugins are loaded: an alert decided now would find no
    // plugin for it and be skipped for good. Alertmanager retries a 503.
    if !startup.is_ready() {
        let response = reject(&audit, StatusCode::SERVICE_UNAVAILABLE, startup.describe());
        return retry_after(response, RETRY_AFTER_SEC);
    }
    // Shed load rather than queue it: Alertmanager retries a 503 later.
    let Ok(_slot) = slots.try_acquire() else {
        metrics.bound_hit("concurrent_webhooks", 1);
        let response = reject(
            &audit,
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "{} webhook requests are being handled (max_concurrent_webhooks); try again",
                config.max_concurrent_webhooks
            ),
        );
        return retry_after(response, "1");
    };
    let limit = config.max_body_bytes;
    let bytes = match Limited::new(body, limit).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
            return reject(
                &audit,
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("body is larger than {limit} bytes"),
            );
        }
        // The slot is given back as this returns; the connection closes,
        // since the rest of the body will not be read. A 503, not a 408:
        // Alertmanager retries a 5xx but drops a 4xx, and a sender slowed
        // by the network should have its alerts delivered on the next try.
        Err(e) if deadline::timed_out(&*e) => {
            let mut response = reject(&audit, StatusCode::SERVICE_UNAVAILABLE, e.to_string());
            let headers = response.headers_mut();
            headers.insert(
                axum::http::header::CONNECTION,
                axum::http::HeaderValue::from_static("close"),
            );
            headers.insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("1"),
            );
            return response;
        }
        Err(e) => {
            return reject(
                &audit,
                StatusCode::BAD_REQUEST,
                format!("could not read body: {e}"),
            );
        }
    };
    let payload: WebhookPayload = match serde_json::from_slice(&bytes) {
        Ok(payload) => payload,
        Err(e) if e.is_data() => {
            return reject(
                &audit,
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("invalid webhook payload: {e}"),
            );
        }
        Err(e) => return reject(&audit, StatusCode::BAD_REQUEST, format!("malformed JSON: {e}")),
    };

    let mut payload = payload;
    if let Err(error) = check_alert_sizes(&payload, &config) {
        metrics.bound_hit("alert_size", 1);
        return reject(&audit, StatusCode::UNPROCESSABLE_ENTITY, error);
    }
    // Alertmanager's convention: what is not sent is counted as truncated.
    let dropped = payload.alerts.len().saturating_sub(config.max_alerts_per_webhook);
    if dropped > 0 {
        payload.alerts.truncate(config.max_alerts_per_webhook);
        metrics.bound_hit("webhook_alerts", dropped as u64);
    }
    let truncated = payload.truncated_alerts.unwrap_or(0) + dropped as u64;
    let received = EventBody::WebhookReceived(WebhookReceived {
        alerts: payload.alerts.len(),
        decisions: None,
        group_key: payload.group_key.clone().map(|k| bounded(&k)),
        receiver: payload.receiver.clone().map(|r| bounded(&r)),
        status: payload.status.clone().map(|s| bounded(&s)),
        truncated_alerts: Some(truncated).filter(|n| *n > 0),
    });
    // Received means decided: recording and deciding run in a task of their
    // own, which a client that hangs up cannot cancel halfway.
    let alerts = payload.alerts;
    // The approvals these alerts ask for name who sent them: they alone
    // cannot approve them.
    let requested_by = Some(crate::remediation::approval_policy::actor(&principal));
    let work = tokio::spawn(async move {
        remediator
            .process_webhook_from(received, alerts, requested_by)
            .await
    });
    match work.await {
        Ok(Ok(decisions)) => {
            let overloaded: Vec<&str> = decisions
                .iter()
                .filter(|d| d.reason == Some(SkipReason::Overloaded))
                .map(|d| d.alertname.as_str())
                .collect();
            if overloaded.is_empty() {
                metrics.webhook_answered(StatusCode::OK.as_u16());
                return Json(AlertAnswer {
                    received: decisions.len(),
                    decisions,
                })
                .into_response();
            }
            // Never dropped in silence: an alert there was no room for is in
            // the trail (`decision_skip overloaded`), and a 503 makes
            // Alertmanager send the group again. Those acted on meanwhile
            // are in their cooldown then; the others get another chance.
            metrics.webhook_answered(StatusCode::SERVICE_UNAVAILABLE.as_u16());
            let error = format!(
                "{} of {} alerts found no room (overloaded: {}); the rest were decided. Send again.",
                overloaded.len(),
                decisions.len(),
                bounded(&overloaded.join(", "))
            );
            retry_after(
                ApiError(StatusCode::SERVICE_UNAVAILABLE, error).into_response(),
                "5",
            )
        }
        // No action without a record: nothing was dispatched, and a 503 makes
        // Alertmanager retry once the trail can be written again.
        Ok(Err(e)) => {
            metrics.webhook_answered(StatusCode::SERVICE_UNAVAILABLE.as_u16());
            tracing::error!(error = %e, "webhook not recorded; nothing dispatched");
            retry_after(
                ApiError(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("the audit trail cannot be written ({e}); nothing was done, try again"),
                )
                .into_response(),
                "5",
            )
        }
        Err(e) => ApiError(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the webhook task failed: {e}"),
        )
        .into_response(),
    }
}

/// `response` (a 503) saying when to come back, in seconds: Alertmanager
/// backs off on its own, other senders read this.
pub(super) fn retry_after(mut response: Response, secs: &'static str) -> Response {
    response.headers_mut().insert(
        axum::http::header::RETRY_AFTER,
        axum::http::HeaderValue::from_static(secs),
    );
    response
}

fn reject(audit: &AuditLog, status: StatusCode, error: String) -> Response {
    // Parser errors quote the input, which the sender chose: keep it short.
    let error = bounded(&error);
    audit.emit(EventBody::WebhookRejected(WebhookRejected {
        error: error.clone(),
        status: status.as_u16(),
    }));
    ApiError(status, error).into_response()
}

/// Longest sender-chosen text (errors, group keys) put in an event.
const MAX_ECHOED_BYTES: usize = 1024;

fn bounded(text: &str) -> String {
    truncate_with_marker(text, MAX_ECHOED_BYTES).unwrap_or_else(|| text.to_owned())
}

/// Every alert within `max_labels_per_alert` and `max_label_bytes`; the
/// error names the first that is not (by position, not by its content).
/// The sender's other strings (`startsAt`, `endsAt`, `generatorURL`,
/// `fingerprint`) are held and recorded like labels, so the same bound
/// applies to each.
fn check_alert_sizes(payload: &WebhookPayload, config: &Config) -> Result<(), String> {
    for (i, alert) in payload.alerts.iter().enumerate() {
        let count = alert.labels.len() + alert.annotations.len();
        if count > config.max_labels_per_alert {
            return Err(format!(
                "alert {i} has {count} labels and annotations; at most {} are accepted (max_labels_per_alert)",
                config.max_labels_per_alert
            ));
        }
        let longest = alert
            .labels
            .iter()
            .chain(&alert.annotations)
            .flat_map(|(k, v)| [k.len(), v.len()])
            .chain([
                alert.generator_url.len(),
                alert.fingerprint.len(),
                alert.starts_at.len(),
                alert.ends_at.as_deref().map_or(0, str::len),
            ])
            .max()
            .unwrap_or(0);
        if longest > config.max_label_bytes {
            return Err(format!(
                "alert {i} has a label, annotation or field of {longest} bytes; at most {} are accepted (max_label_bytes)",
                config.max_label_bytes
            ));
        }
    }
    Ok(())
}

/// The query string, or a 400 naming what is wrong with it.
fn query_pairs(query: Option<&str>) -> Result<Query, ApiError> {
    Ok(Query::parse(query)?)
}

impl From<QueryError> for ApiError {
    fn from(e: QueryError) -> Self {
        ApiError(StatusCode::BAD_REQUEST, e.to_string())
    }
}

async fn audit(
    State(audit): State<Arc<AuditLog>>,
    State(reads): State<AuditReads>,
    State(host): State<Host>,
    State(peers): State<cluster_audit::PeerClient>,
    RawQuery(query): RawQuery,
) -> Response {
    let answer = match cluster_audit::wants_cluster(query.as_deref()) {
        Ok(Some(rest)) => match &host.cluster {
            Some(cluster) => {
                let local = audit_inner(&audit, &reads, rest.as_deref()).await;
                cluster_audit::merged(cluster, &peers, rest.as_deref(), local).await
            }
            None => Err(ApiError(
                StatusCode::BAD_REQUEST,
                "cluster: this host is not a replica of a cluster ([cluster] etcd)".into(),
            )),
        },
        Ok(None) => audit_inner(&audit, &reads, query.as_deref())
            .await
            .map(|answer| Json(answer).into_response()),
        Err(e) => Err(e),
    };
    answer.unwrap_or_else(|e| e.into_response())
}

async fn audit_inner(
    audit: &Arc<AuditLog>,
    reads: &AuditReads,
    query: Option<&str>,
) -> Result<AuditAnswer, ApiError> {
    let AuditQuery { filter, n } = AuditQuery::parse(query)?;
    // Read-your-writes: what was recorded before this request is in the answer.
    audit
        .flush()
        .await
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    // Waits its turn (fair, first come first served); the permit goes with
    // the read, which a client that hangs up does not stop.
    let permit = reads
        .0
        .clone()
        .acquire_owned()
        .await
        .expect("the semaphore is never closed");
    let audit = audit.clone();
    let read = move || {
        let _permit = permit;
        audit.read_tail(&filter, n)
    };
    match tokio::task::spawn_blocking(read).await {
        Ok(Ok(events)) => Ok(AuditAnswer {
            count: events.len(),
            events,
            replicas: None,
        }),
        Ok(Err(e)) => Err(ApiError(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot read audit trail: {e}"),
        )),
        Err(e) => Err(ApiError(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("audit reader failed: {e}"),
        )),
    }
}
