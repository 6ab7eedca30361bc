//! `GET /events`: the live event stream (Server-Sent Events).
//!
//! Each subscriber gets a task that first replays from the audit trail what
//! it missed (`Last-Event-ID`), then forwards live events. The task reads the
//! host's broadcast channel, which never blocks the host: a subscriber that
//! reads too slowly falls behind in that channel, is told how many events it
//! missed, and is caught up from the audit trail. Memory per subscriber is
//! bounded by the channel sizes and the replay batch.
//!
//! A catch-up reads the trail forward from the first event after the last
//! one sent (found once, through the audit index), batch by batch, so it
//! costs one read of what it replays; each batch is read and made into SSE
//! text under a permit of `max_concurrent_audit_reads`, as a `GET /audit`
//! is, so that subscribers catching up cannot take every core or keep
//! `/audit` waiting for long.

use std::convert::Infallible;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, State};
use axum::http::header;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;

use super::{ApiError, AuditReads, SseSubscribers, query_pairs};
use crate::config::Config;
use crate::metrics::Metrics;
use autoheal_core::audit::{AuditLog, ForwardBatch, ForwardReader, Recorded};
use autoheal_core::event::Event;

/// Lines read from the audit trail at a time when a subscriber catches up.
const REPLAY_BATCH: usize = 2_000;
/// Bytes read at a time when a subscriber catches up (more only for a
/// single longer line).
const REPLAY_BYTES: usize = 1024 * 1024;
/// Events queued towards one subscriber's connection.
const SUBSCRIBER_QUEUE: usize = 256;
const KEEP_ALIVE: Duration = Duration::from_secs(15);

#[derive(Clone, Default)]
struct StreamFilter {
    kinds: Vec<String>,
    alertnames: Vec<String>,
}

impl StreamFilter {
    fn matches(&self, event: &Event) -> bool {
        (self.kinds.is_empty() || self.kinds.iter().any(|k| k == event.kind().as_str()))
            && (self.alertnames.is_empty()
                || event
                    .alertname()
                    .is_some_and(|a| self.alertnames.iter().any(|n| n == a)))
    }
}

pub(super) async fn events(
    State(config): State<Arc<Config>>,
    State(trail): State<Trail>,
    State(metrics): State<Arc<Metrics>>,
    State(SseSubscribers(subscribers)): State<SseSubscribers>,
    State(shutdown): State<CancellationToken>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let pairs = match query_pairs(query.as_deref()).and_then(|pairs| {
        // `access_token` is the guard's (see `guard.rs`).
        pairs.expect_only(&["kind", "alertname", "last_event_id", "access_token"])?;
        Ok(pairs)
    }) {
        Ok(pairs) => pairs,
        Err(e) => return e.into_response(),
    };
    let filter = StreamFilter {
        kinds: pairs.list("kind"),
        alertnames: pairs.list("alertname"),
    };
    let header_id = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let last_id = match header_id {
        Some(text) => match text.trim().parse::<u64>() {
            Ok(id) => Some(id),
            Err(_) => {
                return ApiError(
                    StatusCode::BAD_REQUEST,
                    format!("Last-Event-ID {text:?} is not an event id"),
                )
                .into_response();
            }
        },
        None => match pairs.one::<u64>("last_event_id") {
            Ok(id) => id,
            Err(e) => return ApiError::from(e).into_response(),
        },
    };

    let max = config.sse_max_subscribers;
    let Some(slot) = SubscriberSlot::take(&subscribers, max) else {
        return ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("too many event stream subscribers (the limit is {max}); try again later"),
        )
        .into_response();
    };
    metrics.sse_subscribers.inc();

    // Subscribe before reading the trail, so nothing falls between the two.
    let live = trail.audit.subscribe();
    let (tx, rx) = mpsc::channel(SUBSCRIBER_QUEUE);
    tokio::spawn(async move {
        tokio::select! {
            () = forward(trail, live, tx, filter, last_id) => {}
            // The host is stopping: end the stream so the connection can close.
            () = shutdown.cancelled() => {}
        }
        metrics.sse_subscribers.dec();
        drop(slot);
    });
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
            // Tell nginx-style proxies not to buffer the stream.
            (header::HeaderName::from_static("x-accel-buffering"), "no"),
        ],
        Body::from_stream(ReceiverStream::new(rx)),
    )
        .into_response()
}

/// Holds one place under the subscriber cap until dropped.
struct SubscriberSlot(Arc<AtomicUsize>);

impl SubscriberSlot {
    fn take(count: &Arc<AtomicUsize>, max: usize) -> Option<Self> {
        count
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| (n < max).then_some(n + 1))
            .ok()
            .map(|_| SubscriberSlot(count.clone()))
    }
}

impl Drop for SubscriberSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// SSE text on its way to the connection. One chunk may hold many messages:
/// when a subscriber is behind, what is waiting goes out in one write
/// instead of one write per event.
type Sink = mpsc::Sender<Result<Bytes, Infallible>>;

/// Largest chunk assembled from waiting events.
const MAX_CHUNK: usize = 64 * 1024;

/// The audit trail, and the permits its readers share (a state part: see
/// `state_parts!`).
pub(super) struct Trail {
    pub(super) audit: Arc<AuditLog>,
    pub(super) reads: AuditReads,
}

/// Runs until the client goes away.
async fn forward(
    trail: Trail,
    mut live: broadcast::Receiver<Recorded>,
    tx: Sink,
    filter: StreamFilter,
    resume_after: Option<u64>,
) {
    // Without Last-Event-ID a subscriber starts with what happens next.
    let mut last_sent = resume_after.unwrap_or_else(|| trail.audit.next_id().saturating_sub(1));
    if resume_after.is_some() && catch_up(&trail, &tx, &filter, &mut last_sent).await.is_break() {
        return;
    }
    let mut last_write = tokio::time::Instant::now();
    loop {
        let received = tokio::select! {
            received = live.recv() => received,
            // The client went away: give the slot back now, not at the next event.
            () = tx.closed() => return,
            // Nothing written for a while (even if events were filtered out):
            // a comment keeps proxies from cutting the idle stream.
            () = tokio::time::sleep_until(last_write + KEEP_ALIVE) => {
                if tx.send(Ok(Bytes::from_static(b": keep-alive\n\n"))).await.is_err() {
                    return;
                }
                last_write = tokio::time::Instant::now();
                continue;
            }
        };
        let mut chunk = String::new();
        let mut next = received;
        let lagged = loop {
            match next {
                Ok(Recorded { event, json }) => {
                    if event.id > last_sent {
                        last_sent = event.id;
                        if filter.matches(&event) {
                            push_message(&mut chunk, event.id, &json);
                        }
                    }
                }
                Err(broadcast::error::RecvError::Lagged(missed)) => break Some(missed),
                Err(broadcast::error::RecvError::Closed) => return,
            }
            if chunk.len() >= MAX_CHUNK {
                break None;
            }
            next = match live.try_recv() {
                Ok(recorded) => Ok(recorded),
                Err(broadcast::error::TryRecvError::Lagged(missed)) => {
                    Err(broadcast::error::RecvError::Lagged(missed))
                }
                Err(broadcast::error::TryRecvError::Closed) => Err(broadcast::error::RecvError::Closed),
                Err(broadcast::error::TryRecvError::Empty) => break None,
            };
        };
        if !chunk.is_empty() {
            if tx.send(Ok(Bytes::from(chunk))).await.is_err() {
                return;
            }
            last_write = tokio::time::Instant::now();
        }
        if let Some(missed) = lagged {
            let notice = format!(
                "event: lagged\ndata: {{\"missed\":{missed},\"resuming_from_audit_after\":{last_sent}}}\n\n"
            );
            if tx.send(Ok(Bytes::from(notice))).await.is_err() {
                return;
            }
            if catch_up(&trail, &tx, &filter, &mut last_sent).await.is_break() {
                return;
            }
        }
    }
}

/// Sends the events after `last_sent` from the audit trail, in batches of
/// at most [`REPLAY_BATCH`] lines so that a long absence costs bounded
/// memory, each read under a permit of the audit reads.
async fn catch_up(trail: &Trail, tx: &Sink, filter: &StreamFilter, last_sent: &mut u64) -> ControlFlow<()> {
    // What was recorded before now (the live feed has the rest) is in the trail.
    if trail.audit.flush().await.is_err() {
        return ControlFlow::Break(());
    }
    // Made by the first batch, under its permit: the search is a read too.
    let mut reader: Option<ForwardReader> = None;
    loop {
        // Waits its turn with `GET /audit` (first come, first served); held
        // while the batch is read and made into text, not while it is sent.
        let permit = tokio::select! {
            permit = trail.reads.0.clone().acquire_owned() => permit,
            // The client went away while waiting: read nothing for it.
            () = tx.closed() => return ControlFlow::Break(()),
        };
        let Ok(permit) = permit else {
            return ControlFlow::Break(());
        };
        let (audit, filter, after) = (trail.audit.clone(), filter.clone(), *last_sent);
        let read = move || {
            let _permit = permit;
            let mut reader = match reader {
                Some(reader) => reader,
                None => audit.read_after(after)?,
            };
            let batch = reader.next_batch(REPLAY_BATCH, REPLAY_BYTES)?;
            let replay = Replay::of(&batch, &filter, after);
            Ok::<_, std::io::Error>((reader, replay))
        };
        let Ok(Ok((next, replay))) = tokio::task::spawn_blocking(read).await else {
            return ControlFlow::Break(());
        };
        reader = Some(next);
        let Some(replay) = replay else {
            return ControlFlow::Continue(());
        };
        *last_sent = replay.last_id;
        for chunk in replay.chunks {
            if tx.send(Ok(Bytes::from(chunk))).await.is_err() {
                return ControlFlow::Break(());
            }
        }
    }
}

/// One batch of the trail as SSE text.
struct Replay {
    /// The highest event id read (sent or filtered out).
    last_id: u64,
    /// The messages, in chunks of about [`MAX_CHUNK`].
    chunks: Vec<String>,
}

impl Replay {
    /// The events of `batch` with an id above `after` that match `filter`;
    /// `None` when the batch is empty (the trail has been read to its end).
    /// Each event is sent as its line in the trail, which is its JSON already.
    fn of(batch: &ForwardBatch, filter: &StreamFilter, after: u64) -> Option<Self> {
        if batch.is_empty() {
            return None;
        }
        let mut replay = Replay {
            last_id: after,
            chunks: Vec::new(),
        };
        let mut chunk = String::new();
        for line in batch.lines() {
            let Ok(event) = serde_json::from_slice::<Event>(line) else {
                continue;
            };
            // Never twice, nor out of order, whatever the file holds.
            if event.id <= replay.last_id {
                continue;
            }
            replay.last_id = event.id;
            if filter.matches(&event) {
                push_message(&mut chunk, event.id, &String::from_utf8_lossy(line));
                if chunk.len() >= MAX_CHUNK {
                    replay.chunks.push(std::mem::take(&mut chunk));
                }
            }
        }
        if !chunk.is_empty() {
            replay.chunks.push(chunk);
        }
        Some(replay)
    }
}

/// One SSE message. Event JSON is a single line, so one `data:` field holds it.
fn push_message(chunk: &mut String, id: u64, json: &str) {
    use std::fmt::Write;
    let _ = write!(chunk, "id: {id}\ndata: {json}\n\n");
}
