//! How many components compile at once, and the lane kept for small ones.
//!
//! Each compile is a child process that may use up to
//! `sandbox.compile_memory_mb` and a core: `sandbox.compile_concurrency`
//! of them at most run at once, so that N × the memory bound is what
//! compiles can take together. A Python or JavaScript component
//! (12-20 MB) compiles for tens of seconds, a Rust one (under 1 MB) in
//! about one: large components may take all slots but one, which is kept
//! for small ones, so that a small plugin never waits behind large ones.

use std::sync::{Condvar, Mutex, MutexGuard};

/// Components of fewer bytes than this are small: they may take the slot
/// kept for them. A Rust plugin is ~80 KB; the smallest Python or
/// JavaScript one is over 10 MB.
pub const SMALL_COMPONENT_BYTES: usize = 2 << 20;

/// The compile slots of one runtime.
pub struct CompileSlots {
    limit: usize,
    counts: Mutex<Counts>,
    freed: Condvar,
}

#[derive(Default)]
struct Counts {
    running: usize,
    large: usize,
}

/// A slot taken; given back when dropped.
pub struct Slot<'s> {
    slots: &'s CompileSlots,
    large: bool,
}

impl CompileSlots {
    /// At most `limit` compiles at once (at least one).
    pub fn new(limit: usize) -> Self {
        Self {
            limit: limit.max(1),
            counts: Mutex::new(Counts::default()),
            freed: Condvar::new(),
        }
    }

    /// How many large components may compile at once: all slots but the
    /// small ones' (with one slot, that one: a small one then waits).
    fn large_limit(&self) -> usize {
        self.limit.saturating_sub(1).max(1)
    }

    fn counts(&self) -> MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn admits(&self, counts: &Counts, large: bool) -> bool {
        counts.running < self.limit && (!large || counts.large < self.large_limit())
    }

    /// A slot for a component of `bytes`, if one is free now.
    pub fn try_take(&self, bytes: usize) -> Option<Slot<'_>> {
        let large = bytes >= SMALL_COMPONENT_BYTES;
        let mut counts = self.counts();
        self.admits(&counts, large)
            .then(|| self.enter(&mut counts, large))
    }

    /// A slot for a component of `bytes`, waiting for one (on a blocking
    /// thread: compiles run on those).
    pub fn take(&self, bytes: usize) -> Slot<'_> {
        let large = bytes >= SMALL_COMPONENT_BYTES;
        let mut counts = self.counts();
        while !self.admits(&counts, large) {
            counts = self.freed.wait(counts).unwrap_or_else(|p| p.into_inner());
        }
        self.enter(&mut counts, large)
    }

    fn enter(&self, counts: &mut Counts, large: bool) -> Slot<'_> {
        counts.running += 1;
        counts.large += usize::from(large);
        Slot { slots: self, large }
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let mut counts = self.slots.counts();
        counts.running -= 1;
        counts.large -= usize::from(self.large);
        drop(counts);
        // Every waiter looks again: a freed large slot may admit a small one.
        self.slots.freed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LARGE: usize = 19 << 20;
    const SMALL: usize = 80 << 10;

    #[test]
    fn large_components_leave_a_slot_for_small_ones() {
        let slots = CompileSlots::new(2);
        let first = slots.try_take(LARGE).expect("a large one compiles");
        assert!(
            slots.try_take(LARGE).is_none(),
            "the second slot is kept for small ones"
        );
        let small = slots.try_take(SMALL).expect("a small one takes the kept slot");
        assert!(slots.try_take(SMALL).is_none(), "no more than two at once");
        drop(first);
        let second = slots
            .try_take(LARGE)
            .expect("the next large one, once the first ended");
        drop((small, second));
        // Small ones may take every slot.
        let (_a, _b) = (slots.try_take(SMALL).unwrap(), slots.try_take(SMALL).unwrap());
        assert!(slots.try_take(SMALL).is_none());
    }

    #[test]
    fn with_one_slot_compiles_run_one_at_a_time() {
        let slots = CompileSlots::new(0);
        let large = slots.try_take(LARGE).expect("at least one slot");
        assert!(slots.try_take(SMALL).is_none());
        drop(large);
        assert!(slots.try_take(SMALL).is_some());
    }

    #[test]
    fn a_waiting_compile_takes_the_slot_given_back() {
        let slots = std::sync::Arc::new(CompileSlots::new(1));
        let held = slots.try_take(SMALL).unwrap();
        let waiter = {
            let slots = slots.clone();
            std::thread::spawn(move || drop(slots.take(LARGE)))
        };
        drop(held);
        waiter.join().unwrap();
        assert!(slots.try_take(LARGE).is_some(), "the waiter gave its slot back");
    }
}
