//! Remediation policies with real components: Alertmanager delivers, the
//! bundled plugin restarts a real container through Podman, headless
//! Chromium clicks Approve in the console, and autoheal's own alerts reach
//! a team's receiver behind the same Alertmanager.

use std::time::Duration;

use serde_json::{Value, json};

use crate::console::Browser;
use crate::e2e::crm_manifest;
use crate::notify::Receiver;
use crate::real::*;
use crate::support::*;

const WAIT: Duration = Duration::from_secs(60);

/// Podman with one container, a real Alertmanager (autoheal's webhook, and
/// `Autoheal.*` to `receiver`), and the host acting for real with `plugins`
/// made from the bundled manifest aimed at the container.
struct Stack {
    podman: Podman,
    container: String,
    am: Alertmanager,
    host: ServedHost,
}

impl Stack {
    async fn start(receiver: &Receiver, plugins: impl FnOnce(&str) -> Vec<(&'static str, String)>) -> Stack {
        let podman = Podman::start();
        let container = unique("crm-api");
        podman.run_httpd(&container, free_port());
        let port = free_port();
        let am = Alertmanager::start_with_notify(&format!("http://127.0.0.1:{port}/alert"), &receiver.url);
        let am_url = am.url.clone();
        let host = ServedHost::start_on(port, &plugins(&container), podman.runtime(), move |c| {
            real(c);
            c.circuit_breaker.max_restarts = 100;
            c.alertmanager_url = am_url.into();
            c.notify.enabled = true;
            c.notify.hold = "2s".into();
        })
        .await;
        Stack {
            podman,
            container,
            am,
            host,
        }
    }

    fn labels(&self) -> Value {
        json!({ "alertname": "TcpEndpointDownFast", "service": self.container, "instance": format!("{}:8000", self.container) })
    }

    fn fire(&self) {
        self.am.push(self.labels(), json!({ "autoheal": "true" }), None);
    }

    fn resolve(&self) {
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        self.am
            .push(self.labels(), json!({ "autoheal": "true" }), Some(&now));
    }

    fn started_at(&self) -> String {
        self.podman.started_at(&self.container)
    }
}

/// `GET /approvals` over HTTP.
fn approvals(host: &str) -> Vec<Value> {
    let (status, body) = http(host, "GET", "/approvals", "").unwrap();
    assert_eq!(status, 200, "{body}");
    body["pending"].as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_waits_with_its_preview_and_restarts_only_once_approved_in_the_console() {
    let receiver = Receiver::start().await;
    let stack = Stack::start(&receiver, |container| {
        let manifest = crm_manifest(container, "10m") + "\n[policy]\napproval = \"required\"\n";
        vec![("crm.toml", manifest)]
    })
    .await;
    let before = stack.started_at();
    stack.fire();
    let requested = stack.host.wait_for("approval_requested", 1, WAIT).await.remove(0);
    let id = requested["approval"].as_str().unwrap().to_owned();
    let preview = requested["preview"].to_string();
    assert!(
        preview.contains(&format!("restart {} — running, up ", stack.container))
            && preview.contains("restart count 0"),
        "{preview}"
    );
    let listed = approvals(&stack.host.url);
    assert_eq!(listed.len(), 1, "{listed:#?}");
    assert_eq!(listed[0]["approval"], id.as_str());
    // The team hears that something waits for them.
    let asked = receiver.wait_for("AutohealApprovalRequested", "firing").await;
    assert_eq!(asked["labels"]["approval"], id.as_str(), "{asked:#}");
    assert_eq!(stack.started_at(), before, "restarted before anyone approved");

    let host_url = stack.host.url.clone();
    let card = format!("#approvals .approval[data-approval=\"{id}\"]");
    let container = stack.container.clone();
    tokio::task::block_in_place(|| {
        let browser = Browser::start();
        browser.goto(&format!("{host_url}/console"));
        browser.sign_in_as_operator();
        browser.wait_for(
            "the approval's card with its preview",
            Duration::from_secs(15),
            &format!(
                "const card = document.querySelector('{card}');
                 return card !== null && card.querySelector('ul.preview').innerText.includes('restart {container}');"
            ),
        );
        browser.screenshot(&crate::console::artifact("console-approval-pending.png"));
        browser.click(&format!("{card} button.approve"));
        browser.wait_for(
            "the console to say the approval was granted",
            Duration::from_secs(15),
            &format!(
                "return document.querySelector('#approvals .approval-note[data-approval=\"{id}\"][data-outcome=\"granted\"]') !== null;"
            ),
        );
        browser.screenshot(&crate::console::artifact("console-approval.png"));
    });

    let ok = stack.host.wait_for("action_ok", 1, WAIT).await.remove(0);
    assert_eq!(ok["target"], stack.container.as_str());
    assert_ne!(stack.started_at(), before, "the approved restart did not happen");
    let granted = stack.host.audit("approval_granted").await.remove(0);
    assert_eq!(
        (granted["approval"].as_str(), granted["by_comment"].as_str()),
        (Some(id.as_str()), Some("console"))
    );
    receiver.wait_for("AutohealApprovalRequested", "resolved").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unapproved_restart_expires_and_the_container_is_left_alone() {
    let receiver = Receiver::start().await;
    let stack = Stack::start(&receiver, |container| {
        let manifest = crm_manifest(container, "10m")
            + "\n[policy]\napproval = \"required\"\napproval_expires = \"2s\"\n";
        vec![("crm.toml", manifest)]
    })
    .await;
    let before = stack.started_at();
    stack.fire();
    stack.host.wait_for("approval_requested", 1, WAIT).await;
    let expired = stack.host.wait_for("approval_expired", 1, WAIT).await.remove(0);
    assert!(expired.get("by").is_none(), "{expired}");
    // Alertmanager repeats the alert (repeat_interval 3s): the cooldown the
    // preview began holds it, and no second approval is asked for.
    let skip = stack.host.wait_for("decision_skip", 1, WAIT).await.remove(0);
    assert_eq!(skip["reason"], "cooldown", "{skip}");
    stack.host.remediator.drain().await;
    assert_eq!(stack.host.audit("approval_requested").await.len(), 1);
    assert!(stack.host.audit("action_ok").await.is_empty());
    assert_eq!(
        stack.started_at(),
        before,
        "an expired approval restarted the container"
    );
    assert!(approvals(&stack.host.url).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_followed_by_the_alert_resolving_is_verified() {
    let receiver = Receiver::start().await;
    let stack = Stack::start(&receiver, |container| {
        vec![(
            "crm.toml",
            crm_manifest(container, "10m") + "\n[verify]\nwithin = \"1m\"\n",
        )]
    })
    .await;
    let before = stack.started_at();
    stack.fire();
    stack.host.wait_for("action_ok", 1, WAIT).await;
    assert_ne!(stack.started_at(), before);
    stack.resolve();
    let verified = stack
        .host
        .wait_for("remediation_verified", 1, WAIT)
        .await
        .remove(0);
    assert_eq!(verified["plugin"], "restart-crm-api");
    assert_eq!(verified["dry_run"], false);
    assert!(
        verified["time_to_recover_sec"].as_f64().unwrap() > 0.0,
        "{verified}"
    );
    assert!(stack.host.audit("remediation_ineffective").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_that_does_not_help_escalates_then_tells_the_team() {
    let receiver = Receiver::start().await;
    let stack = Stack::start(&receiver, |container| {
        let first = crm_manifest(container, "10m")
            + "\n[verify]\nwithin = \"3s\"\n[escalate]\nthen = [\"restart-crm-api-again\"]\n";
        let second = crm_manifest(container, "10m")
            .replace("name = \"restart-crm-api\"", "name = \"restart-crm-api-again\"")
            .replace(
                "alertnames = [\"TcpEndpointDownFast\", \"UptimeProbeFailing\", \"CrmMetricsScrapeStale\"]",
                "alertnames = [\"NotThisOne\"]",
            );
        vec![("crm.toml", first), ("again.toml", second)]
    })
    .await;
    let before = stack.started_at();
    stack.fire();
    stack.host.wait_for("action_ok", 1, WAIT).await;
    let first_restart = stack.started_at();
    assert_ne!(first_restart, before);

    // Still firing after 3 s: the chain's next plugin restarts it again.
    let steps = stack.host.wait_for("remediation_ineffective", 2, WAIT).await;
    assert_eq!(
        (steps[0]["plugin"].as_str(), steps[0]["next"].as_str()),
        (Some("restart-crm-api"), Some("restart-crm-api-again"))
    );
    assert_eq!(steps[1]["plugin"], "restart-crm-api-again");
    assert!(steps[1].get("next").is_none(), "{}", steps[1]);
    let oks = stack.host.audit("action_ok").await;
    assert_eq!(oks.len(), 2, "{oks:#?}");
    assert_eq!(oks[1]["plugin"], "restart-crm-api-again");
    assert_ne!(stack.started_at(), first_restart, "the second step restarted it");

    // The console shows the alert's chain, both steps ineffective.
    let host_url = stack.host.url.clone();
    tokio::task::block_in_place(|| {
        let browser = Browser::start();
        browser.goto(&format!("{host_url}/console"));
        browser.wait_for(
            "the chain with its two ineffective steps",
            Duration::from_secs(15),
            "const chain = document.querySelector('#chains .chain-outcome[data-state=\"ineffective\"]');
             return chain !== null
                 && chain.querySelectorAll('.step[data-outcome=\"ineffective\"]').length === 2
                 && chain.innerText.includes('2. restart-crm-api-again');",
        );
        browser.screenshot(&crate::console::artifact("console-chain.png"));
    });

    let told = receiver
        .wait_for("AutohealRemediationIneffective", "firing")
        .await;
    assert_eq!(told["labels"]["plugin"], "restart-crm-api-again", "{told:#}");
    assert_eq!(
        told["labels"]["autoheal_alertname"], "TcpEndpointDownFast",
        "{told:#}"
    );
    let metrics = stack.host.host.metrics.render(2, &[], &[]);
    assert!(
        metrics.contains(
            "autoheal_remediations_total{mode=\"real\",outcome=\"ineffective\",plugin=\"restart-crm-api\"} 1"
        ),
        "{metrics}"
    );
}
