//! Entry points for the fuzz targets in `fuzz/` (docs/FUZZING.md): thin
//! wrappers that feed bytes to the crate's internal parsers of identity
//! provider answers.
//!
//! Not public API: hidden from the docs, no stability promise, may change
//! or go in any release. Use [`crate::ConfidentialClient`].

use std::time::Duration;

use crate::error::{Error, Result};
use crate::source::TokenResponse;

/// The address the wrappers report answers as coming from.
const URL: &str = "https://login.microsoftonline.com/fuzz/oauth2/v2.0/token";

/// A successful token answer's body, read as the client reads it.
pub fn token_answer(body: &[u8]) -> Result<TokenResponse> {
    crate::grant::parse_token_response(body, URL, 200)
}

/// A non-success answer (`status`, its `Retry-After` and body) turned into
/// the error the client returns.
pub fn error_answer(status: u16, retry_after: Option<Duration>, body: &[u8]) -> Error {
    crate::http::Response {
        status,
        url: URL.to_string(),
        retry_after,
        www_authenticate: None,
        body: body.to_vec(),
    }
    .into_server_error()
}

/// An OpenID discovery document, read as the client reads it: the token
/// endpoint and the issuer.
pub fn discovery_document(body: &[u8]) -> Result<(String, Option<String>)> {
    crate::discovery::parse(body, URL, 200).map(|m| (m.token_endpoint, m.issuer))
}

/// The instant managed-identity answers are read at (2026-01-01T00:00:00Z):
/// `expires_on` is absolute, so the reading needs a fixed "now".
pub const MANAGED_IDENTITY_NOW: i64 = 1_767_225_600;

/// A managed-identity endpoint's answer (`status`, body), read as the
/// client reads it: the token for a 200, else the error the client returns.
pub fn managed_identity_answer(status: u16, body: &[u8]) -> Result<TokenResponse> {
    let response = crate::http::Response {
        status,
        url: "http://169.254.169.254/metadata/identity/oauth2/token".to_string(),
        retry_after: None,
        www_authenticate: None,
        body: body.to_vec(),
    };
    let now = time::OffsetDateTime::from_unix_timestamp(MANAGED_IDENTITY_NOW)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    if status == 200 {
        crate::managed_identity::wire::parse_token(&response, "IMDS", now)
    } else {
        Err(crate::managed_identity::wire::into_error(response, "IMDS"))
    }
}

/// Azure Arc's `WWW-Authenticate` challenge checked against the token
/// directory `dir` and, when it passes, the key file it names read.
pub fn arc_challenge(challenge: &str, dir: &std::path::Path) -> Result<String> {
    use secrecy::ExposeSecret;
    crate::managed_identity::arc::read_challenge_key(
        Some(challenge),
        dir,
        "http://127.0.0.1:40342/metadata/identity/oauth2/token",
        401,
    )
    .map(|k| k.expose_secret().to_string())
}
