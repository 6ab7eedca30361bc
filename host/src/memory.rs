//! The host process's resident memory, read from `/proc/self/status`
//! (Linux; unknown elsewhere), and giving back what loading plugins freed.

use autoheal_api::status::HostMemory;

/// Resident now and at its most, as the kernel counts them.
pub fn resident() -> HostMemory {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    HostMemory {
        rss_bytes: field_bytes(&status, "VmRSS:"),
        peak_rss_bytes: field_bytes(&status, "VmHWM:"),
    }
}

/// A `Name:   1234 kB` line of a `/proc/PID/status` text (`VmRSS:`,
/// `VmHWM:`), in bytes.
pub fn field_bytes(status: &str, name: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(name))?;
    let kib: u64 = line[name.len()..].split_whitespace().next()?.parse().ok()?;
    Some(kib * 1024)
}

/// Returns to the system the memory the allocator keeps after a burst of
/// large allocations: loading plugins reads components of tens of MB and
/// compiles them, and mimalloc otherwise keeps those pages until the thread
/// that freed them allocates again — an idle host never would (BENCHMARKS.md,
/// "Memory": 86 MiB idle without it, ~53 with). Off the serving path: once
/// after the plugins load and after each reload.
pub fn give_back_freed() {
    // SAFETY: `mi_collect` only frees what the allocator holds unused; it
    // is safe to call from any thread, whichever allocator is global.
    unsafe { libmimalloc_sys::mi_collect(true) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_kib_lines_as_bytes() {
        let status = "Name:\tautoheal\nVmHWM:\t  204800 kB\nVmRSS:\t   51200 kB\n";
        assert_eq!(field_bytes(status, "VmRSS:"), Some(50 * 1024 * 1024));
        assert_eq!(field_bytes(status, "VmHWM:"), Some(200 * 1024 * 1024));
        assert_eq!(field_bytes(status, "VmSwap:"), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_is_resident() {
        let memory = resident();
        let (rss, peak) = (memory.rss_bytes.unwrap(), memory.peak_rss_bytes.unwrap());
        assert!(rss > 0 && peak >= rss, "{memory:?}");
    }
}
