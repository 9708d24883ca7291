//! The in-memory token cache, with single-flight requests.
//!
//! Entries are spread over shards, each behind its own `RwLock`, so cache
//! hits on different keys do not contend. A miss starts one request per key:
//! concurrent callers for the same key share it (a `Shared` future over a
//! spawned task, so a caller that gives up does not cancel it for the others).

use std::collections::HashMap;
use std::collections::hash_map::DefaultHasher;
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use futures::FutureExt;
use futures::future::Shared;
use time::{Duration, OffsetDateTime};

use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::token::AccessToken;

/// A cached token is used until this long before it expires.
pub(crate) const EXPIRY_MARGIN: Duration = Duration::minutes(5);

/// After a failed background refresh, wait this long before trying again
/// (the cached token keeps being served meanwhile).
const REFRESH_RETRY: Duration = Duration::seconds(30);

const SHARDS: usize = 64;

/// What identifies a token: authority host, tenant, client id and the
/// normalised scopes. Two different tenants never share a key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct CacheKey {
    pub(crate) host: Arc<str>,
    pub(crate) tenant: String,
    pub(crate) client_id: Arc<str>,
    pub(crate) scopes: String,
}

struct Entry {
    token: AccessToken,
    /// Unix seconds before which no background refresh is started.
    next_refresh_attempt: AtomicI64,
}

type Shard = RwLock<HashMap<CacheKey, Arc<Entry>>>;

type SharedFetch = Shared<Pin<Box<dyn Future<Output = Result<AccessToken>> + Send>>>;

/// What the cache decided for one lookup.
pub(crate) enum Lookup {
    /// A fresh token.
    Hit(AccessToken),
    /// A valid token whose refresh time has come: serve it, refresh behind.
    Refresh(AccessToken),
    /// Nothing usable.
    Miss,
}

pub(crate) struct TokenCache {
    clock: Arc<dyn Clock>,
    shards: Box<[Shard]>,
    inflight: Mutex<HashMap<CacheKey, SharedFetch>>,
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache")
            .field("len", &self.len())
            .finish()
    }
}

impl TokenCache {
    pub(crate) fn new(clock: Arc<dyn Clock>) -> TokenCache {
        TokenCache {
            clock,
            shards: (0..SHARDS).map(|_| RwLock::new(HashMap::new())).collect(),
            inflight: Mutex::new(HashMap::new()),
        }
    }

    fn shard(&self, key: &CacheKey) -> &Shard {
        let mut h = DefaultHasher::new();
        key.hash(&mut h);
        &self.shards[(h.finish() as usize) % SHARDS]
    }

    pub(crate) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.read().unwrap_or_else(|p| p.into_inner()).len())
            .sum()
    }

    pub(crate) fn lookup(&self, key: &CacheKey, now: OffsetDateTime) -> Lookup {
        let shard = self.shard(key).read().unwrap_or_else(|p| p.into_inner());
        let Some(entry) = shard.get(key) else {
            return Lookup::Miss;
        };
        let token = &entry.token;
        if now >= token.expires_on() - EXPIRY_MARGIN {
            return Lookup::Miss;
        }
        match token.refresh_on() {
            Some(r) if now >= r => {
                let next = entry.next_refresh_attempt.load(Ordering::Relaxed);
                if now.unix_timestamp() >= next {
                    entry
                        .next_refresh_attempt
                        .store((now + REFRESH_RETRY).unix_timestamp(), Ordering::Relaxed);
                    Lookup::Refresh(token.clone())
                } else {
                    Lookup::Hit(token.clone())
                }
            }
            _ => Lookup::Hit(token.clone()),
        }
    }

    fn store(&self, key: CacheKey, token: AccessToken, now: OffsetDateTime) {
        let mut shard = self.shard(&key).write().unwrap_or_else(|p| p.into_inner());
        // Drop expired entries of this shard while we hold it: memory stays
        // bounded by the live tokens.
        shard.retain(|_, e| e.token.expires_on() > now);
        shard.insert(
            key,
            Arc::new(Entry {
                token,
                next_refresh_attempt: AtomicI64::new(i64::MIN),
            }),
        );
    }

    /// Returns the shared request for `key`, starting it with `fetch` if none
    /// is in flight. `fetch` runs on its own task; its result is stored in
    /// the cache before the in-flight slot is released.
    pub(crate) fn single_flight<F>(
        self: &Arc<Self>,
        key: &CacheKey,
        now: OffsetDateTime,
        recheck: bool,
        fetch: F,
    ) -> std::result::Result<AccessToken, SharedFetch>
    where
        F: Future<Output = Result<AccessToken>> + Send + 'static,
    {
        let mut inflight = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(f) = inflight.get(key) {
            return Err(f.clone());
        }
        if recheck {
            // A request may have completed between the caller's lookup and now.
            if let Lookup::Hit(t) = self.lookup(key, now) {
                return Ok(t);
            }
        }
        let cache = Arc::clone(self);
        let k = key.clone();
        let handle = tokio::spawn(async move {
            let result = fetch.await;
            if let Ok(token) = &result {
                cache.store(k.clone(), token.clone(), cache.clock.now());
            }
            cache
                .inflight
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&k);
            result
        });
        let fut: Pin<Box<dyn Future<Output = Result<AccessToken>> + Send>> = Box::pin(async move {
            match handle.await {
                Ok(r) => r,
                Err(e) => Err(Error::Configuration(format!(
                    "the token request task failed: {e}"
                ))),
            }
        });
        let shared = fut.shared();
        inflight.insert(key.clone(), shared.clone());
        Err(shared)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;

    fn key(tenant: &str) -> CacheKey {
        CacheKey {
            host: "https://h".into(),
            tenant: tenant.into(),
            client_id: "c".into(),
            scopes: "api://x/.default".into(),
        }
    }

    fn token(expires_on: OffsetDateTime, refresh_on: Option<OffsetDateTime>) -> AccessToken {
        AccessToken::new(
            SecretString::from("t".to_string()),
            "Bearer".into(),
            expires_on,
            refresh_on,
            None,
            "t".into(),
            vec![],
        )
    }

    #[test]
    fn freshness_margin_and_refresh_on() {
        let cache = TokenCache::new(Arc::new(crate::clock::SystemClock));
        let now = OffsetDateTime::UNIX_EPOCH + Duration::days(1);
        cache.store(
            key("a"),
            token(now + Duration::hours(1), Some(now + Duration::minutes(30))),
            now,
        );
        assert!(matches!(cache.lookup(&key("a"), now), Lookup::Hit(_)));
        assert!(matches!(cache.lookup(&key("b"), now), Lookup::Miss));
        // refresh time: the first caller triggers a refresh, the next ones just get the token
        let later = now + Duration::minutes(31);
        assert!(matches!(cache.lookup(&key("a"), later), Lookup::Refresh(_)));
        assert!(matches!(cache.lookup(&key("a"), later), Lookup::Hit(_)));
        assert!(matches!(
            cache.lookup(&key("a"), later + Duration::seconds(31)),
            Lookup::Refresh(_)
        ));
        // within five minutes of expiry the token is not used
        assert!(matches!(
            cache.lookup(&key("a"), now + Duration::minutes(55)),
            Lookup::Miss
        ));
    }

    #[test]
    fn expired_entries_are_dropped() {
        let cache = TokenCache::new(Arc::new(crate::clock::SystemClock));
        let now = OffsetDateTime::UNIX_EPOCH + Duration::days(1);
        for i in 0..1000 {
            cache.store(
                key(&format!("t{i}")),
                token(now + Duration::hours(1), None),
                now,
            );
        }
        assert_eq!(cache.len(), 1000);
        let later = now + Duration::hours(2);
        for i in 0..1000 {
            cache.store(
                key(&format!("u{i}")),
                token(later + Duration::hours(1), None),
                later,
            );
        }
        assert_eq!(cache.len(), 1000);
    }
}
