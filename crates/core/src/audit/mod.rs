//! The append-only JSONL audit trail.
//!
//! One writer thread owns the file and commits events in groups (one write and
//! at most one fsync per batch), so a burst of events costs one disk flush.
//! Ids are handed out under the same lock that queues the line, so the file is
//! always in id order.

mod forward;
mod index;
mod reader;
mod recovery;
mod rotate;
mod segments;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio::sync::{broadcast, oneshot};

use crate::event::{Event, EventBody};
use crate::util::unix_now;
pub use forward::{ForwardBatch, ForwardReader};
use index::{AuditIndex, LineHead};
pub use reader::{
    AUDIT_DEFAULT_N, AUDIT_MAX_N, AuditFilter, AuditQuery, line_has_field, line_has_kind, line_ts, read_tail,
    read_tail_as_written, scan_backwards,
};
pub use recovery::{Recovery, TornTail, recover};
pub use rotate::{ROTATION_STEPS, Rotation};
pub use segments::{Segment, list as list_segments, segment_path, total_bytes};
use writer::{WriteRequest, Writer};

/// When the writer calls fsync.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FsyncPolicy {
    /// After every batch: an event acknowledged as durable survives a power cut.
    EveryBatch,
    /// Leave it to the OS: survives a crash of the host, not of the machine.
    Never,
}

/// Why the audit trail could not be opened or written.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The file could not be opened, read or written.
    #[error("audit trail {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the filesystem said.
        source: std::io::Error,
    },
    /// The writer task has stopped; nothing more can be recorded.
    #[error("audit writer has stopped")]
    WriterGone,
}

/// An event as broadcast to live subscribers: shared, with its JSON line
/// already made (by the writer's serialization), so that a thousand
/// subscribers cost one serialization, not a thousand.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// The event, as it was sequenced.
    pub event: Arc<Event>,
    /// The event's JSON, without the newline.
    pub json: Arc<str>,
}

/// Called with every event, in id order, as it is recorded (e.g. metrics).
pub type Observer = Box<dyn Fn(&Event) + Send + Sync>;

/// The audit trail: it numbers each event, hands it to one writer task that
/// appends it to the JSONL file (rolled into segments, see [`Rotation`]),
/// and broadcasts it to live subscribers.
pub struct AuditLog {
    path: PathBuf,
    inner: Arc<Inner>,
}

/// What the log shares with its writer thread (which records
/// `audit_rotated` through it).
pub(crate) struct Inner {
    /// Where each line of the live file starts, by kind and alertname: `GET /audit`'s filters.
    index: Arc<AuditIndex>,
    /// False from a failed write until the next one succeeds.
    writable: Arc<std::sync::atomic::AtomicBool>,
    state: Mutex<Sequencer>,
    events: broadcast::Sender<Recorded>,
    observer: Option<Observer>,
    /// Written on every event when the host is one replica of a cluster.
    replica: std::sync::OnceLock<String>,
}

struct Sequencer {
    next_id: u64,
    writer: std::sync::mpsc::Sender<WriteRequest>,
}

impl AuditLog {
    /// Opens (or creates) the trail with the default [`Rotation`]; see
    /// [`AuditLog::open_with`].
    pub fn open(
        path: &Path,
        fsync: FsyncPolicy,
        observer: Option<Observer>,
    ) -> Result<(Self, Recovery), AuditError> {
        Self::open_with(path, fsync, Rotation::default(), observer)
    }

    /// Opens (or creates) the trail, finishes a rotation a crash cut short,
    /// sets a torn last line aside, and starts the writer. Ids continue
    /// after the highest id in the trail (in segment 1 if the live file
    /// has none).
    pub fn open_with(
        path: &Path,
        fsync: FsyncPolicy,
        rotation: Rotation,
        observer: Option<Observer>,
    ) -> Result<(Self, Recovery), AuditError> {
        let io_err = |source| AuditError::Io {
            path: path.to_owned(),
            source,
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(io_err)?;
        }
        let finished_rotation = rotate::finish_interrupted(path).map_err(io_err)?;
        let mut recovery = recovery::recover(path).map_err(io_err)?;
        recovery.finished_rotation = finished_rotation;
        let index = Arc::new(AuditIndex::build(path).map_err(io_err)?);
        let writable = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let writer = Writer::open(path, fsync, rotation, writable.clone(), index.clone()).map_err(io_err)?;
        let (tx, rx) = Writer::channel();
        let (events, _) = broadcast::channel(4096);
        let inner = Arc::new(Inner {
            index,
            writable,
            state: Mutex::new(Sequencer {
                next_id: recovery.last_id + 1,
                writer: tx,
            }),
            events,
            observer,
            replica: std::sync::OnceLock::new(),
        });
        writer.spawn(Arc::downgrade(&inner), rx).map_err(io_err)?;
        let log = Self {
            path: path.to_owned(),
            inner,
        };
        Ok((log, recovery))
    }

    /// Names the replica on every event recorded from now on (set once, at
    /// start, before anything else records).
    pub fn set_replica(&mut self, replica: Option<String>) {
        if let Some(replica) = replica {
            let _ = self.inner.replica.set(replica);
        }
    }

    /// The JSONL file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// False while the trail cannot be written (a full disk, an I/O error):
    /// from a failed write until the next write succeeds.
    pub fn is_writable(&self) -> bool {
        self.inner.writable.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Records an event without waiting for the disk.
    pub fn emit(&self, event: EventBody) -> Event {
        self.inner.enqueue_all(vec![event], None).remove(0)
    }

    /// Records an event and waits until the writer has committed it
    /// (written, and fsynced under [`FsyncPolicy::EveryBatch`]).
    pub async fn emit_durable(&self, event: EventBody) -> Result<Event, AuditError> {
        let mut events = self.emit_all_durable(vec![event]).await?;
        Ok(events.remove(0))
    }

    /// Waits until every event queued so far is committed.
    pub async fn flush(&self) -> Result<(), AuditError> {
        let (tx, rx) = oneshot::channel();
        {
            let state = self.inner.state.lock().unwrap_or_else(|p| p.into_inner());
            let barrier = WriteRequest {
                line: Vec::new(),
                heads: Vec::new(),
                ack: Some(tx),
            };
            state.writer.send(barrier).map_err(|_| AuditError::WriterGone)?;
        }
        self.committed(rx).await
    }

    /// The id the next event will get.
    pub fn next_id(&self) -> u64 {
        self.inner.state.lock().unwrap_or_else(|p| p.into_inner()).next_id
    }

    /// The newest `n` committed events matching `filter`, oldest first, as
    /// their lines were written, from the live file and then its rolled
    /// segments: the live file through the index when the filter names a
    /// kind or an alertname, else by reading the files from their ends.
    /// Blocking (file reads): call it from a blocking thread. It never
    /// holds up the writer for long (the index is looked at in bounded
    /// steps) and does not wait for it; see [`AuditLog::flush`] for
    /// read-your-writes.
    pub fn read_tail(
        &self,
        filter: &AuditFilter,
        n: usize,
    ) -> std::io::Result<Vec<Box<serde_json::value::RawValue>>> {
        if n == 0 {
            return Ok(Vec::new());
        }
        let index = &self.inner.index;
        loop {
            let (live, rolled, generation) = {
                let _gate = segments::gate_read();
                (
                    reader::open_if_exists(&self.path)?,
                    segments::open_all(&self.path)?,
                    index.generation(),
                )
            };
            let mut tail = reader::Tail::new(filter, n);
            match index.read_tail(live.as_ref(), generation, filter, &mut tail)? {
                index::IndexRead::NotNarrowed => return read_tail_as_written(&self.path, filter, n),
                // Read again, from the files as they are now.
                index::IndexRead::Rolled => continue,
                index::IndexRead::Read => {}
            }
            if !tail.stopped() {
                reader::offer_segments(&mut tail, filter, &rolled)?;
            }
            return Ok(tail.into_events());
        }
    }

    /// A reader of the committed lines after the event with id `after`,
    /// oldest first, batch by batch, across rolled segments: the start is
    /// found once (a binary search over the index, or the edges of the
    /// segments) and each batch goes on from the last, so that catching up
    /// on a long trail costs one read of what is caught up on. Blocking
    /// (file reads): call it, and the reader, from a blocking thread. See
    /// [`AuditLog::flush`] for read-your-writes.
    pub fn read_after(&self, after: u64) -> std::io::Result<ForwardReader> {
        ForwardReader::after(&self.path, self.inner.index.clone(), after)
    }

    /// Live feed of every event after it is queued for the file.
    pub fn subscribe(&self) -> broadcast::Receiver<Recorded> {
        self.inner.events.subscribe()
    }

    /// Records events together: one write, so that a kill never keeps the
    /// first without the rest (a torn write is set aside at the next start).
    pub fn emit_all(&self, bodies: Vec<EventBody>) -> Vec<Event> {
        self.inner.enqueue_all(bodies, None)
    }

    /// As [`AuditLog::emit_all`], waiting until the writer has committed them.
    pub async fn emit_all_durable(&self, bodies: Vec<EventBody>) -> Result<Vec<Event>, AuditError> {
        let (tx, rx) = oneshot::channel();
        let events = self.inner.enqueue_all(bodies, Some(tx));
        self.committed(rx).await?;
        Ok(events)
    }

    /// The writer's answer to a commit request, as an [`AuditError`].
    async fn committed(&self, ack: oneshot::Receiver<std::io::Result<()>>) -> Result<(), AuditError> {
        match ack.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(source)) => Err(AuditError::Io {
                path: self.path.clone(),
                source,
            }),
            Err(_) => Err(AuditError::WriterGone),
        }
    }
}

impl Inner {
    pub(crate) fn enqueue_all(
        &self,
        bodies: Vec<EventBody>,
        ack: Option<oneshot::Sender<std::io::Result<()>>>,
    ) -> Vec<Event> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let ts = unix_now();
        let mut events = Vec::with_capacity(bodies.len());
        let mut jsons = Vec::with_capacity(bodies.len());
        let mut line = Vec::new();
        let mut heads = Vec::with_capacity(bodies.len());
        for body in bodies {
            let event = Event {
                id: state.next_id,
                ts,
                replica: self.replica.get().cloned(),
                body,
            };
            state.next_id += 1;
            let json: Arc<str> = serde_json::to_string(&event).expect("events serialize").into();
            line.extend_from_slice(json.as_bytes());
            line.push(b'\n');
            heads.push(LineHead {
                len: json.len() as u64 + 1,
                kind: AuditIndex::event_kind_id(event.kind()),
                alertname: self.index.alertname_id(event.alertname()),
            });
            events.push(event);
            jsons.push(json);
        }
        if let Err(std::sync::mpsc::SendError(request)) = state.writer.send(WriteRequest { line, heads, ack })
        {
            tracing::error!(
                events = events.len(),
                "audit writer has stopped; events not persisted"
            );
            if let Some(ack) = request.ack {
                let _ = ack.send(Err(std::io::Error::other("audit writer has stopped")));
            }
        }
        for (event, json) in events.iter().zip(jsons) {
            if let Some(observer) = &self.observer {
                observer(event);
            }
            // No subscribers is normal.
            let _ = self.events.send(Recorded {
                event: Arc::new(event.clone()),
                json,
            });
        }
        events
    }
}
