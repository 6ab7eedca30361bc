//! HTTP requests to what the manifest's `[capabilities.http] allow` lists
//! (`"GET https://runbooks.internal/api/"`: a method and a URL prefix).
//!
//! The host resolves the name itself, refuses an address the allow-list
//! does not name literally (loopback, private ranges, metadata endpoints),
//! follows no redirect and bounds the time and the sizes. A secret is put
//! into a request by the host, by the name the manifest gives it
//! ([`Request::secret`]): the plugin never sees its value, and the value is
//! scrubbed (`[secret NAME]`) from whatever comes back.
//!
//! GET and HEAD are reads, performed in dry-run too; other methods are
//! effects: in dry-run they are recorded and not sent ([`Response::sent`]
//! is `false`).
//!
//! ```no_run
//! use autoheal_sdk::http;
//!
//! let answer = http::post("https://runbooks.internal/api/flush")
//!     .header("content-type", "application/json")
//!     .body(r#"{"cache":"sessions"}"#)
//!     .secret("RUNBOOK_TOKEN")
//!     .send()
//!     .map_err(|e| e.to_string())?;
//! if answer.sent && !answer.is_success() {
//!     return Err(format!("the runbook answered {}", answer.status));
//! }
//! # Ok::<(), String>(())
//! ```

use std::fmt;

use crate::host;

/// A request being built; [`send`](Request::send) makes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// `"GET"`, `"HEAD"`, `"POST"`, `"PUT"`, `"PATCH"` or `"DELETE"`.
    pub method: String,
    /// The whole URL, under a prefix the manifest allows.
    pub url: String,
    /// Headers to send, in order.
    pub headers: Vec<(String, String)>,
    /// The body, if any.
    pub body: Option<Vec<u8>>,
    /// The names of the secrets the host puts in (as the manifest says).
    pub secrets: Vec<String>,
}

impl Request {
    /// A request of `method` (any case) to `url`.
    pub fn new(method: &str, url: &str) -> Self {
        Request {
            method: method.to_ascii_uppercase(),
            url: url.to_owned(),
            headers: Vec::new(),
            body: None,
            secrets: Vec::new(),
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = Some(body.into());
        self
    }

    /// Asks the host to put in the secret the manifest names `name`
    /// (`RUNBOOK_TOKEN`), where the manifest says (a header). The value is
    /// never the plugin's to read.
    pub fn secret(mut self, name: &str) -> Self {
        self.secrets.push(name.to_owned());
        self
    }

    /// Makes the request.
    pub fn send(self) -> Result<Response, HttpError> {
        host::http_request(self)
    }
}

/// A GET request to `url`.
pub fn get(url: &str) -> Request {
    Request::new("GET", url)
}

/// A POST request to `url`.
pub fn post(url: &str) -> Request {
    Request::new("POST", url)
}

/// What came back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Response {
    /// `false` in dry-run for an effect: recorded, not sent (status 0, no
    /// body).
    pub sent: bool,
    /// The HTTP status.
    pub status: u16,
    /// The headers, in order.
    pub headers: Vec<(String, String)>,
    /// The body, cut to the manifest's `max_response_bytes`; a secret's
    /// value in it reads `[secret NAME]`.
    pub body: Vec<u8>,
    /// The body was cut.
    pub truncated: bool,
}

impl Response {
    /// A response that was sent and answered `status` with `body` (what a
    /// test scripts for the fake host).
    pub fn new(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Response {
            sent: true,
            status,
            headers: Vec::new(),
            body: body.into(),
            truncated: false,
        }
    }

    /// `true` for a 2xx status.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The first header of that name (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Why a request failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    /// The manifest does not allow this method and URL (or the address it
    /// resolves to), a secret is not the manifest's, or a host guard (the
    /// call budget, a breaker) refused it.
    Denied(String),
    /// It did not complete within the manifest's timeout.
    Timeout(String),
    /// It could not be made: a name that does not resolve, a refused
    /// connection, a TLS failure, a redirect.
    Failed(String),
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpError::Denied(msg) => write!(f, "denied: {msg}"),
            HttpError::Timeout(msg) => write!(f, "timeout: {msg}"),
            HttpError::Failed(msg) => write!(f, "failed: {msg}"),
        }
    }
}

impl std::error::Error for HttpError {}

/// The WIT types, turned into this module's and back.
mod wit_types {
    use super::*;
    use crate::bindings::autoheal::plugin::http as wit;

    impl From<Request> for wit::OutboundRequest {
        fn from(r: Request) -> Self {
            wit::OutboundRequest {
                method: r.method,
                url: r.url,
                headers: r.headers,
                body: r.body,
                secrets: r.secrets,
            }
        }
    }

    impl From<wit::InboundResponse> for Response {
        fn from(r: wit::InboundResponse) -> Self {
            Response {
                sent: r.sent,
                status: r.status,
                headers: r.headers,
                body: r.body,
                truncated: r.truncated,
            }
        }
    }

    impl From<wit::Error> for HttpError {
        fn from(e: wit::Error) -> Self {
            match e {
                wit::Error::Denied(m) => HttpError::Denied(m),
                wit::Error::Timeout(m) => HttpError::Timeout(m),
                wit::Error::Failed(m) => HttpError::Failed(m),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::autoheal::plugin::http as wit;

    #[test]
    fn a_request_is_built_as_written() {
        let r = Request::new("post", "https://x/api")
            .header("a", "1")
            .body("b")
            .secret("T");
        assert_eq!(r.method, "POST");
        assert_eq!(r.headers, vec![("a".to_string(), "1".to_string())]);
        assert_eq!(r.body.as_deref(), Some(&b"b"[..]));
        let wit = wit::OutboundRequest::from(r);
        assert_eq!(wit.secrets, vec!["T".to_string()]);
        assert_eq!(get("u").method, "GET");
    }

    #[test]
    fn responses_and_errors_read_as_they_say() {
        let mut r = Response::from(wit::InboundResponse {
            sent: true,
            status: 204,
            headers: vec![("Content-Type".into(), "text/plain".into())],
            body: b"ok".to_vec(),
            truncated: false,
        });
        assert!(r.is_success());
        assert_eq!(r.text(), "ok");
        assert_eq!(r.header("content-type"), Some("text/plain"));
        r.status = 503;
        assert!(!r.is_success());
        assert_eq!(
            HttpError::from(wit::Error::Timeout("5 s".into())).to_string(),
            "timeout: 5 s"
        );
    }
}
