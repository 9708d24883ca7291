//! Workload identity federation: the emulator also plays external OpenID
//! issuers (a Kubernetes cluster's service account issuer), and validates
//! their tokens as client assertions the way Entra does — fetching the
//! issuer's metadata and JWKS over HTTP(S). A credential may also trust the
//! emulator's own issuer (`{base}/{tenant}/v2.0`, a managed identity's
//! tokens): those are verified with the emulator's own keys, unfetched.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::Error;
use crate::admin::admin_error;
use crate::config::App;
use crate::crypto::SigningKey;
use crate::error_shape::AadError;
use crate::jwt::{self, Jwt};
use crate::server::AppState;

/// Entra's audience for token exchange.
pub(crate) const DEFAULT_AUDIENCE: &str = "api://AzureADTokenExchange";
/// In a federated credential's `issuer`, replaced by the emulator's base URL.
pub(crate) const BASE_PLACEHOLDER: &str = "{base}";
/// How long fetched issuer keys are reused.
const KEY_CACHE_TTL: Duration = Duration::from_secs(60);
/// Timeout of one metadata or JWKS fetch.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
const DEFAULT_LIFETIME_SECS: u64 = 3600;

/// The built-in issuers (one RSA key each, made on first use) and the cache
/// of fetched external keys.
#[derive(Debug, Default)]
pub(crate) struct Issuers {
    keys: Mutex<HashMap<String, Arc<SigningKey>>>,
    cache: Mutex<HashMap<String, (Instant, Value)>>,
}

/// An issuer's fetched JWKS (`keys` array), or why it could not be fetched.
pub(crate) type Fetched = Result<Value, String>;

/// The HTTP client for external issuers: rustls with the system roots plus
/// the emulator's own CA, no proxy.
pub(crate) fn http_client(ca_pem: Option<&str>) -> Result<reqwest::Client, Error> {
    let mut builder = reqwest::Client::builder()
        .no_proxy()
        .timeout(FETCH_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none());
    if let Some(pem) = ca_pem {
        let ca = reqwest::Certificate::from_pem(pem.as_bytes())
            .map_err(|e| Error::Crypto(format!("the local CA for issuer fetches: {e}")))?;
        builder = builder.tls_certs_merge([ca]);
    }
    builder
        .build()
        .map_err(|e| Error::Crypto(format!("building the issuer HTTP client: {e}")))
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl AppState {
    fn issuer_url(&self, name: &str) -> String {
        format!("{}/_emulator/federation/{name}", self.base_url)
    }

    /// A federated credential's issuer with `{base}` substituted.
    pub(crate) fn credential_issuer(&self, configured: &str) -> String {
        configured.replace(BASE_PLACEHOLDER, &self.base_url)
    }

    fn issuer_key(&self, name: &str) -> Result<Arc<SigningKey>, Error> {
        if !valid_name(name) {
            return Err(Error::Config(format!("invalid issuer name '{name}'")));
        }
        if let Some(k) = self
            .federation
            .keys
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
        {
            return Ok(k.clone());
        }
        let key = Arc::new(SigningKey::generate(self.clock.now())?);
        Ok(self
            .federation
            .keys
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(name.to_string())
            .or_insert(key)
            .clone())
    }
}

/// Mints a service-account-style token of the built-in issuer `name`.
pub(crate) fn mint(
    st: &AppState,
    name: &str,
    subject: &str,
    audience: Option<&str>,
    lifetime_secs: Option<u64>,
) -> Result<String, Error> {
    let key = st.issuer_key(name)?;
    let now = st.clock.now().unix_timestamp();
    let lifetime =
        i64::try_from(lifetime_secs.unwrap_or(DEFAULT_LIFETIME_SECS)).unwrap_or(i64::MAX);
    let claims = json!({
        "iss": st.issuer_url(name),
        "sub": subject,
        "aud": [audience.unwrap_or(DEFAULT_AUDIENCE)],
        "iat": now,
        "nbf": now,
        "exp": now.saturating_add(lifetime),
        "kubernetes.io": {"serviceaccount": {"name": subject.rsplit(':').next().unwrap_or(subject)}},
    });
    let header = json!({"alg": "RS256", "kid": key.kid, "typ": "JWT"});
    key.sign_jwt(&header, &claims)
}

/// `GET /_emulator/federation/{name}/.well-known/openid-configuration`.
pub(crate) async fn openid_configuration(
    State(st): State<Arc<AppState>>,
    name: Result<Path<String>, PathRejection>,
) -> Response {
    let name = name.map(|p| p.0).unwrap_or_default();
    if !valid_name(&name) {
        return admin_error(StatusCode::NOT_FOUND, "invalid issuer name");
    }
    let issuer = st.issuer_url(&name);
    axum::Json(json!({
        "issuer": issuer,
        "jwks_uri": format!("{issuer}/jwks"),
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
    }))
    .into_response()
}

/// `GET /_emulator/federation/{name}/jwks`.
pub(crate) async fn jwks(
    State(st): State<Arc<AppState>>,
    name: Result<Path<String>, PathRejection>,
) -> Response {
    let name = name.map(|p| p.0).unwrap_or_default();
    match st.issuer_key(&name) {
        Ok(key) => axum::Json(json!({"keys": [{
            "kty": "RSA", "use": "sig", "alg": "RS256", "kid": key.kid, "n": key.n, "e": key.e,
        }]}))
        .into_response(),
        Err(e) => admin_error(StatusCode::NOT_FOUND, &e.to_string()),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MintBody {
    subject: String,
    audience: Option<String>,
    lifetime_secs: Option<u64>,
    path: Option<std::path::PathBuf>,
}

/// `POST /_emulator/federation/{name}/token`.
pub(crate) async fn post_token(
    State(st): State<Arc<AppState>>,
    name: Result<Path<String>, PathRejection>,
    body: Bytes,
) -> Response {
    let name = name.map(|p| p.0).unwrap_or_default();
    let req: MintBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => return admin_error(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    if req.subject.is_empty() {
        return admin_error(StatusCode::BAD_REQUEST, "subject is empty");
    }
    let token = match mint(
        &st,
        &name,
        &req.subject,
        req.audience.as_deref(),
        req.lifetime_secs,
    ) {
        Ok(t) => t,
        Err(e) => return admin_error(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    if let Some(path) = &req.path
        && let Err(e) = crate::embedded::write_private(path, token.as_bytes())
    {
        return admin_error(StatusCode::BAD_REQUEST, &e.to_string());
    }
    axum::Json(json!({"token": token, "issuer": st.issuer_url(&name), "path": req.path}))
        .into_response()
}

/// When the request's client assertion names an issuer that one of the
/// app's federated credentials trusts, fetches that issuer's JWKS (cached).
pub(crate) async fn prefetch(st: &AppState, headers: &HeaderMap, body: &[u8]) -> Option<Fetched> {
    let is_form = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        });
    if !is_form {
        return None;
    }
    let mut client_id = None;
    let mut assertion = None;
    for (k, v) in url::form_urlencoded::parse(body) {
        match k.as_ref() {
            "client_id" if client_id.is_none() => client_id = Some(v.into_owned()),
            "client_assertion" if assertion.is_none() => assertion = Some(v.into_owned()),
            _ => {}
        }
    }
    let app = st.config.app(client_id?.trim())?;
    let assertion = assertion?;
    let jwt = Jwt::parse(&assertion)?;
    let iss = jwt.claim_str("iss")?;
    if !app
        .federated_credentials
        .iter()
        .any(|f| st.credential_issuer(&f.issuer) == iss)
    {
        return None;
    }
    // The emulator's own issuer (a managed identity's token as the
    // assertion): its keys are ours, no fetch.
    if st.config.tenants.iter().any(|t| st.issuer(&t.id) == iss) {
        let keys: Vec<Value> = st
            .runtime
            .published_keys(st.clock.now())
            .iter()
            .map(|k| json!({"kty": "RSA", "use": "sig", "kid": k.kid, "n": k.n, "e": k.e}))
            .collect();
        return Some(Ok(Value::Array(keys)));
    }
    if let Some((at, keys)) = st
        .federation
        .cache
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(iss)
        && at.elapsed() < KEY_CACHE_TTL
    {
        return Some(Ok(keys.clone()));
    }
    let fetched = fetch_keys(&st.fetch, iss).await;
    if let Ok(keys) = &fetched {
        st.federation
            .cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(iss.to_string(), (Instant::now(), keys.clone()));
    }
    Some(fetched)
}

async fn get_json(client: &reqwest::Client, url: &str) -> Result<Value, String> {
    let response = client
        .get(url)
        .send()
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    if !response.status().is_success() {
        return Err(format!("{url}: HTTP {}", response.status()));
    }
    response.json().await.map_err(|e| format!("{url}: {e}"))
}

async fn fetch_keys(client: &reqwest::Client, issuer: &str) -> Fetched {
    let metadata = get_json(
        client,
        &format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        ),
    )
    .await?;
    if metadata.get("issuer").and_then(Value::as_str) != Some(issuer) {
        return Err("the metadata's issuer differs from the token's".into());
    }
    let jwks_uri = metadata
        .get("jwks_uri")
        .and_then(Value::as_str)
        .ok_or("no jwks_uri")?;
    let jwks = get_json(client, jwks_uri).await?;
    jwks.get("keys")
        .filter(|k| k.is_array())
        .cloned()
        .ok_or_else(|| "no keys in the JWKS".into())
}

/// Validates an external issuer's token against the app's federated
/// credentials (iss, signature, time, sub, aud).
pub(crate) fn check(
    st: &AppState,
    now: OffsetDateTime,
    app: &App,
    jwt: &Jwt<'_>,
    fetched: Option<&Fetched>,
) -> Result<(), AadError> {
    let iss = jwt.claim_str("iss").unwrap_or_default();
    let sub = jwt.claim_str("sub").unwrap_or_default();
    let candidates: Vec<_> = app
        .federated_credentials
        .iter()
        .filter(|f| st.credential_issuer(&f.issuer) == iss)
        .collect();
    if candidates.is_empty() {
        return Err(AadError::fic_issuer(iss));
    }
    let keys = match fetched {
        Some(Ok(keys)) => keys,
        Some(Err(reason)) => {
            tracing::info!(%iss, %reason, "external issuer unreachable");
            return Err(AadError::external_oidc_failed());
        }
        None => return Err(AadError::external_oidc_failed()),
    };
    match jwt.header_str("alg") {
        Some("RS256") => {}
        Some(other) => return Err(AadError::unsupported_alg(other)),
        None => return Err(AadError::malformed_jwt()),
    }
    let kid = jwt.header_str("kid").unwrap_or_default();
    let key = keys
        .as_array()
        .into_iter()
        .flatten()
        .find(|k| k.get("kid").and_then(Value::as_str) == Some(kid))
        .ok_or_else(|| AadError::fic_key_not_found(&app.client_id))?;
    let verified = verify_with_jwk(key, jwt.signing_input.as_bytes(), &jwt.signature)
        .ok_or_else(|| AadError::fic_key_not_found(&app.client_id))?;
    if !verified {
        return Err(AadError::invalid_signature_external());
    }
    let exp = jwt
        .claim_date("exp")
        .ok()
        .flatten()
        .ok_or_else(AadError::malformed_jwt)?;
    let nbf = jwt.claim_date("nbf").ok().flatten();
    crate::token::check_time_range(now, exp, nbf)?;
    let by_subject: Vec<_> = candidates.iter().filter(|f| f.subject == sub).collect();
    if by_subject.is_empty() {
        if candidates
            .iter()
            .any(|f| f.subject.eq_ignore_ascii_case(sub))
        {
            return Err(AadError::fic_subject_case(sub));
        }
        return Err(AadError::fic_subject(sub));
    }
    let auds = jwt::audiences(jwt.claims.get("aud")).unwrap_or_default();
    if !by_subject
        .iter()
        .any(|f| auds.iter().any(|a| f.audiences.contains(a)))
    {
        return Err(AadError::fic_audience(&auds.join(",")));
    }
    Ok(())
}

/// Verifies an RS256 signature with a JWK's RSA public key (`n`, `e`).
fn verify_with_jwk(jwk: &Value, message: &[u8], signature: &[u8]) -> Option<bool> {
    if jwk.get("kty").and_then(Value::as_str) != Some("RSA") {
        return None;
    }
    let n = crate::crypto::b64_lenient(jwk.get("n")?.as_str()?)?;
    let e = crate::crypto::b64_lenient(jwk.get("e")?.as_str()?)?;
    let key = aws_lc_rs::signature::RsaPublicKeyComponents { n: &n, e: &e };
    Some(
        key.verify(
            &aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA256,
            message,
            signature,
        )
        .is_ok(),
    )
}
