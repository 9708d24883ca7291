//! The fault middleware in front of every endpoint except `/_emulator/*`:
//! classifies the request, asks the fault set which fault fires, and then
//! delays, answers (status, headers, body) or drops the connection.
//!
//! Invariants: with no fault registered a request passes untouched (no
//! body read); a token request's body is read (up to the token endpoint's
//! limit) only when a fault needs its client id, and is handed on intact;
//! a dropped connection is signalled with the `DropConnection` response
//! extension, which the accept loop turns into an aborted connection.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;

use super::FaultBody;
use super::matching::{Classified, Kind, classify};
use crate::error_shape::{AadError, RequestContext};
use crate::server::AppState;

/// Marks a response whose connection must be closed without answering; the
/// server loop turns it into a service error, which makes hyper abort.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DropConnection;

/// The middleware.
pub(crate) async fn layer(
    State(st): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path().to_string();
    if path.starts_with("/_emulator/") || st.faults.is_empty() {
        return next.run(request).await;
    }
    let (kind, tenant) = classify(&path);
    let mut classified = Classified {
        kind,
        path,
        tenant,
        client_id: None,
    };
    let mut request = request;
    if kind == Kind::Token && (request.method() == http::Method::POST) {
        let (parts, body) = request.into_parts();
        let bytes = match axum::body::to_bytes(body, crate::token::MAX_BODY).await {
            Ok(bytes) => bytes,
            Err(_) => Bytes::from(vec![0; crate::token::MAX_BODY + 1]),
        };
        classified.client_id = crate::token::client_id_of(&parts.headers, &bytes);
        request = Request::from_parts(parts, Body::from(bytes));
    } else if kind == Kind::Token && st.faults.needs_client_id() {
        classified.client_id = crate::token::client_id_of(request.headers(), &[]);
    }
    let Some(fault) = st.faults.fire(&st, &classified) else {
        return next.run(request).await;
    };
    if let Some(delay) = fault.delay {
        tokio::time::sleep(delay).await;
    }
    if !fault.drop_connection && fault.status.is_none() && fault.delay.is_some() {
        return next.run(request).await;
    }
    let ctx = RequestContext::new(request.headers(), request.uri().query(), st.clock.now());
    let status = fault
        .status
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let outcome = if fault.drop_connection {
        "fault:drop".to_string()
    } else {
        format!("fault:{}", status.as_u16())
    };
    match kind {
        Kind::Token => {
            let tenant = st
                .config
                .tenant_by_id_or_domain(&classified.tenant.to_ascii_lowercase())
                .map(|t| t.id.clone())
                .unwrap_or_else(|| classified.tenant.to_ascii_lowercase());
            let client = classified.client_id.clone().unwrap_or_default();
            st.stats.token(&client, &tenant, &outcome);
        }
        Kind::Discovery => st.stats.discovery(),
        Kind::Jwks => st.stats.jwks(),
        Kind::SampleApi if !fault.drop_connection => st.stats.sample_api(status.as_u16()),
        Kind::ManagedIdentity => {
            if let Some(source) = crate::managed_identity::Source::of_path(&classified.path) {
                st.stats.managed_identity(source.name(), "", &outcome);
            }
        }
        Kind::SampleApi | Kind::Other => {}
    }
    tracing::info!(path = %classified.path, %outcome, trace_id = %ctx.trace_id, "fault injected");
    if fault.drop_connection {
        let mut response = Response::new(Body::empty());
        response.extensions_mut().insert(DropConnection);
        return response;
    }
    let mut response = match &fault.body {
        Some(FaultBody::Entra {
            error,
            code,
            message,
        }) => AadError::new(status, error, *code, *message).into_response(&ctx, &st.base_url),
        Some(FaultBody::Text(text)) => {
            let mut r = Response::new(Body::from(text.clone()));
            ctx.decorate(r.headers_mut());
            r
        }
        None => {
            let mut r = Response::new(Body::empty());
            ctx.decorate(r.headers_mut());
            r
        }
    };
    *response.status_mut() = status;
    let headers = response.headers_mut();
    if let Some(ct) = fault
        .content_type
        .as_deref()
        .and_then(|v| HeaderValue::from_str(v).ok())
    {
        headers.insert(header::CONTENT_TYPE, ct);
    }
    if let Some(ra) = fault
        .retry_after
        .as_deref()
        .and_then(|v| HeaderValue::from_str(v).ok())
    {
        headers.insert(header::RETRY_AFTER, ra);
    }
    response
}
