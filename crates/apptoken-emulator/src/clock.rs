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
