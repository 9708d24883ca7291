//! The axum router: every endpoint's route, the small handlers that live
//! nowhere else (stats, the `/error` page, the 404 answer), and the fault
//! middleware in front of them all.
//!
//! Invariants: `/_emulator/*` is the admin API (the fault middleware lets
//! it through untouched); every other path is Entra's or the sample API's,
//! and an unknown one gets a JSON 404 with request ids, as Entra answers.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use serde::Deserialize;

use crate::error_shape::{RequestContext, json_response};
use crate::managed_identity::{app_service, arc, imds};
use crate::server::AppState;
use crate::{admin, consent, discovery, fault, federation, sample_api, state, token};

pub(crate) fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route(
            "/{tenant}/v2.0/.well-known/openid-configuration",
            get(discovery::openid_configuration),
        )
        .route("/{tenant}/discovery/v2.0/keys", get(discovery::jwks))
        .route(
            "/common/discovery/instance",
            get(discovery::instance_discovery),
        )
        .route(
            "/{tenant}/oauth2/v2.0/token",
            post(token::token_endpoint).get(token::token_get),
        )
        .route(imds::PATH, get(imds::token))
        .route(app_service::PATH, get(app_service::token))
        .route(arc::PATH, get(arc::token))
        .route("/v1.0/users", get(sample_api::list_users))
        .route("/v1.0/users/{id}", get(sample_api::get_user))
        .route("/_emulator/stats", get(stats))
        .route("/_emulator/stats/reset", post(reset_stats))
        .route(
            "/_emulator/faults",
            post(fault::add).get(fault::list).delete(fault::clear),
        )
        .route("/_emulator/faults/{id}", delete(fault::remove))
        .route(
            "/_emulator/token-lifetimes",
            post(admin::set_token_lifetimes),
        )
        .route(
            "/_emulator/clock",
            get(admin::get_clock).post(admin::post_clock),
        )
        .route(
            "/{tenant}/adminconsent",
            get(consent::page).post(consent::decide),
        )
        .route(
            "/_emulator/consent",
            post(state::post_consent).delete(state::delete_consent),
        )
        .route("/_emulator/keys/rotate", post(state::post_rotate))
        .route("/_emulator/revoke", post(state::post_revoke))
        .route(
            "/_emulator/federation/{name}/.well-known/openid-configuration",
            get(federation::openid_configuration),
        )
        .route("/_emulator/federation/{name}/jwks", get(federation::jwks))
        .route(
            "/_emulator/federation/{name}/token",
            post(federation::post_token),
        )
        .route("/error", get(error_page))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            fault::layer,
        ))
        .with_state(state)
}

async fn stats(State(st): State<Arc<AppState>>) -> Response {
    axum::Json(st.stats.snapshot()).into_response()
}

async fn reset_stats(State(st): State<Arc<AppState>>) -> StatusCode {
    st.stats.reset();
    StatusCode::NO_CONTENT
}

#[derive(Debug, Deserialize)]
struct ErrorQuery {
    code: Option<String>,
}

async fn error_page(
    query: Result<Query<ErrorQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let code = query.ok().and_then(|q| q.0.code).unwrap_or_default();
    let code: String = code.chars().filter(char::is_ascii_digit).take(10).collect();
    axum::Json(serde_json::json!({
        "code": format!("AADSTS{code}"),
        "message": "See docs/EMULATOR.md for the emulator's error table, or https://learn.microsoft.com/entra/identity-platform/reference-error-codes .",
    }))
    .into_response()
}

async fn not_found(State(st): State<Arc<AppState>>, headers: HeaderMap, uri: Uri) -> Response {
    let ctx = RequestContext::new(&headers, uri.query(), st.clock.now());
    json_response(
        StatusCode::NOT_FOUND,
        &serde_json::json!({
            "error": "not_found",
            "error_description": format!("No endpoint at '{}'.", uri.path()),
            "trace_id": ctx.trace_id,
            "correlation_id": ctx.correlation_id,
        }),
        &ctx,
    )
}
