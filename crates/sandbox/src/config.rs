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
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            max_memory_mb: 64,
            max_concurrent: 32,
            output_limit_bytes: 16 * 1024,
            pooling: true,
        }
    }
}
