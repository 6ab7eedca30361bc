//! `autoheal plugin dev`: a generated Rust project rebuilt with the
//! project's own build, tested on its fixture alert, installed into a real
//! served host; the watch loop rebuilds on an edit and ends on Ctrl-C.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::plugin_cli::cli;
use crate::real::ServedHost;
use crate::support::*;

/// `plugin new NAME` in `dir`: the project's root.
fn new_rust_project(dir: &Path, name: &str) -> PathBuf {
    let output = cli()
        .args(["plugin", "new", name, "--dir"])
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    dir.join(name)
}

/// `plugin dev` in `root` with `args`; builds into the target directory the
/// `plugin new` test uses (kept between runs: only the first build is slow).
fn dev(root: &Path, args: &[&str]) -> Command {
    let mut command = cli();
    command
        .args(["plugin", "dev"])
        .args(args)
        .env("CARGO_TARGET_DIR", target_dir())
        .current_dir(root);
    command
}

fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/plugin-new-test")
}

fn edit_answer(root: &Path, to: &str) {
    let lib = root.join("src/lib.rs");
    let text = std::fs::read_to_string(&lib).unwrap();
    assert!(
        text.contains("\"restarted {"),
        "the template's answer moved: {text}"
    );
    std::fs::write(&lib, text.replace("\"restarted {", &format!("\"{to} {{"))).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_dev_once_builds_tests_and_installs_into_a_running_host() {
    let served = ServedHost::start(&[crm_plugin()], Arc::new(autoheal_containers::NoEngine), |_| {}).await;
    let plugins_dir = served.host.config.plugins_dir.clone();
    let work = tempfile::tempdir().unwrap();
    let root = new_rust_project(work.path(), "dev-once");
    let cache = work.path().join("cache");
    let args = [
        "--once",
        "--cache-dir",
        cache.to_str().unwrap(),
        "--plugins-dir",
        plugins_dir.to_str().unwrap(),
        "--host",
        &served.url,
    ];
    let run = |root: PathBuf, args: Vec<String>| {
        tokio::task::spawn_blocking(move || {
            let output = dev(&root, &args.iter().map(String::as_str).collect::<Vec<_>>())
                .env("AUTOHEAL_OPERATOR_TOKEN", OPERATOR_TOKEN)
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&output.stdout).into_owned()
                + &String::from_utf8_lossy(&output.stderr);
            (output.status.success(), text)
        })
    };
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let (ok, out) = run(root.clone(), args.clone()).await.unwrap();
    assert!(ok, "{out}");
    for line in [
        "built in",
        "component ",
        "plugin    dev-once 0.1.0  (dry-run)",
        "result    ok: restarted example",
        "installed into",
        "host reloaded",
    ] {
        assert!(out.contains(line), "missing {line:?} in\n{out}");
    }
    assert!(
        root.join("dev_once.wasm").exists(),
        "the build put the component beside its manifest"
    );
    let loaded = |page: &serde_json::Value| {
        page["plugins"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "dev-once")
            .map(|p| p["component_hash"].as_str().unwrap().to_owned())
    };
    let first = loaded(&served.get_ok("/").await).expect("the host loaded the plugin");

    // An edit: rebuilt, the new answer printed, the new version live.
    edit_answer(&root, "restarted anew");
    let (ok, out) = run(root.clone(), args).await.unwrap();
    assert!(ok, "{out}");
    assert!(out.contains("result    ok: restarted anew example"), "{out}");
    assert!(
        out.contains("compiled in"),
        "a changed component is compiled: {out}"
    );
    let second = loaded(&served.get_ok("/").await).unwrap();
    assert_ne!(first, second, "the host serves the new version");

    // A build that fails is said, and nothing is installed.
    std::fs::write(root.join("src/lib.rs"), "this is not rust").unwrap();
    let failing: Vec<String> = ["--once", "--plugins-dir", plugins_dir.to_str().unwrap()]
        .iter()
        .map(|a| a.to_string())
        .collect();
    let (ok, out) = run(root.clone(), failing).await.unwrap();
    assert!(!ok, "{out}");
    assert!(out.contains("build FAILED"), "{out}");
    assert_eq!(loaded(&served.get_ok("/").await).unwrap(), second);
}

#[test]
fn plugin_dev_says_what_it_is_missing() {
    let work = tempfile::tempdir().unwrap();
    let output = dev(work.path(), &["--once"]).output().unwrap();
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(err.contains("no plugin manifest (NAME.toml) in"), "{err}");
    let output = dev(work.path(), &["--once", "--host", "http://127.0.0.1:1"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(err.contains("--host needs --plugins-dir"), "{err}");
}

#[test]
fn plugin_dev_rebuilds_on_an_edit_and_ends_on_ctrl_c() {
    let work = tempfile::tempdir().unwrap();
    let root = new_rust_project(work.path(), "dev-watch");
    // A folder of fixtures instead of alert.json.
    std::fs::create_dir(root.join("alerts")).unwrap();
    std::fs::rename(root.join("alert.json"), root.join("alerts/example.json")).unwrap();
    let cache = work.path().join("cache");
    let mut child = dev(&root, &["--cache-dir", cache.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (lines, read) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let _ = lines.send(line.unwrap());
        }
    });
    let wait_for = |needle: &str| {
        let deadline = Instant::now() + Duration::from_secs(300);
        let mut seen = String::new();
        while Instant::now() < deadline {
            if let Ok(line) = read.recv_timeout(Duration::from_secs(1)) {
                seen.push_str(&line);
                seen.push('\n');
                if line.contains(needle) {
                    return seen;
                }
            }
        }
        panic!("no {needle:?} from plugin dev; it printed:\n{seen}");
    };
    let first = wait_for("watching");
    assert!(first.contains("result    ok: restarted example"), "{first}");

    edit_answer(&root, "restarted on save");
    let second = wait_for("watching");
    assert!(second.contains("built in"), "{second}");
    assert!(
        second.contains("result    ok: restarted on save example"),
        "{second}"
    );

    // Ctrl-C ends the loop, successfully.
    // SAFETY: a signal to the child this test started.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("plugin dev did not end on Ctrl-C");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
}
