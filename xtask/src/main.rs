//! Project tasks: `cargo xtask <task>`.
//!
//!   build-plugins  build the bundled plugins and test fixtures for wasm32-wasip2
//!                  (the Python and JavaScript ones with componentize-py and
//!                  componentize-js, installed pinned under target/guest-tools)
//!                  and stage the bundled ones in target/plugins.d
//!   run [ARGS..]   build the bundled plugins and the `autoheal` binary (at
//!                  once; not the test fixtures, not payment-sim), then run
//!                  `autoheal serve` on 127.0.0.1:9009 in dry-run with the
//!                  bundled plugins (ARGS go to `serve`)
//!   test           install the real components the end-to-end tests use (Debian
//!                  packages, when missing and running as root), build-plugins,
//!                  then run every test of the workspace
//!   image \[TAG\]  build the release binary and the bundled plugins, then the
//!                  image (packaging/Containerfile, by packaging/image.sh) as
//!                  localhost/autoheal:VERSION and :latest (or TAG)
//!   deb            build the release binary and the bundled plugins, then
//!                  target/deb/autoheal_VERSION_ARCH.deb (packaging/deb/build.sh,
//!                  dpkg-deb on a staged tree)
//!   lint           the documentation's links (every relative link and #anchor
//!                  of README.md, ARCHITECTURE.md, BENCHMARKS.md, docs/**/*.md),
//!                  cargo fmt --check, clippy -D warnings (host and guests),
//!                  cargo doc -D warnings (every doc link resolves), no module
//!                  cycle in host/src, no unused dependency (cargo-machete,
//!                  installed when missing), `systemd-analyze verify` on the
//!                  shipped systemd units
//!   openapi        rewrite docs/openapi.json and docs/http-api.md from the
//!                  API's types and route table (crates/api); a test fails
//!                  until they are current
//!   bench          build-plugins, then every benchmark in release: the webhook
//!                  paths against a floor server in the same run (BENCHMARKS.md
//!                  tables headed by the machine and the command), actions
//!                  run with the limits as shipped and a 1,000-alert storm,
//!                  the host's memory with the bundled plugins, invocation
//!                  against a process spawn and host start, `/audit` filters
//!                  against a scan of the file, SSE fan-out, hot reload,
//!                  Rust/Python/JavaScript plugins side by side
//!   fuzz [--secs N] [TARGET..]
//!                  run each fuzz target (all by default) N seconds (60) with
//!                  libFuzzer on the stable toolchain (cargo-fuzz and g++,
//!                  installed when missing), growing fuzz/corpus/TARGET, then minimise
//!                  that corpus; `cargo xtask test` replays it. Fails on the
//!                  first failing input; prints exec/s and corpus size per
//!                  target (BENCHMARKS.md). CI (.ci/run) runs it briefly

mod architecture;
mod languages;
mod links;
mod module_cycles;
mod packaging;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

const GUEST_TARGET: &str = "wasm32-wasip2";
const GUEST_PROFILE: &str = "plugin";
/// Guest crates: the bundled plugins.
const GUEST_CRATES: &[&str] = &[
    "restart-container",
    "restart-unhealthy",
    "restart-by-label",
    "reload-config",
    "run-fix",
    "restart-service",
    "restart-if-still-failing",
    "call-runbook",
];
/// Guest crates the tests and benches need besides: the sandbox's fixtures.
const FIXTURE_CRATES: &[&str] = &[
    "misbehave",
    "wrong-world",
    "plugin-v0-1",
    "container-calls",
    "http-calls",
    "prom-state-calls",
];

/// Debian packages of the real components the end-to-end tests run, and a
/// command each provides.
const SYSTEM_PACKAGES: &[(&str, &str)] = &[
    ("podman", "podman"),
    ("runc", "runc"),
    ("busybox-static", "busybox"),
    ("prometheus-alertmanager", "prometheus-alertmanager"),
    ("prometheus", "prometheus"),
    ("chromium", "chromium"),
    ("chromium-driver", "chromedriver"),
    ("etcd-server", "etcd"),
    ("openssl", "openssl"),
    // The deployment tests: a Debian base image, and the compose recipe.
    ("mmdebstrap", "mmdebstrap"),
    ("podman-compose", "podman-compose"),
    ("etcd-client", "etcdctl"),
    // The Python SDK's and plugins' own unit tests.
    ("python3-pytest", "pytest-3"),
];

/// `systemd-analyze`, which the lint runs on the shipped units.
const LINT_PACKAGES: &[(&str, &str)] = &[("systemd", "systemd-analyze")];

type Result<T = ()> = std::result::Result<T, String>;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("build-plugins") => build_plugins(true).map(|_| ()),
        Some("run") => run(&args[1..]),
        Some("test") => test(&args[1..]),
        Some("lint") => lint(),
        Some("openapi") => openapi(),
        Some("fuzz") => fuzz(&args[1..]),
        Some("bench") => bench(),
        Some("image") => packaging::image(&args[1..]),
        Some("deb") => packaging::deb(),
        _ => Err(format!(
            "usage: cargo xtask <build-plugins|run|test|lint|openapi|bench|fuzz|image|deb>\n{}",
            include_str!("main.rs")
                .lines()
                .take_while(|l| l.starts_with("//!"))
                .map(|l| l.trim_start_matches("//!"))
                .collect::<Vec<_>>()
                .join("\n")
        )),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask is in the workspace")
        .to_owned()
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
}

fn cargo() -> Command {
    let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    command.current_dir(root());
    command
}

fn status(mut command: Command) -> Result {
    eprintln!("xtask: running {command:?}");
    let status = command
        .status()
        .map_err(|e| format!("cannot run {command:?}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{command:?} failed: {status}"))
    }
}

fn ensure_guest_target() -> Result {
    let output = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map_err(|e| format!("rustup is needed to add the {GUEST_TARGET} target: {e}"))?;
    if String::from_utf8_lossy(&output.stdout)
        .lines()
        .any(|l| l.trim() == GUEST_TARGET)
    {
        return Ok(());
    }
    let mut add = Command::new("rustup");
    add.args(["target", "add", GUEST_TARGET]);
    status(add)
}

/// Builds the guests (the test fixtures, in Rust, Python and JavaScript, too
/// when `fixtures`); returns the staged plugins directory.
fn build_plugins(fixtures: bool) -> Result<PathBuf> {
    ensure_guest_target()?;
    let mut build = cargo();
    build.args(["build", "--target", GUEST_TARGET, "--profile", GUEST_PROFILE]);
    let fixture_crates = if fixtures { FIXTURE_CRATES } else { &[] };
    for krate in GUEST_CRATES.iter().chain(fixture_crates) {
        build.args(["-p", krate]);
    }
    status(build)?;

    let built = target_dir().join(GUEST_TARGET).join(GUEST_PROFILE);
    languages::build(&built, fixtures)?;
    let staged = target_dir().join("plugins.d");
    std::fs::create_dir_all(&staged).map_err(|e| format!("{}: {e}", staged.display()))?;
    let plugins = root().join("plugins");
    let mut entries: Vec<_> = std::fs::read_dir(&plugins)
        .map_err(|e| format!("{}: {e}", plugins.display()))?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    entries.sort();
    for crate_dir in entries {
        let wasm = crate_dir
            .file_name()
            .map(|n| n.to_string_lossy().replace('-', "_") + ".wasm")
            .unwrap_or_default();
        copy(&built.join(&wasm), &staged.join(&wasm))?;
        for manifest in std::fs::read_dir(&crate_dir).map_err(|e| e.to_string())? {
            let path = manifest.map_err(|e| e.to_string())?.path();
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if name.ends_with(".toml") && name != "Cargo.toml" {
                copy(&path, &staged.join(&name))?;
            }
        }
    }
    eprintln!("xtask: bundled plugins staged in {}", staged.display());
    Ok(staged)
}

fn copy(from: &Path, to: &Path) -> Result {
    // Write-then-rename: a host watching the directory never sees half a file.
    let tmp = to.with_extension("tmp-xtask");
    std::fs::copy(from, &tmp).map_err(|e| format!("copy {} -> {}: {e}", from.display(), tmp.display()))?;
    std::fs::rename(&tmp, to).map_err(|e| format!("rename {} -> {}: {e}", tmp.display(), to.display()))
}

fn run(args: &[String]) -> Result {
    // What serving needs, and no more: the bundled plugins (not the Python
    // and JavaScript test fixtures) and the `autoheal` binary (not the tools
    // beside it, which `cargo build` makes). The two at once, though both
    // want the CPU: pip and npm downloads overlap the host's build, which
    // saved 12 s of a first run (BENCHMARKS.md, "First build").
    // The plugins' builds yield the cores to the host's: the host's build is
    // the longer chain (cranelift → wasmtime → autoheal), and its last
    // crates compile one at a time, leaving a core that the plugins then
    // take (BENCHMARKS.md, "First build").
    let plugins = std::thread::spawn(|| {
        yield_cores_to_others();
        build_plugins(false)
    });
    let mut build = cargo();
    build.args(["build", "-p", "autoheal", "--bin", "autoheal"]);
    let host = status(build);
    let staged = plugins
        .join()
        .map_err(|_| "building the plugins panicked".to_owned())??;
    host?;
    let data = target_dir().join("autoheal-data");
    let mut serve = cargo();
    serve.args(["run", "-p", "autoheal", "--", "serve", "--plugins-dir"]);
    serve.arg(&staged);
    serve.arg("--audit-path").arg(data.join("audit.jsonl"));
    serve.arg("--cache-dir").arg(data.join("cache"));
    // `cargo xtask run -- --listen ..` (as the README writes it) hands us the `--`.
    serve.args(args.strip_prefix(&["--".to_owned()][..]).unwrap_or(args));
    status(serve)
}

/// Lowers this thread's scheduling priority (nice 10), which the commands it
/// starts inherit: they run on what CPU the rest of the build leaves. Best
/// effort — a build that cannot lower it only runs as before.
fn yield_cores_to_others() {
    unsafe extern "C" {
        fn setpriority(which: i32, who: u32, priority: i32) -> i32;
    }
    const PRIO_PROCESS: i32 = 0;
    // SAFETY: setpriority takes plain integers and touches no memory of
    // ours; on Linux `who` 0 with PRIO_PROCESS is the calling thread only.
    unsafe {
        setpriority(PRIO_PROCESS, 0, 10);
    }
}

fn on_path(command: &str) -> bool {
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(command).is_file()))
        .unwrap_or(false)
}

/// libFuzzer is C++, built by `libfuzzer-sys`' build script: the fuzz
/// targets need a C++ compiler, which a fresh machine may lack.
const FUZZ_PACKAGES: &[(&str, &str)] = &[("g++", "c++")];

/// Installs the missing `packages` (Debian package, a command it provides)
/// with apt-get (as root), or says how; `purpose` says what needs them.
fn ensure_system_packages(packages: &[(&str, &str)], purpose: &str) -> Result {
    let missing: Vec<&str> = packages
        .iter()
        .filter(|(_, command)| !on_path(command))
        .map(|(package, _)| *package)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    if !is_root {
        return Err(format!(
            "{purpose} need {}: run `sudo apt-get install -y {}` first",
            missing.join(", "),
            missing.join(" ")
        ));
    }
    let mut update = Command::new("apt-get");
    update.arg("update");
    status(update)?;
    let mut install = Command::new("apt-get");
    install.args(["install", "-y"]).args(&missing);
    install.env("DEBIAN_FRONTEND", "noninteractive");
    status(install)
}

fn test(args: &[String]) -> Result {
    ensure_system_packages(SYSTEM_PACKAGES, "the end-to-end tests")?;
    build_plugins(true)?;
    languages::unit_tests()?;
    oidc_provider()?;
    let mut test = cargo();
    test.args(["test", "--workspace"]).args(args);
    status(test)
}

/// The OpenID provider the sign-in tests run (`host/tests/all/oidc.rs`):
/// `oidc-provider` at the version `host/tests/oidc/package-lock.json` pins,
/// installed with `npm ci` into `target/test-tools/oidc-provider`, where the
/// tests look for it (they install it themselves when it is missing or the
/// lock changed; here it is done once, before the tests compete for the CPU).
fn oidc_provider() -> Result {
    let source = root().join("host/tests/oidc");
    let dir = target_dir().join("test-tools/oidc-provider");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let lock =
        std::fs::read(source.join("package-lock.json")).map_err(|e| format!("the provider's lock: {e}"))?;
    let installed = dir.join(".installed-lock.json");
    if std::fs::read(&installed).ok().as_deref() == Some(lock.as_slice()) {
        return Ok(());
    }
    for file in ["package.json", "package-lock.json"] {
        std::fs::copy(source.join(file), dir.join(file)).map_err(|e| format!("copy {file}: {e}"))?;
    }
    let mut npm = Command::new("npm");
    npm.args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(&dir);
    status(npm)?;
    std::fs::write(&installed, &lock).map_err(|e| format!("{}: {e}", installed.display()))
}

/// The committed API description and reference page, regenerated by the
/// test that checks them (one code path writes and checks).
fn openapi() -> Result {
    let mut bless = cargo();
    bless
        .args(["test", "-p", "autoheal-api", "--test", "generated"])
        .env("AUTOHEAL_BLESS", "1");
    status(bless)
}

fn lint() -> Result {
    // First: it takes milliseconds, and needs nothing built.
    eprintln!("xtask: checking the documentation's links");
    links::check(&root())?;
    let mut fmt = cargo();
    fmt.args(["fmt", "--all", "--", "--check"]);
    status(fmt)?;
    let mut host = cargo();
    host.args(["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]);
    status(host)?;
    let mut guests = cargo();
    guests.args(["clippy", "--target", GUEST_TARGET]);
    for krate in GUEST_CRATES {
        guests.args(["-p", krate]);
    }
    guests.args(["--", "-D", "warnings"]);
    status(guests)?;
    // Every doc link resolves (the host side's crates, as `cargo doc` builds them).
    let mut doc = cargo();
    doc.args(["doc", "--no-deps", "--quiet"])
        .env("RUSTDOCFLAGS", "-D warnings");
    status(doc)?;
    module_cycles_absent()?;
    ensure_system_packages(LINT_PACKAGES, "the lint's unit checks")?;
    packaging::verify_units()?;
    architecture_true()?;
    unused_dependencies_absent()
}

/// ARCHITECTURE.md names every module and draws only real dependencies.
fn architecture_true() -> Result {
    let problems = architecture::check(&root())?;
    if problems.is_empty() {
        return Ok(());
    }
    Err(format!(
        "ARCHITECTURE.md is out of date:\n  {}",
        problems.join("\n  ")
    ))
}

/// ARCHITECTURE.md's promise that the host's modules form layers, not loops.
fn module_cycles_absent() -> Result {
    let graph = module_cycles::graph(&root().join("host/src"))?;
    let cycles = module_cycles::cycles(&graph);
    if cycles.is_empty() {
        return Ok(());
    }
    Err(format!(
        "host/src: modules that use each other in a loop (move what they share into one of them, or a module below both):\n{}",
        module_cycles::describe(&graph, &cycles)
    ))
}

/// A tool `cargo install` put in `$CARGO_HOME/bin` (or `~/.cargo/bin`),
/// which need not be on PATH; else its bare name, for PATH to find.
fn installed_tool(name: &str) -> PathBuf {
    std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo")))
        .map(|home| home.join("bin").join(name))
        .filter(|path| path.is_file())
        .unwrap_or_else(|| PathBuf::from(name))
}

/// No crate declares a dependency it does not use (cargo-machete, installed
/// pinned when missing; it reads the sources, so it needs no build).
fn unused_dependencies_absent() -> Result {
    let has_machete = Command::new(installed_tool("cargo-machete"))
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_machete {
        let mut install = cargo();
        install.args(["install", "cargo-machete", "--locked", "--version", "0.9.2"]);
        status(install)?;
    }
    // Run as itself, on the root: as `cargo machete` from cargo's own
    // binary (which xtask runs) it reads its subcommand name as a path.
    let mut machete = Command::new(installed_tool("cargo-machete"));
    machete.arg(root());
    status(machete)
}

/// The fuzz targets: one file each in `fuzz/fuzz_targets/`, named as the
/// binaries of `fuzz/Cargo.toml`.
fn fuzz_targets() -> Result<Vec<String>> {
    let dir = root().join("fuzz/fuzz_targets");
    let entries = std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut names: Vec<String> = entries
        .filter_map(|entry| {
            entry
                .ok()?
                .file_name()
                .to_str()?
                .strip_suffix(".rs")
                .map(str::to_owned)
        })
        .collect();
    names.sort();
    Ok(names)
}

fn fuzz(args: &[String]) -> Result {
    let known = fuzz_targets()?;
    let mut secs = 60u64;
    let mut targets = Vec::new();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--secs" => {
                secs = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .ok_or("--secs takes a number of seconds")?;
            }
            name if known.iter().any(|k| k == name) => targets.push(name.to_owned()),
            other => {
                return Err(format!(
                    "unknown fuzz target {other:?}; the targets are {}",
                    known.join(", ")
                ));
            }
        }
    }
    if targets.is_empty() {
        targets = known;
    }
    ensure_system_packages(FUZZ_PACKAGES, "the fuzz targets")?;
    let has_cargo_fuzz = cargo()
        .args(["fuzz", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_cargo_fuzz {
        let mut install = cargo();
        install.args(["install", "cargo-fuzz", "--locked", "--version", "0.13.2"]);
        status(install)?;
    }
    // `-s none`: no sanitizer, so no nightly-only `-Z` flags; the targets
    // are safe Rust, where the properties they assert are the oracle. Built
    // once into a target directory of their own (instrumented code must not
    // mix with the normal build), then each binary is run directly.
    let started = std::time::Instant::now();
    let fuzz_target_dir = target_dir().join("fuzz");
    let mut build = cargo();
    build.args([
        "fuzz",
        "build",
        "-s",
        "none",
        "-O",
        "--features",
        "libfuzzer",
        "--target-dir",
    ]);
    build.arg(&fuzz_target_dir);
    status(build)?;
    let built = started.elapsed();
    let binaries = fuzz_target_dir.join("x86_64-unknown-linux-gnu/release");
    // One row per target for BENCHMARKS.md: a harness that got slower shows
    // as fewer executions a second, not as a failure.
    let mut rows = Vec::new();
    for target in &targets {
        let corpus = root().join("fuzz/corpus").join(target);
        let artifacts = root().join("fuzz/artifacts").join(target);
        std::fs::create_dir_all(&artifacts).map_err(|e| format!("{}: {e}", artifacts.display()))?;
        let mut run = Command::new(binaries.join(target));
        run.arg(&corpus).args([
            format!("-artifact_prefix={}/", artifacts.display()),
            format!("-max_total_time={secs}"),
            "-print_final_stats=1".to_owned(),
            "-max_len=65536".to_owned(),
        ]);
        let stats = fuzz_run(run).map_err(|e| {
            format!(
                "{e}\nthe crashing input is in {}: fix the bug, then copy the input to \
                 fuzz/regressions/{target}/ so that the suite replays it",
                artifacts.display()
            )
        })?;
        // Keep the smallest set of inputs that covers what the whole did.
        let old = corpus.with_extension("old");
        std::fs::rename(&corpus, &old).map_err(|e| format!("{}: {e}", corpus.display()))?;
        std::fs::create_dir(&corpus).map_err(|e| format!("{}: {e}", corpus.display()))?;
        let mut merge = Command::new(binaries.join(target));
        merge
            .args(["-merge=1", "-set_cover_merge=1"])
            .arg(&corpus)
            .arg(&old);
        status(merge)?;
        std::fs::remove_dir_all(&old).map_err(|e| format!("{}: {e}", old.display()))?;
        let files = std::fs::read_dir(&corpus)
            .map_err(|e| format!("{}: {e}", corpus.display()))?
            .count();
        rows.push(format!(
            "| {target} | {} | {} | {files} |",
            stats.exec_per_sec, stats.runs
        ));
    }
    eprintln!(
        "\n`cargo xtask fuzz --secs {secs}`: build {:.0} s, build and runs {:.0} s\n\n\
         | target | exec/s | runs | corpus (files, minimised) |\n|---|---:|---:|---:|\n{}",
        built.as_secs_f64(),
        started.elapsed().as_secs_f64(),
        rows.join("\n")
    );
    Ok(())
}

/// What libFuzzer's `-print_final_stats=1` said of a run.
struct FuzzStats {
    exec_per_sec: String,
    runs: String,
}

/// Runs a fuzzer, its output passed on as it comes, and reads its final
/// stats from it; an error if it found a failing input (or did not run).
fn fuzz_run(mut command: Command) -> Result<FuzzStats> {
    use std::io::BufRead;
    eprintln!("xtask: running {command:?}");
    let mut child = command
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {command:?}: {e}"))?;
    let mut stats = FuzzStats {
        exec_per_sec: "?".into(),
        runs: "?".into(),
    };
    let stderr = child.stderr.take().expect("stderr is piped");
    // libFuzzer writes text; a crash report may quote the input's bytes.
    for line in std::io::BufReader::new(stderr).split(b'\n') {
        let line = line.map_err(|e| format!("reading {command:?}: {e}"))?;
        let line = String::from_utf8_lossy(&line);
        eprintln!("{line}");
        let stat = |name: &str| Some(line.strip_prefix(name)?.trim().to_owned());
        if let Some(value) = stat("stat::average_exec_per_sec:") {
            stats.exec_per_sec = value;
        } else if let Some(value) = stat("stat::number_of_executed_units:") {
            stats.runs = value;
        }
    }
    let status = child.wait().map_err(|e| format!("{command:?}: {e}"))?;
    if status.success() {
        Ok(stats)
    } else {
        Err(format!("{command:?} failed: {status}"))
    }
}

fn bench() -> Result {
    build_plugins(true)?;
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            let kb: u64 = m
                .lines()
                .find(|l| l.starts_with("MemTotal:"))?
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()?;
            Some(format!("{:.0} GiB", kb as f64 / 1024.0 / 1024.0))
        })
        .unwrap_or_else(|| "unknown memory".to_owned());
    let date = Command::new("date")
        .arg("+%Y-%m-%d")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    println!(
        "{date}, {cores} cores, {memory}, release; `cargo xtask bench`; load generator on the same cores\n"
    );
    // The webhook paths against their floor, invocation against a process
    // spawn and host start, `/audit` against the scan it replaced, SSE
    // fan-out to 1,000 subscribers (the release binary, its RSS idle and at
    // peak), hot reload, and plugins in Rust, Python and JavaScript side by
    // side, the operator's routes while plugins spin; each also runs alone
    // (BENCHMARKS.md).
    for bench in [
        "load",
        "actions",
        "memory",
        "invoke",
        "busy",
        "audit",
        "sse",
        "reload",
        "languages",
        "claims",
    ] {
        println!("\n## {bench}\n");
        let mut run = cargo();
        run.args(["bench", "-p", "autoheal", "--bench", bench]);
        status(run)?;
    }
    Ok(())
}
