//! Sign-in through an OpenID provider (`[auth.oidc]`), with the
//! `openidconnect` crate doing the protocol: discovery, the authorization
//! code flow with PKCE (S256), and the ID token's verification (signature
//! against the provider's JWKS, `iss`, `aud`, `exp`, `nonce`). This module
//! only adapts it: the host's hyper and rustls (on ring, the system's roots:
//! the client the etcd and Prometheus ones are) as its HTTP client, no
//! redirect followed and an answer read up to 1 MiB, discovery retried
//! in the background while the provider is down (the host serves tokens
//! meanwhile), and the verified claims turned into a person.

use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use openidconnect::core::{
    CoreAuthDisplay, CoreAuthPrompt, CoreAuthenticationFlow, CoreErrorResponseType, CoreGenderClaim,
    CoreJsonWebKey, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm, CoreProviderMetadata,
    CoreRevocableToken, CoreRevocationErrorResponse, CoreTokenIntrospectionResponse, CoreTokenType,
};
use openidconnect::{
    AdditionalClaims, AuthorizationCode, Client, ClientId, ClientSecret, CsrfToken, EmptyExtraTokenFields,
    EndpointMaybeSet, EndpointNotSet, EndpointSet, HttpRequest, HttpResponse, IdTokenFields, IssuerUrl,
    Nonce, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope, StandardErrorResponse,
    StandardTokenResponse,
};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use autoheal_core::util::error_chain;

use super::session::SignIn;

/// The checked `[auth.oidc]` (`config::oidc` reads and checks it).
#[derive(Clone)]
pub struct OidcSettings {
    /// The issuer URL, as written (discovery checks the document names it exactly).
    pub issuer: String,
    /// The client id.
    pub client_id: String,
    /// The client secret, when this is a confidential client.
    pub client_secret: Option<String>,
    /// Scopes asked for, `openid` among them.
    pub scopes: Vec<String>,
    /// The groups claim.
    pub groups_claim: String,
    /// Session lifetime.
    pub session_lifetime: Duration,
    /// CLI token lifetime.
    pub cli_token_lifetime: Duration,
    /// `public_url` + `/auth/callback`.
    pub redirect_url: String,
    /// Cookies get `Secure` (`public_url` is https).
    pub secure_cookies: bool,
    /// The key of `session_key_file`, if one is set.
    pub session_key: Option<Vec<u8>>,
    /// The CA bundle of `ca_file`: the provider's certificate is checked
    /// against it instead of the system's roots.
    pub ca_pem: Option<Vec<u8>>,
}

impl fmt::Debug for OidcSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OidcSettings")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "[redacted]"),
            )
            .field("scopes", &self.scopes)
            .field("groups_claim", &self.groups_claim)
            .field("session_lifetime", &self.session_lifetime)
            .field("cli_token_lifetime", &self.cli_token_lifetime)
            .field("redirect_url", &self.redirect_url)
            .field("secure_cookies", &self.secure_cookies)
            .field("session_key", &self.session_key.as_ref().map(|_| "[redacted]"))
            .field("ca_pem", &self.ca_pem.as_ref().map(Vec::len))
            .finish()
    }
}

/// Claims past the standard ones, kept whole: the groups claim's name is
/// configured, so it is looked up after verification.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct OtherClaims {
    #[serde(flatten)]
    other: serde_json::Map<String, serde_json::Value>,
}

impl AdditionalClaims for OtherClaims {}

type TokenFields = IdTokenFields<
    OtherClaims,
    EmptyExtraTokenFields,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
>;
type TokenResponse = StandardTokenResponse<TokenFields, CoreTokenType>;

/// The client as discovery leaves it: authorization endpoint set, token
/// and userinfo endpoints as the document gave them.
type ProviderClient = Client<
    OtherClaims,
    CoreAuthDisplay,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJsonWebKey,
    CoreAuthPrompt,
    StandardErrorResponse<CoreErrorResponseType>,
    TokenResponse,
    CoreTokenIntrospectionResponse,
    CoreRevocableToken,
    CoreRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// A person the provider vouched for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    /// `sub`.
    pub sub: String,
    /// `name`, else `preferred_username`, else `email`.
    pub name: Option<String>,
    /// The groups claim (a list, or a single string).
    pub groups: Vec<String>,
}

/// Why sign-in failed (shown to the person; never a code or token).
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    /// Discovery has not succeeded yet.
    #[error("the identity provider {issuer} has not answered yet ({last}); try again shortly")]
    NotReady {
        /// The issuer.
        issuer: String,
        /// The last discovery error.
        last: String,
    },
    /// The discovery document could not be fetched or read.
    #[error("discovery at {issuer}: {message}")]
    Discovery {
        /// The issuer.
        issuer: String,
        /// What went wrong.
        message: String,
    },
    /// A configured URL the crate refused.
    #[error("{what} {url:?}: {message}")]
    Url {
        /// Which URL.
        what: &'static str,
        /// It.
        url: String,
        /// Why.
        message: String,
    },
    /// The code could not be exchanged.
    #[error("the identity provider refused the code: {0}")]
    Exchange(String),
    /// The answer had no ID token, or it did not verify.
    #[error("the ID token is not valid: {0}")]
    IdToken(String),
}

/// The HTTP client the provider is reached with (`http::signin` builds it).
pub type HttpsClient = hyper_util::client::legacy::Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// Longest answer read from the provider (a discovery document, a JWKS, a token answer).
const MAX_ANSWER_BYTES: usize = 1024 * 1024;
/// How long one request to the provider may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A request to the provider that did not get an answer.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct HttpError(String);

/// The provider this host signs people in with.
pub struct Oidc {
    /// The settings.
    pub settings: OidcSettings,
    http: HttpsClient,
    discovered: RwLock<Discovery>,
}

enum Discovery {
    Pending(String),
    Done(Arc<ProviderClient>),
}

impl Oidc {
    /// A provider not yet discovered, reached with `http` (which follows
    /// no redirect: a token endpoint that redirected could send the code
    /// and the client secret elsewhere).
    pub fn new(settings: OidcSettings, http: HttpsClient) -> Self {
        Self {
            settings,
            http,
            discovered: RwLock::new(Discovery::Pending("discovery has not run yet".into())),
        }
    }

    /// Whether discovery has succeeded.
    pub fn ready(&self) -> bool {
        matches!(*self.discovered.read().expect("discovery"), Discovery::Done(_))
    }

    /// Fetches the discovery document (and the JWKS it names) and keeps the client.
    pub async fn discover(&self) -> Result<(), OidcError> {
        let issuer = &self.settings.issuer;
        let result = self.fetch().await;
        let mut slot = self.discovered.write().expect("discovery");
        match result {
            Ok(client) => {
                *slot = Discovery::Done(Arc::new(client));
                Ok(())
            }
            Err(e) => {
                // A client already discovered is kept over a failed refresh.
                if let Discovery::Pending(last) = &mut *slot {
                    *last = e.to_string();
                }
                tracing::warn!(%issuer, error = %e, "OpenID discovery failed");
                Err(e)
            }
        }
    }

    async fn fetch(&self) -> Result<ProviderClient, OidcError> {
        let settings = &self.settings;
        let issuer = IssuerUrl::new(settings.issuer.clone()).map_err(|e| OidcError::Url {
            what: "issuer",
            url: settings.issuer.clone(),
            message: e.to_string(),
        })?;
        let http = self.http_client();
        let metadata = CoreProviderMetadata::discover_async(issuer, &http)
            .await
            .map_err(|e| OidcError::Discovery {
                issuer: settings.issuer.clone(),
                message: error_chain(&e),
            })?;
        let redirect = RedirectUrl::new(settings.redirect_url.clone()).map_err(|e| OidcError::Url {
            what: "redirect URL",
            url: settings.redirect_url.clone(),
            message: e.to_string(),
        })?;
        Ok(ProviderClient::from_provider_metadata(
            metadata,
            ClientId::new(settings.client_id.clone()),
            settings.client_secret.clone().map(ClientSecret::new),
        )
        .set_redirect_uri(redirect))
    }

    /// Discovers now, and again every few seconds (up to a minute apart)
    /// until it succeeds or `shutdown`: a provider down at start delays
    /// sign-in only.
    pub fn spawn_discovery(self: &Arc<Self>, shutdown: CancellationToken) {
        let oidc = self.clone();
        tokio::spawn(async move {
            let mut wait = Duration::from_secs(1);
            while oidc.discover().await.is_err() {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(wait) => {}
                }
                wait = (wait * 2).min(Duration::from_secs(60));
            }
            tracing::info!(issuer = %oidc.settings.issuer, "OpenID provider discovered");
        });
    }

    fn client(&self) -> Result<Arc<ProviderClient>, OidcError> {
        match &*self.discovered.read().expect("discovery") {
            Discovery::Done(client) => Ok(client.clone()),
            Discovery::Pending(last) => Err(OidcError::NotReady {
                issuer: self.settings.issuer.clone(),
                last: last.clone(),
            }),
        }
    }

    /// Where to send the person, and what the callback must check, for a
    /// sign-in that expires at `exp`.
    pub fn authorize(&self, exp: i64) -> Result<(String, SignIn), OidcError> {
        let client = self.client()?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = client.authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        );
        for scope in self.settings.scopes.iter().filter(|s| *s != "openid") {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        let (url, state, nonce) = request.set_pkce_challenge(challenge).url();
        Ok((
            url.to_string(),
            SignIn {
                state: state.secret().clone(),
                nonce: nonce.secret().clone(),
                verifier: verifier.secret().clone(),
                exp,
            },
        ))
    }

    /// Exchanges `code` (with the PKCE verifier) and verifies the ID token
    /// against `signin`'s nonce. A token signed with a key the JWKS fetched
    /// at discovery lacks gets one more try after discovering again (the
    /// provider rotated its keys).
    pub async fn finish(&self, code: String, signin: &SignIn) -> Result<Person, OidcError> {
        let client = self.client()?;
        let http = self.http_client();
        let answer = client
            .exchange_code(AuthorizationCode::new(code))
            .map_err(|e| OidcError::Exchange(e.to_string()))?
            .set_pkce_verifier(PkceCodeVerifier::new(signin.verifier.clone()))
            .request_async(&http)
            .await
            .map_err(|e| OidcError::Exchange(error_chain(&e)))?;
        let id_token = openidconnect::TokenResponse::id_token(&answer)
            .ok_or_else(|| OidcError::IdToken("the provider's answer has no ID token".into()))?;
        let nonce = Nonce::new(signin.nonce.clone());
        let claims = match id_token.claims(&client.id_token_verifier(), &nonce) {
            Ok(claims) => claims.clone(),
            Err(first) => {
                if self.discover().await.is_err() {
                    return Err(OidcError::IdToken(error_chain(&first)));
                }
                let client = self.client()?;
                id_token
                    .claims(&client.id_token_verifier(), &nonce)
                    .map_err(|e| OidcError::IdToken(error_chain(&e)))?
                    .clone()
            }
        };
        let name = claims
            .name()
            .and_then(|n| n.get(None))
            .map(|n| n.as_str().to_owned())
            .or_else(|| claims.preferred_username().map(|u| u.as_str().to_owned()))
            .or_else(|| claims.email().map(|e| e.as_str().to_owned()));
        Ok(Person {
            sub: claims.subject().as_str().to_owned(),
            name,
            groups: groups_of(&claims.additional_claims().other, &self.settings.groups_claim),
        })
    }

    /// The host's client, as the crate's HTTP client.
    fn http_client(
        &self,
    ) -> impl Fn(HttpRequest) -> std::pin::Pin<Box<dyn Future<Output = Result<HttpResponse, HttpError>> + Send>>
    {
        let client = self.http.clone();
        move |request: HttpRequest| {
            let client = client.clone();
            Box::pin(async move { send(&client, request).await })
        }
    }
}

async fn send(client: &HttpsClient, request: HttpRequest) -> Result<HttpResponse, HttpError> {
    let uri = request.uri().to_string();
    let failed = |e: &dyn std::error::Error| HttpError(format!("{uri}: {}", error_chain(e)));
    let request = request.map(|body| Full::new(Bytes::from(body)));
    let answer = tokio::time::timeout(REQUEST_TIMEOUT, client.request(request))
        .await
        .map_err(|_| HttpError(format!("{uri}: no answer within {REQUEST_TIMEOUT:?}")))?
        .map_err(|e| failed(&e))?;
    let (parts, body) = answer.into_parts();
    let bytes = Limited::new(body, MAX_ANSWER_BYTES)
        .collect()
        .await
        .map_err(|e| HttpError(format!("{uri}: {e} (at most {MAX_ANSWER_BYTES} bytes are read)")))?
        .to_bytes();
    Ok(HttpResponse::from_parts(parts, bytes.to_vec()))
}

/// The groups under `claim`: a list of strings, or one string; anything
/// else (absent, numbers) is no groups.
fn groups_of(claims: &serde_json::Map<String, serde_json::Value>, claim: &str) -> Vec<String> {
    match claims.get(claim) {
        Some(serde_json::Value::Array(items)) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        Some(serde_json::Value::String(one)) => vec![one.clone()],
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_come_from_a_list_or_a_single_string() {
        let claims: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(r#"{"groups": ["sre", 3, "dev"], "roles": "admin", "count": 2}"#).unwrap();
        assert_eq!(groups_of(&claims, "groups"), ["sre", "dev"]);
        assert_eq!(groups_of(&claims, "roles"), ["admin"]);
        assert!(groups_of(&claims, "count").is_empty());
        assert!(groups_of(&claims, "missing").is_empty());
    }
}
