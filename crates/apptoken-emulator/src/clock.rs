//! An injectable clock, so that time can be frozen or advanced in tests.

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
                *m = Mode::Frozen(now.saturating_add(offset));
            }
        });
    }

    /// Moves time forward (or back, with a negative duration); a frozen
    /// clock stays frozen at the new instant.
    pub(crate) fn advance(&self, by: time::Duration) {
        self.with(|m| match m {
            Mode::Running(offset) => *offset = offset.saturating_add(by),
            Mode::Frozen(at) => *at = at.saturating_add(by),
        });
    }

    /// Jumps to `at`; a frozen clock stays frozen there, a running one runs on from it.
    pub(crate) fn set(&self, at: OffsetDateTime) {
        let at = at.to_offset(time::UtcOffset::UTC);
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
            Mode::Running(offset) => base.saturating_add(offset),
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
}
