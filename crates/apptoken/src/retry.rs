//! Retries with exponential backoff and full jitter, within a deadline, and
//! `Retry-After` honoured to the second.

use std::future::Future;
use std::time::Duration;

use tracing::debug;

use crate::clock::Clock;
use crate::error::{Error, Result};

/// How token requests are retried.
///
/// Transport errors, timeouts, 408, 429, 500, 502, 503 and 504 are retried
/// up to `max_retries` times with exponential backoff and full jitter
/// (a random wait between zero and `min(max_delay, base_delay × 2ⁿ)`). A 429
/// or 503 with `Retry-After` waits exactly that long — never less — if the
/// wait fits in `deadline`; otherwise the error is returned at once. Other
/// answers (`invalid_client`, `invalid_scope`…) are never retried.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// Retries after the first attempt (default 3).
    pub max_retries: u32,
    /// First backoff ceiling (default 500 ms).
    pub base_delay: Duration,
    /// Largest backoff ceiling (default 10 s).
    pub max_delay: Duration,
    /// Overall time for one acquisition, waits included (default 60 s).
    pub deadline: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 3,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(10),
            deadline: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// No retries at all.
    pub fn none() -> RetryPolicy {
        RetryPolicy {
            max_retries: 0,
            ..RetryPolicy::default()
        }
    }

    /// A policy with `max_retries` retries and the default delays.
    pub fn with_max_retries(max_retries: u32) -> RetryPolicy {
        RetryPolicy {
            max_retries,
            ..RetryPolicy::default()
        }
    }

    /// Sets the delays and the deadline.
    pub fn delays(
        mut self,
        base_delay: Duration,
        max_delay: Duration,
        deadline: Duration,
    ) -> RetryPolicy {
        self.base_delay = base_delay;
        self.max_delay = max_delay.max(base_delay);
        self.deadline = deadline;
        self
    }

    /// The backoff ceiling before retry `n` (0-based).
    fn ceiling(&self, n: u32) -> Duration {
        let factor = 1u32.checked_shl(n.min(30)).unwrap_or(u32::MAX);
        self.base_delay.saturating_mul(factor).min(self.max_delay)
    }
}

/// What to do after a failed attempt.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Do not retry.
    Stop,
    /// Wait exactly this long (the server said so).
    After(Duration),
    /// Back off.
    Backoff,
}

pub(crate) fn classify(e: &Error) -> Verdict {
    let status = match e {
        Error::Transport { .. } => return Verdict::Backoff,
        Error::External(x) if x.is_retryable() => return Verdict::Backoff,
        Error::IdentityProvider(s) => s.status,
        Error::InvalidResponse { status, .. } if *status >= 400 => *status,
        _ => return Verdict::Stop,
    };
    match (status, e.retry_after()) {
        (429 | 503, Some(after)) => Verdict::After(after),
        (408 | 429 | 500 | 502 | 503 | 504, _) => Verdict::Backoff,
        _ => Verdict::Stop,
    }
}

/// Runs `attempt` until it succeeds, fails for good, or the policy is spent.
/// Calls `on_retry` before each wait (for metrics).
pub(crate) async fn run<T, F, Fut>(
    policy: &RetryPolicy,
    clock: &dyn Clock,
    mut attempt: F,
    mut on_retry: impl FnMut(),
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let start = clock.now();
    let mut n = 0u32;
    loop {
        let err = match attempt().await {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        if n >= policy.max_retries {
            return Err(err);
        }
        let wait = match classify(&err) {
            Verdict::Stop => return Err(err),
            Verdict::After(d) => d,
            Verdict::Backoff => {
                let ceiling = policy.ceiling(n);
                let nanos = ceiling.as_nanos().min(u64::MAX as u128) as u64;
                Duration::from_nanos(if nanos == 0 {
                    0
                } else {
                    rand::random_range(0..=nanos)
                })
            }
        };
        let elapsed = (clock.now() - start).max(time::Duration::ZERO);
        let elapsed = Duration::try_from(elapsed).unwrap_or(Duration::ZERO);
        if elapsed.saturating_add(wait) > policy.deadline {
            debug!(
                wait_ms = wait.as_millis() as u64,
                "the next retry would pass the deadline; giving up"
            );
            return Err(err);
        }
        debug!(attempt = n + 1, wait_ms = wait.as_millis() as u64, error = %err, "retrying the token request");
        on_retry();
        clock.sleep(wait).await;
        n += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ServerError;

    fn server(status: u16, retry_after: Option<u64>) -> Error {
        let mut e = ServerError::new(status, String::new());
        e.retry_after = retry_after.map(Duration::from_secs);
        Error::IdentityProvider(Box::new(e))
    }

    #[test]
    fn what_is_retried() {
        assert_eq!(
            classify(&server(429, Some(60))),
            Verdict::After(Duration::from_secs(60))
        );
        assert_eq!(
            classify(&server(503, Some(5))),
            Verdict::After(Duration::from_secs(5))
        );
        assert_eq!(classify(&server(500, Some(5))), Verdict::Backoff);
        for s in [408, 429, 500, 502, 503, 504] {
            assert_eq!(classify(&server(s, None)), Verdict::Backoff, "{s}");
        }
        for s in [400, 401, 403, 404, 501] {
            assert_eq!(classify(&server(s, None)), Verdict::Stop, "{s}");
        }
        let t = Error::transport("", "", true, None);
        assert_eq!(classify(&t), Verdict::Backoff);
        assert_eq!(
            classify(&crate::error::credential(
                crate::error::CredentialErrorKind::Malformed,
                "x"
            )),
            Verdict::Stop
        );
    }

    #[test]
    fn backoff_ceilings_grow_and_stop_at_the_maximum() {
        let p = RetryPolicy::default();
        assert_eq!(p.ceiling(0), Duration::from_millis(500));
        assert_eq!(p.ceiling(1), Duration::from_secs(1));
        assert_eq!(p.ceiling(4), Duration::from_secs(8));
        assert_eq!(p.ceiling(5), Duration::from_secs(10));
        assert_eq!(p.ceiling(100), Duration::from_secs(10));
    }
}
