//! Entry metadata: what the cache keeps with a token it holds, and with a
//! thread's copy of one.
//!
//! Holds [`Meta`] (the first field of the token's own allocation,
//! [`crate::token::Node`]), the refresh claim, the copy of an entry made for
//! one thread ([`Meta::copy_token`], through the supersede protocol of
//! `supersede.rs`) and [`EntryView`], what the refresher reads of an entry.
//!
//! Invariants:
//! - A `Meta` is immutable once its node is published in the index, but for
//!   its atomics (`superseded`, `used`, `next_refresh_attempt`) and the
//!   registry of copies, which is behind its own lock.
//! - `key`, `origin` and the registry are set only on shared entries: a
//!   copy has `origin: None` and an empty registry (it is never copied
//!   again), and a detached token (not held by the cache) has `key: None`
//!   and is born superseded.
//! - Each store has its own `generation` (a copy keeps its entry's), so a
//!   refresh or a thread's copy can tell whether it is of the current entry.
//! - `superseded` is set by [`Meta::supersede`] only (never cleared); see
//!   `supersede.rs` for what a reader may rely on.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Weak};

use time::{Duration, OffsetDateTime};

use super::key::{CacheKey, KeyRef};
use super::supersede::{CopyHandle, Flag, Registry};
use crate::authority::Authority;
use crate::scope::Scopes;
use crate::token::{AccessToken, Node};

/// What the cache keeps with a token it holds. It is the first field of the
/// token's own allocation ([`crate::token::Node`]), so a hit reads the key,
/// the times and the reference count from one neighbourhood of memory.
#[repr(C)]
pub(crate) struct Meta {
    /// The key's hash (by the cache's hasher).
    pub(super) hash: u64,
    /// Unix milliseconds until which the token is served (expiry − 5 min).
    pub(super) fresh_until_ms: i64,
    /// Unix milliseconds from which a refresh is due (`i64::MAX`: never).
    pub(super) refresh_at_ms: i64,
    /// Set when the cache replaced or dropped this entry — on a thread's
    /// copy, by the entry it copies: the copy stops being served.
    pub(super) superseded: Flag,
    /// Used by a caller since it was stored; unused tokens are not refreshed.
    pub(super) used: AtomicBool,
    /// `None` for a token the cache does not hold.
    pub(super) key: Option<CacheKey>,
    /// Unix milliseconds before which no new refresh is started.
    next_refresh_attempt: AtomicI64,
    pub(super) generation: u64,
    pub(super) stored_at: OffsetDateTime,
    /// What a refresh needs (only on the shared entry, not on copies).
    origin: Option<Box<(Authority, Scopes)>>,
    /// The threads' copies of this entry, marked superseded with it (only
    /// on the shared entry).
    copies: Registry<Weak<Node>>,
}

impl Meta {
    /// The metadata of a token the cache does not hold.
    pub(crate) fn detached() -> Meta {
        Meta {
            hash: 0,
            fresh_until_ms: i64::MIN,
            refresh_at_ms: i64::MIN,
            superseded: Flag::new(true),
            used: AtomicBool::new(false),
            key: None,
            next_refresh_attempt: AtomicI64::new(i64::MIN),
            generation: 0,
            stored_at: OffsetDateTime::UNIX_EPOCH,
            origin: None,
            copies: Registry::new(),
        }
    }

    /// The metadata of one thread's copy of a cached token.
    fn copy(&self) -> Meta {
        Meta {
            hash: self.hash,
            fresh_until_ms: self.fresh_until_ms,
            refresh_at_ms: self.refresh_at_ms,
            superseded: Flag::new(false),
            used: AtomicBool::new(true),
            key: self.key.clone(),
            next_refresh_attempt: AtomicI64::new(i64::MIN),
            generation: self.generation,
            stored_at: self.stored_at,
            origin: None,
            copies: Registry::new(),
        }
    }

    /// The metadata of a token stored now (generation `generation`).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn stored(
        key: CacheKey,
        hash: u64,
        fresh_until_ms: i64,
        refresh_at_ms: i64,
        used: bool,
        generation: u64,
        stored_at: OffsetDateTime,
        origin: (Authority, Scopes),
    ) -> Meta {
        Meta {
            hash,
            fresh_until_ms,
            refresh_at_ms,
            superseded: Flag::new(false),
            used: AtomicBool::new(used),
            key: Some(key),
            next_refresh_attempt: AtomicI64::new(i64::MIN),
            generation,
            stored_at,
            origin: Some(Box::new(origin)),
            copies: Registry::new(),
        }
    }

    /// Marks this entry superseded, and every thread's copy of it.
    pub(super) fn supersede(&self) {
        self.copies.supersede(&self.superseded);
    }

    /// A copy of the token in `node` (whose metadata this is) for one
    /// thread, registered so that it is superseded with the entry; `None`
    /// if the entry already is.
    pub(super) fn copy_token(&self, node: &Arc<Node>) -> Option<AccessToken> {
        self.copies.copy(&self.superseded, || {
            let token = AccessToken::from_node(Arc::clone(node)).with_meta(self.copy());
            let handle = Arc::downgrade(&token.node);
            (token, handle)
        })
    }

    pub(super) fn matches(&self, key: &KeyRef<'_>) -> bool {
        self.key.as_ref().is_some_and(|k| key.parts_eq(k))
    }

    /// Claims the right to start a refresh now (one caller wins).
    pub(super) fn claim_refresh(&self, now_ms: i64, backoff: Duration) -> bool {
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

pub(super) fn view(node: &Arc<Node>) -> Option<EntryView> {
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

/// Production's copy handle: the copy's node, weakly (a thread's table
/// owns its copies; the registry must not keep them alive).
impl CopyHandle for Weak<Node> {
    fn supersede(&self) {
        if let Some(c) = self.upgrade() {
            c.meta.superseded.set();
        }
    }

    fn is_alive(&self) -> bool {
        self.strong_count() > 0
    }
}
