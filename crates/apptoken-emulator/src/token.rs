//! `POST /{tenant}/oauth2/v2.0/token`: the client credentials grant,
//! validated as Entra ID does.
//!
//! Why one file (for now): the checks run in Entra's order and each answers
//! with Entra's code; keeping the order readable top to bottom matters more
//! here than file size. Client-assertion checks could move out (issue #18).

use std::sync::Arc;

use aws_lc_rs::constant_time::verify_slices_are_equal;
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::Response;
use base64::Engine as _;
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::aad::{AadError, RequestContext, json_response};
use crate::config::{App, Config, Tenant};
use crate::crypto::{self, CertKey, RsaAlg, b64_lenient};
use crate::jwt::{self, Jwt};
use crate::params::Params;
use crate::server::AppState;

/// Largest accepted request body.
pub(crate) const MAX_BODY: usize = 64 * 1024;
/// Clock skew tolerated on assertion `exp`/`nbf` (.NET's default, 5 minutes).
pub(crate) const CLOCK_SKEW_SECS: i64 = 300;
/// Entra back-dates `iat`/`nbf` of issued tokens by five minutes.
const ISSUED_BACKDATE_SECS: i64 = 300;
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Scopes Entra tolerates beside `/.default` (MSAL appends them).
const OIDC_SCOPES: [&str; 4] = ["openid", "profile", "offline_access", "email"];

/// Whether `name` is a syntactically valid DNS name with at least one dot.
pub(crate) fn is_dns_name(name: &str) -> bool {
    name.len() <= 253
        && name.contains('.')
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// How the `{tenant}` path segment resolved.
#[derive(Debug)]
pub(crate) enum TenantRef<'a> {
    /// A configured tenant, named by id or domain.
    Known(&'a Tenant),
    /// `common` or `organizations`: resolved later from the app's home tenant.
    Multi,
}

/// Resolves a tenant path segment; `discovery` selects the discovery wording.
pub(crate) fn resolve_tenant<'a>(
    config: &'a Config,
    segment: &str,
    discovery: bool,
) -> Result<TenantRef<'a>, AadError> {
    let lower = segment.to_ascii_lowercase();
    if lower == "common" || lower == "organizations" {
        return Ok(TenantRef::Multi);
    }
    let not_found = |t: &str| {
        if discovery {
            AadError::tenant_not_found_discovery(t)
        } else {
            AadError::tenant_not_found(t)
        }
    };
    if let Some(guid) = crate::config::parse_guid(&lower) {
        if guid == "00000000-0000-0000-0000-000000000000" {
            return Err(AadError::empty_guid_tenant(segment));
        }
        return config
            .tenant(&guid)
            .map(TenantRef::Known)
            .ok_or_else(|| not_found(segment));
    }
    if is_dns_name(&lower) {
        return config
            .tenant_by_id_or_domain(&lower)
            .map(TenantRef::Known)
            .ok_or_else(|| not_found(segment));
    }
    // `consumers` and any other single label: not a tenant Entra can serve here.
    if lower == "consumers" {
        return Err(not_found(segment));
    }
    Err(AadError::malformed_tenant(segment))
}

/// The request's form parameters (none unless the body is
/// `application/x-www-form-urlencoded`).
struct Form(Params);

impl Form {
    fn parse(headers: &HeaderMap, body: &[u8]) -> Form {
        let is_form = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| {
                v.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            });
        Form(if is_form {
            Params::parse(body)
        } else {
            Params::default()
        })
    }

    /// A parameter that is there and not blank.
    fn get(&self, name: &str) -> Option<&str> {
        self.0.first(name).filter(|v| !v.trim().is_empty())
    }
}

/// Percent-decodes one `application/x-www-form-urlencoded` component.
fn form_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match u8::from_str_radix(
                    std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"),
                    16,
                ) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `Authorization: Basic base64(urlencode(id):urlencode(secret))`.
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, rest) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    Some((form_decode(id), form_decode(secret)))
}

/// The client id a token request names (form field first, then the Basic
/// user name), for fault matching and the stats.
pub(crate) fn client_id_of(headers: &HeaderMap, body: &[u8]) -> Option<String> {
    Form::parse(headers, body)
        .get("client_id")
        .map(str::to_string)
        .or_else(|| basic_credentials(headers).map(|(id, _)| id))
        .filter(|id| !id.is_empty())
}

/// Who is asking, for the stats and the log.
#[derive(Debug, Default)]
pub(crate) struct Labels {
    client_id: String,
    tenant: String,
}

/// The credential the client presented.
enum Credential<'a> {
    Secret(String),
    Assertion(&'a str),
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
        if !st.directory.has_service_principal(config, app, &tenant.id) {
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
        .directory
        .granted_roles(config, &app.client_id, &tenant.id, &resource.app_id);
    let now = ctx.now.unix_timestamp();
    // Never back-dated before a revocation: a token issued after it passes CAE.
    let issued_at = st
        .directory
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
    let key = st.directory.current_key();
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

fn check_secret(app: &App, presented: &str, now: OffsetDateTime) -> Result<(), AadError> {
    let mut matched_expired = false;
    for secret in &app.secrets {
        if verify_slices_are_equal(secret.value.as_bytes(), presented.as_bytes()).is_ok() {
            if secret.expires_at.is_none_or(|e| e > now) {
                return Ok(());
            }
            matched_expired = true;
        }
    }
    if matched_expired {
        Err(AadError::expired_secret(&app.client_id))
    } else {
        Err(AadError::wrong_secret(&app.client_id))
    }
}

/// The token endpoint URLs an assertion's `aud` may name.
fn accepted_audiences(
    st: &AppState,
    tenant: &Tenant,
    segment: &str,
    host: Option<&str>,
) -> Vec<String> {
    let mut hosts = vec![st.base_url.clone()];
    if let Some(h) = host {
        hosts.push(format!("http://{h}"));
        hosts.push(format!("https://{h}"));
    }
    let mut names = vec![tenant.id.clone(), segment.to_string()];
    names.extend(tenant.domains.iter().cloned());
    let mut out = Vec::new();
    for h in &hosts {
        for n in &names {
            out.push(format!("{h}/{n}/oauth2/v2.0/token"));
            out.push(format!("{h}/{n}/oauth2/token"));
        }
    }
    out
}

#[allow(clippy::too_many_arguments)]
fn check_assertion(
    st: &AppState,
    now: OffsetDateTime,
    app: &App,
    tenant: &Tenant,
    segment: &str,
    host: Option<&str>,
    assertion: &str,
    federated: Option<&crate::federation::Fetched>,
) -> Result<(), AadError> {
    let jwt = Jwt::parse(assertion).ok_or_else(AadError::malformed_jwt)?;

    // Workload identity federation: an external issuer's token (its `iss`
    // is a URL; an app's own assertion has the client id there).
    if let Some(iss) = jwt.claim_str("iss")
        && !iss.eq_ignore_ascii_case(&app.client_id)
        && iss.contains("://")
        && !app.federated_credentials.is_empty()
    {
        return crate::federation::check(st, now, app, &jwt, federated);
    }

    // Algorithm.
    let alg = match jwt.header_str("alg") {
        Some("RS256") => RsaAlg::Rs256,
        Some("PS256") => RsaAlg::Ps256,
        Some(a) if a.starts_with("ES") || a.starts_with("PS") || a.starts_with("RS") => {
            return Err(AadError::unsupported_asymmetric_alg());
        }
        Some(other) => return Err(AadError::unsupported_alg(other)),
        None => return Err(AadError::malformed_jwt()),
    };

    // Key: x5t#S256, else x5t, else the x5c leaf.
    let x5c_leaf = match jwt.header.get("x5c") {
        None => None,
        Some(Value::Array(chain)) => {
            let leaf = chain
                .first()
                .and_then(Value::as_str)
                // MSAL Python sends the PEM body with its line breaks
                // (`extract_certs`); Entra (.NET's base64) ignores whitespace.
                .map(|s| s.split_ascii_whitespace().collect::<String>())
                .and_then(|s| b64_lenient(&s))
                .ok_or_else(AadError::malformed_jwt)?;
            Some(leaf)
        }
        Some(_) => return Err(AadError::malformed_jwt()),
    };
    let (thumbprint, sha256) = if let Some(t) = jwt.header_str("x5t#S256") {
        (b64_lenient(t).ok_or_else(AadError::malformed_jwt)?, true)
    } else if let Some(t) = jwt.header_str("x5t") {
        (b64_lenient(t).ok_or_else(AadError::malformed_jwt)?, false)
    } else if let Some(leaf) = &x5c_leaf {
        (crypto::sha1(leaf), false)
    } else {
        return Err(AadError::key_not_found("", &app.client_id));
    };
    let hex_thumbprint = hex::encode_upper(&thumbprint);
    let registered = app
        .certificates
        .iter()
        .find(|c| {
            if sha256 {
                c.cert.sha256 == thumbprint
            } else {
                c.cert.sha1 == thumbprint
            }
        })
        .ok_or_else(|| AadError::key_not_found(&hex_thumbprint, &app.client_id))?;
    if let Some(leaf) = &x5c_leaf
        && *leaf != registered.cert.der
    {
        return Err(AadError::key_not_found(
            &hex::encode_upper(crypto::sha1(leaf)),
            &app.client_id,
        ));
    }
    let cert = &registered.cert;
    let public_key = match &cert.key {
        CertKey::Rsa(public_key) => public_key,
        CertKey::Other(oid) => {
            tracing::debug!(%oid, "registered certificate has a non-RSA key");
            return Err(AadError::key_does_not_fit_alg());
        }
    };
    if cert.not_after < now || cert.not_before > now {
        return Err(AadError::key_expired(
            &hex_thumbprint,
            cert.not_before,
            cert.not_after,
        ));
    }
    if !public_key.verify(alg, jwt.signing_input.as_bytes(), &jwt.signature) {
        return Err(AadError::bad_signature(
            &hex_thumbprint,
            cert.not_before,
            cert.not_after,
        ));
    }

    // Issuer and subject.
    let iss = jwt.claim_str("iss").ok_or_else(AadError::malformed_jwt)?;
    let sub = jwt.claim_str("sub").ok_or_else(AadError::malformed_jwt)?;
    if iss != sub {
        return Err(AadError::subject_mismatch());
    }
    if !iss.eq_ignore_ascii_case(&app.client_id) {
        return Err(AadError::issuer_not_client());
    }

    // Audience.
    let auds = jwt::audiences(jwt.claims.get("aud")).ok_or_else(AadError::malformed_jwt)?;
    if auds.len() > 1 {
        return Err(AadError::too_many_audiences(auds.len()));
    }
    let accepted = accepted_audiences(st, tenant, segment, host);
    let aud = auds
        .first()
        .map(|a| a.trim_end_matches('/'))
        .unwrap_or_default();
    if !accepted.iter().any(|a| a.eq_ignore_ascii_case(aud)) {
        return Err(AadError::audience_mismatch());
    }

    // Lifetime: exp required; nbf and iat optional; no upper bound.
    let exp = jwt
        .claim_date("exp")
        .map_err(|()| AadError::malformed_jwt())?
        .ok_or_else(AadError::malformed_jwt)?;
    let nbf = jwt
        .claim_date("nbf")
        .map_err(|()| AadError::malformed_jwt())?;
    jwt.claim_date("iat")
        .map_err(|()| AadError::malformed_jwt())?;
    check_time_range(now, exp, nbf)
}

/// An assertion's `exp`/`nbf` against `now`, with [`CLOCK_SKEW_SECS`] each
/// way; no upper bound on the lifetime. Any `i64` is compared exactly
/// (saturating: `exp` near `i64::MAX` is far future, `nbf` near `i64::MIN`
/// far past, never wrapped around).
pub(crate) fn check_time_range(
    now: OffsetDateTime,
    exp: i64,
    nbf: Option<i64>,
) -> Result<(), AadError> {
    let now_secs = now.unix_timestamp();
    let expired = exp.saturating_add(CLOCK_SKEW_SECS) <= now_secs;
    let early = nbf.is_some_and(|n| n.saturating_sub(CLOCK_SKEW_SECS) > now_secs);
    if expired || early {
        return Err(AadError::assertion_time_range(
            now,
            nbf.map(date_of),
            date_of(exp),
        ));
    }
    Ok(())
}

/// A NumericDate as a date for messages, the way .NET's `EpochTime.DateTime`
/// reads it: 0 and before is the Unix epoch, beyond the last second of year
/// 9999 is that second.
pub(crate) fn date_of(secs: i64) -> OffsetDateTime {
    if secs <= 0 {
        return OffsetDateTime::UNIX_EPOCH;
    }
    OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .filter(|t| *t <= crate::clock::LATEST)
        .unwrap_or(crate::clock::LATEST)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_names() {
        assert!(is_dns_name("contoso.onmicrosoft.com"));
        assert!(!is_dns_name("contoso"));
        assert!(!is_dns_name("bad_name.com"));
        assert!(!is_dns_name("-a.com"));
        assert!(!is_dns_name("a..com"));
    }

    #[test]
    fn form_decoding() {
        assert_eq!(form_decode("a%3Ab+c%7E"), "a:b c~");
        assert_eq!(form_decode("100%"), "100%");
        assert_eq!(form_decode("%zz%4"), "%zz%4");
        assert_eq!(form_decode("%FF"), "\u{FFFD}");
    }

    #[test]
    fn time_range_checks_saturate_at_the_ends_of_i64() {
        let now = time::macros::datetime!(2030-01-01 00:00:00 UTC);
        let t = now.unix_timestamp();
        let code = |exp, nbf| check_time_range(now, exp, nbf).map_err(|e| e.code);
        assert_eq!(code(i64::MAX, None), Ok(()));
        assert_eq!(code(i64::MAX - 1, Some(i64::MIN)), Ok(()));
        assert_eq!(code(t - 299, Some(t + 300)), Ok(()));
        assert_eq!(code(t - 300, None), Err(700024));
        assert_eq!(code(t + 60, Some(t + 301)), Err(700024));
        assert_eq!(code(i64::MIN, None), Err(700024));
        assert_eq!(code(i64::MAX, Some(i64::MAX)), Err(700024));
        assert_eq!(date_of(i64::MIN), OffsetDateTime::UNIX_EPOCH);
        assert_eq!(date_of(-1), OffsetDateTime::UNIX_EPOCH);
        assert_eq!(date_of(t), now);
        assert_eq!(date_of(253_402_300_799), crate::clock::LATEST);
        assert_eq!(date_of(253_402_300_800), crate::clock::LATEST);
        assert_eq!(date_of(i64::MAX), crate::clock::LATEST);
    }

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
