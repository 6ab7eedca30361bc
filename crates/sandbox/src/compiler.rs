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

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::config::SandboxConfig;
use crate::{LoadError, build_engine};
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

/// Compiles `bytes` with `program`, within `limits`; the artifact is for an
/// engine built from `sandbox` (the child builds the same one, on-demand:
/// the allocator does not change what an artifact must match).
pub fn compile(program: &Path, sandbox: &SandboxConfig, bytes: &[u8]) -> Result<Vec<u8>, LoadError> {
    let limits = CompileLimits::of(sandbox);
    let config = serde_json::to_string(sandbox).expect("the sandbox config serialises");
    let mut child = Command::new(program)
        .arg(CHILD_COMMAND)
        .arg(&config)
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
    judge(status, output, &message, &limits, program)
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
) -> Result<Vec<u8>, LoadError> {
    if status.success() {
        // The artifact is the rest of the answer, kept where it was read.
        if !output.starts_with(HEADER) {
            return Err(LoadError::Compiler(format!(
                "{} is not autoheal's compiler (its answer has no compiler header)",
                program.display()
            )));
        }
        output.drain(..HEADER.len());
        return Ok(output);
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

/// The compiler's side: `autoheal __compile-component <sandbox config json>`.
/// Returns the process's exit code.
pub fn child_main(args: &[String]) -> i32 {
    let [config] = args else {
        eprintln!("usage: autoheal {CHILD_COMMAND} <sandbox config as JSON> < component > artifact");
        return EXIT_USAGE;
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
    let engine = match build_engine(&SandboxConfig {
        pooling: false,
        ..sandbox
    }) {
        Ok((engine, _)) => engine,
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
