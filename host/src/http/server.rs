//! The listener: at most `[http] max_connections` connections at once,
//! each held to its deadlines (`conn`), and a stop that waits for requests
//! in flight at most `[http] stop_timeout`.
//!
//! HTTP/1.1 only: what talks to the host (Alertmanager, Prometheus,
//! browsers, the CLI) speaks it to a plain `http://` address.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::conn::{self, Shared};
use crate::app::Host;

/// Descriptors the host keeps besides its connections: the trail and
/// plugin files, engine, etcd, Alertmanager and Prometheus sockets, the
/// runtime's own.
const RESERVED_DESCRIPTORS: usize = 128;

/// How often, while at the cap, idle connections are told again to make room.
const PRESSURE_REPEAT: Duration = Duration::from_millis(100);

/// After a failed accept (out of descriptors, say), the pause before the
/// next, so that the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Serves `host`'s routes on `listener` until `stop` completes, then waits
/// for requests in flight at most `[http] stop_timeout` and cuts the rest.
pub async fn serve(listener: TcpListener, host: Host, stop: impl Future<Output = ()>) {
    let mut limits = host.config.http;
    limits.max_connections = fit_descriptors(limits.max_connections);
    let shared = Arc::new(Shared {
        limits,
        metrics: host.metrics.clone(),
        pressure: Default::default(),
        stopping: CancellationToken::new(),
        cut: CancellationToken::new(),
    });
    let app = super::router(host);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let connections = TaskTracker::new();
    tokio::pin!(stop);
    loop {
        let stream = tokio::select! {
            () = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    tracing::warn!(%error, "cannot accept a connection");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
        };
        // Accepted first, so that room is made only for a connection that
        // waits: at most this one is open beyond the cap.
        let slot = tokio::select! {
            () = &mut stop => break,
            slot = free_slot(&slots, &shared) => slot,
        };
        let (app, shared) = (app.clone(), shared.clone());
        connections.spawn(async move {
            conn::serve(stream, app, shared).await;
            drop(slot);
        });
    }
    // New connections wait in the backlog until the process exits.
    drop(listener);
    shared.stopping.cancel();
    connections.close();
    if tokio::time::timeout(limits.stop_timeout, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            connections = connections.len(),
            "requests still in flight after http.stop_timeout ({:?}); cutting them",
            limits.stop_timeout
        );
        shared.cut.cancel();
        connections.wait().await;
    }
}

/// A place for one more connection. At the cap, idle connections are told
/// to close until one does (or a busy one ends); meanwhile further
/// connections wait in the listen backlog, which holds no descriptor of ours.
async fn free_slot(slots: &Arc<Semaphore>, shared: &Shared) -> OwnedSemaphorePermit {
    if let Ok(slot) = slots.clone().try_acquire_owned() {
        return slot;
    }
    shared.metrics.bound_hit("max_connections", 1);
    loop {
        shared.pressure.notify_waiters();
        if let Ok(slot) = tokio::time::timeout(PRESSURE_REPEAT, slots.clone().acquire_owned()).await {
            return slot.expect("the semaphore is never closed");
        }
    }
}

/// `max_connections`, or fewer if the descriptor limit cannot hold them.
/// The soft limit is raised toward the hard one first, as far as needed.
#[cfg(unix)]
fn fit_descriptors(max_connections: usize) -> usize {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes only the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return max_connections;
    }
    let needed = max_connections.saturating_add(RESERVED_DESCRIPTORS) as libc::rlim_t;
    if limit.rlim_cur == libc::RLIM_INFINITY || limit.rlim_cur >= needed {
        return max_connections;
    }
    let raised = libc::rlimit {
        rlim_cur: if limit.rlim_max == libc::RLIM_INFINITY {
            needed
        } else {
            needed.min(limit.rlim_max)
        },
        rlim_max: limit.rlim_max,
    };
    // SAFETY: setrlimit reads only the struct it is given.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
        limit.rlim_cur = raised.rlim_cur;
    }
    let fits = usize::try_from(limit.rlim_cur)
        .unwrap_or(usize::MAX)
        .saturating_sub(RESERVED_DESCRIPTORS)
        .clamp(1, max_connections);
    if fits < max_connections {
        tracing::warn!(
            descriptors = limit.rlim_cur,
            max_connections,
            "the open-file limit cannot hold http.max_connections; serving at most {fits} connections (raise `ulimit -n` or LimitNOFILE)"
        );
    }
    fits
}

#[cfg(not(unix))]
fn fit_descriptors(max_connections: usize) -> usize {
    max_connections
}
