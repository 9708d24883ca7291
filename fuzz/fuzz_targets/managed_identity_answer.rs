//! The library's reading of a managed-identity endpoint's answer
//! (`apptoken::fuzzing::managed_identity_answer`, over
//! `managed_identity/wire.rs`: `parse_token` for a 200, `into_error` for
//! anything else): every shape IMDS, App Service or a proxy in the way can
//! send gives a token or an error naming the source, never a panic; an
//! accepted token has a token type and a lifetime; neither the error nor
//! the token's `Debug` shows the access token.
//!
//! Input layout: an even byte 0 means 200 (most inputs stay on the
//! success path) and the body follows; an odd one means bytes 1..3 are the
//! status (little-endian, 100..=999), then the body.

#![no_main]

use libfuzzer_sys::fuzz_target;

/// Longer than any message the reader writes, so that finding it in one
/// means the body was quoted.
const LONG: usize = 200;

fuzz_target!(|data: &[u8]| {
    let (status, body) = match data {
        [s, body @ ..] if s & 1 == 0 => (200, body),
        [_, s0, s1, body @ ..] => (100 + u16::from_le_bytes([*s0, *s1]) % 900, body),
        _ => return,
    };
    let sent = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("access_token")?.as_str().map(str::to_string))
        .filter(|t| t.len() >= LONG);
    match apptoken::fuzzing::managed_identity_answer(status, body) {
        Ok(t) => {
            assert_eq!(status, 200, "a token from a {status}");
            assert!(!t.token_type.is_empty());
            if let Some(tok) = &sent {
                assert!(
                    !format!("{t:?}").contains(tok.as_str()),
                    "Debug shows the token"
                );
            }
        }
        Err(e) => {
            let text = e.to_string();
            if status == 200 {
                assert!(
                    matches!(e, apptoken::Error::InvalidResponse { .. }),
                    "{e:?}"
                );
                assert!(text.contains("IMDS"), "the error names no source: {text}");
            } else {
                assert_eq!(e.status(), Some(status));
            }
            if let Some(tok) = &sent {
                assert!(!text.contains(tok.as_str()), "the error quotes the token");
                assert!(
                    !format!("{e:?}").contains(tok.as_str()),
                    "the error's Debug quotes the token"
                );
            }
        }
    }
});
