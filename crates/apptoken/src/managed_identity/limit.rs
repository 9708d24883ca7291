//! IMDS's documented limits for managed identity — 20 requests a second
//! and 5 at once per VM — kept by one process however many callers and
//! clients it has: one limiter per endpoint, shared process-wide.
//!
//! The rate is a sliding window of the last 20 request starts, on the
//! caller's clock (tests move it); concurrency a semaphore of 5 permits.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::clock::Clock;

/// Requests per window.
pub(crate) const RATE: usize = 20;
/// The window.
const WINDOW: time::Duration = time::Duration::SECOND;
/// Requests at once.
pub(crate) const CONCURRENT: usize = 5;

/// One endpoint's limits.
pub(crate) struct Limiter {
    starts: Mutex<VecDeque<OffsetDateTime>>,
    at_once: Arc<Semaphore>,
}

static LIMITERS: LazyLock<Mutex<HashMap<String, Arc<Limiter>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// The process's limiter for `endpoint`.
pub(crate) fn for_endpoint(endpoint: &str) -> Arc<Limiter> {
    let mut map = LIMITERS.lock().unwrap_or_else(|p| p.into_inner());
    Arc::clone(
        map.entry(endpoint.to_string())
            .or_insert_with(|| Arc::new(Limiter::new())),
    )
}

impl Limiter {
    pub(crate) fn new() -> Limiter {
        Limiter {
            starts: Mutex::new(VecDeque::with_capacity(RATE)),
            at_once: Arc::new(Semaphore::new(CONCURRENT)),
        }
    }

    /// Waits for a slot (one of 5) and for the rate (20 in any second),
    /// then counts this request's start. Hold the permit until its answer.
    /// (`None` only if the semaphore were closed, which it never is.)
    pub(crate) async fn admit(&self, clock: &dyn Clock) -> Option<OwnedSemaphorePermit> {
        let permit = Arc::clone(&self.at_once).acquire_owned().await.ok();
        loop {
            let wait = self.try_start(clock.now());
            match wait {
                None => return permit,
                Some(d) => clock.sleep(d).await,
            }
        }
    }

    /// Counts a start at `now` if the window allows it, else how long to wait.
    fn try_start(&self, now: OffsetDateTime) -> Option<Duration> {
        let mut starts = self.starts.lock().unwrap_or_else(|p| p.into_inner());
        while starts
            .front()
            .is_some_and(|t| *t + WINDOW <= now || *t > now)
        {
            starts.pop_front();
        }
        if starts.len() < RATE {
            starts.push_back(now);
            return None;
        }
        let oldest = starts.front().copied().unwrap_or(now);
        Some(crate::limits::until(now, oldest + WINDOW).max(Duration::from_millis(1)))
    }

    #[cfg(test)]
    fn available(&self) -> usize {
        self.at_once.available_permits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    #[test]
    fn twenty_starts_a_second_then_a_wait_until_the_oldest_leaves_the_window() {
        let l = Limiter::new();
        let t0 = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        for i in 0..RATE {
            assert_eq!(
                l.try_start(t0 + time::Duration::milliseconds(i as i64)),
                None
            );
        }
        let now = t0 + time::Duration::milliseconds(500);
        assert_eq!(l.try_start(now), Some(Duration::from_millis(500)));
        assert_eq!(
            l.try_start(t0 + WINDOW),
            None,
            "the first start left the window"
        );
        // A clock that went back does not block forever.
        assert_eq!(l.try_start(t0 - time::Duration::hours(1)), None);
    }

    #[tokio::test]
    async fn at_most_five_at_once() {
        let l = Arc::new(Limiter::new());
        let clock = Arc::new(ManualClock::starting_now());
        let mut held = Vec::new();
        for _ in 0..CONCURRENT {
            held.push(l.admit(&*clock).await);
        }
        assert_eq!(l.available(), 0);
        let l2 = Arc::clone(&l);
        let clock2 = clock.clone();
        let mut sixth = tokio::spawn(async move { l2.admit(&*clock2).await });
        tokio::task::yield_now().await;
        assert!(futures::FutureExt::now_or_never(&mut sixth).is_none());
        drop(held.pop());
        let p = sixth.await.unwrap();
        drop(p);
        assert_eq!(l.available(), 1);
    }
}
