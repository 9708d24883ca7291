//! The throttle memory: keys the identity provider throttled (429 or
//! `Retry-After`), until when, and the error to answer meanwhile.
//!
//! It is not the token cache: the cache holds it (`Cache::throttle`,
//! `Cache::throttled`) only so that a store forgets a key's throttle under
//! the same call; the client consults it on a miss, before single flight.
//!
//! Invariants:
//! - A key is throttled while `now < until`; a passed throttle found by a
//!   lookup is removed.
//! - Bounded memory: passed throttles are swept whenever the map has
//!   doubled since the last sweep, so it holds about twice the keys
//!   throttled right now (at least [`THROTTLE_SWEEP_MIN`]), however many
//!   keys ever were.
//! - The mutex is held only to look up or change the map, never across an
//!   await.

use std::collections::HashMap;
use std::sync::Mutex;

use time::OffsetDateTime;

use crate::cache::CacheKey;
use crate::error::Error;

#[derive(Debug, Clone)]
struct Throttle {
    until: OffsetDateTime,
    error: Error,
}

#[derive(Debug)]
struct Map {
    map: HashMap<CacheKey, Throttle>,
    /// The size at which the next insertion first sweeps passed throttles.
    sweep_at: usize,
}

/// The throttle memory is never swept below this many keys.
pub(crate) const THROTTLE_SWEEP_MIN: usize = 64;

/// Keys the identity provider throttled, until when.
#[derive(Debug)]
pub(crate) struct Throttles {
    inner: Mutex<Map>,
}

impl Default for Throttles {
    fn default() -> Self {
        Throttles {
            inner: Mutex::new(Map {
                map: HashMap::new(),
                sweep_at: THROTTLE_SWEEP_MIN,
            }),
        }
    }
}

impl Throttles {
    fn lock(&self) -> std::sync::MutexGuard<'_, Map> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Remembers that `key` is throttled until `until`, answering `error`.
    pub(crate) fn insert(
        &self,
        key: CacheKey,
        until: OffsetDateTime,
        error: Error,
        now: OffsetDateTime,
    ) {
        let mut t = self.lock();
        if t.map.len() >= t.sweep_at {
            t.map.retain(|_, th| now < th.until);
            t.sweep_at = t.map.len().saturating_mul(2).max(THROTTLE_SWEEP_MIN);
        }
        t.map.insert(key, Throttle { until, error });
    }

    /// Forgets `key`'s throttle (a token was stored for it).
    pub(crate) fn remove(&self, key: &CacheKey) {
        self.lock().map.remove(key);
    }

    /// How many keys the memory holds (tests).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().map.len()
    }

    /// The error to answer at once while `key` is throttled.
    pub(crate) fn get(&self, key: &CacheKey, now: OffsetDateTime) -> Option<Error> {
        let mut t = self.lock();
        match t.map.get(key) {
            Some(th) if now < th.until => Some(th.error.clone()),
            Some(_) => {
                t.map.remove(key);
                None
            }
            None => None,
        }
    }
}
