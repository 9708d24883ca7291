//! The emulator's form and query parser (`params::Params`, through
//! `apptoken_emulator::fuzzing::form_first`), as the token endpoint, the
//! consent page, instance discovery and the sample API read it: never a
//! panic; a value found for a name is found again when the form is parsed
//! twice (the first value wins).

#![no_main]

use apptoken_emulator::fuzzing::form_first;
use libfuzzer_sys::fuzz_target;

const NAMES: [&str; 9] = [
    "grant_type",
    "client_id",
    "client_secret",
    "scope",
    "client_assertion_type",
    "client_assertion",
    "claims",
    "redirect_uri",
    "$top",
];

fuzz_target!(|data: &[u8]| {
    for name in NAMES {
        let first = form_first(data, name);
        assert_eq!(first, form_first(data, name));
        if let Some(v) = first {
            // A form that starts with this name and value answers that value.
            let encoded: String = url_encode(name) + "=" + &url_encode(&v) + "&";
            let mut again = encoded.into_bytes();
            again.extend_from_slice(data);
            assert_eq!(form_first(&again, name).as_deref(), Some(v.as_str()));
        }
    }
});

fn url_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
