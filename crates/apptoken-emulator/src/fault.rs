//! Fault injection: make chosen requests fail, slow down, or lose their
//! connection, so that clients' retry and cache logic can be tested.
//!
//! Faults sit in a middleware in front of every endpoint except
//! `/_emulator/*`. The first registered fault (lowest id) that matches and
//! fires decides the request's fate.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::aad::{AadError, RequestContext};
use crate::server::AppState;

/// Which requests a [`Fault`] applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Target {
    /// The token endpoint (`/{tenant}/oauth2/v2.0/token`, also `/oauth2/token`).
    Token,
    /// The OpenID configuration documents and instance discovery.
    Discovery,
    /// The JWKS documents (`/{tenant}/discovery/v2.0/keys`).
    Jwks,
    /// The sample API (`/v1.0/…`).
    SampleApi,
    /// Every request whose path starts with this prefix (`/_emulator/` excepted).
    Path(String),
}

impl Target {
    fn name(&self) -> &str {
        match self {
            Target::Token => "token",
            Target::Discovery => "discovery",
            Target::Jwks => "jwks",
            Target::SampleApi => "api",
            Target::Path(_) => "path",
        }
    }
}

/// The body a fault answers with.
#[derive(Debug, Clone, PartialEq)]
enum FaultBody {
    /// Sent as is.
    Text(String),
    /// Entra's JSON error shape, with fresh trace and correlation ids per answer.
    Entra {
        error: &'static str,
        code: u32,
        message: &'static str,
    },
}

/// What to do to matching requests; build with [`Fault::on`] or a preset.
///
/// Without [`status`](Self::status) or [`drop_connection`](Self::drop_connection),
/// a fault with a [`delay`](Self::delay) only delays the request, which is
/// then answered normally; a fault with neither answers `500`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Fault {
    target: Target,
    client_id: Option<String>,
    tenant: Option<String>,
    times: Option<u64>,
    share: Option<f64>,
    status: Option<u16>,
    retry_after: Option<String>,
    body: Option<FaultBody>,
    content_type: Option<String>,
    delay: Option<Duration>,
    drop_connection: bool,
}

impl Fault {
    /// A fault on every request to `target`, until removed.
    pub fn on(target: Target) -> Fault {
        Fault {
            target,
            client_id: None,
            tenant: None,
            times: None,
            share: None,
            status: None,
            retry_after: None,
            body: None,
            content_type: None,
            delay: None,
            drop_connection: false,
        }
    }

    /// Entra's throttling answer: `429`, `Retry-After: 60`, plain-text body
    /// `Too Many Requests`.
    pub fn entra_throttle(target: Target) -> Fault {
        Fault::on(target)
            .status(429)
            .retry_after("60".to_string())
            .body("Too Many Requests".to_string())
            .content_type("text/plain; charset=utf-8".to_string())
    }

    /// A temporarily unavailable service: `503` with Entra's JSON error body
    /// (`temporarily_unavailable`, AADSTS90033, "A transient error has occurred.").
    pub fn unavailable(target: Target) -> Fault {
        let mut fault = Fault::on(target).status(503);
        fault.body = Some(FaultBody::Entra {
            error: "temporarily_unavailable",
            code: 90033,
            message: "A transient error has occurred. Please try again.",
        });
        fault
    }

    /// Only token requests made with this client id (form field or Basic
    /// user name, case-insensitive). Other requests never match.
    #[must_use]
    pub fn client_id(mut self, client_id: &str) -> Fault {
        self.client_id = Some(client_id.to_string());
        self
    }

    /// Only requests whose tenant path segment is this tenant (id or domain,
    /// case-insensitive; `common` matches only `common`).
    #[must_use]
    pub fn tenant(mut self, tenant: &str) -> Fault {
        self.tenant = Some(tenant.to_string());
        self
    }

    /// Applies to the next `n` requests it fires on, then removes itself.
    #[must_use]
    pub fn times(mut self, n: u64) -> Fault {
        self.times = Some(n);
        self
    }

    /// Applies to this fraction of matching requests, deterministically: with
    /// `0.5` the 2nd, 4th, … matching request; with `1/3` every third one.
    /// Clamped to `0.0..=1.0`; NaN counts as `1.0`.
    #[must_use]
    pub fn share(mut self, share: f64) -> Fault {
        self.share = Some(if share.is_nan() {
            1.0
        } else {
            share.clamp(0.0, 1.0)
        });
        self
    }

    /// Answers with this HTTP status (an invalid status answers 500).
    #[must_use]
    pub fn status(mut self, status: u16) -> Fault {
        self.status = Some(status);
        self
    }

    /// Adds a `Retry-After` header (seconds or an HTTP date) to the answer.
    #[must_use]
    pub fn retry_after(mut self, value: String) -> Fault {
        self.retry_after = Some(value);
        self
    }

    /// The answer's body (default: empty).
    #[must_use]
    pub fn body(mut self, body: String) -> Fault {
        self.body = Some(FaultBody::Text(body));
        self
    }

    /// The answer's `Content-Type` (default: none).
    #[must_use]
    pub fn content_type(mut self, content_type: String) -> Fault {
        self.content_type = Some(content_type);
        self
    }

    /// Waits this long before answering (or before dropping the connection).
    #[must_use]
    pub fn delay(mut self, delay: Duration) -> Fault {
        self.delay = Some(delay);
        self
    }

    /// Closes the connection without any HTTP answer.
    #[must_use]
    pub fn drop_connection(mut self) -> Fault {
        self.drop_connection = true;
        self
    }
}

/// One registered fault and its counters.
#[derive(Debug)]
struct Entry {
    id: u64,
    fault: Fault,
    /// Matching requests seen (drives `share`).
    matched: u64,
    /// Requests the fault was applied to.
    applied: u64,
}

/// The registered faults.
#[derive(Debug, Default)]
pub(crate) struct FaultSet(Mutex<(u64, Vec<Entry>)>);

impl FaultSet {
    fn with<T>(&self, f: impl FnOnce(&mut (u64, Vec<Entry>)) -> T) -> T {
        let mut guard = self.0.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut guard)
    }

    pub(crate) fn add(&self, fault: Fault) -> u64 {
        self.with(|(next, entries)| {
            *next += 1;
            entries.push(Entry {
                id: *next,
                fault,
                matched: 0,
                applied: 0,
            });
            *next
        })
    }

    pub(crate) fn remove(&self, id: u64) -> bool {
        self.with(|(_, entries)| {
            let before = entries.len();
            entries.retain(|e| e.id != id);
            entries.len() != before
        })
    }

    pub(crate) fn clear(&self) {
        self.with(|(_, entries)| entries.clear());
    }

    fn is_empty(&self) -> bool {
        self.with(|(_, entries)| entries.is_empty())
    }

    fn needs_client_id(&self) -> bool {
        self.with(|(_, entries)| entries.iter().any(|e| e.fault.client_id.is_some()))
    }

    /// Finds the fault that fires for this request, updating the counters.
    fn fire(&self, st: &AppState, request: &Classified) -> Option<Fault> {
        self.with(|(_, entries)| {
            let mut fired = None;
            for (index, entry) in entries.iter_mut().enumerate() {
                if !matches(st, &entry.fault, request) {
                    continue;
                }
                entry.matched += 1;
                if !fires(entry.matched, entry.fault.share.unwrap_or(1.0)) {
                    continue;
                }
                if entry.fault.times.is_some_and(|t| entry.applied >= t) {
                    continue;
                }
                entry.applied += 1;
                fired = Some((index, entry.fault.clone()));
                break;
            }
            let (index, fault) = fired?;
            if fault.times.is_some_and(|t| entries[index].applied >= t) {
                entries.remove(index);
            }
            Some(fault)
        })
    }

    fn list(&self) -> serde_json::Value {
        self.with(|(_, entries)| {
            let faults: Vec<_> = entries
                .iter()
                .map(|e| {
                    let f = &e.fault;
                    json!({
                        "id": e.id,
                        "target": f.target.name(),
                        "path": match &f.target { Target::Path(p) => Some(p), _ => None },
                        "client_id": f.client_id,
                        "tenant": f.tenant,
                        "times": f.times,
                        "remaining": f.times.map(|t| t.saturating_sub(e.applied)),
                        "share": f.share,
                        "status": f.status,
                        "retry_after": f.retry_after,
                        "delay_ms": f.delay.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
                        "drop_connection": f.drop_connection,
                        "matched": e.matched,
                        "applied": e.applied,
                    })
                })
                .collect();
            json!({ "faults": faults })
        })
    }
}

/// Whether the `n`th matching request (from 1) gets a fault applied to a
/// `share` of requests: when `floor(n * share)` steps up.
fn fires(n: u64, share: f64) -> bool {
    let n = n as f64;
    (n * share).floor() > ((n - 1.0) * share).floor()
}

/// What kind of endpoint a request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Token,
    Discovery,
    Jwks,
    SampleApi,
    Other,
}

#[derive(Debug)]
struct Classified {
    kind: Kind,
    path: String,
    /// The first path segment (the tenant for token, discovery and JWKS).
    tenant: String,
    client_id: Option<String>,
}

fn classify(path: &str) -> (Kind, String) {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let tenant = segments.first().copied().unwrap_or_default().to_string();
    let rest = segments.get(1..).unwrap_or_default().join("/");
    let kind = if segments.first() == Some(&"v1.0") {
        Kind::SampleApi
    } else if rest == "oauth2/v2.0/token" || rest == "oauth2/token" {
        Kind::Token
    } else if rest == "v2.0/.well-known/openid-configuration"
        || rest == ".well-known/openid-configuration"
        || rest == "discovery/instance"
    {
        Kind::Discovery
    } else if rest == "discovery/v2.0/keys" || rest == "discovery/keys" {
        Kind::Jwks
    } else {
        Kind::Other
    };
    (kind, tenant)
}

fn same_tenant(st: &AppState, wanted: &str, segment: &str) -> bool {
    if wanted.eq_ignore_ascii_case(segment) {
        return true;
    }
    let lookup = |t: &str| {
        st.config
            .tenant_by_id_or_domain(&t.to_ascii_lowercase())
            .map(|t| t.id.clone())
    };
    matches!((lookup(wanted), lookup(segment)), (Some(a), Some(b)) if a == b)
}

fn matches(st: &AppState, fault: &Fault, request: &Classified) -> bool {
    let target = match &fault.target {
        Target::Token => request.kind == Kind::Token,
        Target::Discovery => request.kind == Kind::Discovery,
        Target::Jwks => request.kind == Kind::Jwks,
        Target::SampleApi => request.kind == Kind::SampleApi,
        Target::Path(prefix) => request.path.starts_with(prefix.as_str()),
    };
    let client = fault.client_id.as_ref().is_none_or(|wanted| {
        request.kind == Kind::Token
            && request
                .client_id
                .as_ref()
                .is_some_and(|c| c.eq_ignore_ascii_case(wanted))
    });
    let tenant = fault
        .tenant
        .as_ref()
        .is_none_or(|wanted| same_tenant(st, wanted, &request.tenant));
    target && client && tenant
}

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
        (None | Some("path"), Some(p)) if p.starts_with('/') => Target::Path(p),
        (None | Some("path"), Some(p)) => {
            return Err(format!("'path' must start with '/', got '{p}'."));
        }
        (Some(t @ ("token" | "discovery" | "jwks" | "api")), Some(_)) => {
            return Err(format!(
                "Give either 'target' or 'path', not both (target '{t}')."
            ));
        }
        (Some(other), _) => {
            return Err(format!(
                "Unknown target '{other}': use \"token\", \"discovery\", \"jwks\", \"api\", or a \"path\" prefix."
            ));
        }
        (None, None) => {
            return Err(
                "Missing 'target' (\"token\", \"discovery\", \"jwks\", \"api\") or 'path'."
                    .to_string(),
            );
        }
    };
    let mut fault = match req.preset.as_deref() {
        None => Fault::on(target),
        Some("entra_throttle") => Fault::entra_throttle(target),
        Some("unavailable") => Fault::unavailable(target),
        Some(other) => {
            return Err(format!(
                "Unknown preset '{other}': use \"entra_throttle\" or \"unavailable\"."
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

pub(crate) fn admin_error(status: StatusCode, message: &str) -> Response {
    (
        status,
        axum::Json(json!({"error": "invalid_request", "error_description": message})),
    )
        .into_response()
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
    fn classify_knows_the_endpoints() {
        assert_eq!(classify("/t/oauth2/v2.0/token").0, Kind::Token);
        assert_eq!(classify("/t/oauth2/token").0, Kind::Token);
        assert_eq!(
            classify("/t/v2.0/.well-known/openid-configuration").0,
            Kind::Discovery
        );
        assert_eq!(classify("/common/discovery/instance").0, Kind::Discovery);
        assert_eq!(classify("/t/discovery/v2.0/keys").0, Kind::Jwks);
        assert_eq!(classify("/v1.0/users").0, Kind::SampleApi);
        assert_eq!(classify("/error").0, Kind::Other);
        assert_eq!(classify("/t/oauth2/v2.0/token").1, "t");
    }

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

    #[test]
    fn share_fires_deterministically() {
        let fire = |share: f64, n: u64| fires(n, share);
        let half: Vec<bool> = (1..=4).map(|n| fire(0.5, n)).collect();
        assert_eq!(half, [false, true, false, true]);
        let third = (1..=9).filter(|n| fire(1.0 / 3.0, *n)).count();
        assert_eq!(third, 3);
        assert!((1..=5).all(|n| fire(1.0, n)));
    }
}
