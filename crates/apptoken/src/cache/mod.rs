//! The in-memory token cache: the façade ([`Cache`]) over its parts.
//!
//! A hit is served, in this order, by the copy this thread served last (no
//! hashing), by this thread's table of copies of hot tokens (each with its
//! own reference count, so threads do not write to shared memory), or by
//! the shared index: a flat open-addressing table of one-byte tags and
//! pointers whose entries are the tokens' own allocations, so a hit on a
//! cold entry costs one dependent memory access after the table's slot.
//! No path takes a lock; a hit allocates nothing but a thread's first copy
//! of a hot token (once per thread and token). Misses go through the
//! in-flight map (`flight.rs`) so that each key has at most one request
//! running; the result is stored before the in-flight slot is released, so
//! no caller can miss both. Proactive refreshes are kept in a time-ordered
//! heap that the client's refresher task drains.
//!
//! The parts, each with its invariants at its top:
//! - `key.rs`: key text and its ASCII case folding ([`CacheKey`], [`KeyRef`]);
//! - `entry.rs`: what the cache keeps with a token ([`Meta`], [`EntryView`]);
//! - `supersede.rs`: the flag and the copy registry between a shared entry
//!   and the threads' copies (model-checked: `tests/supersede_model.rs`);
//! - `index.rs`: the shared open-addressing index;
//! - `local.rs`: the per-thread copies;
//! - `schedule.rs`: the refresh schedule.
//!
//! The throttle memory (`throttle.rs`) and single flight (`flight.rs`) are
//! not the cache: the façade holds them for the client.
//!
//! The façade's invariants:
//! - Writers (stores, sweeps, rebuilds) hold `writer`; readers never do.
//! - A store publishes the new entry in the index *before* it supersedes
//!   the one it replaced (`supersede.rs` says what a reader may rely on);
//!   an evicted entry is superseded after it left the index; a dropped cache
//!   supersedes every entry, then bumps [`local::DROPPED_CACHES`].
//! - `len` counts the index's live entries (changed under `writer` only).
//! - A store forgets its key's throttle and schedules its refresh before
//!   publishing the entry.
//! - Hot-path tuning spans these files (see BENCHMARKS.md): the
//!   `#[repr(C)]` layout of [`Meta`], inline key text, tags scanned before
//!   slots, the MRU copy checked before hashing.

mod entry;
mod index;
mod key;
mod local;
mod schedule;
mod supersede;
#[cfg(test)]
mod tests;

/// The primitives `supersede.rs` is written against: the standard
/// library's here, `loom`'s in `tests/supersede_model.rs`.
mod sync {
    pub(crate) use std::sync::Mutex;
    pub(crate) use std::sync::atomic::{AtomicBool, Ordering};
}

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use time::{Duration, OffsetDateTime};

use crate::authority::Authority;
use crate::error::Error;
use crate::scope::Scopes;
use crate::throttle::Throttles;
use crate::token::{AccessToken, Node};

pub(crate) use entry::{EntryView, Meta};
pub(crate) use key::{CacheKey, KeyRef};

use entry::view;
use index::{MIN_CAPACITY, Table, capacity_for};
use local::{DROPPED_CACHES, LOCAL};
use schedule::Schedule;

/// A cached token is used until this long before it expires.
pub(crate) const EXPIRY_MARGIN: Duration = Duration::minutes(5);

pub(crate) fn unix_ms(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000).clamp(i64::MIN as i128, i64::MAX as i128) as i64
}

/// What a lookup found.
pub(crate) enum Lookup {
    /// A fresh token; `refresh` when its refresh time has come and this
    /// caller claimed the refresh.
    Hit { token: AccessToken, refresh: bool },
    /// A token that is no longer fresh (within five minutes of expiry, or
    /// expired): a fallback if the identity provider is down.
    Stale(AccessToken),
    /// Nothing.
    Miss,
}

pub(crate) struct Cache {
    table: ArcSwap<Table>,
    /// Serialises writers (stores, sweeps, rebuilds); readers never take it.
    writer: Mutex<()>,
    len: AtomicUsize,
    hasher: foldhash::fast::RandomState,
    pub(crate) inflight: crate::flight::InFlight,
    throttled: Throttles,
    schedule: Schedule,
    max_entries: Option<usize>,
    generation: AtomicU64,
    /// Unique per cache (per-thread copies name their cache by it).
    id: u64,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("len", &self.len())
            .field("max_entries", &self.max_entries)
            .finish()
    }
}

impl Drop for Cache {
    /// Supersedes every entry, and so every thread's copy of it, then tells
    /// the threads (by [`DROPPED_CACHES`]) to release those copies.
    fn drop(&mut self) {
        for n in self.table.load().nodes() {
            n.meta.supersede();
        }
        DROPPED_CACHES.fetch_add(1, Ordering::Release);
    }
}

/// How many copies of tokens this thread holds (tests).
#[cfg(test)]
pub(crate) fn thread_copies() -> usize {
    LOCAL.with(|l| l.borrow().copies())
}

impl Cache {
    pub(crate) fn new(max_entries: Option<usize>) -> Cache {
        Cache {
            table: ArcSwap::from_pointee(Table::with_capacity(MIN_CAPACITY)),
            writer: Mutex::new(()),
            len: AtomicUsize::new(0),
            hasher: foldhash::fast::RandomState::default(),
            inflight: crate::flight::InFlight::default(),
            throttled: Throttles::default(),
            schedule: Schedule::default(),
            max_entries,
            generation: AtomicU64::new(0),
            id: {
                static NEXT: AtomicU64 = AtomicU64::new(1);
                NEXT.fetch_add(1, Ordering::Relaxed)
            },
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    fn hash(&self, key: &KeyRef<'_>) -> u64 {
        self.hasher.hash_one(key)
    }

    fn get(&self, key: &KeyRef<'_>) -> Option<Arc<Node>> {
        self.table.load().get(key, self.hash(key))
    }

    /// The hot path: no lock, no allocation, one reference-count increment.
    pub(crate) fn lookup(
        &self,
        key: &KeyRef<'_>,
        now_ms: i64,
        refresh_backoff: Duration,
    ) -> Lookup {
        let me = self.id;
        // 0. The copy this thread served last (no hashing at all), then
        // 1. this thread's copies: nothing shared is written.
        let mut hash = None;
        let local = LOCAL.try_with(|l| {
            let mut l = l.borrow_mut();
            l.find(me, key, now_ms).or_else(|| {
                let h = *hash.insert(self.hash(key));
                l.find_hashed(me, h, key, now_ms)
            })
        });
        if let Ok(Some(token)) = local {
            return Lookup::Hit {
                token,
                refresh: false,
            };
        }
        let hash = hash.unwrap_or_else(|| self.hash(key));
        // 2. The shared index.
        let Some(node) = self.table.load().get(key, hash) else {
            let _ = LOCAL.try_with(|l| l.borrow_mut().release_dropped());
            return Lookup::Miss;
        };
        let m = &node.meta;
        if now_ms >= m.fresh_until_ms {
            return Lookup::Stale(AccessToken::from_node(node));
        }
        if !m.used.load(Ordering::Relaxed) {
            m.used.store(true, Ordering::Relaxed);
        }
        let refresh = now_ms >= m.refresh_at_ms && m.claim_refresh(now_ms, refresh_backoff);
        if !refresh {
            let _ = LOCAL.try_with(|l| l.borrow_mut().remember(me, &node));
        }
        Lookup::Hit {
            token: AccessToken::from_node(node),
            refresh,
        }
    }

    /// The entry for `key`, if it is still the given generation.
    pub(crate) fn entry_if(&self, key: &CacheKey, generation: u64) -> Option<EntryView> {
        self.get(&key.as_ref())
            .filter(|n| n.meta.generation == generation)
            .as_ref()
            .and_then(view)
    }

    /// The current entry for `key`.
    pub(crate) fn entry(&self, key: &CacheKey) -> Option<EntryView> {
        self.get(&key.as_ref()).as_ref().and_then(view)
    }

    /// Every cached entry (for export).
    #[cfg(feature = "msal-cache")]
    pub(crate) fn snapshot(&self) -> Vec<(CacheKey, AccessToken, OffsetDateTime)> {
        let table = self.table.load();
        table
            .nodes()
            .filter_map(|n| {
                let key = n.meta.key.clone()?;
                let at = n.meta.stored_at;
                Some((key, AccessToken::from_node(n), at))
            })
            .collect()
    }

    /// Claims the refresh of `key` (generation `generation`) now.
    pub(crate) fn claim_refresh(
        &self,
        key: &CacheKey,
        generation: u64,
        now: OffsetDateTime,
        backoff: Duration,
    ) -> bool {
        self.get(&key.as_ref())
            .filter(|n| n.meta.generation == generation)
            .is_some_and(|n| n.meta.claim_refresh(unix_ms(now), backoff))
    }

    /// Stores a new token; returns whether the refresh schedule got an
    /// earlier head (the refresher must wake).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn store(
        &self,
        key: CacheKey,
        token: AccessToken,
        refresh_at: Option<OffsetDateTime>,
        used: bool,
        now: OffsetDateTime,
        authority: Authority,
        scopes: Scopes,
    ) -> bool {
        let generation = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
        let meta = Meta::stored(
            key.clone(),
            self.hasher.hash_one(&key),
            unix_ms(crate::limits::sub(
                token.expires_on(),
                crate::limits::freshness_margin(token.expires_on() - now),
            )),
            refresh_at.map_or(i64::MAX, unix_ms),
            used,
            generation,
            now,
            (authority, scopes),
        );
        let node = token.with_meta(meta).node;
        self.throttled.remove(&key);
        let mut earlier = false;
        if let Some(at) = refresh_at {
            earlier = self.schedule_at(&key, generation, at);
        }
        {
            let _writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
            let table = self.table.load_full();
            let replaced = match table.put(&node) {
                Some(r) => r,
                None => {
                    // Full: rebuild at a size for one more entry, then put.
                    let bigger = Table::sized_for(self.len() + 1);
                    for n in table.nodes() {
                        bigger.put(&n);
                    }
                    let r = bigger.put(&node).flatten();
                    self.table.store(Arc::new(bigger));
                    r
                }
            };
            match replaced {
                Some(old) => old.meta.supersede(),
                None => {
                    self.len.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        self.maybe_sweep(now, generation);
        metrics::gauge!("apptoken_cache_entries").set(self.len() as f64);
        earlier
    }

    /// Schedules a refresh of `key` (generation `generation`) at `at`;
    /// returns whether the refresher must wake (a new earliest refresh).
    pub(crate) fn schedule_at(&self, key: &CacheKey, generation: u64, at: OffsetDateTime) -> bool {
        self.schedule.push(key, generation, at)
    }

    /// Removes and returns the refreshes due at `now`.
    pub(crate) fn take_due(&self, now: OffsetDateTime) -> Vec<(CacheKey, u64)> {
        self.schedule.take_due(now)
    }

    /// When the next refresh is due.
    pub(crate) fn next_due(&self) -> Option<OffsetDateTime> {
        self.schedule.next_due()
    }

    /// Remembers that the identity provider throttled `key` until `until`
    /// (see `throttle.rs` for how the memory stays bounded).
    pub(crate) fn throttle(
        &self,
        key: CacheKey,
        until: OffsetDateTime,
        error: Error,
        now: OffsetDateTime,
    ) {
        self.throttled.insert(key, until, error, now);
    }

    /// How many keys the throttle memory holds (tests).
    #[cfg(test)]
    pub(crate) fn throttled_len(&self) -> usize {
        self.throttled.len()
    }

    /// The error to answer at once while `key` is throttled.
    pub(crate) fn throttled(&self, key: &CacheKey, now: OffsetDateTime) -> Option<Error> {
        self.throttled.get(key, now)
    }

    /// Drops expired entries; with a bound, also the oldest entries until the
    /// cache holds at most 90% of it. Runs when the bound is passed, and
    /// every 4096 stores otherwise. Readers are never blocked.
    fn maybe_sweep(&self, now: OffsetDateTime, stores: u64) {
        let over = self.max_entries.is_some_and(|m| self.len() > m);
        if !over && !stores.is_multiple_of(4096) {
            return;
        }
        let _writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let table = self.table.load_full();
        let mut removed = table
            .remove_where(|n| n.expires_on <= now && n.ext_expires_on.is_none_or(|x| x <= now));
        self.len.fetch_sub(removed.len(), Ordering::Relaxed);
        if let Some(max) = self.max_entries {
            let len = self.len();
            if len > max {
                let target = max - max / 10;
                let mut ages: Vec<(OffsetDateTime, u64)> = table
                    .nodes()
                    .map(|n| (n.meta.stored_at, n.meta.generation))
                    .collect();
                ages.sort_unstable();
                if let Some(&cut) = ages.get(len.saturating_sub(target).saturating_sub(1)) {
                    let old = table.remove_where(|n| (n.meta.stored_at, n.meta.generation) <= cut);
                    self.len.fetch_sub(old.len(), Ordering::Relaxed);
                    removed.extend(old);
                }
            }
        }
        for n in &removed {
            n.meta.supersede();
        }
        // Tombstones piling up, or a table far larger than its entries:
        // rebuild at the right size.
        let live = self.len();
        let tombstones = table.used.load(Ordering::Relaxed).saturating_sub(live);
        if tombstones > table.capacity() / 4 || table.capacity() > 2 * capacity_for(live) {
            let fresh = Table::sized_for(live);
            for n in table.nodes() {
                fresh.put(&n);
            }
            self.table.store(Arc::new(fresh));
        }
        drop(_writer);
        if !removed.is_empty() {
            metrics::counter!("apptoken_cache_evictions_total").increment(removed.len() as u64);
        }
        // The refresh heap must not outgrow the cache (evicted keys linger in it).
        self.schedule.prune(self.len(), |key, generation| {
            self.get(&key.as_ref())
                .is_some_and(|n| n.meta.generation == generation)
        });
    }
}
