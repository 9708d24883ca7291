//! `GET /metadata/identity/oauth2/token`: the Azure Instance Metadata
//! Service's managed-identity endpoint (VMs, scale sets, AKS nodes), with
//! its `Metadata: true` header, its api-versions, its user-assigned id
//! parameters, its error shape `{"error","error_description"}` and the
//! opt-in limits mode.
//!
//! Invariants: checks run header, api-version, limits, identity, resource;
//! every answer is counted in the stats under `imds`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::limits::Refusal;
use super::{IdKind, IdParams, MiError, Source, count, issue, select};
use crate::params::Params;
use crate::server::AppState;

pub(crate) const PATH: &str = "/metadata/identity/oauth2/token";

/// The api-versions IMDS accepts on its identity endpoint.
pub(crate) const API_VERSIONS: [&str; 12] = [
    "2018-02-01",
    "2018-04-02",
    "2018-10-01",
    "2019-02-01",
    "2019-03-11",
    "2019-04-30",
    "2019-06-01",
    "2019-06-04",
    "2019-08-01",
    "2019-08-15",
    "2019-11-01",
    "2020-06-01",
];

const IDS: IdParams = &[
    ("client_id", IdKind::Client),
    ("object_id", IdKind::Object),
    ("msi_res_id", IdKind::Resource),
    ("mi_res_id", IdKind::Resource),
];

/// IMDS's error answer.
pub(crate) fn error_response(e: &MiError) -> Response {
    (
        e.status,
        axum::Json(json!({"error": e.error, "error_description": e.message})),
    )
        .into_response()
}

/// Whether the request carries `Metadata: true` (the value case-insensitive).
pub(crate) fn has_metadata_header(headers: &HeaderMap) -> bool {
    headers
        .get("metadata")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

/// Checks the `api-version` parameter against `accepted`.
pub(crate) fn check_api_version(query: &Params, accepted: &[&str]) -> Result<(), MiError> {
    match query.first("api-version").map(str::trim) {
        None | Some("") => Err(MiError::bad_request(
            "Bad request. api-version was not specified in the request. For more information refer to aka.ms/azureimds",
        )),
        Some(v) if accepted.contains(&v) => Ok(()),
        Some(v) => Err(MiError::bad_request(format!(
            "Bad request. api-version '{v}' is invalid. Newest versions: {}. For more information refer to aka.ms/azureimds",
            accepted
                .iter()
                .rev()
                .take(3)
                .copied()
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

fn throttled(why: Refusal) -> MiError {
    let what = match why {
        Refusal::Rate => "more than 20 requests per second",
        Refusal::Concurrency => "more than 5 concurrent requests",
    };
    MiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_requests",
        format!(
            "Too many requests: the managed identity endpoint received {what}. Retry with exponential backoff."
        ),
    )
}

/// The handler.
pub(crate) async fn token(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let query = Params::of_query(&uri);
    let slot = st.mi_limits.admit(st.clock.now(), st.config.imds_limits);
    let result = async {
        if !has_metadata_header(&headers) {
            return Err(MiError::bad_request(
                "Required metadata header not specified",
            ));
        }
        // IMDS refuses proxied requests (its SSRF protection).
        if headers.contains_key("x-forwarded-for") {
            return Err(MiError::bad_request(
                "Bad request. Requests with an X-Forwarded-For header are refused.",
            ));
        }
        check_api_version(&query, &API_VERSIONS)?;
        let _slot = slot.map_err(throttled)?;
        st.mi_limits.pass_hold().await;
        let identity = select(&st.config, &query, IDS)?;
        issue(&st, identity, query.first("resource"))
    }
    .await;
    match result {
        Ok(issued) => {
            count(&st, Source::Imds, &issued.client_id, StatusCode::OK);
            axum::Json(issued.imds_body()).into_response()
        }
        Err(e) => {
            count(&st, Source::Imds, "", e.status);
            error_response(&e)
        }
    }
}
