//! The real `payment-sim` binary: serve, switch with the subcommands, stop with SIGTERM.

use std::io::Read as _;
use std::net::{Ipv4Addr, TcpListener};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_payment-sim");

/// A port that was free a moment ago on 127.0.0.1.
fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Kills the server if the test fails before stopping it.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("PAYMENT_SIM_URL")
        .output()
        .unwrap()
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

async fn metrics(url: &str) -> String {
    let response = http().get(format!("{url}/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.text().await.unwrap()
}

/// The sample value of the series `name` (with its labels) in `text`.
fn sample(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
}

#[tokio::test]
async fn serve_switch_and_stop_with_sigterm() {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let url = format!("http://{listen}");
    let mut server = Server(
        Command::new(BIN)
            .args(["serve", "--listen", &listen, "--rate", "100", "--ramp", "0s"])
            .env("PAYMENT_SIM_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );

    // Wait until it answers.
    let deadline = Instant::now() + Duration::from_secs(20);
    let first = loop {
        if let Ok(response) = http().get(format!("{url}/metrics")).send().await {
            break response.text().await.unwrap();
        }
        assert!(
            server.0.try_wait().unwrap().is_none(),
            "payment-sim serve exited early"
        );
        assert!(
            Instant::now() < deadline,
            "payment-sim serve did not come up on {listen}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(first.contains("# HELP crm_payments_total "), "{first}");
    assert!(
        first.contains("crm_payments_total{outcome=\"success\"} "),
        "{first}"
    );
    assert!(
        first.contains("crm_payments_total{outcome=\"failure\"} "),
        "{first}"
    );
    assert_eq!(sample(&first, "crm_payment_simulator_mode{mode=\"steady\"}"), 1.0);
    assert_eq!(sample(&first, "crm_payment_simulator_failure_ratio"), 0.001);

    // `payment-sim dip --url ...` switches and prints the new status.
    let out = run(&["dip", "--url", &url]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["mode"], "dip");
    assert_eq!(status["failure_ratio"], 0.05);

    tokio::time::sleep(Duration::from_millis(300)).await;
    let text = metrics(&url).await;
    assert_eq!(sample(&text, "crm_payment_simulator_mode{mode=\"dip\"}"), 1.0);
    assert_eq!(sample(&text, "crm_payment_simulator_mode{mode=\"steady\"}"), 0.0);
    assert_eq!(sample(&text, "crm_payment_simulator_failure_ratio"), 0.05);
    let success = sample(&text, "crm_payments_total{outcome=\"success\"}");
    assert!(
        success > sample(&first, "crm_payments_total{outcome=\"success\"}"),
        "{text}"
    );

    let out = run(&["recovery", "--url", &url]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["mode"], "recovery");
    assert_eq!(status["failure_ratio"], 0.001);

    let out = run(&["status", "--url", &url]);
    assert!(out.status.success());
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["mode"], "recovery");
    assert!(status["success_total"].as_u64().unwrap() > 0);

    // An unknown mode is a 400 naming the valid ones.
    let response = http().post(format!("{url}/mode/outage")).send().await.unwrap();
    assert_eq!(response.status(), 400);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(
        body["error"],
        "unknown mode \"outage\": valid modes are steady, dip, recovery"
    );

    // SIGTERM stops it cleanly.
    let kill = Command::new("kill")
        .args(["-TERM", &server.0.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let exit = loop {
        if let Some(exit) = server.0.try_wait().unwrap() {
            break exit;
        }
        assert!(Instant::now() < deadline, "payment-sim serve ignored SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut log = String::new();
    server.0.stderr.take().unwrap().read_to_string(&mut log).unwrap();
    assert!(exit.success(), "exit {exit:?}\n{log}");
    assert!(log.contains(&format!("listening on http://{listen}")), "{log}");
    assert!(log.contains("payment simulator mode switched"), "{log}");
    assert!(log.contains("SIGTERM received"), "{log}");

    // Now it is gone: the client commands fail with a clear message.
    let out = run(&["status", "--url", &url]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("cannot reach the payment simulator at {url}/")),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn unreachable_simulator_is_an_error() {
    let url = format!("http://127.0.0.1:{}", free_port());
    let out = run(&["dip", "--url", &url]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("error: cannot reach the payment simulator at "),
        "{stderr}"
    );
    assert!(stderr.contains("is `payment-sim serve` running"), "{stderr}");
}

#[test]
fn serve_rejects_invalid_settings() {
    for (args, expected) in [
        (&["--rate", "0"][..], "payment rate must be"),
        (&["--dip", "1.5"][..], "dip failure ratio must be between 0 and 1"),
        (
            &["--baseline", "-0.1"][..],
            "baseline failure ratio must be between 0 and 1",
        ),
    ] {
        let out = run(&[&["serve", "--listen", "127.0.0.1:0"][..], args].concat());
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
    // Flag syntax errors come from clap (exit 2).
    for args in [&["--ramp", "5x"][..], &["--mode", "outage"][..]] {
        let out = run(&[&["serve"][..], args].concat());
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("invalid value"), "{args:?}: {stderr}");
    }
}
