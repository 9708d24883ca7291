//! Helpers for apptoken's own crates (`apptoken-cli`, `apptoken-daemon`,
//! `apptoken-redis`), so that each rule has one implementation: when plain
//! http is allowed, when a secret file is safe, what a CA bundle must hold,
//! how PEM is read.
//!
//! Not public API: hidden from the docs, not covered by semver, may change
//! or go in any release. Other users: [`crate::Authority`],
//! [`crate::read_ca_file`],
//! [`crate::Certificate`], [`crate::ClientSecret::from_file`] and
//! `StoreKey::from_file` (`shared-store` feature) apply the same rules.
//! (docs/ARCHITECTURE.md, "Decisions", says when an item goes here.)

use std::path::Path;

use crate::error::Result;

pub(crate) mod pem;

pub use pem::{PemBlock, looks_like_pem, pem_blocks};

/// Whether a URL points at this machine (127.0.0.0/8, `[::1]`,
/// `localhost`), the one place plain http is allowed: the same rule as the
/// library's authorities. Not a URL: `false`.
pub fn is_loopback_url(url: &str) -> bool {
    url::Url::parse(url).is_ok_and(|u| crate::authority::is_loopback(&u))
}

/// The resource a managed-identity endpoint is asked for: the scope
/// without `/.default` (a trailing `/` before it kept, as Entra reads
/// `https://x//.default`). The broker's endpoint reads requests with the
/// same rule as the client writes them.
pub fn resource_of(scope: &str) -> &str {
    crate::managed_identity::wire::resource_of(scope)
}

/// Checks a secret file without reading it, as the library does before
/// reading a client secret, key or password: a regular file that other
/// users cannot read. `what` names the secret ("Redis password"); the
/// message names the file, its mode and the `chmod` that fixes it, never
/// the content.
pub fn check_secret_file(path: &Path, what: &str) -> Result<()> {
    crate::files::check_secret_file(path, what)
}

/// Checks CA certificates given as PEM (what [`crate::read_ca_file`]
/// checks of a file): at least one whole `-----BEGIN CERTIFICATE-----`
/// block. `what` starts the message ("the Redis CA").
pub fn check_ca_pem(pem: &[u8], what: &str) -> Result<()> {
    crate::files::check_ca_pem(pem, what).map_err(Into::into)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_that_does_not_parse_is_not_loopback() {
        assert!(is_loopback_url("http://127.0.0.1:9/v1"));
        assert!(is_loopback_url("http://[::1]/"));
        assert!(!is_loopback_url("http://10.0.0.1/"));
        assert!(!is_loopback_url("127.0.0.1"));
        assert!(!is_loopback_url(""));
        assert!(!is_loopback_url("http://[::1/"));
    }

    #[test]
    fn ca_pem_names_what_it_checks() {
        let e = check_ca_pem(b"not a certificate", "the Redis CA")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("the Redis CA holds no PEM certificate (-----BEGIN CERTIFICATE-----)"),
            "{e}"
        );
    }
}
