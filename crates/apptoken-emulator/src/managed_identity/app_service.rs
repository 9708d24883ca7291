//! `GET /msi/token`: the managed-identity endpoint App Service, Functions
//! and Container Apps give their code (`IDENTITY_ENDPOINT`), guarded by the
//! `X-IDENTITY-HEADER` secret (`IDENTITY_HEADER`), with its user-assigned
//! parameters and its error shape `{"statusCode","message","correlationId"}`.
//!
//! Invariants: the secret is compared in constant time; a missing header is
//! 401 and a wrong one 403; every answer is counted under `app_service`.

use std::sync::Arc;

use aws_lc_rs::constant_time::verify_slices_are_equal;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::{IdKind, IdParams, MiError, Source, count, issue, select};
use crate::params::Params;
use crate::server::AppState;

pub(crate) const PATH: &str = "/msi/token";
const API_VERSIONS: [&str; 1] = ["2019-08-01"];

const IDS: IdParams = &[
    ("client_id", IdKind::Client),
    ("principal_id", IdKind::Object),
    ("object_id", IdKind::Object),
    ("mi_res_id", IdKind::Resource),
];

fn error_response(e: &MiError) -> Response {
    (
        e.status,
        axum::Json(json!({
            "statusCode": e.status.as_u16(),
            "message": e.message,
            "correlationId": uuid::Uuid::new_v4().to_string(),
        })),
    )
        .into_response()
}

/// The handler.
pub(crate) async fn token(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let query = Params::of_query(&uri);
    let _slot = st.mi_limits.admit(st.clock.now(), false);
    let result = async {
        let presented = headers
            .get("x-identity-header")
            .map(|v| v.as_bytes().to_vec());
        let Some(presented) = presented else {
            return Err(MiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "The request is missing the X-IDENTITY-HEADER header.",
            ));
        };
        if verify_slices_are_equal(presented.as_slice(), st.identity_header.as_bytes()).is_err() {
            return Err(MiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "The X-IDENTITY-HEADER value is not this host's IDENTITY_HEADER.",
            ));
        }
        match query.first("api-version").map(str::trim) {
            Some(v) if API_VERSIONS.contains(&v) => {}
            other => {
                return Err(MiError::bad_request(format!(
                    "The api-version '{}' is not supported: use 2019-08-01.",
                    other.unwrap_or_default()
                )));
            }
        }
        st.mi_limits.pass_hold().await;
        let identity = select(&st.config, &query, IDS)?;
        issue(&st, identity, query.first("resource"))
    }
    .await;
    match result {
        Ok(issued) => {
            count(&st, Source::AppService, &issued.client_id, StatusCode::OK);
            axum::Json(json!({
                "access_token": issued.access_token,
                "expires_on": issued.expires_on,
                "resource": issued.resource,
                "token_type": "Bearer",
                "client_id": issued.client_id,
            }))
            .into_response()
        }
        Err(e) => {
            count(&st, Source::AppService, "", e.status);
            error_response(&e)
        }
    }
}
