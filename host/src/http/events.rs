//! `GET /events`: the live event stream (Server-Sent Events).
//!
//! Each subscriber gets a task that first replays from the audit trail what
//! it missed (`Last-Event-ID`), then forwards live events. The task reads the
//! host's broadcast channel, which never blocks the host: a subscriber that
//! reads too slowly falls behind in that channel, is told how many events it
//! missed, and is caught up from the audit trail. Memory per subscriber is
//! bounded by the channel sizes.

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

use super::{ApiError, SseSubscribers, query_pairs};
use crate::config::Config;
use crate::metrics::Metrics;
use autoheal_core::audit::{AuditLog, Recorded, scan_backwards};
use autoheal_core::event::Event;

/// Events read from the audit trail at a time when a subscriber catches up.
const REPLAY_BATCH: usize = 2_000;
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
    State(audit): State<Arc<AuditLog>>,
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
    let live = audit.subscribe();
    let (tx, rx) = mpsc::channel(SUBSCRIBER_QUEUE);
    tokio::spawn(async move {
        tokio::select! {
            () = forward(audit, live, tx, filter, last_id) => {}
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

/// Runs until the client goes away.
async fn forward(
    audit: Arc<AuditLog>,
    mut live: broadcast::Receiver<Recorded>,
    tx: Sink,
    filter: StreamFilter,
    resume_after: Option<u64>,
) {
    // Without Last-Event-ID a subscriber starts with what happens next.
    let mut last_sent = resume_after.unwrap_or_else(|| audit.next_id().saturating_sub(1));
    if resume_after.is_some() && catch_up(&audit, &tx, &filter, &mut last_sent).await.is_break() {
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
            if catch_up(&audit, &tx, &filter, &mut last_sent).await.is_break() {
                return;
            }
        }
    }
}

/// Sends the events after `last_sent` from the audit trail, in batches of
/// at most [`REPLAY_BATCH`] so that a long absence costs bounded memory.
async fn catch_up(
    audit: &AuditLog,
    tx: &Sink,
    filter: &StreamFilter,
    last_sent: &mut u64,
) -> ControlFlow<()> {
    if audit.flush().await.is_err() {
        return ControlFlow::Break(());
    }
    loop {
        let after = *last_sent;
        let path = audit.path().to_owned();
        let Ok(Ok((events, more))) = tokio::task::spawn_blocking(move || oldest_after(&path, after)).await
        else {
            return ControlFlow::Break(());
        };
        let mut chunk = String::new();
        for (event, json) in events {
            *last_sent = (*last_sent).max(event.id);
            if filter.matches(&event) {
                push_message(&mut chunk, event.id, &json);
            }
            if chunk.len() >= MAX_CHUNK
                && tx
                    .send(Ok(Bytes::from(std::mem::take(&mut chunk))))
                    .await
                    .is_err()
            {
                return ControlFlow::Break(());
            }
        }
        if !chunk.is_empty() && tx.send(Ok(Bytes::from(chunk))).await.is_err() {
            return ControlFlow::Break(());
        }
        if !more {
            return ControlFlow::Continue(());
        }
    }
}

/// The oldest [`REPLAY_BATCH`] events with an id above `after`, oldest
/// first, and whether there are more after them.
/// Each event comes with its line from the trail, which is its JSON already.
fn oldest_after(path: &std::path::Path, after: u64) -> std::io::Result<(Vec<(Event, String)>, bool)> {
    let mut window = std::collections::VecDeque::with_capacity(REPLAY_BATCH);
    let mut more = false;
    scan_backwards(path, |line| {
        let Ok(event) = serde_json::from_slice::<Event>(line) else {
            return ControlFlow::Continue(());
        };
        if event.id <= after {
            return ControlFlow::Break(());
        }
        // Scanning backwards: each event is older than those kept so far.
        if window.len() == REPLAY_BATCH {
            window.pop_front();
            more = true;
        }
        window.push_back((event, String::from_utf8_lossy(line).into_owned()));
        ControlFlow::Continue(())
    })?;
    let mut events: Vec<(Event, String)> = window.into();
    events.reverse();
    Ok((events, more))
}

/// One SSE message. Event JSON is a single line, so one `data:` field holds it.
fn push_message(chunk: &mut String, id: u64, json: &str) {
    use std::fmt::Write;
    let _ = write!(chunk, "id: {id}\ndata: {json}\n\n");
}
