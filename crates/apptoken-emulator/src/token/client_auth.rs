//! Client authentication on the token endpoint: the form parameters, the
//! `Authorization: Basic` credentials, the client id a request names, and
//! the client secret check.
//!
//! Invariants: form parameters are read only from an
//! `application/x-www-form-urlencoded` body (anything else reads as no
//! parameters); secrets are compared in constant time, and an expired
//! secret is reported only when it is the one that matched.

use aws_lc_rs::constant_time::verify_slices_are_equal;
use axum::http::{HeaderMap, header};
use base64::Engine as _;
use time::OffsetDateTime;

use crate::config::App;
use crate::error_shape::AadError;
use crate::params::{Params, decode_component};

/// The request's form parameters (none unless the body is
/// `application/x-www-form-urlencoded`).
pub(super) struct Form(Params);

impl Form {
    pub(super) fn parse(headers: &HeaderMap, body: &[u8]) -> Form {
        let is_form = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| {
                v.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            });
        Form(if is_form {
            Params::parse(body)
        } else {
            Params::default()
        })
    }

    /// A parameter that is there and not blank.
    pub(super) fn get(&self, name: &str) -> Option<&str> {
        self.0.first(name).filter(|v| !v.trim().is_empty())
    }
}

/// `Authorization: Basic base64(urlencode(id):urlencode(secret))`.
pub(super) fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, rest) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    Some((decode_component(id), decode_component(secret)))
}

/// The client id a token request names (form field first, then the Basic
/// user name), for fault matching and the stats.
pub(crate) fn client_id_of(headers: &HeaderMap, body: &[u8]) -> Option<String> {
    Form::parse(headers, body)
        .get("client_id")
        .map(str::to_string)
        .or_else(|| basic_credentials(headers).map(|(id, _)| id))
        .filter(|id| !id.is_empty())
}

/// The credential the client presented.
pub(super) enum Credential<'a> {
    Secret(String),
    Assertion(&'a str),
}

pub(super) fn check_secret(
    app: &App,
    presented: &str,
    now: OffsetDateTime,
) -> Result<(), AadError> {
    let mut matched_expired = false;
    for secret in &app.secrets {
        if verify_slices_are_equal(secret.value.as_bytes(), presented.as_bytes()).is_ok() {
            if secret.expires_at.is_none_or(|e| e > now) {
                return Ok(());
            }
            matched_expired = true;
        }
    }
    if matched_expired {
        Err(AadError::expired_secret(&app.client_id))
    } else {
        Err(AadError::wrong_secret(&app.client_id))
    }
}
