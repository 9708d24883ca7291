//! IMDS's documented limits for managed identity (20 requests per second
//! on the emulator's clock, 5 concurrent), answered 429 when the opt-in
//! limits mode is on; and the hold, a test control that keeps
//! managed-identity requests in flight until released, so a test can have
//! exactly N requests in flight by waiting on events rather than sleeping.
//!
//! Invariants: an admitted request's in-flight slot is released when its
//! guard drops (answer sent or connection gone); the rate window holds at
//! most `MAX_PER_SECOND` instants; std mutexes only, never held across an
//! `.await` (the hold waits on a tokio watch channel).

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use time::OffsetDateTime;
use tokio::sync::watch;

/// IMDS: at most 20 managed-identity requests per second …
pub(crate) const MAX_PER_SECOND: usize = 20;
/// … and at most 5 in flight.
pub(crate) const MAX_CONCURRENT: usize = 5;

/// The limits' state and the hold.
#[derive(Debug)]
pub(crate) struct Limits {
    in_flight: AtomicUsize,
    /// Admitted requests' instants within the last second.
    window: Mutex<VecDeque<OffsetDateTime>>,
    /// `true` while requests are held.
    hold: watch::Sender<bool>,
    /// How many requests are waiting in the hold.
    held: watch::Sender<usize>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            in_flight: AtomicUsize::new(0),
            window: Mutex::new(VecDeque::new()),
            hold: watch::Sender::new(false),
            held: watch::Sender::new(0),
        }
    }
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    Rate,
    Concurrency,
}

/// An in-flight slot; released on drop.
#[derive(Debug)]
pub(crate) struct Slot<'a>(&'a AtomicUsize);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Limits {
    /// Takes an in-flight slot; with `enforce`, refuses a request past
    /// either limit (a refused request takes no slot and no rate place).
    pub(crate) fn admit(&self, now: OffsetDateTime, enforce: bool) -> Result<Slot<'_>, Refusal> {
        let before = self.in_flight.fetch_add(1, Ordering::SeqCst);
        let slot = Slot(&self.in_flight);
        if !enforce {
            return Ok(slot);
        }
        if before >= MAX_CONCURRENT {
            return Err(Refusal::Concurrency);
        }
        let mut window = self.window.lock().unwrap_or_else(|e| e.into_inner());
        let horizon = now - time::Duration::SECOND;
        while window.front().is_some_and(|t| *t <= horizon || *t > now) {
            window.pop_front();
        }
        if window.len() >= MAX_PER_SECOND {
            return Err(Refusal::Rate);
        }
        window.push_back(now);
        Ok(slot)
    }

    /// Holds (`true`) or releases (`false`) managed-identity requests.
    pub(crate) fn set_hold(&self, on: bool) {
        self.hold.send_replace(on);
    }

    /// Waits while the hold is on, counted in `held`.
    pub(crate) async fn pass_hold(&self) {
        if !*self.hold.borrow() {
            return;
        }
        self.held.send_modify(|n| *n = n.saturating_add(1));
        let mut rx = self.hold.subscribe();
        let _ = rx.wait_for(|on| !*on).await;
        self.held.send_modify(|n| *n = n.saturating_sub(1));
    }

    /// Waits until at least `n` requests are waiting in the hold.
    pub(crate) async fn wait_held(&self, n: usize) {
        let mut rx = self.held.subscribe();
        let _ = rx.wait_for(|held| *held >= n).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twenty_per_second_then_five_concurrent() {
        let limits = Limits::default();
        let t0 = time::macros::datetime!(2030-01-01 00:00:00 UTC);
        for _ in 0..MAX_PER_SECOND {
            assert!(limits.admit(t0, true).is_ok());
        }
        assert_eq!(limits.admit(t0, true).err(), Some(Refusal::Rate));
        let later = t0 + time::Duration::SECOND;
        let held: Vec<_> = (0..MAX_CONCURRENT)
            .map(|_| limits.admit(later, true).expect("admitted"))
            .collect();
        assert_eq!(limits.admit(later, true).err(), Some(Refusal::Concurrency));
        drop(held);
        assert!(limits.admit(later, true).is_ok());
        assert!(limits.admit(later, false).is_ok());
    }
}
