//! rustls for `https://` members: the CA bundle of `[cluster] ca_file` (the
//! system's roots without one) and the client certificate of `cert_file`
//! and `key_file`, on ring.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};

use crate::config::ClusterTls;

/// The TLS configuration of the etcd client; `None`: plain `http://`
/// members (a configuration with the system's roots, never used).
pub fn client_config(tls: Option<&ClusterTls>) -> Result<ClientConfig, String> {
    let roots = match tls.and_then(|tls| tls.ca_pem.as_deref()) {
        Some(pem) => {
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert = cert.map_err(|e| format!("ca_file: {e}"))?;
                roots.add(cert).map_err(|e| format!("ca_file: {e}"))?;
            }
            if roots.is_empty() {
                return Err("ca_file: no certificate in it".into());
            }
            roots
        }
        None if tls.is_some() => system_roots(),
        None => RootCertStore::empty(),
    };
    // The process's provider: ring, the only one built (bollard's TLS to
    // container engines takes the same).
    let builder = ClientConfig::builder().with_root_certificates(roots);
    match tls.and_then(|tls| tls.identity.as_ref()) {
        Some((cert, key)) => {
            let chain = CertificateDer::pem_slice_iter(cert)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("cert_file: {e}"))?;
            if chain.is_empty() {
                return Err("cert_file: no certificate in it".into());
            }
            let key = PrivateKeyDer::from_pem_slice(key).map_err(|e| format!("key_file: {e}"))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("cert_file and key_file: {e}"))
        }
        None => Ok(builder.with_no_client_auth()),
    }
}

/// The machine's trusted roots; those that do not load are left out (a
/// server they would have signed then fails its handshake, which says so).
fn system_roots() -> RootCertStore {
    let mut roots = RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    for error in &found.errors {
        tracing::warn!(error = %error, "a system root certificate could not be read");
    }
    roots.add_parsable_certificates(found.certs);
    roots
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn material_that_is_not_pem_is_named() {
        let tls = |ca: &[u8], identity: Option<(&[u8], &[u8])>| ClusterTls {
            ca_pem: Some(ca.to_vec()),
            identity: identity.map(|(c, k)| (c.to_vec(), k.to_vec())),
        };
        let err = client_config(Some(&tls(b"not a certificate", None))).unwrap_err();
        assert!(err.starts_with("ca_file"), "{err}");
        assert!(client_config(None).is_ok(), "plain http needs nothing");
    }
}
