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
use crate::auth::{Denied, Plugins, Principal, Role, Scope, TokenSet};
use autoheal_api::routes::{Access, Route};
use autoheal_core::event::{AuthFailed, EventBody};
use autoheal_core::util::unix_now;

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Refusal {
    Missing,
    Wrong,
    NotConfigured,
    HostNotAllowed,
    CrossOrigin,
    /// Authenticated, but without the role: `needed` in words, `denied`'s
    /// message (naming the rules looked at) is the answer's body.
    Forbidden {
        needed: String,
        denied: Denied,
    },
    /// A request with the session cookie that changes state, without its CSRF token.
    Csrf,
}

impl Refusal {
    fn as_str(&self) -> &'static str {
        match self {
            Refusal::Missing => "missing",
            Refusal::Wrong => "wrong",
            Refusal::NotConfigured => "not_configured",
            Refusal::HostNotAllowed => "host_not_allowed",
            Refusal::CrossOrigin => "cross_origin",
            Refusal::Forbidden { .. } => "forbidden",
            Refusal::Csrf => "csrf",
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            Refusal::Missing | Refusal::Wrong => StatusCode::UNAUTHORIZED,
            Refusal::NotConfigured
            | Refusal::HostNotAllowed
            | Refusal::CrossOrigin
            | Refusal::Forbidden { .. }
            | Refusal::Csrf => StatusCode::FORBIDDEN,
        }
    }

    fn message(&self, scope: Scope) -> String {
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
            Refusal::NotConfigured => format!(
                "operator routes are disabled: no credential can reach them (set {variable}, or give \
                 an [auth.tokens.NAME] the operator or approver scope)"
            ),
            Refusal::HostNotAllowed => {
                "the Host header names a host this server does not answer to (see [auth] allowed_hosts)"
                    .into()
            }
            Refusal::CrossOrigin => "a cross-site request may not change state".into(),
            Refusal::Forbidden { denied, .. } => denied.message.clone(),
            Refusal::Csrf => "csrf: a request made with the session cookie that changes state must send \
                 the session's CSRF token as X-CSRF-Token (GET /auth/session gives it)"
                .into(),
        }
    }
}

/// What a route asks of an authenticated caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Need {
    /// Nothing more: any caller its credentials prove (`GET /auth/me`).
    Anyone,
    /// The role on every plugin (a host-wide action, or data of every plugin).
    Every(Role),
    /// The role on some plugin; the handler, which knows the plugin, checks
    /// it is that one (pauses, plugin test, approvals).
    Some(Role),
}

impl Need {
    /// The role it names, if any.
    fn role(self) -> Option<Role> {
        match self {
            Need::Anyone => None,
            Need::Every(role) | Need::Some(role) => Some(role),
        }
    }

    /// Whether `principal` may do what the route needs.
    fn allows(self, principal: &Principal) -> Result<(), Denied> {
        match self {
            Need::Anyone => Ok(()),
            Need::Every(role) => principal.may(role, None),
            Need::Some(role) => principal.may_some(role),
        }
    }
}

/// The role each guarded route needs (the role table of `docs/security.md`).
pub(super) fn need(route: Route) -> Need {
    match route {
        Route::Alert => Need::Every(Role::Webhook),
        Route::Status
        | Route::Audit
        | Route::Approvals
        | Route::Pauses
        | Route::Events
        | Route::Metrics
        | Route::Vision => Need::Every(Role::Viewer),
        Route::AckGet | Route::AckPost | Route::PluginsReload | Route::AdminEnabled | Route::AdminDryRun => {
            Need::Every(Role::Operator)
        }
        Route::PluginTest | Route::Pause | Route::Resume => Need::Some(Role::Operator),
        Route::Approve | Route::Deny => Need::Some(Role::Approver),
        Route::AuthMe
        | Route::Console
        | Route::OpenApi
        | Route::SignIn
        | Route::SignInCallback
        | Route::SignOut
        | Route::Session
        | Route::CliToken => Need::Anyone,
    }
}

/// The credentials a route's access takes.
pub(super) fn scope(access: Access) -> Option<Scope> {
    match access {
        Access::Webhook => Some(Scope::Webhook),
        Access::Operator => Some(Scope::Operator),
        Access::Read => Some(Scope::Read),
        Access::Open => None,
    }
}

/// The guard of one route (its state: the app's and the route).
pub(super) async fn guard(
    State((state, route)): State<(AppState, Route)>,
    mut request: Request,
    next: Next,
) -> Response {
    let Some(scope) = scope(route.access()) else {
        return next.run(request).await;
    };
    match check(&state, scope, need(route), &request) {
        Ok(principal) => {
            // Handlers take who is calling from here, never from the body.
            request.extensions_mut().insert(principal);
            next.run(request).await
        }
        Err(refusal) => refuse(
            &state,
            scope,
            refusal,
            request.method().as_str(),
            request.uri().path(),
        ),
    }
}

/// Who the request's credentials prove it comes from, or why it is refused.
fn check(state: &AppState, scope: Scope, need: Need, request: &Request) -> Result<Principal, Refusal> {
    let auth = &state.host.config.auth;
    let headers = request.headers();
    if !host_allowed(headers, &auth.allowed_hosts) {
        return Err(Refusal::HostNotAllowed);
    }
    if scope != Scope::Read && cross_site(headers) {
        return Err(Refusal::CrossOrigin);
    }
    let principal = match scope == Scope::Read && signed_by_peer(state, request) {
        true => Principal::shared(Scope::Read, false),
        false => authenticate(state, scope, need, request)?,
    };
    match need.allows(&principal) {
        Ok(()) => Ok(principal),
        Err(denied) => Err(Refusal::Forbidden {
            needed: needed_text(need),
            denied: match need.role() {
                Some(role) => explain(denied, &principal, role),
                None => denied,
            },
        }),
    }
}

/// A refusal that found no rule granting the role says which rules the
/// caller's grants did come from, so that the operator knows where to look.
fn explain(denied: Denied, principal: &Principal, role: Role) -> Denied {
    if principal.grants.is_empty() || principal.grants.iter().any(|g| g.role == role) {
        return denied;
    }
    let holds: Vec<String> = principal
        .grants
        .iter()
        .map(|g| {
            let plugins = match &g.plugins {
                Plugins::All => "all plugins".to_owned(),
                Plugins::Matching(globs) => format!("plugins {}", globs.join(", ")),
            };
            format!("{} of {plugins} by {}", g.role.as_str(), g.rule)
        })
        .collect();
    Denied {
        message: format!("{}; it holds {}", denied.message, holds.join("; ")),
    }
}

fn needed_text(need: Need) -> String {
    match need {
        Need::Anyone => "any".into(),
        Need::Every(role) => format!("{} of every plugin", role.as_str()),
        Need::Some(role) => format!("{} of some plugin", role.as_str()),
    }
}

/// The principal of the request's token: a shared token of the sets this
/// scope takes, or a named token (on any route: its grants say what it
/// may do there). A route that takes no token here is open: anonymous.
fn authenticate(state: &AppState, scope: Scope, need: Need, request: &Request) -> Result<Principal, Refusal> {
    let auth = &state.host.config.auth;
    // A signed-in person (session cookie or CLI token) is judged by the
    // route's role like any other principal.
    if let Some(person) = signed_in_person(state, scope, request) {
        return person;
    }
    let open = match scope {
        Scope::Webhook => !auth.webhook_needs_token(),
        // Reads close with a read token, or a named token or a person made to read.
        Scope::Read => !auth.reads_need_credentials(),
        Scope::Operator => {
            if !auth.can_grant(need.role().unwrap_or(Role::Operator)) {
                return Err(Refusal::NotConfigured);
            }
            false
        }
    };
    // The shared sets that take this scope's token (an operator token also reads).
    let accepted: Vec<(&TokenSet, Scope)> = match scope {
        Scope::Webhook => vec![(&auth.webhook, Scope::Webhook)],
        Scope::Operator => vec![(&auth.operator, Scope::Operator)],
        Scope::Read => vec![(&auth.read, Scope::Read), (&auth.operator, Scope::Operator)],
    };
    let stream_query = (request.uri().path() == "/events")
        .then(|| request.uri().query())
        .flatten();
    let Some(presented) = presented_token(request.headers(), scope, stream_query) else {
        return match open {
            true => Ok(Principal::shared(scope, true)),
            false => Err(Refusal::Missing),
        };
    };
    // Every set and every named token is asked (no short circuit), so the
    // time does not say which one took it.
    let mut found: Vec<Principal> = accepted
        .iter()
        .filter(|(set, _)| set.accepts(&presented))
        .map(|&(_, scope)| Principal::shared(scope, false))
        .collect();
    found.extend(auth.named.identify(&presented));
    // The identity that may do what the route needs, else the first (for a 403).
    let index = found.iter().position(|p| need.allows(p).is_ok()).unwrap_or(0);
    match (found.into_iter().nth(index), open) {
        (Some(principal), _) => Ok(principal),
        // An open route does not judge a token it does not know.
        (None, true) => Ok(Principal::shared(scope, true)),
        (None, false) => Err(Refusal::Wrong),
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

fn refuse(state: &AppState, scope: Scope, refusal: Refusal, method: &str, path: &str) -> Response {
    if state.auth_events.take() {
        let role = match &refusal {
            Refusal::Forbidden { needed, .. } => Some(needed.clone()),
            _ => None,
        };
        tracing::warn!(scope = scope.as_str(), reason = refusal.as_str(), role = role.as_deref().unwrap_or("-"), path = %path, "request refused");
        state.host.audit.emit(EventBody::AuthFailed(AuthFailed {
            method: method.to_owned(),
            // Bounded: the path is attacker-controlled.
            path: path.chars().take(256).collect(),
            reason: refusal.as_str().to_owned(),
            role,
            scope: scope.as_str().to_owned(),
        }));
    } else {
        state
            .host
            .metrics
            .auth_failed_unaudited(scope.as_str(), refusal.as_str());
    }
    let status = refusal.status();
    let mut response = ApiError(status, refusal.message(scope)).into_response();
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"autoheal\""),
        );
    }
    response
}

/// A handler's refusal once it knows the plugin (a pause of one plugin, a
/// plugin's test): the same 403, event and count as the guard's.
pub(super) fn forbid(
    state: &AppState,
    (method, path): (&str, &str),
    role: Role,
    plugin: Option<&str>,
    principal: &Principal,
    denied: Denied,
) -> Response {
    let denied = explain(denied, principal, role);
    let needed = match plugin {
        Some(name) => format!("{} of plugin {name}", role.as_str()),
        None => format!("{} of every plugin", role.as_str()),
    };
    refuse(
        state,
        Scope::Operator,
        Refusal::Forbidden { needed, denied },
        method,
        path,
    )
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
