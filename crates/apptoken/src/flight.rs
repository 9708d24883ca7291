//! Single flight: at most one token request per key at a time, however many
//! callers wait for it.
//!
//! A request owns a [`Slot`] in the map of requests in flight. The slot is
//! freed by its `Drop`, whatever happens to the task that holds it:
//! success, error, panic, cancellation or the runtime shutting down. A task
//! that ends without an answer reaches its waiters as
//! [`Error::Internal`](crate::Error::Internal), never as a configuration
//! error, and the next call for the key starts a fresh request.
//!
//! Invariants:
//! - the map entry for a key is removed only by the slot that inserted it
//!   (each slot has its own id), so a late drop can never free a newer
//!   request's slot;
//! - on success the caller stores the token in the cache *before*
//!   [`Slot::finish`], which frees the slot and then answers the waiters: a
//!   caller that finds no slot finds the token;
//! - the task is spawned after the map's lock is released, so a task dropped
//!   at once (a runtime shutting down) can free its slot without deadlock.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use futures::FutureExt;
use futures::future::Shared;

use crate::cache::CacheKey;
use crate::error::{InternalError, InternalErrorKind, Result};
use crate::token::AccessToken;

/// The future every waiter of one request polls.
pub(crate) type SharedFetch = Shared<Pin<Box<dyn Future<Output = Result<AccessToken>> + Send>>>;

type Map = HashMap<CacheKey, (u64, SharedFetch)>;

/// The requests in flight, by key.
#[derive(Default)]
pub(crate) struct InFlight {
    map: Arc<Mutex<Map>>,
    next_id: AtomicU64,
}

impl std::fmt::Debug for InFlight {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InFlight")
            .field("len", &self.len())
            .finish()
    }
}

/// The map, locked: join a request or reserve a new one.
pub(crate) struct Locked<'a> {
    owner: &'a InFlight,
    map: MutexGuard<'a, Map>,
}

impl InFlight {
    pub(crate) fn lock(&self) -> Locked<'_> {
        Locked {
            owner: self,
            map: self.map.lock().unwrap_or_else(|p| p.into_inner()),
        }
    }

    /// How many requests are in flight.
    pub(crate) fn len(&self) -> usize {
        self.map.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

impl Locked<'_> {
    /// The request in flight for `key`, to join.
    pub(crate) fn get(&self, key: &CacheKey) -> Option<SharedFetch> {
        self.map.get(key).map(|(_, f)| f.clone())
    }

    /// Reserves the slot for `key` and releases the lock. The returned slot
    /// must be moved into the task that makes the request; the shared future
    /// is what callers wait on.
    pub(crate) fn reserve(mut self, key: CacheKey) -> (Slot, SharedFetch) {
        let id = self.owner.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = tokio::sync::oneshot::channel::<Result<AccessToken>>();
        let fut: Pin<Box<dyn Future<Output = Result<AccessToken>> + Send>> =
            Box::pin(rx.map(|r| {
                r.unwrap_or_else(|_| {
                    Err(InternalError::new(
                        InternalErrorKind::Cancelled,
                        "the token request task ended without an answer",
                    )
                    .into())
                })
            }));
        let shared = fut.shared();
        self.map.insert(key.clone(), (id, shared.clone()));
        let slot = Slot {
            map: Arc::clone(&self.owner.map),
            key,
            id,
            tx: Some(tx),
        };
        (slot, shared)
    }
}

/// One request's place in the map; freed when dropped.
pub(crate) struct Slot {
    map: Arc<Mutex<Map>>,
    key: CacheKey,
    id: u64,
    tx: Option<tokio::sync::oneshot::Sender<Result<AccessToken>>>,
}

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slot").field("id", &self.id).finish()
    }
}

impl Slot {
    /// Frees the slot, then answers every waiter with `result`.
    pub(crate) fn finish(mut self, result: Result<AccessToken>) {
        self.free();
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(result);
        }
    }

    fn free(&self) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if map.get(&self.key).is_some_and(|(id, _)| *id == self.id) {
            map.remove(&self.key);
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let Some(tx) = self.tx.take() else { return };
        // The task ended without finishing: it panicked, or it was dropped
        // (cancelled, or its runtime shut down).
        self.free();
        let (kind, what) = if std::thread::panicking() {
            (
                InternalErrorKind::Panicked,
                "the token request task panicked (a bug: the log has the panic message); the next call tries again",
            )
        } else {
            (
                InternalErrorKind::Cancelled,
                "the token request task was cancelled (the runtime is shutting down?); the next call tries again",
            )
        };
        tracing::error!(tenant = self.key.tenant(), "{what}");
        let _ = tx.send(Err(InternalError::new(kind, what).into()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;

    fn key(tenant: &str) -> CacheKey {
        CacheKey::new("h".into(), "c".into(), tenant, "api://x/.default")
    }

    #[tokio::test]
    async fn a_finished_slot_is_freed_before_the_answer() {
        let f = InFlight::default();
        let (slot, shared) = f.lock().reserve(key("t"));
        assert!(f.lock().get(&key("t")).is_some());
        slot.finish(Err(crate::error::config(
            crate::error::ConfigErrorKind::Invalid,
            "x",
        )));
        assert_eq!(f.len(), 0);
        assert!(matches!(shared.await, Err(Error::Configuration(_))));
    }

    #[tokio::test]
    async fn a_dropped_slot_is_freed_and_answers_internal() {
        let f = InFlight::default();
        let (slot, shared) = f.lock().reserve(key("t"));
        drop(slot);
        assert_eq!(f.len(), 0);
        let e = shared.await.unwrap_err();
        assert!(
            matches!(&e, Error::Internal(m) if m.kind() == InternalErrorKind::Cancelled),
            "{e}"
        );
    }

    #[tokio::test]
    async fn a_panicking_task_frees_its_slot_and_answers_internal() {
        let f = InFlight::default();
        let (slot, shared) = f.lock().reserve(key("t"));
        let task = tokio::spawn(async move {
            let _slot = slot;
            panic!("boom");
        });
        assert!(task.await.unwrap_err().is_panic());
        assert_eq!(f.len(), 0);
        let e = shared.await.unwrap_err();
        assert!(
            matches!(&e, Error::Internal(m) if m.kind() == InternalErrorKind::Panicked),
            "{e}"
        );
    }

    #[tokio::test]
    async fn a_stale_slot_never_frees_a_newer_request() {
        let f = InFlight::default();
        let (old, _) = f.lock().reserve(key("t"));
        // Someone replaced the entry (cannot happen through the client,
        // which joins instead; the id check makes it harmless anyway).
        let (new, _) = f.lock().reserve(key("t"));
        drop(old);
        assert!(f.lock().get(&key("t")).is_some());
        drop(new);
        assert_eq!(f.len(), 0);
    }
}
