//! Certificate input (`apptoken::Certificate::from_pem` and `from_pkcs12`):
//! PEM blocks (certificates, PKCS#8, PKCS#1 and encrypted PKCS#8 keys) and
//! PKCS#12 archives give a certificate or a `Credential` error, never a
//! panic; a certificate it accepts has a chain, thumbprints and a `Debug`
//! that shows no key.
//!
//! Input layout: byte 0 picks the password (none, empty, the fixtures'
//! `fixture-password`, another) and, in bit 2, whether text that looks like
//! PEM is read as PKCS#12 all the same; the rest is the file.

#![no_main]

use libfuzzer_sys::fuzz_target;

const PASSWORDS: [Option<&str>; 4] = [None, Some(""), Some("fixture-password"), Some("wrong")];

fuzz_target!(|data: &[u8]| {
    let Some((&mode, file)) = data.split_first() else {
        return;
    };
    let password = PASSWORDS[usize::from(mode & 3)];
    let looks_pem = file.windows(11).any(|w| w == b"-----BEGIN ");
    let result = if looks_pem && mode & 4 == 0 {
        apptoken::Certificate::from_pem(file, password)
    } else {
        apptoken::Certificate::from_pkcs12(file, password.unwrap_or(""))
    };
    match result {
        Ok(cert) => {
            assert!(!cert.chain_der().is_empty());
            assert_eq!(cert.thumbprint_sha1_hex().len(), 40);
            assert_eq!(cert.thumbprint_sha256_hex().len(), 64);
            let _ = (
                cert.subject(),
                cert.issuer(),
                cert.not_before(),
                cert.not_after(),
            );
            let shown = format!("{cert:?}");
            assert!(!shown.contains("PRIVATE"), "{shown}");
        }
        Err(e) => assert!(matches!(e, apptoken::Error::Credential(_)), "{e:?}"),
    }
});
