//! The fault admin API: `POST/GET/DELETE /_emulator/faults` and
//! `DELETE /_emulator/faults/{id}`, and the JSON body a fault is registered
//! with.
//!
//! Invariants: a fault body is checked whole before anything is registered
//! (unknown fields, ranges, target and preset names), so a refused request
//! changes nothing; errors use the admin API's error shape
//! (`crate::admin::admin_error`), not Entra's.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{Fault, Target};
use crate::admin::admin_error;
use crate::server::AppState;

/// `POST /_emulator/faults`'s body.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct FaultRequest {
    target: Option<String>,
    path: Option<String>,
    preset: Option<String>,
    client_id: Option<String>,
    tenant: Option<String>,
    times: Option<u64>,
    share: Option<f64>,
    status: Option<u16>,
    retry_after: Option<String>,
    body: Option<String>,
    content_type: Option<String>,
    delay_ms: Option<u64>,
    drop_connection: Option<bool>,
}

/// Longest accepted `delay_ms`: ten minutes.
const MAX_DELAY_MS: u64 = 600_000;

fn parse_fault(bytes: &[u8]) -> Result<Fault, String> {
    let req: FaultRequest =
        serde_json::from_slice(bytes).map_err(|e| format!("Invalid fault JSON: {e}"))?;
    let target = match (req.target.as_deref(), req.path) {
        (Some("token"), None) => Target::Token,
        (Some("discovery"), None) => Target::Discovery,
        (Some("jwks"), None) => Target::Jwks,
        (Some("api"), None) => Target::SampleApi,
        (Some("managed_identity"), None) => Target::ManagedIdentity,
        (None | Some("path"), Some(p)) if p.starts_with('/') => Target::Path(p),
        (None | Some("path"), Some(p)) => {
            return Err(format!("'path' must start with '/', got '{p}'."));
        }
        (Some(t @ ("token" | "discovery" | "jwks" | "api" | "managed_identity")), Some(_)) => {
            return Err(format!(
                "Give either 'target' or 'path', not both (target '{t}')."
            ));
        }
        (Some(other), _) => {
            return Err(format!(
                "Unknown target '{other}': use \"token\", \"discovery\", \"jwks\", \"api\", \"managed_identity\", or a \"path\" prefix."
            ));
        }
        (None, None) => {
            return Err(
                "Missing 'target' (\"token\", \"discovery\", \"jwks\", \"api\", \"managed_identity\") or 'path'."
                    .to_string(),
            );
        }
    };
    let mut fault = match req.preset.as_deref() {
        None => Fault::on(target),
        Some("entra_throttle") => Fault::entra_throttle(target),
        Some("unavailable") => Fault::unavailable(target),
        Some("imds_throttle") => Fault::imds_throttle(target),
        Some("imds_updating") => Fault::imds_updating(target),
        Some("mi_numbers") => Fault::mi_numbers(target),
        Some("mi_no_token") => Fault::mi_no_token(target),
        Some("html_page") => Fault::html_page(target),
        Some(other) => {
            return Err(format!(
                "Unknown preset '{other}': use \"entra_throttle\", \"unavailable\", \"imds_throttle\", \"imds_updating\", \"mi_numbers\", \"mi_no_token\" or \"html_page\"."
            ));
        }
    };
    if let Some(c) = req.client_id {
        fault = fault.client_id(&c);
    }
    if let Some(t) = req.tenant {
        fault = fault.tenant(&t);
    }
    if let Some(n) = req.times {
        if n == 0 {
            return Err("'times' must be at least 1.".to_string());
        }
        fault = fault.times(n);
    }
    if let Some(s) = req.share {
        if !(s > 0.0 && s <= 1.0) {
            return Err(format!("'share' must be in (0, 1], got {s}."));
        }
        fault = fault.share(s);
    }
    if let Some(s) = req.status {
        if !(200..=599).contains(&s) {
            return Err(format!("'status' must be in 200..=599, got {s}."));
        }
        fault = fault.status(s);
    }
    if let Some(v) = req.retry_after {
        HeaderValue::from_str(&v)
            .map_err(|_| format!("'retry_after' is not a valid header value: {v:?}."))?;
        fault = fault.retry_after(v);
    }
    if let Some(b) = req.body {
        fault = fault.body(b);
    }
    if let Some(v) = req.content_type {
        HeaderValue::from_str(&v)
            .map_err(|_| format!("'content_type' is not a valid header value: {v:?}."))?;
        fault = fault.content_type(v);
    }
    if let Some(ms) = req.delay_ms {
        if ms > MAX_DELAY_MS {
            return Err(format!(
                "'delay_ms' must be at most {MAX_DELAY_MS}, got {ms}."
            ));
        }
        fault = fault.delay(Duration::from_millis(ms));
    }
    if req.drop_connection == Some(true) {
        fault = fault.drop_connection();
    }
    Ok(fault)
}

/// `POST /_emulator/faults`.
pub(crate) async fn add(State(st): State<Arc<AppState>>, body: Bytes) -> Response {
    match parse_fault(&body) {
        Ok(fault) => axum::Json(json!({"id": st.faults.add(fault)})).into_response(),
        Err(message) => admin_error(StatusCode::BAD_REQUEST, &message),
    }
}

/// `GET /_emulator/faults`.
pub(crate) async fn list(State(st): State<Arc<AppState>>) -> Response {
    axum::Json(st.faults.list()).into_response()
}

/// `DELETE /_emulator/faults`.
pub(crate) async fn clear(State(st): State<Arc<AppState>>) -> StatusCode {
    st.faults.clear();
    StatusCode::NO_CONTENT
}

/// `DELETE /_emulator/faults/{id}`.
pub(crate) async fn remove(
    State(st): State<Arc<AppState>>,
    id: Result<Path<u64>, axum::extract::rejection::PathRejection>,
) -> Response {
    match id {
        Ok(Path(id)) if st.faults.remove(id) => StatusCode::NO_CONTENT.into_response(),
        Ok(Path(id)) => admin_error(StatusCode::NOT_FOUND, &format!("No fault with id {id}.")),
        Err(_) => admin_error(StatusCode::BAD_REQUEST, "The fault id must be a number."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_faults_are_validated() {
        assert!(
            parse_fault(b"{")
                .unwrap_err()
                .contains("Invalid fault JSON")
        );
        assert!(
            parse_fault(br#"{"target":"nope"}"#)
                .unwrap_err()
                .contains("Unknown target")
        );
        assert!(
            parse_fault(br#"{}"#)
                .unwrap_err()
                .contains("Missing 'target'")
        );
        assert!(parse_fault(br#"{"target":"token","share":0}"#).is_err());
        assert!(parse_fault(br#"{"target":"token","status":99}"#).is_err());
        assert!(parse_fault(br#"{"target":"token","times":0}"#).is_err());
        assert!(
            parse_fault(br#"{"target":"token","bogus":1}"#)
                .unwrap_err()
                .contains("bogus")
        );
        assert!(parse_fault(br#"{"path":"x"}"#).is_err());
        assert_eq!(
            parse_fault(br#"{"target":"token","preset":"entra_throttle"}"#),
            Ok(Fault::entra_throttle(Target::Token))
        );
        for (preset, fault) in [
            (
                "imds_throttle",
                Fault::imds_throttle(Target::ManagedIdentity),
            ),
            (
                "imds_updating",
                Fault::imds_updating(Target::ManagedIdentity),
            ),
            ("mi_numbers", Fault::mi_numbers(Target::ManagedIdentity)),
            ("mi_no_token", Fault::mi_no_token(Target::ManagedIdentity)),
            ("html_page", Fault::html_page(Target::ManagedIdentity)),
        ] {
            let body = format!(r#"{{"target":"managed_identity","preset":"{preset}"}}"#);
            assert_eq!(parse_fault(body.as_bytes()), Ok(fault), "{preset}");
        }
        assert!(
            parse_fault(br#"{"target":"managed_identity","path":"/msi"}"#)
                .unwrap_err()
                .contains("not both")
        );
        assert_eq!(
            parse_fault(
                br#"{"path":"/v1.0","status":500,"times":2,"delay_ms":5,"drop_connection":true}"#
            ),
            Ok(Fault::on(Target::Path("/v1.0".into()))
                .status(500)
                .times(2)
                .delay(Duration::from_millis(5))
                .drop_connection())
        );
    }
}
