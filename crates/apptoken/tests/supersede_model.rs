//! A model check (loom) of the supersede protocol between a shared cache
//! entry and a thread's copy of it: `src/cache/supersede.rs`, compiled here
//! against loom's `Mutex` and `AtomicBool`, with a loom `Mutex<Option<Arc<_>>>`
//! as the slot in place of the index's `ArcSwapOption`.
//!
//! Two threads, every interleaving loom finds (and every value its C11
//! model lets a `Relaxed` or `Acquire` load see):
//! - a reader that finds the entry in the slot, makes its copy (the
//!   production order: a copy is made from an entry found in the index),
//!   then reads twice the way a hit does — its copy while the copy's flag is
//!   clear, else the slot — the second time after checking whether it has
//!   heard of the writer (an `Acquire` load of a flag the writer sets with
//!   `Release` once `supersede` has returned);
//! - a writer that stores a new entry (a new token) in the slot, then
//!   supersedes the entry it replaced, then says so.
//!
//! Checked: a reader that has heard of the writer never serves the old
//! token, from its copy or otherwise; and when both are done, every copy of
//! the old entry that was made is flagged. What the model does not cover is
//! said in `src/cache/supersede.rs`.

use std::sync::Arc;

use loom::sync::atomic::AtomicBool as LoomBool;

/// The primitives `supersede.rs` is written against: loom's.
mod sync {
    pub(crate) use loom::sync::Mutex;
    pub(crate) use loom::sync::atomic::{AtomicBool, Ordering};
}

#[path = "../src/cache/supersede.rs"]
mod supersede;

use supersede::{CopyHandle, Flag, Registry, Slot};
use sync::{Mutex, Ordering};

/// A shared entry: its token, its flag, its copies.
struct Entry {
    token: u32,
    superseded: Flag,
    copies: Registry<Arc<Copy>>,
}

impl Entry {
    fn new(token: u32) -> Arc<Entry> {
        Arc::new(Entry {
            token,
            superseded: Flag::new(false),
            copies: Registry::new(),
        })
    }
}

/// A thread's copy of an entry.
struct Copy {
    token: u32,
    superseded: Flag,
}

impl CopyHandle for Arc<Copy> {
    fn supersede(&self) {
        self.superseded.set();
    }

    fn is_alive(&self) -> bool {
        Arc::strong_count(self) > 1
    }
}

/// The model's slot: a mutex where production has an `ArcSwapOption`.
struct Cell(Mutex<Option<Arc<Entry>>>);

impl Slot<Entry> for Cell {
    fn load_full(&self) -> Option<Arc<Entry>> {
        self.0.lock().unwrap().clone()
    }

    fn store(&self, entry: Option<Arc<Entry>>) {
        *self.0.lock().unwrap() = entry;
    }
}

/// A hit as the cache serves it: the thread's copy while its flag is
/// clear, else the entry in the slot.
fn read(copy: Option<&Arc<Copy>>, slot: &Cell) -> u32 {
    match copy {
        Some(c) if !c.superseded.is_set() => c.token,
        _ => slot.load_full().map_or(0, |e| e.token),
    }
}

#[test]
fn a_superseded_copy_is_never_served_after_the_writer_is_heard_of() {
    loom::model(|| {
        const OLD: u32 = 1;
        const NEW: u32 = 2;
        let slot = Arc::new(Cell(Mutex::new(Some(Entry::new(OLD)))));
        let heard = Arc::new(LoomBool::new(false));
        let copies_of_old = Arc::new(Mutex::new(Vec::<Arc<Copy>>::new()));

        let reader = {
            let (slot, heard, copies_of_old) = (slot.clone(), heard.clone(), copies_of_old.clone());
            loom::thread::spawn(move || {
                let entry = slot.load_full().expect("the slot is never emptied");
                let copy = entry.copies.copy(&entry.superseded, || {
                    let c = Arc::new(Copy {
                        token: entry.token,
                        superseded: Flag::new(false),
                    });
                    (c.clone(), c)
                });
                if let Some(c) = &copy
                    && c.token == OLD
                {
                    copies_of_old.lock().unwrap().push(c.clone());
                }
                // A read racing with the writer: either token.
                let first = read(copy.as_ref(), &slot);
                assert!(first == OLD || first == NEW);
                // A read after hearing of the writer: the new token only.
                let after = heard.load(Ordering::Acquire);
                let second = read(copy.as_ref(), &slot);
                if after {
                    assert_eq!(second, NEW, "a superseded copy was served");
                }
            })
        };

        let writer = {
            let (slot, heard) = (slot.clone(), heard.clone());
            loom::thread::spawn(move || {
                // Production's order (`Table::put`, then `Cache::store`):
                // publish the new entry, then supersede the one replaced.
                let old = slot.load_full();
                slot.store(Some(Entry::new(NEW)));
                if let Some(old) = old {
                    old.copies.supersede(&old.superseded);
                }
                heard.store(true, Ordering::Release);
            })
        };

        reader.join().unwrap();
        writer.join().unwrap();
        for c in copies_of_old.lock().unwrap().iter() {
            assert!(
                c.superseded.is_set_acquire(),
                "a copy of the old entry escaped"
            );
        }
    });
}
