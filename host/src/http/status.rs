//! `GET /`: what the host is, what it serves, and whether its container
//! engine answers.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::app::Host;
use autoheal_core::mode::{DryRunReason, ExecutionMode};
use autoheal_sandbox::registry::Plugin;

/// How long `GET /` waits for the container engine's version.
const ENGINE_PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// 200 once the host is ready; 503 while its plugins load, with the same
/// body (`status: starting`, `startup` saying how far it is, and `error`).
pub(super) async fn status(State(host): State<Host>) -> Response {
    let config = &host.config;
    let plugins = host.remediator.plugins();
    let (mut mode, mut dry_run_reason) = host.switches.mode();
    let switches = host.switches.state();
    let cluster = match &host.cluster {
        Some(cluster) => {
            // The replicas listed now; not asked while etcd does not answer,
            // so that `GET /` stays quick during an outage.
            let members = match cluster.is_available() {
                true => cluster.members().await.unwrap_or_default(),
                false => Vec::new(),
            };
            Some((cluster.status(), members))
        }
        None => None,
    };
    // What an action would do now: no claim, no real action.
    if cluster.as_ref().is_some_and(|(c, _)| !c.available) && mode == ExecutionMode::Real {
        (mode, dry_run_reason) = (ExecutionMode::DryRun, Some(DryRunReason::ClusterUnavailable));
    }
    // Every engine, the default first, each asked once and all at once;
    // `container_engine` is the default's.
    let engines: Vec<Value> = host
        .containers
        .reachability(ENGINE_PROBE_TIMEOUT)
        .await
        .into_iter()
        .map(|reach| match reach.version {
            Ok(version) => {
                json!({ "name": reach.name, "address": reach.address, "reachable": true, "version": version })
            }
            Err(error) => {
                json!({ "name": reach.name, "address": reach.address, "reachable": false, "error": error })
            }
        })
        .collect();
    let mut container_engine = engines.first().cloned().unwrap_or_default();
    if let Some(default) = container_engine.as_object_mut() {
        default.remove("name");
    }
    // The breaker a replica decides by is the cluster's: asked only while
    // etcd answers, like the members above.
    let breaker = host
        .breaker
        .usage(host.cluster.as_ref().is_some_and(|c| c.is_available()))
        .await;
    let cooldowns: Vec<Value> = host
        .remediator
        .active_cooldowns()
        .into_iter()
        .map(|c| json!({ "key": c.key, "alertname": c.alertname, "remaining_sec": c.remaining_sec.ceil() as u64 }))
        .collect();
    let verifying: Vec<Value> = host
        .remediator
        .verifying()
        .into_iter()
        .map(|w| {
            json!({
                "alertname": w.alert.alertname(),
                "fingerprint": w.alert.fingerprint,
                "plugin": w.plugin,
                "step": w.chain.step,
                "chain": w.chain.chain,
                "deadline": w.deadline,
                "dry_run": w.dry_run,
            })
        })
        .collect();
    let ready = host.startup.is_ready();
    let mut body = json!({
        "service": "autoheal",
        "version": env!("CARGO_PKG_VERSION"),
        "status": if ready { "ready" } else { "starting" },
        "startup": host.startup.progress(),
        "enabled": switches.enabled,
        "dry_run": switches.dry_run,
        "mode": mode,
        "dry_run_reason": dry_run_reason,
        "audit_path": host.audit.path(),
        "audit_writable": host.audit.is_writable(),
        "plugins_dir": config.plugins_dir,
        // Where the CLI (`autoheal silences`, `vision`, `smoke`) finds them
        // when it is not told.
        "alertmanager_url": without_credentials(&config.alertmanager_url),
        "prometheus_url": without_credentials(&config.prometheus_url),
        "plugins": plugins.iter().map(|p| plugin_summary(p)).collect::<Vec<_>>(),
        "plugins_rejected": plugins
            .rejections()
            .iter()
            .map(|r| json!({ "file": r.file, "reason": r.reason }))
            .collect::<Vec<_>>(),
        "container_engine": container_engine,
        "engines": engines,
        "allocator": host.runtime.allocator(),
        "cooldowns": cooldowns,
        "breaker": breaker,
        "budget": host.remediator.budget_report(),
        "approvals_pending": host.remediator.pending_approvals().len(),
        "verifying": verifying,
        "cluster": cluster.map(|(status, replicas)| {
            let mut value = serde_json::to_value(status).unwrap_or_default();
            value["replicas"] = json!(replicas);
            value
        }),
    });
    if ready {
        return Json(body).into_response();
    }
    body["error"] = json!(host.startup.describe());
    let mut response = (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
    response.headers_mut().insert(
        axum::http::header::RETRY_AFTER,
        axum::http::HeaderValue::from_static(crate::startup::RETRY_AFTER_SEC),
    );
    response
}

/// `url` without a user or password: `GET /` takes only the read token.
fn without_credentials(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut parsed) if !parsed.username().is_empty() || parsed.password().is_some() => {
            let _ = parsed.set_username("");
            let _ = parsed.set_password(None);
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

/// One loaded plugin as `GET /` shows it.
fn plugin_summary(plugin: &Plugin) -> Value {
    json!({
        "name": plugin.manifest.name,
        "version": plugin.manifest.version,
        "description": plugin.manifest.description,
        "alertnames": plugin.manifest.matcher.alertnames,
        "labels": plugin.manifest.matcher.labels,
        "containers": plugin.manifest.containers,
        "component_hash": plugin.component.hash,
        "language": plugin.manifest.language.as_str(),
        "approval": if plugin.manifest.approval_required { "required" } else { "none" },
        "verify_within_sec": plugin.manifest.verify_within.map(|d| d.as_secs_f64()),
        "escalate": plugin.manifest.escalate,
    })
}
