//! `POST /{tenant}/oauth2/v2.0/token`: the client credentials grant,
//! validated as Entra ID does, and the token it issues.
//!
//! The checks run in Entra's order and each answers with Entra's code;
//! `grant` keeps that order readable top to bottom. Client authentication
//! (`client_auth`) and assertion checks (`assertion`) are their own
//! modules; tenant resolution is `crate::tenant`.
//!
//! Invariants: `grant` does no I/O (an external issuer's keys are fetched
//! before it runs); labels for the stats are filled in as soon as the
//! client and tenant are known, so a refusal is counted against them.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::Response;
use serde_json::{Value, json};

use crate::crypto;
use crate::error_shape::{AadError, RequestContext, json_response};
use crate::server::AppState;
use crate::tenant::{TenantRef, resolve_tenant};

mod assertion;
mod client_auth;

use assertion::check_assertion;
pub(crate) use assertion::{CLOCK_SKEW_SECS, check_time_range};
pub(crate) use client_auth::client_id_of;
use client_auth::{Credential, Form, basic_credentials, check_secret};

/// Largest accepted request body.
pub(crate) const MAX_BODY: usize = 64 * 1024;
/// Entra back-dates `iat`/`nbf` of issued tokens by five minutes.
const ISSUED_BACKDATE_SECS: i64 = 300;
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Scopes Entra tolerates beside `/.default` (MSAL appends them).
const OIDC_SCOPES: [&str; 4] = ["openid", "profile", "offline_access", "email"];

/// Who is asking, for the stats and the log.
#[derive(Debug, Default)]
pub(crate) struct Labels {
    client_id: String,
    tenant: String,
}

pub(crate) struct Granted {
    tenant_id: String,
    client_id: String,
    body: Value,
}

/// POST handler.
pub(crate) async fn token_endpoint(
    State(st): State<Arc<AppState>>,
    tenant: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    uri: Uri,
    body: Body,
) -> Response {
    let ctx = RequestContext::new(&headers, uri.query(), st.clock.now());
    let segment = tenant.map(|p| p.0).unwrap_or_else(|_| String::from("?"));
    let mut labels = Labels {
        client_id: String::new(),
        tenant: segment.to_ascii_lowercase(),
    };
    let result = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(bytes) => {
            // An external issuer's keys are fetched before the (synchronous) checks.
            let federated = crate::federation::prefetch(&st, &headers, &bytes).await;
            grant(
                &st,
                &ctx,
                &segment,
                &headers,
                &bytes,
                federated.as_ref(),
                &mut labels,
            )
        }
        Err(_) => Err(AadError::body_too_large(MAX_BODY)),
    };
    match result {
        Ok(granted) => {
            st.stats
                .token(&granted.client_id, &granted.tenant_id, "success");
            tracing::info!(client_id = %granted.client_id, tenant = %granted.tenant_id,
                trace_id = %ctx.trace_id, "token issued");
            json_response(StatusCode::OK, &granted.body, &ctx)
        }
        Err(err) => {
            let outcome = format!("AADSTS{}", err.code);
            st.stats.token(&labels.client_id, &labels.tenant, &outcome);
            tracing::info!(client_id = %labels.client_id, tenant = %labels.tenant, %outcome,
                status = err.status.as_u16(), trace_id = %ctx.trace_id, "token request refused");
            err.into_response(&ctx, &st.base_url)
        }
    }
}

/// GET on the token endpoint: Entra's AADSTS900561.
pub(crate) async fn token_get(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let ctx = RequestContext::new(&headers, uri.query(), st.clock.now());
    AadError::get_on_token_endpoint().into_response(&ctx, &st.base_url)
}

/// Checks a token request and issues the token: the whole client
/// credentials grant, without I/O. `federated` holds an external issuer's
/// keys when the assertion names one (see `federation::prefetch`).
pub(crate) fn grant(
    st: &AppState,
    ctx: &RequestContext,
    segment: &str,
    headers: &HeaderMap,
    body: &[u8],
    federated: Option<&crate::federation::Fetched>,
    labels: &mut Labels,
) -> Result<Granted, AadError> {
    let config = &st.config;
    let tenant_ref = resolve_tenant(config, segment, false)?;
    if let TenantRef::Known(t) = &tenant_ref {
        labels.tenant = t.id.clone();
    }
    let form = Form::parse(headers, body);

    // grant_type
    let grant_type = form
        .get("grant_type")
        .ok_or_else(|| AadError::missing_parameter("grant_type"))?;
    if grant_type != "client_credentials" {
        return Err(AadError::unsupported_grant_type(grant_type));
    }

    // client id and credential
    let basic = basic_credentials(headers);
    let body_client_id = form.get("client_id");
    labels.client_id = body_client_id
        .or(basic.as_ref().map(|(id, _)| id.as_str()))
        .unwrap_or_default()
        .to_string();
    let assertion = form.get("client_assertion");
    let post_secret = form.get("client_secret");
    let presented = usize::from(assertion.is_some())
        + usize::from(post_secret.is_some())
        + usize::from(basic.is_some());
    if presented == 0 {
        return Err(AadError::no_credential());
    }
    if presented > 1 {
        return Err(AadError::invalid_request(
            "The request contains more than one client credential. Send exactly one of 'client_secret', 'client_assertion' or an 'Authorization: Basic' header.",
        ));
    }
    let credential = if let Some(assertion) = assertion {
        match form.get("client_assertion_type") {
            None => return Err(AadError::missing_parameter("client_assertion_type")),
            Some(t) if t != JWT_BEARER => {
                return Err(AadError::invalid_request(format!(
                    "The value of 'client_assertion_type' must be '{JWT_BEARER}'. Got '{t}'."
                )));
            }
            Some(_) => Credential::Assertion(assertion),
        }
    } else if let Some(secret) = post_secret {
        Credential::Secret(secret.to_string())
    } else {
        let (_, secret) = basic.clone().unwrap_or_default();
        Credential::Secret(secret)
    };
    if let (Some(body_id), Some((basic_id, _))) = (body_client_id, &basic)
        && !body_id.eq_ignore_ascii_case(basic_id)
    {
        return Err(AadError::invalid_request(
            "The 'client_id' parameter does not match the client id in the Authorization header.",
        ));
    }
    let client_id = body_client_id
        .map(str::to_string)
        .or_else(|| basic.as_ref().map(|(id, _)| id.clone()))
        .filter(|id| !id.is_empty())
        .ok_or_else(|| AadError::missing_parameter("client_id"))?;

    // scope syntax
    let scope = form
        .get("scope")
        .ok_or_else(|| AadError::missing_parameter("scope"))?;
    let resource_name = parse_scope(scope)?;
    let capabilities = match form.get("claims") {
        Some(text) => client_capabilities(text)?,
        None => Vec::new(),
    };

    // app and tenant
    let app = match config.app(client_id.trim()) {
        Some(app) => app,
        None => {
            let directory = match &tenant_ref {
                TenantRef::Known(t) => t.display_name.clone(),
                TenantRef::Multi => segment.to_string(),
            };
            return Err(AadError::unknown_client(&client_id, &directory));
        }
    };
    labels.client_id = app.client_id.clone();
    let tenant = match tenant_ref {
        TenantRef::Known(t) => t,
        TenantRef::Multi => config
            .tenant(&app.home_tenant)
            .ok_or_else(|| AadError::tenant_not_found(&app.home_tenant))?,
    };
    labels.tenant = tenant.id.clone();
    if app.home_tenant != tenant.id {
        if !app.multi_tenant {
            return Err(AadError::unknown_client(&client_id, &tenant.display_name));
        }
        if !st.runtime.has_service_principal(config, app, &tenant.id) {
            return Err(AadError::missing_service_principal(
                &app.client_id,
                &tenant.id,
            ));
        }
    }
    if app.disabled {
        return Err(AadError::app_disabled(&app.client_id, &app.display_name));
    }

    // credential
    let azpacr = match credential {
        Credential::Secret(secret) => {
            check_secret(app, &secret, ctx.now)?;
            "1"
        }
        Credential::Assertion(assertion) => {
            let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
            check_assertion(
                st, ctx.now, app, tenant, segment, host, assertion, federated,
            )?;
            "2"
        }
    };

    // resource
    let resource = config
        .resources
        .iter()
        .find(|r| r.matches(&resource_name))
        .ok_or_else(|| AadError::unknown_resource(&resource_name, &tenant.display_name))?;

    let roles = st
        .runtime
        .granted_roles(config, &app.client_id, &tenant.id, &resource.app_id);
    let now = ctx.now.unix_timestamp();
    // Never back-dated before a revocation: a token issued after it passes CAE.
    let issued_at = st
        .runtime
        .revoked_at(&app.client_id, &tenant.id)
        .map_or(now - ISSUED_BACKDATE_SECS, |r| {
            (now - ISSUED_BACKDATE_SECS).max(r.min(now))
        });
    let lifetimes = st.lifetimes();
    let lifetime = i64::try_from(lifetimes.expires_in)
        .unwrap_or(i64::MAX)
        .saturating_add(1);
    let oid = crypto::derived_guid(&["service-principal", &tenant.id, &app.client_id]).to_string();
    let mut claims = json!({
        "aud": resource.app_id,
        "iss": st.issuer(&tenant.id),
        "iat": issued_at,
        "nbf": issued_at,
        "exp": now.saturating_add(lifetime),
        "azp": app.client_id,
        "azpacr": azpacr,
        "idtyp": "app",
        "oid": oid,
        "sub": oid,
        "tid": tenant.id,
        "uti": crypto::b64url(&crypto::random_bytes(16)),
        "ver": "2.0",
    });
    if !roles.is_empty() {
        claims["roles"] = json!(roles);
    }
    if capabilities.iter().any(|c| c.eq_ignore_ascii_case("cp1")) {
        claims["xms_cc"] = json!(["cp1"]);
    }
    let key = st.runtime.current_key();
    let header = json!({"typ": "JWT", "alg": "RS256", "x5t": key.kid, "kid": key.kid});
    let access_token = key.sign_jwt(&header, &claims).map_err(|e| {
        tracing::error!(error = %e, "signing failed");
        AadError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            90033,
            "A transient error has occurred. Please try again.",
        )
    })?;
    let mut body = json!({
        "token_type": "Bearer",
        "expires_in": lifetimes.expires_in,
        "ext_expires_in": lifetimes.ext_expires_in,
        "access_token": access_token,
    });
    if let Some(refresh_in) = lifetimes.refresh_in {
        body["refresh_in"] = json!(refresh_in);
    }
    Ok(Granted {
        tenant_id: tenant.id.clone(),
        client_id: app.client_id.clone(),
        body,
    })
}

/// The `claims` request parameter (OpenID Connect claims request, a JSON
/// object): returns the client capabilities in `access_token.xms_cc.values`.
fn client_capabilities(text: &str) -> Result<Vec<String>, AadError> {
    let value: Value = serde_json::from_str(text).map_err(|_| AadError::malformed_claims())?;
    if !value.is_object() {
        return Err(AadError::malformed_claims());
    }
    Ok(value
        .pointer("/access_token/xms_cc/values")
        .and_then(Value::as_array)
        .map(|values| {
            values
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default())
}

/// Checks the scope syntax and returns the resource part of the one
/// `{resource}/.default` scope.
fn parse_scope(scope: &str) -> Result<String, AadError> {
    let resources: Vec<&str> = scope
        .split_whitespace()
        .filter(|s| !OIDC_SCOPES.iter().any(|o| o.eq_ignore_ascii_case(s)))
        .collect();
    if resources.is_empty() {
        return Err(AadError::scope_without_default(scope.trim()));
    }
    let mut names = Vec::new();
    for s in &resources {
        match s.strip_suffix("/.default") {
            Some(name) if !name.is_empty() => names.push(name),
            _ => return Err(AadError::scope_without_default(s)),
        }
    }
    if names.len() > 1 {
        return Err(AadError::several_resources(&resources.join(" ")));
    }
    Ok(names[0].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes() {
        assert_eq!(parse_scope("api://x/.default").ok(), Some("api://x".into()));
        assert_eq!(
            parse_scope("openid api://x/.default profile offline_access").ok(),
            Some("api://x".into())
        );
        assert_eq!(
            parse_scope("https://x//.default").ok(),
            Some("https://x/".into())
        );
        assert_eq!(
            parse_scope("api://x/read").map_err(|e| e.code),
            Err(1002012)
        );
        assert_eq!(parse_scope("openid").map_err(|e| e.code), Err(1002012));
        assert_eq!(parse_scope("/.default").map_err(|e| e.code), Err(1002012));
        assert_eq!(
            parse_scope("a/.default b/.default").map_err(|e| e.code),
            Err(70011)
        );
    }
}
