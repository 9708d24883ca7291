//! The library's reading of a successful token answer
//! (`apptoken::fuzzing::token_answer`, over `source::parse_token_response`):
//! any body gives a token or an `InvalidResponse` error, never a panic; an
//! accepted token has a token type; neither the error nor the token's
//! `Debug` ever shows the access token. (Lifetimes of any size pass here:
//! the client clamps them, see `limits.rs`.)

#![no_main]

use libfuzzer_sys::fuzz_target;

/// Longer than any message the parser writes, so that finding it in one
/// means the body was quoted.
const LONG: usize = 200;

fuzz_target!(|data: &[u8]| {
    let sent = serde_json::from_slice::<serde_json::Value>(data)
        .ok()
        .and_then(|v| v.get("access_token")?.as_str().map(str::to_string))
        .filter(|t| t.len() >= LONG);
    match apptoken::fuzzing::token_answer(data) {
        Ok(t) => {
            assert!(!t.token_type.is_empty());
            if let Some(tok) = &sent {
                assert!(
                    !format!("{t:?}").contains(tok.as_str()),
                    "Debug shows the token"
                );
            }
        }
        Err(e) => {
            assert!(
                matches!(e, apptoken::Error::InvalidResponse { .. }),
                "{e:?}"
            );
            if let Some(tok) = &sent {
                assert!(
                    !e.to_string().contains(tok.as_str()),
                    "the error quotes the token"
                );
            }
        }
    }
});
