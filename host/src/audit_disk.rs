//! How much disk the audit trail takes and how much is left where it is
//! written (`autoheal_audit_bytes`, `autoheal_audit_filesystem_free_bytes`,
//! `GET /`), so that a filling disk is seen before a write fails and every
//! webhook is answered 503.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// The trail's bytes (live file and every rolled segment) and the free
/// bytes of its filesystem; `None` where they could not be read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TrailDisk {
    /// Bytes of the live file and its segments.
    pub trail_bytes: Option<u64>,
    /// Bytes an unprivileged writer may still write on the trail's
    /// filesystem (`statvfs` `f_bavail`: what the host, not root, gets).
    pub free_bytes: Option<u64>,
}

/// Reads both for the trail at `audit_path` (a few `stat`s and one `statvfs`).
pub fn measure(audit_path: &Path) -> TrailDisk {
    TrailDisk {
        trail_bytes: autoheal_core::audit::total_bytes(audit_path).ok(),
        free_bytes: free_bytes(audit_path),
    }
}

/// Free bytes of the filesystem holding the trail's directory.
fn free_bytes(audit_path: &Path) -> Option<u64> {
    let dir = match audit_path.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(dir) => dir,
        None => Path::new("."),
    };
    let dir = CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut stat = std::mem::MaybeUninit::<libc::statvfs>::zeroed();
    // SAFETY: `dir` is a NUL-terminated path and `stat` is a properly sized,
    // writable statvfs that the call fills on success.
    let rc = unsafe { libc::statvfs(dir.as_ptr(), stat.as_mut_ptr()) };
    if rc != 0 {
        return None;
    }
    // SAFETY: statvfs returned 0, so it filled `stat`.
    let stat = unsafe { stat.assume_init() };
    Some(stat.f_bavail.saturating_mul(stat.f_frsize))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_trail_and_its_segments_are_counted_and_free_space_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        assert_eq!(measure(&path).trail_bytes, Some(0));
        std::fs::write(&path, vec![b'x'; 1000]).unwrap();
        std::fs::write(dir.path().join("audit.1.jsonl.zst"), vec![b'y'; 300]).unwrap();
        std::fs::write(dir.path().join("audit.jsonl.torn-1"), vec![b'z'; 50]).unwrap();
        let disk = measure(&path);
        assert_eq!(disk.trail_bytes, Some(1300));
        assert!(disk.free_bytes.is_some_and(|free| free > 0));
        assert_eq!(measure(Path::new("/no/such/dir/audit.jsonl")).free_bytes, None);
    }
}
