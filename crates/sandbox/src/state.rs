//! What one invocation's store holds, and the imports it serves.

pub use autoheal_core::invocation::LogLine;
use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::bindings::{v1, v2, v3, v4};
use super::capability::CapabilityGate;

/// Log lines one invocation may leave, and the length each is cut to.
const MAX_LOG_LINES: usize = 100;
const MAX_LOG_LINE_BYTES: usize = 1024;

pub struct HostState {
    pub wasi: WasiCtx,
    pub table: ResourceTable,
    pub limiter: MemoryCap,
    pub gate: CapabilityGate,
    pub logs: Vec<LogLine>,
    pub logs_dropped: usize,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// The memory cap of one invocation: every linear memory and table of the
/// instance counted together against the manifest's `memory_mb` (a cap per
/// memory would let a component with many memories take many times it).
/// It remembers being hit: a plugin stopped by it usually dies by an
/// `unreachable` trap in its allocator, which alone looks like any other trap.
pub struct MemoryCap {
    max_bytes: usize,
    used_bytes: usize,
    pub exceeded: bool,
}

/// What a table element is counted as (a pointer).
const TABLE_ELEMENT_BYTES: usize = 8;

impl MemoryCap {
    pub fn new(max_bytes: usize) -> Self {
        Self {
            max_bytes,
            used_bytes: 0,
            exceeded: false,
        }
    }

    /// Grants growing one memory or table from `current` to `desired` bytes
    /// if the instance's total stays under the cap.
    fn grow(&mut self, current: usize, desired: usize) -> bool {
        let total = self.used_bytes.saturating_sub(current).saturating_add(desired);
        if total > self.max_bytes {
            self.exceeded = true;
            return false;
        }
        self.used_bytes = total;
        true
    }
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if maximum.is_some_and(|max| desired > max) {
            return Ok(false);
        }
        Ok(self.grow(current, desired))
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if maximum.is_some_and(|max| desired > max) {
            return Ok(false);
        }
        Ok(self.grow(
            current.saturating_mul(TABLE_ELEMENT_BYTES),
            desired.saturating_mul(TABLE_ELEMENT_BYTES),
        ))
    }

    // The same bounds as the pooling allocator's, for on-demand allocation.
    fn memories(&self) -> usize {
        crate::MAX_MEMORIES_PER_PLUGIN as usize
    }

    fn tables(&self) -> usize {
        crate::MAX_TABLES_PER_PLUGIN as usize
    }

    fn instances(&self) -> usize {
        crate::MAX_CORE_INSTANCES_PER_PLUGIN as usize
    }
}

/// The imports every version shares besides its capabilities': the `log`
/// function and the types interface (the capabilities' are served by
/// their modules, `crate::capabilities`).
macro_rules! serve_log {
    ($version:ident) => {
        impl $version::types::Host for HostState {}

        impl $version::ActionImports for HostState {
            async fn log(&mut self, level: String, message: String) {
                self.log_line(level, message);
            }
        }
    };
}

serve_log!(v1);
serve_log!(v2);
serve_log!(v3);
serve_log!(v4);

impl HostState {
    /// A line of the `log` import, bounded in count and length.
    fn log_line(&mut self, level: String, message: String) {
        tracing::debug!(target: "plugin", %level, message = %self.gate.scrub(&message));
        if self.logs.len() >= MAX_LOG_LINES {
            self.logs_dropped += 1;
            return;
        }
        // A secret never reaches the trail, even one a plugin guessed.
        let message = crate::capability::cut(self.gate.scrub(&message), MAX_LOG_LINE_BYTES);
        let level = match level.as_str() {
            "debug" | "info" | "warn" | "error" => level,
            _ => "info".into(),
        };
        self.logs.push(LogLine { level, message });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memories_and_tables_share_one_cap() {
        let mut cap = MemoryCap::new(16 << 20);
        assert!(cap.memory_growing(0, 10 << 20, None).unwrap());
        // A second memory would fit alone but not beside the first.
        assert!(!cap.memory_growing(0, 10 << 20, None).unwrap());
        assert!(cap.exceeded);
        assert!(cap.memory_growing(0, 5 << 20, None).unwrap());
        // Growing the first memory counts only the difference (15.5 MiB now).
        assert!(
            cap.memory_growing(10 << 20, (10 << 20) + (512 << 10), None)
                .unwrap()
        );
        // 8 bytes an element: 200k elements are 1.6 MB, past what is left.
        assert!(!cap.table_growing(0, 200_000, None).unwrap());
        assert!(cap.table_growing(0, 1_000, None).unwrap());
    }

    #[test]
    fn a_grow_past_the_declared_maximum_is_refused_without_counting() {
        let mut cap = MemoryCap::new(16 << 20);
        assert!(!cap.memory_growing(0, 2 << 20, Some(1 << 20)).unwrap());
        assert!(!cap.exceeded);
        assert!(cap.memory_growing(0, 16 << 20, None).unwrap());
    }
}
