//! `autoheal vision`: the report as lines for a terminal (the original
//! `make show-breach` and `make vision-verify`).

use std::fmt::Write;

use super::{RunwayStatus, VisionReport};

/// The report as text for a terminal (`autoheal vision`).
pub fn render_text(report: &VisionReport) -> String {
    let mut out = String::new();
    let line = |out: &mut String, label: &str, text: String| {
        let _ = writeln!(out, "{label:<16}{text}");
    };

    let prometheus = &report.prometheus;
    let rules = match prometheus.rules {
        Some(r) if r.failing > 0 => format!(
            ", {} recording and {} alerting rules loaded, {} FAILING",
            r.recording, r.alerting, r.failing
        ),
        Some(r) => format!(
            ", {} recording and {} alerting rules loaded",
            r.recording, r.alerting
        ),
        None => String::new(),
    };
    line(
        &mut out,
        "Prometheus",
        format!(
            "{} {}{rules}",
            prometheus.source.url,
            reachability(&prometheus.source)
        ),
    );
    line(
        &mut out,
        "Alertmanager",
        format!(
            "{} {}",
            report.alertmanager.url,
            reachability(&report.alertmanager)
        ),
    );

    match &report.slo {
        None => line(
            &mut out,
            "Days to breach",
            "unknown (Prometheus unreachable)".into(),
        ),
        Some(slo) if slo.status == RunwayStatus::NoData => line(
            &mut out,
            "Days to breach",
            "no data (no crm_payments_total series: is the CRM or the payment simulator scraped?)".into(),
        ),
        Some(slo) => {
            let days = slo.days_to_breach.unwrap_or_default();
            let runway = if slo.no_breach_foreseen {
                format!("{days:.0}+ d (no breach foreseen at the current burn)")
            } else {
                format!("{days:.1} d ({})", slo.status.as_str())
            };
            line(&mut out, "Days to breach", runway);
            line(
                &mut out,
                "Runway",
                format!(
                    "{} conservative; {} at the 1h burn, {} at the 6h burn",
                    hours(slo.hours_to_breach),
                    hours(slo.hours_to_breach_1h),
                    hours(slo.hours_to_breach_6h)
                ),
            );
            line(
                &mut out,
                "Error budget",
                format!(
                    "{} remaining; burn rate {} (1h), {} (6h); objective {} over {:.0} d",
                    percent(slo.error_budget_remaining),
                    times(slo.burn_rate_1h),
                    times(slo.burn_rate_6h),
                    percent(slo.objective),
                    slo.window_hours / 24.0
                ),
            );
        }
    }

    match &report.alerts {
        None => line(
            &mut out,
            "Alerts firing",
            "unknown (Alertmanager unreachable)".into(),
        ),
        Some(a) => {
            line(
                &mut out,
                "Alerts firing",
                format!(
                    "{} ({} critical, {} warning, {} info, {} other)",
                    a.firing, a.critical, a.warning, a.info, a.other
                ),
            );
            for alert in &a.list {
                let severity = if alert.severity.is_empty() {
                    "-"
                } else {
                    &alert.severity
                };
                let _ = writeln!(out, "  {severity:<9} {} {}", alert.alertname, alert.summary);
            }
        }
    }

    match &report.probes {
        None => line(&mut out, "Probes up", "unknown (Prometheus unreachable)".into()),
        Some(p) => line(
            &mut out,
            "Probes up",
            format!(
                "{} ({} http, {} tcp)",
                count(p.up),
                count(p.http_up),
                count(p.tcp_up)
            ),
        ),
    }

    let autoheal = &report.autoheal;
    let state = match autoheal.enabled {
        None => "unknown (not scraped by Prometheus)".to_owned(),
        Some(enabled) => {
            let mut state = if enabled { "enabled" } else { "disabled" }.to_owned();
            if autoheal.dry_run == Some(true) {
                state.push_str(", dry-run");
            }
            let last = match autoheal.last_action_age_sec {
                Some(age) => format!("last action {} ago", autoheal_core::util::age_text(age)),
                None => "no action yet".to_owned(),
            };
            format!("{state}; {last} (as seen by {})", autoheal.source)
        }
    };
    line(&mut out, "Autoheal", state);
    out
}

fn reachability(source: &super::Source) -> String {
    match (&source.error, source.reachable) {
        (None, _) => "(ok)".into(),
        (Some(e), true) => format!("(ok, but: {e})"),
        (Some(e), false) => format!("UNREACHABLE ({e})"),
    }
}

fn hours(value: Option<f64>) -> String {
    value.map_or("n/a".into(), |h| format!("{h:.1} h"))
}

fn percent(value: Option<f64>) -> String {
    value.map_or("n/a".into(), |v| format!("{:.2} %", v * 100.0))
}

fn times(value: Option<f64>) -> String {
    value.map_or("n/a".into(), |v| format!("{v:.2}x"))
}

fn count(value: Option<f64>) -> String {
    value.map_or("n/a".into(), |v| format!("{v:.0}"))
}
