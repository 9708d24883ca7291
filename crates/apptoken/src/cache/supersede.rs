//! The supersede protocol between a shared entry and the threads' copies of
//! it: the flag each carries and the registry of copies the entry keeps.
//!
//! A thread that hits a hot entry twice makes its own copy of the token
//! (its own reference count; see `local.rs`) and then serves it without
//! looking at anything shared but the copy's own flag. When the cache
//! replaces or drops the entry, the writer *supersedes* it: it sets the
//! entry's flag, then takes the registry and sets the flag of every copy
//! in it. A copy is made only under the registry's lock and only while the
//! entry's flag is clear, so every copy is either in the registry when the
//! writer takes it (and gets flagged) or is never made.
//!
//! The invariant the cache relies on (and the model test checks):
//! **once [`Registry::supersede`] has returned, no copy of the entry is
//! served by a thread for which that return happened before its read** —
//! e.g. a thread that heard of the store through a channel, a lock or an
//! acquire load. A reader that races with the writer may still serve the
//! old token (or a copy of it) during the supersede: that is a read that
//! happened before the store, as with any concurrent map.
//!
//! The copy's flag is read `Relaxed` on the hit path: coherence of the one
//! location is enough for the invariant above (the writer's store happens
//! before the read), and a hit from a copy stays free of fences.
//!
//! This module is generic over the copy handle ([`CopyHandle`]: `Weak<Node>`
//! in production, the model's own) and names its primitives through
//! `super::sync`, so `tests/supersede_model.rs` compiles this very file
//! against `loom`'s `Mutex` and `AtomicBool` and explores every
//! interleaving of a reader making and serving a copy and a writer
//! publishing a new entry in the [`Slot`] (production: the index's
//! `ArcSwapOption`; the model: a `loom` `Mutex<Option<Arc<_>>>`) and
//! superseding the old one.
//!
//! Checked by the model: the invariant above, with one reader and one
//! writer, for every interleaving and every value the memory model lets
//! each load see (loom's C11 model, with `Relaxed` loads of the copy's flag
//! as in production), and that a copy made is always flagged or refused.
//! Not checked: `arc-swap` itself (the model's slot is a mutex), more than
//! one reader or writer or more than one supersede per entry, the index's
//! tags and probing, copies being *released* (the thread-local table's
//! `release_dropped`, weak-pointer pruning), nor `SeqCst`/fence subtleties
//! loom does not model (it does not model every relaxed behaviour of real
//! hardware either — it is a bounded model, not a proof).

use std::sync::Arc;

use super::sync::{AtomicBool, Mutex, Ordering};

/// Set when an entry (or a thread's copy of one) is superseded; never
/// cleared.
#[repr(transparent)]
pub(crate) struct Flag(AtomicBool);

impl Flag {
    pub(crate) fn new(set: bool) -> Flag {
        Flag(AtomicBool::new(set))
    }

    /// The hit path's read (no fence: see the module's note).
    pub(crate) fn is_set(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// The read that orders what follows after the writer's supersede.
    pub(crate) fn is_set_acquire(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }

    /// Sets the flag: only [`Registry::supersede`] and a [`CopyHandle`] do.
    pub(crate) fn set(&self) {
        self.0.store(true, Ordering::Release);
    }
}

/// What the registry keeps of a thread's copy.
pub(crate) trait CopyHandle {
    /// Sets the copy's flag, if the copy is still alive.
    fn supersede(&self);
    /// Whether the copy is still alive (dead handles are pruned).
    fn is_alive(&self) -> bool;
}

/// Where readers find the current entry for a key: written by the one
/// writer (the cache's writer lock), read by anyone. The writer stores the
/// new entry here first and supersedes the one it replaced afterwards
/// (`Cache::store`), so a reader that finds the old entry between the two
/// may still copy it — the copy is then registered and flagged.
pub(crate) trait Slot<E> {
    fn load_full(&self) -> Option<Arc<E>>;
    fn store(&self, entry: Option<Arc<E>>);
}

/// The copies of one shared entry, superseded with it.
pub(crate) struct Registry<C> {
    copies: Mutex<Vec<C>>,
}

impl<C: CopyHandle> Registry<C> {
    pub(crate) fn new() -> Registry<C> {
        Registry {
            copies: Mutex::new(Vec::new()),
        }
    }

    /// Marks the entry (whose flag is `flag`) superseded, then every copy
    /// registered with it. The flag first: a copy made from now on is
    /// refused ([`Registry::copy`] reads it under the lock taken here next).
    pub(crate) fn supersede(&self, flag: &Flag) {
        flag.set();
        let copies = std::mem::take(&mut *self.copies.lock().unwrap_or_else(|p| p.into_inner()));
        for c in &copies {
            c.supersede();
        }
    }

    /// A copy made by `make` (the copy and its handle) and registered, or
    /// `None` if the entry (whose flag is `flag`) is already superseded.
    /// `make` runs under the registry's lock.
    pub(crate) fn copy<T>(&self, flag: &Flag, make: impl FnOnce() -> (T, C)) -> Option<T> {
        let mut copies = self.copies.lock().unwrap_or_else(|p| p.into_inner());
        // Checked under the lock `supersede` takes after setting the flag:
        // a copy is either seen by `supersede` or never made.
        if flag.is_set_acquire() {
            return None;
        }
        let (copy, handle) = make();
        copies.retain(C::is_alive);
        copies.push(handle);
        Some(copy)
    }
}
