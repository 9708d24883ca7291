//! An injectable clock, so that time can be frozen or advanced in tests.
//!
//! Invariants: every handler reads "now" from the shared clock, never from
//! the system directly; its mutexes are std mutexes held only for a read or
//! an update (never across an `.await`), and a poisoned one is still used.

use std::fmt::Debug;
use std::sync::Mutex;

use time::OffsetDateTime;

/// The source of "now" for every handler.
pub(crate) trait Clock: Send + Sync + Debug {
    /// The current time in UTC.
    fn now(&self) -> OffsetDateTime;
}

/// The operating system's clock.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// A clock that only moves when told to.
#[derive(Debug)]
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) struct ManualClock(Mutex<OffsetDateTime>);

#[cfg_attr(not(test), allow(dead_code))]
impl ManualClock {
    pub(crate) fn new(at: OffsetDateTime) -> Self {
        ManualClock(Mutex::new(at))
    }

    pub(crate) fn advance(&self, by: time::Duration) {
        let mut now = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *now += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The earliest instant the emulator's clock shows: the Unix epoch. Before
/// it, `iat`/`nbf`/`exp` would be negative NumericDates.
pub(crate) const EARLIEST: OffsetDateTime = time::macros::datetime!(1970-01-01 00:00:00 UTC);
/// The latest instant the emulator's clock shows: the last second of year
/// 9999. Certificates (X.509 `GeneralizedTime`) and Entra's dates (.NET
/// `DateTime`) end there; date arithmetic beyond it would overflow.
pub(crate) const LATEST: OffsetDateTime = time::macros::datetime!(9999-12-31 23:59:59 UTC);

/// `at` in UTC when it lies in [`EARLIEST`]..=[`LATEST`]; `None` otherwise
/// (including when converting its offset to UTC leaves the calendar).
pub(crate) fn in_range(at: OffsetDateTime) -> Option<OffsetDateTime> {
    at.checked_to_offset(time::UtcOffset::UTC)
        .filter(|t| (EARLIEST..=LATEST).contains(t))
}

/// `at` moved into [`EARLIEST`]..=[`LATEST`], in UTC.
fn clamp(at: OffsetDateTime) -> OffsetDateTime {
    if at <= EARLIEST {
        EARLIEST
    } else if at >= LATEST {
        LATEST
    } else {
        at.to_offset(time::UtcOffset::UTC)
    }
}

/// What [`ControlledClock`] does on top of its base clock.
#[derive(Debug, Clone, Copy)]
enum Mode {
    /// Base clock + offset.
    Running(time::Duration),
    /// Stands still at this instant.
    Frozen(OffsetDateTime),
}

/// The emulator's clock: a base clock that tests can freeze, advance, set
/// and resume (`RunningEmulator::freeze_clock`, `POST /_emulator/clock`).
///
/// What it shows is always within [`EARLIEST`]..=[`LATEST`]: moves beyond
/// are clamped here (the HTTP API refuses them first, with a 400).
#[derive(Debug)]
pub(crate) struct ControlledClock {
    base: std::sync::Arc<dyn Clock>,
    mode: Mutex<Mode>,
}

impl ControlledClock {
    pub(crate) fn new(base: std::sync::Arc<dyn Clock>) -> Self {
        ControlledClock {
            base,
            mode: Mutex::new(Mode::Running(time::Duration::ZERO)),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Mode) -> T) -> T {
        let mut mode = self.mode.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut mode)
    }

    /// Stops time at the current instant (no-op when already frozen).
    pub(crate) fn freeze(&self) {
        let now = self.base.now();
        self.with(|m| {
            if let Mode::Running(offset) = *m {
                *m = Mode::Frozen(clamp(now.saturating_add(offset)));
            }
        });
    }

    /// Moves time forward (or back, with a negative duration), stopping at
    /// the ends of the range; a frozen clock stays frozen at the new instant.
    pub(crate) fn advance(&self, by: time::Duration) {
        let base = self.base.now();
        self.with(|m| match m {
            Mode::Running(offset) => {
                let to = clamp(base.saturating_add(*offset).saturating_add(by));
                *offset = to - base;
            }
            Mode::Frozen(at) => *at = clamp(at.saturating_add(by)),
        });
    }

    /// Jumps to `at` (clamped into the range); a frozen clock stays frozen
    /// there, a running one runs on from it.
    pub(crate) fn set(&self, at: OffsetDateTime) {
        // Comparisons are offset-aware, so clamping never converts an instant
        // whose UTC form leaves the calendar.
        let at = clamp(at);
        let base = self.base.now();
        self.with(|m| match m {
            Mode::Running(offset) => *offset = at - base,
            Mode::Frozen(frozen) => *frozen = at,
        });
    }

    /// Lets a frozen clock run again from the instant it shows (the offset
    /// to the real clock is kept); no-op when running.
    pub(crate) fn resume(&self) {
        let base = self.base.now();
        self.with(|m| {
            if let Mode::Frozen(at) = *m {
                *m = Mode::Running(at - base);
            }
        });
    }

    /// Whether the clock is frozen.
    pub(crate) fn is_frozen(&self) -> bool {
        self.with(|m| matches!(m, Mode::Frozen(_)))
    }
}

impl ControlledClock {
    /// The emulator's current time.
    pub(crate) fn now(&self) -> OffsetDateTime {
        let base = self.base.now();
        self.with(|m| match *m {
            Mode::Running(offset) => clamp(base.saturating_add(offset)),
            Mode::Frozen(at) => at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use time::macros::datetime;

    #[test]
    fn controlled_clock_freezes_advances_sets_and_resumes() {
        let base = Arc::new(ManualClock::new(datetime!(2030-01-01 00:00:00 UTC)));
        let clock = ControlledClock::new(base.clone());
        clock.advance(time::Duration::hours(1));
        assert_eq!(clock.now(), datetime!(2030-01-01 01:00:00 UTC));
        clock.freeze();
        base.advance(time::Duration::minutes(5));
        assert_eq!(clock.now(), datetime!(2030-01-01 01:00:00 UTC));
        assert!(clock.is_frozen());
        clock.set(datetime!(2031-06-01 12:00:00 UTC));
        clock.advance(time::Duration::seconds(30));
        assert_eq!(clock.now(), datetime!(2031-06-01 12:00:30 UTC));
        clock.resume();
        assert!(!clock.is_frozen());
        base.advance(time::Duration::seconds(10));
        assert_eq!(clock.now(), datetime!(2031-06-01 12:00:40 UTC));
        clock.set(datetime!(2029-01-01 00:00:00 UTC));
        base.advance(time::Duration::seconds(1));
        assert_eq!(clock.now(), datetime!(2029-01-01 00:00:01 UTC));
    }

    #[test]
    fn the_clock_is_clamped_to_1970_through_9999() {
        let base = Arc::new(ManualClock::new(datetime!(2030-01-01 00:00:00 UTC)));
        let clock = ControlledClock::new(base.clone());
        clock.advance(time::Duration::MAX);
        assert_eq!(clock.now(), LATEST);
        // Back from the end by one second: the clamp did not keep a huge offset.
        clock.advance(time::Duration::seconds(-1));
        assert_eq!(clock.now(), LATEST - time::Duration::seconds(1));
        clock.advance(time::Duration::MIN);
        assert_eq!(clock.now(), EARLIEST);
        clock.freeze();
        clock.advance(time::Duration::MIN);
        assert_eq!(clock.now(), EARLIEST);
        // An offset that makes the UTC form leave the calendar: no panic.
        clock.set(datetime!(9999-12-31 23:59:59 -23:59));
        assert_eq!(clock.now(), LATEST);
        clock.set(datetime!(-9999-01-01 00:00:00 +23:59));
        assert_eq!(clock.now(), EARLIEST);
        clock.set(datetime!(2031-01-01 12:00:00 +02:00));
        assert_eq!(clock.now(), datetime!(2031-01-01 10:00:00 UTC));
        assert_eq!(in_range(datetime!(9999-12-31 23:59:59 -00:01)), None);
        assert_eq!(in_range(datetime!(1970-01-01 00:59:59 +01:00)), None);
        assert_eq!(
            in_range(datetime!(1970-01-01 01:00:00 +01:00)),
            Some(EARLIEST)
        );
        assert_eq!(in_range(LATEST), Some(LATEST));
    }
}
