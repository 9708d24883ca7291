//! The library's reading of an error answer
//! (`apptoken::fuzzing::error_answer`, over `http::Response::into_server_error`)
//! and everything a caller reads from the error: never a panic; the status is
//! kept; a body excerpt (non-JSON answers) holds no control characters.
//!
//! Input layout: bytes 0..2 the status (100..=999), byte 2 whether a
//! `Retry-After` was sent and bytes 3..5 its seconds, then the body.

#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [s0, s1, ra, r0, r1, body @ ..] = data else {
        return;
    };
    let status = 100 + u16::from_le_bytes([*s0, *s1]) % 900;
    let retry_after =
        (ra & 1 == 1).then(|| Duration::from_secs(u64::from(u16::from_le_bytes([*r0, *r1]))));
    let e = apptoken::fuzzing::error_answer(status, retry_after, body);
    assert_eq!(e.status(), Some(status));
    let _ = (e.to_string(), format!("{e:?}"), e.aadsts_codes());
    let _ = (
        e.is_retryable(),
        e.is_throttled(),
        e.is_timeout(),
        e.retry_after(),
    );
    let server = e.server_error().expect("an identity provider error");
    let _ = (server.to_string(), server.aadsts());
    if let Some(excerpt) = &server.body_excerpt {
        assert!(!excerpt.chars().any(char::is_control), "{excerpt:?}");
    }
});
