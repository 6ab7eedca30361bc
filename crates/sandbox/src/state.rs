//! What one invocation's store holds, and the imports it serves.

pub use autoheal_core::invocation::LogLine;
use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::bindings::{ActionImports, containers, types};
use super::capability::{CapabilityGate, GateError};
use autoheal_containers::uptime_seconds;

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

/// A memory cap that remembers being hit: a plugin stopped by it usually
/// dies by an `unreachable` trap in its allocator, which alone looks like
/// any other trap.
pub struct MemoryCap {
    pub max_bytes: usize,
    pub exceeded: bool,
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_bytes {
            self.exceeded = true;
            return Ok(false);
        }
        Ok(maximum.is_none_or(|max| desired <= max))
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000 && maximum.is_none_or(|max| desired <= max))
    }
}

impl types::Host for HostState {}

impl containers::Host for HostState {
    async fn inspect(&mut self, name: String) -> Result<containers::ContainerInfo, containers::Error> {
        let info = self.gate.inspect(name).await.map_err(to_wit_error)?;
        Ok(containers::ContainerInfo {
            uptime_seconds: uptime_seconds(&info.started_at),
            name: info.name,
            state: info.state,
            started_at: info.started_at,
            restart_count: info.restart_count,
            health: info.health,
        })
    }

    async fn restart(&mut self, name: String) -> Result<(), containers::Error> {
        self.gate.restart(name).await.map_err(to_wit_error)
    }
}

impl ActionImports for HostState {
    async fn log(&mut self, level: String, message: String) {
        tracing::debug!(target: "plugin", %level, %message);
        if self.logs.len() >= MAX_LOG_LINES {
            self.logs_dropped += 1;
            return;
        }
        let mut message = message;
        if message.len() > MAX_LOG_LINE_BYTES {
            let mut cut = MAX_LOG_LINE_BYTES;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push_str(" [cut]");
        }
        let level = match level.as_str() {
            "debug" | "info" | "warn" | "error" => level,
            _ => "info".into(),
        };
        self.logs.push(LogLine { level, message });
    }
}

fn to_wit_error(e: GateError) -> containers::Error {
    match e {
        GateError::Denied(m) => containers::Error::Denied(m),
        GateError::NotFound(m) => containers::Error::NotFound(m),
        GateError::Runtime(m) => containers::Error::Runtime(m),
    }
}
