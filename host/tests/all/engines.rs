//! A named container engine over `tcp://` with TLS client certificates:
//! a real Podman behind a TLS terminator (rustls, asking for a client
//! certificate signed by the test CA), configured as `[engines.tls]`, and a
//! plugin whose manifest names `tls/<container>`. The restart is counted by
//! Podman itself.
//!
//! Needs Debian's openssl besides what `real.rs` needs.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use serde_json::json;

use autoheal::container_engines::{RawEngine, runtime, validate};
use autoheal_containers::{ContainerRuntime, DockerRuntime, EngineAddress, NoEngine};

use crate::cluster::certificates;
use crate::real::{Podman, ServedHost, free_port, unique};
use crate::support::manifest;

/// TLS on a free port of 127.0.0.1, with the certificates of `dir`,
/// asking every client for a certificate of the test CA, each connection
/// passed on to the Unix socket `socket`. Its port.
async fn tls_terminator(dir: &Path, socket: PathBuf) -> u16 {
    let pem = |name: &str| dir.join(name);
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(pem("server.pem"))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let key = PrivateKeyDer::from_pem_file(pem("server.key")).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_file_iter(pem("ca.pem")).unwrap() {
        roots.add(ca.unwrap()).unwrap();
    }
    let clients = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots))
        .build()
        .unwrap();
    let config = rustls::ServerConfig::builder()
        .with_client_cert_verifier(clients)
        .with_single_cert(certs, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, socket) = (acceptor.clone(), socket.clone());
            tokio::spawn(async move {
                // A client without a good certificate ends here.
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let Ok(mut engine) = tokio::net::UnixStream::connect(&socket).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut engine).await;
            });
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_through_a_tls_engine_named_in_the_manifest() {
    let podman = tokio::task::block_in_place(Podman::start_isolated);
    let container = unique("tls");
    tokio::task::block_in_place(|| podman.run_httpd(&container, free_port()));
    let since = chrono::Utc::now().timestamp().to_string();
    let dir = tempfile::tempdir().unwrap();
    certificates(dir.path());
    let file = |name: &str| dir.path().join(name).display().to_string();
    let port = tls_terminator(dir.path(), podman.socket.clone()).await;

    // Without a client certificate the engine refuses to talk.
    let plain = DockerRuntime::new(
        EngineAddress::Tcp(format!("127.0.0.1:{port}")),
        Duration::from_secs(3),
    );
    assert!(plain.version().await.is_err());

    // `[engines.tls]` as an operator writes it, checked and built as `serve` does.
    let engines = validate(
        &[(
            "tls".to_owned(),
            RawEngine {
                address: format!("tcp://127.0.0.1:{port}"),
                ca_file: file("ca.pem"),
                cert_file: file("client.pem"),
                key_file: file("client.key"),
            },
        )]
        .into(),
    )
    .unwrap();
    let containers: Arc<dyn ContainerRuntime> =
        runtime(Arc::new(NoEngine), &engines, Duration::from_secs(10));
    let reach = containers.reachability(Duration::from_secs(5)).await;
    assert!(reach[1].name == "tls" && reach[1].version.is_ok(), "{reach:?}");

    let restart = manifest(
        "restart-tls",
        "restart_container.wasm",
        &["TlsDown"],
        &[&format!("tls/{container}")],
        &format!(
            "[limits]\ntimeout_ms = 20000\nstop_timeout_sec = 1\n[config]\ncontainer = {container:?}\nmin_uptime_sec = \"0\""
        ),
    );
    let host = ServedHost::start(&[("tls.toml", restart)], containers, |c| {
        c.enabled = true;
        c.dry_run = false;
    })
    .await;
    host.post_alerts(json!([{
        "status": "firing",
        "labels": {"alertname": "TlsDown"},
        "annotations": {"autoheal": "true"}
    }]))
    .await;
    let done = host
        .wait_for("action_ok,action_fail", 1, Duration::from_secs(30))
        .await;
    assert_eq!(done[0]["kind"], "action_ok", "{done:#?}");
    let calls = done[0]["calls"].as_array().unwrap();
    assert!(
        calls
            .iter()
            .any(|c| c["target"] == format!("tls/{container}") && c["capability"] == "containers.restart"),
        "{calls:#?}"
    );
    let restarted = tokio::task::block_in_place(|| podman.restarted_since(&since));
    assert_eq!(restarted, [container], "Podman restarted it, through TLS");
}

/// A Unix socket at `path` that passes each connection on to the engine's
/// socket while it is up; down, nothing listens there: the engine does not
/// answer, as when its service is stopped.
struct Gate {
    path: PathBuf,
    engine: PathBuf,
    accepting: Option<tokio::task::JoinHandle<()>>,
}

impl Gate {
    /// A gate at `path` to `engine`, down.
    fn down_at(path: PathBuf, engine: PathBuf) -> Gate {
        Gate {
            path,
            engine,
            accepting: None,
        }
    }

    fn up(&mut self) {
        let _ = std::fs::remove_file(&self.path);
        let listener = tokio::net::UnixListener::bind(&self.path).unwrap();
        let engine = self.engine.clone();
        self.accepting = Some(tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let engine = engine.clone();
                tokio::spawn(async move {
                    if let Ok(mut engine) = tokio::net::UnixStream::connect(&engine).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut engine).await;
                    }
                });
            }
        }));
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        if let Some(accepting) = self.accepting.take() {
            accepting.abort();
        }
    }
}

/// An action that failed because its engine did not answer did nothing: its
/// alert is kept (`retry`, `engine_unreachable`) and decided again by the
/// host, which restarts the container once the engine answers, without
/// Alertmanager sending the alert again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_whose_engine_does_not_answer_is_kept_and_acted_on_once_it_does() {
    let podman = tokio::task::block_in_place(Podman::start_isolated);
    let container = unique("gone");
    tokio::task::block_in_place(|| podman.run_httpd(&container, free_port()));
    let since = chrono::Utc::now().timestamp().to_string();
    let dir = tempfile::tempdir().unwrap();
    let mut gate = Gate::down_at(dir.path().join("engine.sock"), podman.socket.clone());
    let containers: Arc<dyn ContainerRuntime> = Arc::new(DockerRuntime::new(
        EngineAddress::Unix(gate.path.clone()),
        Duration::from_secs(10),
    ));
    let restart = manifest(
        "restart-gone",
        "restart_container.wasm",
        &["EngineGone"],
        &[&container],
        &format!(
            "[limits]\ntimeout_ms = 20000\nstop_timeout_sec = 1\n[config]\ncontainer = {container:?}\nmin_uptime_sec = \"0\""
        ),
    );
    let host = ServedHost::start(&[("gone.toml", restart)], containers, |c| {
        c.enabled = true;
        c.dry_run = false;
    })
    .await;
    host.post_alerts(json!([{
        "status": "firing",
        "labels": {"alertname": "EngineGone"},
        "annotations": {"autoheal": "true"}
    }]))
    .await;
    let failed = host.wait_for("action_fail", 1, Duration::from_secs(30)).await;
    let kept = host.wait_for("alert_deferred", 1, Duration::from_secs(10)).await;
    assert_eq!(kept[0]["retry"]["reason"], "engine_unreachable", "{kept:#?}");
    assert_eq!(kept[0]["retry"]["attempt"], 1, "{kept:#?}");
    assert_eq!(kept[0]["fingerprint"], failed[0]["fingerprint"]);
    let page = host.get_ok("/").await;
    assert_eq!(page["deferred"][0]["retry"], "engine_unreachable", "{page:#}");
    // The restart the engine never heard of spent none of the breaker: a
    // long outage must not leave it open when the engine is back.
    assert_eq!(page["breaker"]["containers"], json!([]), "{page:#}");
    // The console's Held panel says why it is kept and when it is tried again.
    let url = host.url.clone();
    let text = tokio::task::spawn_blocking(move || {
        let browser = crate::console::Browser::start();
        browser.goto(&format!("{url}/console"));
        browser.sign_in_as_operator();
        browser.wait_for(
            "the kept alert in the console",
            Duration::from_secs(15),
            "const card = document.querySelector('#deferred .held[data-retry=\"engine_unreachable\"]');
             return card && card.querySelector('.due') && card.innerText;",
        )
    })
    .await
    .unwrap();
    let text = text.as_str().unwrap();
    assert!(
        text.contains("kept after engine_unreachable: decided in"),
        "{text}"
    );

    gate.up();
    let done = host.wait_for("action_ok", 1, Duration::from_secs(60)).await;
    assert!(
        done[0]["calls"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["capability"] == "containers.restart" && c["outcome"] == "ok"),
        "{done:#?}"
    );
    assert!(!host.audit("deferred_due").await.is_empty());
    let restarted = tokio::task::block_in_place(|| podman.restarted_since(&since));
    assert_eq!(
        restarted,
        [container],
        "Podman restarted it once, after the engine came back"
    );
    // Nothing is kept any more.
    assert_eq!(host.get_ok("/").await["deferred"], json!([]));
}
