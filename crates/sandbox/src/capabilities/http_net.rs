//! The network under `http.request`: which addresses a request may reach,
//! and the transport that reaches exactly the address the gate checked.
//! The gate resolves a name once, checks every address it got, and hands
//! the transport that address: nothing resolves the name a second time, so
//! a DNS answer that changes between the check and the connection (DNS
//! rebinding) changes nothing.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, OnceLock};

use autoheal_manifest::{HttpUrl, UrlHost};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;

/// A request as the transport sends it: to one checked address, with the
/// URL's host as `Host` and TLS server name.
#[derive(Debug, Clone)]
pub struct Outbound {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The URL (its host names the server; its target is sent).
    pub url: HttpUrl,
    /// Headers, the host's secrets in them.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

/// What came back, its body cut at the bound (nothing past it is read).
#[derive(Debug, Clone, Default)]
pub struct Inbound {
    /// The status code.
    pub status: u16,
    /// The headers.
    pub headers: Vec<(String, String)>,
    /// The body, at most the bound.
    pub body: Vec<u8>,
    /// More came than the bound; it was not read.
    pub truncated: bool,
}

/// Why a request did not complete.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetError {
    /// It could not be made (name, connection, TLS, protocol).
    #[error("{0}")]
    Failed(String),
    /// The deadline passed.
    #[error("{0}")]
    Timeout(String),
}

/// Resolves names and sends requests to checked addresses.
#[async_trait::async_trait]
pub trait HttpTransport: Send + Sync {
    /// Every address `name` resolves to, once.
    async fn resolve(&self, name: &str, port: u16) -> Result<Vec<SocketAddr>, NetError>;

    /// Sends `request` to `to`, reading at most `max_response_bytes` of the
    /// body. The caller bounds the time.
    async fn send(
        &self,
        to: SocketAddr,
        request: Outbound,
        max_response_bytes: usize,
    ) -> Result<Inbound, NetError>;
}

/// The addresses a request may reach: the address its URL writes literally
/// (which the allow-list matched), and otherwise only public unicast ones:
/// a name never leads to loopback, a private range or a metadata endpoint,
/// even one another entry writes literally.
pub fn address_allowed(ip: IpAddr, host: &UrlHost) -> Result<(), String> {
    let ip = unmapped(ip);
    if *host == UrlHost::Ip(ip) {
        return Ok(());
    }
    match non_public(ip) {
        None => Ok(()),
        Some(kind) => Err(format!(
            "{ip} is {kind}, which the allow-list does not name literally"
        )),
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
fn unmapped(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// What kind of non-public address `ip` is, if it is one.
pub fn non_public(ip: IpAddr) -> Option<&'static str> {
    match unmapped(ip) {
        IpAddr::V4(v4) => non_public_v4(v4),
        IpAddr::V6(v6) => non_public_v6(v6),
    }
}

fn non_public_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        (0, ..) => "unspecified (0.0.0.0/8)",
        (127, ..) => "loopback",
        (10, ..) | (192, 168, _) => "private (RFC 1918)",
        (172, 16..=31, _) => "private (RFC 1918)",
        (169, 254, _) => "link-local (metadata endpoints live there)",
        (100, 64..=127, _) => "shared address space (CGNAT)",
        (192, 0, 0) | (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => {
            "reserved for documentation or protocols"
        }
        (198, 18..=19, _) => "reserved for benchmarking",
        (224..=239, ..) => "multicast",
        (240..=255, ..) => "reserved or broadcast",
        _ => return None,
    })
}

fn non_public_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let first = ip.segments()[0];
    Some(if ip.is_unspecified() {
        "unspecified"
    } else if ip.is_loopback() {
        "loopback"
    } else if first & 0xff00 == 0xff00 {
        "multicast"
    } else if first & 0xfe00 == 0xfc00 {
        "unique local (fc00::/7)"
    } else if first & 0xffc0 == 0xfe80 || first & 0xffc0 == 0xfec0 {
        "link-local"
    } else if ip.segments()[..6] == [0x64, 0xff9b, 0, 0, 0, 0] || ip.segments()[..6] == [0; 6] {
        "an IPv4 address in IPv6 (NAT64 or compatible)"
    } else if first == 0x2001 && ip.segments()[1] == 0xdb8 {
        "reserved for documentation"
    } else {
        return None;
    })
}

/// The URL's host as `Host` and TLS server name.
fn host_header(url: &HttpUrl) -> String {
    let default = if url.scheme == "https" { 443 } else { 80 };
    match url.port {
        port if port == default => url.host.to_string(),
        port => format!("{}:{port}", url.host),
    }
}

/// The transport of the host: hyper over a TCP connection to the address
/// given, rustls (the system's roots, ring) for `https://`.
#[derive(Default)]
pub struct NetTransport;

/// Headers the transport sets itself; a plugin's are dropped.
const HOST_SET_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "upgrade",
    "te",
    "trailer",
    "keep-alive",
    "proxy-authorization",
    "proxy-connection",
];

/// Whether the transport sets `name` itself (a plugin's is dropped).
pub fn host_sets(name: &str) -> bool {
    HOST_SET_HEADERS.iter().any(|h| h.eq_ignore_ascii_case(name))
}

fn tls_config() -> Arc<rustls::ClientConfig> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let mut roots = rustls::RootCertStore::empty();
            roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
            // The process's provider: ring, the only one built (as for
            // the etcd client).
            let config = rustls::ClientConfig::builder()
                .with_root_certificates(roots)
                .with_no_client_auth();
            Arc::new(config)
        })
        .clone()
}

#[async_trait::async_trait]
impl HttpTransport for NetTransport {
    async fn resolve(&self, name: &str, port: u16) -> Result<Vec<SocketAddr>, NetError> {
        let found = tokio::net::lookup_host((name, port))
            .await
            .map_err(|e| NetError::Failed(format!("{name} does not resolve: {e}")))?;
        Ok(found.collect())
    }

    async fn send(
        &self,
        to: SocketAddr,
        request: Outbound,
        max_response_bytes: usize,
    ) -> Result<Inbound, NetError> {
        let failed = |what: &str, e: &dyn std::fmt::Display| NetError::Failed(format!("{what}: {e}"));
        let tcp = tokio::net::TcpStream::connect(to)
            .await
            .map_err(|e| failed(&format!("connecting to {to}"), &e))?;
        let host = host_header(&request.url);
        if request.url.scheme == "https" {
            let name = match &request.url.host {
                UrlHost::Name(name) => rustls::pki_types::ServerName::try_from(name.clone())
                    .map_err(|e| failed("TLS server name", &e))?,
                UrlHost::Ip(ip) => rustls::pki_types::ServerName::IpAddress((*ip).into()),
            };
            let tls = tokio_rustls::TlsConnector::from(tls_config())
                .connect(name, tcp)
                .await
                .map_err(|e| failed("TLS handshake", &e))?;
            exchange(TokioIo::new(tls), &host, request, max_response_bytes).await
        } else {
            exchange(TokioIo::new(tcp), &host, request, max_response_bytes).await
        }
    }
}

/// One HTTP/1.1 request on `io`, its response body read up to the bound.
async fn exchange<I>(io: I, host: &str, request: Outbound, max: usize) -> Result<Inbound, NetError>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let failed = |what: &str, e: &dyn std::fmt::Display| NetError::Failed(format!("{what}: {e}"));
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| failed("HTTP handshake", &e))?;
    // The connection ends with this task (dropped with the sender).
    let driver = tokio::spawn(connection);
    let mut builder = hyper::Request::builder()
        .method(request.method.as_str())
        .uri(request.url.target.as_str())
        .header(hyper::header::HOST, host);
    for (name, value) in &request.headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    let outbound = builder
        .body(Full::new(Bytes::from(request.body)))
        .map_err(|e| failed("the request is not valid HTTP", &e))?;
    let response = sender
        .send_request(outbound)
        .await
        .map_err(|e| failed("the request failed", &e))?;
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(name, value)| {
            (
                name.to_string(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect();
    let mut body = response.into_body();
    let mut kept = Vec::new();
    let mut truncated = false;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| failed("reading the response", &e))?;
        let Ok(data) = frame.into_data() else { continue };
        let room = max - kept.len();
        if data.len() > room {
            kept.extend_from_slice(&data[..room]);
            truncated = true;
            break;
        }
        kept.extend_from_slice(&data);
    }
    // What is past the bound is never read: the connection goes.
    driver.abort();
    Ok(Inbound {
        status,
        headers,
        body: kept,
        truncated,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(url: &str) -> UrlHost {
        HttpUrl::parse(url).unwrap().host
    }

    #[test]
    fn addresses_not_public_are_refused_unless_named_literally() {
        let by_name = host("https://runbooks.internal/");
        for (ip, kind) in [
            ("127.0.0.1", "loopback"),
            ("127.8.9.10", "loopback"),
            ("10.1.2.3", "private"),
            ("172.20.0.1", "private"),
            ("192.168.1.1", "private"),
            ("169.254.169.254", "link-local"),
            ("100.100.0.1", "CGNAT"),
            ("0.0.0.0", "unspecified"),
            ("224.0.0.1", "multicast"),
            ("255.255.255.255", "broadcast"),
            ("::1", "loopback"),
            ("::", "unspecified"),
            ("fd00::1", "unique local"),
            ("fe80::1", "link-local"),
            ("ff02::1", "multicast"),
            ("::ffff:127.0.0.1", "loopback"),
            ("::ffff:169.254.169.254", "link-local"),
            ("64:ff9b::a9fe:a9fe", "NAT64"),
        ] {
            let err = address_allowed(ip.parse().unwrap(), &by_name).expect_err(ip);
            assert!(err.contains(kind), "{ip}: {err}");
        }
        for public in ["93.184.216.34", "8.8.8.8", "2606:4700::1111", "172.32.0.1"] {
            assert!(
                address_allowed(public.parse().unwrap(), &by_name).is_ok(),
                "{public}"
            );
        }
        let literal = host("http://127.0.0.1:8080/flush");
        assert!(address_allowed("127.0.0.1".parse().unwrap(), &literal).is_ok());
        assert!(address_allowed("::ffff:127.0.0.1".parse().unwrap(), &literal).is_ok());
        assert!(address_allowed("127.0.0.2".parse().unwrap(), &literal).is_err());
        assert!(address_allowed("::1".parse().unwrap(), &literal).is_err());
    }

    #[test]
    fn host_header_omits_the_default_port() {
        assert_eq!(
            host_header(&HttpUrl::parse("https://a.example/x").unwrap()),
            "a.example"
        );
        assert_eq!(
            host_header(&HttpUrl::parse("http://127.0.0.1:8080/").unwrap()),
            "127.0.0.1:8080"
        );
        assert!(host_sets("Host") && host_sets("Transfer-Encoding") && !host_sets("Authorization"));
    }
}
