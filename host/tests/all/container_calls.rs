//! The container calls of `autoheal:plugin@0.3.0` (signal, exec, logs,
//! list-by-label) through the real server against a real Podman: what the
//! manifest allows acts on real containers; everything else — a signal not
//! listed, a command outside the allow-list, a container not allowed, a
//! selector that tries to widen itself, 10,000 calls, a huge tail, a
//! flooding log — is denied or bounded, recorded, and the host goes on.
//! Calls are made by the `container-calls` fixture, straight on the WIT
//! bindings, so that hostile arguments reach the host as given.

use std::time::Duration;

use serde_json::{Value, json};

use crate::real::{Podman, ServedHost, unique, wait_until};
use crate::support::opted_in;

/// What the manifest of every plugin below allows: the container `web` by
/// name, the containers labelled `autoheal.test.group=GROUP`, `HUP`,
/// `/bin/busybox echo WORD`, and bounded log reads.
fn grant(web: &str, group: &str) -> String {
    format!(
        r#"[capabilities]
containers = ["{web}", "label:autoheal.test.group={group}"]
signals = ["HUP"]
[capabilities.logs]
max_lines = 20
max_bytes = 2048
[[capabilities.exec]]
argv = ["/bin/busybox", "echo"]
max_extra_args = 1
extra_arg_pattern = "[a-z0-9-]{{1,32}}"
timeout = "3s"
max_output_bytes = 1024
[[capabilities.exec]]
argv = ["/bin/busybox", "sh", "-c", "echo fixed > /fix-marker"]
[limits]
timeout_ms = 20000
stop_timeout_sec = 1
cooldown = "0s"
target_cooldown = "0s"
"#
    )
}

/// A plugin of the fixture for the alert `name`, making the call `config`
/// (TOML lines of its `[config]`).
fn plugin(name: &str, web: &str, group: &str, config: &str) -> (String, String) {
    (
        format!("{name}.toml"),
        format!(
            "name = {name:?}\nversion = \"1.0.0\"\ncomponent = \"container_calls.wasm\"\n\
             [match]\nalertnames = [{name:?}]\n{}\n[config]\n{config}\n",
            grant(web, group)
        ),
    )
}

/// Posts one alert per name, waits for their action events, and returns
/// them by alertname (the tests of other capabilities' calls use it too).
pub(crate) async fn act(host: &ServedHost, names: &[&str]) -> Vec<(String, Value)> {
    let alerts: Vec<Value> = names.iter().map(|n| opted_in(n)).collect();
    host.post_alerts(json!(alerts)).await;
    let events = host
        .wait_for(
            "action_ok,action_fail,action_dry_run",
            names.len(),
            Duration::from_secs(90),
        )
        .await;
    names
        .iter()
        .map(|name| {
            let event = events
                .iter()
                .find(|e| e["alertname"] == *name)
                .unwrap_or_else(|| panic!("no action for {name}: {events:#?}"))
                .clone();
            (name.to_string(), event)
        })
        .collect()
}

/// The config of a plugin that runs the manifest's one exact command in `web`.
fn fix_config(web: &str) -> String {
    format!(
        "call = \"exec\"\ncontainer = {web:?}\narg0 = \"/bin/busybox\"\narg1 = \"sh\"\narg2 = \"-c\"\n\
         arg3 = \"echo fixed > /fix-marker\""
    )
}

fn output(event: &Value) -> String {
    event["output"].as_str().unwrap_or_default().to_owned()
}

/// Containers for a test: `web` (its shell writes `/hup-marker` on SIGHUP and
/// prints a numbered line a second), two of the group, and one outsider.
struct Scene {
    podman: Podman,
    web: String,
    group: String,
    members: [String; 2],
    outsider: String,
}

impl Scene {
    fn start() -> Scene {
        let podman = Podman::start();
        let (web, group, outsider) = (unique("calls-web"), unique("group"), unique("calls-out"));
        podman.run_script(
            &web,
            &[],
            "trap 'echo hup >> /hup-marker' HUP; i=0; while true; do i=$((i+1)); echo line $i; sleep 1; done",
        );
        let members = [unique("calls-app"), unique("calls-app")];
        let label = format!("autoheal.test.group={group}");
        for member in &members {
            podman.run_script(member, &[&label], "sleep 3600");
        }
        podman.run_script(&outsider, &["autoheal.test.group=other"], "sleep 3600");
        Scene {
            podman,
            web,
            group,
            members,
            outsider,
        }
    }

    fn exec(&self, container: &str, script: &str) -> String {
        let out = self
            .podman
            .cmd()
            .args(["exec", container, "/bin/busybox", "sh", "-c", script])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowed_calls_act_on_real_containers() {
    let scene = Scene::start();
    let (web, group) = (scene.web.as_str(), scene.group.as_str());
    let plugins = [
        plugin(
            "CallSignal",
            web,
            group,
            &format!("call = \"signal\"\ncontainer = {web:?}"),
        ),
        plugin(
            "CallEcho",
            web,
            group,
            &format!(
                "call = \"exec\"\ncontainer = {web:?}\narg0 = \"/bin/busybox\"\narg1 = \"echo\"\narg2 = \"hello\""
            ),
        ),
        plugin("CallFix", web, group, &fix_config(web)),
        plugin(
            "CallLogs",
            web,
            group,
            &format!("call = \"logs\"\ncontainer = {web:?}\ntail = \"3\""),
        ),
        plugin(
            "CallRestartService",
            web,
            group,
            &format!("call = \"restart_listed\"\nselector = \"autoheal.test.group={group}\""),
        ),
    ];
    let plugins: Vec<(&str, String)> = plugins.iter().map(|(f, t)| (f.as_str(), t.clone())).collect();
    // Let web print a few lines first.
    std::thread::sleep(Duration::from_secs(3));
    let before: Vec<String> = scene.members.iter().map(|m| scene.podman.started_at(m)).collect();
    let host = ServedHost::start_staged(0, &["container_calls"], &plugins, scene.podman.runtime(), |c| {
        crate::support::real(c)
    })
    .await;
    let events = act(
        &host,
        &[
            "CallSignal",
            "CallEcho",
            "CallFix",
            "CallLogs",
            "CallRestartService",
        ],
    )
    .await;
    let by = |name: &str| events.iter().find(|(n, _)| n == name).unwrap().1.clone();

    // HUP reached the container's shell, which wrote its marker.
    assert_eq!(output(&by("CallSignal")), "signal=ok", "{:#}", by("CallSignal"));
    wait_until("the HUP marker", Duration::from_secs(10), || {
        scene
            .exec(web, "cat /hup-marker 2>/dev/null")
            .contains("hup")
            .then_some(())
    });
    let signal = &by("CallSignal");
    assert_eq!(signal["kind"], "action_ok");
    assert_eq!(signal["calls"][0]["capability"], "containers.signal");
    assert_eq!(signal["calls"][0]["detail"], "SIGHUP");
    assert!(
        signal["calls"][0]["intent"].as_u64().is_some(),
        "an intent before the signal: {signal:#}"
    );
    assert_eq!(signal["cmd"], format!("signal {web}: SIGHUP"));

    // The command ran, never through a shell: its output came back, and the
    // fixed command's marker is in the container.
    assert!(
        output(&by("CallEcho")).starts_with("exec=ran exit=Some(0)"),
        "{:#}",
        by("CallEcho")
    );
    assert!(
        output(&by("CallEcho")).contains("stdout=6"),
        "hello\\n: {}",
        output(&by("CallEcho"))
    );
    assert_eq!(scene.exec(web, "cat /fix-marker").trim(), "fixed");

    // The last lines of the log, newest last.
    let logs = output(&by("CallLogs"));
    assert!(logs.starts_with("logs=3 truncated=false last=\"line "), "{logs}");

    // Both containers of the group restarted, the outsider not.
    assert_eq!(
        output(&by("CallRestartService")),
        format!("restarted={},{}", scene.members[0], scene.members[1])
    );
    for (member, before) in scene.members.iter().zip(&before) {
        assert_ne!(&scene.podman.started_at(member), before, "{member} restarted");
    }
    let restart = by("CallRestartService");
    assert_eq!(restart["targets"], json!([scene.members[0], scene.members[1]]));
    let effects: Vec<&str> = host
        .audit("effect_intent,restart_intent")
        .await
        .iter()
        .map(|e| e["kind"].as_str().unwrap_or_default().to_owned())
        .collect::<Vec<_>>()
        .iter()
        .map(|k| if k == "effect_intent" { "effect" } else { "restart" })
        .collect();
    assert_eq!(
        (
            effects.iter().filter(|k| **k == "effect").count(),
            effects.iter().filter(|k| **k == "restart").count()
        ),
        (3, 2),
        "a signal and two commands, two restarts: each an intent first"
    );

    // GET / shows what the signal and command breakers spent, per container.
    let status = host.get_ok("/").await;
    let spent = |capability: &str| {
        let breaker = status["effect_breakers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["capability"] == capability)
            .cloned()
            .unwrap_or_else(|| panic!("no {capability} breaker: {status:#}"));
        assert_eq!(breaker["max"], 6, "{breaker:#}");
        (
            breaker["containers"][0]["container"].clone(),
            breaker["containers"][0]["spent"].clone(),
        )
    };
    assert_eq!(spent("containers.signal"), (json!(web), json!(1)));
    assert_eq!(spent("containers.exec"), (json!(web), json!(2)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_calls_are_denied_or_bounded_recorded_and_the_host_goes_on() {
    let scene = Scene::start();
    let (web, group) = (scene.web.as_str(), scene.group.as_str());
    // A container of the group that floods its log with 500-byte lines: a
    // read of it stays within max_bytes (2,048), the newest lines kept.
    let flooder = unique("calls-flood");
    let flood = "i=0; while [ $i -lt 2000 ]; do printf '%0500d\\n' $i; i=$((i+1)); done; sleep 3600";
    scene
        .podman
        .run_script(&flooder, &[&format!("autoheal.test.group={group}")], flood);
    let exec = |words: &[&str]| -> String {
        let mut config = format!("call = \"exec\"\ncontainer = {web:?}\n");
        for (i, w) in words.iter().enumerate() {
            config.push_str(&format!("arg{i} = {w:?}\n"));
        }
        config
    };
    let cases: Vec<(&str, String)> = vec![
        (
            "HostileKill",
            format!("call = \"signal\"\ncontainer = {web:?}\nsignal = \"KILL\""),
        ),
        ("HostileSemicolon", exec(&["/bin/busybox", "echo", "a;reboot"])),
        ("HostileSubshell", exec(&["/bin/busybox", "echo", "$(id)"])),
        (
            "HostileDotdot",
            exec(&["/bin/busybox", "echo", "../../etc/passwd"]),
        ),
        ("HostileExtraArg", exec(&["/bin/busybox", "echo", "a", "b"])),
        ("HostileShell", exec(&["/bin/busybox", "sh", "-c", "reboot"])),
        (
            "HostileHugeArg",
            format!("{}huge_arg = \"1048576\"", exec(&["/bin/busybox", "echo"])),
        ),
        (
            "HostileOutsider",
            format!(
                "call = \"exec\"\ncontainer = {:?}\narg0 = \"/bin/busybox\"\narg1 = \"echo\"\narg2 = \"x\"",
                scene.outsider
            ),
        ),
        (
            "HostileWiden",
            format!("call = \"list\"\nselector = \"autoheal.test.group={group},x=y\""),
        ),
        (
            "HostileNoValue",
            "call = \"list\"\nselector = \"autoheal.test.group\"".to_owned(),
        ),
        (
            "HostileStorm",
            format!("call = \"logs\"\ncontainer = {web:?}\ntail = \"1\"\ntimes = \"10000\""),
        ),
        (
            "HostileTail",
            format!("call = \"logs\"\ncontainer = {web:?}\ntail = \"4294967295\""),
        ),
        (
            "HostileFlood",
            format!("call = \"logs\"\ncontainer = {flooder:?}\ntail = \"20\""),
        ),
    ];
    let plugins: Vec<(String, String)> = cases
        .iter()
        .map(|(name, config)| plugin(name, web, group, config))
        .collect();
    let plugins: Vec<(&str, String)> = plugins.iter().map(|(f, t)| (f.as_str(), t.clone())).collect();
    std::thread::sleep(Duration::from_secs(2));
    let host = ServedHost::start_staged(0, &["container_calls"], &plugins, scene.podman.runtime(), |c| {
        crate::support::real(c)
    })
    .await;
    let names: Vec<&str> = cases.iter().map(|(n, _)| *n).collect();
    let events = act(&host, &names).await;
    let by = |name: &str| events.iter().find(|(n, _)| n == name).unwrap().1.clone();

    for name in [
        "HostileKill",
        "HostileSemicolon",
        "HostileSubshell",
        "HostileDotdot",
        "HostileExtraArg",
        "HostileShell",
        "HostileHugeArg",
        "HostileOutsider",
        "HostileWiden",
        "HostileNoValue",
    ] {
        let event = by(name);
        assert!(output(&event).starts_with("denied: "), "{name}: {event:#}");
        let call = &event["calls"][0];
        assert_eq!(call["outcome"], "denied", "{name}: {event:#}");
        assert!(call["intent"].is_null(), "{name}: nothing was about to be sent");
        // What a plugin sends is recorded bounded, whatever its size.
        assert!(
            event.to_string().len() < 8 * 1024,
            "{name}: {} bytes",
            event.to_string().len()
        );
    }
    assert!(
        output(&by("HostileKill")).contains("\"KILL\""),
        "{}",
        output(&by("HostileKill"))
    );
    assert!(output(&by("HostileWiden")).contains("never widened"));
    // No denied command ran, and the container still runs.
    assert_eq!(scene.exec(web, "ls /fix-marker 2>/dev/null"), "");
    let state = scene
        .podman
        .cmd()
        .args(["inspect", "--format", "{{.State.Status}}", web])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&state.stdout).trim(), "running");

    // 10,000 calls: 64 answered, the rest refused by the budget, counted.
    let storm = by("HostileStorm");
    assert_eq!(output(&storm), "logs=64 denied=9936", "{storm:#}");
    assert_eq!(storm["calls"].as_array().unwrap().len(), 64);
    // A huge tail is cut to the manifest's max_lines and max_bytes.
    let tail = output(&by("HostileTail"));
    assert!(tail.starts_with("logs="), "{tail}");
    let lines: usize = tail["logs=".len()..].split(' ').next().unwrap().parse().unwrap();
    assert!((1..=20).contains(&lines), "{tail}");
    let detail = by("HostileTail")["calls"][0]["detail"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(detail.contains("at most max_lines = 20"), "{detail}");

    // A flooding log answers its newest lines within the bytes.
    let flood = output(&by("HostileFlood"));
    assert!(flood.contains("truncated=true last=\"00000000000"), "{flood}");
    let lines: usize = flood["logs=".len()..].split(' ').next().unwrap().parse().unwrap();
    assert!(
        (1..=4).contains(&lines),
        "2,048 bytes hold at most 4 lines of 501: {flood}"
    );
    assert!(flood.ends_with("1999\""), "the newest line is kept: {flood}");

    // Denials are counted, and the host goes on serving.
    let metrics = host.get_ok("/metrics").await;
    let metrics = metrics.as_str().unwrap_or_default();
    assert!(
        metrics.contains("autoheal_capability_calls_total{capability=\"containers.exec\",outcome=\"denied\""),
        "{metrics}"
    );
    let status = host.get_ok("/").await;
    assert_eq!(status["enabled"], true, "{status:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_dry_run_effects_are_recorded_not_sent_and_reads_are_performed() {
    let scene = Scene::start();
    let (web, group) = (scene.web.as_str(), scene.group.as_str());
    let plugins = [
        plugin(
            "DrySignal",
            web,
            group,
            &format!("call = \"signal\"\ncontainer = {web:?}"),
        ),
        plugin("DryFix", web, group, &fix_config(web)),
        plugin(
            "DryList",
            web,
            group,
            &format!("call = \"list\"\nselector = \"autoheal.test.group={group}\""),
        ),
    ];
    let plugins: Vec<(&str, String)> = plugins.iter().map(|(f, t)| (f.as_str(), t.clone())).collect();
    let host =
        ServedHost::start_staged(0, &["container_calls"], &plugins, scene.podman.runtime(), |_| {}).await;
    let events = act(&host, &["DrySignal", "DryFix", "DryList"]).await;
    let by = |name: &str| events.iter().find(|(n, _)| n == name).unwrap().1.clone();
    assert_eq!(output(&by("DrySignal")), "signal=ok");
    assert_eq!(by("DrySignal")["calls"][0]["outcome"], "recorded");
    assert_eq!(output(&by("DryFix")), "exec=recorded");
    assert_eq!(by("DryFix")["calls"][0]["outcome"], "recorded");
    assert_eq!(
        output(&by("DryList")),
        format!("list={},{}", scene.members[0], scene.members[1])
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        scene.exec(web, "cat /hup-marker /fix-marker 2>/dev/null"),
        "",
        "nothing was sent"
    );
    assert!(host.audit("effect_intent").await.is_empty());
}
