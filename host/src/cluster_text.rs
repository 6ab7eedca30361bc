//! The cluster part of `autoheal status`: this replica, whether etcd
//! answers (and what that means for actions), the replicas listed and the
//! claims held, from `GET /`'s `cluster` object. Text only, so that it is
//! tested without a cluster.

use autoheal::cluster::MEMBER_TTL_SEC;
use autoheal_api::status::ClusterReport;
use autoheal_core::util::age_text;

/// The lines `autoheal status` prints for `cluster`, as seen at `now`
/// (unix seconds).
pub fn render_cluster(cluster: &ClusterReport, now: f64) -> String {
    let mut out = format!(
        "  cluster: replica {}, etcd {}\n",
        cluster.replica,
        cluster.etcd.join(", ")
    );
    let since = format!(
        "since {} ({} ago)",
        utc(cluster.since),
        age_text(now - cluster.since)
    );
    if !cluster.available {
        // What an operator must know first: nothing is done for real.
        out.push_str(&format!(
            "    etcd UNAVAILABLE {since}: {}\n",
            cluster.error.as_deref().unwrap_or("no answer")
        ));
        out.push_str(
            "    actions run in dry-run (cluster_unavailable) until etcd answers; the alerts \
             decided meanwhile are decided again, if still firing, once it does\n",
        );
        out.push_str("    replicas and claims: unknown while etcd does not answer\n");
        return out;
    }
    out.push_str(&format!("    etcd available {since}\n"));
    // A replica renews its entry every few seconds on a lease of
    // MEMBER_TTL_SEC: listed means up and reaching etcd now.
    out.push_str(&format!(
        "    replicas ({}; a replica that is down or cut off from etcd leaves this list within {MEMBER_TTL_SEC} s):\n",
        cluster.replicas.len()
    ));
    for member in &cluster.replicas {
        let this = if member.replica == cluster.replica {
            " (this replica)"
        } else {
            ""
        };
        out.push_str(&format!(
            "      {} {} — up, renewed {} ago{this}\n",
            member.replica,
            member.url,
            age_text(now - member.seen)
        ));
    }
    if !cluster.replicas.iter().any(|m| m.replica == cluster.replica) {
        // It registers within seconds of reaching etcd: missing for longer
        // means its registration fails (see its host_warning events).
        out.push_str(&format!(
            "      {} — NOT LISTED: the others cannot reach it (it registers within seconds of reaching etcd)\n",
            cluster.replica
        ));
    }
    if cluster.claims.is_empty() {
        out.push_str("    claims: none held\n");
        return out;
    }
    out.push_str(&format!("    claims ({}):\n", cluster.claims.len()));
    for claim in &cluster.claims {
        out.push_str(&format!(
            "      {} — held by {} ({}), runs out in {} (at {})\n",
            claim.key,
            claim.replica,
            claim.plugin,
            age_text(claim.until - now),
            utc(claim.until)
        ));
    }
    out
}

/// Unix seconds as `2026-12-07 12:00:00 UTC`.
fn utc(at: f64) -> String {
    chrono::DateTime::from_timestamp(at as i64, 0)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| "-".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use autoheal_api::cluster::Member;
    use autoheal_api::status::HeldClaim;

    /// 2026-12-07 12:00:00 UTC.
    const NOW: f64 = 1_796_644_800.0;

    fn report(available: bool) -> ClusterReport {
        ClusterReport {
            replica: "r0".into(),
            etcd: vec!["http://10.0.0.1:2379".into(), "http://10.0.0.2:2379".into()],
            available,
            since: NOW - 300.0,
            error: (!available).then(|| "etcd request timed out after 1s".into()),
            replicas: vec![
                Member {
                    replica: "r0".into(),
                    url: "http://10.0.1.1:9009".into(),
                    seen: NOW - 2.0,
                },
                Member {
                    replica: "r1".into(),
                    url: "http://10.0.1.2:9009".into(),
                    seen: NOW - 1.0,
                },
            ],
            claims: vec![HeldClaim {
                key: "restart-crm-api|TcpEndpointDownFast".into(),
                replica: "r1".into(),
                plugin: "restart-crm-api".into(),
                at: NOW - 60.0,
                until: NOW + 540.0,
            }],
        }
    }

    #[test]
    fn clusterops_an_available_cluster_shows_its_replicas_and_who_holds_each_claim() {
        let text = render_cluster(&report(true), NOW);
        assert_eq!(
            text,
            "  cluster: replica r0, etcd http://10.0.0.1:2379, http://10.0.0.2:2379\n\
             \x20   etcd available since 2026-12-07 11:55:00 UTC (5m ago)\n\
             \x20   replicas (2; a replica that is down or cut off from etcd leaves this list within 10 s):\n\
             \x20     r0 http://10.0.1.1:9009 — up, renewed 2s ago (this replica)\n\
             \x20     r1 http://10.0.1.2:9009 — up, renewed 1s ago\n\
             \x20   claims (1):\n\
             \x20     restart-crm-api|TcpEndpointDownFast — held by r1 (restart-crm-api), runs out in 9m (at 2026-12-07 12:09:00 UTC)\n"
        );
    }

    #[test]
    fn clusterops_an_unavailable_cluster_says_actions_run_in_dry_run_and_lists_nothing() {
        let text = render_cluster(&report(false), NOW);
        assert!(
            text.contains(
                "etcd UNAVAILABLE since 2026-12-07 11:55:00 UTC (5m ago): etcd request timed out after 1s\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("actions run in dry-run (cluster_unavailable)"),
            "{text}"
        );
        assert!(text.contains("replicas and claims: unknown"), "{text}");
        // What GET / may still carry is not shown as if it were current.
        assert!(!text.contains("r1"), "{text}");
    }

    #[test]
    fn clusterops_a_replica_missing_from_the_list_and_no_claims_are_said() {
        let mut cluster = report(true);
        cluster.replicas.remove(0);
        cluster.claims.clear();
        let text = render_cluster(&cluster, NOW);
        assert!(text.contains("replicas (1;"), "{text}");
        assert!(text.contains("      r0 — NOT LISTED"), "{text}");
        assert!(text.ends_with("    claims: none held\n"), "{text}");
    }
}
