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

/// The audit trail: it numbers each event, hands it to one writer task that appends it to the JSONL file, and broadcasts it to live subscribers.
pub struct AuditLog {
    path: PathBuf,
    /// Where each line starts, by kind and alertname: `GET /audit`'s filters.
    index: Arc<AuditIndex>,
    /// False from a failed write until the next one succeeds.
    writable: Arc<std::sync::atomic::AtomicBool>,
    state: Mutex<Sequencer>,
    events: broadcast::Sender<Recorded>,
    observer: Option<Observer>,
    /// Written on every event when the host is one replica of a cluster.
    replica: Option<String>,
}

struct Sequencer {
    next_id: u64,
    writer: std::sync::mpsc::Sender<WriteRequest>,
}

impl AuditLog {
    /// Opens (or creates) the trail, sets a torn last line aside, and starts
    /// the writer. Ids continue after the highest id in the file.
    pub fn open(
        path: &Path,
        fsync: FsyncPolicy,
        observer: Option<Observer>,
    ) -> Result<(Self, Recovery), AuditError> {
        let io_err = |source| AuditError::Io {
            path: path.to_owned(),
            source,
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(io_err)?;
        }
        let recovery = recovery::recover(path).map_err(io_err)?;
        let index = Arc::new(AuditIndex::build(path).map_err(io_err)?);
        let writable = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let writer = Writer::spawn(path, fsync, writable.clone(), index.clone()).map_err(io_err)?;
        let (events, _) = broadcast::channel(4096);
        let log = Self {
            path: path.to_owned(),
            index,
            writable,
            state: Mutex::new(Sequencer {
                next_id: recovery.last_id + 1,
                writer,
            }),
            events,
            observer,
            replica: None,
        };
        Ok((log, recovery))
    }

    /// Names the replica on every event recorded from now on (set once, at
    /// start, before anything else records).
    pub fn set_replica(&mut self, replica: Option<String>) {
        self.replica = replica;
    }

    /// The JSONL file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// False while the trail cannot be written (a full disk, an I/O error):
    /// from a failed write until the next write succeeds.
    pub fn is_writable(&self) -> bool {
        self.writable.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Records an event without waiting for the disk.
    pub fn emit(&self, event: EventBody) -> Event {
        self.enqueue_all(vec![event], None).remove(0)
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
            let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
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
        self.state.lock().unwrap_or_else(|p| p.into_inner()).next_id
    }

    /// The newest `n` committed events matching `filter`, oldest first, as
    /// their lines were written: from the index when the filter names a kind or an alertname, else by
    /// reading the file from its end. Blocking (file reads): call it from a
    /// blocking thread. It never holds up the writer for long (the index
    /// is looked at in bounded steps) and does not wait for it; see
    /// [`AuditLog::flush`] for read-your-writes.
    pub fn read_tail(
        &self,
        filter: &AuditFilter,
        n: usize,
    ) -> std::io::Result<Vec<Box<serde_json::value::RawValue>>> {
        if n == 0 {
            return Ok(Vec::new());
        }
        match self.index.read_tail(&self.path, filter, n)? {
            Some(events) => Ok(events),
            None => read_tail_as_written(&self.path, filter, n),
        }
    }

    /// A reader of the committed lines after the event with id `after`,
    /// oldest first, batch by batch: the start is found once (a binary
    /// search over the index) and each batch goes on from the last, so that
    /// catching up on a long trail costs one read of what is caught up on.
    /// Blocking (file reads): call it, and the reader, from a blocking
    /// thread. See [`AuditLog::flush`] for read-your-writes.
    pub fn read_after(&self, after: u64) -> std::io::Result<ForwardReader> {
        ForwardReader::after(&self.path, self.index.clone(), after)
    }

    /// Live feed of every event after it is queued for the file.
    pub fn subscribe(&self) -> broadcast::Receiver<Recorded> {
        self.events.subscribe()
    }

    /// Records events together: one write, so that a kill never keeps the
    /// first without the rest (a torn write is set aside at the next start).
    pub fn emit_all(&self, bodies: Vec<EventBody>) -> Vec<Event> {
        self.enqueue_all(bodies, None)
    }

    /// As [`AuditLog::emit_all`], waiting until the writer has committed them.
    pub async fn emit_all_durable(&self, bodies: Vec<EventBody>) -> Result<Vec<Event>, AuditError> {
        let (tx, rx) = oneshot::channel();
        let events = self.enqueue_all(bodies, Some(tx));
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

    fn enqueue_all(
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
                replica: self.replica.clone(),
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
