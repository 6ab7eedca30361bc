//! Containment: plugins that compute to their deadline do not stall the
//! host; a component cannot take more memories or pool slots than a plugin
//! may have; and the compile cache runs only artifacts this host wrote for
//! that very component; a component that takes too long or too much
//! memory to compile is refused without the host paying for it.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::real::{ServedHost, http};
use crate::support::*;
use autoheal::config::RawConfig;

async fn call(host: &ServedHost, method: &'static str, path: &str, body: &str) -> (u16, Value, Duration) {
    let (url, path, body) = (host.url.clone(), path.to_owned(), body.to_owned());
    tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let (status, reply) = http(&url, method, &path, &body).unwrap();
        (status, reply, started.elapsed())
    })
    .await
    .unwrap()
}

fn spinning(name: &str) -> String {
    manifest(
        name,
        "misbehave.wasm",
        &[name],
        &["crm-api"],
        "[limits]\ntimeout_ms = 8000\nstop_timeout_sec = 0\n[config]\nmode = \"loop\"",
    )
}

/// With every invocation slot held by a plugin computing to its 8 s
/// deadline, the server still answers at once, and the kill switch flips
/// and holds for the next action. (Before plugins yielded and had threads of
/// their own, two spinning plugins held `GET /` for 9 s.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spinning_plugins_do_not_stall_the_server_or_the_kill_switch() {
    let plugins = [
        ("a.toml", spinning("SpinA")),
        ("b.toml", spinning("SpinB")),
        ("crm.toml", bundled_manifest()),
    ];
    let host = ServedHost::start_staged(
        0,
        &["restart_container", "misbehave"],
        &plugins,
        Arc::new(autoheal_containers::NoEngine),
        |c| {
            c.sandbox.max_concurrent = 2;
            real(c);
        },
    )
    .await;
    host.post_alerts(json!([opted_in("SpinA"), opted_in("SpinB")]))
        .await;
    // Both slots are computing.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let spinning_since = Instant::now();

    // Generous bounds: each is a liveness check, not a benchmark (that is
    // BENCHMARKS.md's "A busy plugin"); a stalled server took 8 s and more.
    let prompt = Duration::from_secs(2);
    let (status, _, took) = call(&host, "GET", "/", "").await;
    assert_eq!(status, 200);
    assert!(took < prompt, "GET / took {took:?} while plugins spin");
    let (status, _, took) = call(&host, "GET", "/metrics", "").await;
    assert_eq!(status, 200);
    assert!(took < prompt, "GET /metrics took {took:?}");

    let (status, reply, took) = call(
        &host,
        "POST",
        "/admin/enabled",
        r#"{"enabled": false, "by": "test"}"#,
    )
    .await;
    assert_eq!(status, 200, "{reply}");
    assert!(took < prompt, "the kill switch took {took:?}");

    // The next action is decided under the switch just flipped.
    let reply = host.post_alerts(json!([opted_in("TcpEndpointDownFast")])).await;
    let decision = &reply["decisions"][0];
    assert_eq!(decision["decision"], "act", "{reply}");
    assert_eq!(decision["mode"], "dry_run", "{reply}");
    assert!(
        spinning_since.elapsed() < Duration::from_secs(6),
        "all of this ran while the plugins were still spinning"
    );

    // The spinners are stopped at their deadline and said so.
    let failed = host.wait_for("action_fail", 2, Duration::from_secs(30)).await;
    assert!(failed.iter().all(|e| e["reason"] == "timeout"), "{failed:#?}");
    let started = host.audit("action_started").await;
    let crm = started
        .iter()
        .find(|e| e["plugin"] == "restart-crm-api")
        .expect("the crm action started");
    assert_eq!(crm["dry_run_reason"], "disabled", "{crm}");
}

/// A component of `instances` instances of one core module that defines
/// `memories` one-page linear memories, and nothing else.
fn component_with_memories(memories: u32, instances: u32) -> Vec<u8> {
    use wasm_encoder::{
        Component, InstanceSection, MemorySection, MemoryType, Module, ModuleArg, ModuleSection,
    };
    let mut section = MemorySection::new();
    for _ in 0..memories {
        section.memory(MemoryType {
            minimum: 1,
            maximum: None,
            memory64: false,
            shared: false,
            page_size_log2: None,
        });
    }
    let mut module = Module::new();
    module.section(&section);
    let mut core_instances = InstanceSection::new();
    for _ in 0..instances {
        core_instances.instantiate(0, Vec::<(&str, ModuleArg)>::new());
    }
    let mut component = Component::new();
    component.section(&ModuleSection(&module));
    component.section(&core_instances);
    component.finish()
}

/// A component with more memories than a plugin may have, and one that
/// would take pool slots by instantiating a module many times, are refused
/// at load with a reason that says so; the well-behaved plugin beside them
/// loads and runs.
#[tokio::test]
async fn components_with_too_many_memories_are_refused_and_the_others_run() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = stage_plugins(
        dir.path(),
        &["misbehave"],
        &[
            ("ok.toml", fixture("Healthy", "ok", "", "")),
            ("many.toml", manifest("many", "many.wasm", &["Many"], &[], "")),
            ("grab.toml", manifest("grab", "grab.wasm", &["Grab"], &[], "")),
        ],
    );
    std::fs::write(plugins.join("many.wasm"), component_with_memories(60, 1)).unwrap();
    std::fs::write(plugins.join("grab.wasm"), component_with_memories(1, 40)).unwrap();
    let h = harness_in(dir).await;

    let rejected = h.events(&["plugin_rejected"]);
    let reason = |file: &str| {
        rejected
            .iter()
            .find(|e| e["file"] == file)
            .unwrap_or_else(|| panic!("{file} not rejected: {rejected:#?}"))["reason"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    // One module of 60 memories: refused as the pool's per-module bound is
    // checked while it compiles.
    let many = reason("many.toml");
    assert!(
        many.contains("component needs more than a plugin may have")
            && many.contains("defined memories count of 60 exceeds the per-instance limit of 4"),
        "{many}"
    );
    // One module instantiated 40 times: 40 core instances and 40 memories.
    let grab = reason("grab.toml");
    assert!(
        grab.contains("component needs more than a plugin may have")
            && grab.contains("40 core module instances"),
        "{grab}"
    );
    h.process(json!([opted_in("Healthy")])).await;
    assert_eq!(h.only("action_dry_run")["output"], "ok");
}

async fn harness_in(dir: tempfile::TempDir) -> Harness {
    harness_configured(dir, |_| {}).await
}

async fn harness_configured(dir: tempfile::TempDir, configure: impl FnOnce(&mut RawConfig)) -> Harness {
    // `harness` stages its own plugins; this one keeps what the test staged.
    let fake = Arc::new(autoheal_containers::FakeRuntime::new());
    fake.add_running("crm-api", Duration::from_secs(3600));
    Harness::start(dir, fake, configure).await
}

/// A component whose one core module has `functions` functions of 7.5 MB
/// each (wasm allows 7,654,321 bytes), where a thousand values are live at
/// once, over and over: small to send, long and large to compile (~7 s and
/// ~470 MiB for four, in a debug build).
fn component_slow_to_compile(functions: u32) -> Vec<u8> {
    use wasm_encoder::{
        CodeSection, Component, Function, FunctionSection, Module, ModuleSection, TypeSection, ValType,
    };
    let mut types = TypeSection::new();
    types.ty().function([], []);
    let mut declared = FunctionSection::new();
    let mut code = CodeSection::new();
    for _ in 0..functions {
        declared.function(0);
        let mut body = Function::new([(2, ValType::I32)]);
        let mut sink = body.instructions();
        for _ in 0..2_500 {
            for _ in 0..1_000 {
                sink.local_get(0);
            }
            for _ in 0..999 {
                sink.i32_add();
            }
            sink.local_set(1);
        }
        sink.end();
        code.function(&body);
    }
    let mut module = Module::new();
    module.section(&types).section(&declared).section(&code);
    let mut component = Component::new();
    component.section(&ModuleSection(&module));
    component.finish()
}

/// Loads a component that is expensive to compile under `configure`'s
/// compile bounds, beside a well-behaved plugin; returns the reason it was
/// rejected, after checking that the other plugin loaded and runs.
async fn reject_expensive_compile(configure: impl FnOnce(&mut RawConfig) + Send + 'static) -> String {
    let dir = tempfile::tempdir().unwrap();
    let plugins = stage_plugins(
        dir.path(),
        &["misbehave"],
        &[
            ("ok.toml", fixture("Healthy", "ok", "", "")),
            ("heavy.toml", manifest("heavy", "heavy.wasm", &["Heavy"], &[], "")),
        ],
    );
    std::fs::write(plugins.join("heavy.wasm"), component_slow_to_compile(4)).unwrap();
    let started = Instant::now();
    let h = harness_configured(dir, configure).await;
    let took = started.elapsed();
    let rejected = h.events(&["plugin_rejected"]);
    let heavy = rejected
        .iter()
        .find(|e| e["file"] == "heavy.toml")
        .unwrap_or_else(|| panic!("heavy.toml not rejected: {rejected:#?}"));
    eprintln!("rejected after {took:?}: {heavy}");
    h.process(json!([opted_in("Healthy")])).await;
    assert_eq!(h.only("action_dry_run")["output"], "ok");
    heavy["reason"].as_str().unwrap().to_owned()
}

/// A component that needs more memory to compile than `compile_memory_mb`
/// is refused, saying so; the compiler, not the host, ran out.
#[tokio::test]
async fn a_component_that_needs_too_much_memory_to_compile_is_refused() {
    // A cache of its own: had the heavy component ever been compiled here,
    // the time bound's test must not find it cached.
    let cache = tempfile::tempdir().unwrap();
    let cache_dir = cache.path().join("cache");
    let reason = reject_expensive_compile(move |c| {
        c.sandbox.compile_memory_mb = 256;
        c.cache_dir = cache_dir;
    })
    .await;
    assert!(
        reason.contains("component needs more than a plugin may have")
            && reason.contains("compiling it needed more than 256 MiB (sandbox.compile_memory_mb)"),
        "{reason}"
    );
}

/// A component that takes longer to compile than `compile_timeout_ms` is
/// refused once that time is up, saying so.
#[tokio::test]
async fn a_component_that_takes_too_long_to_compile_is_refused_in_time() {
    let started = Instant::now();
    // The tests' shared cache, where the well-behaved plugin is compiled
    // already (or compiles well within the bound): only the heavy one meets it.
    let reason = reject_expensive_compile(|c| c.sandbox.compile_timeout_ms = 2000).await;
    assert!(
        reason.contains("compiling it took longer than 2 s (sandbox.compile_timeout_ms)"),
        "{reason}"
    );
    // Killed at the bound, not when the compile would have finished.
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
}

/// A `compiler` that is not autoheal's compiler is a clear error, not an
/// artifact: its output is never deserialised.
#[tokio::test]
async fn a_program_that_is_not_the_compiler_is_never_trusted() {
    let dir = tempfile::tempdir().unwrap();
    stage_plugins(
        dir.path(),
        &["misbehave"],
        &[("ok.toml", fixture("Healthy", "ok", "", ""))],
    );
    let cache = tempfile::tempdir().unwrap();
    // A program that echoes the component back and succeeds: no header.
    let impostor = cache.path().join("impostor");
    std::fs::write(&impostor, "#!/bin/sh\nexec cat\n").unwrap();
    std::fs::set_permissions(&impostor, std::fs::Permissions::from_mode(0o755)).unwrap();
    let h = harness_configured(dir, |c| {
        c.sandbox.compiler = Some(impostor.clone());
        c.cache_dir = cache.path().join("cache");
    })
    .await;
    let rejected = h.only("plugin_rejected");
    let reason = rejected["reason"].as_str().unwrap();
    assert!(
        reason.contains("the component compiler failed") && reason.contains("is not autoheal's compiler"),
        "{reason}"
    );
}

/// The artifact file of each plugin, by plugin name, from its
/// `plugin_loaded` event's component hash.
fn artifacts(h: &Harness, cache: &Path) -> Vec<(String, PathBuf)> {
    let names: Vec<String> = std::fs::read_dir(cache)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    let mut found = Vec::new();
    for loaded in h.events(&["plugin_loaded"]) {
        let hash = loaded["component_hash"].as_str().unwrap();
        let plugin = loaded["plugin"].as_str().unwrap().to_owned();
        if found.iter().any(|(p, _)| *p == plugin) {
            continue;
        }
        let file = names
            .iter()
            .find(|n| n.starts_with(hash) && n.ends_with(".cwasm"))
            .unwrap_or_else(|| panic!("no artifact for {plugin} in {names:?}"));
        found.push((plugin, cache.join(file)));
    }
    found
}

/// The latest `plugin_loaded` of `plugin`.
fn loaded(h: &Harness, plugin: &str) -> Value {
    h.events(&["plugin_loaded"])
        .into_iter()
        .rev()
        .find(|e| e["plugin"] == plugin)
        .unwrap()
}

/// Swapped, edited, foreign and old-format artifacts are each refused,
/// recompiled and recorded; the plugin runs its own code every time.
#[tokio::test]
async fn the_compile_cache_runs_only_what_this_host_wrote_for_that_component() {
    let private_cache = |c: &mut autoheal::config::RawConfig| {
        c.cache_dir = c.audit_path.with_file_name("cache");
        c.cache_key_file = c.audit_path.with_file_name("keys/cache.key");
    };
    let plugins = [("a.toml", fixture("A", "ok", "", "")), crm_plugin()];
    let h = harness(&plugins, private_cache).await;
    let cache = h.dir.path().join("cache");
    let key = h.dir.path().join("keys/cache.key");
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        std::fs::metadata(&cache).unwrap().permissions().mode() & 0o777,
        0o700
    );
    let files = artifacts(&h, &cache);
    let file_of = |plugin: &str| files.iter().find(|(p, _)| p == plugin).unwrap().1.clone();
    let (a, crm) = (file_of("A"), file_of("restart-crm-api"));
    assert_eq!(std::fs::metadata(&a).unwrap().permissions().mode() & 0o777, 0o600);

    let runs_its_own_code = |h: &Harness| {
        let done = h.events(&["action_dry_run"]);
        assert_eq!(done.len(), 2, "{done:#?}");
        let output = |plugin: &str| done.iter().find(|e| e["plugin"] == plugin).unwrap()["output"].clone();
        assert_eq!(output("A"), "ok", "A ran its own code");
        assert_eq!(
            output("restart-crm-api"),
            "restarted crm-api",
            "the crm plugin ran its own code"
        );
    };

    // Swapped: A's artifact under the crm plugin's name.
    std::fs::copy(&a, &crm).unwrap();
    let h = h.restart(private_cache).await;
    assert_eq!(loaded(&h, "A")["from_cache"], true);
    let swapped = loaded(&h, "restart-crm-api");
    assert_eq!(swapped["from_cache"], false, "{swapped}");
    assert!(
        swapped["cache_rejected"]
            .as_str()
            .unwrap()
            .contains("MAC does not match"),
        "{swapped}"
    );
    h.process(json!([opted_in("A"), opted_in("TcpEndpointDownFast")]))
        .await;
    runs_its_own_code(&h);

    // Edited: one byte in the middle of A's code.
    let mut bytes = std::fs::read(&a).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&a, bytes).unwrap();
    let h = h.restart(private_cache).await;
    let edited = loaded(&h, "A");
    assert_eq!(edited["from_cache"], false, "{edited}");
    assert!(
        edited["cache_rejected"].as_str().unwrap().contains("MAC"),
        "{edited}"
    );
    // The recompiled artifact replaced it.
    let h = h.restart(private_cache).await;
    assert_eq!(loaded(&h, "A")["from_cache"], true);
    assert!(loaded(&h, "A").get("cache_rejected").is_none());

    // Old format: a bare SHA-256 of the artifact, then the artifact.
    // (This host's header is 8 bytes of magic and a 32-byte MAC.)
    let artifact = std::fs::read(&a).unwrap()[40..].to_vec();
    let mut old = sha2_of(&artifact);
    old.extend_from_slice(&artifact);
    std::fs::write(&a, old).unwrap();
    let h = h.restart(private_cache).await;
    let old_format = loaded(&h, "A");
    assert!(
        old_format["cache_rejected"]
            .as_str()
            .unwrap()
            .contains("not in this host's artifact format"),
        "{old_format}"
    );

    // Foreign: written by a host with another key.
    let h = h
        .restart(|c| {
            private_cache(c);
            c.cache_key_file = c.audit_path.with_file_name("other.key");
        })
        .await;
    for plugin in ["A", "restart-crm-api"] {
        let foreign = loaded(&h, plugin);
        assert_eq!(foreign["from_cache"], false, "{foreign}");
        assert!(
            foreign["cache_rejected"].as_str().unwrap().contains("MAC"),
            "{foreign}"
        );
    }
    h.process(json!([opted_in("A"), opted_in("TcpEndpointDownFast")]))
        .await;
    runs_its_own_code(&h);
}

fn sha2_of(bytes: &[u8]) -> Vec<u8> {
    hex_decode(&autoheal_sandbox::sha256_hex(bytes))
}

fn hex_decode(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

/// A key file inside the cache directory is refused at start, naming the key.
#[test]
fn a_key_inside_the_cache_directory_is_refused() {
    let config = autoheal::config::RawConfig {
        cache_dir: "data/cache".into(),
        cache_key_file: "data/cache/key".into(),
        ..Default::default()
    };
    let error = config.validate().unwrap_err().to_string();
    assert!(error.contains("cache_key_file"), "{error}");
    assert!(error.contains("inside cache_dir"), "{error}");
}
