//! The OpenAPI 3.1 document: the schemas derived from this crate's types,
//! the paths from the route table ([`Route::ALL`]). The host serves it at
//! `GET /openapi.json`; `docs/openapi.json` is the same text, held to it by
//! a test (`AUTOHEAL_BLESS=1 cargo test -p autoheal-api --test generated`,
//! or `cargo xtask openapi`, rewrites it).

use utoipa::OpenApi;
use utoipa::ToSchema;
use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn, PathItem};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    Components, ContentBuilder, Info, ObjectBuilder, Ref, Required, ResponseBuilder, Type,
};

use crate::routes::{Access, Method, ReplyBody, RequestBody, Route};

/// The operations view (`autoheal_vision`'s report): `autoheal` (the
/// host's switches and last action), `prometheus` and `alertmanager` (each
/// with `reachable`), the SLOs, trends and firing alerts.
#[derive(ToSchema)]
#[schema(value_type = Object)]
#[allow(dead_code)]
pub struct VisionReport(serde_json::Map<String, serde_json::Value>);

#[derive(OpenApi)]
#[openapi(components(schemas(
    crate::error::ErrorAnswer,
    crate::alert::WebhookPayload,
    crate::alert::AlertAnswer,
    crate::ack::AckRequest,
    crate::ack::AckAnswer,
    crate::plugins::ReloadSummary,
    crate::plugins::TrialAnswer,
    crate::switches::EnabledRequest,
    crate::switches::DryRunRequest,
    crate::switches::SwitchesAnswer,
    crate::approvals::ApprovalsAnswer,
    crate::approvals::ApprovalAnswerRequest,
    crate::approvals::ApprovalAnswer,
    crate::pauses::PauseRequest,
    crate::pauses::Pause,
    crate::pauses::PausesAnswer,
    crate::pauses::ResumeRequest,
    crate::status::StatusAnswer,
    crate::audit::AuditAnswer,
    crate::auth::MeAnswer,
    crate::auth::GrantAnswer,
    crate::signin::SessionAnswer,
    crate::signin::SignedOutAnswer,
    crate::signin::CliTokenAnswer,
    VisionReport,
)))]
struct Schemas;

/// The security scheme of each token scope (the same header, a different token).
fn scheme(access: Access) -> Option<&'static str> {
    match access {
        Access::Webhook => Some("webhook_token"),
        Access::Operator => Some("operator_token"),
        Access::Read => Some("read_token"),
        Access::Open => None,
    }
}

/// The whole document.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = Schemas::openapi();
    doc.info = Info::builder()
        .title("autoheal")
        .version(env!("CARGO_PKG_VERSION"))
        .description(Some(
            "The HTTP API of autoheal, the auto-remediation host for Prometheus Alertmanager. \
             Tokens go in `Authorization: Bearer <token>` (or Basic, the token as password); \
             the operator token also opens every read route, and a named token \
             (`[auth.tokens.NAME]`) every route its roles allow. Every route that takes a token \
             may also answer 401 (missing or wrong), 403 (cross-origin change, or a role the \
             caller lacks: the message names the rules looked at) or 421 (a Host that is not \
             allowed), as `ErrorAnswer`.",
        ))
        .license(Some(utoipa::openapi::License::new("Apache-2.0")))
        .build();
    let components = doc.components.get_or_insert_with(Components::new);
    for access in [Access::Webhook, Access::Operator, Access::Read] {
        let name = scheme(access).expect("token scopes have a scheme");
        components.add_security_scheme(
            name,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(format!("The {} token.", access.as_str())))
                    .build(),
            ),
        );
    }
    for route in Route::ALL {
        let item = PathItem::new(http_method(route.method()), operation(route));
        match doc.paths.paths.get_mut(route.path()) {
            Some(existing) => existing.merge_operations(item),
            None => {
                doc.paths.paths.insert(route.path().to_owned(), item);
            }
        }
    }
    doc
}

/// The document as served and committed: pretty JSON, ending in a newline.
pub fn document_json() -> String {
    let mut text = serde_json::to_string_pretty(&document()).expect("the document serializes");
    text.push('\n');
    text
}

fn http_method(method: Method) -> HttpMethod {
    match method {
        Method::Get => HttpMethod::Get,
        Method::Post => HttpMethod::Post,
        Method::Delete => HttpMethod::Delete,
    }
}

fn operation(route: Route) -> utoipa::openapi::path::Operation {
    let mut operation = OperationBuilder::new()
        .operation_id(Some(route.operation_id()))
        .summary(Some(route.summary()))
        .tag(route.access().as_str());
    operation = match scheme(route.access()) {
        Some(name) => operation.security(SecurityRequirement::new(name, Vec::<String>::new())),
        // An empty list: no credentials at all.
        None => operation.securities(Some(Vec::<SecurityRequirement>::new())),
    };
    for param in route.query() {
        operation = operation.parameter(
            ParameterBuilder::new()
                .name(param.name)
                .parameter_in(ParameterIn::Query)
                .required(Required::False)
                .description(Some(param.description))
                .schema(Some(ObjectBuilder::new().schema_type(Type::String))),
        );
    }
    for name in path_params(route.path()) {
        operation = operation.parameter(
            ParameterBuilder::new()
                .name(name)
                .parameter_in(ParameterIn::Path)
                .required(Required::True)
                .schema(Some(ObjectBuilder::new().schema_type(Type::String))),
        );
    }
    if let RequestBody::Json { schema, required } = route.request() {
        operation = operation.request_body(Some(
            RequestBodyBuilder::new()
                .content("application/json", json(schema))
                .required(Some(if required { Required::True } else { Required::False }))
                .build(),
        ));
    }
    for reply in route.replies() {
        let mut response = ResponseBuilder::new().description(reply.description);
        response = match reply.body {
            ReplyBody::Json(schema) => response.content("application/json", json(schema)),
            ReplyBody::Other {
                content_type,
                description,
            } => response.content(
                content_type,
                ContentBuilder::new()
                    .schema(Some(
                        ObjectBuilder::new()
                            .schema_type(Type::String)
                            .description(Some(description)),
                    ))
                    .build(),
            ),
        };
        operation = operation.response(reply.status.to_string(), response.build());
    }
    operation.build()
}

fn json(schema: &str) -> utoipa::openapi::Content {
    ContentBuilder::new()
        .schema(Some(Ref::from_schema_name(schema)))
        .build()
}

/// The `{name}`s of a path.
fn path_params(path: &str) -> impl Iterator<Item = &str> {
    path.split('/')
        .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
}
