//! One connection, held to its deadlines. What it is doing — waiting for a
//! request, reading a request's head, or busy with requests — is fed by its
//! reads and by its requests and their answers; each phase but the busy one
//! has a deadline (`[http] idle_timeout`, `header_timeout`), past which the
//! connection is closed. A busy connection's body has its own deadline
//! (`deadline`); an answer may stream as long as it likes (`GET /events`).
//!
//! hyper's own header timeout is off: it counts from the end of the last
//! answer, so it cannot tell a slow head from a kept-alive connection that
//! waits for its next request.

use std::convert::Infallible;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use hyper::Request;
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use super::deadline::Deadline;
use crate::config::HttpLimits;
use crate::metrics::Metrics;

/// At the connection cap, a connection idle this long is closed to make
/// room: long enough for a client that has just connected to send its
/// request, short against one that connects to send nothing.
const PRESSURE_GRACE: Duration = Duration::from_secs(1);

/// What every connection of a server shares.
pub struct Shared {
    pub limits: HttpLimits,
    pub metrics: Arc<Metrics>,
    /// Notified when the connection cap is reached: idle connections close
    /// to make room (their clients reconnect, as after any keep-alive close).
    pub pressure: Notify,
    /// Cancelled when the server stops: connections finish what is in
    /// flight and close.
    pub stopping: CancellationToken,
    /// Cancelled when the stop's bound has passed: connections close now.
    pub cut: CancellationToken,
}

/// Serves `app` on `stream` until the client or a deadline closes it.
pub async fn serve(stream: TcpStream, app: Router, shared: Arc<Shared>) {
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Watched {
        stream,
        activity: activity.clone(),
    });
    let service = {
        let (activity, limits, metrics) = (activity.clone(), shared.limits, shared.metrics.clone());
        hyper::service::service_fn(move |request: Request<Incoming>| {
            let in_flight = InFlight::start(activity.clone());
            let request =
                request.map(|body| Body::new(Deadline::new(body, limits.body_timeout, metrics.clone())));
            let answer = app.clone().oneshot(request);
            async move {
                let response = answer.await?;
                Ok::<_, Infallible>(response.map(|body| Answer {
                    body,
                    _in_flight: in_flight,
                }))
            }
        })
    };
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.header_read_timeout(None);
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    let mut stopping = false;
    loop {
        let deadline = activity.deadline(&shared.limits);
        let idle = activity.idle_since().is_some();
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%error, "connection ended with an error");
                }
                return;
            }
            () = shared.stopping.cancelled(), if !stopping => {
                stopping = true;
                // An idle connection closes now, a busy one after its answer.
                conn.as_mut().graceful_shutdown();
            }
            () = shared.cut.cancelled() => return,
            () = sleep_until(deadline) => match activity.expired(&shared.limits) {
                Some(Phase::Head(_)) => {
                    shared.metrics.bound_hit("header_timeout", 1);
                    tracing::debug!("request head not read within header_timeout; connection closed");
                    return;
                }
                Some(_) => return,
                None => {}
            },
            () = activity.changed.notified() => {}
            () = shared.pressure.notified(), if idle => {
                if activity.idle_since().is_some_and(|since| since.elapsed() >= PRESSURE_GRACE) {
                    return;
                }
            }
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// What a connection is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// No request on it since then.
    Idle(Instant),
    /// The first bytes of a request came then; its head is not complete.
    Head(Instant),
    /// Requests being handled or answered.
    Busy(usize),
}

/// A connection's phase, and a signal when it changes.
struct Activity {
    phase: Mutex<Phase>,
    /// One permit per change, for the connection's task (`notify_one`
    /// keeps it if the task is not waiting yet).
    changed: Notify,
}

impl Activity {
    fn new() -> Self {
        Self {
            phase: Mutex::new(Phase::Idle(Instant::now())),
            changed: Notify::new(),
        }
    }

    fn update(&self, next: impl FnOnce(Phase) -> Phase) {
        let mut phase = self.phase.lock().expect("no panic while held");
        let before = *phase;
        *phase = next(before);
        if *phase != before {
            self.changed.notify_one();
        }
    }

    fn phase(&self) -> Phase {
        *self.phase.lock().expect("no panic while held")
    }

    /// Bytes came in: an idle connection is now reading a request's head.
    fn read(&self) {
        self.update(|phase| match phase {
            Phase::Idle(_) => Phase::Head(Instant::now()),
            other => other,
        });
    }

    /// Since when the connection has had no request on it, if it has none.
    fn idle_since(&self) -> Option<Instant> {
        match self.phase() {
            Phase::Idle(since) => Some(since),
            _ => None,
        }
    }

    /// When the phase now must end; `None` while busy.
    fn deadline(&self, limits: &HttpLimits) -> Option<Instant> {
        match self.phase() {
            Phase::Idle(since) => Some(since + limits.idle_timeout),
            Phase::Head(since) => Some(since + limits.header_timeout),
            Phase::Busy(_) => None,
        }
    }

    /// The phase, if it has outlived its deadline.
    fn expired(&self, limits: &HttpLimits) -> Option<Phase> {
        let phase = self.phase();
        self.deadline(limits)
            .filter(|at| *at <= Instant::now())
            .map(|_| phase)
    }
}

/// A request from its head to the end of its answer (or until hyper drops
/// either): the connection is busy meanwhile.
struct InFlight(Arc<Activity>);

impl InFlight {
    fn start(activity: Arc<Activity>) -> Self {
        activity.update(|phase| match phase {
            Phase::Busy(n) => Phase::Busy(n + 1),
            _ => Phase::Busy(1),
        });
        Self(activity)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.update(|phase| match phase {
            Phase::Busy(n) if n > 1 => Phase::Busy(n - 1),
            _ => Phase::Idle(Instant::now()),
        });
    }
}

/// An answer's body, holding its request in flight until it is sent.
struct Answer {
    body: Body,
    _in_flight: InFlight,
}

impl HttpBody for Answer {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// The socket, telling the connection's [`Activity`] when bytes come in.
struct Watched {
    stream: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let result = Pin::new(&mut this.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.activity.read();
        }
        result
    }
}

impl AsyncWrite for Watched {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> HttpLimits {
        HttpLimits {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            max_connections: 1,
            stop_timeout: Duration::from_secs(5),
        }
    }

    #[test]
    fn each_phase_has_its_deadline_and_busy_has_none() {
        let limits = limits();
        let activity = Arc::new(Activity::new());
        let opened = activity.idle_since().unwrap();
        assert_eq!(activity.deadline(&limits), Some(opened + limits.idle_timeout));
        activity.read();
        let Phase::Head(head) = activity.phase() else {
            panic!("bytes on an idle connection begin a head")
        };
        assert_eq!(activity.deadline(&limits), Some(head + limits.header_timeout));
        // More bytes of the same head do not move its deadline.
        activity.read();
        assert_eq!(activity.deadline(&limits), Some(head + limits.header_timeout));
        let first = InFlight::start(activity.clone());
        let second = InFlight::start(activity.clone());
        activity.read();
        assert_eq!(activity.deadline(&limits), None, "a body's bytes leave it busy");
        drop(first);
        assert_eq!(activity.deadline(&limits), None, "one request is still in flight");
        drop(second);
        let since = activity.idle_since().expect("idle once both are answered");
        assert!(since >= head);
        assert_eq!(activity.deadline(&limits), Some(since + limits.idle_timeout));
        assert_eq!(activity.expired(&limits), None);
        let short = HttpLimits {
            idle_timeout: Duration::from_millis(1),
            ..limits
        };
        std::thread::sleep(Duration::from_millis(5));
        assert!(matches!(activity.expired(&short), Some(Phase::Idle(_))));
    }
}
