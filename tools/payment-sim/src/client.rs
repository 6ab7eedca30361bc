//! A client for a running simulator, used by `payment-sim dip|recovery|steady|status`.

use std::time::Duration;

use crate::model::{Mode, Status};

/// Default address of `payment-sim serve`, and the Prometheus `crm` scrape target.
pub const DEFAULT_URL: &str = "http://127.0.0.1:9105";

/// Why a request to the simulator failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot build the HTTP client")]
    Build(#[source] reqwest::Error),
    #[error("cannot reach the payment simulator at {url} (is `payment-sim serve` running there?)")]
    Unreachable {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("the payment simulator at {url} answered HTTP {status}: {message}")]
    Rejected {
        url: String,
        status: u16,
        message: String,
    },
    #[error("unexpected answer from {url} (is it a payment simulator?)")]
    BadResponse {
        url: String,
        #[source]
        source: reqwest::Error,
    },
}

/// Talks to one simulator.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    /// A client for the simulator at `base_url` (e.g. [`DEFAULT_URL`]).
    pub fn new(base_url: &str) -> Result<Client, ClientError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            // The simulator is a local tool: never send its requests through a proxy.
            .no_proxy()
            .build()
            .map_err(ClientError::Build)?;
        Ok(Client {
            http,
            base: base_url.trim_end_matches('/').to_owned(),
        })
    }

    /// `GET /`.
    pub async fn status(&self) -> Result<Status, ClientError> {
        let url = format!("{}/", self.base);
        self.send(self.http.get(&url), url).await
    }

    /// `POST /mode/{mode}`: the status after the switch.
    pub async fn set_mode(&self, mode: Mode) -> Result<Status, ClientError> {
        let url = format!("{}/mode/{mode}", self.base);
        self.send(self.http.post(&url), url).await
    }

    async fn send(&self, request: reqwest::RequestBuilder, url: String) -> Result<Status, ClientError> {
        let response = match request.send().await {
            Ok(response) => response,
            Err(source) => return Err(ClientError::Unreachable { url, source }),
        };
        let status = response.status();
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            let message = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned))
                .unwrap_or(body);
            return Err(ClientError::Rejected {
                url,
                status: status.as_u16(),
                message,
            });
        }
        response
            .json::<Status>()
            .await
            .map_err(|source| ClientError::BadResponse { url, source })
    }
}
