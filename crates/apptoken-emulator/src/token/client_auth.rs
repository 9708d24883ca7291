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
use crate::params::Params;

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

/// Percent-decodes one `application/x-www-form-urlencoded` component.
fn form_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match u8::from_str_radix(
                    std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"),
                    16,
                ) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
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
    Some((form_decode(id), form_decode(secret)))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_decoding() {
        assert_eq!(form_decode("a%3Ab+c%7E"), "a:b c~");
        assert_eq!(form_decode("100%"), "100%");
        assert_eq!(form_decode("%zz%4"), "%zz%4");
        assert_eq!(form_decode("%FF"), "\u{FFFD}");
        // Pinned before the swap to `params`: `+`, `%XX` in either case,
        // escapes cut short at the end, non-hex and non-ASCII after `%`,
        // and characters that separate form fields kept as they are.
        assert_eq!(form_decode(""), "");
        assert_eq!(form_decode("+++"), "   ");
        assert_eq!(form_decode("%2b%2B%20"), "++ ");
        assert_eq!(form_decode("%41"), "A");
        assert_eq!(form_decode("%"), "%");
        assert_eq!(form_decode("%%41"), "%A");
        assert_eq!(form_decode("%4g%g4"), "%4g%g4");
        assert_eq!(form_decode("%\u{e9}9"), "%\u{e9}9");
        assert_eq!(form_decode("\u{e9}%C3%A9"), "\u{e9}\u{e9}");
        assert_eq!(form_decode("a=b&c;d"), "a=b&c;d");
        assert_eq!(form_decode("%00"), "\0");
    }
}
