//! Time, injectable so that tests can move it.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
#[cfg(any(test, feature = "test-util"))]
use std::sync::Mutex;
use std::time::Duration;

use time::OffsetDateTime;

/// The future returned by [`Clock::sleep`].
pub type Sleep = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A source of the current time and of waits. The client asks it whether a
/// cached token is still fresh, stamps assertions with it, and sleeps through
/// it between retries and until proactive refreshes.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current time (UTC).
    fn now(&self) -> OffsetDateTime;

    /// The current time in Unix milliseconds, for the cache's hot path
    /// (is this token still fresh?). It may lag [`Clock::now`] by a few
    /// milliseconds: freshness has minutes of margin. The default derives
    /// it from [`Clock::now`].
    fn now_unix_ms(&self) -> i64 {
        (self.now().unix_timestamp_nanos() / 1_000_000) as i64
    }

    /// Waits for `duration` of this clock's time. The default sleeps on the
    /// tokio timer.
    fn sleep(&self, duration: Duration) -> Sleep {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// The system's wall clock and the tokio timer.
#[derive(Debug, Clone, Copy, Default)]
#[non_exhaustive]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }

    /// On Linux, `CLOCK_REALTIME_COARSE`: the time of the kernel's last
    /// tick (at most a few milliseconds old), read from the vDSO without
    /// reading the hardware clock — several times cheaper than the precise
    /// clock, which would otherwise be a good part of a cache hit's cost.
    fn now_unix_ms(&self) -> i64 {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            let t = rustix::time::clock_gettime(rustix::time::ClockId::RealtimeCoarse);
            t.tv_sec
                .saturating_mul(1000)
                .saturating_add(t.tv_nsec / 1_000_000)
        }
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
            Ok(d) => d.as_millis() as i64,
            Err(e) => -(e.duration().as_millis() as i64),
        }
    }
}

/// A clock that only moves when told to; for tests. Sleeps end when the
/// clock is advanced past their deadline. Needs the `test-util` feature
/// (`apptoken = { version = "…", features = ["test-util"] }` under
/// `[dev-dependencies]`).
///
/// ```
/// use apptoken::{Clock, ManualClock};
/// use std::time::Duration;
/// let clock = ManualClock::new(time::OffsetDateTime::UNIX_EPOCH);
/// clock.advance(Duration::from_secs(90));
/// assert_eq!(clock.now().unix_timestamp(), 90);
/// ```
#[cfg(any(test, feature = "test-util"))]
#[derive(Debug)]
pub struct ManualClock {
    state: Mutex<State>,
}

#[cfg(any(test, feature = "test-util"))]
#[derive(Debug)]
struct State {
    now: OffsetDateTime,
    sleepers: Vec<(OffsetDateTime, tokio::sync::oneshot::Sender<()>)>,
}

#[cfg(any(test, feature = "test-util"))]
impl ManualClock {
    /// A clock stopped at `start`.
    pub fn new(start: OffsetDateTime) -> Self {
        ManualClock {
            state: Mutex::new(State {
                now: start,
                sleepers: Vec::new(),
            }),
        }
    }

    /// A clock stopped at the current system time.
    pub fn starting_now() -> Self {
        Self::new(OffsetDateTime::now_utc())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Moves the clock forward and wakes the sleeps that are due. The clock
    /// stops at the last representable instant (year 9999).
    pub fn advance(&self, by: Duration) {
        let mut s = self.lock();
        s.now = crate::limits::later(s.now, by);
        Self::wake_due(&mut s);
    }

    /// Sets the clock (forward or back) and wakes the sleeps that are due.
    pub fn set(&self, to: OffsetDateTime) {
        let mut s = self.lock();
        s.now = to;
        Self::wake_due(&mut s);
    }

    /// How many sleeps are waiting (tests use it to know that the client is
    /// waiting, for example between two retries).
    pub fn sleepers(&self) -> usize {
        let mut s = self.lock();
        s.sleepers.retain(|(_, tx)| !tx.is_closed());
        s.sleepers.len()
    }

    /// The earliest deadline among the waiting sleeps.
    pub fn next_deadline(&self) -> Option<OffsetDateTime> {
        let mut s = self.lock();
        s.sleepers.retain(|(_, tx)| !tx.is_closed());
        s.sleepers.iter().map(|(d, _)| *d).min()
    }

    fn wake_due(s: &mut State) {
        let now = s.now;
        let mut i = 0;
        while i < s.sleepers.len() {
            if s.sleepers[i].0 <= now {
                let (_, tx) = s.sleepers.swap_remove(i);
                let _ = tx.send(());
            } else {
                i += 1;
            }
        }
    }
}

#[cfg(any(test, feature = "test-util"))]
impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        self.lock().now
    }

    fn sleep(&self, duration: Duration) -> Sleep {
        if duration.is_zero() {
            return Box::pin(std::future::ready(()));
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        {
            let mut s = self.lock();
            let deadline = crate::limits::later(s.now, duration);
            s.sleepers.push((deadline, tx));
        }
        Box::pin(async move {
            // A dropped clock ends the sleep too.
            let _ = rx.await;
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;

    #[test]
    fn manual_sleeps_end_when_advanced_past_their_deadline() {
        let clock = ManualClock::new(OffsetDateTime::UNIX_EPOCH);
        let mut a = clock.sleep(Duration::from_secs(60));
        let mut b = clock.sleep(Duration::from_secs(10));
        assert_eq!(clock.sleepers(), 2);
        assert!((&mut a).now_or_never().is_none());
        clock.advance(Duration::from_secs(9));
        assert!((&mut b).now_or_never().is_none());
        clock.advance(Duration::from_secs(1));
        assert!((&mut b).now_or_never().is_some());
        assert!((&mut a).now_or_never().is_none());
        assert_eq!(clock.next_deadline().unwrap().unix_timestamp(), 60);
        clock.set(OffsetDateTime::UNIX_EPOCH + Duration::from_secs(60));
        assert!(a.now_or_never().is_some());
        assert_eq!(clock.sleepers(), 0);
        assert!(clock.sleep(Duration::ZERO).now_or_never().is_some());
    }

    #[test]
    fn the_system_clocks_fast_reading_agrees_with_the_precise_one() {
        // The coarse clock is at most a tick behind: allow a generous second
        // (no timing assertion: only that both read the same wall clock).
        for _ in 0..100 {
            let before = SystemClock.now();
            let fast = SystemClock.now_unix_ms();
            let after = SystemClock.now();
            let ms = |t: OffsetDateTime| (t.unix_timestamp_nanos() / 1_000_000) as i64;
            assert!(fast <= ms(after), "{fast} > {}", ms(after));
            assert!(fast >= ms(before) - 1_000, "{fast} << {}", ms(before));
        }
    }
}
