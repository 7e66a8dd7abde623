//! The parallel executor's scheduler: which work item may run now, and how
//! far the durable checkpoint may move.
//!
//! **Lock sets.** Every work item names the aggregates it touches (its
//! target plus its source: a clone's source volume or snapshot, an export's
//! source, a create-from-image's image, a rollback's snapshot). Each
//! aggregate has a queue of the items that touch it, in log order. An item
//! runs only when it is at the front of every one of its queues, so work on
//! one aggregate keeps the log's order (extend then delete; a snapshot of V
//! then a clone of V; a clone of S then the deletion of S), while items with
//! disjoint lock sets run concurrently, up to `workers` at once.
//!
//! **Low-water mark.** Items finish out of order, so the checkpoint can no
//! longer be "the last handled position". It is the position below which
//! every work item is handled: (smallest outstanding item − 1), or the read
//! position when nothing is outstanding. Each outcome transaction moves it
//! forward (never back) to the bound computed *on the writer thread* with
//! the item itself counted as done — so the outcome and "handled up to
//! here" still commit together, and a crash resumes at the oldest item
//! whose outcome is not durable. Items after it may be redone; that is the
//! at-least-once delivery the steps already tolerate (idempotent backend
//! operations, outcome commands that decide nothing on an aggregate that
//! moved on).

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use uuid::Uuid;

/// An aggregate a work item touches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Key {
    Volume(Uuid),
    Snapshot(Uuid),
    Image(Uuid),
}

/// What has been read, and which work items are not yet handled. Shared by
/// the dispatcher (which adds and removes items) and the outcome
/// transactions (which read the low-water mark on the writer thread).
#[derive(Debug, Default)]
pub(crate) struct Tracker {
    /// Every event up to here has been read (and its work, if any, is in
    /// `outstanding`). None until the durable checkpoint is loaded.
    pub read_to: Option<u64>,
    /// Positions of work items read but not yet handled.
    pub outstanding: BTreeSet<u64>,
}

impl Tracker {
    /// The checkpoint an outcome for `done` may set: everything below the
    /// oldest other outstanding item is handled.
    pub fn low_water(&self, done: u64) -> u64 {
        match self.outstanding.iter().find(|p| **p != done) {
            Some(p) => p - 1,
            None => self.read_to.unwrap_or(0),
        }
    }
}

#[derive(Clone, Default)]
pub(crate) struct SharedTracker(Arc<Mutex<Tracker>>);

impl SharedTracker {
    pub fn lock(&self) -> MutexGuard<'_, Tracker> {
        // Only plain sets inside; a panic elsewhere leaves them consistent.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Per-aggregate queues of item positions, in log order.
#[derive(Debug, Default)]
pub(crate) struct LockTable {
    queues: HashMap<Key, VecDeque<u64>>,
    keys: HashMap<u64, Vec<Key>>,
}

impl LockTable {
    /// Queues item `pos` behind everything earlier on its keys; true if it
    /// may run now.
    pub fn admit(&mut self, pos: u64, keys: Vec<Key>) -> bool {
        for k in &keys {
            let q = self.queues.entry(*k).or_default();
            debug_assert!(q.back().is_none_or(|b| *b < pos), "log order per key");
            q.push_back(pos);
        }
        self.keys.insert(pos, keys);
        self.runnable(pos)
    }

    /// True if `pos` is at the front of all its queues.
    pub fn runnable(&self, pos: u64) -> bool {
        self.keys.get(&pos).is_some_and(|keys| {
            keys.iter()
                .all(|k| self.queues.get(k).and_then(|q| q.front()) == Some(&pos))
        })
    }

    /// Releases `pos`'s keys; returns the items that became runnable.
    pub fn release(&mut self, pos: u64) -> Vec<u64> {
        let keys = self.keys.remove(&pos).unwrap_or_default();
        let mut fronts = Vec::new();
        for k in &keys {
            if let Some(q) = self.queues.get_mut(k) {
                debug_assert_eq!(q.front(), Some(&pos), "only a running item releases");
                q.retain(|p| *p != pos);
                match q.front() {
                    Some(f) => fronts.push(*f),
                    None => {
                        self.queues.remove(k);
                    }
                }
            }
        }
        fronts.sort_unstable();
        fronts.dedup();
        fronts.retain(|p| self.runnable(*p));
        fronts
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_on_one_key_run_in_order_and_disjoint_ones_at_once() {
        let (a, b, c) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let mut t = LockTable::default();
        assert!(t.admit(1, vec![Key::Volume(a)]));
        assert!(t.admit(2, vec![Key::Volume(b)]), "disjoint: runs at once");
        // A clone of a into c waits for a's earlier work.
        assert!(!t.admit(3, vec![Key::Volume(c), Key::Volume(a)]));
        // c's own later work waits for the clone.
        assert!(!t.admit(4, vec![Key::Volume(c)]));
        assert_eq!(t.release(2), Vec::<u64>::new());
        assert_eq!(t.release(1), vec![3]);
        assert_eq!(t.release(3), vec![4]);
        assert_eq!(t.release(4), Vec::<u64>::new());
        assert_eq!(t.len(), 0);
    }

    #[test]
    fn the_low_water_mark_stops_below_the_oldest_outstanding_item() {
        let mut t = Tracker {
            read_to: Some(20),
            ..Default::default()
        };
        t.outstanding.extend([5, 8, 13]);
        assert_eq!(t.low_water(8), 4);
        assert_eq!(t.low_water(5), 7);
        t.outstanding.remove(&5);
        t.outstanding.remove(&8);
        assert_eq!(t.low_water(13), 20);
    }
}
