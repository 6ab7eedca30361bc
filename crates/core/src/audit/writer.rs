//! The single writer thread: group commit of queued lines.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};

use tokio::sync::oneshot;

use super::FsyncPolicy;
use super::index::{AuditIndex, LineHead};

/// Largest number of lines committed with one flush.
const MAX_BATCH: usize = 512;

pub(super) struct WriteRequest {
    pub line: Vec<u8>,
    /// One per line of `line`, for the index.
    pub heads: Vec<LineHead>,
    pub ack: Option<oneshot::Sender<io::Result<()>>>,
}

pub(super) struct Writer {
    file: File,
    fsync: FsyncPolicy,
    /// Shared with the log: whether the last commit succeeded.
    writable: Arc<AtomicBool>,
    /// Told of every committed line before the commit is acknowledged, so
    /// that a query after a flush finds what was flushed.
    index: Arc<AuditIndex>,
}

impl Writer {
    /// Opens the file for appending and starts the writer thread; the thread
    /// ends when every sender is dropped, after committing what was queued.
    pub fn spawn(
        path: &Path,
        fsync: FsyncPolicy,
        writable: Arc<AtomicBool>,
        index: Arc<AuditIndex>,
    ) -> io::Result<Sender<WriteRequest>> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let (tx, rx) = channel();
        let writer = Writer {
            file,
            fsync,
            writable,
            index,
        };
        std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || writer.run(rx))?;
        Ok(tx)
    }

    fn run(mut self, rx: Receiver<WriteRequest>) {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        while let Ok(first) = rx.recv() {
            batch.push(first);
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(next) => batch.push(next),
                    Err(_) => break,
                }
            }
            let result = self.commit(&batch).map(|start| {
                if let Some(start) = start {
                    let heads = batch.iter().flat_map(|r| r.heads.iter().copied());
                    self.index.append(start, heads);
                }
            });
            // A batch of flush barriers alone writes nothing and proves nothing.
            let wrote = batch.iter().any(|r| !r.line.is_empty());
            let was_writable = if wrote {
                self.writable.swap(result.is_ok(), Ordering::SeqCst)
            } else {
                self.writable.load(Ordering::SeqCst)
            };
            match &result {
                Err(e) => {
                    tracing::error!(error = %e, lines = batch.len(), "audit write failed; the batch is rolled back")
                }
                Ok(()) if !was_writable => tracing::warn!("the audit trail is writable again"),
                Ok(()) => {}
            }
            for request in batch.drain(..) {
                if let Some(ack) = request.ack {
                    let _ = ack.send(match &result {
                        Ok(()) => Ok(()),
                        Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
                    });
                }
            }
        }
    }

    /// Writes the batch; returns the offset its first line starts at, or
    /// `None` if it held only flush barriers.
    fn commit(&mut self, batch: &[WriteRequest]) -> io::Result<Option<u64>> {
        let mut buf = Vec::with_capacity(batch.iter().map(|r| r.line.len()).sum());
        for request in batch {
            buf.extend_from_slice(&request.line);
        }
        // One write call for the whole batch: with O_APPEND, a reader never
        // sees a line from the middle of a batch without its newline unless
        // the write itself is torn by a crash.
        if buf.is_empty() {
            // Only flush barriers: everything before them is already committed.
            return Ok(None);
        }
        // Where the last good line ends: a failed or short write is cut back
        // to it before anything else is written, so a half line is never
        // glued to the next one.
        let good = self.file.metadata()?.len();
        let written = self.file.write_all(&buf).and_then(|()| {
            if self.fsync == FsyncPolicy::EveryBatch {
                self.file.sync_data()
            } else {
                Ok(())
            }
        });
        if let Err(e) = written {
            if let Err(rollback) = self.file.set_len(good) {
                tracing::error!(error = %rollback, offset = good, "could not roll the audit trail back to its last good line");
            }
            return Err(e);
        }
        Ok(Some(good))
    }
}
