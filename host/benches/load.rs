//! The webhook paths under closed-loop load, each against a floor measured
//! in the same run: a bare axum server that parses the same webhook JSON
//! into the same `WebhookPayload` and answers a small JSON body. Every row
//! reports autoheal / floor, so a busy machine shows in both.
//!
//! The host's limits are raised here (the plugin's `max_concurrent` 64,
//! `max_pending_actions` 100,000) so that these rows measure the webhook
//! path itself; `benches/actions.rs` counts the actions run with the
//! limits as shipped.
//!
//! Scenarios: the cooldown-skip path (one alert), the act-every-time path
//! (cooldown 0, dry-run: a real plugin invocation per request) and
//! 50-alert webhooks (Alertmanager's groups, skip path); 1 and 50
//! connections each. The load generator is this process's own (HTTP/1.1
//! keep-alive over raw TCP, one task per connection, closed loop), on the
//! same two cores as the server — as on the machine of issue 13.
//!
//! Run: `cargo xtask bench` (builds in release, prints the machine and the
//! tables), or `cargo xtask build-plugins && cargo bench -p autoheal --bench load`.
//! SECONDS (default 5) sets each run's length.

#[allow(dead_code)] // each bench uses some of the shared helpers
mod common;

use std::time::Duration;

use autoheal_core::audit::FsyncPolicy;
use common::loadgen::{
    autoheal_server, bench_runtime, closed_loop, floor_server, ms, open_loop, post_alert, run_length,
    wait_for_empty_queue, webhook,
};

// The allocator the `autoheal` binary uses.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let duration = run_length(5);
    // ONLY=act runs the rows whose scenario contains "act" (for profiling).
    let only = std::env::var("ONLY").ok();
    let runtime = bench_runtime();
    runtime.block_on(async {
        let floor = floor_server().await;
        // Not the limits as shipped: the `actions` bench measures those.
        println!(
            "Limits changed for these rows: the bundled manifest's `max_concurrent` 64 (shipped: 4), \
             `max_pending_actions` 100,000 (default: 1,024); the act rows also set its cooldown to 0s and \
             `min_uptime_sec` to 0.\n"
        );
        println!(
            "| scenario | fsync | connections | floor req/s | autoheal req/s | autoheal / floor | autoheal p50 | autoheal p99 | non-200 |"
        );
        println!("|---|---|---|---|---|---|---|---|---|");
        // The default first: every webhook's events are fsynced before it is answered.
        for (fsync, fsync_name) in [(FsyncPolicy::EveryBatch, "every_batch"), (FsyncPolicy::Never, "never")] {
            let skip_dir = tempfile::tempdir().unwrap();
            let skip = autoheal_server(skip_dir.path(), "10m", fsync).await;
            let act_dir = tempfile::tempdir().unwrap();
            let act = autoheal_server(act_dir.path(), "0s", fsync).await;
            let (one, fifty) = (webhook(1), webhook(50));
            // Prime: the first request acts and starts the cooldowns (the act
            // server acts on every alert: one webhook, not a backlog).
            closed_loop(skip, &post_alert(skip, &fifty), 1, Duration::from_millis(200)).await;
            closed_loop(act, &post_alert(act, &one), 1, Duration::from_millis(1)).await;
            for (name, addr, body) in [
                ("cooldown skip, 1 alert", skip, &one),
                ("act every time (dry-run), 1 alert", act, &one),
                ("50-alert webhooks, skip", skip, &fifty),
            ] {
                if !only.as_deref().is_none_or(|only| name.contains(only)) {
                    continue;
                }
                for connections in [1, 50] {
                    let base = closed_loop(floor, &post_alert(floor, body), connections, duration).await;
                    let run = closed_loop(addr, &post_alert(addr, body), connections, duration).await;
                    println!(
                        "| {name} | {fsync_name} | {connections} | {:.0} | {:.0} | {:.2} | {} | {} | {} |",
                        base.rate(),
                        run.rate(),
                        run.rate() / base.rate(),
                        ms(run.p50),
                        ms(run.p99),
                        run.errors + base.errors
                    );
                    // The act rows leave actions queued: the next row is measured without them.
                    wait_for_empty_queue(addr).await;
                }
            }
            // Latency at a fixed rate, the act path (one plugin invocation per request).
            if only.as_deref().is_none_or(|only| "open loop act".contains(only)) {
                let rate = 1000;
                let base = open_loop(floor, &post_alert(floor, &one), rate, 20, duration).await;
                let run = open_loop(act, &post_alert(act, &one), rate, 20, duration).await;
                println!(
                    "| act every time, open loop {rate}/s over 20 connections (floor p99 {}) | {fsync_name} | 20 | {:.0} | {:.0} | {:.2} | {} | {} | {} |",
                    ms(base.p99),
                    base.rate(),
                    run.rate(),
                    run.rate() / base.rate(),
                    ms(run.p50),
                    ms(run.p99),
                    run.errors + base.errors
                );
            }
        }
    });
}
