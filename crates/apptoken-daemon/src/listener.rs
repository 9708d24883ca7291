//! The optional HTTP listener: `/healthz`, `/readyz`, `/metrics`.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::daemon::Shared;

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(shared)
}

/// The most failing tenants `/readyz` lists (the status files have all).
const MAX_LISTED_TENANTS: usize = 100;

async fn readyz(State(shared): State<Arc<Shared>>) -> Response {
    let client = shared.client();
    let apis = shared.apis();
    let mut problems = Vec::new();
    for (name, api) in apis.iter() {
        if let Err(e) = client.acquire_token(&api.config.scopes).await {
            problems.push(format!("{name}: {e}"));
        }
    }
    // The shared store is never a single point of failure: its state is
    // reported, but a degraded store does not make the daemon unready.
    let mut body = serde_json::json!({ "ready": problems.is_empty() });
    if let Some(up) = client.shared_store_is_up() {
        body["shared_store"] = (if up { "up" } else { "degraded" }).into();
    }
    if !problems.is_empty() {
        body["problems"] = problems.into();
    }
    // Failing tenants are reported, never a reason for 503: the other
    // tenants are served, and restarting would not make a customer consent.
    let (failing, total) = shared.book.failing(MAX_LISTED_TENANTS);
    if total > 0 {
        body["tenants_failing"] = total.into();
        body["tenants"] = failing.into();
    }
    let status = if body["ready"] == true {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body)).into_response()
}

async fn metrics() -> Response {
    match crate::observe::render() {
        Some(text) => ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response(),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            "another metrics recorder is installed in this process\n",
        )
            .into_response(),
    }
}
