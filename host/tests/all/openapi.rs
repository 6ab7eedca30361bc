//! `GET /openapi.json`: the served document is the committed one, and it
//! describes exactly the routes the router serves.

use std::collections::BTreeSet;

use axum::body::Body;
use axum::http::Request;
use http_body_util::BodyExt;
use tower::ServiceExt;

use autoheal_api::routes::Route;

use crate::support::*;

#[tokio::test]
async fn the_served_document_is_the_committed_one_and_needs_no_token() {
    let h = harness(&[], |_| {}).await;
    let response = autoheal::http::router(h.host.clone())
        .oneshot(Request::get("/openapi.json").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let served = response.into_body().collect().await.unwrap().to_bytes();
    let committed = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openapi.json")).unwrap();
    assert!(
        served == committed,
        "GET /openapi.json differs from docs/openapi.json; regenerate it with `cargo xtask openapi` \
         (or `AUTOHEAL_BLESS=1 cargo test -p autoheal-api --test generated`) and commit it"
    );
    let document: serde_json::Value = serde_json::from_slice(&served).unwrap();
    let documented: BTreeSet<&str> = document["paths"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let routed: BTreeSet<&str> = Route::ALL.iter().map(|r| r.path()).collect();
    assert_eq!(documented, routed);
}

/// Each route of the table reaches a handler on its method: axum's own
/// answers for an unknown path (404, no body) or method (405) never come.
#[tokio::test]
async fn every_documented_route_is_served_on_its_method() {
    let h = harness(&[], |_| {}).await;
    for route in Route::ALL {
        let path = route
            .path()
            .replace("{name}", "nothing-loaded")
            .replace("{id}", "nothing0pending");
        let request = Request::builder()
            .method(route.method().as_str())
            .uri(&path)
            .header("content-type", "application/json")
            .header("authorization", authorization_for(&path))
            .body(Body::from("{}"))
            .unwrap();
        let response = autoheal::http::router(h.host.clone())
            .oneshot(request)
            .await
            .unwrap();
        let status = response.status().as_u16();
        assert_ne!(
            status,
            405,
            "{route:?}: {} {path} is not routed on its method",
            route.method().as_str()
        );
        if status == 404 {
            let body = response.into_body().collect().await.unwrap().to_bytes();
            assert!(!body.is_empty(), "{route:?}: {path} is not routed");
        }
    }
}
