//! Approver policy per plugin (issue 37): `[policy] approvers` and
//! `approvals_required`, driven at the remediator with constructed
//! principals (as the guard would hand them) against a real host: several
//! approvals, the same approver twice, the requester alone, a deny, the
//! policy's refusals, and grants kept across a restart.

use std::sync::Arc;

use serde_json::{Value, json};

use autoheal::auth::{Grant, Plugins, Principal, PrincipalKind, Role, Scope};
use autoheal::config::RawConfig;
use autoheal::remediation::{ApprovalDecided, ApprovalError, Remediator};
use autoheal_core::event::{EventBody, WebhookReceived};

use crate::support::*;

fn real_no_cooldown(config: &mut RawConfig) {
    real(config);
    config.default_cooldown_sec = 0;
}

/// A person with the approver role on every plugin.
fn person(id: &str, name: &str, groups: &[&str]) -> Principal {
    Principal {
        kind: PrincipalKind::Person,
        id: id.into(),
        name: Some(name.into()),
        groups: groups.iter().map(|g| g.to_string()).collect(),
        grants: vec![Grant {
            role: Role::Approver,
            plugins: Plugins::All,
            rule: "[[auth.roles]] group = \"sre\"".into(),
        }],
    }
}

fn plugin_needing(policy: &str) -> (&'static str, String) {
    crm_plugin_with(&format!(
        "[policy]\napproval = \"required\"\napproval_expires = \"15m\"\n{policy}"
    ))
}

/// Sends the alert as `requester` would through `POST /alert`; the id of
/// the approval it asked for.
async fn requested_by(h: &Harness, requester: Option<&Principal>) -> String {
    let alerts = serde_json::from_value(json!([opted_in("TcpEndpointDownFast")])).unwrap();
    let received = EventBody::WebhookReceived(WebhookReceived {
        alerts: 1,
        decisions: None,
        group_key: None,
        receiver: None,
        status: None,
        truncated_alerts: None,
    });
    let actor = requester.map(autoheal::remediation::approval_policy::actor);
    h.remediator
        .process_webhook_from(received, alerts, actor)
        .await
        .unwrap();
    h.remediator.drain().await;
    h.only("approval_requested")["approval"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn grant(
    remediator: &Arc<Remediator>,
    id: &str,
    who: &Principal,
) -> Result<ApprovalDecided, ApprovalError> {
    let decided = remediator
        .decide_approval(id, true, who, Some("typed".into()), None)
        .await;
    remediator.drain().await;
    decided
}

fn names(listing: &Value) -> Vec<&str> {
    listing["approved_by"]
        .as_array()
        .map(|a| a.iter().filter_map(|p| p["name"].as_str()).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_approvers_are_needed_the_same_one_twice_is_refused_and_a_restart_keeps_the_grants() {
    let h = harness(&[plugin_needing("approvals_required = 2")], real_no_cooldown).await;
    let id = requested_by(&h, None).await;
    assert_eq!(h.only("approval_requested")["approvals_required"], 2);
    let alice = person("alice-sub", "Alice", &["sre"]);
    let bob = person("bob-sub", "Bob", &["sre"]);

    let first = grant(&h.remediator, &id, &alice).await.unwrap();
    assert!(
        matches!(
            first,
            ApprovalDecided::Recorded {
                approvals: 1,
                required: 2
            }
        ),
        "{first:?}"
    );
    assert!(h.fake.restarts().is_empty(), "one of two approvals runs nothing");
    let recorded = h.only("approval_recorded");
    assert_eq!(
        (
            &recorded["by"],
            &recorded["by_kind"],
            &recorded["by_name"],
            &recorded["by_comment"]
        ),
        (
            &json!("alice-sub"),
            &json!("person"),
            &json!("Alice"),
            &json!("typed")
        ),
        "{recorded:#}"
    );
    assert_eq!(
        (&recorded["approvals"], &recorded["approvals_required"]),
        (&json!(1), &json!(2))
    );
    let again = grant(&h.remediator, &id, &alice).await.unwrap_err();
    assert!(matches!(again, ApprovalError::AlreadyApproved(_)), "{again}");

    // A restart keeps the grant: the listing says who, and Bob's completes it.
    let h = h.restart(real_no_cooldown).await;
    let listed = serde_json::to_value(h.remediator.pending_approvals()[0].listing(None)).unwrap();
    assert_eq!(names(&listed), vec!["Alice"], "{listed:#}");
    assert_eq!(listed["approvals_required"], 2);
    let again = grant(&h.remediator, &id, &alice).await.unwrap_err();
    assert!(matches!(again, ApprovalError::AlreadyApproved(_)), "{again}");

    let second = grant(&h.remediator, &id, &bob).await.unwrap();
    assert!(matches!(second, ApprovalDecided::Granted(_)), "{second:?}");
    assert_eq!(h.fake.restarts(), vec!["crm-api".to_owned()]);
    let granted = h.only("approval_granted");
    assert_eq!(granted["by"], "bob-sub", "{granted:#}");
    let approved: Vec<&str> = granted["approved_by"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert_eq!(approved, vec!["alice-sub", "bob-sub"], "{granted:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_requester_alone_cannot_approve_and_a_deny_ends_it() {
    let h = harness(&[plugin_needing("")], real_no_cooldown).await;
    let carol = person("carol-sub", "Carol", &["sre"]);
    let id = requested_by(&h, Some(&carol)).await;
    assert_eq!(h.only("approval_requested")["requested_by"]["id"], "carol-sub");
    let own = grant(&h.remediator, &id, &carol).await.unwrap();
    assert!(
        matches!(
            own,
            ApprovalDecided::Recorded {
                approvals: 1,
                required: 1
            }
        ),
        "the one who sent the alert is not enough: {own:?}"
    );
    assert!(h.fake.restarts().is_empty());

    // Someone else's deny ends it, with the grant it had.
    let dave = person("dave-sub", "Dave", &["sre"]);
    let denied = h
        .remediator
        .decide_approval(&id, false, &dave, None, Some("not now".into()))
        .await
        .unwrap();
    assert!(matches!(denied, ApprovalDecided::Denied), "{denied:?}");
    let event = h.only("approval_denied");
    assert_eq!(
        (&event["by"], &event["approved_by"][0]["id"]),
        (&json!("dave-sub"), &json!("carol-sub"))
    );
    assert!(h.remediator.pending_approvals().is_empty());
    let late = grant(&h.remediator, &id, &dave).await.unwrap_err();
    assert!(matches!(late, ApprovalError::NotPending(_)), "{late}");
    assert!(h.fake.restarts().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listed_policy_refuses_others_and_the_shared_token_and_two_listed_approvers_run_it() {
    let policy = "approvers = [\"group:sre\", \"user:erin-sub\"]\napprovals_required = 2";
    let h = harness(&[plugin_needing(policy)], real_no_cooldown).await;
    let webhook = Principal::shared(Scope::Webhook, false);
    let id = requested_by(&h, Some(&webhook)).await;

    let shared = Principal::shared(Scope::Operator, false);
    let refused = grant(&h.remediator, &id, &shared).await.unwrap_err();
    let ApprovalError::Forbidden(message) = refused else {
        panic!("the shared token is no listed approver: {refused}");
    };
    assert!(message.contains("group:sre, user:erin-sub"), "{message}");
    let outsider = person("frank-sub", "Frank", &["dev"]);
    assert!(matches!(
        grant(&h.remediator, &id, &outsider).await,
        Err(ApprovalError::Forbidden(_))
    ));
    // The role is needed too: a listed person without it is refused.
    let no_role = Principal {
        grants: Vec::new(),
        ..person("erin-sub", "Erin", &[])
    };
    let refused = grant(&h.remediator, &id, &no_role).await.unwrap_err();
    assert!(
        refused.to_string().contains("no rule grants approver"),
        "{refused}"
    );
    assert!(
        h.events(&["approval_recorded"]).is_empty(),
        "refusals record no grant"
    );

    let erin = person("erin-sub", "Erin", &[]);
    let sre = person("gina-sub", "Gina", &["sre"]);
    assert!(matches!(
        grant(&h.remediator, &id, &erin).await,
        Ok(ApprovalDecided::Recorded { .. })
    ));
    assert!(matches!(
        grant(&h.remediator, &id, &sre).await,
        Ok(ApprovalDecided::Granted(_))
    ));
    assert_eq!(h.fake.restarts(), vec!["crm-api".to_owned()]);
}

async fn answer_over_http(h: &Harness, id: &str, verb: &str, body: Value) -> (u16, Value) {
    let request = axum::http::Request::post(format!("/approvals/{id}/{verb}"))
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {OPERATOR_TOKEN}"))
        .body(axum::body::Body::from(body.to_string()))
        .unwrap();
    let reply = h.send(request).await;
    h.remediator.drain().await;
    reply
}

async fn listed_over_http(h: &Harness) -> Vec<Value> {
    let request = axum::http::Request::get("/approvals")
        .header("authorization", format!("Bearer {OPERATOR_TOKEN}"))
        .body(axum::body::Body::empty())
        .unwrap();
    let (status, body) = h.send(request).await;
    assert_eq!(status, 200, "{body}");
    body["pending"].as_array().cloned().unwrap_or_default()
}

/// Through the HTTP surface, with the shared operator token: a plugin that
/// lists approvers refuses it (403 naming the policy); one that needs two
/// grants records its first (200 `recorded`, listed) and refuses its second
/// (409), since the token is one principal however many people hold it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shared_operator_token_is_one_approver_and_no_listed_one() {
    let h = harness(&[plugin_needing("approvers = [\"group:sre\"]")], real_no_cooldown).await;
    let id = requested_by(&h, None).await;
    let (status, reply) = answer_over_http(&h, &id, "approve", json!({"by": "alice"})).await;
    assert_eq!(status, 403, "{reply}");
    let error = reply["error"].as_str().unwrap_or_default();
    assert!(error.contains("[policy] approvers are group:sre"), "{reply}");
    assert!(h.fake.restarts().is_empty());

    let h = harness(&[plugin_needing("approvals_required = 2")], real_no_cooldown).await;
    let id = requested_by(&h, None).await;
    let (status, reply) = answer_over_http(&h, &id, "approve", json!({"by": "alice"})).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(
        (
            &reply["outcome"],
            &reply["approvals"],
            &reply["approvals_required"]
        ),
        (&json!("recorded"), &json!(1), &json!(2)),
        "{reply}"
    );
    let listed = listed_over_http(&h).await;
    assert_eq!(listed[0]["approvals_required"], 2, "{listed:#?}");
    assert_eq!(listed[0]["approved_by"][0]["id"], "operator", "{listed:#?}");
    assert_eq!(listed[0]["approved_by"][0]["kind"], "shared_token", "{listed:#?}");
    let (status, reply) = answer_over_http(&h, &id, "approve", json!({"by": "bob"})).await;
    assert_eq!(status, 409, "{reply}");
    assert!(
        reply["error"]
            .as_str()
            .unwrap_or_default()
            .contains("already approved by you"),
        "{reply}"
    );
    assert!(h.fake.restarts().is_empty(), "one principal is one approval");
}

const AM_TOKEN: &str = "alertmanager-named-token-0123";
const ALICE_TOKEN: &str = "alice-cli-named-token-0123456";
const BOB_TOKEN: &str = "bob-cli-named-token-012345678";
const RUNBOOK_TOKEN: &str = "runbook-bot-named-token-01234";

/// `[auth.tokens.NAME]` from files in `dir`: each name with its scopes.
fn tokens_in(
    dir: &std::path::Path,
    tokens: &[(&str, &str, &[&str])],
) -> std::collections::BTreeMap<String, autoheal::config::RawToken> {
    tokens
        .iter()
        .map(|(name, value, scopes)| {
            let file = dir.join(name);
            std::fs::write(&file, format!("{value}\n")).unwrap();
            let token = autoheal::config::RawToken {
                scopes: scopes.iter().map(|s| s.to_string()).collect(),
                plugins: None,
                file: Some(file),
                env: None,
            };
            (name.to_string(), token)
        })
        .collect()
}

async fn post_as(h: &Harness, path: &str, token: &str, body: Value) -> (u16, Value) {
    let request = axum::http::Request::post(path)
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {token}"))
        .body(axum::body::Body::from(body.to_string()))
        .unwrap();
    let reply = h.send(request).await;
    h.remediator.drain().await;
    reply
}

/// The whole path with named tokens and no constructed principal: the alert
/// comes in on Alertmanager's named webhook token, two named approvers are
/// needed; the same one twice is 409, a token outside the policy 403, and
/// the second listed approver runs the action once; the trail names both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_named_approvers_over_http_run_the_action_once_and_the_trail_names_them() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = tokens_in(
        dir.path(),
        &[
            ("alertmanager", AM_TOKEN, &["webhook"]),
            ("alice-cli", ALICE_TOKEN, &["approver"]),
            ("bob-cli", BOB_TOKEN, &["approver", "viewer"]),
            ("runbook-bot", RUNBOOK_TOKEN, &["approver"]),
        ],
    );
    let policy = "approvers = [\"token:alice-cli\", \"token:bob-cli\"]\napprovals_required = 2";
    let h = harness(&[plugin_needing(policy)], |c| {
        real_no_cooldown(c);
        c.auth.tokens = tokens;
    })
    .await;

    let webhook = json!({"version": "4", "status": "firing", "receiver": "autoheal",
        "alerts": [opted_in("TcpEndpointDownFast")]});
    let (status, reply) = post_as(&h, "/alert", AM_TOKEN, webhook).await;
    assert_eq!(status, 200, "{reply}");
    let requested = h.only("approval_requested");
    assert_eq!(requested["requested_by"]["id"], "alertmanager", "{requested}");
    assert_eq!(requested["requested_by"]["kind"], "token", "{requested}");
    let id = requested["approval"].as_str().unwrap().to_owned();
    let approve = format!("/approvals/{id}/approve");

    let (status, reply) = post_as(&h, &approve, ALICE_TOKEN, json!({"by": "Alice at her desk"})).await;
    assert_eq!((status, &reply["outcome"]), (200, &json!("recorded")), "{reply}");
    let (status, reply) = post_as(&h, &approve, ALICE_TOKEN, json!({})).await;
    assert_eq!(status, 409, "{reply}");
    let (status, reply) = post_as(&h, &approve, RUNBOOK_TOKEN, json!({})).await;
    assert_eq!(status, 403, "{reply}");
    assert!(
        reply["error"]
            .as_str()
            .unwrap_or_default()
            .contains("token:alice-cli, token:bob-cli"),
        "{reply}"
    );
    // Alertmanager's token is no approver at all.
    let (status, _) = post_as(&h, &approve, AM_TOKEN, json!({})).await;
    assert_eq!(status, 403);
    assert!(h.fake.restarts().is_empty(), "one grant of two runs nothing");

    let (status, reply) = post_as(&h, &approve, BOB_TOKEN, json!({"by": "bob"})).await;
    assert_eq!((status, &reply["outcome"]), (200, &json!("granted")), "{reply}");
    assert_eq!(h.fake.restarts(), vec!["crm-api".to_owned()]);

    let recorded = h.only("approval_recorded");
    assert_eq!(
        (&recorded["by"], &recorded["by_kind"], &recorded["by_comment"]),
        (&json!("alice-cli"), &json!("token"), &json!("Alice at her desk")),
        "{recorded}"
    );
    let granted = h.only("approval_granted");
    assert_eq!(
        (&granted["by"], &granted["by_kind"]),
        (&json!("bob-cli"), &json!("token")),
        "{granted}"
    );
    let approvers: Vec<&str> = granted["approved_by"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert_eq!(approvers, ["alice-cli", "bob-cli"], "{granted}");
    let (status, _) = post_as(&h, &approve, BOB_TOKEN, json!({})).await;
    assert_eq!(status, 409, "an approval that ran is over");
    assert_eq!(h.fake.restarts().len(), 1, "and runs once");
}
