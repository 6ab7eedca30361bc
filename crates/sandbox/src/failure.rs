//! Why an invocation failed, told as it happened: a plugin's own error is
//! not called a memory failure because the cap once refused a grow, and a
//! stack that ran out is not called an out-of-bounds access.

use serde::Serialize;
use wasmtime::{Trap, WasmBacktrace};

use autoheal_core::util::error_chain;

/// Why an invocation did not produce `ok`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum InvocationError {
    /// The plugin returned `err(reason)`.
    Plugin(String),
    /// The deadline passed.
    Timeout,
    /// The plugin asked for more memory than its cap.
    Memory,
    /// The plugin trapped (a panic, an out-of-bounds access, ...).
    Trap(String),
}

impl InvocationError {
    /// The classified reason written into `action_fail` events.
    pub fn reason(&self) -> String {
        match self {
            Self::Plugin(_) => "plugin_error".into(),
            Self::Timeout => "timeout".into(),
            Self::Memory => "memory".into(),
            Self::Trap(what) => format!("trap: {what}"),
        }
    }
}

impl std::fmt::Display for InvocationError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Plugin(message) => f.write_str(message),
            Self::Timeout => f.write_str("plugin exceeded its deadline and was stopped"),
            Self::Memory => f.write_str("plugin exceeded its memory cap and was stopped"),
            Self::Trap(what) => write!(f, "plugin trapped: {what}"),
        }
    }
}

/// The plugin returned `err(reason)`. When the memory cap refused a grow
/// during the run and the plugin's error says it ran out of memory (Python's
/// `MemoryError`, as the SDK reports it, or an "out of memory" message), the
/// cap stopped it; any other error is the plugin's own, even if a grow was
/// refused on the way (an allocator may try a large grow and fall back).
pub(crate) fn returned(reason: String, memory_cap_hit: bool) -> InvocationError {
    if memory_cap_hit && says_out_of_memory(&reason) {
        InvocationError::Memory
    } else {
        InvocationError::Plugin(reason)
    }
}

fn says_out_of_memory(reason: &str) -> bool {
    let first_line = reason.lines().next().unwrap_or("");
    let head = &first_line[..first_line.floor_char_boundary(256)];
    head.starts_with("MemoryError") || head.to_ascii_lowercase().contains("out of memory")
}

/// The invocation ended in a trap or a host error.
pub(crate) fn trapped(error: &wasmtime::Error, memory_cap_hit: bool) -> InvocationError {
    if memory_cap_hit {
        return InvocationError::Memory;
    }
    match error.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => InvocationError::Timeout,
        Some(Trap::MemoryOutOfBounds) if recursed(error) => InvocationError::Trap(
            "stack overflow: the plugin recursed until its stack ran out (seen as an out of bounds memory access)"
                .into(),
        ),
        Some(trap) => InvocationError::Trap(trap.to_string()),
        None => InvocationError::Trap(error_chain(&**error)),
    }
}

/// Frames of the backtrace that must be one function for a trap to count as
/// recursion.
const RECURSION_FRAMES: usize = 16;

/// Whether the trap's backtrace is one function calling itself, frame after
/// frame. A Rust or C guest keeps its stack in linear memory, below its
/// data: when deep recursion runs it out, the stack pointer passes zero and
/// the next write is out of bounds — the trap says nothing of a stack.
fn recursed(error: &wasmtime::Error) -> bool {
    let Some(backtrace) = error.downcast_ref::<WasmBacktrace>() else {
        return false;
    };
    let frames = backtrace.frames();
    let Some(top) = frames.first() else { return false };
    frames.len() >= RECURSION_FRAMES
        && frames
            .iter()
            .take(RECURSION_FRAMES)
            .all(|frame| frame.func_index() == top.func_index())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plugin_error_is_memory_only_when_it_says_so() {
        let error = |text: &str, hit| returned(text.into(), hit).reason();
        assert_eq!(error("MemoryError: \nTraceback ...", true), "memory");
        assert_eq!(error("RangeError: out of memory", true), "memory");
        // A huge exception of its own, with a grow refused on the way.
        let huge = format!("ValueError: {}", "x".repeat(10 << 20));
        assert_eq!(error(&huge, true), "plugin_error");
        // Saying so without the cap having been hit is the plugin's own.
        assert_eq!(error("MemoryError: made up", false), "plugin_error");
    }
}
