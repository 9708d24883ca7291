//! The library's reading of an OpenID discovery document
//! (`apptoken::fuzzing::discovery_document`, over `discovery::parse`): never
//! a panic; an accepted token endpoint is a URL.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok((endpoint, _issuer)) = apptoken::fuzzing::discovery_document(data) {
        let url = url::Url::parse(&endpoint).expect("the accepted endpoint is a URL");
        assert!(matches!(url.scheme(), "https" | "http"), "{endpoint}");
    }
});
