//! Fuzzes the emulator's token endpoint through the whole router
//! (`apptoken_emulator::fuzzing::Harness`): any tenant segment, headers and
//! body must answer below 500, never panic.
//!
//! Input layout: byte 0 picks the content type, bytes 1..3 the length of the
//! tenant segment, then the tenant, then an Authorization header up to the
//! first 0x00, then the body.

#![no_main]

use std::sync::OnceLock;

use apptoken_emulator::fuzzing::Harness;
use libfuzzer_sys::fuzz_target;

fn harness() -> &'static Harness {
    static H: OnceLock<Harness> = OnceLock::new();
    H.get_or_init(|| Harness::new().expect("harness"))
}

const CONTENT_TYPES: [&[u8]; 4] = [
    b"application/x-www-form-urlencoded",
    b"application/json",
    b"text/plain; charset=utf-8",
    b"",
];

fuzz_target!(|data: &[u8]| {
    let Some((&ct, rest)) = data.split_first() else {
        return;
    };
    let (tenant_len, rest) = match rest {
        [a, b, rest @ ..] => (usize::from(u16::from_le_bytes([*a, *b])) % 128, rest),
        _ => (0, rest),
    };
    let tenant_len = tenant_len.min(rest.len());
    let (tenant, rest) = rest.split_at(tenant_len);
    let (auth, body) = match rest.iter().position(|b| *b == 0) {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (&rest[..0], rest),
    };
    let mut headers = Vec::new();
    let ct = CONTENT_TYPES[usize::from(ct) % CONTENT_TYPES.len()];
    if !ct.is_empty() {
        headers.push((b"content-type".to_vec(), ct.to_vec()));
    }
    if !auth.is_empty() {
        headers.push((b"authorization".to_vec(), auth.to_vec()));
    }
    let tenant = String::from_utf8_lossy(tenant);
    let (status, _) = harness().token_request(&tenant, &headers, body.to_vec());
    assert!(status < 500, "status {status}");
});
