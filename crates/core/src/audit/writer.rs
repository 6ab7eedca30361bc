//! The single writer thread: group commit of queued lines.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::index::{AuditIndex, LineHead};
use super::rotate::{self, Rotation};
use super::{FsyncPolicy, Inner};
use crate::event::EventBody;
use crate::util::unix_now;

/// After a rotation fails (a full disk), how long before it is tried again,
/// so that every commit does not try to write a segment that cannot fit.
const ROTATION_RETRY: Duration = Duration::from_secs(30);

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
    /// The live file.
    path: PathBuf,
    rotation: Rotation,
    /// Bytes of the live file as this writer left it: less at the next
    /// commit means someone cut it short (`logrotate copytruncate`).
    len: u64,
    /// When the live file's first event was written (unix seconds).
    born: f64,
    /// No rotation is tried before this (one failed).
    retry_rotation_at: Option<Instant>,
    /// The log, to record `audit_rotated` (weak: the log owns the writer).
    log: Weak<Inner>,
}

impl Writer {
    /// Opens the file for appending and starts the writer thread; the thread
    /// ends when every sender is dropped, after committing what was queued.
    pub fn open(
        path: &Path,
        fsync: FsyncPolicy,
        rotation: Rotation,
        writable: Arc<AtomicBool>,
        index: Arc<AuditIndex>,
    ) -> io::Result<Self> {
        let file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(path)?;
        let len = file.metadata()?.len();
        Ok(Writer {
            file,
            fsync,
            writable,
            index,
            path: path.to_owned(),
            rotation,
            len,
            born: rotate::first_ts(path).unwrap_or_else(unix_now),
            retry_rotation_at: None,
            log: Weak::new(),
        })
    }

    /// Starts the writer thread.
    pub fn spawn(mut self, log: Weak<Inner>, rx: Receiver<WriteRequest>) -> io::Result<()> {
        self.log = log;
        std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || self.run(rx))?;
        Ok(())
    }

    /// A channel for [`Writer::spawn`].
    pub fn channel() -> (Sender<WriteRequest>, Receiver<WriteRequest>) {
        channel()
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
            if wrote {
                self.maybe_rotate();
            }
        }
    }

    /// Rolls the live file if it is due (after a commit, so that a rotation
    /// never splits a batch, nor a webhook's group of events).
    fn maybe_rotate(&mut self) {
        let age = Duration::from_secs_f64((unix_now() - self.born).max(0.0));
        let Some(reason) = self.rotation.due(self.len, age) else {
            return;
        };
        if self.retry_rotation_at.is_some_and(|at| Instant::now() < at) {
            return;
        }
        let started = Instant::now();
        match rotate::rotate(
            &self.path,
            &self.file,
            self.len,
            &self.rotation,
            reason,
            &self.index,
        ) {
            Ok((file, rotated)) => {
                self.file = file;
                self.len = 0;
                self.born = unix_now();
                self.retry_rotation_at = None;
                tracing::info!(
                    segment = %rotated.segment,
                    bytes = rotated.bytes,
                    segment_bytes = rotated.segment_bytes,
                    events = rotated.events,
                    removed = rotated.removed.len(),
                    ms = started.elapsed().as_millis() as u64,
                    "audit trail rolled ({reason})"
                );
                if let Some(log) = self.log.upgrade() {
                    log.enqueue_all(vec![EventBody::AuditRotated(rotated)], None);
                }
            }
            Err(e) => {
                self.retry_rotation_at = Some(Instant::now() + ROTATION_RETRY);
                tracing::error!(error = %e, path = %self.path.display(), "could not roll the audit trail; it grows until a rotation succeeds (tried again in 30 s)");
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
        if good < self.len {
            // Only this writer appends; a shorter file was cut under it.
            tracing::error!(
                path = %self.path.display(),
                was = self.len,
                now = good,
                "the audit trail was cut short under the writer (logrotate copytruncate?): that is not supported — autoheal rolls its own trail ([audit] max_bytes); the lines cut are lost to GET /audit"
            );
            self.index.reset();
        }
        self.len = good;
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
        self.len = good + buf.len() as u64;
        Ok(Some(good))
    }
}
