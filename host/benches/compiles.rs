//! Compiles at once, recorded in BENCHMARKS.md: a real `autoheal serve`
//! process with an empty plugins directory and compile cache; three
//! Python plugins are dropped in (each its own bytes, so each compiles),
//! then, once the first of them compiles, a Rust one beside them.
//!
//! Measured: how long the Rust plugin takes from its manifest's rename to
//! being listed in `GET /` `plugins`, how long the three Python ones take,
//! the host's peak resident memory (`VmHWM`), and the compile children's
//! (`autoheal __compile-component`): the largest `VmHWM` of one, and the
//! most resident together at once (sampled every 20 ms).
//!
//! Run: `cargo xtask build-plugins && cargo bench -p autoheal --bench compiles`
//! (or, in a debug build, `cargo test -p autoheal --bench compiles`).

#[allow(dead_code)] // each bench uses some of the shared helpers
mod common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn guest(name: &str) -> Vec<u8> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| common::root().join("target"));
    let path = target.join(format!("wasm32-wasip2/plugin/{name}.wasm"));
    std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; run `cargo xtask build-plugins`", path.display()))
}

fn put(dir: &Path, name: &str, bytes: &[u8]) {
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, dir.join(name)).unwrap();
}

fn manifest(name: &str, component: &str) -> String {
    format!(
        "name = {name:?}\nversion = \"1.0.0\"\ncomponent = {component:?}\n[match]\nalertnames = [{name:?}]\n\
         [capabilities]\ncontainers = [\"crm-api\"]\n[config]\ncontainer_label = \"container\"\n"
    )
}

/// `GET /`'s loaded plugin names and compiling ones.
fn status(addr: &str) -> (Vec<String>, Vec<String>) {
    let Ok(mut stream) = std::net::TcpStream::connect(addr) else {
        return (Vec::new(), Vec::new());
    };
    let _ = write!(stream, "GET / HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    let value: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    let names = |key: &str, field: &str| {
        value[key]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|p| p[field].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    (names("plugins", "name"), names("plugin_compiling", "name"))
}

/// The pids whose parent is `pid`.
fn children(pid: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|child| {
            let stat = std::fs::read_to_string(format!("/proc/{child}/stat")).unwrap_or_default();
            // After the parenthesised command: state, then the parent's pid.
            stat.rsplit_once(") ")
                .and_then(|(_, rest)| rest.split(' ').nth(1)?.parse::<u32>().ok())
                == Some(pid)
        })
        .collect()
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let (mut host, addr) = common::serve_process(dir.path(), |_| {});
    let pid = host.id();
    let plugins = dir.path().join("plugins");
    let python = guest("restart_unhealthy_py");
    for n in 1..=3 {
        std::fs::write(
            plugins.join(format!("py{n}.wasm")),
            common::with_tag(python.clone(), &format!("py{n}")),
        )
        .unwrap();
    }
    std::fs::write(
        plugins.join("rs.wasm"),
        common::with_tag(common::component(), "rs"),
    )
    .unwrap();

    let began = Instant::now();
    for n in 1..=3 {
        put(
            &plugins,
            &format!("py{n}.toml"),
            manifest(&format!("py{n}"), &format!("py{n}.wasm")).as_bytes(),
        );
    }
    let mut child_peak_hwm = 0u64;
    let mut children_rss_at_once = 0u64;
    let sample = |child_peak_hwm: &mut u64, at_once: &mut u64| {
        let mut together = 0;
        for child in children(pid) {
            let pid = child.to_string();
            *child_peak_hwm = (*child_peak_hwm).max(common::proc_status_kib(&pid, "VmHWM:"));
            together += common::proc_status_kib(&pid, "VmRSS:");
        }
        *at_once = (*at_once).max(together);
    };
    // The Rust plugin once a Python one compiles.
    while status(&addr).1.is_empty() {
        assert!(began.elapsed() < Duration::from_secs(120), "no compile began");
        std::thread::sleep(Duration::from_millis(20));
    }
    let dropped = Instant::now();
    put(&plugins, "rs.toml", manifest("rs", "rs.wasm").as_bytes());
    let mut rust_live = None;
    let mut python_live = None;
    while python_live.is_none() || rust_live.is_none() {
        sample(&mut child_peak_hwm, &mut children_rss_at_once);
        let (loaded, compiling) = status(&addr);
        if rust_live.is_none() && loaded.iter().any(|n| n == "rs") {
            rust_live = Some((dropped.elapsed(), compiling.len()));
        }
        if python_live.is_none() && (1..=3).all(|n| loaded.contains(&format!("py{n}"))) {
            python_live = Some(began.elapsed());
        }
        assert!(
            began.elapsed() < Duration::from_secs(900),
            "not loaded in 15 minutes"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let host_hwm = common::proc_status_kib(&pid.to_string(), "VmHWM:");
    let host_rss = common::proc_status_kib(&pid.to_string(), "VmRSS:");
    let _ = host.kill();
    let _ = host.wait();
    let (rust, still_compiling) = rust_live.unwrap();
    println!("compiles at once (3 Python plugins, then 1 Rust beside them; compile_concurrency 2)");
    println!(
        "  Rust plugin live after its drop-in   {:>8.2} s  ({still_compiling} Python still compiling then)",
        rust.as_secs_f64()
    );
    println!(
        "  3 Python plugins live after drop-in  {:>8.2} s",
        python_live.unwrap().as_secs_f64()
    );
    println!(
        "  host VmHWM                           {:>8.1} MiB  (VmRSS after: {:.1} MiB)",
        mib(host_hwm),
        mib(host_rss)
    );
    println!(
        "  one compile child, VmHWM at most     {:>8.1} MiB",
        mib(child_peak_hwm)
    );
    println!(
        "  compile children resident at once    {:>8.1} MiB",
        mib(children_rss_at_once)
    );
}
