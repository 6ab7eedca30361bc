//! The threads plugins run on: a tokio runtime of their own, apart from the
//! one that serves HTTP, scheduled as batch work.
//!
//! Wasm code does not yield to tokio by itself. Epoch ticks make a computing
//! plugin yield (see `PluginRuntime::invoke`), which keeps plugins fair to
//! one another; running them on their own threads keeps them from holding
//! the server's workers at all. The threads are `SCHED_BATCH`: a woken
//! server thread (the kill switch, `/metrics`, the console) runs before a
//! plugin that computes to its deadline, yet plugins keep a full share of
//! the CPU against other processes — a lower nice value would have starved
//! them on a busy machine, just when remediations are needed.

use std::future::Future;

use tokio::runtime::{Builder, Handle, Runtime};
use tokio::task::JoinHandle;

/// The plugin runtime's threads; shut down in the background when dropped
/// (dropping a runtime inside another one's task would panic).
pub struct PluginWorkers {
    runtime: Option<Runtime>,
    handle: Handle,
}

impl PluginWorkers {
    /// `threads` workers (at least one), named `plugin-worker`.
    pub fn start(threads: usize) -> std::io::Result<Self> {
        let runtime = Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .thread_name("plugin-worker")
            .on_thread_start(schedule_as_batch)
            .enable_all()
            .build()?;
        let handle = runtime.handle().clone();
        Ok(Self {
            runtime: Some(runtime),
            handle,
        })
    }

    /// Runs `work` on the plugin threads; dropping the returned task (the
    /// caller gave up: its deadline, or it was cancelled) aborts the work.
    pub fn spawn<F>(&self, work: F) -> AbortOnDrop<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        AbortOnDrop(self.handle.spawn(work))
    }

    /// Runs `work` on the plugin threads, to its end (not aborted when the
    /// handle is dropped).
    pub fn spawn_detached<F>(&self, work: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.handle.spawn(work)
    }
}

impl Drop for PluginWorkers {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// A spawned task that is aborted when its handle is dropped.
pub struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Future for AbortOnDrop<T> {
    type Output = Result<T, tokio::task::JoinError>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.0).poll(cx)
    }
}

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(target_os = "linux")]
fn schedule_as_batch() {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: `param` is a valid sched_param for the call's duration; pid 0
    // is the calling thread (Linux schedules threads, not processes).
    let failed = unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) } != 0;
    if failed {
        tracing::debug!(error = %std::io::Error::last_os_error(), "plugin thread keeps its scheduling policy");
    }
}

#[cfg(not(target_os = "linux"))]
fn schedule_as_batch() {}
