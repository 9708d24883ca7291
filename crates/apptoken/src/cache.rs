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
use std::hash::{Hash, Hasher};
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

/// What identifies a token: authority host, tenant, client id and the
/// normalised scope. Tenant and scope are compared without regard to ASCII
/// case; two different tenants never share a key.
#[derive(Debug, Clone)]
pub(crate) struct CacheKey {
    pub(crate) host: Arc<str>,
    pub(crate) tenant: Box<str>,
    pub(crate) client_id: Arc<str>,
    pub(crate) scope: Box<str>,
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
        CacheKey {
            host: Arc::clone(host),
            tenant: self.tenant.to_ascii_lowercase().into(),
            client_id: Arc::clone(client_id),
            scope: self.scope.to_ascii_lowercase().into(),
        }
    }

    fn parts_eq(&self, k: &CacheKey) -> bool {
        self.host == &*k.host
            && self.client_id == &*k.client_id
            && self.tenant.eq_ignore_ascii_case(&k.tenant)
            && self.scope.eq_ignore_ascii_case(&k.scope)
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
        hash_parts(h, &self.host, &self.tenant, &self.client_id, &self.scope);
    }
}

impl Hash for KeyRef<'_> {
    fn hash<H: Hasher>(&self, h: &mut H) {
        hash_parts(h, self.host, self.tenant, self.client_id, self.scope);
    }
}

impl PartialEq for CacheKey {
    fn eq(&self, other: &Self) -> bool {
        self.host == other.host
            && self.client_id == other.client_id
            && self.tenant.eq_ignore_ascii_case(&other.tenant)
            && self.scope.eq_ignore_ascii_case(&other.scope)
    }
}

impl Eq for CacheKey {}

impl papaya::Equivalent<CacheKey> for KeyRef<'_> {
    fn equivalent(&self, key: &CacheKey) -> bool {
        self.parts_eq(key)
    }
}

/// One cached token and what is needed to refresh it.
#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) token: AccessToken,
    /// When to refresh ahead of expiry (jittered), if at all.
    pub(crate) refresh_at: Option<OffsetDateTime>,
    pub(crate) stored_at: OffsetDateTime,
    /// Used by a caller since it was stored; unused tokens are not refreshed.
    pub(crate) used: AtomicBool,
    /// Unix seconds before which no new refresh is started.
    pub(crate) next_refresh_attempt: AtomicI64,
    pub(crate) generation: u64,
    pub(crate) authority: Authority,
    pub(crate) scopes: Scopes,
}

impl Entry {
    /// Claims the right to start a refresh now (one caller wins).
    pub(crate) fn claim_refresh(&self, now: OffsetDateTime, backoff: Duration) -> bool {
        let now_s = now.unix_timestamp();
        let next = self.next_refresh_attempt.load(Ordering::Relaxed);
        now_s >= next
            && self
                .next_refresh_attempt
                .compare_exchange(next, now_s + backoff.whole_seconds(), Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }
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
struct KeyOrd(Arc<str>, Box<str>, Arc<str>, Box<str>);

impl From<&CacheKey> for KeyOrd {
    fn from(k: &CacheKey) -> Self {
        KeyOrd(k.host.clone(), k.tenant.clone(), k.client_id.clone(), k.scope.clone())
    }
}

impl From<KeyOrd> for CacheKey {
    fn from(k: KeyOrd) -> Self {
        CacheKey {
            host: k.0,
            tenant: k.1,
            client_id: k.2,
            scope: k.3,
        }
    }
}

pub(crate) struct Cache {
    map: papaya::HashMap<CacheKey, Arc<Entry>, foldhash::fast::RandomState>,
    pub(crate) inflight: Mutex<HashMap<CacheKey, SharedFetch>>,
    throttled: Mutex<HashMap<CacheKey, Throttle>>,
    schedule: Mutex<BinaryHeap<Reverse<Due>>>,
    sweeping: Mutex<()>,
    max_entries: Option<usize>,
    generation: AtomicU64,
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
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    /// The hot path: no lock, no allocation but the token's reference count.
    pub(crate) fn lookup(&self, key: &KeyRef<'_>, now: OffsetDateTime, refresh_backoff: Duration) -> Lookup {
        let map = self.map.pin();
        let Some(entry) = map.get(key) else {
            return Lookup::Miss;
        };
        if now >= entry.token.expires_on() - EXPIRY_MARGIN {
            return Lookup::Stale(entry.token.clone());
        }
        if !entry.used.load(Ordering::Relaxed) {
            entry.used.store(true, Ordering::Relaxed);
        }
        let refresh = matches!(entry.refresh_at, Some(r) if now >= r) && entry.claim_refresh(now, refresh_backoff);
        Lookup::Hit {
            token: entry.token.clone(),
            refresh,
        }
    }

    /// The entry for `key`, if it is still the given generation.
    pub(crate) fn entry_if(&self, key: &CacheKey, generation: u64) -> Option<Arc<Entry>> {
        let map = self.map.pin();
        map.get(key).filter(|e| e.generation == generation).cloned()
    }

    /// The current entry for `key`.
    pub(crate) fn entry(&self, key: &CacheKey) -> Option<Arc<Entry>> {
        self.map.pin().get(key).cloned()
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
        let entry = Arc::new(Entry {
            token,
            refresh_at,
            stored_at: now,
            used: AtomicBool::new(used),
            next_refresh_attempt: AtomicI64::new(i64::MIN),
            generation,
            authority,
            scopes,
        });
        self.throttled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&key);
        let mut earlier = false;
        if let Some(at) = refresh_at {
            earlier = self.schedule_at(&key, generation, at);
        }
        self.map.pin().insert(key, entry);
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
        if !over && stores % 4096 != 0 {
            return;
        }
        let Ok(_guard) = self.sweeping.try_lock() else { return };
        let map = self.map.pin();
        let mut evicted = 0u64;
        map.retain(|_, e| {
            let keep = e.token.expires_on() > now
                || e.token.ext_expires_on().is_some_and(|x| x > now);
            if !keep {
                evicted += 1;
            }
            keep
        });
        if let Some(max) = self.max_entries {
            let len = map.len();
            if len > max {
                let target = max - max / 10;
                let mut ages: Vec<(OffsetDateTime, u64)> = map.iter().map(|(_, e)| (e.stored_at, e.generation)).collect();
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
        KeyRef {
            host: "https://h",
            tenant,
            client_id: "c",
            scope,
        }
        .to_owned_key(&Arc::from("https://h"), &Arc::from("c"))
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

    fn store(cache: &Cache, tenant: &str, expires_on: OffsetDateTime, refresh_at: Option<OffsetDateTime>, now: OffsetDateTime) {
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
        store(&cache, "a", now + Duration::hours(1), Some(now + Duration::minutes(30)), now);
        let k = r("A", "API://X/.default");
        assert!(matches!(cache.lookup(&k, now, Duration::seconds(30)), Lookup::Hit { refresh: false, .. }));
        assert!(matches!(cache.lookup(&r("b", "api://x/.default"), now, Duration::seconds(30)), Lookup::Miss));
        let later = now + Duration::minutes(31);
        assert!(matches!(cache.lookup(&k, later, Duration::seconds(30)), Lookup::Hit { refresh: true, .. }));
        assert!(matches!(cache.lookup(&k, later, Duration::seconds(30)), Lookup::Hit { refresh: false, .. }));
        assert!(matches!(
            cache.lookup(&k, later + Duration::seconds(31), Duration::seconds(30)),
            Lookup::Hit { refresh: true, .. }
        ));
        assert!(matches!(cache.lookup(&k, now + Duration::minutes(55), Duration::seconds(30)), Lookup::Stale(_)));
    }

    #[test]
    fn the_bound_keeps_the_newest_entries() {
        let cache = Cache::new(Some(100));
        let now = OffsetDateTime::UNIX_EPOCH + Duration::days(1);
        for i in 0..1000 {
            store(&cache, &format!("t{i}"), now + Duration::hours(1), None, now + Duration::seconds(i));
            assert!(cache.len() <= 100, "{}", cache.len());
        }
        assert!(matches!(cache.lookup(&r("t999", "api://x/.default"), now, Duration::seconds(30)), Lookup::Hit { .. }));
        assert!(matches!(cache.lookup(&r("t0", "api://x/.default"), now, Duration::seconds(30)), Lookup::Miss));
    }

    #[test]
    fn expired_entries_are_swept() {
        let cache = Cache::new(None);
        let now = OffsetDateTime::UNIX_EPOCH + Duration::days(1);
        for i in 0..4095 {
            store(&cache, &format!("t{i}"), now + Duration::hours(1), None, now);
        }
        assert_eq!(cache.len(), 4095);
        store(&cache, "late", now + Duration::hours(5), None, now + Duration::hours(2));
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn throttle_memory_expires() {
        let cache = Cache::new(None);
        let now = OffsetDateTime::UNIX_EPOCH;
        let key = owned("a", "api://x/.default");
        cache.throttle(key.clone(), now + Duration::seconds(60), Error::Configuration("throttled".into()));
        assert!(cache.throttled(&key, now + Duration::seconds(59)).is_some());
        assert!(cache.throttled(&key, now + Duration::seconds(60)).is_none());
    }

    #[test]
    fn the_schedule_orders_refreshes() {
        let cache = Cache::new(None);
        let now = OffsetDateTime::UNIX_EPOCH + Duration::days(1);
        store(&cache, "late", now + Duration::hours(2), Some(now + Duration::hours(1)), now);
        store(&cache, "early", now + Duration::hours(2), Some(now + Duration::minutes(10)), now);
        assert_eq!(cache.next_due(), Some(now + Duration::minutes(10)));
        assert!(cache.take_due(now).is_empty());
        let due = cache.take_due(now + Duration::minutes(10));
        assert_eq!(due.len(), 1);
        assert_eq!(&*due[0].0.tenant, "early");
        assert!(cache.entry_if(&due[0].0, due[0].1).is_some());
        assert!(cache.entry_if(&due[0].0, due[0].1 + 100).is_none());
    }
}
