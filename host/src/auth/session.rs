//! The console's session: a signed cookie that carries who signed in, and
//! the CSRF token every state-changing request made with it must echo.
//!
//! A sealed value is `base64url(JSON) "." base64url(HMAC-SHA256)`, the MAC
//! over a purpose label and the JSON, so a value sealed for one purpose (the
//! sign-in's state, a session, a CLI token) never opens as another. Nothing
//! is stored server-side but the ids of sessions signed out before their
//! expiry, kept until that expiry so that a copied cookie stops working.
//! Expiry is checked here, not left to the browser's `Max-Age`.
//!
//! The key: `[auth.oidc] session_key_file`, else derived from the cluster
//! secret (a session is valid on every replica), else random at start
//! (sessions end with the process).

use std::collections::HashMap;
use std::sync::Mutex;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use autoheal_core::proof::ClusterSecret;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "autoheal_session";
/// The short-lived cookie that carries a sign-in's state, nonce and PKCE verifier.
pub const SIGNIN_COOKIE: &str = "autoheal_signin";
/// The header a cookie-authenticated request that changes state must carry.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// How long a sign-in may take at the provider.
pub const SIGNIN_LIFETIME_SEC: i64 = 600;
/// What a CLI token starts with (so that it is recognised, and found by secret scanners).
pub const CLI_TOKEN_PREFIX: &str = "ahp_";

/// What a sealed value is for: part of what is signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// The sign-in's state cookie.
    SignIn,
    /// A console session.
    Session,
    /// A personal token for the CLI.
    CliToken,
}

impl Purpose {
    fn label(self) -> &'static [u8] {
        match self {
            Purpose::SignIn => b"autoheal-signin-v1",
            Purpose::Session => b"autoheal-session-v1",
            Purpose::CliToken => b"autoheal-cli-token-v1",
        }
    }
}

/// A signed-in person, as the session (or CLI token) carries them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// A random id (to end it before its expiry).
    pub sid: String,
    /// The subject.
    pub sub: String,
    /// The display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The groups claim.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Unix seconds after which it is refused.
    pub exp: i64,
    /// The token state-changing requests echo in [`CSRF_HEADER`].
    pub csrf: String,
    /// For a CLI token: the id of the console session that issued it, so
    /// that signing out of that session ends the token too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issued_by: Option<String>,
}

/// A sign-in under way: what the callback checks and needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignIn {
    /// The `state` sent to the provider.
    pub state: String,
    /// The `nonce` the ID token must carry.
    pub nonce: String,
    /// The PKCE code verifier.
    pub verifier: String,
    /// Unix seconds after which the sign-in has to start again.
    pub exp: i64,
}

/// Why a sealed value was refused (never what it held).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// Not of the sealed form, or not this key's signature.
    #[error("the value is not signed by this host")]
    BadSignature,
    /// Past its expiry.
    #[error("the session has expired; sign in again")]
    Expired,
    /// Signed out.
    #[error("the session was signed out; sign in again")]
    Ended,
}

/// The key sessions are signed with, and the sessions ended early.
pub struct SessionKeys {
    key: Vec<u8>,
    /// Where the key came from, for the start-up log and docs.
    pub source: KeySource,
    ended: Mutex<HashMap<String, i64>>,
}

/// Where the session key came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySource {
    /// `session_key_file`.
    File,
    /// Derived from the cluster secret: valid on every replica.
    Cluster,
    /// Random at start: sessions end with the process.
    Random,
}

impl SessionKeys {
    /// The file's key, else the cluster secret's derived key, else a random one.
    pub fn new(file_key: Option<&[u8]>, cluster: Option<&ClusterSecret>) -> Self {
        let (key, source) = match (file_key, cluster) {
            (Some(key), _) => (key.to_vec(), KeySource::File),
            (None, Some(secret)) => (
                secret.derive_key("autoheal-console-sessions").to_vec(),
                KeySource::Cluster,
            ),
            (None, None) => (random_bytes::<32>().to_vec(), KeySource::Random),
        };
        Self {
            key,
            source,
            ended: Mutex::default(),
        }
    }

    fn mac(&self, purpose: Purpose, payload: &[u8]) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes a key of any length");
        mac.update(purpose.label());
        mac.update(b"\0");
        mac.update(payload);
        mac
    }

    /// `value` signed for `purpose`.
    pub fn seal<T: Serialize>(&self, purpose: Purpose, value: &T) -> String {
        let payload = serde_json::to_vec(value).expect("plain structs serialize");
        let tag = self.mac(purpose, &payload).finalize().into_bytes();
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(&payload),
            URL_SAFE_NO_PAD.encode(tag)
        )
    }

    /// The value `sealed` holds, if this key signed it for `purpose`
    /// (checked in constant time, before the JSON is read).
    pub fn open<T: DeserializeOwned>(&self, purpose: Purpose, sealed: &str) -> Result<T, SessionError> {
        let (payload, tag) = sealed.trim().split_once('.').ok_or(SessionError::BadSignature)?;
        let payload = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| SessionError::BadSignature)?;
        let tag = URL_SAFE_NO_PAD
            .decode(tag)
            .map_err(|_| SessionError::BadSignature)?;
        self.mac(purpose, &payload)
            .verify_slice(&tag)
            .map_err(|_| SessionError::BadSignature)?;
        serde_json::from_slice(&payload).map_err(|_| SessionError::BadSignature)
    }

    /// The session `sealed` holds, if it is signed, unexpired at `now` and not signed out.
    pub fn open_session(&self, purpose: Purpose, sealed: &str, now: i64) -> Result<Session, SessionError> {
        let session: Session = self.open(purpose, sealed)?;
        if session.exp <= now {
            return Err(SessionError::Expired);
        }
        let ended = self.ended.lock().expect("ended sessions");
        if ended.contains_key(&session.sid)
            || session
                .issued_by
                .as_ref()
                .is_some_and(|by| ended.contains_key(by))
        {
            return Err(SessionError::Ended);
        }
        drop(ended);
        Ok(session)
    }

    /// Remembers `session` as signed out until its expiry (and forgets the
    /// ids whose expiry has passed, so the map stays as small as the number
    /// of sessions ended early and still unexpired).
    pub fn end(&self, session: &Session, now: i64) {
        self.end_id(&session.sid, session.exp, now);
    }

    /// Remembers the session `sid`, valid until `exp`, as signed out: this
    /// replica's sign-out, or another replica's learnt through the cluster.
    pub fn end_id(&self, sid: &str, exp: i64, now: i64) {
        let mut ended = self.ended.lock().expect("ended sessions");
        ended.retain(|_, exp| *exp > now);
        if exp > now {
            ended.insert(sid.to_owned(), exp);
        }
    }
}

/// A new session for a person, lasting `lifetime_sec` from `now`.
pub fn new_session(
    sub: String,
    name: Option<String>,
    groups: Vec<String>,
    now: i64,
    lifetime_sec: i64,
) -> Session {
    Session {
        sid: random_text(),
        sub,
        name,
        groups,
        exp: now + lifetime_sec,
        csrf: random_text(),
        issued_by: None,
    }
}

/// Whether the CSRF token a request sent is the session's, in constant time.
pub fn csrf_matches(session: &Session, sent: Option<&str>) -> bool {
    let Some(sent) = sent else {
        return false;
    };
    super::constant_time_eq(session.csrf.as_bytes(), sent.trim().as_bytes())
}

/// The value of cookie `name` in a `Cookie` header.
pub fn cookie<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Lax, Path=/, `Secure` when
/// served over TLS; `max_age` 0 clears it.
pub fn set_cookie(name: &str, value: &str, max_age: i64, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}")
}

/// 32 random bytes, base64url: ids, CSRF tokens.
pub fn random_text() -> String {
    URL_SAFE_NO_PAD.encode(random_bytes::<32>())
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    // Without the system's randomness no session could be trusted: stop.
    getrandom::fill(&mut bytes).expect("the system's random number generator");
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice(now: i64) -> Session {
        new_session(
            "alice".into(),
            Some("Alice".into()),
            vec!["sre".into()],
            now,
            3600,
        )
    }

    #[test]
    fn a_sealed_session_opens_until_it_expires() {
        let keys = SessionKeys::new(None, None);
        assert_eq!(keys.source, KeySource::Random);
        let session = alice(1_000);
        let sealed = keys.seal(Purpose::Session, &session);
        assert_eq!(
            keys.open_session(Purpose::Session, &sealed, 1_000),
            Ok(session.clone())
        );
        assert_eq!(
            keys.open_session(Purpose::Session, &sealed, 4_600),
            Err(SessionError::Expired)
        );
    }

    #[test]
    fn a_changed_value_another_key_or_another_purpose_is_refused() {
        let keys = SessionKeys::new(Some(b"k".repeat(32).as_slice()), None);
        let sealed = keys.seal(Purpose::Session, &alice(1_000));
        let (payload, tag) = sealed.split_once('.').unwrap();
        // Another person's payload under alice's MAC.
        let mut bob = alice(1_000);
        bob.sub = "bob".into();
        let forged = format!(
            "{}.{tag}",
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&bob).unwrap())
        );
        for bad in [
            forged.as_str(),
            payload,
            "",
            "x.y",
            &format!("{payload}.{payload}"),
        ] {
            assert_eq!(
                keys.open_session(Purpose::Session, bad, 1_000),
                Err(SessionError::BadSignature),
                "{bad}"
            );
        }
        let other = SessionKeys::new(Some(b"o".repeat(32).as_slice()), None);
        assert_eq!(
            other.open_session(Purpose::Session, &sealed, 1_000),
            Err(SessionError::BadSignature)
        );
        assert_eq!(
            keys.open_session(Purpose::CliToken, &sealed, 1_000),
            Err(SessionError::BadSignature)
        );
    }

    #[test]
    fn replicas_derive_the_same_key_from_the_cluster_secret() {
        let secret = ClusterSecret::new(b"s".repeat(40));
        let (one, two) = (
            SessionKeys::new(None, Some(&secret)),
            SessionKeys::new(None, Some(&secret)),
        );
        assert_eq!(one.source, KeySource::Cluster);
        let sealed = one.seal(Purpose::Session, &alice(1_000));
        assert!(two.open_session(Purpose::Session, &sealed, 1_000).is_ok());
    }

    #[test]
    fn a_signed_out_session_stays_refused_until_it_would_have_expired() {
        let keys = SessionKeys::new(None, None);
        let session = alice(1_000);
        let sealed = keys.seal(Purpose::Session, &session);
        keys.end(&session, 1_010);
        assert_eq!(
            keys.open_session(Purpose::Session, &sealed, 1_020),
            Err(SessionError::Ended)
        );
        // Ending another later forgets this one once it has expired anyway.
        keys.end(&alice(5_000), 4_700);
        assert!(keys.ended.lock().unwrap().get(&session.sid).is_none());
    }

    #[test]
    fn ending_a_session_ends_the_cli_tokens_it_issued_and_no_other() {
        let keys = SessionKeys::new(None, None);
        let console = alice(1_000);
        let issued = Session {
            issued_by: Some(console.sid.clone()),
            ..alice(1_100)
        };
        let unrelated = alice(1_100);
        let (issued_token, unrelated_token) = (
            keys.seal(Purpose::CliToken, &issued),
            keys.seal(Purpose::CliToken, &unrelated),
        );
        keys.end_id(&console.sid, issued.exp, 1_200);
        assert_eq!(
            keys.open_session(Purpose::CliToken, &issued_token, 1_300),
            Err(SessionError::Ended)
        );
        assert!(
            keys.open_session(Purpose::CliToken, &unrelated_token, 1_300)
                .is_ok()
        );
    }

    #[test]
    fn csrf_tokens_cookies_and_set_cookie() {
        let session = alice(0);
        assert!(csrf_matches(&session, Some(&session.csrf)));
        assert!(!csrf_matches(&session, Some("wrong")));
        assert!(!csrf_matches(&session, None));
        assert_eq!(
            cookie("a=1; autoheal_session=xyz; b=2", SESSION_COOKIE),
            Some("xyz")
        );
        assert_eq!(cookie("a=1", SESSION_COOKIE), None);
        assert_eq!(
            set_cookie(SESSION_COOKIE, "v", 60, true),
            "autoheal_session=v; Path=/; HttpOnly; SameSite=Lax; Max-Age=60; Secure"
        );
        assert!(!set_cookie(SESSION_COOKIE, "v", 60, false).contains("Secure"));
    }
}
