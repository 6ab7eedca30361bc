//! The gate in front of every route: the Host header, the origin of
//! requests that change state, and the credentials of the route's scope.
//!
//! - **Host**: an IP address, `localhost`, or a configured name. A DNS
//!   rebinding page reaches the host under the attacker's name, so it is
//!   refused before anything else.
//! - **Origin**: a request that changes state and carries an `Origin` (or
//!   `Sec-Fetch-Site: cross-site`) from another site is refused. Tokens go in
//!   the `Authorization` header, which a cross-site page cannot set without a
//!   CORS preflight this host never grants; the check also covers Basic
//!   credentials a browser might have cached.
//! - **Credentials**: `Authorization: Bearer <token>`, or Basic with the
//!   token as the password (Alertmanager's `basic_auth`). `GET /events` also
//!   takes `access_token=` in the query, because a browser's `EventSource`
//!   cannot send headers. On a replica, `GET /audit` also takes another
//!   replica's signature of the request under the cluster secret (see
//!   `cluster::proof`): that is how a whole-cluster read asks its peers
//!   without handing them the operator's token. Nothing else takes it.
//!
//! A refusal is a JSON error, an `auth_failed` event (without any secret;
//! at most [`AUTH_EVENTS_PER_SECOND`]) and a count in
//! `autoheal_auth_failures_total`.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;

use super::{ApiError, AppState};
use crate::auth::{Principal, Role, Scope, TokenSet};
use autoheal_core::event::{AuthFailed, EventBody};
use autoheal_core::util::unix_now;

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    Missing,
    Wrong,
    NotConfigured,
    HostNotAllowed,
    CrossOrigin,
    /// A request with the session cookie that changes state, without its CSRF token.
    Csrf,
    /// A signed-in person whose groups no `[[auth.roles]]` rule gives this route's role.
    NoRole,
}

impl Refusal {
    fn as_str(self) -> &'static str {
        match self {
            Refusal::Missing => "missing",
            Refusal::Wrong => "wrong",
            Refusal::NotConfigured => "not_configured",
            Refusal::HostNotAllowed => "host_not_allowed",
            Refusal::CrossOrigin => "cross_origin",
            Refusal::Csrf => "csrf",
            Refusal::NoRole => "no_role",
        }
    }

    fn status(self) -> StatusCode {
        match self {
            Refusal::Missing | Refusal::Wrong => StatusCode::UNAUTHORIZED,
            Refusal::NotConfigured
            | Refusal::HostNotAllowed
            | Refusal::CrossOrigin
            | Refusal::Csrf
            | Refusal::NoRole => StatusCode::FORBIDDEN,
        }
    }

    fn message(self, scope: Scope) -> String {
        let variable = match scope {
            Scope::Webhook => "AUTOHEAL_WEBHOOK_TOKEN",
            Scope::Operator => "AUTOHEAL_OPERATOR_TOKEN",
            Scope::Read => "AUTOHEAL_READ_TOKEN",
        };
        match self {
            Refusal::Missing => format!(
                "this route needs a {} token: send `Authorization: Bearer <token>`",
                scope.as_str()
            ),
            Refusal::Wrong => format!("the {} token is not valid", scope.as_str()),
            Refusal::NotConfigured => {
                format!("operator routes are disabled: no operator token is configured (set {variable})")
            }
            Refusal::HostNotAllowed => {
                "the Host header names a host this server does not answer to (see [auth] allowed_hosts)"
                    .into()
            }
            Refusal::CrossOrigin => "a cross-site request may not change state".into(),
            Refusal::Csrf => "csrf: a request made with the session cookie that changes state must send \
                 the session's CSRF token as X-CSRF-Token (GET /auth/session gives it)"
                .into(),
            Refusal::NoRole => format!(
                "signed in, but no [[auth.roles]] rule gives your groups a role for the {} routes",
                scope.as_str()
            ),
        }
    }
}

/// `POST /alert`.
pub(super) async fn webhook(State(state): State<AppState>, request: Request, next: Next) -> Response {
    guard(&state, Scope::Webhook, request, next).await
}

/// Routes that change state.
pub(super) async fn operator(State(state): State<AppState>, request: Request, next: Next) -> Response {
    guard(&state, Scope::Operator, request, next).await
}

/// Read-only routes.
pub(super) async fn read(State(state): State<AppState>, request: Request, next: Next) -> Response {
    guard(&state, Scope::Read, request, next).await
}

async fn guard(state: &AppState, scope: Scope, mut request: Request, next: Next) -> Response {
    match check(state, scope, &request) {
        Ok(principal) => {
            // Handlers take who is calling from here, never from the body.
            request.extensions_mut().insert(principal);
            next.run(request).await
        }
        Err(refusal) => refuse(state, scope, refusal, &request),
    }
}

/// Who the request's credentials prove it comes from, or why it is refused.
fn check(state: &AppState, scope: Scope, request: &Request) -> Result<Principal, Refusal> {
    let auth = &state.host.config.auth;
    let headers = request.headers();
    if !host_allowed(headers, &auth.allowed_hosts) {
        return Err(Refusal::HostNotAllowed);
    }
    if scope != Scope::Read && cross_site(headers) {
        return Err(Refusal::CrossOrigin);
    }
    if scope == Scope::Read && signed_by_peer(state, request) {
        return Ok(Principal::shared(Scope::Read, false));
    }
    if let Some(person) = signed_in_person(state, scope, request) {
        return person;
    }
    // The sets that take this scope's token (an operator token also reads).
    let accepted: &[&TokenSet] = match scope {
        Scope::Webhook if auth.webhook.is_empty() => return Ok(Principal::shared(scope, true)),
        Scope::Webhook => &[&auth.webhook],
        // With sign-in, people are the operators: the route is on, this caller has no session.
        Scope::Operator if auth.operator.is_empty() && state.signin.is_some() => {
            return Err(Refusal::Missing);
        }
        Scope::Operator if auth.operator.is_empty() => return Err(Refusal::NotConfigured),
        Scope::Operator => &[&auth.operator],
        Scope::Read if auth.read.is_empty() => return Ok(Principal::shared(scope, true)),
        Scope::Read => &[&auth.read, &auth.operator],
    };
    let stream_query = (request.uri().path() == "/events")
        .then(|| request.uri().query())
        .flatten();
    let presented = presented_token(headers, scope, stream_query).ok_or(Refusal::Missing)?;
    // Every set is asked (no short circuit), so the time does not say which one took it.
    let found: Vec<bool> = accepted.iter().map(|set| set.accepts(&presented)).collect();
    match found.as_slice() {
        // An operator token presented on a read route still proves an operator.
        [_, true] => Ok(Principal::shared(Scope::Operator, false)),
        [true, ..] => Ok(Principal::shared(scope, false)),
        _ => Err(Refusal::Wrong),
    }
}

/// A person, proven by the session cookie (when no `Authorization` header
/// is sent) or by a CLI token (`Bearer ahp_...`); `None` when neither is
/// there or valid, and the tokens are looked at as before. A state-changing
/// request made with the cookie must carry the session's CSRF token: the
/// browser sends the cookie on its own, the header only a page of this
/// origin that read `GET /auth/session` can set.
fn signed_in_person(state: &AppState, scope: Scope, request: &Request) -> Option<Result<Principal, Refusal>> {
    let service = state.signin.as_ref()?;
    if scope == Scope::Webhook {
        return None;
    }
    let headers = request.headers();
    let (session, by_cookie) = match headers.get(header::AUTHORIZATION) {
        Some(value) => {
            let token = value.to_str().ok()?.trim().strip_prefix("Bearer ")?.trim();
            (service.cli_token(token)?, false)
        }
        None => (service.session(headers)?, true),
    };
    let changes_state = !matches!(
        *request.method(),
        axum::http::Method::GET | axum::http::Method::HEAD
    );
    if by_cookie && changes_state {
        let sent = headers
            .get(crate::auth::session::CSRF_HEADER)
            .and_then(|v| v.to_str().ok());
        if !crate::auth::session::csrf_matches(&session, sent) {
            return Some(Err(Refusal::Csrf));
        }
    }
    let principal = super::signin::person(&state.host.config, &session);
    // The scope's role on some plugin; the routes' own checks (per plugin)
    // come after, from the principal's grants.
    let roles: &[Role] = match scope {
        Scope::Read => &[Role::Viewer],
        Scope::Operator => &[Role::Operator, Role::Approver],
        Scope::Webhook => &[],
    };
    if !principal.grants.iter().any(|g| roles.contains(&g.role)) {
        return Some(Err(Refusal::NoRole));
    }
    Some(Ok(principal))
}

/// A replica's signed `GET /audit` (the per-replica read of a whole-cluster one).
fn signed_by_peer(state: &AppState, request: &Request) -> bool {
    let (Some(cluster), Some(signature)) = (
        &state.host.cluster,
        request.headers().get(crate::cluster::proof::PEER_HEADER),
    ) else {
        return false;
    };
    let uri = request.uri();
    request.method() == axum::http::Method::GET
        && uri.path() == "/audit"
        && signature.to_str().is_ok_and(|signature| {
            let path_and_query = uri.path_and_query().map_or("/audit", |pq| pq.as_str());
            cluster.verify_peer_request(signature, "GET", path_and_query)
        })
}

/// The token of the `Authorization` header (Bearer, or Basic's password),
/// or of the `access_token` parameter of `stream_query` (`GET /events`'s).
fn presented_token(headers: &HeaderMap, scope: Scope, stream_query: Option<&str>) -> Option<String> {
    if let Some(value) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        let (kind, rest) = value.trim().split_once(' ')?;
        return match kind.to_ascii_lowercase().as_str() {
            "bearer" => Some(rest.trim().to_owned()),
            "basic" => {
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(rest.trim())
                    .ok()?;
                let text = String::from_utf8(decoded).ok()?;
                Some(
                    text.split_once(':')
                        .map_or(text.clone(), |(_, password)| password.to_owned()),
                )
            }
            _ => None,
        };
    }
    if scope != Scope::Read {
        return None;
    }
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(stream_query?).ok()?;
    pairs
        .into_iter()
        .find(|(k, _)| k == "access_token")
        .map(|(_, v)| v)
}

/// An IP address (any port), `localhost`, or one of `allowed`. A request
/// without a Host header (HTTP/1.0, in-process tests) is not a browser's.
fn host_allowed(headers: &HeaderMap, allowed: &[String]) -> bool {
    let Some(host) = headers.get(header::HOST) else {
        return true;
    };
    let Ok(host) = host.to_str() else {
        return false;
    };
    let name = host_name(host).to_ascii_lowercase();
    name.parse::<IpAddr>().is_ok() || name == "localhost" || allowed.contains(&name)
}

/// `example.com:9009` → `example.com`, `[::1]:9009` → `::1`.
fn host_name(host: &str) -> &str {
    match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    }
}

/// A browser request from another site: `Sec-Fetch-Site: cross-site`, or an
/// `Origin` whose host and port are not the request's own.
fn cross_site(headers: &HeaderMap) -> bool {
    if headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) == Some("cross-site") {
        return true;
    }
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let origin_authority = origin
        .split_once("://")
        .map_or("", |(_, rest)| rest.trim_end_matches('/'));
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    !origin_authority.eq_ignore_ascii_case(host)
}

/// At most this many `auth_failed` events (and log lines) a second; past it
/// refusals are only counted, so that a flood of bad requests cannot fill
/// the audit trail.
pub(super) const AUTH_EVENTS_PER_SECOND: u32 = 20;

/// The `auth_failed` events left in the current second.
#[derive(Default)]
pub(super) struct AuthEventBudget {
    second: AtomicU64,
    used: AtomicU32,
}

impl AuthEventBudget {
    /// True if one more event fits in this second (approximately: two
    /// threads at a second's turn may both start it afresh).
    fn take(&self) -> bool {
        let now = unix_now() as u64;
        if self.second.swap(now, Ordering::Relaxed) != now {
            self.used.store(0, Ordering::Relaxed);
        }
        self.used.fetch_add(1, Ordering::Relaxed) < AUTH_EVENTS_PER_SECOND
    }
}

fn refuse(state: &AppState, scope: Scope, refusal: Refusal, request: &Request) -> Response {
    if state.auth_events.take() {
        tracing::warn!(scope = scope.as_str(), reason = refusal.as_str(), path = %request.uri().path(), "request refused");
        state.host.audit.emit(EventBody::AuthFailed(AuthFailed {
            method: request.method().to_string(),
            // Bounded: the path is attacker-controlled.
            path: request.uri().path().chars().take(256).collect(),
            reason: refusal.as_str().to_owned(),
            scope: scope.as_str().to_owned(),
        }));
    } else {
        state
            .host
            .metrics
            .auth_failed_unaudited(scope.as_str(), refusal.as_str());
    }
    let mut response = ApiError(refusal.status(), refusal.message(scope)).into_response();
    if refusal.status() == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"autoheal\""),
        );
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn hosts_are_ip_addresses_localhost_or_named() {
        let allowed = vec!["autoheal.example".to_owned()];
        for ok in [
            "127.0.0.1:9009",
            "[::1]:9009",
            "localhost:9009",
            "AUTOHEAL.example",
            "10.1.2.3",
        ] {
            assert!(host_allowed(&headers(&[("host", ok)]), &allowed), "{ok}");
        }
        for bad in [
            "attacker.example:9009",
            "autoheal.example.attacker.example",
            "localhost.attacker.example",
        ] {
            assert!(!host_allowed(&headers(&[("host", bad)]), &allowed), "{bad}");
        }
        assert!(host_allowed(&HeaderMap::new(), &allowed));
    }

    #[test]
    fn cross_site_requests_are_recognised() {
        assert!(!cross_site(&headers(&[("host", "127.0.0.1:9009")])));
        assert!(!cross_site(&headers(&[
            ("host", "127.0.0.1:9009"),
            ("origin", "http://127.0.0.1:9009")
        ])));
        assert!(cross_site(&headers(&[
            ("host", "127.0.0.1:9009"),
            ("origin", "http://evil.example")
        ])));
        assert!(cross_site(&headers(&[
            ("host", "127.0.0.1:9009"),
            ("origin", "null")
        ])));
        assert!(cross_site(&headers(&[
            ("host", "127.0.0.1:9009"),
            ("sec-fetch-site", "cross-site")
        ])));
    }

    #[test]
    fn tokens_come_from_bearer_basic_or_the_event_stream_query() {
        let bearer = headers(&[("authorization", "Bearer tok-0123456789abcdef")]);
        assert_eq!(
            presented_token(&bearer, Scope::Webhook, None).as_deref(),
            Some("tok-0123456789abcdef")
        );
        let basic = base64::engine::general_purpose::STANDARD.encode("alertmanager:tok-0123456789abcdef");
        let basic = headers(&[("authorization", &format!("Basic {basic}"))]);
        assert_eq!(
            presented_token(&basic, Scope::Webhook, None).as_deref(),
            Some("tok-0123456789abcdef")
        );
        let none = HeaderMap::new();
        assert_eq!(
            presented_token(
                &none,
                Scope::Read,
                Some("kind=ack&access_token=tok-0123456789abcdef")
            )
            .as_deref(),
            Some("tok-0123456789abcdef")
        );
        assert_eq!(
            presented_token(&none, Scope::Operator, Some("access_token=tok-0123456789abcdef")),
            None
        );
    }
}
