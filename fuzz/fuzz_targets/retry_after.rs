//! `apptoken::retry_after(value, now)`, the one `Retry-After` parser of the
//! library and the daemon: any value at any instant gives a wait or `None`,
//! never a panic; delta-seconds are taken as they are.
//!
//! Input layout: bytes 0..8 pick `now` (any instant `time` can hold), the
//! rest is the header value.

#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use time::OffsetDateTime;

fuzz_target!(|data: &[u8]| {
    let (now, value) = match data {
        [a, b, c, d, e, f, g, h, rest @ ..] => {
            let min = OffsetDateTime::new_utc(time::Date::MIN, time::Time::MIDNIGHT);
            let max = OffsetDateTime::new_utc(time::Date::MAX, time::Time::MIDNIGHT);
            let span = (max.unix_timestamp() - min.unix_timestamp()) as u64;
            let pick = u64::from_le_bytes([*a, *b, *c, *d, *e, *f, *g, *h]) % span;
            let now = OffsetDateTime::from_unix_timestamp(min.unix_timestamp() + pick as i64)
                .expect("in range");
            (now, rest)
        }
        _ => (OffsetDateTime::UNIX_EPOCH, data),
    };
    let value = String::from_utf8_lossy(value);
    let wait = apptoken::retry_after(&value, now);
    if let Ok(secs) = value.trim().parse::<u64>() {
        assert_eq!(wait, Some(Duration::from_secs(secs)));
    }
});
