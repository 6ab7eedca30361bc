//! The sandbox's own limits, as the host's `[sandbox]` config table.

use serde::{Deserialize, Serialize};

/// Limits that size the wasmtime engine and bound every plugin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SandboxConfig {
    /// Upper bound for any plugin's `memory_mb`; sizes the pooling allocator.
    pub max_memory_mb: u64,
    /// Plugin invocations that may run at the same time.
    pub max_concurrent: u32,
    /// Bytes of a plugin's stdout and of its stderr kept for the audit event.
    pub output_limit_bytes: usize,
    /// Use wasmtime's pooling allocator (faster instantiation). The host
    /// falls back to on-demand allocation by itself when the machine cannot
    /// reserve the pool; `false` forces on-demand.
    pub pooling: bool,
    /// Wall-clock time one component's compile may take; past it the
    /// compiler is killed and the plugin rejected.
    pub compile_timeout_ms: u64,
    /// Memory, in MiB, the compiler process may allocate (`RLIMIT_DATA`).
    pub compile_memory_mb: u64,
    /// Components compiled at once (each a child process bounded by
    /// `compile_memory_mb`); one slot is kept for small components (see
    /// `slots`), so that a Rust plugin does not wait behind Python ones.
    pub compile_concurrency: u32,
    /// The program that compiles components (`autoheal __compile-component`):
    /// the running executable when unset. Not a config key: tests and
    /// benchmarks, which run in binaries of their own, point it at the
    /// `autoheal` binary.
    #[serde(skip)]
    pub compiler: Option<std::path::PathBuf>,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            max_memory_mb: 64,
            max_concurrent: 32,
            output_limit_bytes: 16 * 1024,
            pooling: true,
            // Generous: the bundled JavaScript plugin, ~9 s of compile in a
            // release build, took over 120 s in a debug build on two busy
            // cores. The memory bound and the CPU bound (twice this, of CPU
            // time) are what hold a hostile component; this one is for a
            // compiler that hangs.
            compile_timeout_ms: 600_000,
            compile_memory_mb: 2048,
            // Two cores: one large compile and one small one at a time.
            compile_concurrency: 2,
            compiler: None,
        }
    }
}
