//! The switches shared between this replica's copy (`switches.json`) and
//! the cluster's key: an operator's flip is written to both; once a second
//! the cluster's is read, which also tells whether the cluster answers.
//!
//! One lock covers a flip (local, then etcd) and a read of the cluster's
//! key with its adoption, so that a read taken just before a flip never
//! undoes it. A flip made while etcd does not answer takes effect on this
//! replica at once and is written to the cluster when it answers again
//! (the last flip wins); meanwhile no action runs for real anyway.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use autoheal_core::audit::AuditLog;
use autoheal_core::event::EventBody;

use super::{Cluster, ClusterError};
use crate::switches::{Change, SwitchError, SwitchState, Switches};

/// How often the cluster's switches (and health) are read.
const EVERY: Duration = Duration::from_secs(1);

/// What [`Cluster::follow`] keeps up to date.
pub struct Follower {
    /// This replica's switches.
    pub switches: Arc<Switches>,
    /// Where adoptions are recorded.
    pub audit: Arc<AuditLog>,
    /// Where the other replicas reach this one.
    pub public_url: String,
}

/// A flip's fate in the cluster.
#[derive(Debug)]
pub enum Shared {
    /// Every replica obeys it from its next claim on.
    Yes,
    /// Only this replica for now; written to the cluster when it answers.
    Later(ClusterError),
}

impl Cluster {
    /// An operator's flip: this replica's switches, then the cluster's.
    pub async fn flip(
        &self,
        switches: &Switches,
        enabled: Option<bool>,
        dry_run: Option<bool>,
    ) -> Result<(Change, Shared), SwitchError> {
        let _one = self.switching.lock().await;
        // Refused here (real mode on an open webhook), it goes nowhere.
        let change = switches.set(enabled, dry_run)?;
        let shared = match self.set_switches(change.after).await {
            Ok(()) => {
                *self.unshared.lock().unwrap_or_else(|p| p.into_inner()) = None;
                Shared::Yes
            }
            Err(e) => {
                tracing::warn!(error = %e, "the switches changed on this replica only; they go to the cluster when it answers");
                *self.unshared.lock().unwrap_or_else(|p| p.into_inner()) = Some(change.after);
                Shared::Later(e)
            }
        };
        Ok((change, shared))
    }

    /// At start: the cluster's switches win over this replica's (a replica
    /// started later obeys the flips made before it); the first replica
    /// writes its own.
    pub async fn join(&self, switches: &Switches, audit: &AuditLog) {
        let _one = self.switching.lock().await;
        match self.seed_switches(switches.state()).await {
            Ok(state) => adopt(switches, audit, state),
            Err(e) => tracing::warn!(error = %e, "the cluster's switches could not be read at start"),
        }
    }

    /// Once a second until `shutdown`: writes a flip the cluster missed,
    /// else reads the cluster's switches and adopts them; every few seconds,
    /// lists this replica at `public_url` for the others.
    pub async fn follow(self: Arc<Self>, follower: Follower, shutdown: CancellationToken) {
        let Follower {
            switches,
            audit,
            public_url,
        } = follower;
        let mut registered = tokio::time::Instant::now() - super::members::RENEW_EVERY;
        loop {
            if registered.elapsed() >= super::members::RENEW_EVERY && self.register(&public_url).await.is_ok()
            {
                registered = tokio::time::Instant::now();
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(EVERY) => {}
            }
            let _one = self.switching.lock().await;
            let unshared = *self.unshared.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(state) = unshared {
                if self.set_switches(state).await.is_ok() {
                    tracing::info!(
                        enabled = state.enabled,
                        dry_run = state.dry_run,
                        "a flip made while the cluster was away is shared now"
                    );
                    *self.unshared.lock().unwrap_or_else(|p| p.into_inner()) = None;
                }
                continue;
            }
            if let Ok(Some(state)) = self.switches().await {
                adopt(&switches, &audit, state);
            }
        }
    }
}

/// Makes the cluster's switches this replica's (and records the change),
/// unless they would run actions for real on a replica whose webhook takes
/// no credentials: [`Switches::set`] refuses that under the same lock as an
/// operator's flip, so no flip racing the adoption can combine with it into
/// real mode. Such a replica's claims never act for real then anyway.
fn adopt(switches: &Switches, audit: &AuditLog, state: SwitchState) {
    if state == switches.state() {
        return;
    }
    let change = match switches.set(Some(state.enabled), Some(state.dry_run)) {
        Ok(change) => change,
        Err(SwitchError::RealRefused) => {
            tracing::warn!(
                "the cluster's switches run actions for real, but this replica's webhook takes no credentials: kept as they are"
            );
            return;
        }
        Err(e) => {
            tracing::error!(error = %e, "the cluster's switches could not be saved here");
            return;
        }
    };
    tracing::warn!(
        enabled = state.enabled,
        dry_run = state.dry_run,
        "switches changed by another replica"
    );
    // `autoheal_enabled` follows from the event (`Metrics::observe`).
    audit.emit(EventBody::ModeChanged(
        change.event(autoheal_core::event::ActedBy::id(Some("cluster".into()))),
    ));
}
