//! The plugins' Prometheus (`prometheus.query`, `query-range`): the host's
//! `prometheus_url`, with the bearer token of `prometheus_token_file` and
//! the CA bundle of `prometheus_ca_file`. Each answer is read up to the
//! manifest's `max_bytes` and no further, then parsed by the sandbox
//! (`autoheal_sandbox::capability::parse_answer`), so a query that selects
//! a million series costs the host `max_bytes`, not the whole answer.
//!
//! The client is hyper's, on the rustls the etcd client already builds
//! (`cluster::etcd::tls`): one pool shared by all plugins.

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::header::AUTHORIZATION;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use autoheal_core::util::error_chain;
use autoheal_sandbox::capability::{PromAnswer, PromError, PromQuery, PrometheusSource, parse_answer};
use autoheal_sandbox::manifest::PrometheusGrant;

use crate::config::ClusterTls;

/// How long a connection to Prometheus may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Why the client could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PromSetupError {
    /// `prometheus_url` is not a URL hyper can ask.
    #[error("prometheus_url {url:?}: {message}")]
    Url {
        /// The URL.
        url: String,
        /// What is wrong with it.
        message: String,
    },
    /// A file of the configuration could not be read or used.
    #[error("{key} {path:?}: {message}")]
    File {
        /// The configuration key.
        key: &'static str,
        /// The file.
        path: String,
        /// Why.
        message: String,
    },
}

/// The Prometheus plugins query.
pub struct PluginPrometheus {
    base: String,
    /// `Bearer TOKEN`, if a token file is configured.
    authorization: Option<String>,
    http: Client<HttpsConnector<HttpConnector>, Empty<Bytes>>,
}

impl PluginPrometheus {
    /// The client of the host's config: `prometheus_url`, with
    /// `prometheus_token_file` and `prometheus_ca_file` (the server's and a
    /// trial's, the same).
    pub fn from_config(config: &crate::config::Config) -> Result<Self, PromSetupError> {
        Self::new(
            &config.prometheus_url,
            config.prometheus_token_file.as_deref(),
            config.prometheus_ca_file.as_deref(),
        )
    }

    /// A client of `url`, with the token of `token_file` and the CA bundle of
    /// `ca_file` (without one, the system's roots for `https://`).
    pub fn new(url: &str, token_file: Option<&Path>, ca_file: Option<&Path>) -> Result<Self, PromSetupError> {
        let base = url.trim_end_matches('/').to_owned();
        base.parse::<hyper::Uri>().map_err(|e| PromSetupError::Url {
            url: url.to_owned(),
            message: e.to_string(),
        })?;
        let read = |key: &'static str, path: &Path| {
            std::fs::read(path).map_err(|e| PromSetupError::File {
                key,
                path: path.display().to_string(),
                message: e.to_string(),
            })
        };
        let authorization = match token_file {
            None => None,
            Some(path) => {
                let text = String::from_utf8(read("prometheus_token_file", path)?).map_err(|_| {
                    PromSetupError::File {
                        key: "prometheus_token_file",
                        path: path.display().to_string(),
                        message: "not UTF-8 text".into(),
                    }
                })?;
                let token = text.trim();
                if token.is_empty() || token.chars().any(|c| c.is_control() || c == ' ') {
                    return Err(PromSetupError::File {
                        key: "prometheus_token_file",
                        path: path.display().to_string(),
                        message: "must hold one token, without spaces".into(),
                    });
                }
                Some(format!("Bearer {token}"))
            }
        };
        let tls = ClusterTls {
            ca_pem: ca_file.map(|p| read("prometheus_ca_file", p)).transpose()?,
            identity: None,
        };
        let tls =
            crate::cluster::etcd::tls::client_config(Some(&tls)).map_err(|message| PromSetupError::File {
                key: "prometheus_ca_file",
                path: ca_file.map(|p| p.display().to_string()).unwrap_or_default(),
                message,
            })?;
        let mut connector = HttpConnector::new();
        connector.enforce_http(false);
        connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
        connector.set_nodelay(true);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(connector);
        let http = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_timer(TokioTimer::new())
            .build(https);
        Ok(Self {
            base,
            authorization,
            http,
        })
    }

    /// `path?query` of Prometheus' API for `query`; Prometheus' own
    /// evaluation timeout is the manifest's, so it stops working when the
    /// host stops waiting.
    fn url(&self, query: &PromQuery, timeout: Duration) -> String {
        let timeout = format!("{}ms", timeout.as_millis());
        let params: Vec<(&str, String)> = match query {
            PromQuery::Instant { promql, time } => {
                let mut params = vec![("query", promql.clone()), ("timeout", timeout)];
                if let Some(time) = time {
                    params.push(("time", time.to_string()));
                }
                params
            }
            PromQuery::Range {
                promql,
                start,
                end,
                step,
            } => vec![
                ("query", promql.clone()),
                ("start", start.to_string()),
                ("end", end.to_string()),
                ("step", step.to_string()),
                ("timeout", timeout),
            ],
        };
        let path = match query {
            PromQuery::Instant { .. } => "/api/v1/query",
            PromQuery::Range { .. } => "/api/v1/query_range",
        };
        let encoded = serde_urlencoded::to_string(&params).unwrap_or_default();
        format!("{}{path}?{encoded}", self.base)
    }
}

#[async_trait::async_trait]
impl PrometheusSource for PluginPrometheus {
    async fn query(&self, query: &PromQuery, bounds: &PrometheusGrant) -> Result<PromAnswer, PromError> {
        let mut request = hyper::Request::get(self.url(query, bounds.timeout));
        if let Some(authorization) = &self.authorization {
            request = request.header(AUTHORIZATION, authorization);
        }
        let request = request
            .body(Empty::new())
            .map_err(|e| PromError::Failed(format!("the query cannot be sent: {e}")))?;
        let ask = async {
            let answer = self.http.request(request).await.map_err(|e| {
                PromError::Failed(format!("Prometheus at {}: {}", self.base, error_chain(&e)))
            })?;
            let status = answer.status();
            let (body, complete) = read_bounded(answer.into_body(), bounds.max_bytes).await?;
            // Prometheus answers a refused query (400, 422) and a failed one
            // (503) with the same envelope as a success: the body says which.
            parse_answer(&body, complete, bounds.max_series).map_err(|e| match e {
                PromError::Failed(m) if !status.is_success() => {
                    PromError::Failed(format!("Prometheus answered {status}: {m}"))
                }
                other => other,
            })
        };
        match tokio::time::timeout(bounds.timeout, ask).await {
            Ok(answer) => answer,
            Err(_) => Err(PromError::Failed(format!(
                "Prometheus did not answer within {}",
                humantime::format_duration(bounds.timeout)
            ))),
        }
    }
}

/// The body up to `max` bytes; `false` when there was more (not read: the
/// connection is dropped with the rest).
async fn read_bounded(mut body: hyper::body::Incoming, max: usize) -> Result<(Vec<u8>, bool), PromError> {
    let mut read = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame
            .map_err(|e| PromError::Failed(format!("Prometheus' answer broke off: {}", error_chain(&e))))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if read.len() + data.len() > max {
            read.extend_from_slice(&data[..max - read.len()]);
            return Ok((read, false));
        }
        read.extend_from_slice(&data);
    }
    Ok((read, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_encoded_with_the_manifest_timeout() {
        let client = PluginPrometheus::new("http://127.0.0.1:9090/", None, None).unwrap();
        let url = client.url(
            &PromQuery::Range {
                promql: "sum(up{job=\"a b\"})".into(),
                start: 10.0,
                end: 70.5,
                step: 15.0,
            },
            Duration::from_secs(2),
        );
        assert_eq!(
            url,
            "http://127.0.0.1:9090/api/v1/query_range?query=sum%28up%7Bjob%3D%22a+b%22%7D%29&start=10&end=70.5&step=15&timeout=2000ms"
        );
    }

    #[test]
    fn a_token_file_must_hold_one_token() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "two words\n").unwrap();
        let err = PluginPrometheus::new("http://127.0.0.1:9090", Some(&file), None)
            .err()
            .unwrap();
        assert!(err.to_string().contains("prometheus_token_file"), "{err}");
        std::fs::write(&file, "s3cret\n").unwrap();
        let client = PluginPrometheus::new("http://127.0.0.1:9090", Some(&file), None).unwrap();
        assert_eq!(client.authorization.as_deref(), Some("Bearer s3cret"));
        let missing = PluginPrometheus::new("http://127.0.0.1:9090", None, Some(&dir.path().join("ca.pem")))
            .err()
            .unwrap();
        assert!(missing.to_string().contains("prometheus_ca_file"), "{missing}");
    }
}
