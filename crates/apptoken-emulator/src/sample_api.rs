//! The sample protected web API: a Microsoft Graph-shaped `/v1.0/users`.

use std::sync::Arc;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::Response;
use serde_json::{Value, json};

use crate::config::User;
use crate::error_shape::{RequestContext, format_iso7, json_response};
use crate::jwt::Jwt;
use crate::server::AppState;

const DEFAULT_TOP: usize = 100;
const MAX_TOP: usize = 999;

/// A Graph-style failure.
#[derive(Debug)]
struct GraphError {
    status: StatusCode,
    code: &'static str,
    message: String,
    /// `WWW-Authenticate` value for 401s.
    challenge: Option<String>,
}

impl GraphError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        GraphError {
            status,
            code,
            message: message.into(),
            challenge: None,
        }
    }

    fn invalid_token(base_url: &str, message: &str) -> Self {
        GraphError {
            challenge: Some(format!(
                "Bearer realm=\"\", authorization_uri=\"{base_url}/common/oauth2/authorize\", error=\"invalid_token\", error_description=\"{}\"",
                message.replace('"', "'")
            )),
            ..GraphError::new(
                StatusCode::UNAUTHORIZED,
                "InvalidAuthenticationToken",
                message,
            )
        }
    }

    fn into_response(self, ctx: &RequestContext) -> Response {
        let body = json!({
            "error": {
                "code": self.code,
                "message": self.message,
                "innerError": {
                    "date": format_iso7(ctx.now).split('.').next().unwrap_or_default(),
                    "request-id": ctx.trace_id,
                    "client-request-id": ctx.correlation_id,
                }
            }
        });
        let mut response = json_response(self.status, &body, ctx);
        if let Some(challenge) = self.challenge
            && let Ok(v) = HeaderValue::from_str(&challenge)
        {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
        response
    }
}

/// Validates the bearer token; returns the tenant id it was issued for.
fn authorize(
    st: &AppState,
    headers: &HeaderMap,
    now: time::OffsetDateTime,
) -> Result<String, GraphError> {
    let base = &st.base_url;
    let value = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::trim);
    let token = match value.and_then(|v| v.split_once(' ')) {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            token.trim()
        }
        _ => {
            let mut e = GraphError::new(
                StatusCode::UNAUTHORIZED,
                "InvalidAuthenticationToken",
                "Access token is empty.",
            );
            e.challenge = Some(format!(
                "Bearer realm=\"\", authorization_uri=\"{base}/common/oauth2/authorize\""
            ));
            return Err(e);
        }
    };
    let invalid = |m: &str| GraphError::invalid_token(base, m);
    let jwt = Jwt::parse(token).ok_or_else(|| invalid("IDX14100: JWT is not well formed."))?;
    let key = jwt
        .header_str("kid")
        .and_then(|kid| st.runtime.key_for(kid, now));
    let Some(key) = key.filter(|_| jwt.header_str("alg") == Some("RS256")) else {
        return Err(invalid(
            "Access token validation failure. Invalid signing key.",
        ));
    };
    if !key.verify(jwt.signing_input.as_bytes(), &jwt.signature) {
        return Err(invalid(
            "Access token validation failure. Invalid signature.",
        ));
    }
    let tid = jwt.claim_str("tid").unwrap_or_default().to_string();
    if st.config.tenant(&tid).is_none() || jwt.claim_str("iss") != Some(st.issuer(&tid).as_str()) {
        return Err(invalid("Access token validation failure. Invalid issuer."));
    }
    let sample = st
        .config
        .sample_api
        .as_ref()
        .ok_or_else(|| invalid("The sample API is not configured."))?;
    let resource = st.config.resource_by_app_id(&sample.resource_app_id);
    let aud = jwt.claim_str("aud").unwrap_or_default();
    if !resource.is_some_and(|r| r.matches(aud)) || aud.ends_with('/') {
        return Err(invalid(
            "Access token validation failure. Invalid audience.",
        ));
    }
    let now = now.unix_timestamp();
    let exp = jwt.claim_date("exp").ok().flatten();
    let nbf = jwt.claim_date("nbf").ok().flatten().unwrap_or(i64::MIN);
    if exp.is_none_or(|e| e <= now) || nbf > now + crate::token::CLOCK_SKEW_SECS {
        return Err(invalid("Lifetime validation failed, the token is expired."));
    }
    // Continuous access evaluation: tokens issued before a revocation.
    let azp = jwt.claim_str("azp").unwrap_or_default();
    if let Some(revoked) = st.runtime.revoked_at(azp, &tid) {
        let iat = jwt.claim_date("iat").ok().flatten().unwrap_or(i64::MIN);
        if iat < revoked {
            let cp1 = jwt
                .claims
                .get("xms_cc")
                .and_then(Value::as_array)
                .is_some_and(|c| {
                    c.iter()
                        .any(|v| v.as_str().is_some_and(|s| s.eq_ignore_ascii_case("cp1")))
                });
            if !cp1 {
                return Err(invalid("Access token has been revoked."));
            }
            let claims =
                json!({"access_token": {"nbf": {"essential": true, "value": revoked.to_string()}}});
            return Err(GraphError {
                challenge: Some(format!(
                    "Bearer realm=\"\", authorization_uri=\"{base}/{tid}/oauth2/authorize\", client_id=\"00000003-0000-0000-c000-000000000000\", error=\"insufficient_claims\", claims=\"{}\"",
                    crate::crypto::b64std(claims.to_string().as_bytes())
                )),
                ..GraphError::new(
                    StatusCode::UNAUTHORIZED,
                    "InvalidAuthenticationToken",
                    "Continuous access evaluation resulted in challenge with result: InteractionRequired and code: TokenIssuedBeforeRevocationTimestamp",
                )
            });
        }
    }
    if let Some(required) = &sample.required_role {
        let has = jwt
            .claims
            .get("roles")
            .and_then(Value::as_array)
            .is_some_and(|roles| roles.iter().any(|r| r.as_str() == Some(required.as_str())));
        if !has {
            return Err(GraphError::new(
                StatusCode::FORBIDDEN,
                "Authorization_RequestDenied",
                "Insufficient privileges to complete the operation.",
            ));
        }
    }
    Ok(tid)
}

fn user_json(u: &User) -> Value {
    json!({
        "id": u.id,
        "displayName": u.display_name,
        "givenName": u.given_name,
        "surname": u.surname,
        "userPrincipalName": u.user_principal_name,
        "mail": u.mail,
        "jobTitle": u.job_title,
    })
}

fn finish(st: &AppState, ctx: &RequestContext, result: Result<Value, GraphError>) -> Response {
    let response = match result {
        Ok(body) => json_response(StatusCode::OK, &body, ctx),
        Err(e) => e.into_response(ctx),
    };
    st.stats.sample_api(response.status().as_u16());
    response
}

/// `GET /v1.0/users` with `$top` and `$skiptoken`.
pub(crate) async fn list_users(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let ctx = RequestContext::new(&headers, uri.query(), st.clock.now());
    let result = list(&st, &headers, &uri, &ctx);
    finish(&st, &ctx, result)
}

fn list(
    st: &AppState,
    headers: &HeaderMap,
    uri: &Uri,
    ctx: &RequestContext,
) -> Result<Value, GraphError> {
    let tid = authorize(st, headers, ctx.now)?;
    let query = crate::params::Params::of_query(uri);
    let param = |name: &str| query.first(name);
    let top = match param("$top") {
        None => DEFAULT_TOP,
        Some(t) => t.trim().parse::<usize>().ok().filter(|n| (1..=MAX_TOP).contains(n)).ok_or_else(|| {
            GraphError::new(
                StatusCode::BAD_REQUEST,
                "Request_UnsupportedQuery",
                format!("Invalid page size specified: '{t}'. Must be between 1 and {MAX_TOP} inclusive."),
            )
        })?,
    };
    let offset = match param("$skiptoken") {
        None => 0,
        Some(token) => crate::crypto::b64_lenient(token)
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| {
                s.strip_prefix("offset:")
                    .and_then(|n| n.parse::<usize>().ok())
            })
            .ok_or_else(|| {
                GraphError::new(
                    StatusCode::BAD_REQUEST,
                    "Request_BadRequest",
                    "Invalid $skiptoken.",
                )
            })?,
    };
    let users: Vec<&User> = st
        .config
        .users
        .iter()
        .filter(|u| u.tenant_id == tid)
        .collect();
    let page: Vec<Value> = users
        .iter()
        .skip(offset)
        .take(top)
        .map(|u| user_json(u))
        .collect();
    let base = &st.base_url;
    let mut body = json!({
        "@odata.context": format!("{base}/v1.0/$metadata#users"),
        "value": page,
    });
    let next = offset.saturating_add(top);
    if next < users.len() {
        let token = crate::crypto::b64url(format!("offset:{next}").as_bytes());
        body["@odata.nextLink"] = json!(format!("{base}/v1.0/users?$top={top}&$skiptoken={token}"));
    }
    Ok(body)
}

/// `GET /v1.0/users/{id}` (id or user principal name).
pub(crate) async fn get_user(
    State(st): State<Arc<AppState>>,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let ctx = RequestContext::new(&headers, uri.query(), st.clock.now());
    let result = authorize(&st, &headers, ctx.now).and_then(|tid| {
        let id = id.map(|p| p.0).unwrap_or_default();
        st.config
            .users
            .iter()
            .find(|u| u.tenant_id == tid && (u.id.eq_ignore_ascii_case(&id) || u.user_principal_name.eq_ignore_ascii_case(&id)))
            .map(|u| {
                let mut v = user_json(u);
                v["@odata.context"] = json!(format!("{}/v1.0/$metadata#users/$entity", st.base_url));
                v
            })
            .ok_or_else(|| {
                GraphError::new(
                    StatusCode::NOT_FOUND,
                    "Request_ResourceNotFound",
                    format!("Resource '{id}' does not exist or one of its queried reference-property objects are not present."),
                )
            })
    });
    finish(&st, &ctx, result)
}
