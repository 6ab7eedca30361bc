//! Compiling a component, in a child process with limits of its own.
//!
//! Cranelift cannot be interrupted, and nothing bounds what it allocates:
//! compiled in the host, a hostile 64 MiB component could take the host's
//! memory or keep a core for as long as it likes. So the host runs its own
//! binary again as a compiler (`autoheal __compile-component`), which sets
//! a memory and a CPU limit on itself, reads the component on
//! stdin and writes the compiled artifact on stdout. The host kills it at
//! the wall-clock bound; what it answers is checked for the compiler's
//! header before the host deserialises it. At most
//! `sandbox.compile_concurrency` compiles run at once (`slots`), so the
//! children's memory together is bounded by that many `compile_memory_mb`.
//!
//! With a compile cache, the compiler also keeps cranelift's compiled
//! functions in its incremental store ([`crate::incremental`]) and says on
//! stderr how many it took from there; the host logs that.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::cache::CacheLocation;
use crate::config::SandboxConfig;
use crate::incremental::{IncrementalStats, IncrementalStore};
use crate::{LoadError, engine_config};
use autoheal_core::util::error_chain;

/// The first argument that makes the `autoheal` binary a compiler.
pub const CHILD_COMMAND: &str = "__compile-component";

/// What a compiler's stdout starts with, so that a program that is not one
/// (a wrong `compiler` path) is told apart from a compiler that failed.
const HEADER: &[u8] = b"autoheal-compiled-component v1\n";

/// Exit code of a compiler that was given a component it cannot compile.
const EXIT_INVALID: i32 = 3;
/// Exit code of a compiler that was started wrongly (no limits, bad config).
const EXIT_USAGE: i32 = 2;

/// Longest message of a failed compiler kept.
const MAX_STDERR_BYTES: u64 = 16 * 1024;

/// How often the host looks whether the compiler has finished.
const POLL: Duration = Duration::from_millis(5);

/// Bounds on one compile, from `[sandbox]`.
#[derive(Debug, Clone)]
pub struct CompileLimits {
    /// Wall-clock time the compiler may take (it is killed after it).
    pub timeout: Duration,
    /// Memory the compiler may allocate, in MiB (`RLIMIT_DATA`: its heap
    /// and private mappings, not its code).
    pub memory_mb: u64,
}

impl CompileLimits {
    /// The limits `[sandbox]` sets.
    pub fn of(sandbox: &SandboxConfig) -> Self {
        Self {
            timeout: Duration::from_millis(sandbox.compile_timeout_ms),
            memory_mb: sandbox.compile_memory_mb,
        }
    }
}

/// The program that compiles components: `sandbox.compiler`, or the running
/// executable (the `autoheal` binary) when unset.
pub fn compiler_program(sandbox: &SandboxConfig) -> std::io::Result<PathBuf> {
    match &sandbox.compiler {
        Some(program) => Ok(program.clone()),
        None => std::env::current_exe(),
    }
}

/// What a compile produced.
pub struct Compiled {
    /// The artifact, for `Component::deserialize`.
    pub artifact: Vec<u8>,
    /// How the compile used the incremental store, when it had one.
    pub incremental: Option<IncrementalStats>,
}

/// Compiles `bytes` with `program`, within `limits`; the artifact is for an
/// engine built from `sandbox` (the child builds the same one, on-demand:
/// the allocator does not change what an artifact must match). With
/// `incremental`, the child keeps cranelift's functions there (the store's
/// directory and the key its entries are authenticated with).
pub fn compile(
    program: &Path,
    sandbox: &SandboxConfig,
    incremental: Option<&CacheLocation>,
    bytes: &[u8],
) -> Result<Compiled, LoadError> {
    let limits = CompileLimits::of(sandbox);
    let config = serde_json::to_string(sandbox).expect("the sandbox config serialises");
    let mut command = Command::new(program);
    command.arg(CHILD_COMMAND).arg(&config);
    if let Some(store) = incremental {
        command.arg(&store.dir).arg(&store.key_file);
    }
    let mut child = command
        // The compiler needs nothing of the host's environment (tokens,
        // credentials), so it gets none of it.
        .env_clear()
        // mimalloc (the binary's allocator) reserves a 1 GiB arena up front,
        // which the memory limit would spend before anything is compiled;
        // without it, the limit measures what the compile allocates.
        .env("MIMALLOC_ARENA_RESERVE", "0")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| LoadError::Compiler(format!("cannot start {}: {e}", program.display())))?;
    let started = Instant::now();

    // Written and read on threads of their own: the child reads all of its
    // input before it writes, but a pipe holds only so much either way.
    // Scoped, so the component is lent to the writer rather than copied.
    let stdin = child.stdin.take().expect("stdin is piped");
    let stdout = child.stdout.take().expect("stdout is piped");
    let stderr = child.stderr.take().expect("stderr is piped");
    // The compiler cannot have produced more than it could map.
    let max_output = limits.memory_mb << 20;
    let (status, output, message) = thread::scope(|scope| {
        let writer = scope.spawn(move || {
            let mut stdin = stdin;
            stdin.write_all(bytes)
        });
        let reader = scope.spawn(move || read_bounded(stdout, max_output));
        let errors = scope.spawn(move || read_bounded(stderr, MAX_STDERR_BYTES));
        let status = wait_within(&mut child, started, limits.timeout);
        let _ = writer.join();
        let output = reader.join().unwrap_or_default();
        let message = String::from_utf8_lossy(&errors.join().unwrap_or_default())
            .trim()
            .to_owned();
        (status, output, message)
    });
    let status = status.map_err(|e| LoadError::Compiler(format!("waiting for the compiler: {e}")))?;
    let Some(status) = status else {
        return Err(LoadError::TooLarge(format!(
            "compiling it took longer than {} s (sandbox.compile_timeout_ms)",
            limits.timeout.as_secs_f64()
        )));
    };
    let compiled = judge(status, output, &message, &limits, program)?;
    if let Some(stats) = compiled.incremental {
        // The one place every compile passes, the host's reloads included;
        // debug, since the CLI and the start-up log say it to people already.
        let seconds = started.elapsed().as_secs_f64();
        tracing::debug!(
            functions = stats.functions,
            reused = stats.reused,
            "component compiled in {seconds:.1} s ({stats})"
        );
    }
    Ok(compiled)
}

/// The child's exit status, or `None` when it was killed at `timeout`
/// after `started`. On an error the child is killed too, so that the
/// threads reading its pipes end.
fn wait_within(
    child: &mut Child,
    started: Instant,
    timeout: Duration,
) -> std::io::Result<Option<ExitStatus>> {
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Ok(Some(status)),
            Ok(None) if started.elapsed() >= timeout => {
                let _ = child.kill();
                let _ = child.wait();
                return Ok(None);
            }
            Ok(None) => thread::sleep(POLL),
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(e);
            }
        }
    }
}

/// What the compiler's exit and output mean.
fn judge(
    status: ExitStatus,
    mut output: Vec<u8>,
    message: &str,
    limits: &CompileLimits,
    program: &Path,
) -> Result<Compiled, LoadError> {
    if status.success() {
        // The artifact is the rest of the answer, kept where it was read.
        if !output.starts_with(HEADER) {
            return Err(LoadError::Compiler(format!(
                "{} is not autoheal's compiler (its answer has no compiler header)",
                program.display()
            )));
        }
        output.drain(..HEADER.len());
        // A successful compile's stderr holds its store's stats and any
        // warning about the store (it only costs speed).
        for warning in IncrementalStats::other_lines(message) {
            tracing::warn!(compiler = %program.display(), "{warning}");
        }
        let incremental = IncrementalStats::from_output(message);
        if let Some(stats) = incremental.filter(|s| s.rejected > 0) {
            tracing::warn!(
                rejected = stats.rejected,
                "{} incremental cache entries failed their MAC check; ignored and compiled again",
                stats.rejected
            );
        }
        return Ok(Compiled {
            artifact: output,
            incremental,
        });
    }
    if status.code() == Some(EXIT_INVALID) {
        return Err(crate::not_loadable_message(message.to_owned()));
    }
    // Out of memory, the allocator aborts ("memory allocation of N
    // bytes failed"); past the CPU limit the kernel sends SIGXCPU/SIGKILL.
    if message.contains("memory allocation") || message.contains("out of memory") {
        return Err(LoadError::TooLarge(format!(
            "compiling it needed more than {} MiB (sandbox.compile_memory_mb)",
            limits.memory_mb
        )));
    }
    if is_cpu_limit(status) {
        return Err(LoadError::TooLarge(format!(
            "compiling it took more CPU time than {} s (sandbox.compile_timeout_ms)",
            limits.timeout.as_secs_f64()
        )));
    }
    Err(LoadError::Compiler(format!(
        "the compiler ended with {status}: {message}"
    )))
}

#[cfg(unix)]
fn is_cpu_limit(status: ExitStatus) -> bool {
    use std::os::unix::process::ExitStatusExt;
    matches!(status.signal(), Some(libc::SIGXCPU) | Some(libc::SIGKILL))
}

#[cfg(not(unix))]
fn is_cpu_limit(_: ExitStatus) -> bool {
    false
}

fn read_bounded(source: impl Read, max: u64) -> Vec<u8> {
    let mut buffer = Vec::new();
    let _ = source.take(max).read_to_end(&mut buffer);
    buffer
}

/// The compiler's side: `autoheal __compile-component <sandbox config json>
/// [<incremental store dir> <cache key file>]`. Returns the process's exit code.
pub fn child_main(args: &[String]) -> i32 {
    let (config, incremental) = match args {
        [config] => (config, None),
        [config, dir, key_file] => (
            config,
            Some(CacheLocation {
                dir: dir.into(),
                key_file: key_file.into(),
            }),
        ),
        _ => {
            eprintln!(
                "usage: autoheal {CHILD_COMMAND} <sandbox config as JSON> [<incremental dir> <key file>] < component > artifact"
            );
            return EXIT_USAGE;
        }
    };
    let sandbox: SandboxConfig = match serde_json::from_str(config) {
        Ok(sandbox) => sandbox,
        Err(e) => {
            eprintln!("bad sandbox config: {e}");
            return EXIT_USAGE;
        }
    };
    let limits = CompileLimits::of(&sandbox);
    if let Err(e) = limit_self(&limits) {
        // Without its limits the compile is not bounded: refuse.
        eprintln!("cannot set the compiler's limits: {e}");
        return EXIT_USAGE;
    }
    let mut bytes = Vec::new();
    let max_input = crate::registry::MAX_COMPONENT_BYTES;
    if let Err(e) = std::io::stdin().take(max_input + 1).read_to_end(&mut bytes) {
        eprintln!("reading the component: {e}");
        return EXIT_USAGE;
    }
    if bytes.len() as u64 > max_input {
        eprintln!("the component is larger than {max_input} bytes");
        return EXIT_INVALID;
    }
    // Without its store the compile is only slower: said, not refused.
    let store = incremental.and_then(|location| {
        IncrementalStore::open(&location)
            .map_err(|why| eprintln!("incremental compile cache disabled: {why}"))
            .ok()
            .map(std::sync::Arc::new)
    });
    let engine = match compiler_engine(store.clone()) {
        Ok(engine) => engine,
        Err(e) => {
            eprintln!("cannot build the engine: {}", error_chain(&*e));
            return EXIT_USAGE;
        }
    };
    let artifact = match engine.precompile_component(&bytes) {
        Ok(artifact) => artifact,
        Err(e) => {
            eprintln!("{}", error_chain(&*e));
            return EXIT_INVALID;
        }
    };
    if let Some(store) = &store {
        store.prune();
        eprintln!("{}", store.stats().to_line());
    }
    let mut out = std::io::stdout().lock();
    if out
        .write_all(HEADER)
        .and_then(|()| out.write_all(&artifact))
        .and_then(|()| out.flush())
        .is_err()
    {
        return EXIT_USAGE;
    }
    0
}

/// The compiler's engine: the host's settings ([`engine_config`]), so that
/// what it writes the host can load, allocating on demand (the allocator does
/// not change what an artifact must match), with the incremental store if
/// there is one (it changes how long a compile takes, not what it writes).
pub(crate) fn compiler_engine(
    store: Option<std::sync::Arc<IncrementalStore>>,
) -> wasmtime::Result<wasmtime::Engine> {
    let mut config = engine_config();
    config.allocation_strategy(wasmtime::InstanceAllocationStrategy::OnDemand);
    if let Some(store) = store {
        config.enable_incremental_compilation(store.into_store())?;
    }
    wasmtime::Engine::new(&config)
}

/// Memory and CPU time of this process, and a lower priority, so
/// that a compile neither takes the host's memory nor its cores from the
/// server.
#[cfg(unix)]
fn limit_self(limits: &CompileLimits) -> std::io::Result<()> {
    let set = |resource, value: u64| {
        let limit = libc::rlimit {
            rlim_cur: value,
            rlim_max: value,
        };
        // SAFETY: setrlimit reads the struct it is given; nothing else.
        if unsafe { libc::setrlimit(resource, &limit) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    };
    // RLIMIT_DATA (heap and private writable mappings, since Linux 4.7)
    // rather than RLIMIT_AS: the binary's own code, ~200 MB of mappings in a
    // debug build, would otherwise count against what the compile may use.
    set(libc::RLIMIT_DATA, limits.memory_mb << 20)?;
    // The wall-clock bound is the host's; this one holds if the host is gone.
    set(libc::RLIMIT_CPU, limits.timeout.as_secs().max(1) * 2)?;
    // SAFETY: plain system call on this process.
    unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 10) };
    Ok(())
}

#[cfg(not(unix))]
fn limit_self(_: &CompileLimits) -> std::io::Result<()> {
    Err(std::io::Error::other("compile limits need a Unix system"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::{Hash as _, Hasher as _};

    /// `(module (func (export "f") (param i32) (result i32) local.get 0 i32.const 1 i32.add))`
    const MODULE: &[u8] = &[
        0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // header
        0x01, 0x06, 0x01, 0x60, 0x01, 0x7f, 0x01, 0x7f, // type (i32) -> i32
        0x03, 0x02, 0x01, 0x00, // one function of that type
        0x07, 0x05, 0x01, 0x01, b'f', 0x00, 0x00, // exported as "f"
        0x0a, 0x09, 0x01, 0x07, 0x00, 0x20, 0x00, 0x41, 0x01, 0x6a, 0x0b, // its body
    ];

    fn compatibility(engine: &wasmtime::Engine) -> u64 {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        hasher.finish()
    }

    #[test]
    fn the_incremental_store_changes_neither_the_artifact_nor_its_cache_key() {
        let root = tempfile::tempdir().unwrap();
        let store = std::sync::Arc::new(
            IncrementalStore::open(&CacheLocation {
                dir: root.path().join("incremental"),
                key_file: root.path().join("cache.key"),
            })
            .unwrap(),
        );
        let (host, _) = crate::build_engine(&SandboxConfig::default()).unwrap();
        let plain = compiler_engine(None).unwrap();
        let with_store = compiler_engine(Some(store.clone())).unwrap();
        // The artifact cache's key is the same whether or not the compiler
        // had a store: a store is not something an artifact must match.
        assert_eq!(compatibility(&with_store), compatibility(&host));
        assert_eq!(compatibility(&plain), compatibility(&host));

        let expected = plain.precompile_module(MODULE).unwrap();
        let cold = with_store.precompile_module(MODULE).unwrap();
        assert_eq!(store.stats().reused, 0);
        let warm = with_store.precompile_module(MODULE).unwrap();
        let stats = store.stats();
        assert!(
            stats.reused > 0 && stats.reused * 2 == stats.functions,
            "{stats:?}"
        );
        assert!(
            cold == expected && warm == expected,
            "the same artifact, byte for byte"
        );
        // And the host loads it.
        // SAFETY: written just above by an engine with the host's settings.
        let module = unsafe { wasmtime::Module::deserialize(&host, &warm) }.unwrap();
        assert_eq!(module.exports().count(), 1);
    }
}
