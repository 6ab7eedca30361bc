//! `GET /vision`'s reads of Prometheus and Alertmanager, shared between
//! readers: one collection is in flight at a time, and its report answers
//! every request for the same range for `vision_cache_ms`. Anyone who can
//! read may call `/vision`; without this each call would be four upstream
//! requests, one of them a range query.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use autoheal_vision::VisionReport;

/// The last report, behind a lock held while a new one is collected, so
/// that callers queue behind the collection in flight instead of starting
/// their own.
#[derive(Clone, Default)]
pub(super) struct VisionCache(Arc<tokio::sync::Mutex<Option<Cached>>>);

struct Cached {
    range: Duration,
    at: Instant,
    report: VisionReport,
}

impl VisionCache {
    /// The report for `range`: the cached one while younger than `ttl`,
    /// else the one `collect` makes (which is kept). Only the last range is
    /// kept: ranges are many, and one at a time is still one at a time.
    pub async fn get_or_collect<F>(&self, range: Duration, ttl: Duration, collect: F) -> VisionReport
    where
        F: Future<Output = VisionReport>,
    {
        let mut slot = self.0.lock().await;
        if let Some(cached) = slot.as_ref()
            && cached.range == range
            && cached.at.elapsed() < ttl
        {
            return cached.report.clone();
        }
        let report = collect.await;
        *slot = Some(Cached {
            range,
            at: Instant::now(),
            report: report.clone(),
        });
        report
    }
}
