//! The bundled plugins that use the container calls, each through the real
//! server against a real Podman, with their shipped manifests (only the
//! container and service names changed to this test's, and the uptime
//! guards lowered for containers a few seconds old — said where it is done):
//! `reload-config` makes a busybox httpd re-read its config (its answers
//! change), `run-fix` runs its allowed command (its marker appears),
//! `restart-on-log-pattern` restarts only the container whose log shows the
//! pattern, `restart-service` restarts every container of a compose service
//! found by its label, and nothing else.

use std::time::Duration;

use serde_json::{Value, json};

use crate::real::{Podman, ServedHost, free_port, unique, wait_until};

/// The shipped manifest of `plugin`, with `replace` applied (text, by).
pub(crate) fn shipped(plugin: &str, replace: &[(&str, &str)]) -> (String, String) {
    let path = format!("{}/../plugins/{plugin}/{plugin}.toml", env!("CARGO_MANIFEST_DIR"));
    let mut text = std::fs::read_to_string(&path).unwrap();
    for (from, to) in replace {
        assert!(text.contains(from), "{plugin}.toml has no {from:?}");
        text = text.replace(from, to);
    }
    (format!("{plugin}.toml"), text)
}

/// A firing alert with exactly these labels, opted in.
pub(crate) fn alert(labels: Value) -> Value {
    json!({
        "status": "firing",
        "labels": labels,
        "annotations": { "autoheal": "true" },
        "startsAt": "2026-11-23T10:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus/graph",
        "fingerprint": format!("{:x}", rand_fingerprint(&labels)),
    })
}

fn rand_fingerprint(labels: &Value) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    labels.to_string().hash(&mut hasher);
    hasher.finish()
}

/// GET `path` from 127.0.0.1:`port`: the status code.
fn status_of(port: u16, path: &str) -> u16 {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return 0;
    };
    let _ = write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0)
}

fn podman_exec(podman: &Podman, container: &str, script: &str) -> String {
    let out = podman
        .cmd()
        .args(["exec", container, "/bin/busybox", "sh", "-c", script])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

async fn actions(host: &ServedHost, count: usize) -> Vec<Value> {
    host.wait_for(
        "action_ok,action_fail,action_skipped,action_dry_run",
        count,
        Duration::from_secs(90),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_config_makes_httpd_reread_its_config_and_run_fix_runs_its_command() {
    let podman = Podman::start();
    let (httpd, cache) = (unique("edge-httpd"), unique("crm-cache"));
    let port = free_port();
    // httpd is the main process (exec), so that SIGHUP reaches it; busybox
    // httpd re-reads its config file on SIGHUP.
    podman.run_script(
        &httpd,
        &[],
        &format!(
            "mkdir -p /www && echo hello > /www/index.html && : > /httpd.conf && \
             exec /bin/busybox httpd -f -p 127.0.0.1:{port} -h /www -c /httpd.conf"
        ),
    );
    podman.run_script(&cache, &[], "sleep 3600");
    wait_until("httpd", Duration::from_secs(20), || {
        (status_of(port, "/index.html") == 200).then_some(())
    });
    // The config the reload must make it read: every page behind a password.
    podman_exec(&podman, &httpd, "echo '/:admin:secret' > /httpd.conf");
    assert_eq!(
        status_of(port, "/index.html"),
        200,
        "the new config is not read before the signal"
    );

    let plugins = [
        shipped(
            "reload-config",
            &[("\"edge-httpd\", \"edge-nginx\"", &format!("{httpd:?}"))],
        ),
        shipped(
            "run-fix",
            &[
                ("\"crm-cache\"]", &format!("{cache:?}]")),
                ("container = \"crm-cache\"", &format!("container = {cache:?}")),
                (
                    "argv = [\"redis-cli\", \"FLUSHDB\"]",
                    "argv = [\"/bin/busybox\", \"touch\", \"/cache-flushed\"]",
                ),
                (
                    "command = \"redis-cli FLUSHDB\"",
                    "command = \"/bin/busybox touch /cache-flushed\"",
                ),
            ],
        ),
    ];
    let plugins: Vec<(&str, String)> = plugins.iter().map(|(f, t)| (f.as_str(), t.clone())).collect();
    let host = ServedHost::start_staged(
        0,
        &["reload_config", "run_fix"],
        &plugins,
        podman.runtime(),
        crate::support::real,
    )
    .await;
    host.post_alerts(json!([
        alert(json!({ "alertname": "ConfigReloadNeeded", "container": httpd })),
        alert(json!({ "alertname": "CacheStale", "service": "crm-cache" })),
    ]))
    .await;
    let events = actions(&host, 2).await;
    let of = |plugin: &str| events.iter().find(|e| e["plugin"] == plugin).cloned().unwrap();

    let reload = of("reload-config");
    assert_eq!(reload["kind"], "action_ok", "{reload:#}");
    assert_eq!(
        reload["calls"].as_array().unwrap().last().unwrap()["capability"],
        "containers.signal"
    );
    wait_until("httpd to ask for the password", Duration::from_secs(10), || {
        (status_of(port, "/index.html") == 401).then_some(())
    });
    let state = podman
        .cmd()
        .args(["inspect", "--format", "{{.State.Status}}", &httpd])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&state.stdout).trim(),
        "running",
        "reloaded, not restarted"
    );

    let fix = of("run-fix");
    assert_eq!(fix["kind"], "action_ok", "{fix:#}");
    assert_eq!(
        podman_exec(&podman, &cache, "ls /cache-flushed"),
        "/cache-flushed\n"
    );
    assert_eq!(
        host.audit("effect_intent").await.len(),
        2,
        "a signal and a command, each an intent first"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_pattern_plugin_restarts_only_the_container_whose_log_shows_it() {
    let podman = Podman::start();
    let (bad, good) = (unique("crm-worker"), unique("billing-worker"));
    podman.run_script(
        &bad,
        &[],
        "echo starting; echo 'ERROR connection pool exhausted'; sleep 3600",
    );
    podman.run_script(&good, &[], "echo starting; echo 'all fine'; sleep 3600");
    let before = (podman.started_at(&bad), podman.started_at(&good));
    let plugins = [shipped(
        "restart-on-log-pattern",
        &[
            (
                "\"crm-worker\", \"billing-worker\"",
                &format!("{bad:?}, {good:?}"),
            ),
            // The containers are seconds old: the shipped guard (300 s) would skip both.
            ("min_uptime_sec = \"300\"", "min_uptime_sec = \"0\""),
        ],
    )];
    let plugins: Vec<(&str, String)> = plugins.iter().map(|(f, t)| (f.as_str(), t.clone())).collect();
    let host = ServedHost::start_staged(
        0,
        &["restart_on_log_pattern"],
        &plugins,
        podman.runtime(),
        crate::support::real,
    )
    .await;
    host.post_alerts(json!([
        alert(json!({ "alertname": "ContainerLogErrors", "container": bad })),
        alert(json!({ "alertname": "ContainerLogErrors", "container": good })),
    ]))
    .await;
    let events = actions(&host, 2).await;
    let about = |name: &str| {
        events
            .iter()
            .find(|e| e["calls"][0]["target"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no action on {name}: {events:#?}"))
    };
    let acted = about(&bad);
    assert_eq!(acted["kind"], "action_ok", "{acted:#}");
    assert_eq!(acted["targets"], json!([bad]));
    let declined = about(&good);
    assert_eq!(declined["kind"], "action_skipped", "{declined:#}");
    assert_eq!(declined["calls"][0]["capability"], "containers.logs");
    assert_ne!(podman.started_at(&bad), before.0, "{bad} restarted");
    assert_eq!(podman.started_at(&good), before.1, "{good} left alone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_service_restarts_every_container_of_the_service_found_by_label() {
    let podman = Podman::start();
    let service = unique("svc");
    let label = format!("com.docker.compose.service={service}");
    let members = [unique("app-1"), unique("app-2")];
    for member in &members {
        podman.run_script(member, &[&label], "sleep 3600");
    }
    let other = unique("other-1");
    podman.run_script(&other, &["com.docker.compose.service=crm-worker"], "sleep 3600");
    let before: Vec<String> = members.iter().map(|m| podman.started_at(m)).collect();
    let other_before = podman.started_at(&other);
    let plugins = [shipped(
        "restart-service",
        &[
            ("com.docker.compose.service=crm-api\"", &format!("{label}\"")),
            // Seconds-old containers; the shipped guard is 60 s.
            ("min_uptime_sec = \"60\"", "min_uptime_sec = \"0\""),
        ],
    )];
    let plugins: Vec<(&str, String)> = plugins.iter().map(|(f, t)| (f.as_str(), t.clone())).collect();
    let host = ServedHost::start_staged(
        0,
        &["restart_service"],
        &plugins,
        podman.runtime(),
        crate::support::real,
    )
    .await;
    host.post_alerts(json!([alert(
        json!({ "alertname": "ServiceDegraded", "service": service })
    )]))
    .await;
    let events = actions(&host, 1).await;
    let acted = &events[0];
    assert_eq!(acted["kind"], "action_ok", "{acted:#}");
    let mut targets: Vec<String> = acted["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_owned())
        .collect();
    targets.sort();
    assert_eq!(targets, members.to_vec());
    for (member, before) in members.iter().zip(&before) {
        assert_ne!(&podman.started_at(member), before, "{member} restarted");
    }
    assert_eq!(
        podman.started_at(&other),
        other_before,
        "another service's container is left alone"
    );
    assert_eq!(acted["calls"][0]["capability"], "containers.list-by-label");
}
