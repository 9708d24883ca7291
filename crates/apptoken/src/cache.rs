//! The in-memory token cache.
//!
//! Entries live in a lock-free map (`papaya`): a hit pins an epoch, hashes
//! the borrowed key (no allocation), compares two instants and clones one
//! `Arc`. Misses go through a small in-flight map so that each key has at
//! most one request running; the result is stored before the in-flight slot
//! is released, so no caller can miss both. Proactive refreshes are kept in
//! a time-ordered heap that the client's refresher task drains.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::future::Future;
use std::hash::{BuildHasher, Hash, Hasher};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures::future::Shared;
use time::{Duration, OffsetDateTime};

use crate::authority::Authority;
use crate::error::{Error, Result};
use crate::scope::Scopes;
use crate::token::AccessToken;

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

    fn as_str(&self) -> &str {
        match self {
            // The buffer holds a copy of a `str` prefix: always UTF-8.
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
    /// An owned key that copies host and client id too.
    fn to_owned_key_plain(self) -> CacheKey {
        CacheKey::new(
            Arc::from(self.host),
            Arc::from(self.client_id),
            self.tenant,
            self.scope,
        )
    }
    pub(crate) fn to_owned_key(self, host: &Arc<str>, client_id: &Arc<str>) -> CacheKey {
        CacheKey::new(
            Arc::clone(host),
            Arc::clone(client_id),
            self.tenant,
            self.scope,
        )
    }

    fn parts_eq(&self, k: &CacheKey) -> bool {
        self.host == &*k.host
            && self.client_id == &*k.client_id
            && self.tenant.eq_ignore_ascii_case(k.tenant())
            && self.scope.eq_ignore_ascii_case(k.scope())
    }
}

/// Feeds `s` lower-cased, always in the same 32-byte chunks, so that a
/// borrowed key and its owned, already lower-case form hash alike.
fn write_lower<H: Hasher>(h: &mut H, s: &str) {
    let mut buf = [0u8; 32];
    for chunk in s.as_bytes().chunks(32) {
        for (d, b) in buf.iter_mut().zip(chunk) {
            *d = b.to_ascii_lowercase();
        }
        h.write(&buf[..chunk.len()]);
    }
    h.write_u8(0xff);
}

fn hash_parts<H: Hasher>(h: &mut H, host: &str, tenant: &str, client_id: &str, scope: &str) {
    h.write(host.as_bytes());
    h.write_u8(0xff);
    h.write(client_id.as_bytes());
    h.write_u8(0xff);
    write_lower(h, tenant);
    write_lower(h, scope);
}

impl Hash for CacheKey {
    fn hash<H: Hasher>(&self, h: &mut H) {
        hash_parts(h, &self.host, self.tenant(), &self.client_id, self.scope());
    }
}

impl Hash for KeyRef<'_> {
    fn hash<H: Hasher>(&self, h: &mut H) {
        hash_parts(h, self.host, self.tenant, self.client_id, self.scope);
    }
}

impl PartialEq for CacheKey {
    fn eq(&self, other: &Self) -> bool {
        other.as_ref().parts_eq(self)
    }
}

impl Eq for CacheKey {}

impl papaya::Equivalent<CacheKey> for KeyRef<'_> {
    fn equivalent(&self, key: &CacheKey) -> bool {
        self.parts_eq(key)
    }
}

/// One cached token and what is needed to refresh it. Stored inline in the
/// map's node, next to its key.
#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) token: AccessToken,
    /// Unix milliseconds until which the token is served (expiry − 5 min).
    fresh_until_ms: i64,
    /// Unix milliseconds from which a refresh is due (`i64::MAX`: never).
    refresh_at_ms: i64,
    pub(crate) stored_at: OffsetDateTime,
    /// Used by a caller since it was stored; unused tokens are not refreshed.
    used: AtomicBool,
    /// Unix milliseconds before which no new refresh is started.
    next_refresh_attempt: AtomicI64,
    pub(crate) generation: u64,
    pub(crate) authority: Authority,
    pub(crate) scopes: Scopes,
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

impl Entry {
    fn view(&self) -> EntryView {
        EntryView {
            token: self.token.clone(),
            generation: self.generation,
            used: self.used.load(Ordering::Relaxed),
            authority: self.authority.clone(),
            scopes: self.scopes.clone(),
        }
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

pub(crate) type SharedFetch = Shared<Pin<Box<dyn Future<Output = Result<AccessToken>> + Send>>>;

#[derive(Debug, Clone)]
struct Throttle {
    until: OffsetDateTime,
    error: Error,
}

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

pub(crate) struct Cache {
    map: papaya::HashMap<CacheKey, Entry, foldhash::fast::RandomState>,
    pub(crate) inflight: Mutex<HashMap<CacheKey, SharedFetch>>,
    throttled: Mutex<HashMap<CacheKey, Throttle>>,
    schedule: Mutex<BinaryHeap<Reverse<Due>>>,
    sweeping: Mutex<()>,
    max_entries: Option<usize>,
    generation: AtomicU64,
    /// Bumped by every store: per-thread copies made before it are
    /// re-checked against the map.
    epoch: AtomicU64,
    replica_hasher: foldhash::fast::RandomState,
    /// Unique per cache (per-thread copies name their cache by it).
    id: u64,
}

/// Per-thread slots for hot tokens.
const REPLICA_SLOTS: usize = 64;

enum Slot {
    Empty,
    /// Seen once: no copy yet.
    Candidate {
        cache: u64,
        hash: u64,
    },
    Replica(Box<Replica>),
}

/// One thread's copy of a hot token (its own reference count).
struct Replica {
    /// The cache it belongs to, so two clients never mix.
    cache: u64,
    hash: u64,
    generation: u64,
    epoch: u64,
    key: CacheKey,
    token: AccessToken,
    fresh_until_ms: i64,
    refresh_at_ms: i64,
}

thread_local! {
    /// The slot of the copy this thread used last.
    static MRU: std::cell::Cell<usize> = const { std::cell::Cell::new(usize::MAX) };
    static REPLICAS: std::cell::RefCell<Vec<Slot>> =
        std::cell::RefCell::new((0..REPLICA_SLOTS).map(|_| Slot::Empty).collect());
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("len", &self.len())
            .field("max_entries", &self.max_entries)
            .finish()
    }
}

impl Cache {
    pub(crate) fn new(max_entries: Option<usize>) -> Cache {
        Cache {
            map: papaya::HashMap::builder()
                .hasher(foldhash::fast::RandomState::default())
                .build(),
            inflight: Mutex::new(HashMap::new()),
            throttled: Mutex::new(HashMap::new()),
            schedule: Mutex::new(BinaryHeap::new()),
            sweeping: Mutex::new(()),
            max_entries,
            generation: AtomicU64::new(0),
            epoch: AtomicU64::new(0),
            replica_hasher: foldhash::fast::RandomState::default(),
            id: {
                static NEXT: AtomicU64 = AtomicU64::new(1);
                NEXT.fetch_add(1, Ordering::Relaxed)
            },
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    /// The hot path: no lock, no allocation but the token's reference count.
    pub(crate) fn lookup(
        &self,
        key: &KeyRef<'_>,
        now_ms: i64,
        refresh_backoff: Duration,
    ) -> Lookup {
        let me = self.id;
        let epoch = self.epoch.load(Ordering::Acquire);
        // 0. The copy this thread used last (no hashing at all).
        let mru = MRU.with(|m| m.get());
        let fast = REPLICAS.with(|r| match r.borrow().get(mru) {
            Some(Slot::Replica(rep))
                if rep.cache == me
                    && rep.epoch == epoch
                    && now_ms < rep.fresh_until_ms
                    && now_ms < rep.refresh_at_ms
                    && key.parts_eq(&rep.key) =>
            {
                Some(rep.token.clone())
            }
            _ => None,
        });
        if let Some(token) = fast {
            return Lookup::Hit {
                token,
                refresh: false,
            };
        }
        let hash = self.replica_hasher.hash_one(key);
        // 1. This thread's copy of a hot token: nothing shared is written.
        let fast = REPLICAS.with(|r| {
            let r = r.borrow();
            let index = hash as usize % REPLICA_SLOTS;
            match &r[index] {
                Slot::Replica(rep)
                    if rep.cache == me
                        && rep.hash == hash
                        && rep.epoch == epoch
                        && now_ms < rep.fresh_until_ms
                        && now_ms < rep.refresh_at_ms
                        && key.parts_eq(&rep.key) =>
                {
                    MRU.with(|m| m.set(index));
                    Some(rep.token.clone())
                }
                _ => None,
            }
        });
        if let Some(token) = fast {
            return Lookup::Hit {
                token,
                refresh: false,
            };
        }
        // 2. The shared map.
        let map = self.map.pin();
        let Some(entry) = map.get(key) else {
            return Lookup::Miss;
        };
        if now_ms >= entry.fresh_until_ms {
            return Lookup::Stale(entry.token.clone());
        }
        if !entry.used.load(Ordering::Relaxed) {
            entry.used.store(true, Ordering::Relaxed);
        }
        let refresh = now_ms >= entry.refresh_at_ms && entry.claim_refresh(now_ms, refresh_backoff);
        if !refresh {
            self.remember(key, hash, me, epoch, entry);
        }
        Lookup::Hit {
            token: entry.token.clone(),
            refresh,
        }
    }

    /// Notes a shared hit in this thread's slot: the second hit in a row on
    /// the same key makes a per-thread copy (one allocation per thread and
    /// hot key); an epoch change on the same token only refreshes the stamp.
    fn remember(&self, key: &KeyRef<'_>, hash: u64, me: u64, epoch: u64, entry: &Entry) {
        REPLICAS.with(|r| {
            let mut r = r.borrow_mut();
            let slot = &mut r[hash as usize % REPLICA_SLOTS];
            match slot {
                Slot::Replica(rep)
                    if rep.cache == me
                        && rep.hash == hash
                        && rep.generation == entry.generation
                        && key.parts_eq(&rep.key) =>
                {
                    rep.epoch = epoch;
                }
                Slot::Candidate { cache, hash: h } if *cache == me && *h == hash => {
                    *slot = Slot::Replica(Box::new(Replica {
                        cache: me,
                        hash,
                        generation: entry.generation,
                        epoch,
                        key: key.to_owned_key_plain(),
                        token: entry.token.replicate(),
                        fresh_until_ms: entry.fresh_until_ms,
                        refresh_at_ms: entry.refresh_at_ms,
                    }));
                }
                _ => *slot = Slot::Candidate { cache: me, hash },
            }
        });
    }

    /// The entry for `key`, if it is still the given generation.
    pub(crate) fn entry_if(&self, key: &CacheKey, generation: u64) -> Option<EntryView> {
        let map = self.map.pin();
        map.get(key)
            .filter(|e| e.generation == generation)
            .map(Entry::view)
    }

    /// The current entry for `key`.
    pub(crate) fn entry(&self, key: &CacheKey) -> Option<EntryView> {
        self.map.pin().get(key).map(Entry::view)
    }

    /// Every cached entry (for export).
    pub(crate) fn snapshot(&self) -> Vec<(CacheKey, AccessToken, OffsetDateTime)> {
        let map = self.map.pin();
        map.iter()
            .map(|(k, e)| (k.clone(), e.token.clone(), e.stored_at))
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
        let map = self.map.pin();
        map.get(key)
            .filter(|e| e.generation == generation)
            .is_some_and(|e| e.claim_refresh(unix_ms(now), backoff))
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
        let entry = Entry {
            fresh_until_ms: unix_ms(token.expires_on() - EXPIRY_MARGIN),
            refresh_at_ms: refresh_at.map_or(i64::MAX, unix_ms),
            token,
            stored_at: now,
            used: AtomicBool::new(used),
            next_refresh_attempt: AtomicI64::new(i64::MIN),
            generation,
            authority,
            scopes,
        };
        self.throttled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&key);
        let mut earlier = false;
        if let Some(at) = refresh_at {
            earlier = self.schedule_at(&key, generation, at);
        }
        self.map.pin().insert(key, entry);
        self.epoch.fetch_add(1, Ordering::Release);
        self.maybe_sweep(now, generation);
        metrics::gauge!("apptoken_cache_entries").set(self.map.len() as f64);
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
    pub(crate) fn throttle(&self, key: CacheKey, until: OffsetDateTime, error: Error) {
        self.throttled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, Throttle { until, error });
    }

    /// The error to answer at once while `key` is throttled.
    pub(crate) fn throttled(&self, key: &CacheKey, now: OffsetDateTime) -> Option<Error> {
        let mut t = self.throttled.lock().unwrap_or_else(|p| p.into_inner());
        match t.get(key) {
            Some(th) if now < th.until => Some(th.error.clone()),
            Some(_) => {
                t.remove(key);
                None
            }
            None => None,
        }
    }

    /// Drops expired entries; with a bound, also the oldest entries until the
    /// cache holds at most 90% of it. Runs when the bound is passed, and
    /// every 4096 stores otherwise.
    fn maybe_sweep(&self, now: OffsetDateTime, stores: u64) {
        let len = self.map.len();
        let over = self.max_entries.is_some_and(|m| len > m);
        if !over && !stores.is_multiple_of(4096) {
            return;
        }
        let Ok(_guard) = self.sweeping.try_lock() else {
            return;
        };
        let map = self.map.pin();
        let mut evicted = 0u64;
        map.retain(|_, e| {
            let keep =
                e.token.expires_on() > now || e.token.ext_expires_on().is_some_and(|x| x > now);
            if !keep {
                evicted += 1;
            }
            keep
        });
        if let Some(max) = self.max_entries {
            let len = map.len();
            if len > max {
                let target = max - max / 10;
                let mut ages: Vec<(OffsetDateTime, u64)> = map
                    .iter()
                    .map(|(_, e)| (e.stored_at, e.generation))
                    .collect();
                ages.sort_unstable();
                let remove = len.saturating_sub(target);
                if let Some(&(cut_at, cut_gen)) = ages.get(remove.saturating_sub(1)) {
                    map.retain(|_, e| {
                        let old = (e.stored_at, e.generation) <= (cut_at, cut_gen);
                        if old {
                            evicted += 1;
                        }
                        !old
                    });
                }
            }
        }
        drop(map);
        if evicted > 0 {
            metrics::counter!("apptoken_cache_evictions_total").increment(evicted);
        }
        // The refresh heap must not outgrow the cache (evicted keys linger in it).
        let mut heap = self.schedule.lock().unwrap_or_else(|p| p.into_inner());
        if heap.len() > 2 * self.map.len() + 1024 {
            let map = self.map.pin();
            heap.retain(|Reverse(d)| {
                let key = CacheKey::from(d.key.clone());
                map.get(&key).is_some_and(|e| e.generation == d.generation)
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

    fn token(expires_on: OffsetDateTime) -> AccessToken {
        AccessToken::new(
            SecretString::from("t".to_string()),
            "Bearer".into(),
            expires_on,
            None,
            None,
            "t".into(),
            vec![],
        )
    }

    fn store(
        cache: &Cache,
        tenant: &str,
        expires_on: OffsetDateTime,
        refresh_at: Option<OffsetDateTime>,
        now: OffsetDateTime,
    ) {
        cache.store(
            owned(tenant, "api://x/.default"),
            token(expires_on),
            refresh_at,
            true,
            now,
            Authority::parse("https://h.example/t.example").unwrap(),
            Scopes::new(["api://x/.default"]).unwrap(),
        );
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
            prop_assert!(papaya::Equivalent::equivalent(&borrowed, &key));
        }

        #[test]
        fn different_tenants_never_share_a_key(a in "[a-z0-9.-]{1,40}", b in "[a-z0-9.-]{1,40}") {
            prop_assume!(!a.eq_ignore_ascii_case(&b));
            prop_assert_ne!(owned(&a, "api://x/.default"), owned(&b, "api://x/.default"));
            prop_assert!(!papaya::Equivalent::equivalent(&r(&a, "api://x/.default"), &owned(&b, "api://x/.default")));
        }
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
        );
        assert!(cache.throttled(&key, now + Duration::seconds(59)).is_some());
        assert!(cache.throttled(&key, now + Duration::seconds(60)).is_none());
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
