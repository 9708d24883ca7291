//! The refresh schedule: a time-ordered heap of the keys due for a
//! proactive refresh, which the client's refresher task drains.
//!
//! Invariants:
//! - An item names a key *and* the generation it was scheduled for: an item
//!   whose entry was replaced or evicted since is stale, and the refresher
//!   skips it (`Cache::entry_if`); the heap never has to be edited when an
//!   entry changes.
//! - Stale items linger, so the façade prunes the heap when it grows past
//!   twice the cache plus 1,024 items ([`Schedule::prune`]): it never
//!   outgrows the cache by more than that.
//! - The mutex is held only for a push, a pop of due items, a peek or a
//!   prune; never on a cache hit.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::{Arc, Mutex, MutexGuard};

use time::OffsetDateTime;

use super::key::CacheKey;

/// A key due for a proactive refresh.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Due {
    at: i128,
    generation: u64,
    key: KeyOrd,
}

/// A key ordered by its parts (only to sit in the heap).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct KeyOrd(Arc<str>, Arc<str>, Box<str>, Box<str>, Box<str>, bool);

impl From<&CacheKey> for KeyOrd {
    fn from(k: &CacheKey) -> Self {
        KeyOrd(
            k.host.clone(),
            k.client_id.clone(),
            k.tenant().into(),
            k.scope().into(),
            k.extra().into(),
            k.exact,
        )
    }
}

impl From<KeyOrd> for CacheKey {
    fn from(k: KeyOrd) -> Self {
        CacheKey::with_target(k.0, k.1, &k.2, &k.3, &k.4, k.5)
    }
}

/// The heap of refreshes, earliest first.
#[derive(Default)]
pub(super) struct Schedule {
    heap: Mutex<BinaryHeap<Reverse<Due>>>,
}

impl Schedule {
    fn lock(&self) -> MutexGuard<'_, BinaryHeap<Reverse<Due>>> {
        self.heap.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Schedules a refresh of `key` (generation `generation`) at `at`;
    /// returns whether it is the new head (the refresher must wake).
    pub(super) fn push(&self, key: &CacheKey, generation: u64, at: OffsetDateTime) -> bool {
        let mut heap = self.lock();
        let at = at.unix_timestamp_nanos();
        let earlier = heap.peek().is_none_or(|Reverse(d)| at < d.at);
        heap.push(Reverse(Due {
            at,
            generation,
            key: KeyOrd::from(key),
        }));
        earlier
    }

    /// Removes and returns the refreshes due at `now`.
    pub(super) fn take_due(&self, now: OffsetDateTime) -> Vec<(CacheKey, u64)> {
        let now = now.unix_timestamp_nanos();
        let mut heap = self.lock();
        let mut due = Vec::new();
        while heap.peek().is_some_and(|Reverse(d)| d.at <= now) {
            if let Some(Reverse(d)) = heap.pop() {
                due.push((CacheKey::from(d.key), d.generation));
            }
        }
        due
    }

    /// When the next refresh is due.
    pub(super) fn next_due(&self) -> Option<OffsetDateTime> {
        self.lock()
            .peek()
            .and_then(|Reverse(d)| OffsetDateTime::from_unix_timestamp_nanos(d.at).ok())
    }

    /// With more than `2 * live + 1024` items, keeps only those `current`
    /// says are still of the current generation of their key.
    pub(super) fn prune(&self, live: usize, mut current: impl FnMut(&CacheKey, u64) -> bool) {
        let mut heap = self.lock();
        if heap.len() > 2 * live + 1024 {
            heap.retain(|Reverse(d)| current(&CacheKey::from(d.key.clone()), d.generation));
        }
    }
}
