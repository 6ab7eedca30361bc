//! `/auth/*`: sign-in through the OpenID provider of `[auth.oidc]`, the
//! session cookie, sign-out, and the personal token the console issues for
//! the CLI. These routes are open (the guard does not stand before them):
//! each checks the cookie itself, and the ones that change state also the
//! session's CSRF token.
//!
//! - `GET /auth/login`: 302 to the provider with a PKCE (S256) challenge, a
//!   `state` and a `nonce`, all three kept in a signed, HttpOnly cookie that
//!   lasts the sign-in ([`session::SIGNIN_LIFETIME_SEC`]).
//! - `GET /auth/callback`: the state checked against that cookie, the code
//!   exchanged, the ID token verified (`auth::oidc`), the session cookie set,
//!   `signed_in` audited, 302 to `/console`.
//! - `POST /auth/logout`: the session ends here and now, `signed_out` audited.
//! - `GET /auth/session`: who is signed in, their grants and the CSRF token.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::{ApiError, AppState};
use crate::auth::oidc::{Oidc, OidcError};
use crate::auth::session::{
    self, CLI_TOKEN_PREFIX, CSRF_HEADER, Purpose, SESSION_COOKIE, SIGNIN_COOKIE, Session, SessionKeys, SignIn,
};
use crate::auth::{Principal, PrincipalKind, grants_for_groups};
use crate::cluster::Cluster;
use crate::config::Config;
use autoheal_api::signin::{CliTokenAnswer, SessionAnswer, SignedOutAnswer};
use autoheal_core::event::{EventBody, Signed};
use autoheal_core::util::unix_now;

/// Sign-in's parts, when `[auth.oidc]` is configured.
pub(super) struct SignInService {
    pub(super) oidc: Arc<Oidc>,
    pub(super) keys: SessionKeys,
    /// On replicas: where sign-outs are shared.
    cluster: Option<Arc<Cluster>>,
}

impl SignInService {
    /// The provider (discovered in the background from now on) and the session key.
    pub(super) fn start(
        config: &Config,
        cluster: Option<Arc<Cluster>>,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> Option<Arc<Self>> {
        let settings = config.auth.oidc.clone()?;
        let keys = SessionKeys::new(
            settings.session_key.as_deref(),
            config.cluster.as_ref().map(|c| &c.secret),
        );
        tracing::info!(issuer = %settings.issuer, key = ?keys.source, "sign-in through the OpenID provider");
        let client = provider_client(settings.ca_pem.clone())?;
        let oidc = Arc::new(Oidc::new(settings, client));
        oidc.spawn_discovery(shutdown.clone());
        let service = Arc::new(Self { oidc, keys, cluster });
        if service.cluster.is_some() {
            tokio::spawn(service.clone().follow_sign_outs(shutdown));
        }
        Some(service)
    }

    /// Once a second until `shutdown`: the sessions signed out on other
    /// replicas are refused here too. While etcd does not answer, the ones
    /// already learnt stay refused.
    async fn follow_sign_outs(self: Arc<Self>, shutdown: tokio_util::sync::CancellationToken) {
        let Some(cluster) = self.cluster.clone() else {
            return;
        };
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
            }
            if let Ok(sign_outs) = cluster.sign_outs().await {
                let now = now();
                for (sid, expires_at) in sign_outs {
                    self.keys.end_id(&sid, expires_at, now);
                }
            }
        }
    }

    /// Ends `session`, and the CLI tokens it issued, here and, on
    /// replicas, everywhere. A token it issued may outlive it by up to
    /// `cli_token_lifetime`: the ending is remembered that long.
    async fn sign_out(&self, session: &Session) {
        let until = session.exp + self.oidc.settings.cli_token_lifetime.as_secs() as i64;
        self.keys.end_id(&session.sid, until, now());
        if let Some(cluster) = &self.cluster
            && let Err(e) = cluster.share_sign_out(&session.sid, until).await
        {
            tracing::warn!(error = %e, sub = %session.sub, "a sign-out could not be shared: the other replicas accept the session until it expires");
        }
    }

    /// The session of `headers`' cookie, if valid now.
    pub(super) fn session(&self, headers: &HeaderMap) -> Option<Session> {
        let sealed = cookie(headers, SESSION_COOKIE)?;
        self.keys.open_session(Purpose::Session, sealed, now()).ok()
    }

    /// The person of a CLI token (`ahp_...`), if valid now.
    pub(super) fn cli_token(&self, token: &str) -> Option<Session> {
        let sealed = token.strip_prefix(CLI_TOKEN_PREFIX)?;
        self.keys.open_session(Purpose::CliToken, sealed, now()).ok()
    }
}

/// The principal a session proves: the person, with what their groups give.
pub(super) fn person(config: &Config, session: &Session) -> Principal {
    Principal {
        kind: PrincipalKind::Person,
        id: session.sub.clone(),
        name: session.name.clone(),
        groups: session.groups.clone(),
        grants: grants_for_groups(&config.auth.roles, &session.groups),
    }
}

/// hyper and rustls on ring with the system's roots (or `ca_pem`'s, from
/// `[auth.oidc] ca_file`), as the etcd and Prometheus clients; `None`
/// (sign-in off, logged) if the roots cannot be set up.
fn provider_client(ca_pem: Option<Vec<u8>>) -> Option<crate::auth::oidc::HttpsClient> {
    let roots = crate::config::ClusterTls {
        ca_pem,
        identity: None,
    };
    let tls = match crate::cluster::etcd::tls::client_config(Some(&roots)) {
        Ok(tls) => tls,
        Err(e) => {
            tracing::error!(error = %e, "sign-in is off: no TLS configuration for the OpenID provider");
            return None;
        }
    };
    let mut connector = hyper_util::client::legacy::connect::HttpConnector::new();
    connector.enforce_http(false);
    connector.set_connect_timeout(Some(std::time::Duration::from_secs(5)));
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(connector);
    Some(
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .pool_idle_timeout(std::time::Duration::from_secs(30))
            .pool_timer(hyper_util::rt::TokioTimer::new())
            .build(https),
    )
}

fn now() -> i64 {
    unix_now() as i64
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|h| session::cookie(h, name))
}

fn not_configured() -> ApiError {
    ApiError(
        StatusCode::NOT_FOUND,
        "sign-in is not configured: this host has no [auth.oidc]".into(),
    )
}

fn service(state: &AppState) -> Result<&Arc<SignInService>, ApiError> {
    state.signin.as_ref().ok_or_else(not_configured)
}

fn redirect(to: &str, cookies: &[String]) -> Response {
    let mut response = StatusCode::FOUND.into_response();
    if let Ok(location) = HeaderValue::from_str(to) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    for value in cookies {
        if let Ok(value) = HeaderValue::from_str(value) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `GET /auth/login`.
pub(super) async fn login(State(state): State<AppState>) -> Response {
    let service = match service(&state) {
        Ok(service) => service,
        Err(refusal) => return refusal.into_response(),
    };
    let secure = service.oidc.settings.secure_cookies;
    match service.oidc.authorize(now() + session::SIGNIN_LIFETIME_SEC) {
        Ok((url, signin)) => {
            let sealed = service.keys.seal(Purpose::SignIn, &signin);
            let cookie = session::set_cookie(SIGNIN_COOKIE, &sealed, session::SIGNIN_LIFETIME_SEC, secure);
            redirect(&url, &[cookie])
        }
        Err(e @ OidcError::NotReady { .. }) => {
            ApiError(StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response()
        }
        Err(e) => ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// `GET /auth/callback`'s query.
#[derive(Debug, Deserialize)]
pub(super) struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// `GET /auth/callback`.
pub(super) async fn callback(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<Callback>,
) -> Response {
    let service = match service(&state) {
        Ok(service) => service,
        Err(refusal) => return refusal.into_response(),
    };
    let refuse = |status: StatusCode, message: String| ApiError(status, message).into_response();
    if let Some(error) = &query.error {
        let detail = query.error_description.as_deref().unwrap_or("");
        return refuse(
            StatusCode::UNAUTHORIZED,
            format!("the identity provider refused the sign-in: {error} {detail}")
                .trim()
                .chars()
                .take(512)
                .collect(),
        );
    }
    let signin: SignIn = match cookie(&headers, SIGNIN_COOKIE)
        .map(|sealed| service.keys.open::<SignIn>(Purpose::SignIn, sealed))
    {
        Some(Ok(signin)) if signin.exp > now() => signin,
        Some(Ok(_)) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                "the sign-in took too long: sign in again".into(),
            );
        }
        _ => {
            return refuse(
                StatusCode::BAD_REQUEST,
                "no sign-in is under way in this browser: start at /auth/login".into(),
            );
        }
    };
    let state_matches = query.state.as_deref().is_some_and(|sent| {
        let (a, b) = (sent.as_bytes(), signin.state.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    });
    if !state_matches {
        return refuse(
            StatusCode::BAD_REQUEST,
            "the sign-in's state does not match this browser's: sign in again".into(),
        );
    }
    let Some(code) = query.code else {
        return refuse(StatusCode::BAD_REQUEST, "the provider sent no code".into());
    };
    let person = match service.oidc.finish(code, &signin).await {
        Ok(person) => person,
        Err(e @ OidcError::IdToken(_)) => return refuse(StatusCode::UNAUTHORIZED, e.to_string()),
        Err(e) => return refuse(StatusCode::BAD_GATEWAY, e.to_string()),
    };
    let lifetime = service.oidc.settings.session_lifetime.as_secs() as i64;
    let session = session::new_session(person.sub, person.name, person.groups, now(), lifetime);
    state.host.audit.emit(EventBody::SignedIn(signed(&session)));
    tracing::info!(sub = %session.sub, "signed in");
    let secure = service.oidc.settings.secure_cookies;
    redirect(
        "/console",
        &[
            session::set_cookie(
                SESSION_COOKIE,
                &service.keys.seal(Purpose::Session, &session),
                lifetime,
                secure,
            ),
            session::set_cookie(SIGNIN_COOKIE, "", 0, secure),
        ],
    )
}

fn signed(session: &Session) -> Signed {
    Signed {
        by: session.sub.clone(),
        by_kind: PrincipalKind::Person.as_str().to_owned(),
        by_name: session.name.clone(),
        groups: session.groups.clone(),
    }
}

/// The session of the cookie, and for a request that changes state its CSRF token checked.
fn signed_in(service: &SignInService, headers: &HeaderMap, changes_state: bool) -> Result<Session, ApiError> {
    let Some(session) = service.session(headers) else {
        return Err(ApiError(
            StatusCode::UNAUTHORIZED,
            "not signed in (or the session expired or was signed out): sign in at /auth/login".into(),
        ));
    };
    let sent = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
    if changes_state && !session::csrf_matches(&session, sent) {
        return Err(csrf_refused());
    }
    Ok(session)
}

/// The 403 of a cookie-authenticated request without the session's CSRF token.
fn csrf_refused() -> ApiError {
    ApiError(
        StatusCode::FORBIDDEN,
        "csrf: a request made with the session cookie that changes state must send the session's \
         CSRF token as X-CSRF-Token (GET /auth/session gives it)"
            .into(),
    )
}

/// `POST /auth/logout`.
pub(super) async fn logout(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let service = match service(&state) {
        Ok(service) => service,
        Err(refusal) => return refusal.into_response(),
    };
    let secure = service.oidc.settings.secure_cookies;
    let clear = session::set_cookie(SESSION_COOKIE, "", 0, secure);
    let signed_out = match service.session(&headers) {
        None => false,
        Some(session) => {
            let sent = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
            if !session::csrf_matches(&session, sent) {
                return csrf_refused().into_response();
            }
            service.sign_out(&session).await;
            state.host.audit.emit(EventBody::SignedOut(signed(&session)));
            tracing::info!(sub = %session.sub, "signed out");
            true
        }
    };
    let mut response = Json(SignedOutAnswer { signed_out }).into_response();
    if let Ok(value) = HeaderValue::from_str(&clear) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

/// `GET /auth/session`.
pub(super) async fn session(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let service = match service(&state) {
        Ok(service) => service,
        Err(refusal) => return refusal.into_response(),
    };
    let session = match signed_in(service, &headers, false) {
        Ok(session) => session,
        Err(refusal) => return refusal.into_response(),
    };
    let principal = person(&state.host.config, &session);
    let mut response = Json(SessionAnswer {
        sub: session.sub,
        name: session.name,
        groups: session.groups,
        grants: super::grant_answers(principal.grants),
        csrf_token: session.csrf,
        expires_at: session.exp,
    })
    .into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `POST /auth/cli-token`: the same person, sealed for the CLI, for
/// `cli_token_lifetime`. Its groups are the session's; its grants are
/// recomputed from them on every request, so a changed `[[auth.roles]]`
/// applies to it too.
pub(super) async fn cli_token(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let service = match service(&state) {
        Ok(service) => service,
        Err(refusal) => return refusal.into_response(),
    };
    let session = match signed_in(service, &headers, true) {
        Ok(session) => session,
        Err(refusal) => return refusal.into_response(),
    };
    let lifetime = service.oidc.settings.cli_token_lifetime.as_secs() as i64;
    let issuer = session.sid.clone();
    let token = Session {
        issued_by: Some(issuer),
        ..session::new_session(session.sub, session.name, session.groups, now(), lifetime)
    };
    let expires_at = token.exp;
    let mut response = Json(CliTokenAnswer {
        token: format!(
            "{CLI_TOKEN_PREFIX}{}",
            service.keys.seal(Purpose::CliToken, &token)
        ),
        expires_at,
    })
    .into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
