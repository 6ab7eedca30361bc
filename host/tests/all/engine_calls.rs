//! The engine calls behind the container capabilities (`signal`, `exec`,
//! `logs`, `list`), made on `DockerRuntime` directly against a real Podman
//! serving the Docker API, with busybox containers.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use autoheal_containers::{
    ContainerError, ContainerRuntime, DockerRuntime, EngineAddress, Engines, ExecLimits, LabelSelector,
    LogLine, LogStream,
};

use crate::real::{IMAGE, Podman, unique, wait_until};

/// Containers made for one test, removed when it ends (pass or fail).
struct Containers<'a> {
    podman: &'a Podman,
    names: Vec<String>,
}

impl<'a> Containers<'a> {
    fn on(podman: &'a Podman) -> Self {
        Self {
            podman,
            names: Vec::new(),
        }
    }

    /// Runs `script` under busybox sh in a new container named after
    /// `prefix`, with `--label` for each of `labels`; returns its name.
    fn run(&mut self, prefix: &str, labels: &[&str], script: &str) -> String {
        let name = unique(prefix);
        self.names.push(name.clone());
        let mut command = self.podman.cmd();
        command
            .args(["run", "-d", "--network", "host"])
            .args(["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"])
            .args(["--name", &name]);
        for label in labels {
            command.args(["--label", label]);
        }
        let output = command
            .args([IMAGE, "/bin/busybox", "sh", "-c", script])
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "podman run {name}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        name
    }
}

impl Drop for Containers<'_> {
    fn drop(&mut self) {
        for name in &self.names {
            let _ = self.podman.cmd().args(["rm", "-f", "-t", "0", name]).output();
        }
    }
}

fn runtime(podman: &Podman) -> DockerRuntime {
    DockerRuntime::new(
        EngineAddress::Unix(podman.socket.clone()),
        Duration::from_secs(10),
    )
}

fn argv(words: &[&str]) -> Vec<String> {
    std::iter::once("/bin/busybox")
        .chain(words.iter().copied())
        .map(str::to_owned)
        .collect()
}

const LIMITS: ExecLimits = ExecLimits {
    timeout: Duration::from_secs(10),
    max_output_bytes: 1000,
};

/// A shell that traps HUP: the signal reaches the container's main
/// process, which writes a marker that an exec then reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hup_reaches_the_main_process() {
    let podman = tokio::task::block_in_place(Podman::start);
    let mut containers = Containers::on(&podman);
    let name = tokio::task::block_in_place(|| {
        containers.run(
            "hup",
            &[],
            "trap 'echo hup > /hup-marker' HUP; while true; do sleep 0.2; done",
        )
    });
    let engine = runtime(&podman);
    let cat = argv(&["cat", "/hup-marker"]);
    let before = engine.exec(&name, &cat, &LIMITS).await.unwrap();
    assert_ne!(
        before.exit_code,
        Some(0),
        "no marker before the signal: {before:?}"
    );

    engine.signal(&name, "HUP").await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let read = engine.exec(&name, &cat, &LIMITS).await.unwrap();
        if read.exit_code == Some(0) {
            assert_eq!(read.stdout, "hup\n");
            break;
        }
        assert!(Instant::now() < deadline, "the trap never ran: {read:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Still running: HUP was trapped, not the default (terminate).
    assert_eq!(engine.inspect(&name).await.unwrap().state, "running");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_gives_output_exit_codes_bounds_and_a_timeout() {
    let podman = tokio::task::block_in_place(Podman::start);
    let mut containers = Containers::on(&podman);
    let name = tokio::task::block_in_place(|| containers.run("exec", &[], "while true; do sleep 1; done"));
    let engine = runtime(&podman);

    let echo = engine
        .exec(&name, &argv(&["echo", "hello world"]), &LIMITS)
        .await
        .unwrap();
    assert_eq!(echo.exit_code, Some(0));
    assert_eq!(
        (echo.stdout.as_str(), echo.stderr.as_str()),
        ("hello world\n", "")
    );
    assert!(!echo.truncated && !echo.timed_out);

    // argv is never a shell command line: metacharacters are plain words.
    let literal = engine
        .exec(&name, &argv(&["echo", "$(id)", ";", "ls", "`id`"]), &LIMITS)
        .await
        .unwrap();
    assert_eq!(literal.stdout, "$(id) ; ls `id`\n");

    let write = argv(&["sh", "-c", "echo fixed > /marker"]);
    assert_eq!(
        engine.exec(&name, &write, &LIMITS).await.unwrap().exit_code,
        Some(0)
    );
    let cat = engine
        .exec(&name, &argv(&["cat", "/marker"]), &LIMITS)
        .await
        .unwrap();
    assert_eq!((cat.exit_code, cat.stdout.as_str()), (Some(0), "fixed\n"));

    let failing = argv(&["sh", "-c", "echo partial; echo broken >&2; exit 3"]);
    let failed = engine.exec(&name, &failing, &LIMITS).await.unwrap();
    assert_eq!(failed.exit_code, Some(3));
    assert_eq!(
        (failed.stdout.as_str(), failed.stderr.as_str()),
        ("partial\n", "broken\n")
    );

    // ~109 kB of output against a 1000-byte bound: read to the end, kept to the bound.
    let flood = engine
        .exec(&name, &argv(&["seq", "1", "20000"]), &LIMITS)
        .await
        .unwrap();
    assert_eq!(flood.exit_code, Some(0));
    assert!(flood.truncated, "{flood:?}");
    assert_eq!(flood.stdout.len(), 1000);
    assert!(flood.stdout.starts_with("1\n2\n3\n"), "{:?}", &flood.stdout[..20]);

    let short = ExecLimits {
        timeout: Duration::from_secs(1),
        max_output_bytes: 1000,
    };
    let started = Instant::now();
    let slow = engine
        .exec(&name, &argv(&["sh", "-c", "echo before; sleep 30"]), &short)
        .await
        .unwrap();
    let took = started.elapsed();
    assert!(slow.timed_out, "{slow:?}");
    assert_eq!(slow.exit_code, None);
    assert_eq!(
        slow.stdout, "before\n",
        "what it wrote before the deadline is kept"
    );
    assert!(took < Duration::from_millis(2500), "took {took:?}");
    println!("exec timeout: 1 s limit, returned after {took:?}");
    // What `DockerRuntime::exec`'s comment says of Podman: the timed-out
    // process is not stopped, it runs on to its own end.
    let ps = engine.exec(&name, &argv(&["ps"]), &LIMITS).await.unwrap();
    assert!(ps.stdout.contains("sleep 30"), "{}", ps.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_give_the_last_lines_of_both_streams_within_the_bytes() {
    let podman = tokio::task::block_in_place(Podman::start);
    let mut containers = Containers::on(&podman);
    let name = tokio::task::block_in_place(|| {
        containers.run(
            "logs",
            &[],
            // The pauses let the engine log the two pipes in the order written.
            "i=1; while [ $i -le 20 ]; do echo out$i; sleep 0.05; echo err$i >&2; sleep 0.05; \
             i=$((i+1)); done; while true; do sleep 1; done",
        )
    });
    let engine = runtime(&podman);
    tokio::task::block_in_place(|| {
        wait_until("40 log lines", Duration::from_secs(20), || {
            let output = podman.cmd().args(["logs", &name]).output().unwrap();
            let lines = output
                .stdout
                .split(|b| *b == b'\n')
                .filter(|l| !l.is_empty())
                .count()
                + output
                    .stderr
                    .split(|b| *b == b'\n')
                    .filter(|l| !l.is_empty())
                    .count();
            (lines == 40).then_some(())
        })
    });

    let logs = engine.logs(&name, 6, 10_000).await.unwrap();
    assert!(!logs.truncated);
    let got: Vec<(LogStream, &str)> = logs.lines.iter().map(|l| (l.stream, l.text.as_str())).collect();
    use LogStream::{Stderr, Stdout};
    assert_eq!(
        got,
        [
            (Stdout, "out18"),
            (Stderr, "err18"),
            (Stdout, "out19"),
            (Stderr, "err19"),
            (Stdout, "out20"),
            (Stderr, "err20"),
        ]
    );

    // 12 bytes hold two 5-byte lines, the newest.
    let bounded = engine.logs(&name, 40, 12).await.unwrap();
    assert!(bounded.truncated);
    let newest: Vec<&str> = bounded.lines.iter().map(|l| l.text.as_str()).collect();
    assert_eq!(newest, ["out20", "err20"], "{bounded:?}");

    let all = engine.logs(&name, 1000, 10_000).await.unwrap();
    assert_eq!(all.lines.len(), 40);
    assert_eq!(
        all.lines.iter().find(|l| l.text == "err1"),
        Some(&LogLine {
            stream: LogStream::Stderr,
            text: "err1".into()
        })
    );
    assert!(engine.logs(&name, 0, 10_000).await.unwrap().lines.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_finds_exactly_the_containers_carrying_the_label_on_every_engine() {
    let podman = tokio::task::block_in_place(Podman::start);
    let mut containers = Containers::on(&podman);
    let service = unique("svc");
    let label = format!("com.docker.compose.service={service}");
    let (a, b, other, exited) = tokio::task::block_in_place(|| {
        let idle = "while true; do sleep 1; done";
        (
            containers.run("app", &[&label, "tier=web"], idle),
            containers.run("app", &[&label], idle),
            containers.run(
                "other",
                &[&format!("com.docker.compose.service={service}-db")],
                idle,
            ),
            // Stopped containers count: the selector names a service, running or not.
            containers.run("app", &[&label], "exit 0"),
        )
    });
    let engine = runtime(&podman);
    let selector = LabelSelector::parse(&label).unwrap();
    let mut want = vec![a.clone(), b.clone(), exited.clone()];
    want.sort();
    assert_eq!(engine.list(&selector).await.unwrap(), want);
    assert!(!want.contains(&other));

    let info = engine.inspect(&a).await.unwrap();
    assert_eq!(info.labels.get("tier").map(String::as_str), Some("web"));
    assert_eq!(info.labels.get("com.docker.compose.service"), Some(&service));

    // A glob in the value matches nothing: selectors are exact.
    let glob = LabelSelector::parse(&format!("com.docker.compose.service={service}*")).unwrap();
    assert_eq!(engine.list(&glob).await.unwrap(), Vec::<String>::new());

    // Through Engines: a named engine's names come back qualified (here the
    // same Podman under a second name), and an engine that cannot answer
    // fails the whole list, named.
    let named: BTreeMap<String, Arc<dyn ContainerRuntime>> = [(
        "edge".to_owned(),
        Arc::new(runtime(&podman)) as Arc<dyn ContainerRuntime>,
    )]
    .into();
    let engines = Engines::new(Arc::new(runtime(&podman)), named);
    let listed = engines.list(&selector).await.unwrap();
    assert_eq!(listed.len(), 6, "{listed:?}");
    assert!(
        listed.contains(&format!("edge/{a}")) && listed.contains(&a),
        "{listed:?}"
    );

    let dir = tempfile::tempdir().unwrap();
    let gone = DockerRuntime::new(
        EngineAddress::Unix(dir.path().join("nothing.sock")),
        Duration::from_secs(2),
    );
    let named: BTreeMap<String, Arc<dyn ContainerRuntime>> =
        [("gone".to_owned(), Arc::new(gone) as Arc<dyn ContainerRuntime>)].into();
    let engines = Engines::new(Arc::new(runtime(&podman)), named);
    let error = engines.list(&selector).await.unwrap_err().to_string();
    assert!(
        error.contains("\"gone\"") && error.contains("nothing.sock"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_on_a_missing_or_stopped_container_say_so() {
    let podman = tokio::task::block_in_place(Podman::start);
    let mut containers = Containers::on(&podman);
    let stopped = tokio::task::block_in_place(|| containers.run("stopped", &[], "exit 0"));
    let engine = runtime(&podman);
    let missing = unique("missing");
    let not_found = ContainerError::NotFound(missing.clone());
    assert_eq!(engine.signal(&missing, "HUP").await, Err(not_found.clone()));
    assert_eq!(
        engine.exec(&missing, &argv(&["true"]), &LIMITS).await,
        Err(not_found.clone())
    );
    assert_eq!(engine.logs(&missing, 10, 100).await, Err(not_found.clone()));
    assert_eq!(engine.logs(&missing, 0, 100).await, Err(not_found.clone()));
    assert_eq!(engine.inspect(&missing).await.map(|_| ()), Err(not_found));

    tokio::task::block_in_place(|| {
        wait_until("the container to exit", Duration::from_secs(20), || {
            let output = podman
                .cmd()
                .args(["inspect", "--format", "{{.State.Status}}", &stopped])
                .output()
                .unwrap();
            (String::from_utf8_lossy(&output.stdout).trim() == "exited").then_some(())
        })
    });
    for error in [
        engine.signal(&stopped, "HUP").await.unwrap_err(),
        engine
            .exec(&stopped, &argv(&["true"]), &LIMITS)
            .await
            .map(|_| ())
            .unwrap_err(),
    ] {
        let text = error.to_string();
        assert!(
            matches!(error, ContainerError::Runtime(_))
                && text.contains(&stopped)
                && text.contains("not running"),
            "{text}"
        );
    }
}
