//! The confidential client: acquires app-only tokens.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use secrecy::SecretString;
use time::OffsetDateTime;
use tracing::{Instrument, debug, info_span, warn};

use crate::authority::{Authority, AuthorityKind};
use crate::cache::{CacheKey, Lookup, TokenCache};
use crate::clock::{Clock, SystemClock};
use crate::credential::{AssertionContext, Credential, SigningAlgorithm};
use crate::discovery::{self, Metadata};
use crate::error::{Error, Result};
use crate::http::Http;
use crate::scope::Scopes;
use crate::token::AccessToken;

/// A daemon application's client: one app registration (client id and
/// credential) at one authority. Cheap to clone; clones share the cache.
///
/// ```no_run
/// # async fn run() -> Result<(), apptoken::Error> {
/// use apptoken::{Authority, CloudInstance, ClientSecret, ConfidentialClient, Credential};
/// let client = ConfidentialClient::builder()
///     .authority(Authority::entra(CloudInstance::AzurePublic, "contoso.onmicrosoft.com")?)
///     .client_id("00000000-0000-0000-0000-000000000001")
///     .credential(Credential::secret(ClientSecret::new(std::env::var("SECRET").unwrap_or_default())))
///     .build()?;
/// let token = client.acquire_token(&["https://graph.microsoft.com/.default"]).await?;
/// println!("expires on {}", token.expires_on());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct ConfidentialClient {
    inner: Arc<Inner>,
}

struct Inner {
    client_id: Arc<str>,
    authority: Authority,
    credential: Credential,
    http: Http,
    cache: Arc<TokenCache>,
    discovery: Mutex<HashMap<String, Metadata>>,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for ConfidentialClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConfidentialClient")
            .field("client_id", &self.inner.client_id)
            .field("authority", &self.inner.authority)
            .field("credential", &self.inner.credential)
            .finish_non_exhaustive()
    }
}

/// Builds a [`ConfidentialClient`]. Setters never fail; `build` reports the
/// first problem.
#[must_use]
pub struct ConfidentialClientBuilder {
    client_id: Option<String>,
    authority: Option<Result<Authority>>,
    credential: Option<Credential>,
    clock: Arc<dyn Clock>,
    timeout: Duration,
}

impl fmt::Debug for ConfidentialClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConfidentialClientBuilder")
            .field("client_id", &self.client_id)
            .field("authority", &self.authority)
            .field("credential", &self.credential)
            .finish_non_exhaustive()
    }
}

impl ConfidentialClientBuilder {
    /// The application (client) id of the app registration.
    pub fn client_id(mut self, client_id: impl Into<String>) -> Self {
        self.client_id = Some(client_id.into());
        self
    }

    /// Where tokens come from.
    pub fn authority(mut self, authority: Authority) -> Self {
        self.authority = Some(Ok(authority));
        self
    }

    /// Where tokens come from, as a URL (`https://login.microsoftonline.com/{tenant}`).
    pub fn authority_url(mut self, url: &str) -> Self {
        self.authority = Some(Authority::parse(url));
        self
    }

    /// How the app proves its identity.
    pub fn credential(mut self, credential: Credential) -> Self {
        self.credential = Some(credential);
        self
    }

    /// The clock used for token freshness and assertion times (tests move it).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Timeout of each HTTP request (default 30 seconds).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Checks the settings and builds the client.
    pub fn build(self) -> Result<ConfidentialClient> {
        let client_id = self
            .client_id
            .ok_or_else(|| Error::Configuration("no client id: set the app registration's application (client) id (AZURE_CLIENT_ID)".into()))?;
        let client_id = client_id.trim().to_string();
        if client_id.is_empty()
            || client_id
                .chars()
                .any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(Error::Configuration(format!(
                "client id '{client_id}' is not valid: it is the app registration's application id, usually a GUID"
            )));
        }
        let authority = self.authority.ok_or_else(|| {
            Error::Configuration(
                "no authority: set the tenant (AZURE_TENANT_ID) or an authority URL".into(),
            )
        })??;
        let credential = self.credential.ok_or_else(|| {
            Error::Configuration(
                "no credential: give a client secret, a certificate or a federated token file"
                    .into(),
            )
        })?;
        if self.timeout.is_zero() {
            return Err(Error::Configuration(
                "the HTTP timeout must be above zero".into(),
            ));
        }
        Ok(ConfidentialClient {
            inner: Arc::new(Inner {
                client_id: client_id.into(),
                authority,
                credential,
                http: Http::new(self.timeout)?,
                cache: Arc::new(TokenCache::new(Arc::clone(&self.clock))),
                discovery: Mutex::new(HashMap::new()),
                clock: self.clock,
            }),
        })
    }
}

/// One token request, with per-call options.
///
/// ```
/// use apptoken::TokenRequest;
/// let req = TokenRequest::new(["api://my-api/.default"])
///     .tenant("fabrikam.onmicrosoft.com")
///     .force_refresh(true);
/// # let _ = req;
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct TokenRequest {
    scopes: Vec<String>,
    tenant: Option<String>,
    force_refresh: bool,
    correlation_id: Option<uuid::Uuid>,
}

impl TokenRequest {
    /// A request for these scopes (one resource's `…/.default`).
    pub fn new<I, S>(scopes: I) -> TokenRequest
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        TokenRequest {
            scopes: scopes.into_iter().map(|s| s.as_ref().to_string()).collect(),
            tenant: None,
            force_refresh: false,
            correlation_id: None,
        }
    }

    /// Requests the token from another tenant than the client's (a
    /// multi-tenant app serving a customer's directory).
    pub fn tenant(mut self, tenant: impl Into<String>) -> Self {
        self.tenant = Some(tenant.into());
        self
    }

    /// Skips the cache and asks the identity provider for a new token.
    pub fn force_refresh(mut self, force: bool) -> Self {
        self.force_refresh = force;
        self
    }

    /// The `client-request-id` to send (a fresh one otherwise), to match the
    /// request with the server's logs.
    pub fn correlation_id(mut self, id: uuid::Uuid) -> Self {
        self.correlation_id = Some(id);
        self
    }
}

impl ConfidentialClient {
    /// Starts a builder.
    pub fn builder() -> ConfidentialClientBuilder {
        ConfidentialClientBuilder {
            client_id: None,
            authority: None,
            credential: None,
            clock: Arc::new(SystemClock),
            timeout: Duration::from_secs(30),
        }
    }

    /// The application (client) id.
    pub fn client_id(&self) -> &str {
        &self.inner.client_id
    }

    /// The authority.
    pub fn authority(&self) -> &Authority {
        &self.inner.authority
    }

    /// The credential.
    pub fn credential(&self) -> &Credential {
        &self.inner.credential
    }

    /// How many tokens the cache holds.
    pub fn cached_tokens(&self) -> usize {
        self.inner.cache.len()
    }

    /// An app-only token for `scopes`, from the cache when a fresh one is
    /// there, otherwise from the identity provider.
    pub async fn acquire_token<S: AsRef<str>>(&self, scopes: &[S]) -> Result<AccessToken> {
        self.acquire_token_with(TokenRequest::new(scopes)).await
    }

    /// An app-only token, with per-call options.
    pub async fn acquire_token_with(&self, request: TokenRequest) -> Result<AccessToken> {
        let scopes = Scopes::new(&request.scopes)?;
        let authority = match &request.tenant {
            Some(t) => self.inner.authority.with_tenant(t)?,
            None => self.inner.authority.clone(),
        };
        let key = CacheKey {
            host: authority.host().into(),
            tenant: authority.tenant().to_ascii_lowercase(),
            client_id: Arc::clone(&self.inner.client_id),
            scopes: scopes.normalized().to_string(),
        };
        let now = self.inner.clock.now();
        if !request.force_refresh {
            match self.inner.cache.lookup(&key, now) {
                Lookup::Hit(token) => {
                    debug!(
                        tenant = authority.tenant(),
                        scopes = scopes.as_param(),
                        "token served from cache"
                    );
                    return Ok(token);
                }
                Lookup::Refresh(token) => {
                    debug!(
                        tenant = authority.tenant(),
                        "refresh time reached: refreshing in the background"
                    );
                    let me = self.clone();
                    let fetch = async move { me.request_token(authority, scopes, None).await };
                    if let Err(shared) = self.inner.cache.single_flight(&key, now, false, fetch) {
                        tokio::spawn(async move {
                            if let Err(e) = shared.await {
                                warn!(error = %e, "background token refresh failed; the cached token is still valid and keeps being served");
                            }
                        });
                    }
                    return Ok(token);
                }
                Lookup::Miss => {}
            }
        }
        let me = self.clone();
        let correlation = request.correlation_id;
        let fetch = async move { me.request_token(authority, scopes, correlation).await };
        match self
            .inner
            .cache
            .single_flight(&key, now, !request.force_refresh, fetch)
        {
            Ok(token) => Ok(token),
            Err(shared) => shared.await,
        }
    }

    async fn metadata(&self, authority: &Authority, client_request_id: &str) -> Result<Metadata> {
        let url = authority.discovery_url();
        if let Some(m) = self
            .inner
            .discovery
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&url)
        {
            return Ok(m.clone());
        }
        let m = discovery::fetch(&self.inner.http, &url, client_request_id).await?;
        self.inner
            .discovery
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(url, m.clone());
        Ok(m)
    }

    /// One request to the token endpoint.
    async fn request_token(
        &self,
        authority: Authority,
        scopes: Scopes,
        correlation_id: Option<uuid::Uuid>,
    ) -> Result<AccessToken> {
        let client_request_id = correlation_id
            .unwrap_or_else(uuid::Uuid::new_v4)
            .to_string();
        let span = info_span!(
            "token_request",
            client_id = %self.inner.client_id,
            tenant = authority.tenant(),
            scope = scopes.as_param(),
            client_request_id = %client_request_id,
        );
        async move {
            let metadata = self.metadata(&authority, &client_request_id).await?;
            let ctx = AssertionContext {
                client_id: self.inner.client_id.to_string(),
                token_endpoint: metadata.token_endpoint.clone(),
            };
            let default_alg = match authority.kind() {
                AuthorityKind::Entra => SigningAlgorithm::Ps256,
                _ => SigningAlgorithm::Rs256,
            };
            let now = self.inner.clock.now();
            let auth = self
                .inner
                .credential
                .authenticate(ctx, default_alg, now)
                .await?;
            let mut form: Vec<(&'static str, String)> = vec![
                ("grant_type", "client_credentials".into()),
                ("client_id", self.inner.client_id.to_string()),
                ("scope", scopes.as_param()),
            ];
            let authorization = auth.apply(&self.inner.client_id, &mut form);
            debug!(token_endpoint = %metadata.token_endpoint, "requesting a token");
            let resp = self
                .inner
                .http
                .post_form(
                    &metadata.token_endpoint,
                    &form,
                    authorization.as_ref(),
                    &client_request_id,
                )
                .await;
            // The form holds the secret or assertion: wipe it.
            for (_, v) in form.iter_mut() {
                zeroize::Zeroize::zeroize(v);
            }
            let resp = resp?;
            if !(200..300).contains(&resp.status) {
                let e = resp.into_server_error();
                debug!(error = %e, "token request refused");
                return Err(e);
            }
            let token = parse_token_response(
                &resp.body,
                &resp.url,
                resp.status,
                now,
                authority.tenant(),
                &scopes,
            )?;
            debug!(expires_on = %token.expires_on(), "token acquired");
            Ok(token)
        }
        .instrument(span)
        .await
    }
}

/// Reads a successful token answer. Numbers may come as JSON numbers or
/// strings of digits (AD FS and Entra's v1 endpoint send strings).
pub(crate) fn parse_token_response(
    body: &[u8],
    url: &str,
    status: u16,
    now: OffsetDateTime,
    tenant: &str,
    scopes: &Scopes,
) -> Result<AccessToken> {
    let invalid = |message: &str| Error::InvalidResponse {
        url: url.to_string(),
        status,
        message: message.to_string(),
    };
    // Never quote the body: it holds the token.
    let doc: serde_json::Value =
        serde_json::from_slice(body).map_err(|_| invalid("the token answer is not JSON"))?;
    let obj = doc
        .as_object()
        .ok_or_else(|| invalid("the token answer is not a JSON object"))?;
    let token = obj
        .get("access_token")
        .and_then(|v| v.as_str())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| invalid("the token answer has no access_token"))?;
    let token_type = match obj.get("token_type") {
        None => "Bearer".to_string(),
        Some(v) => v
            .as_str()
            .filter(|s| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
            .ok_or_else(|| invalid("the token answer's token_type is not a word"))?
            .to_string(),
    };
    // "Bearer" in any case is sent back as "Bearer" (RFC 6750 header scheme).
    let token_type = if token_type.eq_ignore_ascii_case("bearer") {
        "Bearer".to_string()
    } else {
        token_type
    };
    let seconds = |name: &str| -> Result<Option<i64>> {
        match obj.get(name) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(v) => {
                let n = v
                    .as_i64()
                    .or_else(|| v.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))
                    .or_else(|| v.as_str().and_then(|s| s.trim().parse::<i64>().ok()));
                match n {
                    Some(n) if (0..=10 * 365 * 24 * 3600).contains(&n) => Ok(Some(n)),
                    _ => Err(invalid(&format!(
                        "the token answer's {name} is not a number of seconds"
                    ))),
                }
            }
        }
    };
    let expires_in =
        seconds("expires_in")?.ok_or_else(|| invalid("the token answer has no expires_in"))?;
    if expires_in == 0 {
        return Err(invalid(
            "the token answer's expires_in is 0: the token is already expired",
        ));
    }
    let ext = seconds("ext_expires_in")?;
    let refresh_in = seconds("refresh_in")?;
    let at = |s: i64| now + time::Duration::seconds(s);
    // MSAL refreshes long-lived tokens (two hours or more) at half their life.
    let refresh_on = match refresh_in {
        Some(r) if r < expires_in => Some(at(r)),
        _ if expires_in >= 2 * 3600 => Some(at(expires_in / 2)),
        _ => None,
    };
    Ok(AccessToken::new(
        SecretString::from(token.to_string()),
        token_type,
        at(expires_in),
        refresh_on,
        ext.filter(|e| *e >= expires_in).map(at),
        tenant.to_string(),
        scopes.as_slice().to_vec(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scopes() -> Scopes {
        Scopes::new(["api://x/.default"]).unwrap()
    }

    #[test]
    fn token_answers() {
        let now = OffsetDateTime::UNIX_EPOCH;
        let t = parse_token_response(
            br#"{"token_type":"Bearer","expires_in":3599,"ext_expires_in":3599,"access_token":"abc"}"#,
            "u",
            200,
            now,
            "t",
            &scopes(),
        )
        .unwrap();
        assert_eq!(t.secret(), "abc");
        assert_eq!(t.expires_on().unix_timestamp(), 3599);
        assert_eq!(t.refresh_on(), None);
        let t = parse_token_response(br#"{"expires_in":"7200","refresh_in":3600,"access_token":"abc","token_type":"bearer"}"#, "u", 200, now, "t", &scopes()).unwrap();
        assert_eq!(t.refresh_on().unwrap().unix_timestamp(), 3600);
        assert_eq!(t.token_type(), "Bearer");
        let t = parse_token_response(
            br#"{"expires_in":86400,"access_token":"abc"}"#,
            "u",
            200,
            now,
            "t",
            &scopes(),
        )
        .unwrap();
        assert_eq!(t.refresh_on().unwrap().unix_timestamp(), 43200);
    }

    #[test]
    fn bad_token_answers_never_quote_the_body() {
        let now = OffsetDateTime::UNIX_EPOCH;
        for (body, want) in [
            (&br#"not json secret-token"#[..], "not JSON"),
            (br#"["secret-token"]"#, "not a JSON object"),
            (br#"{"expires_in":3600}"#, "no access_token"),
            (
                br#"{"access_token":"","expires_in":3600}"#,
                "no access_token",
            ),
            (br#"{"access_token":"secret-token"}"#, "no expires_in"),
            (
                br#"{"access_token":"secret-token","expires_in":"soon"}"#,
                "expires_in is not",
            ),
            (
                br#"{"access_token":"secret-token","expires_in":-5}"#,
                "expires_in is not",
            ),
            (
                br#"{"access_token":"secret-token","expires_in":0}"#,
                "already expired",
            ),
            (
                br#"{"access_token":"secret-token","expires_in":60,"token_type":"a b"}"#,
                "token_type",
            ),
        ] {
            let e = parse_token_response(body, "u", 200, now, "t", &scopes())
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{e}");
            assert!(!e.contains("secret-token"), "{e}");
        }
    }
}
