//! The library served in-process, the way the host's tests use it.

use payment_sim::{Client, ClientError, METRICS_CONTENT_TYPE, Mode, Settings, Simulator};

async fn start(
    mode: Mode,
) -> (
    String,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let sim = Simulator::new(Settings::default(), mode);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        payment_sim::serve(listener, sim, async {
            let _ = stopped.await;
        })
        .await
        .unwrap();
    });
    (url, stop, task)
}

#[tokio::test]
async fn serves_status_metrics_and_switches() {
    let (url, stop, task) = start(Mode::Steady).await;
    let http = reqwest::Client::builder().no_proxy().build().unwrap();

    let response = http.get(format!("{url}/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], METRICS_CONTENT_TYPE);
    let text = response.text().await.unwrap();
    assert!(text.contains("# TYPE crm_payments_total counter\n"), "{text}");
    assert!(
        text.contains("crm_payments_total{outcome=\"failure\"} "),
        "{text}"
    );
    assert!(
        text.contains("crm_payment_simulator_mode{mode=\"steady\"} 1\n"),
        "{text}"
    );

    let client = Client::new(&url).unwrap();
    let status = client.status().await.unwrap();
    assert_eq!(status.mode, Mode::Steady);
    assert_eq!(status.failure_ratio, 0.001);

    let status = client.set_mode(Mode::Dip).await.unwrap();
    assert_eq!(status.mode, Mode::Dip);
    assert_eq!(status.target_failure_ratio, 0.05);
    let text = http
        .get(format!("{url}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("crm_payment_simulator_mode{mode=\"dip\"} 1\n"),
        "{text}"
    );
    assert!(
        text.contains("crm_payment_simulator_mode{mode=\"steady\"} 0\n"),
        "{text}"
    );

    let response = http.post(format!("{url}/mode/outage")).send().await.unwrap();
    assert_eq!(response.status(), 400);
    let body: serde_json::Value = response.json().await.unwrap();
    let error = body["error"].as_str().unwrap();
    for name in ["outage", "steady", "dip", "recovery"] {
        assert!(error.contains(name), "{error}");
    }

    let json: serde_json::Value = http.get(&url).send().await.unwrap().json().await.unwrap();
    assert_eq!(json["mode"], "dip");

    stop.send(()).unwrap();
    task.await.unwrap();
    assert!(matches!(
        client.status().await,
        Err(ClientError::Unreachable { .. })
    ));
}
