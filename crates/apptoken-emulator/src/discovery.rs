//! OpenID Connect discovery and JWKS, shaped like Entra ID's v2.0 documents.

use std::sync::Arc;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use serde_json::json;

use crate::error_shape::{RequestContext, json_response};
use crate::server::AppState;
use crate::tenant::{TenantRef, resolve_tenant};

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
    // Endpoints on the host the request arrived at (MSAL checks that they
    // share the authority's host); the issuer stays on base_url, which is
    // what tokens carry.
    let base = &st.request_base(&headers);
    let host = st.request_host(&headers);
    let host_name = host_name(&host);
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
        "cloud_instance_name": host_name,
        "cloud_graph_host_name": host,
        "msgraph_host": host,
        "rbac_url": base,
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
    let keys: Vec<serde_json::Value> = st
        .runtime
        .published_keys(ctx.now)
        .iter()
        .map(|key| {
            json!({
                "kty": "RSA",
                "use": "sig",
                "kid": key.kid,
                "x5t": key.kid,
                "n": key.n,
                "e": key.e,
                "x5c": [crate::crypto::b64std(&key.cert_der)],
                "issuer": issuer,
            })
        })
        .collect();
    let doc = json!({ "keys": keys });
    json_response(StatusCode::OK, &doc, &ctx)
}

/// `host` without its port (`[::1]:8443` → `[::1]`).
fn host_name(host: &str) -> &str {
    match host.rfind(':') {
        Some(i) if !host[i..].contains(']') => &host[..i],
        _ => host,
    }
}

/// The port suffix of `host` (`:8443`), or "".
fn port_suffix(host: &str) -> &str {
    &host[host_name(host).len()..]
}

/// Entra's cloud host groups: (preferred_network, preferred_cache, aliases).
const CLOUDS: [(&str, &str, &[&str]); 3] = [
    (
        "login.microsoftonline.com",
        "login.windows.net",
        &[
            "login.microsoftonline.com",
            "login.windows.net",
            "login.microsoft.com",
        ],
    ),
    (
        "login.microsoftonline.us",
        "login.microsoftonline.us",
        &["login.microsoftonline.us"],
    ),
    (
        "login.chinacloudapi.cn",
        "login.chinacloudapi.cn",
        &["login.chinacloudapi.cn"],
    ),
];

/// `GET /common/discovery/instance?api-version=1.1&authorization_endpoint=…`:
/// Entra's instance discovery, with hosts of this emulator only.
pub(crate) async fn instance_discovery(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    st.stats.discovery();
    let ctx = RequestContext::new(&headers, uri.query(), st.clock.now());
    let query = crate::params::Params::of_query(&uri);
    let param = |name: &str| query.first(name);
    // The tenant: first path segment of authorization_endpoint, else `common`.
    let tenant = param("authorization_endpoint")
        .and_then(|a| url::Url::parse(a).ok())
        .and_then(|u| {
            u.path_segments()
                .and_then(|mut s| s.next().map(str::to_string))
        })
        .filter(|t| {
            !t.is_empty()
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-_".contains(&b))
        })
        .unwrap_or_else(|| "common".to_string());
    let host = st.request_host(&headers);
    let port = port_suffix(&host).to_string();
    let base = st.request_base(&headers);
    let mut metadata = Vec::new();
    let mut covered = false;
    let loopback: Vec<String> = ["127.0.0.1", "localhost", "[::1]"]
        .iter()
        .map(|h| format!("{h}{port}"))
        .collect();
    let mut loopback_aliases = loopback.clone();
    if !loopback_aliases.contains(&st.base_host().to_string()) {
        loopback_aliases.insert(0, st.base_host().to_string());
    }
    covered |= loopback_aliases.contains(&host);
    metadata.push(json!({
        "preferred_network": loopback_aliases[0],
        "preferred_cache": loopback_aliases[0],
        "aliases": loopback_aliases,
    }));
    if st.scheme() == "https" {
        for (network, cache, aliases) in CLOUDS {
            let aliases: Vec<String> = aliases.iter().map(|a| format!("{a}{port}")).collect();
            covered |= aliases.contains(&host);
            metadata.push(json!({
                "preferred_network": format!("{network}{port}"),
                "preferred_cache": format!("{cache}{port}"),
                "aliases": aliases,
            }));
        }
    }
    if !covered {
        metadata.push(json!({
            "preferred_network": host,
            "preferred_cache": host,
            "aliases": [host],
        }));
    }
    let doc = json!({
        "tenant_discovery_endpoint": format!("{base}/{tenant}/v2.0/.well-known/openid-configuration"),
        "api-version": "1.1",
        "metadata": metadata,
    });
    json_response(StatusCode::OK, &doc, &ctx)
}
