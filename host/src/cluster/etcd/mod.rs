//! A small etcd v3 client over etcd's JSON gateway (`POST /v3/kv/range`,
//! `/v3/kv/txn`, `/v3/kv/put`, `/v3/lease/grant`, `/v3/lease/revoke`), which
//! every etcd since 3.4 serves on its client URLs. autoheal asks etcd for
//! little (reads, transactions, leases), and this way it needs no gRPC code
//! generated at build time: a plain `cargo build` needs no `protoc`.
//!
//! **Members.** A request goes to the member that answered last; when it
//! cannot have reached that member (the connection failed, or etcd answered
//! "unavailable": down, no leader), it goes to the next, once around. Only
//! such a request is sent again: one that failed after it was sent may have
//! been applied. `Cluster::ask` retries a round that reached nobody until
//! its timeout.
//!
//! **Leader.** Every request asks for a member with a leader
//! (`Grpc-Metadata-hasleader`, gRPC's `hasleader` metadata through the
//! gateway): a member cut off from the others answers "no leader" at once
//! instead of waiting out the timeout.
//!
//! **TLS.** `https://` members are reached through rustls with the CA and
//! client certificate of `[cluster]`. etcd 3.4's gateway calls its own gRPC
//! server with the server certificate as a client certificate, so with
//! `--client-cert-auth` that certificate must allow client authentication
//! too (`extendedKeyUsage = serverAuth, clientAuth`).
//!
//! **Users.** With a user, the client authenticates on first use and sends
//! the token with every request; a token etcd no longer knows (expired, a
//! restarted member) is replaced once.

pub(crate) mod tls;
mod wire;

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use serde::Serialize;
use serde::de::DeserializeOwned;

use autoheal_core::util::error_chain;

use crate::config::ClusterTls;
use wire::{
    AuthenticateRequest, AuthenticateResponse, ErrorAnswer, LeaseGrantRequest, LeaseGrantResponse,
    LeaseRevokeRequest, PutRequest,
};

pub use wire::{
    Compare, CompareOp, KeyValue, RangeRequest, RangeResponse, Txn, TxnOp, TxnOpResponse, TxnResponse,
};

/// gRPC's `UNAVAILABLE`: etcd did not take the request (member stopping,
/// no leader, the gateway could not reach its own server).
const UNAVAILABLE: i32 = 14;
/// gRPC's `UNAUTHENTICATED`: the token is not (or no longer) valid.
const UNAUTHENTICATED: i32 = 16;

/// The largest answer read: etcd's own limit on a response is 4 MiB of
/// protobuf, which base64 and JSON make about a third larger.
const MAX_ANSWER_BYTES: usize = 8 << 20;

/// How long an idle connection to a member is kept for the next request.
const IDLE_FOR: Duration = Duration::from_secs(30);

/// Why a request to etcd failed.
#[derive(Debug, thiserror::Error)]
pub enum EtcdError {
    /// The request reached no member: sending it again does nothing twice.
    #[error("{endpoint}: not reached: {message}")]
    Unreached {
        /// The member's URL.
        endpoint: String,
        /// Why (refused, timed out connecting, TLS handshake).
        message: String,
    },
    /// etcd answered with a gRPC status.
    #[error("{message} (gRPC status {code})")]
    Status {
        /// The gRPC status code.
        code: i32,
        /// etcd's message, e.g. `etcdserver: no leader`.
        message: String,
    },
    /// The request was sent but its answer was lost (the connection broke):
    /// it may have been applied.
    #[error("{endpoint}: no answer: {message}")]
    Lost {
        /// The member's URL.
        endpoint: String,
        /// What broke.
        message: String,
    },
    /// An answer that is not the gateway's JSON (another server, a proxy).
    #[error("{endpoint}: not etcd's answer (HTTP {status}): {message}")]
    Unexpected {
        /// The member's URL.
        endpoint: String,
        /// The HTTP status.
        status: u16,
        /// What was wrong with it.
        message: String,
    },
}

impl EtcdError {
    /// Whether the request cannot have reached a member: a connection that
    /// failed, or etcd answering "unavailable" (it took nothing).
    pub fn unreached(&self) -> bool {
        match self {
            EtcdError::Unreached { .. } => true,
            EtcdError::Status { code, .. } => *code == UNAVAILABLE,
            EtcdError::Lost { .. } | EtcdError::Unexpected { .. } => false,
        }
    }
}

/// The client could not be set up (URLs, TLS material).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SetupError(pub String);

/// How to reach the cluster.
#[derive(Debug, Clone)]
pub struct EtcdOptions {
    /// Client URLs of the members (all `http://` or all `https://`).
    pub endpoints: Vec<String>,
    /// Longest wait for a TCP connection to one member, so that a member
    /// that swallows packets leaves time to try the others.
    pub connect_timeout: Duration,
    /// TLS material, for `https://` members.
    pub tls: Option<ClusterTls>,
    /// User and password, with etcd's `--auth` enabled.
    pub user: Option<(String, String)>,
}

type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// A handle on an etcd cluster; cheap to share (one connection pool).
pub struct EtcdClient {
    endpoints: Vec<String>,
    http: HttpClient,
    /// The member that answered last: the first one asked.
    preferred: AtomicUsize,
    user: Option<(String, String)>,
    /// The token of `user`, once authenticated.
    token: Mutex<Option<String>>,
}

impl std::fmt::Debug for EtcdClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdClient")
            .field("endpoints", &self.endpoints)
            .finish_non_exhaustive()
    }
}

impl EtcdClient {
    /// A client of the members in `options`. Nothing is sent yet.
    pub fn new(options: EtcdOptions) -> Result<Self, SetupError> {
        if options.endpoints.is_empty() {
            return Err(SetupError("no etcd URL".into()));
        }
        let endpoints: Vec<String> = options
            .endpoints
            .iter()
            .map(|url| url.trim_end_matches('/').to_owned())
            .collect();
        for url in &endpoints {
            url.parse::<hyper::Uri>()
                .map_err(|e| SetupError(format!("{url:?}: {e}")))?;
        }
        let mut connector = HttpConnector::new();
        connector.enforce_http(false);
        connector.set_connect_timeout(Some(options.connect_timeout));
        connector.set_nodelay(true);
        let tls = tls::client_config(options.tls.as_ref()).map_err(SetupError)?;
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(connector);
        let http = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(IDLE_FOR)
            .pool_timer(TokioTimer::new())
            .build(https);
        Ok(Self {
            endpoints,
            http,
            preferred: AtomicUsize::new(0),
            user: options.user,
            token: Mutex::new(None),
        })
    }

    /// The keys of `range`.
    pub async fn range(&self, range: &RangeRequest) -> Result<RangeResponse, EtcdError> {
        self.call("/v3/kv/range", range).await
    }

    /// The one key `key`, if it exists.
    pub async fn get(&self, key: impl Into<Vec<u8>>) -> Result<Option<KeyValue>, EtcdError> {
        let found = self.range(&RangeRequest::key(key)).await?;
        Ok(found.kvs.into_iter().next())
    }

    /// Runs `txn` atomically.
    pub async fn txn(&self, txn: &Txn) -> Result<TxnResponse, EtcdError> {
        self.call("/v3/kv/txn", txn).await
    }

    /// Sets `key` to `value` (no lease).
    pub async fn put(&self, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> Result<(), EtcdError> {
        let put = PutRequest {
            key: key.into(),
            value: value.into(),
            lease: 0,
        };
        self.call::<_, wire::Empty>("/v3/kv/put", &put).await.map(|_| ())
    }

    /// A lease of `ttl` seconds; its id.
    pub async fn lease_grant(&self, ttl: i64) -> Result<i64, EtcdError> {
        let grant: LeaseGrantResponse = self.call("/v3/lease/grant", &LeaseGrantRequest { ttl }).await?;
        Ok(grant.id)
    }

    /// Ends lease `id`, deleting the keys on it.
    pub async fn lease_revoke(&self, id: i64) -> Result<(), EtcdError> {
        self.call::<_, wire::Empty>("/v3/lease/revoke", &LeaseRevokeRequest { id })
            .await
            .map(|_| ())
    }

    /// Authenticates now, if there is a user: a wrong password or user is
    /// told at start rather than as an unavailable cluster.
    pub async fn authenticate(&self) -> Result<(), EtcdError> {
        if self.user.is_none() {
            return Ok(());
        }
        let start = self.preferred.load(Ordering::Relaxed);
        let mut last = None;
        for offset in 0..self.endpoints.len() {
            let at = (start + offset) % self.endpoints.len();
            match self.fresh_token(at).await {
                Err(e) if e.unreached() => last = Some(e),
                result => return result.map(|_| ()),
            }
        }
        Err(last.expect("at least one endpoint"))
    }

    /// `request` to `path` on each member in turn, from the preferred one,
    /// until one is reached.
    async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        path: &str,
        request: &Req,
    ) -> Result<Resp, EtcdError> {
        let body = Bytes::from(serde_json::to_vec(request).expect("etcd requests serialize"));
        let start = self.preferred.load(Ordering::Relaxed);
        let mut last = None;
        for offset in 0..self.endpoints.len() {
            let at = (start + offset) % self.endpoints.len();
            match self.authorized(at, path, body.clone()).await {
                Err(e) if e.unreached() => last = Some(e),
                result => {
                    self.preferred.store(at, Ordering::Relaxed);
                    return result;
                }
            }
        }
        Err(last.expect("at least one endpoint"))
    }

    /// One request to member `at`, with the user's token; a token etcd
    /// refuses is replaced once.
    async fn authorized<Resp: DeserializeOwned>(
        &self,
        at: usize,
        path: &str,
        body: Bytes,
    ) -> Result<Resp, EtcdError> {
        if self.user.is_none() {
            return self.send(at, path, body, None).await;
        }
        let token = match self.token() {
            Some(token) => token,
            None => self.fresh_token(at).await?,
        };
        match self.send(at, path, body.clone(), Some(&token)).await {
            Err(EtcdError::Status { code, .. }) if code == UNAUTHENTICATED => {
                let token = self.fresh_token(at).await?;
                self.send(at, path, body, Some(&token)).await
            }
            result => result,
        }
    }

    fn token(&self) -> Option<String> {
        self.token.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Authenticates the user at member `at`; the token, kept for later requests.
    async fn fresh_token(&self, at: usize) -> Result<String, EtcdError> {
        let Some((name, password)) = &self.user else {
            unreachable!("only with a user")
        };
        let request = AuthenticateRequest {
            name: name.clone(),
            password: password.clone(),
        };
        let body = Bytes::from(serde_json::to_vec(&request).expect("a name and a password serialize"));
        let answer: AuthenticateResponse = self.send(at, "/v3/auth/authenticate", body, None).await?;
        *self.token.lock().unwrap_or_else(|p| p.into_inner()) = Some(answer.token.clone());
        Ok(answer.token)
    }

    /// One request to member `at`, and its answer read as `Resp`.
    async fn send<Resp: DeserializeOwned>(
        &self,
        at: usize,
        path: &str,
        body: Bytes,
        token: Option<&str>,
    ) -> Result<Resp, EtcdError> {
        let endpoint = &self.endpoints[at];
        let mut request = hyper::Request::post(format!("{endpoint}{path}"))
            .header(CONTENT_TYPE, "application/json")
            .header("grpc-metadata-hasleader", "true");
        if let Some(token) = token {
            request = request.header(AUTHORIZATION, token);
        }
        let request = request
            .body(Full::new(body))
            .expect("the endpoint was checked when the client was made");
        let answer = self.http.request(request).await.map_err(|e| {
            // A failed connection sent nothing; anything else may have
            // been sent (hyper itself resends a request that a pooled
            // connection closed before taking).
            let message = error_chain(&e);
            let endpoint = endpoint.clone();
            if e.is_connect() {
                EtcdError::Unreached { endpoint, message }
            } else {
                EtcdError::Lost { endpoint, message }
            }
        })?;
        let status = answer.status();
        let bytes = Limited::new(answer.into_body(), MAX_ANSWER_BYTES)
            .collect()
            .await
            .map_err(|e| EtcdError::Lost {
                endpoint: endpoint.clone(),
                message: e.to_string(),
            })?
            .to_bytes();
        let unexpected = |message: String| EtcdError::Unexpected {
            endpoint: endpoint.clone(),
            status: status.as_u16(),
            message,
        };
        if status.is_success() {
            return serde_json::from_slice(&bytes).map_err(|e| unexpected(e.to_string()));
        }
        match serde_json::from_slice::<ErrorAnswer>(&bytes) {
            Ok(error) => Err(EtcdError::Status {
                code: error.code,
                message: error.message,
            }),
            Err(_) => Err(unexpected(
                String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).into_owned(),
            )),
        }
    }
}
