//! The threads plugins run on: a tokio runtime of their own, apart from the
//! one that serves HTTP, at a lower CPU priority.
//!
//! Wasm code does not yield to tokio by itself. Epoch ticks make a computing
//! plugin yield (see `PluginRuntime::invoke`), which keeps plugins fair to
//! one another; running them on their own threads keeps them from holding
//! the server's workers at all, and the lower priority lets the kernel
//! prefer the kill switch, `/metrics` and the console over a plugin that
//! computes to its deadline on a machine with few cores.

use std::future::Future;

use tokio::runtime::{Builder, Handle, Runtime};
use tokio::task::JoinHandle;

/// Nice value of plugin threads (0 is the server's; higher runs less).
const PLUGIN_NICE: i32 = 10;

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
            .on_thread_start(lower_priority)
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
fn lower_priority() {
    // SAFETY: setpriority has no memory-safety preconditions; on Linux the
    // nice value is per thread, and `gettid` names this one.
    let failed =
        unsafe { libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, PLUGIN_NICE) } != 0;
    if failed {
        tracing::debug!(error = %std::io::Error::last_os_error(), "plugin thread keeps its priority");
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_priority() {}
