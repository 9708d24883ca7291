//! Test controls: token lifetimes and the clock, for Rust callers and over
//! HTTP (`/_emulator/token-lifetimes`, `/_emulator/clock`), and
//! [`admin_error`], the error answer every `/_emulator/*` handler uses.
//!
//! Invariants: a refused admin request changes nothing (bodies are parsed
//! and checked whole first); admin errors have their own small JSON shape,
//! not Entra's, since no Entra client reads them.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::server::AppState;

/// Lifetimes answered for tokens issued from now on; `None` keeps the
/// configuration's value. Build with [`TokenLifetimes::new`] and the setters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct TokenLifetimes {
    /// `expires_in` in seconds; the JWT's `exp` is `now + expires_in + 1`
    /// (as with the configured lifetime, which answers `lifetime - 1`).
    pub expires_in: Option<u64>,
    /// `refresh_in` in seconds; the field is sent only when this or the
    /// configuration's `refresh_in_secs` is set.
    pub refresh_in: Option<u64>,
    /// `ext_expires_in` in seconds; default: the `expires_in` answered.
    pub ext_expires_in: Option<u64>,
}

impl TokenLifetimes {
    /// Everything from the configuration.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `expires_in`.
    #[must_use]
    pub fn expires_in(mut self, secs: u64) -> Self {
        self.expires_in = Some(secs);
        self
    }

    /// Sets `refresh_in`.
    #[must_use]
    pub fn refresh_in(mut self, secs: u64) -> Self {
        self.refresh_in = Some(secs);
        self
    }

    /// Sets `ext_expires_in`.
    #[must_use]
    pub fn ext_expires_in(mut self, secs: u64) -> Self {
        self.ext_expires_in = Some(secs);
        self
    }
}

/// The lifetimes one token is issued with.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Effective {
    pub(crate) expires_in: u64,
    pub(crate) ext_expires_in: u64,
    pub(crate) refresh_in: Option<u64>,
}

impl AppState {
    /// The lifetimes for a token issued now.
    pub(crate) fn lifetimes(&self) -> Effective {
        let set = *self.lifetimes.lock().unwrap_or_else(|e| e.into_inner());
        let expires_in = set
            .expires_in
            .unwrap_or(self.config.token_lifetime_secs.saturating_sub(1));
        Effective {
            expires_in,
            ext_expires_in: set.ext_expires_in.unwrap_or(expires_in),
            refresh_in: set.refresh_in.or(self.config.refresh_in_secs),
        }
    }

    pub(crate) fn set_lifetimes(&self, lifetimes: TokenLifetimes) {
        *self.lifetimes.lock().unwrap_or_else(|e| e.into_inner()) = lifetimes;
    }
}

/// `POST /_emulator/token-lifetimes`: replaces the override; absent or
/// `null` fields fall back to the configuration.
pub(crate) async fn set_token_lifetimes(State(st): State<Arc<AppState>>, body: Bytes) -> Response {
    match serde_json::from_slice::<TokenLifetimes>(&body) {
        Ok(lifetimes) => {
            st.set_lifetimes(lifetimes);
            let e = st.lifetimes();
            axum::Json(json!({
                "expires_in": e.expires_in,
                "ext_expires_in": e.ext_expires_in,
                "refresh_in": e.refresh_in,
            }))
            .into_response()
        }
        Err(e) => admin_error(
            StatusCode::BAD_REQUEST,
            &format!("Invalid token lifetimes JSON: {e}"),
        ),
    }
}

/// `POST /_emulator/clock`'s body: exactly one field.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClockRequest {
    freeze: Option<bool>,
    advance_secs: Option<i64>,
    set: Option<String>,
    resume: Option<bool>,
}

fn clock_json(st: &AppState) -> Response {
    let now = st.clock.now();
    axum::Json(json!({
        "now": now.format(&Rfc3339).unwrap_or_default(),
        "unix": now.unix_timestamp(),
        "frozen": st.clock.is_frozen(),
    }))
    .into_response()
}

/// The 400 for a move that would take the clock out of its range.
fn out_of_range(what: &str) -> Response {
    let fmt = |t: OffsetDateTime| t.format(&Rfc3339).unwrap_or_default();
    admin_error(
        StatusCode::BAD_REQUEST,
        &format!(
            "{what} would take the emulator's clock outside {} ..= {}; the clock did not move.",
            fmt(crate::clock::EARLIEST),
            fmt(crate::clock::LATEST),
        ),
    )
}

/// `GET /_emulator/clock`.
pub(crate) async fn get_clock(State(st): State<Arc<AppState>>) -> Response {
    clock_json(&st)
}

/// `POST /_emulator/clock`.
pub(crate) async fn post_clock(State(st): State<Arc<AppState>>, body: Bytes) -> Response {
    let req: ClockRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return admin_error(StatusCode::BAD_REQUEST, &format!("Invalid clock JSON: {e}"));
        }
    };
    let given = usize::from(req.freeze.is_some())
        + usize::from(req.advance_secs.is_some())
        + usize::from(req.set.is_some())
        + usize::from(req.resume.is_some());
    if given != 1 {
        return admin_error(
            StatusCode::BAD_REQUEST,
            "Give exactly one of {\"freeze\":true}, {\"advance_secs\":N}, {\"set\":\"RFC 3339\"}, {\"resume\":true}.",
        );
    }
    match req {
        ClockRequest {
            freeze: Some(true), ..
        } => st.clock.freeze(),
        ClockRequest {
            resume: Some(true), ..
        } => st.clock.resume(),
        ClockRequest {
            advance_secs: Some(secs),
            ..
        } => {
            // Checked here so that the answer says so, rather than stopping
            // silently at the end of the range.
            let to = st
                .clock
                .now()
                .checked_add(time::Duration::seconds(secs))
                .and_then(crate::clock::in_range);
            if to.is_none() {
                return out_of_range(&format!("Advancing it by {secs} seconds"));
            }
            st.clock.advance(time::Duration::seconds(secs));
        }
        ClockRequest { set: Some(at), .. } => match OffsetDateTime::parse(&at, &Rfc3339) {
            Ok(parsed) => match crate::clock::in_range(parsed) {
                Some(utc) => st.clock.set(utc),
                None => return out_of_range(&format!("Setting it to {at:?}")),
            },
            Err(e) => {
                return admin_error(
                    StatusCode::BAD_REQUEST,
                    &format!("'set' must be an RFC 3339 date-time ({e}): {at:?}."),
                );
            }
        },
        _ => {
            return admin_error(
                StatusCode::BAD_REQUEST,
                "'freeze' and 'resume' only accept true.",
            );
        }
    }
    clock_json(&st)
}

/// An admin API error: `{"error": "invalid_request", "error_description": ...}`.
pub(crate) fn admin_error(status: StatusCode, message: &str) -> Response {
    (
        status,
        axum::Json(json!({"error": "invalid_request", "error_description": message})),
    )
        .into_response()
}
