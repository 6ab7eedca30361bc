//! Start-up checks of the trail: a torn last line and the next id.

use std::fs::OpenOptions;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use super::reader::{scan_backwards, scan_regions_backwards};

/// What opening the trail found.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Recovery {
    /// Highest event id in the file (0 for a new trail).
    pub last_id: u64,
    /// A torn last line that was moved out of the trail.
    pub torn_tail: Option<TornTail>,
    /// A rotation a crash cut short was finished or undone.
    pub finished_rotation: bool,
}

/// A torn last line, moved out of the trail.
#[derive(Debug, Clone, PartialEq)]
pub struct TornTail {
    /// How many bytes were moved aside.
    pub bytes: u64,
    /// Where the torn bytes were kept, for a person to look at.
    pub set_aside: PathBuf,
}

/// What opening a trail does to it before anything is appended: a torn last
/// line (and a webhook group it cut short) is moved aside, and the highest
/// id is found. Public so that the fuzz targets can drive it alone.
pub fn recover(path: &Path) -> io::Result<Recovery> {
    let torn_tail = set_aside_torn_tail(path)?;
    let mut last_id = 0;
    scan_backwards(path, |line| {
        match serde_json::from_slice::<serde_json::Value>(line)
            .ok()
            .and_then(|v| v.get("id")?.as_u64())
        {
            Some(id) => {
                last_id = id;
                ControlFlow::Break(())
            }
            None => ControlFlow::Continue(()),
        }
    })?;
    Ok(Recovery {
        last_id,
        torn_tail,
        finished_rotation: false,
    })
}

/// A crash in the middle of a write leaves a last line without its newline.
/// Appending after it would glue the next event onto garbage, so the torn
/// bytes (and the start of a webhook group they cut short, see
/// [`incomplete_webhook_start`]) are moved to `<trail>.torn-<unix time>`, in
/// their order in the trail, and the trail is truncated before them.
fn set_aside_torn_tail(path: &Path) -> io::Result<Option<TornTail>> {
    let mut file = match OpenOptions::new().read(true).write(true).open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(None);
    }
    let mut last = [0u8; 1];
    file.seek(SeekFrom::Start(len - 1))?;
    file.read_exact(&mut last)?;
    if last[0] == b'\n' {
        return Ok(None);
    }
    let keep = last_newline_end(&mut file, len)?;
    let cut = incomplete_webhook_start(path, keep)?.unwrap_or(keep);
    let mut torn = Vec::with_capacity((len - cut) as usize);
    file.seek(SeekFrom::Start(cut))?;
    file.read_to_end(&mut torn)?;

    let stamp = crate::util::unix_now() as u64;
    let mut set_aside = path.as_os_str().to_owned();
    set_aside.push(format!(".torn-{stamp}"));
    let set_aside = PathBuf::from(set_aside);
    let mut side = OpenOptions::new().create(true).append(true).open(&set_aside)?;
    side.write_all(&torn)?;
    side.sync_all()?;
    file.set_len(cut)?;
    file.sync_all()?;
    Ok(Some(TornTail {
        bytes: torn.len() as u64,
        set_aside,
    }))
}

/// A webhook's `webhook_received` and its decisions are one write (it says
/// how many decisions follow). A write torn by a crash may have kept the
/// first lines of that group: where they start, so that they are moved
/// aside with the torn bytes and no received alert is left without its
/// decision. (That webhook was never answered; Alertmanager sends it
/// again.) `complete` is where the complete lines end.
fn incomplete_webhook_start(path: &Path, complete: u64) -> io::Result<Option<u64>> {
    let (mut followers, mut tail) = (0u64, 0u64);
    let mut cut = None;
    // The scan skips the torn last line: it starts at `complete`. Lines are
    // taken from whole regions here, not from `scan_backwards`, because the
    // cut is an offset: the empty lines that scan skips still take a byte.
    scan_regions_backwards(path, |region| {
        let lines = region.strip_suffix(b"\n").unwrap_or(region);
        for line in lines.rsplit(|&b| b == b'\n') {
            tail += line.len() as u64 + 1;
            if line.is_empty() {
                continue;
            }
            let Ok(event) = serde_json::from_slice::<serde_json::Value>(line) else {
                return ControlFlow::Break(());
            };
            match event.get("kind").and_then(|k| k.as_str()) {
                Some("decision_skip" | "action_started" | "alert_deferred") => followers += 1,
                // A webhook's group, or the held alerts that came due (same shape).
                Some("webhook_received" | "deferred_due") => {
                    if event
                        .get("decisions")
                        .and_then(|d| d.as_u64())
                        .is_some_and(|n| followers < n)
                    {
                        cut = Some(complete - tail);
                    }
                    return ControlFlow::Break(());
                }
                _ => return ControlFlow::Break(()),
            }
        }
        ControlFlow::Continue(())
    })?;
    Ok(cut)
}

/// Offset just after the last newline before `len` (0 if there is none).
fn last_newline_end(file: &mut std::fs::File, len: u64) -> io::Result<u64> {
    let mut pos = len;
    let mut buf = vec![0u8; 64 * 1024];
    while pos > 0 {
        let start = pos.saturating_sub(buf.len() as u64);
        let chunk = &mut buf[..(pos - start) as usize];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(chunk)?;
        if let Some(i) = chunk.iter().rposition(|&b| b == b'\n') {
            return Ok(start + i as u64 + 1);
        }
        pos = start;
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RECEIVED: &str = r#"{"alerts":2,"decisions":2,"id":2,"kind":"webhook_received","ts":1.0}"#;
    const DECISION: &str = r#"{"alertname":"A","detail":"d","fingerprint":"f","id":3,"kind":"decision_skip","reason":"not_annotated","status":"firing","ts":1.0}"#;

    #[test]
    fn a_webhook_cut_short_by_a_torn_write_is_set_aside_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let before = r#"{"id":1,"kind":"host_warning","ts":0.5,"warning":"host_stopping"}"#;
        std::fs::write(&path, format!("{before}\n{RECEIVED}\n{DECISION}\n{{\"alertna")).unwrap();
        let recovery = recover(&path).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), format!("{before}\n"));
        assert_eq!(recovery.last_id, 1);
        let torn = recovery.torn_tail.unwrap();
        // In the trail's order, as a person reading it expects (the fuzzer
        // found them the other way round).
        assert_eq!(
            std::fs::read_to_string(&torn.set_aside).unwrap(),
            format!("{RECEIVED}\n{DECISION}\n{{\"alertna")
        );
        assert_eq!(torn.bytes as usize, RECEIVED.len() + DECISION.len() + 2 + 9);
    }

    #[test]
    fn an_empty_line_inside_the_cut_is_counted_and_the_trail_still_ends_on_a_line() {
        // The fuzzer's find: an empty line between a webhook's group and the
        // torn line left the cut one byte into the group's first line.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let received = r#"{"decisions":1,"id":6,"kind":"webhook_received","ts":0.0}"#;
        std::fs::write(&path, format!("{received}\n\n{{\"alertname\":\"B\",\"det")).unwrap();
        let recovery = recover(&path).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "");
        let torn = recovery.torn_tail.unwrap();
        assert_eq!(
            std::fs::read_to_string(&torn.set_aside).unwrap(),
            format!("{received}\n\n{{\"alertname\":\"B\",\"det")
        );
    }

    #[test]
    fn a_whole_webhook_before_a_torn_line_stays() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let second = DECISION.replace("\"id\":3", "\"id\":4");
        std::fs::write(&path, format!("{RECEIVED}\n{DECISION}\n{second}\n{{\"id\":5,")).unwrap();
        let recovery = recover(&path).unwrap();
        assert_eq!(recovery.last_id, 4);
        assert!(
            std::fs::read_to_string(&path)
                .unwrap()
                .ends_with(&format!("{second}\n"))
        );
    }
}
