//! `/auth/*`: people sign in to the console through the OpenID provider of
//! `[auth.oidc]`, and the console asks who is signed in.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `GET /auth/session`: the person signed in with this browser's cookie.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SessionAnswer {
    /// Their subject at the provider (the ID token's `sub`): `by` in the
    /// events of what they do.
    pub sub: String,
    /// Their display name (`name`, else `preferred_username`, else `email`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Their groups, from the groups claim.
    pub groups: Vec<String>,
    /// What `[[auth.roles]]` gives those groups.
    pub grants: Vec<crate::auth::GrantAnswer>,
    /// The token every state-changing request made with the cookie sends
    /// as `X-CSRF-Token`.
    pub csrf_token: String,
    /// When the session ends (unix seconds).
    pub expires_at: i64,
}

/// `POST /auth/logout`'s answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SignedOutAnswer {
    /// Whether a session was ended (`false`: there was none).
    pub signed_out: bool,
}

/// `POST /auth/cli-token`'s answer: a personal token for `autoheal login`,
/// shown once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CliTokenAnswer {
    /// The token (`ahp_...`): send it as `Authorization: Bearer`.
    pub token: String,
    /// When it stops working (unix seconds).
    pub expires_at: i64,
}
