//! The body deadline (`[http] body_timeout`): a request's body must arrive
//! within it of the request's head, however it trickles, so that a slow
//! sender cannot hold a webhook slot or a connection for long.

use std::error::Error;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::body::Bytes;
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use tokio::time::{Instant, Sleep};

use crate::metrics::Metrics;

/// Why a request body stopped: its deadline passed.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {0:?} of its head (http.body_timeout)")]
pub struct BodyTimedOut(Duration);

/// Whether `error`, or any error under it, is a [`BodyTimedOut`] (body
/// readers wrap what the body says: `Limited`, axum's `Error`).
pub fn timed_out(error: &(dyn Error + 'static)) -> bool {
    std::iter::successors(Some(error), |e| (*e).source()).any(|e| e.is::<BodyTimedOut>())
}

/// A request body that fails with [`BodyTimedOut`] once its deadline passes.
pub struct Deadline {
    body: Incoming,
    at: Instant,
    limit: Duration,
    /// Made at the first read that has to wait: most bodies are there at once.
    timer: Option<Pin<Box<Sleep>>>,
    metrics: Arc<Metrics>,
}

impl Deadline {
    /// `body`, which must end within `limit` of now (its head has just been read).
    pub fn new(body: Incoming, limit: Duration, metrics: Arc<Metrics>) -> Self {
        Self {
            body,
            at: Instant::now() + limit,
            limit,
            timer: None,
            metrics,
        }
    }
}

impl HttpBody for Deadline {
    type Data = Bytes;
    type Error = Box<dyn Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.body).poll_frame(cx) {
            return Poll::Ready(frame.map(|result| result.map_err(Into::into)));
        }
        let at = this.at;
        let timer = this
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
        ready!(timer.as_mut().poll(cx));
        this.metrics.bound_hit("body_timeout", 1);
        Poll::Ready(Some(Err(BodyTimedOut(this.limit).into())))
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
