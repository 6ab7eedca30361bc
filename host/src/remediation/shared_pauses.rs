//! Pauses across replicas: once a tick, this replica takes up the pauses
//! made on others (recording `pause_started` with `shared_from`), ends
//! those resumed on others (recording `pause_ended` with who resumed), and
//! writes to the cluster what it has that the cluster missed (a pause or a
//! resume made while etcd did not answer, or before a restart).

use autoheal_core::audit::AuditLog;
use autoheal_core::event::{ActedBy, EventBody};
use autoheal_core::util::unix_now;

use super::pauses::{NewPause, Pauses};
use crate::cluster::Cluster;

/// One exchange with the cluster; nothing happens if it does not answer.
pub(super) async fn exchange(cluster: &Cluster, pauses: &Pauses, audit: &AuditLog) {
    let listing = pauses.begin_listing();
    let Ok(listed) = cluster.shared_pauses().await else {
        return;
    };
    let now = unix_now();
    let mut events = Vec::new();
    let ids: Vec<String> = listed.iter().map(|shared| shared.pause.id.clone()).collect();
    for shared in listed {
        let id = &shared.pause.id;
        if shared.resumed {
            if let Ok((_, ended)) = pauses.resume(id, ActedBy::id(shared.resumed_by.clone()), true) {
                events.push(EventBody::PauseEnded(ended));
            }
            continue;
        }
        if let Some(by) = pauses.resumed_here(id) {
            // Resumed here while the cluster did not answer.
            let _ = cluster.resume_shared_pause(&shared.pause, by).await;
            continue;
        }
        if pauses.knows(id) {
            pauses.mark_shared(id);
            continue;
        }
        if shared.pause.until <= now {
            continue;
        }
        let origin = shared.pause.replica.clone();
        if let Some(new) = NewPause::from_pause(shared.pause) {
            let event = new.event(origin);
            if pauses.start(new, true).is_ok() {
                events.push(EventBody::PauseStarted(event));
            }
        }
    }
    for pause in pauses.unshared() {
        if !ids.contains(&pause.id) && cluster.publish_pause(&pause).await.is_ok() {
            pauses.mark_shared(&pause.id);
        }
    }
    // The cluster had it and has it no longer, before its end: someone
    // removed the key. Every replica ends it, as the key's absence says.
    for id in pauses.shared_but_gone(listing, &ids, now) {
        if let Ok((_, ended)) = pauses.resume(&id, ActedBy::default(), true) {
            events.push(EventBody::PauseEnded(ended));
        }
    }
    if !events.is_empty() {
        audit.emit_all(events);
    }
}
