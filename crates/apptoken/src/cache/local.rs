//! The per-thread copies of hot tokens: the copy this thread served last
//! and its 4-way set-associative table of copies.
//!
//! Invariants:
//! - A copy has its own reference count, so threads hitting the same tokens
//!   write nothing shared; a hit from a copy reads only this thread's table
//!   and the copy's own node (no atomics but a `Relaxed` load of its flag).
//! - A copy is served only while its flag is clear, its cache is the one
//!   asking (`Replica::cache`: two clients never mix) and it is fresh and
//!   not due for a refresh; the flag is set by the supersede protocol
//!   (`supersede.rs`) when the entry it copies is replaced or dropped.
//! - A copy is made on the second shared-index hit of a key while its way
//!   survives (a tagged way without a copy is a key seen once: no
//!   allocation), once per thread, token and generation.
//! - Copies of a dropped cache's tokens are released at this thread's next
//!   miss or new key ([`DROPPED_CACHES`]), its way's reuse, or its exit —
//!   never on a hit from a copy.
//! - The table starts empty, grows ×4 from 16 to 1,024 sets while the
//!   thread keeps reading the shared index, and never shrinks.

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::key::KeyRef;
use crate::token::{AccessToken, Node};

/// Ways per set in a thread's table of copies.
const WAYS: usize = 4;
/// Sets in a thread's table of copies: it starts small and grows (×4) while
/// the thread keeps reading the shared index, up to 4,096 ways (160 KiB).
const MIN_SETS: usize = 16;
const MAX_SETS: usize = 1024;

/// One thread's copy of a cached token, with its own reference count, so
/// that threads hitting the same tokens do not write to shared memory. The
/// entry it copies marks it superseded when the cache replaces or drops
/// that entry.
struct Replica {
    /// The cache it belongs to, so two clients never mix.
    cache: u64,
    token: AccessToken,
}

impl Replica {
    fn serves(&self, me: u64, key: &KeyRef<'_>, now_ms: i64) -> bool {
        let m = &self.token.node.meta;
        self.cache == me
            && !m.superseded.is_set()
            && now_ms < m.fresh_until_ms
            && now_ms < m.refresh_at_ms
            && m.matches(key)
    }

    fn is_stale(&self, me: u64) -> bool {
        self.cache != me || self.token.node.meta.superseded.is_set()
    }
}

/// A way's tag: the key's hash mixed with its cache's id (never 0, which
/// marks an empty way).
fn way_tag(me: u64, hash: u64) -> u64 {
    (hash ^ me.wrapping_mul(0x9e37_79b9_7f4a_7c15)) | 1
}

/// A thread's table of copies: 4-way set-associative. `tags` (scanned
/// first: a set's four tags share half a cache line) and `ways` are
/// parallel; a tagged way without a copy is a key seen once (no
/// allocation).
pub(super) struct Local {
    tags: Vec<u64>,
    ways: Vec<Option<Replica>>,
    /// Hits served by the shared index since the table last grew.
    shared_hits: usize,
    /// The way served last (checked before hashing).
    mru: usize,
    /// Round-robin victim within a set.
    victim: usize,
    /// [`DROPPED_CACHES`] when this table last released dropped caches' copies.
    drops_seen: u64,
}

/// How many caches were dropped in this process. A thread that sees it
/// change releases its copies of their tokens (see [`Local::release_dropped`]).
pub(super) static DROPPED_CACHES: AtomicU64 = AtomicU64::new(0);

impl Local {
    const fn new() -> Local {
        Local {
            tags: Vec::new(),
            ways: Vec::new(),
            shared_hits: 0,
            mru: usize::MAX,
            victim: 0,
            drops_seen: 0,
        }
    }

    /// Releases the copies whose entry is gone, if a cache was dropped since
    /// the last call. Called on this thread's misses and when it makes room
    /// for a new key — never on a hit from a copy, which stays free of
    /// atomics. A dropped cache supersedes every entry (and so every copy),
    /// so a copy of one of its tokens lives at most until this thread's next
    /// miss or new key in any cache, its way's reuse, or the thread's exit;
    /// and it is never served (copies name their cache and are superseded).
    pub(super) fn release_dropped(&mut self) {
        let drops = DROPPED_CACHES.load(Ordering::Relaxed);
        if drops == self.drops_seen {
            return;
        }
        self.drops_seen = drops;
        for (tag, way) in self.tags.iter_mut().zip(self.ways.iter_mut()) {
            if way
                .as_ref()
                .is_some_and(|r| r.token.node.meta.superseded.is_set_acquire())
            {
                *way = None;
                *tag = 0;
            }
        }
        self.mru = usize::MAX;
    }

    /// How many copies this thread holds (tests).
    #[cfg(test)]
    pub(super) fn copies(&self) -> usize {
        self.ways.iter().filter(|w| w.is_some()).count()
    }

    fn set(&self, tag: u64) -> std::ops::Range<usize> {
        let sets = self.tags.len() / WAYS;
        let start = ((tag >> 1) as usize & (sets - 1)) * WAYS;
        start..start + WAYS
    }

    pub(super) fn find(&self, me: u64, key: &KeyRef<'_>, now_ms: i64) -> Option<AccessToken> {
        match self.ways.get(self.mru) {
            Some(Some(r)) if r.serves(me, key, now_ms) => Some(r.token.clone()),
            _ => None,
        }
    }

    pub(super) fn find_hashed(
        &mut self,
        me: u64,
        hash: u64,
        key: &KeyRef<'_>,
        now_ms: i64,
    ) -> Option<AccessToken> {
        if self.tags.is_empty() {
            return None;
        }
        let tag = way_tag(me, hash);
        for i in self.set(tag) {
            if self.tags[i] == tag
                && let Some(r) = &self.ways[i]
                && r.serves(me, key, now_ms)
            {
                self.mru = i;
                return Some(r.token.clone());
            }
        }
        None
    }

    /// Notes a hit served by the shared index: the second one on a key
    /// (while its way survives) makes this thread's copy.
    pub(super) fn remember(&mut self, me: u64, node: &Arc<Node>) {
        self.shared_hits += 1;
        if self.tags.is_empty() {
            self.resize(MIN_SETS);
        } else if self.shared_hits > 2 * self.tags.len() && self.tags.len() < MAX_SETS * WAYS {
            self.resize(self.tags.len() / WAYS * 4);
        }
        let tag = way_tag(me, node.meta.hash);
        let set = self.set(tag);
        if let Some(i) = set.clone().find(|&i| self.tags[i] == tag) {
            // Each store has its own generation: a copy of this very entry?
            let current = self.ways[i].as_ref().is_some_and(|r| {
                !r.is_stale(me) && r.token.node.meta.generation == node.meta.generation
            });
            if !current {
                self.ways[i] = node
                    .meta
                    .copy_token(node)
                    .map(|token| Replica { cache: me, token });
            }
            self.mru = i;
            return;
        }
        // A new key: first let go of dropped caches' copies (rare: a
        // relaxed load of a counter that changes when a cache is dropped).
        self.release_dropped();
        // An empty way, else a key seen once, else a stale copy (another
        // client's, or superseded), else a copy.
        let pick = set
            .clone()
            .find(|&i| self.tags[i] == 0)
            .or_else(|| set.clone().find(|&i| self.ways[i].is_none()))
            .or_else(|| {
                set.clone()
                    .find(|&i| self.ways[i].as_ref().is_some_and(|r| r.is_stale(me)))
            })
            .unwrap_or_else(|| {
                self.victim = self.victim.wrapping_add(1);
                set.start + self.victim % WAYS
            });
        self.tags[pick] = tag;
        self.ways[pick] = None;
    }

    /// Rebuilds the table with `sets` sets, keeping the copies.
    fn resize(&mut self, sets: usize) {
        let tags = std::mem::replace(&mut self.tags, vec![0; sets * WAYS]);
        let ways = std::mem::take(&mut self.ways);
        self.ways = (0..sets * WAYS).map(|_| None).collect();
        self.shared_hits = 0;
        self.mru = usize::MAX;
        for (tag, way) in tags.into_iter().zip(ways) {
            if way.is_some()
                && let Some(i) = self.set(tag).find(|&i| self.tags[i] == 0)
            {
                self.tags[i] = tag;
                self.ways[i] = way;
            }
        }
    }
}

thread_local! {
    pub(super) static LOCAL: RefCell<Local> = const { RefCell::new(Local::new()) };
}
