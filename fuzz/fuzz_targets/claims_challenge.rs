//! `apptoken::claims_challenge`, the reading of a resource's
//! `WWW-Authenticate` claims challenge (continuous access evaluation): never
//! a panic; what it returns is a JSON object.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let header = String::from_utf8_lossy(data);
    if let Some(claims) = apptoken::claims_challenge(&header) {
        let v: serde_json::Value = serde_json::from_str(&claims).expect("JSON");
        assert!(v.is_object(), "{claims}");
    }
});
