//! `docs/openapi.json` and `docs/http-api.md` are what the types and the
//! route table give now. After a change to either, rewrite them with
//! `cargo xtask openapi` (or `AUTOHEAL_BLESS=1 cargo test -p autoheal-api
//! --test generated`) and commit the result.

use std::path::PathBuf;

use autoheal_api::routes::Route;

fn docs(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../docs")
        .join(file)
}

/// `generated` against the committed file, or written to it when blessing.
fn check(file: &str, generated: &str) {
    let path = docs(file);
    if std::env::var_os("AUTOHEAL_BLESS").is_some_and(|v| v == "1") {
        std::fs::write(&path, generated).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "docs/{file} is not what the API's types and routes give now; regenerate it with \
         `cargo xtask openapi` (or `AUTOHEAL_BLESS=1 cargo test -p autoheal-api --test generated`) \
         and commit it"
    );
}

#[test]
fn the_committed_openapi_document_is_current() {
    check("openapi.json", &autoheal_api::openapi::document_json());
}

#[test]
fn the_committed_reference_page_is_current() {
    let document: serde_json::Value = serde_json::from_str(&autoheal_api::openapi::document_json()).unwrap();
    check("http-api.md", &autoheal_api::markdown::render(&document));
}

#[test]
fn every_route_is_in_the_document_once_with_its_method() {
    let document: serde_json::Value = serde_json::from_str(&autoheal_api::openapi::document_json()).unwrap();
    assert_eq!(document["openapi"], "3.1.0");
    let mut seen = std::collections::HashSet::new();
    for route in Route::ALL {
        assert!(seen.insert((route.method(), route.path())), "{route:?} twice");
        let op = &document["paths"][route.path()][route.method().as_str().to_lowercase()];
        assert_eq!(op["operationId"], route.operation_id(), "{route:?}");
    }
}

#[test]
fn every_schema_referred_to_is_defined() {
    let text = autoheal_api::openapi::document_json();
    let document: serde_json::Value = serde_json::from_str(&text).unwrap();
    let schemas = document["components"]["schemas"].as_object().unwrap();
    for piece in text.split("\"#/components/schemas/").skip(1) {
        let name = piece.split('"').next().unwrap();
        assert!(
            schemas.contains_key(name),
            "{name} is referred to but not defined"
        );
    }
}
