//! How the client treats numbers from outside — a server's answer, a file,
//! a [`crate::TokenSource`], a [`crate::Clock`]: the caps and floors it
//! applies, and instant arithmetic that saturates instead of panicking.
//!
//! Invariant: no instant or duration built from outside input is computed
//! with `+`/`-` on `OffsetDateTime` (which panics past year ±9999); every
//! such computation goes through [`add`], [`sub`] or [`later`], which clamp
//! to the representable range. Lifetimes are clamped to
//! [`MIN_LIFETIME`]..=[`MAX_LIFETIME`] when a token is made, so later
//! arithmetic on a token's times stays far from the edges.
//! `docs/HOSTILE_INPUT.md` lists every rule for users.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use time::{OffsetDateTime, PrimitiveDateTime};
use tracing::{debug, warn};

/// The longest `Retry-After` honoured (MSAL.NET caps it at an hour too).
/// A longer value is taken as this, and logged as suspicious.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// The shortest token lifetime the cache assumes. An `expires_in` below it
/// (0 included) is raised to it, and logged: otherwise a token that lives
/// less than the five-minute freshness margin would never be served from
/// the cache and every call would become a token request.
pub const MIN_LIFETIME: Duration = Duration::from_secs(60);

/// The longest token lifetime (and `ext_expires_in`, `refresh_in`) the
/// cache believes: seven days. Entra's tokens live one to 28 hours; a longer
/// value is taken as this, so the token is refreshed in time all the same.
pub const MAX_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);

/// The earliest representable instant.
pub(crate) fn min_instant() -> OffsetDateTime {
    PrimitiveDateTime::MIN.assume_utc()
}

/// The latest representable instant.
pub(crate) fn max_instant() -> OffsetDateTime {
    PrimitiveDateTime::MAX.assume_utc()
}

/// `t + d`, clamped to the representable range.
pub(crate) fn add(t: OffsetDateTime, d: time::Duration) -> OffsetDateTime {
    t.checked_add(d).unwrap_or_else(|| {
        if d.is_negative() {
            min_instant()
        } else {
            max_instant()
        }
    })
}

/// `t - d`, clamped to the representable range.
pub(crate) fn sub(t: OffsetDateTime, d: time::Duration) -> OffsetDateTime {
    t.checked_sub(d).unwrap_or_else(|| {
        if d.is_negative() {
            max_instant()
        } else {
            min_instant()
        }
    })
}

/// `t + d` for a standard duration, clamped.
pub(crate) fn later(t: OffsetDateTime, d: Duration) -> OffsetDateTime {
    add(t, to_time(d))
}

/// A standard duration as a `time` one, saturating.
pub(crate) fn to_time(d: Duration) -> time::Duration {
    time::Duration::try_from(d).unwrap_or(time::Duration::MAX)
}

/// How long from `from` until `to` (zero if `to` is not later).
pub(crate) fn until(from: OffsetDateTime, to: OffsetDateTime) -> Duration {
    Duration::try_from(to - from).unwrap_or(Duration::ZERO)
}

/// A server's `Retry-After`, capped at [`MAX_RETRY_AFTER`]; a longer
/// value is logged as suspicious (at warn level once per process, at debug
/// level after that, so a server repeating it cannot flood the log).
pub(crate) fn cap_retry_after(d: Duration, url: &str) -> Duration {
    static WARNED: AtomicBool = AtomicBool::new(false);
    if d <= MAX_RETRY_AFTER {
        return d;
    }
    let secs = d.as_secs();
    if !WARNED.swap(true, Ordering::Relaxed) {
        warn!(
            url,
            retry_after_secs = secs,
            cap_secs = MAX_RETRY_AFTER.as_secs(),
            "suspicious Retry-After: the server asks for a wait longer than an hour; waiting an hour at most"
        );
    } else {
        debug!(
            url,
            retry_after_secs = secs,
            "suspicious Retry-After capped at an hour"
        );
    }
    MAX_RETRY_AFTER
}

/// A token's lifetime as a source gave it, clamped to
/// [`MIN_LIFETIME`]..=[`MAX_LIFETIME`], with a warning when it was outside.
pub(crate) fn clamp_lifetime(expires_in: Duration) -> Duration {
    if expires_in < MIN_LIFETIME {
        warn!(
            expires_in_secs = expires_in.as_secs(),
            floor_secs = MIN_LIFETIME.as_secs(),
            "the token answer's expires_in is shorter than the floor; the token is cached as if it lived that long (served for half of it)"
        );
        MIN_LIFETIME
    } else if expires_in > MAX_LIFETIME {
        warn!(
            expires_in_secs = expires_in.as_secs(),
            cap_secs = MAX_LIFETIME.as_secs(),
            "the token answer's expires_in is longer than seven days; the token is cached for seven days at most"
        );
        MAX_LIFETIME
    } else {
        expires_in
    }
}

/// How long before its expiry a token of `lifetime` stops being served:
/// five minutes, or half its lifetime when that is shorter.
pub(crate) fn freshness_margin(lifetime: time::Duration) -> time::Duration {
    let half = lifetime / 2_i32;
    crate::cache::EXPIRY_MARGIN.min(half.max(time::Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn edges_saturate() {
        let max = max_instant();
        let min = min_instant();
        assert_eq!(add(max, time::Duration::seconds(1)), max);
        assert_eq!(add(min, time::Duration::seconds(-1)), min);
        assert_eq!(sub(min, time::Duration::seconds(1)), min);
        assert_eq!(sub(max, time::Duration::seconds(-1)), max);
        assert_eq!(later(OffsetDateTime::UNIX_EPOCH, Duration::MAX), max);
        assert_eq!(to_time(Duration::MAX), time::Duration::MAX);
        assert_eq!(until(max, min), Duration::ZERO);
        assert!(until(min, max) > Duration::from_secs(600_000_000_000));
    }

    #[test]
    fn retry_after_is_capped_at_an_hour() {
        assert_eq!(
            cap_retry_after(Duration::from_secs(60), "u"),
            Duration::from_secs(60)
        );
        assert_eq!(
            cap_retry_after(Duration::from_secs(3600), "u"),
            MAX_RETRY_AFTER
        );
        assert_eq!(
            cap_retry_after(Duration::from_secs(3601), "u"),
            MAX_RETRY_AFTER
        );
        assert_eq!(cap_retry_after(Duration::MAX, "u"), MAX_RETRY_AFTER);
    }

    #[test]
    fn lifetimes_are_clamped_and_margins_shrink_for_short_tokens() {
        assert_eq!(clamp_lifetime(Duration::ZERO), MIN_LIFETIME);
        assert_eq!(clamp_lifetime(Duration::from_secs(1)), MIN_LIFETIME);
        assert_eq!(
            clamp_lifetime(Duration::from_secs(3599)),
            Duration::from_secs(3599)
        );
        assert_eq!(clamp_lifetime(Duration::MAX), MAX_LIFETIME);
        assert_eq!(
            freshness_margin(time::Duration::hours(1)),
            time::Duration::minutes(5)
        );
        assert_eq!(
            freshness_margin(time::Duration::seconds(60)),
            time::Duration::seconds(30)
        );
        assert_eq!(
            freshness_margin(time::Duration::seconds(-60)),
            time::Duration::ZERO
        );
    }

    proptest! {
        #[test]
        fn instant_arithmetic_never_panics(
            secs in prop_oneof![Just(i64::MIN), Just(i64::MAX), Just(0i64), -400_000_000_000i64..400_000_000_000],
            d in prop_oneof![Just(i64::MIN), Just(i64::MAX), Just(0i64), any::<i64>()],
            std_secs in prop_oneof![Just(u64::MAX), Just(0u64), any::<u64>()],
        ) {
            let t = OffsetDateTime::from_unix_timestamp(secs.clamp(-377_705_116_800, 253_402_300_799)).unwrap();
            let d = time::Duration::seconds(d);
            let a = add(t, d);
            let s = sub(t, d);
            prop_assert!(a >= min_instant() && a <= max_instant());
            prop_assert!(s >= min_instant() && s <= max_instant());
            let l = later(t, Duration::from_secs(std_secs));
            prop_assert!(l >= t);
            let _ = until(t, a);
            let _ = freshness_margin(d);
        }
    }
}
