//! `GET /`: what the host is, what it serves, and whether its container
//! engine answers.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::app::Host;
use autoheal_api::status::{
    ApprovalPolicy, BreakerReport, BreakerSource, ClusterReport, ContainerRestarts, CooldownEntry,
    DeferredEntry, EffectBreakerReport, EngineReach, MaintenanceWindow, PluginRejection, PluginSummary,
    Readiness, StatusAnswer, VerifyingEntry,
};
use autoheal_core::mode::{DryRunReason, ExecutionMode};
use autoheal_core::util::unix_now;
use autoheal_sandbox::registry::Plugin;

use crate::maintenance::{Phase, Window};

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
            // The replicas listed now, and the claims held; not asked
            // while etcd does not answer, so that `GET /` stays quick
            // during an outage.
            let (members, claims) = match cluster.is_available() {
                true => (
                    cluster.members().await.unwrap_or_default(),
                    cluster.held_claims().await.unwrap_or_default(),
                ),
                false => (Vec::new(), Vec::new()),
            };
            Some((cluster.status(), members, claims))
        }
        None => None,
    };
    // What an action would do now: no claim, no real action.
    if cluster.as_ref().is_some_and(|(c, _, _)| !c.available) && mode == ExecutionMode::Real {
        (mode, dry_run_reason) = (ExecutionMode::DryRun, Some(DryRunReason::ClusterUnavailable));
    }
    // Every engine, the default first, each asked once and all at once;
    // `container_engine` is the default's.
    let engines: Vec<EngineReach> = host
        .containers
        .reachability(ENGINE_PROBE_TIMEOUT)
        .await
        .into_iter()
        .map(|reach| {
            let (version, error) = match reach.version {
                Ok(version) => (Some(version), None),
                Err(error) => (None, Some(error)),
            };
            EngineReach {
                name: Some(reach.name),
                address: reach.address,
                reachable: version.is_some(),
                version,
                error,
            }
        })
        .collect();
    let container_engine = engines.first().cloned().map(|default| EngineReach {
        name: None,
        ..default
    });
    // The breaker a replica decides by is the cluster's: asked only while
    // etcd answers, like the members above.
    let breaker = host
        .breakers
        .restart
        .usage(host.cluster.as_ref().is_some_and(|c| c.is_available()))
        .await;
    let mut effect_breakers = Vec::new();
    for effect in [&host.breakers.signal, &host.breakers.exec] {
        let usage = effect.usage(false).await;
        effect_breakers.push(EffectBreakerReport {
            capability: effect.capability().as_str().to_owned(),
            max: usage.max_restarts,
            window_sec: usage.window_sec,
            containers: usage.containers.into_iter().map(container_restarts).collect(),
        });
    }
    let cooldowns = host
        .remediator
        .active_cooldowns()
        .into_iter()
        .map(|c| CooldownEntry {
            key: c.key,
            alertname: c.alertname,
            remaining_sec: c.remaining_sec.ceil() as u64,
        })
        .collect();
    let verifying = host
        .remediator
        .verifying()
        .into_iter()
        .map(|w| VerifyingEntry {
            alertname: w.alert.alertname().to_owned(),
            fingerprint: w.alert.fingerprint.clone(),
            plugin: w.plugin,
            step: w.chain.step,
            chain: w.chain.chain,
            deadline: w.deadline,
            dry_run: w.dry_run,
        })
        .collect();
    let deferred = host
        .remediator
        .held()
        .into_iter()
        .map(|hold| DeferredEntry {
            alertname: hold.alert.alertname().to_owned(),
            fingerprint: hold.alert.fingerprint.clone(),
            plugin: hold.plugin,
            until: hold.until,
            retry: hold.retry.map(|r| r.reason.as_str().to_owned()),
        })
        .collect();
    let budget = host.remediator.budget_report();
    let ready = host.startup.is_ready();
    let disk = crate::audit_disk::measure(host.audit.path());
    let body = StatusAnswer {
        service: "autoheal".to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        status: if ready {
            Readiness::Ready
        } else {
            Readiness::Starting
        },
        startup: host.startup.progress(),
        enabled: switches.enabled,
        dry_run: switches.dry_run,
        mode,
        dry_run_reason,
        audit_path: host.audit.path().display().to_string(),
        audit_writable: host.audit.is_writable(),
        audit_bytes: disk.trail_bytes,
        audit_filesystem_free_bytes: disk.free_bytes,
        plugins_dir: config.plugins_dir.display().to_string(),
        // Where the CLI (`autoheal silences`, `vision`, `smoke`) finds them
        // when it is not told.
        alertmanager_url: without_credentials(config.alertmanager.primary()),
        alertmanager_urls: config
            .alertmanager
            .urls()
            .iter()
            .map(|url| without_credentials(url))
            .collect(),
        prometheus_url: without_credentials(&config.prometheus_url),
        plugins: plugins.iter().map(|p| plugin_summary(p)).collect(),
        plugins_rejected: plugins
            .rejections()
            .iter()
            .map(|r| PluginRejection {
                file: r.file.clone(),
                reason: r.reason.clone(),
            })
            .collect(),
        plugin_compiling: host
            .compiles
            .list()
            .into_iter()
            .map(|c| autoheal_api::status::PluginCompiling {
                name: c.manifest.name,
                version: c.manifest.version,
                file: c.file,
                component_bytes: c.component_bytes,
                since: c.since,
            })
            .collect(),
        container_engine,
        engines,
        allocator: host.runtime.allocator().as_str().to_owned(),
        cooldowns,
        breaker: BreakerReport {
            max_restarts: breaker.max_restarts,
            window_sec: breaker.window_sec,
            source: match breaker.source {
                "cluster" => BreakerSource::Cluster,
                _ => BreakerSource::Local,
            },
            shared_error: breaker.shared_error,
            containers: breaker.containers.into_iter().map(container_restarts).collect(),
        },
        effect_breakers,
        budget,
        approvals_pending: host.remediator.pending_approvals().len(),
        verifying,
        maintenance: maintenance_windows(&config.maintenance, unix_now()),
        deferred,
        cluster: cluster.map(|(status, replicas, claims)| ClusterReport {
            replica: status.replica,
            etcd: status.etcd,
            available: status.available,
            since: status.since,
            error: status.error,
            replicas,
            claims,
        }),
        memory: crate::memory::resident(),
        error: (!ready).then(|| host.startup.describe()),
    };
    if ready {
        return Json(body).into_response();
    }
    let response = (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
    super::retry_after(response, crate::startup::RETRY_AFTER_SEC)
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
fn plugin_summary(plugin: &Plugin) -> PluginSummary {
    let manifest = &plugin.manifest;
    PluginSummary {
        name: manifest.name.clone(),
        version: manifest.version.clone(),
        description: manifest.description.clone(),
        alertnames: manifest.matcher.alertnames.clone(),
        labels: manifest.matcher.labels.clone(),
        containers: manifest.containers.clone(),
        component_hash: plugin.component.hash.clone(),
        language: manifest.language.as_str().to_owned(),
        approval: match manifest.approval_required {
            true => ApprovalPolicy::Required,
            false => ApprovalPolicy::None,
        },
        verify_within_sec: manifest.verify_within.map(|d| d.as_secs_f64()),
        escalate: manifest.escalate.clone(),
        firing_for_sec: manifest.firing_for.map(|d| d.as_secs_f64()),
    }
}

/// Each maintenance window at `now`: open and until when, or when it opens next.
fn maintenance_windows(windows: &[Window], now: f64) -> Vec<MaintenanceWindow> {
    windows
        .iter()
        .map(|window| {
            let until = match window.phase_at(now) {
                Phase::Open { until, .. } => Some(until),
                Phase::Closed => None,
            };
            let next_start = window.next_start_after(now);
            let rfc3339 = |at: Option<f64>| at.map(|at| window.schedule.rfc3339(at));
            MaintenanceWindow {
                name: window.name.clone(),
                schedule: window.schedule.text().to_owned(),
                timezone: window.schedule.zone().to_owned(),
                duration_sec: window.duration.as_secs_f64(),
                open: until.is_some(),
                until,
                until_rfc3339: rfc3339(until),
                next_start,
                next_start_rfc3339: rfc3339(next_start),
                plugins: window.scope.plugins.clone(),
                matchers: window.scope.text.clone(),
                reason: window.reason.clone(),
            }
        })
        .collect()
}

/// A breaker's count for one container, as `GET /` shows it.
fn container_restarts(c: autoheal_sandbox::breaker::ContainerUsage) -> ContainerRestarts {
    ContainerRestarts {
        container: c.container,
        spent: c.spent,
        allowed: c.allowed,
        open: c.open,
        frees_at: c.frees_at,
        frees_in_sec: c.frees_in_sec,
    }
}
