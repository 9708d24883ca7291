//! OpenID Connect discovery and JWKS, shaped like Entra ID's v2.0 documents.

use std::sync::Arc;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use serde_json::json;

use crate::aad::{RequestContext, json_response};
use crate::server::AppState;
use crate::token::{TenantRef, resolve_tenant};

/// `GET /{tenant}/v2.0/.well-known/openid-configuration`.
pub(crate) async fn openid_configuration(
    State(st): State<Arc<AppState>>,
    tenant: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    st.stats.discovery();
    let ctx = RequestContext::new(&headers, uri.query(), st.clock.now());
    let segment = tenant.map(|p| p.0).unwrap_or_default();
    let (tid, issuer, region) = match resolve_tenant(&st.config, &segment, true) {
        Ok(TenantRef::Known(t)) => (t.id.clone(), st.issuer(&t.id), json!("NA")),
        Ok(TenantRef::Multi) => (
            segment.to_ascii_lowercase(),
            st.issuer("{tenantid}"),
            json!(null),
        ),
        Err(e) => return e.into_response(&ctx, &st.base_url),
    };
    let base = &st.base_url;
    let host = base.trim_start_matches("http://");
    let doc = json!({
        "token_endpoint": format!("{base}/{tid}/oauth2/v2.0/token"),
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "jwks_uri": format!("{base}/{tid}/discovery/v2.0/keys"),
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": issuer,
        "request_uri_parameter_supported": false,
        "userinfo_endpoint": format!("{base}/oidc/userinfo"),
        "authorization_endpoint": format!("{base}/{tid}/oauth2/v2.0/authorize"),
        "device_authorization_endpoint": format!("{base}/{tid}/oauth2/v2.0/devicecode"),
        "http_logout_supported": true,
        "frontchannel_logout_supported": true,
        "end_session_endpoint": format!("{base}/{tid}/oauth2/v2.0/logout"),
        "claims_supported": ["sub", "iss", "cloud_instance_name", "cloud_instance_host_name",
            "cloud_graph_host_name", "msgraph_host", "aud", "exp", "iat", "auth_time", "acr",
            "nonce", "preferred_username", "name", "tid", "ver", "at_hash", "c_hash", "email"],
        "kerberos_endpoint": format!("{base}/{tid}/kerberos"),
        "tenant_region_scope": region,
        "cloud_instance_name": "microsoftonline.com",
        "cloud_graph_host_name": "graph.windows.net",
        "msgraph_host": host,
        "rbac_url": "https://pas.windows.net",
    });
    json_response(StatusCode::OK, &doc, &ctx)
}

/// `GET /{tenant}/discovery/v2.0/keys` (also `/common/...`).
pub(crate) async fn jwks(
    State(st): State<Arc<AppState>>,
    tenant: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    st.stats.jwks();
    let ctx = RequestContext::new(&headers, uri.query(), st.clock.now());
    let segment = tenant.map(|p| p.0).unwrap_or_default();
    let issuer = match resolve_tenant(&st.config, &segment, true) {
        Ok(TenantRef::Known(t)) => st.issuer(&t.id),
        Ok(TenantRef::Multi) => st.issuer("{tenantid}"),
        Err(e) => return e.into_response(&ctx, &st.base_url),
    };
    let key = &st.signing;
    let doc = json!({
        "keys": [{
            "kty": "RSA",
            "use": "sig",
            "kid": key.kid,
            "x5t": key.kid,
            "n": key.n,
            "e": key.e,
            "x5c": [crate::crypto::b64std(&key.cert_der)],
            "issuer": issuer,
        }]
    });
    json_response(StatusCode::OK, &doc, &ctx)
}
