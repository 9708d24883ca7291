//! The shared index: a flat open-addressing table of one-byte tags and
//! pointers to the entries (the tokens' own allocations).
//!
//! Invariants:
//! - Readers take no lock: they load the table and a slot with `arc-swap`,
//!   whose guards keep what they read alive without writing to it.
//! - One writer at a time (the cache's writer lock: stores, sweeps,
//!   rebuilds); a table is never resized in place — a full one is rebuilt
//!   at a new size and published with one pointer swap.
//! - A slot is written before the tag that tells readers to look at it
//!   (`Release`/`Acquire`); a removal writes the tag (`TOMBSTONE`) first,
//!   then empties the slot. A reader that sees a tag and a slot that
//!   disagree checks the entry's hash and key, so it never returns another
//!   key's entry.
//! - The table always keeps empty slots (live entries and tombstones at
//!   most 7/8), so a probe ends within one lap; `used` counts the slots
//!   that are not `EMPTY`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

use arc_swap::ArcSwapOption;

use super::key::KeyRef;
use super::supersede::Slot;
use crate::token::Node;

/// Tag of an empty slot: a probe stops here.
const EMPTY: u8 = 0;
/// Tag of a slot whose entry was removed: a probe goes on.
const TOMBSTONE: u8 = 1;
/// The smallest table.
pub(super) const MIN_CAPACITY: usize = 16;

/// The capacity of a table built for `live` entries (at most half full).
pub(super) fn capacity_for(live: usize) -> usize {
    live.saturating_add(1)
        .next_power_of_two()
        .saturating_mul(2)
        .max(MIN_CAPACITY)
}

/// Eight bits of the hash, never `EMPTY` or `TOMBSTONE`.
fn tag_of(hash: u64) -> u8 {
    ((hash >> 57) as u8) + 2
}

/// The shared index: open addressing with linear probing over two flat
/// arrays, one byte of tag per slot (scanned first, so a probe rarely
/// touches a slot that cannot match) and one atomically swappable pointer to
/// the entry's node. Readers take no lock: they load the current table and
/// the slot with `arc-swap`, whose guards keep what they read alive without
/// writing to it. Writers (stores, sweeps) are serialised by the cache's
/// writer lock; a table that fills up (live entries and tombstones over 7/8)
/// is rebuilt at a new size and published with one pointer swap.
pub(super) struct Table {
    mask: usize,
    tags: Box<[AtomicU8]>,
    slots: Box<[ArcSwapOption<Node>]>,
    /// Slots that are not `EMPTY` (live entries and tombstones).
    pub(super) used: AtomicUsize,
}

impl Table {
    pub(super) fn with_capacity(capacity: usize) -> Table {
        let capacity = capacity.max(MIN_CAPACITY).next_power_of_two();
        Table {
            mask: capacity - 1,
            tags: (0..capacity).map(|_| AtomicU8::new(EMPTY)).collect(),
            slots: (0..capacity).map(|_| ArcSwapOption::empty()).collect(),
            used: AtomicUsize::new(0),
        }
    }

    /// A table sized for `live` entries (at most half full).
    pub(super) fn sized_for(live: usize) -> Table {
        Table::with_capacity(capacity_for(live))
    }

    pub(super) fn capacity(&self) -> usize {
        self.mask + 1
    }

    /// The lock-free read.
    pub(super) fn get(&self, key: &KeyRef<'_>, hash: u64) -> Option<Arc<Node>> {
        let tag = tag_of(hash);
        let mut i = hash as usize & self.mask;
        // At most one lap: the table always keeps empty slots.
        for _ in 0..=self.mask {
            match self.tags[i].load(Ordering::Acquire) {
                EMPTY => return None,
                t if t == tag => {
                    let slot = self.slots[i].load();
                    if let Some(node) = &*slot
                        && node.meta.hash == hash
                        && node.meta.matches(key)
                    {
                        return Some(Arc::clone(node));
                    }
                }
                _ => {}
            }
            i = (i + 1) & self.mask;
        }
        None
    }

    /// Puts `node` in place of the entry with the same key, or in a free
    /// slot; returns the entry it replaced. `None` in the outer option: no
    /// room (the caller rebuilds the table first). Writer lock held.
    #[allow(clippy::option_option)]
    pub(super) fn put(&self, node: &Arc<Node>) -> Option<Option<Arc<Node>>> {
        let hash = node.meta.hash;
        let tag = tag_of(hash);
        let mut i = hash as usize & self.mask;
        let mut free = None;
        for _ in 0..=self.mask {
            match self.tags[i].load(Ordering::Relaxed) {
                EMPTY => {
                    free.get_or_insert(i);
                    break;
                }
                TOMBSTONE => {
                    free.get_or_insert(i);
                }
                t if t == tag => {
                    if let Some(old) = Slot::load_full(&self.slots[i])
                        && old.meta.key == node.meta.key
                    {
                        // The new entry first; the caller supersedes the
                        // old one after (supersede.rs).
                        Slot::store(&self.slots[i], Some(Arc::clone(node)));
                        return Some(Some(old));
                    }
                }
                _ => {}
            }
            i = (i + 1) & self.mask;
        }
        let i = free?;
        let fresh = self.tags[i].load(Ordering::Relaxed) == EMPTY;
        if fresh && (self.used.load(Ordering::Relaxed) + 1) * 8 > self.capacity() * 7 {
            return None;
        }
        // The slot first, then the tag that tells readers to look at it.
        self.slots[i].store(Some(Arc::clone(node)));
        self.tags[i].store(tag, Ordering::Release);
        if fresh {
            self.used.fetch_add(1, Ordering::Relaxed);
        }
        Some(None)
    }

    /// Every live entry.
    pub(super) fn nodes(&self) -> impl Iterator<Item = Arc<Node>> + '_ {
        self.tags
            .iter()
            .zip(self.slots.iter())
            .filter(|(t, _)| t.load(Ordering::Acquire) > TOMBSTONE)
            .filter_map(|(_, s)| s.load_full())
    }

    /// Removes the entries `remove` picks; returns them. Writer lock held.
    pub(super) fn remove_where(&self, mut remove: impl FnMut(&Node) -> bool) -> Vec<Arc<Node>> {
        let mut removed = Vec::new();
        for (t, s) in self.tags.iter().zip(self.slots.iter()) {
            if t.load(Ordering::Relaxed) <= TOMBSTONE {
                continue;
            }
            if let Some(node) = s.load_full()
                && remove(&node)
            {
                // The tag first, so readers stop looking at the slot.
                t.store(TOMBSTONE, Ordering::Release);
                s.store(None);
                removed.push(node);
            }
        }
        removed
    }
}

/// Production's slot for the supersede protocol (the model's is a mutex).
impl Slot<Node> for ArcSwapOption<Node> {
    fn load_full(&self) -> Option<Arc<Node>> {
        ArcSwapOption::load_full(self)
    }

    fn store(&self, entry: Option<Arc<Node>>) {
        ArcSwapOption::store(self, entry);
    }
}
