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
