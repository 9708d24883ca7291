//! The emulator's lenient JWT reading (`jwt::Jwt::parse` and the claim
//! readers the token endpoint applies to client assertions, through
//! `apptoken_emulator::fuzzing::jwt`): never a panic; the signing input of a
//! token it parses is the token's first two segments.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let token = String::from_utf8_lossy(data);
    if let Some(signing_input) = apptoken_emulator::fuzzing::jwt(&token) {
        let trimmed = token.trim();
        assert!(trimmed.starts_with(&signing_input));
        assert_eq!(signing_input.matches('.').count(), 1, "{signing_input}");
        assert_eq!(trimmed.matches('.').count(), 2);
    }
});
