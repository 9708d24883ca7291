//! The in-memory token cache.
//!
//! A hit is served, in this order, by the copy this thread served last (no
//! hashing), by this thread's table of copies of hot tokens (each with its
//! own reference count, so threads do not write to shared memory), or by
//! the shared index: a flat open-addressing table of one-byte tags and
//! pointers whose entries are the tokens' own allocations, so a hit on a
//! cold entry costs one dependent memory access after the table's slot.
//! No path takes a lock; a hit allocates nothing but a thread's first copy
//! of a hot token (once per thread and token). Misses go through a small
//! in-flight map so that each key has at most one request running; the
//! result is stored before the in-flight slot is released, so no caller can
//! miss both. Proactive refreshes are kept in a time-ordered heap that the
//! client's refresher task drains.
//!
//! Why one file (for now): key text, entry metadata, index, per-thread
//! copies and schedule are tuned together for the hit path (see
//! BENCHMARKS.md) and their invariants are written next to each other.
//! Issue #18 splits them (`cache/{key,entry,index,local,schedule}.rs`) and
//! model-checks the supersede protocol; the in-flight map already moved out
//! (`flight.rs`).

use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};

use arc_swap::{ArcSwap, ArcSwapOption};
use time::{Duration, OffsetDateTime};

use crate::authority::Authority;
use crate::error::Error;
use crate::scope::Scopes;
use crate::token::{AccessToken, Node};

/// A cached token is used until this long before it expires.
pub(crate) const EXPIRY_MARGIN: Duration = Duration::minutes(5);

/// Keys up to this many bytes of tenant + scope are stored inline: a hit
/// then reads the key from the map's node, without another pointer.
const INLINE: usize = 110;

#[derive(Clone)]
enum KeyText {
    Inline(u8, [u8; INLINE]),
    Heap(Box<str>),
}

impl KeyText {
    fn new(s: &str) -> KeyText {
        if s.len() <= INLINE {
            let mut buf = [0u8; INLINE];
            buf[..s.len()].copy_from_slice(s.as_bytes());
            KeyText::Inline(s.len() as u8, buf)
        } else {
            KeyText::Heap(s.into())
        }
    }

    fn as_bytes(&self) -> &[u8] {
        match self {
            KeyText::Inline(len, buf) => &buf[..*len as usize],
            KeyText::Heap(s) => s.as_bytes(),
        }
    }

    fn as_str(&self) -> &str {
        match self {
            // The buffer holds a copy of a `str`: always UTF-8.
            KeyText::Inline(len, buf) => std::str::from_utf8(&buf[..*len as usize]).unwrap_or(""),
            KeyText::Heap(s) => s,
        }
    }
}

/// What identifies a token: authority host, tenant, client id and the
/// normalised scope. Tenant and scope are stored lower-case and compared
/// without regard to ASCII case; two different tenants never share a key.
#[derive(Clone)]
pub(crate) struct CacheKey {
    pub(crate) host: Arc<str>,
    pub(crate) client_id: Arc<str>,
    split: u16,
    text: KeyText,
}

impl std::fmt::Debug for CacheKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheKey")
            .field("host", &self.host)
            .field("client_id", &self.client_id)
            .field("tenant", &self.tenant())
            .field("scope", &self.scope())
            .finish()
    }
}

impl CacheKey {
    pub(crate) fn new(host: Arc<str>, client_id: Arc<str>, tenant: &str, scope: &str) -> CacheKey {
        let mut text = String::with_capacity(tenant.len() + scope.len());
        text.push_str(tenant);
        text.make_ascii_lowercase();
        text.push_str(&scope.to_ascii_lowercase());
        CacheKey {
            host,
            client_id,
            split: tenant.len().min(u16::MAX as usize) as u16,
            text: KeyText::new(&text),
        }
    }

    /// Tenant and scope, lower-case, as bytes.
    fn text_parts(&self) -> (&[u8], &[u8]) {
        let text = self.text.as_bytes();
        text.split_at(usize::from(self.split).min(text.len()))
    }

    /// The tenant, lower-case.
    pub(crate) fn tenant(&self) -> &str {
        self.text.as_str().get(..self.split as usize).unwrap_or("")
    }

    /// The scope, lower-case.
    pub(crate) fn scope(&self) -> &str {
        self.text.as_str().get(self.split as usize..).unwrap_or("")
    }

    pub(crate) fn as_ref(&self) -> KeyRef<'_> {
        KeyRef {
            host: &self.host,
            tenant: self.tenant(),
            client_id: &self.client_id,
            scope: self.scope(),
        }
    }
}

/// The borrowed form of a key, for allocation-free lookups.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KeyRef<'a> {
    pub(crate) host: &'a str,
    pub(crate) tenant: &'a str,
    pub(crate) client_id: &'a str,
    pub(crate) scope: &'a str,
}

impl KeyRef<'_> {
    pub(crate) fn to_owned_key(self, host: &Arc<str>, client_id: &Arc<str>) -> CacheKey {
        CacheKey::new(
            Arc::clone(host),
            Arc::clone(client_id),
            self.tenant,
            self.scope,
        )
    }

    /// Whether this is `k` (tenant and scope without regard to ASCII case).
    fn parts_eq(&self, k: &CacheKey) -> bool {
        let (tenant, scope) = k.text_parts();
        same_str(self.host, &k.host)
            && same_str(self.client_id, &k.client_id)
            && eq_lower(self.tenant.as_bytes(), tenant)
            && eq_lower(self.scope.as_bytes(), scope)
    }
}

/// String equality that first asks whether both are the same memory (a
/// client's keys share its host and client id).
fn same_str(a: &str, b: &str) -> bool {
    (std::ptr::eq(a.as_ptr(), b.as_ptr()) && a.len() == b.len()) || a == b
}

/// ASCII lower case of eight bytes at once (bytes ≥ 0x80 are left alone).
fn lower8(x: u64) -> u64 {
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let low7 = x & !HIGH;
    // Bit 7 set where a byte is ≥ 'A', and where it is > 'Z'.
    let ge_a = low7.wrapping_add(0x3f3f_3f3f_3f3f_3f3f);
    let gt_z = low7.wrapping_add(0x2525_2525_2525_2525);
    let upper = (ge_a ^ gt_z) & !x & HIGH;
    x | (upper >> 2)
}

fn word(chunk: &[u8]) -> u64 {
    // Assembled in registers (no stack buffer), so no store has to be
    // forwarded to a wider load.
    chunk
        .iter()
        .enumerate()
        .fold(0u64, |w, (i, b)| w | (u64::from(*b) << (8 * i)))
}

/// `a` lower-cased equals `lower` (already lower case).
fn eq_lower(a: &[u8], lower: &[u8]) -> bool {
    if a.len() != lower.len() {
        return false;
    }
    let (ac, lc) = (a.chunks_exact(8), lower.chunks_exact(8));
    let (ar, lr) = (ac.remainder(), lc.remainder());
    ac.zip(lc).all(|(x, y)| lower8(word(x)) == word(y)) && lower8(word(ar)) == word(lr)
}

/// Feeds `s` lower-cased, eight bytes at a time, after its length, so
/// that a borrowed key and its owned, already lower-case form hash alike.
fn write_lower<H: Hasher>(h: &mut H, s: &[u8]) {
    h.write_usize(s.len());
    let chunks = s.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        h.write_u64(lower8(word(c)));
    }
    h.write_u64(lower8(word(rest)));
}

/// Only tenant and scope are hashed: a cache's keys share host and client
/// id (they are still compared).
impl Hash for CacheKey {
    fn hash<H: Hasher>(&self, h: &mut H) {
        let (tenant, scope) = self.text_parts();
        write_lower(h, tenant);
        write_lower(h, scope);
    }
}

impl Hash for KeyRef<'_> {
    fn hash<H: Hasher>(&self, h: &mut H) {
        write_lower(h, self.tenant.as_bytes());
        write_lower(h, self.scope.as_bytes());
    }
}

impl PartialEq for CacheKey {
    fn eq(&self, other: &Self) -> bool {
        other.as_ref().parts_eq(self)
    }
}

impl Eq for CacheKey {}

/// What the cache keeps with a token it holds. It is the first field of the
/// token's own allocation ([`crate::token::Node`]), so a hit reads the key,
/// the times and the reference count from one neighbourhood of memory.
#[repr(C)]
pub(crate) struct Meta {
    /// The key's hash (by the cache's hasher).
    hash: u64,
    /// Unix milliseconds until which the token is served (expiry − 5 min).
    fresh_until_ms: i64,
    /// Unix milliseconds from which a refresh is due (`i64::MAX`: never).
    refresh_at_ms: i64,
    /// Set when the cache replaced or dropped this entry — on a thread's
    /// copy, by the entry it copies: the copy stops being served.
    superseded: AtomicBool,
    /// Used by a caller since it was stored; unused tokens are not refreshed.
    used: AtomicBool,
    /// `None` for a token the cache does not hold.
    key: Option<CacheKey>,
    /// Unix milliseconds before which no new refresh is started.
    next_refresh_attempt: AtomicI64,
    generation: u64,
    stored_at: OffsetDateTime,
    /// What a refresh needs (only on the shared entry, not on copies).
    origin: Option<Box<(Authority, Scopes)>>,
    /// The threads' copies of this entry, marked superseded with it (only
    /// on the shared entry).
    copies: Mutex<Vec<Weak<Node>>>,
}

impl Meta {
    /// The metadata of a token the cache does not hold.
    pub(crate) fn detached() -> Meta {
        Meta {
            hash: 0,
            fresh_until_ms: i64::MIN,
            refresh_at_ms: i64::MIN,
            superseded: AtomicBool::new(true),
            used: AtomicBool::new(false),
            key: None,
            next_refresh_attempt: AtomicI64::new(i64::MIN),
            generation: 0,
            stored_at: OffsetDateTime::UNIX_EPOCH,
            origin: None,
            copies: Mutex::new(Vec::new()),
        }
    }

    /// The metadata of one thread's copy of a cached token.
    fn copy(&self) -> Meta {
        Meta {
            hash: self.hash,
            fresh_until_ms: self.fresh_until_ms,
            refresh_at_ms: self.refresh_at_ms,
            superseded: AtomicBool::new(false),
            used: AtomicBool::new(true),
            key: self.key.clone(),
            next_refresh_attempt: AtomicI64::new(i64::MIN),
            generation: self.generation,
            stored_at: self.stored_at,
            origin: None,
            copies: Mutex::new(Vec::new()),
        }
    }

    /// Marks this entry superseded, and every thread's copy of it.
    fn supersede(&self) {
        self.superseded.store(true, Ordering::Release);
        let copies = std::mem::take(&mut *self.copies.lock().unwrap_or_else(|p| p.into_inner()));
        for c in copies.iter().filter_map(Weak::upgrade) {
            c.meta.superseded.store(true, Ordering::Release);
        }
    }

    /// A copy of the token in `node` (whose metadata this is) for one
    /// thread, registered so that it is superseded with the entry; `None`
    /// if the entry already is.
    fn copy_token(&self, node: &Arc<Node>) -> Option<AccessToken> {
        let mut copies = self.copies.lock().unwrap_or_else(|p| p.into_inner());
        // Checked under the lock `supersede` takes after setting the flag:
        // a copy is either seen by `supersede` or never made.
        if self.superseded.load(Ordering::Acquire) {
            return None;
        }
        let token = AccessToken::from_node(Arc::clone(node)).with_meta(self.copy());
        copies.retain(|w| w.strong_count() > 0);
        copies.push(Arc::downgrade(&token.node));
        Some(token)
    }

    fn matches(&self, key: &KeyRef<'_>) -> bool {
        self.key.as_ref().is_some_and(|k| key.parts_eq(k))
    }

    /// Claims the right to start a refresh now (one caller wins).
    fn claim_refresh(&self, now_ms: i64, backoff: Duration) -> bool {
        let next = self.next_refresh_attempt.load(Ordering::Relaxed);
        now_ms >= next
            && self
                .next_refresh_attempt
                .compare_exchange(
                    next,
                    now_ms.saturating_add(backoff.whole_milliseconds() as i64),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
    }
}

/// A copy of what the refresher needs from an entry.
#[derive(Debug, Clone)]
pub(crate) struct EntryView {
    pub(crate) token: AccessToken,
    pub(crate) generation: u64,
    pub(crate) used: bool,
    pub(crate) authority: Authority,
    pub(crate) scopes: Scopes,
}

fn view(node: &Arc<Node>) -> Option<EntryView> {
    let m = &node.meta;
    let (authority, scopes) = m.origin.as_deref()?.clone();
    Some(EntryView {
        token: AccessToken::from_node(Arc::clone(node)),
        generation: m.generation,
        used: m.used.load(Ordering::Relaxed),
        authority,
        scopes,
    })
}

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

#[derive(Debug, Clone)]
struct Throttle {
    until: OffsetDateTime,
    error: Error,
}

/// The throttle memory: keys the identity provider throttled, until when.
#[derive(Debug)]
struct Throttles {
    map: HashMap<CacheKey, Throttle>,
    /// The size at which the next insertion first sweeps passed throttles.
    sweep_at: usize,
}

/// The throttle memory is never swept below this many keys.
const THROTTLE_SWEEP_MIN: usize = 64;

/// A key due for a proactive refresh.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Due {
    at: i128,
    generation: u64,
    key: KeyOrd,
}

/// A key ordered by its parts (only to sit in the heap).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct KeyOrd(Arc<str>, Arc<str>, Box<str>, Box<str>);

impl From<&CacheKey> for KeyOrd {
    fn from(k: &CacheKey) -> Self {
        KeyOrd(
            k.host.clone(),
            k.client_id.clone(),
            k.tenant().into(),
            k.scope().into(),
        )
    }
}

impl From<KeyOrd> for CacheKey {
    fn from(k: KeyOrd) -> Self {
        CacheKey::new(k.0, k.1, &k.2, &k.3)
    }
}

/// Tag of an empty slot: a probe stops here.
const EMPTY: u8 = 0;
/// Tag of a slot whose entry was removed: a probe goes on.
const TOMBSTONE: u8 = 1;
/// The smallest table.
const MIN_CAPACITY: usize = 16;

/// The capacity of a table built for `live` entries (at most half full).
fn capacity_for(live: usize) -> usize {
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
struct Table {
    mask: usize,
    tags: Box<[AtomicU8]>,
    slots: Box<[ArcSwapOption<Node>]>,
    /// Slots that are not `EMPTY` (live entries and tombstones).
    used: AtomicUsize,
}

impl Table {
    fn with_capacity(capacity: usize) -> Table {
        let capacity = capacity.max(MIN_CAPACITY).next_power_of_two();
        Table {
            mask: capacity - 1,
            tags: (0..capacity).map(|_| AtomicU8::new(EMPTY)).collect(),
            slots: (0..capacity).map(|_| ArcSwapOption::empty()).collect(),
            used: AtomicUsize::new(0),
        }
    }

    /// A table sized for `live` entries (at most half full).
    fn sized_for(live: usize) -> Table {
        Table::with_capacity(capacity_for(live))
    }

    fn capacity(&self) -> usize {
        self.mask + 1
    }

    /// The lock-free read.
    fn get(&self, key: &KeyRef<'_>, hash: u64) -> Option<Arc<Node>> {
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
    fn put(&self, node: &Arc<Node>) -> Option<Option<Arc<Node>>> {
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
                    if let Some(old) = self.slots[i].load_full()
                        && old.meta.key == node.meta.key
                    {
                        self.slots[i].store(Some(Arc::clone(node)));
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
    fn nodes(&self) -> impl Iterator<Item = Arc<Node>> + '_ {
        self.tags
            .iter()
            .zip(self.slots.iter())
            .filter(|(t, _)| t.load(Ordering::Acquire) > TOMBSTONE)
            .filter_map(|(_, s)| s.load_full())
    }

    /// Removes the entries `remove` picks; returns them. Writer lock held.
    fn remove_where(&self, mut remove: impl FnMut(&Node) -> bool) -> Vec<Arc<Node>> {
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
            && !m.superseded.load(Ordering::Relaxed)
            && now_ms < m.fresh_until_ms
            && now_ms < m.refresh_at_ms
            && m.matches(key)
    }

    fn is_stale(&self, me: u64) -> bool {
        self.cache != me || self.token.node.meta.superseded.load(Ordering::Relaxed)
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
struct Local {
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
static DROPPED_CACHES: AtomicU64 = AtomicU64::new(0);

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
    fn release_dropped(&mut self) {
        let drops = DROPPED_CACHES.load(Ordering::Relaxed);
        if drops == self.drops_seen {
            return;
        }
        self.drops_seen = drops;
        for (tag, way) in self.tags.iter_mut().zip(self.ways.iter_mut()) {
            if way
                .as_ref()
                .is_some_and(|r| r.token.node.meta.superseded.load(Ordering::Acquire))
            {
                *way = None;
                *tag = 0;
            }
        }
        self.mru = usize::MAX;
    }

    /// How many copies this thread holds (tests).
    #[cfg(test)]
    fn copies(&self) -> usize {
        self.ways.iter().filter(|w| w.is_some()).count()
    }

    fn set(&self, tag: u64) -> std::ops::Range<usize> {
        let sets = self.tags.len() / WAYS;
        let start = ((tag >> 1) as usize & (sets - 1)) * WAYS;
        start..start + WAYS
    }

    fn find(&self, me: u64, key: &KeyRef<'_>, now_ms: i64) -> Option<AccessToken> {
        match self.ways.get(self.mru) {
            Some(Some(r)) if r.serves(me, key, now_ms) => Some(r.token.clone()),
            _ => None,
        }
    }

    fn find_hashed(
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
    fn remember(&mut self, me: u64, node: &Arc<Node>) {
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
    static LOCAL: RefCell<Local> = const { RefCell::new(Local::new()) };
}

pub(crate) struct Cache {
    table: ArcSwap<Table>,
    /// Serialises writers (stores, sweeps, rebuilds); readers never take it.
    writer: Mutex<()>,
    len: AtomicUsize,
    hasher: foldhash::fast::RandomState,
    pub(crate) inflight: crate::flight::InFlight,
    throttled: Mutex<Throttles>,
    schedule: Mutex<BinaryHeap<Reverse<Due>>>,
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
            throttled: Mutex::new(Throttles {
                map: HashMap::new(),
                sweep_at: THROTTLE_SWEEP_MIN,
            }),
            schedule: Mutex::new(BinaryHeap::new()),
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
        let meta = Meta {
            hash: self.hasher.hash_one(&key),
            fresh_until_ms: unix_ms(crate::limits::sub(
                token.expires_on(),
                crate::limits::freshness_margin(token.expires_on() - now),
            )),
            refresh_at_ms: refresh_at.map_or(i64::MAX, unix_ms),
            superseded: AtomicBool::new(false),
            used: AtomicBool::new(used),
            key: Some(key.clone()),
            next_refresh_attempt: AtomicI64::new(i64::MIN),
            generation,
            stored_at: now,
            origin: Some(Box::new((authority, scopes))),
            copies: Mutex::new(Vec::new()),
        };
        let node = token.with_meta(meta).node;
        self.throttled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .map
            .remove(&key);
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

    /// Schedules a refresh of `key` (generation `generation`) at `at`.
    pub(crate) fn schedule_at(&self, key: &CacheKey, generation: u64, at: OffsetDateTime) -> bool {
        let mut heap = self.schedule.lock().unwrap_or_else(|p| p.into_inner());
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
    pub(crate) fn take_due(&self, now: OffsetDateTime) -> Vec<(CacheKey, u64)> {
        let now = now.unix_timestamp_nanos();
        let mut heap = self.schedule.lock().unwrap_or_else(|p| p.into_inner());
        let mut due = Vec::new();
        while heap.peek().is_some_and(|Reverse(d)| d.at <= now) {
            if let Some(Reverse(d)) = heap.pop() {
                due.push((CacheKey::from(d.key), d.generation));
            }
        }
        due
    }

    /// When the next refresh is due.
    pub(crate) fn next_due(&self) -> Option<OffsetDateTime> {
        let heap = self.schedule.lock().unwrap_or_else(|p| p.into_inner());
        heap.peek()
            .and_then(|Reverse(d)| OffsetDateTime::from_unix_timestamp_nanos(d.at).ok())
    }

    /// Remembers that the identity provider throttled `key` until `until`.
    /// Passed throttles are swept whenever the map has doubled since the
    /// last sweep, so it holds about twice the keys throttled right now
    /// (at least [`THROTTLE_SWEEP_MIN`]), however many keys were ever.
    pub(crate) fn throttle(
        &self,
        key: CacheKey,
        until: OffsetDateTime,
        error: Error,
        now: OffsetDateTime,
    ) {
        let mut t = self.throttled.lock().unwrap_or_else(|p| p.into_inner());
        if t.map.len() >= t.sweep_at {
            t.map.retain(|_, th| now < th.until);
            t.sweep_at = t.map.len().saturating_mul(2).max(THROTTLE_SWEEP_MIN);
        }
        t.map.insert(key, Throttle { until, error });
    }

    /// How many keys the throttle memory holds (tests).
    #[cfg(test)]
    pub(crate) fn throttled_len(&self) -> usize {
        self.throttled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .map
            .len()
    }

    /// The error to answer at once while `key` is throttled.
    pub(crate) fn throttled(&self, key: &CacheKey, now: OffsetDateTime) -> Option<Error> {
        let mut t = self.throttled.lock().unwrap_or_else(|p| p.into_inner());
        match t.map.get(key) {
            Some(th) if now < th.until => Some(th.error.clone()),
            Some(_) => {
                t.map.remove(key);
                None
            }
            None => None,
        }
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
        let mut heap = self.schedule.lock().unwrap_or_else(|p| p.into_inner());
        if heap.len() > 2 * self.len() + 1024 {
            heap.retain(|Reverse(d)| {
                let key = CacheKey::from(d.key.clone());
                self.get(&key.as_ref())
                    .is_some_and(|n| n.meta.generation == d.generation)
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use secrecy::SecretString;
    use std::hash::BuildHasher;

    fn owned(tenant: &str, scope: &str) -> CacheKey {
        CacheKey::new(Arc::from("https://h"), Arc::from("c"), tenant, scope)
    }

    fn token(secret: &str, tenant: &str, expires_on: OffsetDateTime) -> AccessToken {
        AccessToken::new(
            SecretString::from(secret.to_string()),
            "Bearer".into(),
            expires_on,
            None,
            None,
            tenant.into(),
            vec![],
        )
    }

    /// Stores `token` for `tenant` and `api://x/.default`.
    fn store_token(
        cache: &Cache,
        tenant: &str,
        token: AccessToken,
        refresh_at: Option<OffsetDateTime>,
        now: OffsetDateTime,
    ) {
        cache.store(
            owned(tenant, "api://x/.default"),
            token,
            refresh_at,
            true,
            now,
            Authority::parse("https://h.example/t.example").unwrap(),
            Scopes::new(["api://x/.default"]).unwrap(),
        );
    }

    fn store(
        cache: &Cache,
        tenant: &str,
        expires_on: OffsetDateTime,
        refresh_at: Option<OffsetDateTime>,
        now: OffsetDateTime,
    ) {
        store_token(cache, tenant, token("t", "t", expires_on), refresh_at, now);
    }

    fn r<'a>(tenant: &'a str, scope: &'a str) -> KeyRef<'a> {
        KeyRef {
            host: "https://h",
            tenant,
            client_id: "c",
            scope,
        }
    }

    proptest! {
        #[test]
        fn borrowed_and_owned_keys_hash_and_compare_alike(tenant in "[A-Za-z0-9.-]{1,80}", scope in "[A-Za-z0-9:/._-]{1,120}") {
            let s = foldhash::fast::RandomState::default();
            let key = owned(&tenant, &scope);
            let upper = tenant.to_ascii_uppercase();
            let borrowed = r(&upper, &scope);
            prop_assert_eq!(s.hash_one(&key), s.hash_one(borrowed));
            prop_assert!(borrowed.parts_eq(&key));
        }

        #[test]
        fn eight_bytes_are_lower_cased_like_the_standard_library(x in any::<u64>()) {
            let want = u64::from_le_bytes(x.to_le_bytes().map(|b| b.to_ascii_lowercase()));
            prop_assert_eq!(lower8(x), want);
        }

        #[test]
        fn keys_compare_like_eq_ignore_ascii_case(a in proptest::collection::vec(any::<u8>(), 0..40), b in proptest::collection::vec(any::<u8>(), 0..40), same in any::<bool>()) {
            let b = if same { a.to_ascii_uppercase() } else { b };
            let lower = b.to_ascii_lowercase();
            prop_assert_eq!(eq_lower(&a, &lower), a.eq_ignore_ascii_case(&lower));
        }

        #[test]
        fn moving_the_border_between_tenant_and_scope_makes_another_key(t in "[a-z]{2,20}", scope in "[a-z]{1,20}", cut in 1usize..20) {
            let cut = cut.min(t.len() - 1);
            let (t1, rest) = t.split_at(cut);
            let s2 = format!("{rest}{scope}");
            prop_assert_ne!(owned(&t, &scope), owned(t1, &s2));
            prop_assert!(!r(t1, &s2).parts_eq(&owned(&t, &scope)));
        }

        /// The shared index against a `HashMap` model: stores, replacements,
        /// removals (tombstones), growth and shrinking rebuilds.
        #[test]
        fn the_index_behaves_like_a_map(ops in proptest::collection::vec((0u8..3, 0u16..300), 1..600)) {
            let cache = Cache::new(None);
            let now = OffsetDateTime::UNIX_EPOCH + Duration::days(1);
            let mut model: HashMap<u16, OffsetDateTime> = HashMap::new();
            for (i, (op, k)) in ops.into_iter().enumerate() {
                let tenant = format!("t{k}");
                match op {
                    0 | 1 => {
                        let exp = now + Duration::hours(1) + Duration::seconds(i as i64);
                        store(&cache, &tenant, exp, None, now);
                        model.insert(k, exp);
                    }
                    _ => {
                        let _w = cache.writer.lock().unwrap();
                        let table = cache.table.load_full();
                        let gone = table.remove_where(|n| n.meta.key.as_ref().is_some_and(|key| key.tenant() == tenant));
                        cache.len.fetch_sub(gone.len(), Ordering::Relaxed);
                        prop_assert_eq!(gone.len(), usize::from(model.remove(&k).is_some()));
                    }
                }
                prop_assert_eq!(cache.len(), model.len());
            }
            // Force a rebuild the way a sweep does, then check every key.
            cache.maybe_sweep(now, 4096);
            prop_assert_eq!(cache.len(), model.len());
            for k in 0u16..300 {
                let tenant = format!("t{k}");
                let found = cache.get(&r(&tenant, "api://x/.default"));
                prop_assert_eq!(found.map(|n| n.expires_on), model.get(&k).copied());
            }
            let table = cache.table.load();
            prop_assert!(table.used.load(Ordering::Relaxed) * 8 <= table.capacity() * 7);
        }
    }

    proptest! {
        #[test]
        fn different_tenants_never_share_a_key(a in "[a-z0-9.-]{1,40}", b in "[a-z0-9.-]{1,40}") {
            prop_assume!(!a.eq_ignore_ascii_case(&b));
            prop_assert_ne!(owned(&a, "api://x/.default"), owned(&b, "api://x/.default"));
            prop_assert!(!r(&a, "api://x/.default").parts_eq(&owned(&b, "api://x/.default")));
        }
    }

    /// Readers on two threads look up while a writer replaces tokens,
    /// evicts (a bound of 64) and rebuilds the index: every hit is a token
    /// of the key asked for, and nothing panics.
    #[test]
    fn readers_always_get_their_own_key_while_writers_churn() {
        let cache = Arc::new(Cache::new(Some(64)));
        let now = OffsetDateTime::UNIX_EPOCH + Duration::days(1);
        let stop = Arc::new(AtomicBool::new(false));
        let readers: Vec<_> = (0..2)
            .map(|seed| {
                let (cache, stop) = (Arc::clone(&cache), Arc::clone(&stop));
                std::thread::spawn(move || {
                    let mut hits = 0u64;
                    let mut i = seed;
                    while !stop.load(Ordering::Relaxed) || hits == 0 {
                        i = (i + 7) % 200;
                        let tenant = format!("T{i}");
                        if let Lookup::Hit { token, .. } = cache.lookup(
                            &r(&tenant, "API://X/.default"),
                            unix_ms(now),
                            Duration::seconds(30),
                        ) {
                            assert_eq!(token.tenant(), format!("t{i}"));
                            hits += 1;
                        }
                    }
                    hits
                })
            })
            .collect();
        for round in 0..20_000i64 {
            let i = round % 200;
            let tenant = format!("t{i}");
            store_token(
                &cache,
                &tenant,
                token(&format!("token-{round}"), &tenant, now + Duration::hours(1)),
                None,
                now + Duration::milliseconds(round),
            );
            assert!(cache.len() <= 64);
        }
        stop.store(true, Ordering::Relaxed);
        for r in readers {
            assert!(r.join().unwrap() > 0);
        }
    }

    /// A token replaced by a store on one thread is never served again by
    /// another thread that hears of the store afterwards, though that
    /// thread holds its own copy of it.
    #[test]
    fn a_replaced_token_is_not_served_from_another_threads_copy() {
        let cache = Arc::new(Cache::new(None));
        let now = OffsetDateTime::UNIX_EPOCH + Duration::days(1);
        let (to_reader, reader_rx) = std::sync::mpsc::channel::<u32>();
        let (to_writer, writer_rx) = std::sync::mpsc::channel::<()>();
        let reader = {
            let cache = Arc::clone(&cache);
            std::thread::spawn(move || {
                for round in reader_rx {
                    for _ in 0..3 {
                        let t = hit(cache.lookup(
                            &r("t", "api://x/.default"),
                            unix_ms(now),
                            Duration::seconds(30),
                        ));
                        assert_eq!(t.secret(), format!("token-{round}"));
                    }
                    to_writer.send(()).unwrap();
                }
            })
        };
        for round in 0..200u32 {
            store_token(
                &cache,
                "t",
                token(&format!("token-{round}"), "t", now + Duration::hours(1)),
                None,
                now,
            );
            to_reader.send(round).unwrap();
            writer_rx.recv().unwrap();
        }
        drop(to_reader);
        reader.join().unwrap();
    }

    #[test]
    fn an_evicted_token_is_not_served_from_a_threads_copy() {
        let cache = Cache::new(Some(10));
        let now = OffsetDateTime::UNIX_EPOCH + Duration::days(1);
        store(&cache, "first", now + Duration::hours(1), None, now);
        let k = r("first", "api://x/.default");
        let ms = unix_ms(now);
        for _ in 0..3 {
            hit(cache.lookup(&k, ms, Duration::seconds(30)));
        }
        for i in 0..20 {
            store(
                &cache,
                &format!("t{i}"),
                now + Duration::hours(1),
                None,
                now + Duration::seconds(i + 1),
            );
        }
        assert!(matches!(
            cache.lookup(&k, ms, Duration::seconds(30)),
            Lookup::Miss
        ));
    }

    #[test]
    fn freshness_margin_and_refresh_claims() {
        let cache = Cache::new(None);
        let now = OffsetDateTime::UNIX_EPOCH + Duration::days(1);
        store(
            &cache,
            "a",
            now + Duration::hours(1),
            Some(now + Duration::minutes(30)),
            now,
        );
        let k = r("A", "API://X/.default");
        assert!(matches!(
            cache.lookup(&k, unix_ms(now), Duration::seconds(30)),
            Lookup::Hit { refresh: false, .. }
        ));
        assert!(matches!(
            cache.lookup(
                &r("b", "api://x/.default"),
                unix_ms(now),
                Duration::seconds(30)
            ),
            Lookup::Miss
        ));
        let later = now + Duration::minutes(31);
        assert!(matches!(
            cache.lookup(&k, unix_ms(later), Duration::seconds(30)),
            Lookup::Hit { refresh: true, .. }
        ));
        assert!(matches!(
            cache.lookup(&k, unix_ms(later), Duration::seconds(30)),
            Lookup::Hit { refresh: false, .. }
        ));
        assert!(matches!(
            cache.lookup(
                &k,
                unix_ms(later + Duration::seconds(31)),
                Duration::seconds(30)
            ),
            Lookup::Hit { refresh: true, .. }
        ));
        assert!(matches!(
            cache.lookup(
                &k,
                unix_ms(now + Duration::minutes(55)),
                Duration::seconds(30)
            ),
            Lookup::Stale(_)
        ));
    }

    fn hit(l: Lookup) -> AccessToken {
        match l {
            Lookup::Hit { token, .. } => token,
            _ => panic!("not a hit"),
        }
    }

    #[test]
    fn per_thread_copies_follow_new_tokens_and_never_mix_caches() {
        let now = OffsetDateTime::UNIX_EPOCH + Duration::days(1);
        let (a, b) = (Cache::new(None), Cache::new(None));
        store(&a, "t", now + Duration::hours(1), None, now);
        store(&b, "t", now + Duration::hours(1), None, now);
        let k = r("t", "api://x/.default");
        let ms = unix_ms(now);
        let first = hit(a.lookup(&k, ms, Duration::seconds(30)));
        // the second hit makes this thread's copy; the third is served from it
        let copy = hit(a.lookup(&k, ms, Duration::seconds(30)));
        let again = hit(a.lookup(&k, ms, Duration::seconds(30)));
        assert!(first.is_same_token(&copy) && copy.is_same_token(&again));
        // the other cache has its own token, never this thread's copy of a's
        let other = hit(b.lookup(&k, ms, Duration::seconds(30)));
        let other = hit(b.lookup(&k, ms, Duration::seconds(30)))
            .is_same_token(&other)
            .then_some(other)
            .unwrap();
        assert!(!other.is_same_token(&first));
        // a new token for the key replaces the copy at once
        store(&a, "t", now + Duration::hours(2), None, now);
        let new = hit(a.lookup(&k, ms, Duration::seconds(30)));
        assert!(!new.is_same_token(&first));
        assert!(hit(a.lookup(&k, ms, Duration::seconds(30))).is_same_token(&new));
        // and a copy stops being served when its token is no longer fresh
        let late = unix_ms(now + Duration::hours(2) - Duration::minutes(4));
        assert!(matches!(
            a.lookup(&k, late, Duration::seconds(30)),
            Lookup::Stale(_)
        ));
    }

    #[test]
    fn a_dropped_caches_copies_are_released_at_the_threads_next_miss() {
        let now = OffsetDateTime::UNIX_EPOCH + Duration::days(1);
        let ms = unix_ms(now);
        let a = Cache::new(None);
        let tenants: Vec<String> = (0..8).map(|i| format!("t{i}")).collect();
        for t in &tenants {
            store(&a, t, now + Duration::hours(1), None, now);
        }
        let mut weak = Vec::new();
        for t in &tenants {
            let k = r(t, "api://x/.default");
            for _ in 0..2 {
                hit(a.lookup(&k, ms, Duration::seconds(30)));
            }
            // the third hit is served by this thread's copy
            weak.push(Arc::downgrade(
                &hit(a.lookup(&k, ms, Duration::seconds(30))).node,
            ));
        }
        let held = thread_copies();
        assert!(held >= 4, "{held} copies");
        drop(a);
        // A hit from a copy looks at nothing shared: the copies are still
        // held (never served: they are superseded) until this thread misses.
        assert_eq!(thread_copies(), held);
        let b = Cache::new(None);
        assert!(matches!(
            b.lookup(&r("other", "api://x/.default"), ms, Duration::seconds(30)),
            Lookup::Miss
        ));
        assert_eq!(thread_copies(), 0);
        assert!(
            weak.iter().all(|w| w.upgrade().is_none()),
            "a copy's token is still alive"
        );
    }

    #[test]
    fn the_bound_keeps_the_newest_entries() {
        let cache = Cache::new(Some(100));
        let now = OffsetDateTime::UNIX_EPOCH + Duration::days(1);
        for i in 0..1000 {
            store(
                &cache,
                &format!("t{i}"),
                now + Duration::hours(1),
                None,
                now + Duration::seconds(i),
            );
            assert!(cache.len() <= 100, "{}", cache.len());
        }
        assert!(matches!(
            cache.lookup(
                &r("t999", "api://x/.default"),
                unix_ms(now),
                Duration::seconds(30)
            ),
            Lookup::Hit { .. }
        ));
        assert!(matches!(
            cache.lookup(
                &r("t0", "api://x/.default"),
                unix_ms(now),
                Duration::seconds(30)
            ),
            Lookup::Miss
        ));
    }

    #[test]
    fn expired_entries_are_swept() {
        let cache = Cache::new(None);
        let now = OffsetDateTime::UNIX_EPOCH + Duration::days(1);
        for i in 0..4095 {
            store(
                &cache,
                &format!("t{i}"),
                now + Duration::hours(1),
                None,
                now,
            );
        }
        assert_eq!(cache.len(), 4095);
        store(
            &cache,
            "late",
            now + Duration::hours(5),
            None,
            now + Duration::hours(2),
        );
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn throttle_memory_expires() {
        let cache = Cache::new(None);
        let now = OffsetDateTime::UNIX_EPOCH;
        let key = owned("a", "api://x/.default");
        cache.throttle(
            key.clone(),
            now + Duration::seconds(60),
            Error::Configuration("throttled".into()),
            now,
        );
        assert!(cache.throttled(&key, now + Duration::seconds(59)).is_some());
        assert!(cache.throttled(&key, now + Duration::seconds(60)).is_none());
    }

    #[test]
    fn throttle_memory_stays_bounded_over_a_hundred_thousand_tenants() {
        let cache = Cache::new(None);
        let start = OffsetDateTime::UNIX_EPOCH + Duration::days(1);
        let mut most = 0;
        // 100,000 tenants throttled one after another, each for a minute,
        // one per second: about 60 are throttled at any time.
        for i in 0..100_000i64 {
            let now = start + Duration::seconds(i);
            cache.throttle(
                owned(&format!("tenant-{i}"), "api://x/.default"),
                now + Duration::seconds(60),
                Error::Configuration("throttled".into()),
                now,
            );
            most = most.max(cache.throttled_len());
        }
        assert!(most <= 2 * 64 + 1, "the throttle memory held {most} keys");
        // The last one is still throttled, an early one is not.
        let end = start + Duration::seconds(100_000);
        assert!(
            cache
                .throttled(&owned("tenant-99999", "api://x/.default"), end)
                .is_some()
        );
        assert!(
            cache
                .throttled(&owned("tenant-5", "api://x/.default"), end)
                .is_none()
        );
    }

    #[test]
    fn the_schedule_orders_refreshes() {
        let cache = Cache::new(None);
        let now = OffsetDateTime::UNIX_EPOCH + Duration::days(1);
        store(
            &cache,
            "late",
            now + Duration::hours(2),
            Some(now + Duration::hours(1)),
            now,
        );
        store(
            &cache,
            "early",
            now + Duration::hours(2),
            Some(now + Duration::minutes(10)),
            now,
        );
        assert_eq!(cache.next_due(), Some(now + Duration::minutes(10)));
        assert!(cache.take_due(now).is_empty());
        let due = cache.take_due(now + Duration::minutes(10));
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].0.tenant(), "early");
        assert!(cache.entry_if(&due[0].0, due[0].1).is_some());
        assert!(cache.entry_if(&due[0].0, due[0].1 + 100).is_none());
    }
}
