//! The `http` capability (`wit/http.wit`; its manifest section is
//! `autoheal_manifest::HttpGrant`): `http.request` to a method and URL the
//! allow-list names, at an address it allows, with the host's secrets put
//! in and scrubbed out of what comes back.
//!
//! | step | what is checked or done |
//! |---|---|
//! | URL | normalised (`HttpUrl::parse`): no userinfo, fragment, dot segment, odd host spelling |
//! | allow-list | the method and an `allow` prefix, on the same origin |
//! | secrets | each named one mapped by the manifest and held by the host |
//! | bounds | body within `max_request_bytes`; headers the host sets are dropped |
//! | address | the name resolved once; every address allowed (`http_net`); that one connected to |
//! | kind | GET and HEAD read (performed in dry-run) unless `effects` lists them; others are effects (`CapabilityGate::effect`: recorded in dry-run, breaker per origin, intent first) |
//! | answer | within `timeout`, body cut at `max_response_bytes` (`truncated`), secrets scrubbed |
//!
//! Redirects are not followed: a 3xx is answered as it came, and a plugin
//! that wants its `Location` asks for it, through the allow-list again.

use std::net::SocketAddr;
use std::sync::Arc;

use autoheal_manifest::{HttpGrant, HttpUrl, UrlHost};

use super::http_net::{Inbound, NetError, Outbound, address_allowed, host_sets};
use crate::capability::{Capability, CapabilityGate, Effect, GateError, cut};

const CAPABILITY: Capability = Capability::HttpRequest;
/// Headers one request may carry.
const MAX_HEADERS: usize = 64;
/// Longest header name plus value.
const MAX_HEADER_BYTES: usize = 8 * 1024;

/// A request as the plugin makes it.
#[derive(Debug, Clone, Default)]
pub struct HttpCall {
    /// The method.
    pub method: String,
    /// The URL.
    pub url: String,
    /// Its headers.
    pub headers: Vec<(String, String)>,
    /// Its body.
    pub body: Option<Vec<u8>>,
    /// The secrets to put in, by name.
    pub secrets: Vec<String>,
}

/// What the plugin gets back; `None` when an effect was recorded, not sent.
pub(crate) type HttpAnswer = Option<Inbound>;

impl From<NetError> for GateError {
    fn from(e: NetError) -> Self {
        match e {
            NetError::Failed(m) => GateError::Runtime(m),
            NetError::Timeout(m) => GateError::Timeout(m),
        }
    }
}

impl CapabilityGate {
    /// `http.request`, if the manifest allows it; every word of what comes
    /// back (and of the record) scrubbed of the host's secrets.
    pub async fn http_request(&mut self, call: HttpCall) -> Result<HttpAnswer, GateError> {
        self.begin()?;
        let scrubber = self.services.http.secrets.scrubber();
        let result = self.http_checked(call).await;
        // Defence in depth: a secret is never in an error, whatever made it.
        result.map_err(|e| match e {
            GateError::Denied(m) => GateError::Denied(scrubber.text(&m)),
            GateError::NotFound(m) => GateError::NotFound(scrubber.text(&m)),
            GateError::Runtime(m) => GateError::Runtime(scrubber.text(&m)),
            GateError::Timeout(m) => GateError::Timeout(scrubber.text(&m)),
        })
    }

    async fn http_checked(&mut self, call: HttpCall) -> Result<HttpAnswer, GateError> {
        let shown = cut(call.url.clone(), 200);
        let Some(grant) = self.http.clone() else {
            let reason = "the manifest has no [capabilities.http]".to_owned();
            return Err(self.deny(CAPABILITY, shown, reason));
        };
        let url = match HttpUrl::parse(&call.url) {
            Ok(url) => url,
            Err(why) => return Err(self.deny(CAPABILITY, shown, format!("URL refused: {why}"))),
        };
        let target = url.origin();
        let method = call.method.to_ascii_uppercase();
        let described = format!("{method} {}", url.redacted());
        if grant.rule(&method, &url).is_none() {
            let reason = format!(
                "{} is not under a prefix the manifest allows for {method} (capabilities.http.allow)",
                url.redacted()
            );
            return Err(self.deny(CAPABILITY, target, reason));
        }
        let headers = match self.request_headers(&grant, &call) {
            Ok(headers) => headers,
            Err(reason) => return Err(self.deny(CAPABILITY, target, format!("{described}: {reason}"))),
        };
        let body = call.body.unwrap_or_default();
        if body.len() > grant.max_request_bytes {
            let reason = format!(
                "{described}: a body of {} bytes, more than max_request_bytes = {}",
                body.len(),
                grant.max_request_bytes
            );
            return Err(self.deny(CAPABILITY, target, reason));
        }
        let deadline = tokio::time::Instant::now() + grant.timeout;
        let address = match self.address(&url, deadline).await {
            Ok(address) => address,
            Err(GateError::Denied(reason)) => {
                return Err(self.deny(CAPABILITY, target, format!("{described}: {reason}")));
            }
            Err(e) => {
                let reason = format!("{described}: {}", gate_text(&e));
                self.record(
                    CAPABILITY,
                    target,
                    crate::capability::CallOutcome::Failed,
                    Some(reason),
                );
                return Err(e);
            }
        };
        let named = if call.secrets.is_empty() {
            String::new()
        } else {
            format!(" with {}", call.secrets.join(", "))
        };
        let request = Outbound {
            method: method.clone(),
            url,
            headers,
            body,
        };
        let transport = self.services.http.transport.clone();
        let max = grant.max_response_bytes;
        let timeout = grant.timeout;
        let send = async move {
            match tokio::time::timeout_at(deadline, transport.send(address, request, max)).await {
                Ok(answer) => answer,
                Err(_) => Err(NetError::Timeout(format!(
                    "no complete answer within the manifest's timeout of {}",
                    humantime::format_duration(timeout)
                ))),
            }
        };
        let scrubber = self.services.http.secrets.scrubber();
        let answered = |inbound: &Inbound| {
            let cut = if inbound.truncated {
                ", truncated at max_response_bytes"
            } else {
                ""
            };
            Some(format!("{} bytes{cut}", inbound.body.len()))
        };
        let detail = format!("{described}{named}");
        let answer = if grant.is_effect(&method) {
            match self
                .effect(CAPABILITY, target, detail, send, |inbound: &Inbound| {
                    Some(format!(
                        "{} — {}",
                        inbound.status,
                        answered(inbound).unwrap_or_default()
                    ))
                })
                .await?
            {
                Effect::Sent(inbound) => Some(inbound),
                Effect::Recorded | Effect::Joined => None,
            }
        } else {
            let result = send.await;
            match &result {
                Ok(inbound) => {
                    let said = format!(
                        "{detail}: {} — {}",
                        inbound.status,
                        answered(inbound).unwrap_or_default()
                    );
                    self.record(CAPABILITY, target, crate::capability::CallOutcome::Ok, Some(said));
                }
                Err(e) => {
                    let said = format!("{detail}: {e}");
                    self.record(
                        CAPABILITY,
                        target,
                        crate::capability::CallOutcome::Failed,
                        Some(said),
                    );
                }
            }
            Some(result?)
        };
        Ok(answer.map(|inbound| scrubbed(&scrubber, inbound)))
    }

    /// The plugin's headers (checked, those the transport sets dropped,
    /// those a secret sets replaced) and the secrets it names.
    fn request_headers(&self, grant: &HttpGrant, call: &HttpCall) -> Result<Vec<(String, String)>, String> {
        if call.headers.len() > MAX_HEADERS {
            return Err(format!("{} headers, at most {MAX_HEADERS}", call.headers.len()));
        }
        let mut placed = Vec::new();
        for name in &call.secrets {
            let Some(placement) = grant.secrets.get(name) else {
                return Err(format!(
                    "secret {:?} is not one the manifest maps under capabilities.http.secrets",
                    cut(name.clone(), 64)
                ));
            };
            let Some(value) = self.services.http.secrets.value(name) else {
                return Err(format!(
                    "the host holds no secret {name} (its config's [secrets])"
                ));
            };
            placed.push((placement.header.clone(), placement.value(value)));
        }
        let mut headers = Vec::new();
        for (name, value) in &call.headers {
            if name.len() + value.len() > MAX_HEADER_BYTES {
                return Err(format!(
                    "header {:?} is longer than {MAX_HEADER_BYTES} bytes",
                    cut(name.clone(), 64)
                ));
            }
            if hyper::header::HeaderName::from_bytes(name.as_bytes()).is_err()
                || hyper::header::HeaderValue::from_str(value).is_err()
            {
                return Err(format!(
                    "header {:?} is not a valid HTTP header",
                    cut(name.clone(), 64)
                ));
            }
            let secret_sets = placed.iter().any(|(h, _)| h.eq_ignore_ascii_case(name));
            if !host_sets(name) && !secret_sets {
                headers.push((name.clone(), value.clone()));
            }
        }
        headers.extend(placed);
        Ok(headers)
    }

    /// The one address the request goes to: the URL's, or the name's
    /// resolved once, every answer checked (one refused answer refuses the
    /// name: a mix of public and private answers is how rebinding starts).
    async fn address(&self, url: &HttpUrl, deadline: tokio::time::Instant) -> Result<SocketAddr, GateError> {
        let addresses = match &url.host {
            UrlHost::Ip(ip) => vec![SocketAddr::new(*ip, url.port)],
            UrlHost::Name(name) => {
                let resolving = self.services.http.transport.resolve(name, url.port);
                match tokio::time::timeout_at(deadline, resolving).await {
                    Ok(found) => found?,
                    Err(_) => {
                        return Err(GateError::Timeout(format!(
                            "resolving {name} took past the timeout"
                        )));
                    }
                }
            }
        };
        let Some(first) = addresses.first() else {
            return Err(GateError::Runtime("the name resolves to no address".into()));
        };
        for address in &addresses {
            address_allowed(address.ip(), &url.host).map_err(GateError::Denied)?;
        }
        Ok(*first)
    }
}

fn gate_text(e: &GateError) -> &str {
    match e {
        GateError::Denied(m) | GateError::NotFound(m) | GateError::Runtime(m) | GateError::Timeout(m) => m,
    }
}

/// `inbound` with every secret scrubbed from its headers and body.
fn scrubbed(scrubber: &super::secrets::Scrubber, inbound: Inbound) -> Inbound {
    let body = if inbound.truncated {
        scrubber.cut_bytes(&inbound.body)
    } else {
        scrubber.bytes(&inbound.body)
    };
    Inbound {
        status: inbound.status,
        headers: inbound
            .headers
            .into_iter()
            .map(|(name, value)| (scrubber.text(&name), scrubber.text(&value)))
            .collect(),
        body,
        truncated: inbound.truncated,
    }
}

/// What the gate needs of the `http` capability, besides the manifest.
#[derive(Clone)]
pub struct HttpServices {
    /// Resolves names and sends requests.
    pub transport: Arc<dyn super::http_net::HttpTransport>,
    /// The secrets the host holds.
    pub secrets: Arc<super::secrets::Secrets>,
}

impl Default for HttpServices {
    /// The network, and no secrets.
    fn default() -> Self {
        Self {
            transport: Arc::new(super::http_net::NetTransport),
            secrets: Arc::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    use super::*;

    use crate::capabilities::HttpTransport;
    use crate::capability::{
        Breakers, CallOutcome, ExecutionMode, HostServices, MAX_CALLS_PER_INVOCATION, NoIntentLog, Secrets,
    };
    use autoheal_containers::FakeRuntime;
    use autoheal_manifest::{Manifest, ManifestBounds};

    const TOKEN: &str = "t0ken-of-the-host";

    /// Answers every name with `answers` and echoes each request's headers
    /// as its body, remembering where each was sent.
    #[derive(Default)]
    struct Echo {
        answers: Vec<SocketAddr>,
        sent: Mutex<Vec<SocketAddr>>,
    }

    #[async_trait::async_trait]
    impl HttpTransport for Echo {
        async fn resolve(&self, _name: &str, _port: u16) -> Result<Vec<SocketAddr>, NetError> {
            Ok(self.answers.clone())
        }

        async fn send(&self, to: SocketAddr, request: Outbound, max: usize) -> Result<Inbound, NetError> {
            self.sent.lock().unwrap().push(to);
            let mut body: Vec<u8> = request
                .headers
                .iter()
                .flat_map(|(n, v)| format!("{n}: {v}\n").into_bytes())
                .collect();
            let truncated = body.len() > max;
            body.truncate(max);
            Ok(Inbound {
                status: 200,
                headers: request.headers,
                body,
                truncated,
            })
        }
    }

    fn http_gate(mode: ExecutionMode, echo: Arc<Echo>) -> CapabilityGate {
        let manifest = Manifest::parse(
            "p.toml",
            r#"name = "p"
version = "1"
component = "p.wasm"
[capabilities.http]
allow = ["GET https://runbooks.example/api/", "POST http://127.0.0.1:8080/flush", "GET http://127.0.0.1:8080/"]
secrets = { TOKEN = "header:Authorization:Bearer {}" }
"#,
            ManifestBounds { max_memory_mb: 256 },
        )
        .unwrap();
        let services = HostServices {
            http: HttpServices {
                transport: echo,
                secrets: Arc::new(Secrets::new(BTreeMap::from([("TOKEN".into(), TOKEN.into())]))),
            },
            ..HostServices::offline(
                Arc::new(FakeRuntime::default()),
                Breakers::with_limit(2),
                Arc::new(NoIntentLog),
            )
        };
        CapabilityGate::without_containers(mode, services).with_http(manifest.http_grant)
    }

    fn call(method: &str, url: &str) -> HttpCall {
        HttpCall {
            method: method.into(),
            url: url.into(),
            ..HttpCall::default()
        }
    }

    #[tokio::test]
    async fn a_read_is_performed_in_dry_run_and_recorded_without_query_values() {
        let echo = Arc::new(Echo::default());
        let mut gate = http_gate(ExecutionMode::DryRun, echo.clone());
        let answer = gate
            .http_request(call("GET", "http://127.0.0.1:8080/status?token=abc"))
            .await
            .unwrap()
            .expect("a read is sent in dry-run");
        assert_eq!(answer.status, 200);
        let record = &gate.calls()[0];
        assert_eq!(record.outcome, CallOutcome::Ok);
        assert_eq!(record.target, "http://127.0.0.1:8080");
        let detail = record.detail.as_deref().unwrap();
        assert!(
            detail.starts_with("GET http://127.0.0.1:8080/status?token=[…]: 200"),
            "{detail}"
        );
        assert!(!detail.contains("abc"));
    }

    #[tokio::test]
    async fn an_effect_is_recorded_not_sent_in_dry_run() {
        let echo = Arc::new(Echo::default());
        let mut gate = http_gate(ExecutionMode::DryRun, echo.clone());
        let answer = gate
            .http_request(call("POST", "http://127.0.0.1:8080/flush"))
            .await
            .unwrap();
        assert!(answer.is_none());
        assert!(echo.sent.lock().unwrap().is_empty());
        assert_eq!(gate.calls()[0].outcome, CallOutcome::Recorded);
        assert!(gate.calls()[0].is_effect_attempt());
    }

    #[tokio::test]
    async fn secrets_go_in_for_the_manifest_and_come_back_scrubbed() {
        let echo = Arc::new(Echo::default());
        let mut gate = http_gate(ExecutionMode::Real, echo.clone());
        let mut with = call("GET", "http://127.0.0.1:8080/echo");
        with.secrets = vec!["TOKEN".into()];
        with.headers = vec![
            ("authorization".into(), "mine".into()),
            ("Host".into(), "evil".into()),
        ];
        let answer = gate.http_request(with).await.unwrap().unwrap();
        let body = String::from_utf8(answer.body).unwrap();
        assert_eq!(body, "Authorization: Bearer [secret TOKEN]\n");
        assert_eq!(
            answer.headers,
            vec![("Authorization".to_owned(), "Bearer [secret TOKEN]".to_owned())]
        );
        assert!(!gate.calls()[0].is_effect_attempt(), "a GET is a read");

        let mut stranger = call("GET", "http://127.0.0.1:8080/echo");
        stranger.secrets = vec!["OTHER".into()];
        let err = gate.http_request(stranger).await.unwrap_err();
        assert!(
            matches!(&err, GateError::Denied(m) if m.contains("not one the manifest maps")),
            "{err:?}"
        );
        assert_eq!(gate.scrub(&format!("leak {TOKEN}")), "leak [secret TOKEN]");
    }

    #[tokio::test]
    async fn a_name_is_resolved_once_and_every_answer_checked() {
        let public: SocketAddr = "93.184.216.34:443".parse().unwrap();
        let echo = Arc::new(Echo {
            answers: vec![public],
            ..Echo::default()
        });
        let mut gate = http_gate(ExecutionMode::Real, echo.clone());
        gate.http_request(call("GET", "https://runbooks.example/api/x"))
            .await
            .unwrap();
        assert_eq!(
            *echo.sent.lock().unwrap(),
            vec![public],
            "sent to the address checked"
        );

        for answers in [
            vec!["127.0.0.1:443"],
            vec!["93.184.216.34:443", "169.254.169.254:443"],
        ] {
            let echo = Arc::new(Echo {
                answers: answers.iter().map(|a| a.parse().unwrap()).collect(),
                ..Echo::default()
            });
            let mut refusing = http_gate(ExecutionMode::Real, echo.clone());
            let err = refusing
                .http_request(call("GET", "https://runbooks.example/api/x"))
                .await
                .unwrap_err();
            assert!(
                matches!(&err, GateError::Denied(m) if m.contains("does not name literally")),
                "{err:?}"
            );
            assert!(echo.sent.lock().unwrap().is_empty());
        }
    }

    #[tokio::test]
    async fn what_the_allow_list_does_not_name_is_denied_and_the_budget_holds() {
        let echo = Arc::new(Echo::default());
        let mut gate = http_gate(ExecutionMode::Real, echo.clone());
        for (method, url) in [
            ("POST", "http://127.0.0.1:8080/flushall"),
            ("DELETE", "http://127.0.0.1:8080/flush"),
            ("GET", "http://localhost:8080/"),
            ("GET", "http://2130706433:8080/"),
            ("GET", "http://127.0.0.1@evil:8080/"),
        ] {
            let err = gate.http_request(call(method, url)).await.unwrap_err();
            assert!(matches!(err, GateError::Denied(_)), "{method} {url}: {err:?}");
        }
        assert!(echo.sent.lock().unwrap().is_empty());
        for _ in 0..10_000 {
            let _ = gate.http_request(call("GET", "http://127.0.0.1:8080/")).await;
        }
        assert_eq!(gate.calls().len(), MAX_CALLS_PER_INVOCATION);
        assert_eq!(gate.over_budget(), 10_000 + 5 - MAX_CALLS_PER_INVOCATION);
    }
}
