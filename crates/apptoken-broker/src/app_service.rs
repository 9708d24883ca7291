//! The App Service managed-identity endpoint, served on loopback from a
//! [`ConfidentialClient`]: `GET /msi/token?api-version=2019-08-01&resource=R`
//! with `X-IDENTITY-HEADER`, answered
//! `{"access_token","expires_on":"<unix seconds>","resource","token_type","client_id"}`
//! — `expires_on` a string, as App Service sends it and the Rust
//! `azure_identity` client requires. Refusals are
//! `{"statusCode":N,"message":"…"}`, the shape MSAL and the Azure SDKs
//! read. Tokens come from the client's cache: any number of concurrent
//! requests for one resource make one token request.
//!
//! Order of checks: the guards (`guard.rs`: no proxy headers, a loopback
//! `Host`, the header), the method, `api-version`, `resource`, the
//! identity the request names, the allow-list ([`Policy`]), then the token.
//! No request reaches the identity provider before passing them all.

use std::net::SocketAddr;
use std::sync::Arc;

use apptoken::{ConfidentialClient, Error as ClientError};
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use secrecy::{ExposeSecret, SecretString};
use tokio_util::sync::CancellationToken;

use crate::error::Error;
use crate::guard;
use crate::policy::{Named, Policy, ServedIdentity, clean, scope_of};

/// The path the endpoint serves (`IDENTITY_ENDPOINT` ends with it).
pub(crate) const PATH: &str = "/msi/token";
/// The one `api-version` of App Service's protocol that the SDKs send.
pub(crate) const API_VERSION: &str = "2019-08-01";

/// A running endpoint on `127.0.0.1`, stopped by [`shutdown`](Self::shutdown)
/// (or when dropped).
#[derive(Debug)]
pub struct AppServiceEndpoint {
    url: String,
    header: SecretString,
    addr: SocketAddr,
    stop: CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
}

struct Shared {
    client: Arc<ConfidentialClient>,
    identity: ServedIdentity,
    policy: Policy,
    secret: SecretString,
}

impl AppServiceEndpoint {
    /// Listens on `127.0.0.1` on a free port, with a fresh random header
    /// secret (32 bytes from the system's generator, base64url).
    pub async fn start(
        client: Arc<ConfidentialClient>,
        identity: ServedIdentity,
        policy: Policy,
    ) -> Result<AppServiceEndpoint, Error> {
        let addr = SocketAddr::from(([127, 0, 0, 1], 0));
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| Error::Listen { addr, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| Error::Listen { addr, source })?;
        let header = random_secret()?;
        let shared = Arc::new(Shared {
            client,
            identity,
            policy,
            secret: header.clone(),
        });
        let app = axum::Router::new()
            .route(PATH, axum::routing::any(token))
            .fallback(not_found)
            .with_state(shared);
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        let task = tokio::spawn(async move {
            let serve = axum::serve(listener, app)
                .with_graceful_shutdown(async move { stopped.cancelled().await });
            if let Err(e) = serve.await {
                tracing::warn!(error = %e, "the token endpoint stopped");
            }
        });
        Ok(AppServiceEndpoint {
            url: format!("http://{addr}{PATH}"),
            header,
            addr,
            stop,
            task: Some(task),
        })
    }

    /// The endpoint's URL: the child's `IDENTITY_ENDPOINT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The header secret: the child's `IDENTITY_HEADER`.
    pub fn identity_header(&self) -> &str {
        self.header.expose_secret()
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops listening, lets requests in flight finish (at most 5 s), and
    /// returns when the port is closed.
    pub async fn shutdown(mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            let abort = task.abort_handle();
            if tokio::time::timeout(std::time::Duration::from_secs(5), task)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
    }
}

impl Drop for AppServiceEndpoint {
    fn drop(&mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

fn random_secret() -> Result<SecretString, Error> {
    use aws_lc_rs::rand::SecureRandom;
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| Error::Random)?;
    Ok(SecretString::from(
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes),
    ))
}

/// A refusal in App Service's error shape.
fn refuse(status: u16, message: impl Into<String>) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    let body = serde_json::json!({ "statusCode": status.as_u16(), "message": message.into() });
    (status, axum::Json(body)).into_response()
}

async fn not_found() -> Response {
    refuse(404, format!("not found: the token endpoint is {PATH}"))
}

async fn token(
    State(sh): State<Arc<Shared>>,
    method: Method,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    if let Err((status, message)) = guard::check(&headers, sh.secret.expose_secret().as_bytes()) {
        tracing::warn!(status, reason = %message, "token request refused");
        return refuse(status, message);
    }
    if method != Method::GET {
        let mut r = refuse(405, format!("{method} is not served: ask with GET"));
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET"));
        return r;
    }
    let pairs: Vec<(String, String)> =
        url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
    // The first value of a name wins, as App Service reads a query.
    let get = |k: &str| {
        pairs
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(k))
            .map(|(_, v)| v.clone())
    };
    match get("api-version") {
        Some(v) if v == API_VERSION => {}
        Some(v) => {
            return refuse(
                400,
                format!(
                    "api-version '{}' is not supported: use {API_VERSION}",
                    clean(&v)
                ),
            );
        }
        None => return refuse(400, format!("api-version is missing: use {API_VERSION}")),
    }
    let resource = match get("resource") {
        Some(r) if !r.trim().is_empty() => r,
        _ => {
            return refuse(
                400,
                "resource is missing: name the resource (https://vault.azure.net, …)",
            );
        }
    };
    let named = match Named::from_query(get) {
        Ok(n) => n,
        Err(m) => return refuse(400, m),
    };
    let confirm = match sh.identity.check(&named) {
        Ok(c) => c,
        Err(m) => {
            tracing::warn!(resource = %clean(&resource), reason = %m, "token request refused");
            return refuse(400, m);
        }
    };
    if !sh.policy.allows(&resource) {
        let allowed = sh.policy.resources().unwrap_or_default().join(", ");
        let m = format!(
            "resource '{}' is not one this endpoint serves (allowed: {allowed}); add --scope {}",
            clean(&resource),
            clean(&scope_of(&resource)),
        );
        tracing::warn!(resource = %clean(&resource), "token request refused: resource not allowed");
        return refuse(403, m);
    }
    let token = match sh.client.acquire_token(&[scope_of(&resource)]).await {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(resource = %clean(&resource), error = %e.report(), "no token for the request");
            return client_error(&e);
        }
    };
    if let Some(named) = confirm {
        let (label, wanted, claims): (&str, &str, &[&str]) = match &named {
            Named::ClientId(c) => ("client_id", c, &["appid", "azp"]),
            Named::ObjectId(o) => ("object_id", o, &["oid"]),
            _ => ("", "", &[]),
        };
        match claims.iter().find_map(|c| claim(token.secret(), c)) {
            Some(mine) if mine.eq_ignore_ascii_case(wanted.trim()) => {}
            Some(mine) => {
                return refuse(
                    400,
                    format!(
                        "{label} '{}' is not the identity this endpoint serves ({mine})",
                        clean(wanted)
                    ),
                );
            }
            None => {
                return refuse(
                    400,
                    format!(
                        "{label} cannot be confirmed: the token does not name it; ask without it"
                    ),
                );
            }
        }
    }
    tracing::info!(resource = %clean(&resource), expires_on = token.expires_on().unix_timestamp(), "token served");
    let body = serde_json::json!({
        "access_token": token.secret(),
        "expires_on": token.expires_on().unix_timestamp().to_string(),
        "resource": resource,
        "token_type": token.token_type(),
        "client_id": sh.identity.client_id().unwrap_or_default(),
    });
    let mut r = (StatusCode::OK, axum::Json(body)).into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// The client's error as an answer: a refusal by the identity provider is
/// a 400 with its message (the AADSTS code, trace and correlation ids),
/// throttling a 429 with its `Retry-After`, an unreachable provider a 503
/// (the SDKs retry those), the rest a 500. Messages never hold a secret
/// (the client's errors never do).
fn client_error(e: &ClientError) -> Response {
    let message = e.report().to_string();
    let (status, retry_after) = match e {
        ClientError::IdentityProvider(_) if e.is_throttled() => (429, e.retry_after()),
        ClientError::IdentityProvider(_) if e.status().is_some_and(|s| s >= 500) => {
            (503, e.retry_after())
        }
        ClientError::IdentityProvider(_) => (400, None),
        ClientError::Transport { .. } => (503, None),
        ClientError::InvalidScope { .. } | ClientError::Configuration(_) => (400, None),
        ClientError::InvalidResponse { .. } => (502, None),
        _ => (500, None),
    };
    let mut r = refuse(status, message);
    if let Some(after) = retry_after
        && let Ok(v) = HeaderValue::from_str(&after.as_secs().max(1).to_string())
    {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

/// A string claim of a JWT's payload (unverified: the token is ours).
fn claim(token: &str, name: &str) -> Option<String> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    v.get(name)?.as_str().map(str::to_string)
}
