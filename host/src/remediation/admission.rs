//! How many actions may be pending (waiting for a sandbox slot or running)
//! at once: in all, and per plugin. An action past either bound is not
//! started and its alert is skipped as `overloaded`, instead of queueing
//! without end behind a plugin that hangs or a flood of alerts.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The counts of pending actions.
pub struct Admission {
    max_total: usize,
    pending: Mutex<Pending>,
}

#[derive(Default)]
struct Pending {
    total: usize,
    per_plugin: HashMap<String, usize>,
}

/// One admitted action; dropping it (when the action is done) frees its place.
pub struct Slot {
    admission: Arc<Admission>,
    plugin: String,
}

/// Why an action was not admitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// `max_pending_actions` actions are pending.
    Host(usize),
    /// The plugin's `limits.max_concurrent` actions are pending.
    Plugin(usize),
}

impl Admission {
    /// At most `max_total` pending actions in all.
    pub fn new(max_total: usize) -> Arc<Self> {
        Arc::new(Self {
            max_total,
            pending: Mutex::new(Pending::default()),
        })
    }

    /// A place for one more action of `plugin`, which may have `max_for_plugin` pending.
    pub fn try_admit(self: &Arc<Self>, plugin: &str, max_for_plugin: usize) -> Result<Slot, Refusal> {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        if pending.total >= self.max_total {
            return Err(Refusal::Host(self.max_total));
        }
        let of_plugin = pending.per_plugin.entry(plugin.to_owned()).or_default();
        if *of_plugin >= max_for_plugin {
            return Err(Refusal::Plugin(max_for_plugin));
        }
        *of_plugin += 1;
        pending.total += 1;
        Ok(Slot {
            admission: self.clone(),
            plugin: plugin.to_owned(),
        })
    }

    /// Actions pending now.
    pub fn pending(&self) -> usize {
        self.pending.lock().unwrap_or_else(|p| p.into_inner()).total
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut pending = self.admission.pending.lock().unwrap_or_else(|p| p.into_inner());
        pending.total -= 1;
        if let Some(count) = pending.per_plugin.get_mut(&self.plugin) {
            *count -= 1;
            if *count == 0 {
                pending.per_plugin.remove(&self.plugin);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_in_all_and_per_plugin_and_places_come_back() {
        let admission = Admission::new(3);
        let a1 = admission.try_admit("a", 2).unwrap();
        let _a2 = admission.try_admit("a", 2).unwrap();
        assert_eq!(admission.try_admit("a", 2).err(), Some(Refusal::Plugin(2)));
        let _b1 = admission.try_admit("b", 2).unwrap();
        assert_eq!(admission.try_admit("c", 2).err(), Some(Refusal::Host(3)));
        drop(a1);
        assert_eq!(admission.pending(), 2);
        assert!(admission.try_admit("a", 2).is_ok());
    }
}
