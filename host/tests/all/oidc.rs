//! Sign-in through a real OpenID provider: `oidc-provider` (a certified
//! implementation, from npm at the version `host/tests/oidc/package-lock.json`
//! pins) run under node with its development login form, two people (alice
//! in group `sre`, bob in group `dev`) and one client, the host, that must
//! use PKCE. A headless chromium (the console tests' WebDriver harness)
//! signs in through the provider's own form.
//!
//! Needs node and npm (the provider is installed into
//! `target/test-tools/oidc-provider` by `cargo xtask test`, or here on
//! first use) and Debian's chromium and chromium-driver.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde_json::{Value, json};

use crate::console::Browser;
use crate::real::*;
use crate::support::*;
use autoheal::config::{RawOidc, RawRoleRule};

/// The client secret the provider and the host share.
const CLIENT_SECRET: &str = "test-oidc-client-secret-0123456789";

/// The provider's packages, installed once per checkout of the lock file.
fn provider_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oidc");
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
        let dir = target.join("test-tools/oidc-provider");
        std::fs::create_dir_all(&dir).unwrap();
        let lock = std::fs::read(source.join("package-lock.json")).unwrap();
        let installed = dir.join(".installed-lock.json");
        if std::fs::read(&installed).ok().as_deref() != Some(lock.as_slice()) {
            for file in ["package.json", "package-lock.json"] {
                std::fs::copy(source.join(file), dir.join(file)).unwrap();
            }
            let status = Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
                .current_dir(&dir)
                .status()
                .expect("npm is installed (apt-get install npm)");
            assert!(status.success(), "npm ci of the test OpenID provider failed");
            std::fs::write(&installed, &lock).unwrap();
        }
        std::fs::copy(source.join("provider.mjs"), dir.join("provider.mjs")).unwrap();
        dir
    })
    .clone()
}

/// The provider on 127.0.0.1:`port`, sending people back to `redirect`;
/// killed when dropped.
struct Provider {
    process: Child,
    issuer: String,
}

impl Provider {
    /// Over https with the certificate and key `tls` names (PEM files):
    /// answers once its port takes connections.
    fn start_tls(port: u16, redirect: &str, tls: (&Path, &Path)) -> Provider {
        let dir = provider_dir();
        let process = Command::new("node")
            .arg(dir.join("provider.mjs"))
            .args([&port.to_string(), redirect, CLIENT_SECRET])
            .env("TLS_CERT", tls.0)
            .env("TLS_KEY", tls.1)
            .current_dir(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("node is installed");
        wait_until("the https OpenID provider", Duration::from_secs(30), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).ok()
        });
        Provider {
            process,
            issuer: format!("https://127.0.0.1:{port}"),
        }
    }

    fn start(port: u16, redirect: &str) -> Provider {
        let dir = provider_dir();
        let process = Command::new("node")
            .arg(dir.join("provider.mjs"))
            .args([&port.to_string(), redirect, CLIENT_SECRET])
            .current_dir(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("node is installed");
        let provider = Provider {
            process,
            issuer: format!("http://127.0.0.1:{port}"),
        };
        wait_until("the OpenID provider to answer", Duration::from_secs(30), || {
            http_with(
                &provider.issuer,
                "GET",
                "/.well-known/openid-configuration",
                &[],
                "",
            )
            .ok()
            .filter(|(status, _)| *status == 200)
        });
        provider
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// `[auth.oidc]` for the provider at `issuer`, and the roles: `sre`
/// operates, approves and reads; `dev` only reads.
fn sign_in_config(config: &mut autoheal::config::RawConfig, host_url: &str, issuer: &str) {
    config.public_url = host_url.to_owned();
    config.auth.oidc = Some(RawOidc {
        issuer: issuer.to_owned(),
        client_id: "autoheal".into(),
        client_secret: Some(CLIENT_SECRET.into()),
        scopes: ["openid", "profile", "email", "groups"]
            .map(str::to_owned)
            .to_vec(),
        ..RawOidc::default()
    });
    let rule = |group: &str, role: &str| RawRoleRule {
        group: group.into(),
        role: role.into(),
        plugins: Vec::new(),
    };
    config.auth.roles = vec![
        rule("sre", "viewer"),
        rule("sre", "operator"),
        rule("sre", "approver"),
        rule("dev", "viewer"),
    ];
}

/// Signs in as `login` through the provider's development form (any
/// password), consents, and waits to be back on the console.
fn sign_in(browser: &Browser, host: &str, login: &str) {
    browser.goto(&format!("{host}/console"));
    browser.wait_for(
        "the console's sign-in link",
        Duration::from_secs(20),
        "const a = document.querySelector('#signin-link'); return !!a && !a.hidden && a.offsetParent !== null;",
    );
    browser.click("#signin-link");
    browser.wait_for(
        "the provider's login form",
        Duration::from_secs(20),
        "return !!document.querySelector('input[name=login]');",
    );
    browser.js(&format!(
        "document.querySelector('input[name=login]').value = {login:?};
         document.querySelector('input[name=password]').value = 'any password';
         document.querySelector('button[type=submit]').click(); return true;"
    ));
    // The consent page (first sign-in of this person to this client), then back.
    browser.wait_for(
        "the consent page or the console",
        Duration::from_secs(20),
        "return location.pathname === '/console' || (!!document.querySelector('button[type=submit]') && !document.querySelector('input[name=login]'));",
    );
    browser.js(
        "if (location.pathname !== '/console') document.querySelector('button[type=submit]').click(); return true;",
    );
    browser.wait_for(
        "the console after sign-in",
        Duration::from_secs(20),
        &format!(
            "return location.href.startsWith({:?});",
            format!("{host}/console")
        ),
    );
}

/// `fetch` from the page, with the session cookie (same origin); `{status, body}`.
fn page_fetch(browser: &Browser, method: &str, path: &str, body: Option<&str>, csrf: Option<&str>) -> Value {
    let headers = match csrf {
        Some(token) => json!({ "Content-Type": "application/json", "X-CSRF-Token": token }),
        None => json!({ "Content-Type": "application/json" }),
    };
    let script = format!(
        "const done = arguments[arguments.length - 1];
         fetch({path:?}, {{ method: {method:?}, headers: {headers}, body: {body} }})
           .then(async r => done({{ status: r.status, body: await r.text() }}))
           .catch(e => done({{ status: 0, body: String(e) }}));",
        body = body.map_or("undefined".to_owned(), |b| format!("{b:?}")),
    );
    let mut answer = browser.js_async(&script);
    let text = answer["body"].as_str().unwrap_or("").to_owned();
    answer["body"] = serde_json::from_str(&text).unwrap_or(Value::String(text));
    answer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn people_sign_in_through_a_real_provider_and_act_with_their_session() {
    let (host_port, provider_port) = (free_port(), free_port());
    let host_url = format!("http://127.0.0.1:{host_port}");
    let provider = Provider::start(provider_port, &format!("{host_url}/auth/callback"));
    let issuer = provider.issuer.clone();
    let configured = host_url.clone();
    let host = ServedHost::start_on(
        host_port,
        &[crm_plugin()],
        Arc::new(autoheal_containers::NoEngine),
        move |c| sign_in_config(c, &configured, &issuer),
    )
    .await;
    let url = host.url.clone();
    let secrets = match tokio::task::spawn_blocking(move || sign_in_scenario(&url)).await {
        Ok(secrets) => secrets,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    };
    // The trail names the person as the provider proved them.
    let signed_in = host.audit("signed_in").await;
    let people: Vec<(&str, &str, &str)> = signed_in
        .iter()
        .map(|e| {
            (
                e["by"].as_str().unwrap_or(""),
                e["by_kind"].as_str().unwrap_or(""),
                e["by_name"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert!(
        people.contains(&("alice", "person", "Alice Liddell")),
        "{signed_in:#?}"
    );
    assert!(
        people.contains(&("bob", "person", "Bob Builder")),
        "{signed_in:#?}"
    );
    let signed_out = host.audit("signed_out").await;
    assert_eq!(signed_out.len(), 1, "{signed_out:#?}");
    assert_eq!(signed_out[0]["by"], "alice");
    // Nothing secret in the trail: no cookie, CSRF token or client secret.
    let trail = serde_json::to_string(&host.audit("").await).unwrap();
    assert!(!trail.contains(CLIENT_SECRET));
    for secret in secrets {
        assert!(!trail.contains(&secret), "{trail}");
    }
    // The refusal without the token is audited as such.
    let refused = host.audit("auth_failed").await;
    assert!(refused.iter().any(|e| e["reason"] == "csrf"), "{refused:#?}");
    drop(provider);
}

/// Returns alice's CSRF token and cookie, which the trail must not hold.
fn sign_in_scenario(host: &str) -> Vec<String> {
    // alice (sre): operator, approver and viewer.
    let browser = Browser::start();
    sign_in(&browser, host, "alice");
    browser.wait_for(
        "the console to show who is signed in",
        Duration::from_secs(20),
        "const s = document.querySelector('#signed-in'); return !!s && s.innerText.includes('Alice Liddell') && s.innerText;",
    );
    let session = page_fetch(&browser, "GET", "/auth/session", None, None);
    assert_eq!(session["status"], 200, "{session}");
    let me = &session["body"];
    assert_eq!(me["sub"], "alice");
    assert_eq!(me["name"], "Alice Liddell");
    assert_eq!(me["groups"], json!(["sre"]));
    let roles: Vec<&str> = me["grants"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|g| g["role"].as_str())
        .collect();
    assert_eq!(roles, ["viewer", "operator", "approver"], "{me}");
    let csrf = me["csrf_token"].as_str().expect("a CSRF token").to_owned();

    // The cookie: HttpOnly (not in document.cookie), SameSite=Lax, for the whole host.
    let cookies = browser.cookies();
    let cookie = cookies
        .iter()
        .find(|c| c["name"] == "autoheal_session")
        .unwrap_or_else(|| panic!("a session cookie among {cookies:#?}"))
        .clone();
    assert_eq!(cookie["httpOnly"], true, "{cookie}");
    assert_eq!(cookie["sameSite"], "Lax", "{cookie}");
    assert_eq!(cookie["path"], "/", "{cookie}");
    assert_eq!(cookie["secure"], false, "served over plain http: {cookie}");
    let visible = browser.js("return document.cookie;");
    assert!(
        !visible.as_str().unwrap_or("").contains("autoheal_session"),
        "{visible}"
    );
    let cookie_value = cookie["value"].as_str().unwrap().to_owned();
    let copied = format!("autoheal_session={cookie_value}");

    // A state change from the page: with the CSRF token it is done, without it refused.
    let flip = page_fetch(
        &browser,
        "POST",
        "/admin/dry-run",
        Some(r#"{"dry_run": true}"#),
        Some(&csrf),
    );
    assert_eq!(flip["status"], 200, "{flip}");
    assert_eq!(flip["body"]["dry_run"], true);
    // The trail names her as proven, not as typed.
    let trail = page_fetch(&browser, "GET", "/audit?kind=mode_changed", None, None);
    let changed = trail["body"]["events"]
        .as_array()
        .and_then(|events| events.iter().find(|e| e["by_kind"] == "person"))
        .unwrap_or_else(|| panic!("a mode_changed event by a person in {trail}"))
        .clone();
    assert_eq!(
        (&changed["by"], &changed["by_kind"], &changed["by_name"]),
        (&json!("alice"), &json!("person"), &json!("Alice Liddell")),
        "{changed}"
    );
    let forged = page_fetch(
        &browser,
        "POST",
        "/admin/dry-run",
        Some(r#"{"dry_run": true}"#),
        None,
    );
    assert_eq!(forged["status"], 403, "{forged}");
    assert!(
        forged["body"]["error"].as_str().unwrap().starts_with("csrf"),
        "{forged}"
    );
    let wrong = page_fetch(
        &browser,
        "POST",
        "/admin/dry-run",
        Some(r#"{"dry_run": true}"#),
        Some("not-the-token"),
    );
    assert_eq!(wrong["status"], 403, "{wrong}");
    // Reads need no token: the event stream works with the cookie.
    let stream = browser.js_async(
        "const done = arguments[arguments.length - 1];
         const source = new EventSource('/events?kind=signed_in&last_event_id=0');
         source.onmessage = e => { source.close(); done(JSON.parse(e.data).by); };
         source.onerror = () => { source.close(); done('error'); };",
    );
    assert_eq!(stream, "alice");

    // The CLI signs in too: the console issues a personal token, shown once,
    // `autoheal login` keeps it (0600), and an operator command acts with it.
    browser.click("#cli-token-button");
    let shown = browser.wait_for(
        "the CLI token",
        Duration::from_secs(20),
        "const o = document.querySelector('#cli-token-out'); return !o.hidden && o.innerText;",
    );
    let cli_token = shown
        .as_str()
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    assert!(cli_token.starts_with("ahp_"), "{shown}");
    cli_login_and_act(host, &cli_token);

    // The same cookie, copied out of the browser, works from elsewhere until sign-out...
    let (status, _) = http_with(host, "GET", "/auth/session", &[("Cookie", &copied)], "").unwrap();
    assert_eq!(status, 200);
    // ...sign-out (from the console's button, which sends the CSRF token)...
    browser.click("#signout-button");
    browser.wait_for(
        "the console to offer sign-in again",
        Duration::from_secs(20),
        "const a = document.querySelector('#signin-link'); return !!a && a.offsetParent !== null;",
    );
    // ...and no longer after it: not for reading who it was, nor for acting.
    let (status, body) = http_with(host, "GET", "/auth/session", &[("Cookie", &copied)], "").unwrap();
    assert_eq!(status, 401, "{body}");
    let (status, body) = http_with(
        host,
        "POST",
        "/admin/dry-run",
        &[("Cookie", &copied), ("X-CSRF-Token", &csrf)],
        r#"{"dry_run": true}"#,
    )
    .unwrap();
    assert_eq!(status, 401, "{body}");
    // The CLI token that session issued ends with it.
    let bearer = format!("Bearer {cli_token}");
    let (status, body) = http_with(host, "GET", "/auth/me", &[("Authorization", &bearer)], "").unwrap();
    assert_eq!(status, 401, "{body}");
    drop(browser);
    let alice_csrf = csrf;

    // bob (dev): a viewer only. He signs in and reads; a state change is refused.
    let browser = Browser::start();
    sign_in(&browser, host, "bob");
    let session = page_fetch(&browser, "GET", "/auth/session", None, None);
    assert_eq!(session["status"], 200, "{session}");
    let me = &session["body"];
    assert_eq!(
        (me["sub"].as_str(), me["groups"].clone()),
        (Some("bob"), json!(["dev"]))
    );
    assert_eq!(
        me["grants"],
        json!([{ "role": "viewer", "plugins": ["*"], "rule": "[[auth.roles]] #4 group = \"dev\"" }])
    );
    let csrf = me["csrf_token"].as_str().unwrap().to_owned();
    let status = page_fetch(&browser, "GET", "/", None, None);
    assert_eq!(status["status"], 200, "{status}");
    let flip = page_fetch(
        &browser,
        "POST",
        "/admin/dry-run",
        Some(r#"{"dry_run": true}"#),
        Some(&csrf),
    );
    assert_eq!(flip["status"], 403, "{flip}");
    vec![alice_csrf, cookie_value]
}

/// The provider is down when the host starts: the host starts anyway and
/// serves its tokens, sign-in says it waits for the provider, and once the
/// provider answers, sign-in works without a restart. This host has no
/// operator token (people are its operators): its operator routes are on,
/// and ask for credentials (401), not "disabled" (403); so do its reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_host_starts_while_the_provider_is_down_and_signs_in_once_it_is_up() {
    let (host_port, provider_port) = (free_port(), free_port());
    let host_url = format!("http://127.0.0.1:{host_port}");
    let issuer = format!("http://127.0.0.1:{provider_port}");
    let configured = host_url.clone();
    let host = ServedHost::start_on(
        host_port,
        &[crm_plugin()],
        Arc::new(autoheal_containers::NoEngine),
        move |c| {
            sign_in_config(c, &configured, &issuer);
            c.auth.operator_tokens.clear();
        },
    )
    .await;
    let url = host.url.clone();
    tokio::task::spawn_blocking(move || {
        // A rule can make people viewers: reads take credentials, as they
        // would with a read token.
        let (status, body) = http_with(&url, "GET", "/", &[], "").unwrap();
        assert_eq!(status, 401, "{body}");
        let (status, body) = http_with(&url, "POST", "/admin/dry-run", &[], r#"{"dry_run": true}"#).unwrap();
        assert_eq!(status, 401, "{body}");
        let (status, body) = http_with(&url, "GET", "/auth/login", &[], "").unwrap();
        assert_eq!(status, 503, "{body}");
        assert!(
            body["error"].as_str().unwrap().contains("has not answered yet"),
            "{body}"
        );
        let (status, _) = http_with(&url, "GET", "/auth/session", &[], "").unwrap();
        assert_eq!(status, 401);
        let _provider = Provider::start(provider_port, &format!("{url}/auth/callback"));
        // Discovery is retried (1 s, 2 s, 4 s... apart): sign-in starts once it succeeds.
        let location = login_redirect(&url, Duration::from_secs(40));
        assert!(
            location.starts_with(&format!("http://127.0.0.1:{provider_port}/auth?")),
            "{location}"
        );
        for part in [
            "code_challenge_method=S256",
            "code_challenge=",
            "state=",
            "nonce=",
            "response_type=code",
        ] {
            assert!(location.contains(part), "{part} in {location}");
        }
        // A callback without the sign-in's cookie is refused, clearly.
        let (status, body) = http_with(&url, "GET", "/auth/callback?code=x&state=y", &[], "").unwrap();
        assert_eq!(status, 400, "{body}");
        assert!(
            body["error"]
                .as_str()
                .unwrap()
                .contains("no sign-in is under way"),
            "{body}"
        );
        // With the sign-in's cookie but another state (a forged callback): refused.
        let cookie = raw_set_cookie(&url, "/auth/login");
        assert!(cookie.starts_with("autoheal_signin="), "{cookie}");
        let (status, body) = http_with(
            &url,
            "GET",
            "/auth/callback?code=x&state=not-the-state",
            &[("Cookie", &cookie)],
            "",
        )
        .unwrap();
        assert_eq!(status, 400, "{body}");
        assert!(
            body["error"].as_str().unwrap().contains("does not match"),
            "{body}"
        );
        // The provider's refusal is passed on in words.
        let (status, body) = http_with(
            &url,
            "GET",
            "/auth/callback?error=access_denied&error_description=not%20today",
            &[],
            "",
        )
        .unwrap();
        assert_eq!(status, 401, "{body}");
        assert!(
            body["error"]
                .as_str()
                .unwrap()
                .contains("access_denied not today"),
            "{body}"
        );
    })
    .await
    .unwrap();
}

/// `autoheal login` with `token` on standard input, then `autoheal dry-run on`
/// with no operator token in the environment: it acts as the person.
fn cli_login_and_act(host: &str, token: &str) {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    let home = tempfile::tempdir().unwrap();
    let cli = |args: &[&str]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_autoheal"));
        command
            .args(args)
            .env("XDG_CONFIG_HOME", home.path())
            .env("AUTOHEAL_URL", host)
            .env_remove("AUTOHEAL_OPERATOR_TOKEN")
            .env_remove("AUTOHEAL_OPERATOR_TOKEN_FILE")
            .env_remove("AUTOHEAL_READ_TOKEN")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
    };
    // Without the token the operator command is refused.
    let refused = cli(&["dry-run", "on"]).output().unwrap();
    assert!(!refused.status.success(), "{refused:?}");
    let mut login = cli(&["login"]).spawn().unwrap();
    writeln!(login.stdin.take().unwrap(), "{token}").unwrap();
    let login = login.wait_with_output().unwrap();
    assert!(login.status.success(), "{login:?}");
    let kept = home.path().join("autoheal/credentials.json");
    let mode = std::fs::metadata(&kept).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{}", kept.display());
    let acted = cli(&["dry-run", "on"]).output().unwrap();
    assert!(acted.status.success(), "{acted:?}");
    // Not a personal token: refused before anything is kept.
    let mut wrong = cli(&["login"]).spawn().unwrap();
    writeln!(wrong.stdin.take().unwrap(), "test-operator-token-0123456789").unwrap();
    let wrong = wrong.wait_with_output().unwrap();
    assert!(!wrong.status.success());
    assert!(
        String::from_utf8_lossy(&wrong.stderr).contains("ahp_"),
        "{wrong:?}"
    );
}

/// The `name=value` of the cookie `GET path` sets.
fn raw_set_cookie(base: &str, path: &str) -> String {
    raw_response(base, path)
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("set-cookie")
                .then(|| value.trim().to_owned())
        })
        .and_then(|c| c.split(';').next().map(str::to_owned))
        .unwrap_or_default()
}

fn raw_response(base: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let addr = base.trim_start_matches("http://");
    let Ok(mut stream) = std::net::TcpStream::connect(addr) else {
        return String::new();
    };
    let _ = write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    );
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response
}

/// Where `GET /auth/login` sends a browser, once it does (the provider
/// discovered, within `within`).
fn login_redirect(host: &str, within: Duration) -> String {
    wait_until("sign-in to redirect to the provider", within, || {
        let answer = raw_get(host, "/auth/login");
        (answer.0 == 302).then_some(answer.1)
    })
}

/// `GET path`'s status and `Location`.
fn raw_get(base: &str, path: &str) -> (u16, String) {
    let response = raw_response(base, path);
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let location = response
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("location")
                .then(|| value.trim().to_owned())
        })
        .unwrap_or_default();
    (status, location)
}

/// A provider behind a private CA: with `[auth.oidc] ca_file` naming that
/// CA the host discovers it over https and sends people to it; without,
/// the system's roots do not know the CA, discovery never succeeds, and
/// sign-in keeps saying it waits for the provider.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_behind_a_private_ca_is_reached_with_its_ca_file() {
    let certs = tempfile::tempdir().unwrap();
    crate::cluster::certificates(certs.path());
    let (provider_port, with_ca_port, without_ca_port) = (free_port(), free_port(), free_port());
    let issuer = format!("https://127.0.0.1:{provider_port}");
    let with_ca_url = format!("http://127.0.0.1:{with_ca_port}");
    let _provider = Provider::start_tls(
        provider_port,
        &format!("{with_ca_url}/auth/callback"),
        (&certs.path().join("server.pem"), &certs.path().join("server.key")),
    );
    let ca = certs.path().join("ca.pem");
    let configured = |url: String, ca: Option<PathBuf>| {
        let issuer = issuer.clone();
        move |c: &mut autoheal::config::RawConfig| {
            sign_in_config(c, &url, &issuer);
            if let Some(oidc) = c.auth.oidc.as_mut() {
                oidc.ca_file = ca;
            }
        }
    };
    let with_ca = ServedHost::start_on(
        with_ca_port,
        &[crm_plugin()],
        Arc::new(autoheal_containers::NoEngine),
        configured(with_ca_url.clone(), Some(ca)),
    )
    .await;
    let without_ca = ServedHost::start_on(
        without_ca_port,
        &[crm_plugin()],
        Arc::new(autoheal_containers::NoEngine),
        configured(format!("http://127.0.0.1:{without_ca_port}"), None),
    )
    .await;
    let (with_ca, without_ca) = (with_ca.url.clone(), without_ca.url.clone());
    tokio::task::spawn_blocking(move || {
        let location = login_redirect(&with_ca, Duration::from_secs(30));
        assert!(
            location.starts_with(&format!("https://127.0.0.1:{provider_port}/auth?")),
            "{location}"
        );
        // Discovery is retried 1 s, 2 s, 4 s apart: by now the host
        // without the CA has tried three times, and refused each answer.
        std::thread::sleep(Duration::from_secs(4));
        let (status, body) = http_with(&without_ca, "GET", "/auth/login", &[], "").unwrap();
        assert_eq!(status, 503, "{body}");
    })
    .await
    .unwrap();
}
