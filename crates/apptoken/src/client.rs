//! The confidential client: acquires app-only tokens through the cache.
//!
//! Why one file (for now): builder, façade, refresher and shared-store
//! orchestration still share `Inner` directly. Issue #18 splits it (builder,
//! refresher and refresh policy, shared-store orchestration, MSAL cache
//! format); single flight already has its own module (`flight.rs`) and the
//! numeric rules theirs (`limits.rs`).

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use time::OffsetDateTime;
use tracing::{debug, debug_span, warn};

use crate::authority::{Authority, check_tenant};
use crate::cache::{Cache, CacheKey, KeyRef, Lookup};
use crate::clock::{Clock, SystemClock};
use crate::credential::Credential;
use crate::error::{Error, Result};
use crate::flight::SharedFetch;
use crate::http::{Http, HttpOptions};
use crate::limits;
use crate::retry::{self, RetryPolicy};
use crate::scope::{self, Scopes};
use crate::source::{ClientCredentialsSource, SourceRequest, TokenResponse, TokenSource};
use crate::store::{Shared, StoreKey, TokenStore};
use crate::token::AccessToken;

/// After a failed background refresh, wait this long before the next try
/// (the cached token keeps being served meanwhile).
const REFRESH_BACKOFF: time::Duration = time::Duration::seconds(30);

/// How long a 429 without `Retry-After` keeps a key throttled.
const DEFAULT_THROTTLE: Duration = Duration::from_secs(60);

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
    host: Arc<str>,
    authority: Authority,
    credential: Option<Arc<std::sync::RwLock<Credential>>>,
    source: Arc<dyn TokenSource>,
    cache: Cache,
    clock: Arc<dyn Clock>,
    retry: RetryPolicy,
    serve_extended: bool,
    /// `claims` sent with every request when client capabilities are declared.
    capability_claims: Option<String>,
    capabilities: Vec<String>,
    shared: Option<Shared>,
    refresher_started: AtomicBool,
    refresher_wake: Arc<tokio::sync::Notify>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Let the refresher task notice that the client is gone.
        self.refresher_wake.notify_one();
    }
}

impl fmt::Debug for ConfidentialClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConfidentialClient")
            .field("client_id", &self.inner.client_id)
            .field("authority", &self.inner.authority)
            .field("credential", &self.credential())
            .field("cache", &self.inner.cache)
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
    source: Option<Arc<dyn TokenSource>>,
    clock: Arc<dyn Clock>,
    timeout: Duration,
    retry: RetryPolicy,
    max_cached_tokens: Option<usize>,
    serve_extended: bool,
    http: HttpOptions,
    capabilities: Vec<String>,
    region: Option<String>,
    shared: Option<(Arc<dyn TokenStore>, StoreKey)>,
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

    /// Another source of tokens in place of the client credentials grant over
    /// HTTP (then no credential is needed). The cache, single flight,
    /// retries and throttling still apply.
    pub fn token_source(mut self, source: Arc<dyn TokenSource>) -> Self {
        self.source = Some(source);
        self
    }

    /// The clock used for token freshness, assertion times and waits (tests
    /// move it: see [`crate::ManualClock`]).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Timeout of each HTTP request (default 30 seconds).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How failed token requests are retried (default: [`RetryPolicy::default`]).
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// Bounds the number of cached tokens: beyond it the oldest are dropped
    /// (for daemons that touch an unbounded set of tenants). Default: no
    /// bound; expired tokens are dropped either way.
    pub fn max_cached_tokens(mut self, max: usize) -> Self {
        self.max_cached_tokens = Some(max);
        self
    }

    /// During an outage of the identity provider (5xx, timeouts, connection
    /// errors), keep serving an expired token until its `ext_expires_in`
    /// (Entra's extended lifetime). Such tokens report
    /// [`AccessToken::is_extended_lifetime`]. Off by default.
    pub fn serve_extended_lifetime(mut self, enabled: bool) -> Self {
        self.serve_extended = enabled;
        self
    }

    /// Declares client capabilities (`cp1`: the client handles claims
    /// challenges, so Entra may issue long-lived tokens that resources revoke
    /// through continuous access evaluation). Sent as `xms_cc` in the
    /// `claims` parameter of every token request.
    pub fn client_capabilities<I, S>(mut self, capabilities: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.capabilities = capabilities.into_iter().map(Into::into).collect();
        self
    }

    /// Sends token requests to this Azure region's endpoint
    /// (`{region}.login.microsoft.com`, as `AZURE_REGIONAL_AUTHORITY_NAME`
    /// does for Azure Identity), falling back to the global host when the
    /// regional one is unreachable or answers 5xx.
    pub fn azure_region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }

    /// Puts a shared store (Redis: `apptoken-redis`) behind the in-memory
    /// cache: a miss reads it before asking the identity provider, a new
    /// token is written to it, and a lease makes one instance of a fleet ask
    /// for each key while the others wait. Values are sealed with `key`
    /// (AES-256-GCM) and keys are keyed hashes. When the store fails, the
    /// client works without it and says so once in the logs.
    pub fn shared_store(mut self, store: Arc<dyn TokenStore>, key: StoreKey) -> Self {
        self.shared = Some((store, key));
        self
    }

    /// Trusts the certificates of this PEM (a private CA, the emulator's
    /// `ca.pem`) beside the system's roots.
    pub fn add_root_certificate_pem(mut self, pem: impl AsRef<[u8]>) -> Self {
        self.http.extra_roots_pem.push(pem.as_ref().to_vec());
        self
    }

    /// Sends requests for `host` to `addr` instead of resolving it (tests
    /// point `login.microsoftonline.com` at an emulator this way, without
    /// touching system files). The TLS name stays `host`.
    pub fn resolve(mut self, host: &str, addr: std::net::SocketAddr) -> Self {
        self.http.resolve.push((host.to_string(), addr));
        self
    }

    /// Checks the settings and builds the client.
    pub fn build(self) -> Result<ConfidentialClient> {
        let client_id = self.client_id.ok_or_else(|| {
            Error::Configuration(
                "no client id: set the app registration's application (client) id (AZURE_CLIENT_ID)".into(),
            )
        })?;
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
        if self.timeout.is_zero() {
            return Err(Error::Configuration(
                "the HTTP timeout must be above zero".into(),
            ));
        }
        if let Some(r) = &self.region
            && (r.is_empty() || !r.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
        {
            return Err(Error::Configuration(format!(
                "'{r}' is not an Azure region name (such as westus2)"
            )));
        }
        if self.max_cached_tokens == Some(0) {
            return Err(Error::Configuration(
                "max_cached_tokens must be at least 1".into(),
            ));
        }
        let cell = match (&self.source, &self.credential) {
            (None, Some(c)) => Some(Arc::new(std::sync::RwLock::new(c.clone()))),
            _ => None,
        };
        let source: Arc<dyn TokenSource> = match (self.source, &cell) {
            (Some(s), _) => s,
            (None, Some(c)) => Arc::new(ClientCredentialsSource {
                http: Http::new(self.timeout, &self.http)?,
                region: self.region.clone(),
                credential: Arc::clone(c),
                discovery: Default::default(),
                clock: Arc::clone(&self.clock),
            }),
            (None, None) => {
                return Err(Error::Configuration(
                    "no credential: give a client secret, a certificate or a federated token file"
                        .into(),
                ));
            }
        };
        Ok(ConfidentialClient {
            inner: Arc::new(Inner {
                host: authority.host().into(),
                client_id: client_id.into(),
                authority,
                credential: cell,
                source,
                cache: Cache::new(self.max_cached_tokens),
                clock: self.clock,
                retry: self.retry,
                serve_extended: self.serve_extended,
                capability_claims: merge_claims(&self.capabilities, None)?,
                capabilities: self.capabilities,
                shared: self.shared.map(|(store, key)| Shared::new(store, key)),
                refresher_started: AtomicBool::new(false),
                refresher_wake: Arc::new(tokio::sync::Notify::new()),
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
    claims: Option<String>,
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
            claims: None,
        }
    }

    /// Answers a claims challenge: asks for a fresh token carrying these
    /// claims (the JSON a resource sent in `WWW-Authenticate: … claims="…"`,
    /// decoded — see [`crate::claims_challenge`]). Implies `force_refresh`.
    pub fn claims(mut self, claims: impl Into<String>) -> Self {
        self.claims = Some(claims.into());
        self
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
            source: None,
            clock: Arc::new(SystemClock),
            timeout: Duration::from_secs(30),
            retry: RetryPolicy::default(),
            max_cached_tokens: None,
            serve_extended: false,
            http: HttpOptions::default(),
            capabilities: Vec::new(),
            region: None,
            shared: None,
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

    /// The credential (none when a custom token source is used).
    pub fn credential(&self) -> Option<Credential> {
        self.inner
            .credential
            .as_ref()
            .map(|c| c.read().unwrap_or_else(|p| p.into_inner()).clone())
    }

    /// Replaces the credential (a rotated secret or certificate): the next
    /// token request uses it; cached tokens stay. An error for clients with
    /// a custom token source.
    pub fn set_credential(&self, credential: Credential) -> Result<()> {
        let Some(cell) = &self.inner.credential else {
            return Err(Error::Configuration(
                "this client uses a custom token source: it has no credential to replace".into(),
            ));
        };
        *cell.write().unwrap_or_else(|p| p.into_inner()) = credential;
        Ok(())
    }

    /// Whether the shared store (if any) answered its last operation.
    pub fn shared_store_is_up(&self) -> Option<bool> {
        self.inner.shared.as_ref().map(Shared::is_up)
    }

    /// The cached tokens in MSAL's token cache format (the `AccessToken`
    /// section that MSAL Python's `SerializableTokenCache` and MSAL.NET
    /// read), so that a cache can move to MSAL-based tools. The JSON holds
    /// the tokens in clear: protect it like a secret.
    pub fn export_msal_cache(&self) -> String {
        let now = self.inner.clock.now();
        let environment = msal_environment(&self.inner.host);
        let mut at = serde_json::Map::new();
        for (key, token, stored_at) in self.inner.cache.snapshot() {
            if token.expires_on() <= now {
                continue;
            }
            let target = key.scope().to_string();
            let entry_key = format!(
                "-{environment}-accesstoken-{}-{}-{target}",
                key.client_id,
                key.tenant()
            )
            .to_lowercase();
            let mut entry = serde_json::json!({
                "credential_type": "AccessToken",
                "secret": token.secret(),
                "home_account_id": null,
                "environment": environment,
                "client_id": &*key.client_id,
                "target": target,
                "realm": key.tenant(),
                "token_type": token.token_type(),
                "cached_at": stored_at.unix_timestamp().to_string(),
                "expires_on": token.expires_on().unix_timestamp().to_string(),
                "extended_expires_on": token.ext_expires_on().unwrap_or(token.expires_on()).unix_timestamp().to_string(),
            });
            if let Some(r) = token.refresh_on() {
                entry["refresh_on"] = serde_json::json!(r.unix_timestamp().to_string());
            }
            at.insert(entry_key, entry);
        }
        serde_json::json!({
            "AccessToken": at,
            "Account": {},
            "IdToken": {},
            "RefreshToken": {},
            "AppMetadata": {},
        })
        .to_string()
    }

    /// Imports the app-only access tokens of an MSAL token cache (JSON as
    /// MSAL Python's `SerializableTokenCache.serialize()` or MSAL.NET write
    /// it) that belong to this client and authority host and are still
    /// fresh. Returns how many were imported.
    pub fn import_msal_cache(&self, json: &str) -> Result<usize> {
        let doc: serde_json::Value = serde_json::from_str(json)
            .map_err(|e| Error::Configuration(format!("the MSAL token cache is not JSON: {e}")))?;
        let Some(ats) = doc.get("AccessToken").and_then(|v| v.as_object()) else {
            return Ok(0);
        };
        let inner = &self.inner;
        let environment = msal_environment(&inner.host);
        let now = inner.clock.now();
        let secs = |v: &serde_json::Value| {
            v.as_str()
                .and_then(|s| s.parse::<i64>().ok())
                .or_else(|| v.as_i64())
                .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
        };
        let mut imported = 0;
        for entry in ats.values() {
            let field = |k: &str| entry.get(k).and_then(|v| v.as_str()).unwrap_or("");
            if !field("client_id").eq_ignore_ascii_case(&inner.client_id)
                || !field("environment").eq_ignore_ascii_case(&environment)
                || field("secret").is_empty()
            {
                continue;
            }
            let target = [field("target")];
            let (Some(expires_on), Ok(scope)) = (
                entry.get("expires_on").and_then(secs),
                scope::single_resource(&target),
            ) else {
                continue;
            };
            if limits::sub(expires_on, crate::cache::EXPIRY_MARGIN) <= now
                || check_tenant(field("realm")).is_err()
            {
                continue;
            }
            let authority = match inner.authority.with_tenant(field("realm")) {
                Ok(a) => a,
                Err(_) => continue,
            };
            let scopes = Scopes::new([scope])?;
            let token = AccessToken::new(
                secrecy::SecretString::from(field("secret").to_string()),
                if field("token_type").is_empty() {
                    "Bearer".into()
                } else {
                    field("token_type").to_string()
                },
                expires_on,
                entry.get("refresh_on").and_then(secs),
                entry
                    .get("extended_expires_on")
                    .and_then(secs)
                    .filter(|e| *e >= expires_on),
                field("realm").to_string(),
                scopes.as_slice().to_vec(),
            );
            let key = CacheKey::new(
                Arc::clone(&inner.host),
                Arc::clone(&inner.client_id),
                field("realm"),
                scope,
            );
            let at = refresh_at(&token, now);
            inner
                .cache
                .store(key, token, at, false, now, authority, scopes);
            imported += 1;
        }
        if imported > 0 {
            self.ensure_refresher();
        }
        Ok(imported)
    }

    /// How many tokens the cache holds.
    pub fn cached_tokens(&self) -> usize {
        self.inner.cache.len()
    }

    /// An app-only token for `scopes`, from the cache when a fresh one is
    /// there, otherwise from the identity provider. A cache hit takes no
    /// lock and allocates nothing (but once per thread and hot token, when
    /// the thread makes its own copy of it).
    pub async fn acquire_token<S: AsRef<str>>(&self, scopes: &[S]) -> Result<AccessToken> {
        if let Some(token) = self.cached(scopes, None) {
            return Ok(token);
        }
        // The miss path's future is boxed, so that the future a caller moves
        // around (and polls once on a hit) stays small.
        Box::pin(self.acquire(scopes, None, false, None, None)).await
    }

    /// An app-only token from another tenant than the client's (a
    /// multi-tenant app serving a customer's directory), without building a
    /// [`TokenRequest`]: a cache hit allocates nothing, as with
    /// [`ConfidentialClient::acquire_token`].
    pub async fn acquire_token_for_tenant<S: AsRef<str>>(
        &self,
        scopes: &[S],
        tenant: &str,
    ) -> Result<AccessToken> {
        if let Some(token) = self.cached(scopes, Some(tenant)) {
            return Ok(token);
        }
        Box::pin(self.acquire(scopes, Some(tenant), false, None, None)).await
    }

    /// An app-only token, with per-call options.
    pub async fn acquire_token_with(&self, request: TokenRequest) -> Result<AccessToken> {
        if !request.force_refresh
            && request.claims.is_none()
            && let Some(token) = self.cached(&request.scopes, request.tenant.as_deref())
        {
            return Ok(token);
        }
        Box::pin(self.acquire(
            &request.scopes,
            request.tenant.as_deref(),
            request.force_refresh || request.claims.is_some(),
            request.correlation_id,
            request.claims.as_deref(),
        ))
        .await
    }

    /// The hot path: a fresh cached token for the strings as given, if
    /// there is one. Only validated keys are ever stored, so a hit needs no
    /// validation: a scope string that is not exactly one stored scope
    /// (several scopes, spaces, `openid` beside it) cannot match one and is
    /// left to the full path, which normalises it and looks up again.
    #[inline]
    fn cached<S: AsRef<str>>(&self, scopes: &[S], tenant: Option<&str>) -> Option<AccessToken> {
        let inner = &self.inner;
        if let [one] = scopes
            && let one = one.as_ref()
        {
            let key = KeyRef {
                host: &inner.host,
                tenant: tenant.unwrap_or(inner.authority.tenant()),
                client_id: &inner.client_id,
                scope: one,
            };
            if let Lookup::Hit { token, refresh } =
                inner
                    .cache
                    .lookup(&key, inner.clock.now_unix_ms(), REFRESH_BACKOFF)
            {
                return Some(self.hit(&key, token, refresh));
            }
        }
        None
    }

    /// Accounts for a cache hit: a trace-level `acquire_token` span (a
    /// cached interest check when trace is off), the hit counter, and the
    /// background refresh this caller claimed, if any.
    fn hit(&self, key: &KeyRef<'_>, token: AccessToken, refresh: bool) -> AccessToken {
        let _span = tracing::trace_span!(
            "acquire_token",
            tenant = key.tenant,
            scope = key.scope,
            cache = "hit"
        )
        .entered();
        metrics::counter!("apptoken_cache_hits_total").increment(1);
        if refresh {
            let inner = &self.inner;
            self.refresh_in_background(&key.to_owned_key(&inner.host, &inner.client_id));
        }
        token
    }

    async fn acquire<S: AsRef<str>>(
        &self,
        scopes: &[S],
        tenant: Option<&str>,
        force: bool,
        correlation: Option<uuid::Uuid>,
        claims: Option<&str>,
    ) -> Result<AccessToken> {
        let inner = &self.inner;
        let scope = scope::single_resource(scopes)?;
        let tenant = match tenant {
            Some(t) => {
                check_tenant(t)?;
                t.trim()
            }
            None => inner.authority.tenant(),
        };
        let key = KeyRef {
            host: &inner.host,
            tenant,
            client_id: &inner.client_id,
            scope,
        };
        let now_ms = inner.clock.now_unix_ms();
        let stale = if force {
            None
        } else {
            match inner.cache.lookup(&key, now_ms, REFRESH_BACKOFF) {
                Lookup::Hit { token, refresh } => return Ok(self.hit(&key, token, refresh)),
                Lookup::Stale(t) => Some(t),
                Lookup::Miss => None,
            }
        };
        let now = inner.clock.now();
        let span = debug_span!("acquire_token", tenant, scope, force, cache = "miss");
        let _enter = span.enter();
        metrics::counter!("apptoken_cache_misses_total").increment(1);
        let owned = key.to_owned_key(&inner.host, &inner.client_id);
        // Throttled: answer at once, without asking the server.
        if let Some(e) = inner.cache.throttled(&owned, now) {
            metrics::counter!("apptoken_throttled_calls_total").increment(1);
            if let Some(t) = stale.filter(|t| t.expires_on() > now) {
                return Ok(t);
            }
            return Err(e);
        }
        let claims = match claims {
            Some(c) => merge_claims(&inner.capabilities, Some(c))?,
            None => inner.capability_claims.clone(),
        };
        let spec = FetchSpec {
            tenant: Some(tenant),
            scope: Some(scope),
            correlation,
            claims,
            used: true,
        };
        let fetch = match self.single_flight(owned, spec, !force)? {
            Ok(token) => return Ok(token),
            Err(shared) => shared,
        };
        drop(_enter);
        match fetch.await {
            Ok(t) => Ok(t),
            Err(e) => Ok(self.fallback(stale, &e, now).ok_or(e)?),
        }
    }

    /// A cached token to serve when a request failed: one that has not
    /// expired, or (opt-in) one within its extended lifetime during an outage.
    fn fallback(
        &self,
        stale: Option<AccessToken>,
        e: &Error,
        now: OffsetDateTime,
    ) -> Option<AccessToken> {
        let t = stale?;
        if t.expires_on() > now {
            warn!(error = %e, "the token request failed; serving the cached token, which is still valid");
            metrics::counter!("apptoken_stale_tokens_served_total").increment(1);
            return Some(t);
        }
        let outage = e.is_retryable() && !e.is_throttled() || matches!(e.status(), Some(500..=599));
        if self.inner.serve_extended && outage && t.ext_expires_on().is_some_and(|x| x > now) {
            warn!(error = %e, "the identity provider is unavailable; serving an expired token within its extended lifetime");
            metrics::counter!("apptoken_stale_tokens_served_total").increment(1);
            return Some(t.extended());
        }
        None
    }

    /// Joins the request in flight for `key`, or starts one. `Ok(Ok(token))`
    /// when the cache got a fresh token meanwhile.
    #[allow(clippy::type_complexity)]
    fn single_flight(
        &self,
        key: CacheKey,
        spec: FetchSpec<'_>,
        recheck: bool,
    ) -> Result<std::result::Result<AccessToken, SharedFetch>> {
        let FetchSpec {
            tenant,
            scope,
            correlation,
            claims,
            used,
        } = spec;
        let inner = &self.inner;
        let inflight = inner.cache.inflight.lock();
        if let Some(f) = inflight.get(&key) {
            metrics::counter!("apptoken_cache_coalesced_total").increment(1);
            return Ok(Err(f));
        }
        if recheck {
            // A request may have completed between our lookup and now.
            if let Lookup::Hit { token, .. } =
                inner
                    .cache
                    .lookup(&key.as_ref(), inner.clock.now_unix_ms(), REFRESH_BACKOFF)
            {
                return Ok(Ok(token));
            }
        }
        // What the request needs, as the caller wrote it (or from the entry, for refreshes).
        let (authority, scopes) = match (tenant, scope) {
            (Some(t), Some(s)) => {
                let authority = if t == inner.authority.tenant() {
                    inner.authority.clone()
                } else {
                    inner.authority.with_tenant(t)?
                };
                (authority, Scopes::new([s])?)
            }
            _ => match inner.cache.entry(&key) {
                Some(e) => (e.authority.clone(), e.scopes.clone()),
                None => return Err(Error::Configuration("nothing cached to refresh".into())),
            },
        };
        // The slot is freed by its drop guard whatever happens to the task
        // (flight.rs); the task is spawned after the map's lock is released.
        let (slot, shared) = inflight.reserve(key.clone());
        let me = Arc::clone(&self.inner);
        tokio::spawn(async move {
            let result = Inner::fetch(me, key, authority, scopes, correlation, claims, used).await;
            slot.finish(result);
        });
        Ok(Err(shared))
    }

    /// Starts a refresh whose result nobody waits for.
    fn refresh_in_background(&self, key: &CacheKey) {
        metrics::counter!("apptoken_token_refreshes_total").increment(1);
        debug!(
            tenant = key.tenant(),
            "refreshing a token ahead of its expiry"
        );
        let claims = self.inner.capability_claims.clone();
        if let Ok(Err(shared)) = self.single_flight(
            key.clone(),
            FetchSpec {
                tenant: None,
                scope: None,
                correlation: None,
                claims,
                used: false,
            },
            false,
        ) {
            tokio::spawn(async move {
                if let Err(e) = shared.await {
                    warn!(error = %e, "background token refresh failed; the cached token is still valid and keeps being served");
                }
            });
        }
    }

    fn ensure_refresher(&self) {
        if self.inner.refresher_started.swap(true, Ordering::AcqRel) {
            return;
        }
        let weak = Arc::downgrade(&self.inner);
        let wake = Arc::clone(&self.inner.refresher_wake);
        tokio::spawn(refresher(weak, wake));
    }
}

impl Inner {
    /// One token from the source, with retries.
    async fn obtain(&self, request: SourceRequest<'_>) -> Result<AccessToken> {
        let result = retry::run(
            &self.retry,
            &*self.clock,
            || self.source.request_token(request),
            || metrics::counter!("apptoken_token_retries_total").increment(1),
        )
        .await;
        match result {
            Ok(resp) => {
                metrics::counter!("apptoken_token_requests_total", "outcome" => "success")
                    .increment(1);
                Ok(make_token(
                    resp,
                    self.clock.now(),
                    request.authority,
                    request.scopes,
                ))
            }
            Err(e) => {
                metrics::counter!("apptoken_token_requests_total", "outcome" => "error")
                    .increment(1);
                Err(e)
            }
        }
    }

    /// Through the shared store: its token if it has a fresh one; else the
    /// lease, so that one instance of the fleet asks the identity provider
    /// and the others wait for its token; the source directly when the store
    /// is unavailable. `Ok((token, true))` when the token came from the store.
    async fn obtain_shared(
        &self,
        shared: &Shared,
        key: &CacheKey,
        request: SourceRequest<'_>,
        caller: bool,
    ) -> Result<(AccessToken, bool)> {
        let tenant = request.authority.tenant();
        let scopes = request.scopes.as_slice();
        // A background refresh wants a token newer than the one it has.
        let newer_than = if caller {
            None
        } else {
            self.cache.entry(key).map(|e| e.token.expires_on())
        };
        if let Some(t) = shared
            .read(key, self.clock.now(), newer_than, tenant, scopes)
            .await
        {
            return Ok((t, true));
        }
        let mut waited = Duration::ZERO;
        loop {
            match shared.lease(key).await {
                Some(true) => {
                    // The previous holder may have written the token and released
                    // the lease between our read and our lease: read once more.
                    if let Some(t) = shared
                        .read(key, self.clock.now(), newer_than, tenant, scopes)
                        .await
                    {
                        shared.release(key).await;
                        return Ok((t, true));
                    }
                    let r = self.obtain(request).await;
                    if let Ok(t) = &r {
                        shared.write(key, t, self.clock.now()).await;
                    }
                    shared.release(key).await;
                    return r.map(|t| (t, false));
                }
                Some(false)
                    if waited
                        < shared
                            .lease_ttl
                            .saturating_add(shared.poll.saturating_mul(4)) =>
                {
                    // Another instance is asking: wait for its token.
                    self.clock.sleep(shared.poll).await;
                    waited = waited.saturating_add(shared.poll);
                    if let Some(t) = shared
                        .read(key, self.clock.now(), newer_than, tenant, scopes)
                        .await
                    {
                        return Ok((t, true));
                    }
                }
                _ => return self.obtain(request).await.map(|t| (t, false)),
            }
        }
    }

    /// The body of one shared request: the source, with retries; the result
    /// stored (or the throttle remembered) before the caller frees the
    /// in-flight slot with [`crate::flight::Slot::finish`].
    async fn fetch(
        inner: Arc<Inner>,
        key: CacheKey,
        authority: Authority,
        scopes: Scopes,
        correlation: Option<uuid::Uuid>,
        claims: Option<String>,
        used: bool,
    ) -> Result<AccessToken> {
        let correlation = correlation.unwrap_or_else(uuid::Uuid::new_v4).to_string();
        let request = SourceRequest {
            authority: &authority,
            client_id: &inner.client_id,
            scopes: &scopes,
            correlation_id: &correlation,
            claims: claims.as_deref(),
        };
        let result = match &inner.shared {
            // Claims requests need a token from the identity provider itself.
            Some(shared) if claims.is_none() || claims == inner.capability_claims => {
                inner.obtain_shared(shared, &key, request, used).await
            }
            _ => inner.obtain(request).await.map(|r| (r, false)),
        };
        let result = result.map(|(token, _from_store)| token);
        let now = inner.clock.now();
        match result {
            Ok(token) => {
                let refresh_at = refresh_at(&token, now);
                let earlier = inner.cache.store(
                    key.clone(),
                    token.clone(),
                    refresh_at,
                    used,
                    now,
                    authority,
                    scopes,
                );
                if refresh_at.is_some() {
                    ConfidentialClient {
                        inner: Arc::clone(&inner),
                    }
                    .ensure_refresher();
                    if earlier {
                        inner.refresher_wake.notify_one();
                    }
                }
                Ok(token)
            }
            Err(e) => {
                if e.is_throttled() || e.retry_after().is_some() {
                    let wait = e.retry_after().unwrap_or(DEFAULT_THROTTLE);
                    inner
                        .cache
                        .throttle(key.clone(), limits::later(now, wait), e.clone(), now);
                }
                // A failed refresh of a cached token: try again later.
                if let Some(entry) = inner.cache.entry(&key)
                    && entry.token.expires_on() > now
                {
                    let retry_at = limits::add(
                        limits::add(now, REFRESH_BACKOFF),
                        jitter(time::Duration::seconds(10)),
                    );
                    if inner.cache.schedule_at(&key, entry.generation, retry_at) {
                        inner.refresher_wake.notify_one();
                    }
                }
                Err(e)
            }
        }
    }
}

/// Drains the refresh schedule: refreshes tokens that were used since they
/// were stored, at their (jittered) refresh time. Ends when the client is
/// dropped.
async fn refresher(weak: Weak<Inner>, wake: Arc<tokio::sync::Notify>) {
    /// If this task ends while the client lives (a panic, or its runtime
    /// dropped it), the next stored token starts a new refresher.
    struct Restart(Weak<Inner>);
    impl Drop for Restart {
        fn drop(&mut self) {
            if let Some(inner) = self.0.upgrade() {
                inner.refresher_started.store(false, Ordering::Release);
            }
        }
    }
    let _restart = Restart(weak.clone());
    loop {
        let sleep = {
            let Some(inner) = weak.upgrade() else { return };
            let client = ConfidentialClient { inner };
            let now = client.inner.clock.now();
            for (key, generation) in client.inner.cache.take_due(now) {
                let Some(entry) = client.inner.cache.entry_if(&key, generation) else {
                    continue;
                };
                if entry.token.expires_on() <= now || !entry.used {
                    continue;
                }
                if client
                    .inner
                    .cache
                    .claim_refresh(&key, generation, now, REFRESH_BACKOFF)
                {
                    client.refresh_in_background(&key);
                }
            }
            let wait = match client.inner.cache.next_due() {
                Some(at) => limits::until(now, at),
                None => Duration::from_secs(3600),
            };
            client.inner.clock.sleep(wait.max(Duration::from_millis(1)))
        };
        tokio::select! {
            _ = sleep => {}
            _ = wake.notified() => {}
        }
    }
}

/// MSAL's `environment`: the authority's host name (no scheme, no port),
/// as MSAL Python's `authority.instance` has it.
fn msal_environment(host: &str) -> String {
    url::Url::parse(host)
        .ok()
        .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
        .unwrap_or_else(|| host.to_ascii_lowercase())
}

/// What a new shared request asks for. Without tenant and scope, the cached
/// entry's are used (a refresh).
struct FetchSpec<'a> {
    tenant: Option<&'a str>,
    scope: Option<&'a str>,
    correlation: Option<uuid::Uuid>,
    claims: Option<String>,
    /// Whether a caller asked for it (unused tokens are not refreshed).
    used: bool,
}

/// The `claims` parameter: the request's claims (a JSON object) with the
/// client capabilities added as `access_token.xms_cc`.
fn merge_claims(capabilities: &[String], request: Option<&str>) -> Result<Option<String>> {
    if capabilities.is_empty() && request.is_none() {
        return Ok(None);
    }
    let mut doc: serde_json::Value = match request {
        Some(c) => serde_json::from_str(c)
            .map_err(|e| Error::Configuration(format!("the claims are not JSON: {e}")))?,
        None => serde_json::json!({}),
    };
    let Some(obj) = doc.as_object_mut() else {
        return Err(Error::Configuration(
            "the claims are not a JSON object".into(),
        ));
    };
    if !capabilities.is_empty() {
        let at = obj
            .entry("access_token")
            .or_insert_with(|| serde_json::json!({}));
        if let Some(at) = at.as_object_mut() {
            at.insert(
                "xms_cc".into(),
                serde_json::json!({ "values": capabilities }),
            );
        }
    }
    Ok(Some(doc.to_string()))
}

/// A random duration in `[0, max]`.
fn jitter(max: time::Duration) -> time::Duration {
    let n = max.whole_milliseconds().max(0) as u64;
    time::Duration::milliseconds(if n == 0 {
        0
    } else {
        rand::random_range(0..=n) as i64
    })
}

/// When to refresh a token ahead of expiry: at `refresh_on` (`refresh_in`, or
/// half-life for tokens of two hours or more, as MSAL does), otherwise ten
/// minutes before it expires (five before the cache stops serving it) —
/// minus a random jitter of up to 5% of its lifetime (at most five minutes,
/// and at most a tenth of the time left until that refresh time, so a short
/// `refresh_in` is not swamped by the jitter), so that many tenants' tokens
/// do not refresh in the same second.
fn refresh_at(token: &AccessToken, now: OffsetDateTime) -> Option<OffsetDateTime> {
    let lifetime = token.expires_on() - now;
    let base = match token.refresh_on() {
        Some(r) => r,
        None if lifetime > time::Duration::minutes(15) => {
            limits::sub(token.expires_on(), time::Duration::minutes(10))
        }
        None => return None,
    };
    let lead = (base - now).max(time::Duration::ZERO);
    let spread: time::Duration = (lifetime / 20_i32)
        .min(time::Duration::minutes(5))
        .min(lead / 10_i32);
    Some(limits::sub(base, jitter(spread)).max(now))
}

fn make_token(
    resp: TokenResponse,
    now: OffsetDateTime,
    authority: &Authority,
    scopes: &Scopes,
) -> AccessToken {
    // Whatever a source says, the times stay within sane bounds (see limits.rs).
    let secs = |d: Duration| limits::to_time(d.min(limits::MAX_LIFETIME));
    let expires_in = limits::to_time(limits::clamp_lifetime(resp.expires_in));
    let refresh_on = match resp.refresh_in.map(secs) {
        Some(r) if r < expires_in => Some(limits::add(now, r)),
        _ if expires_in >= time::Duration::hours(2) => Some(limits::add(now, expires_in / 2)),
        _ => None,
    };
    AccessToken::new(
        resp.access_token,
        resp.token_type,
        limits::add(now, expires_in),
        refresh_on,
        resp.ext_expires_in
            .map(secs)
            .filter(|e| *e >= expires_in)
            .map(|e| limits::add(now, e)),
        authority.tenant().to_string(),
        scopes.as_slice().to_vec(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scopes() -> Scopes {
        Scopes::new(["api://x/.default"]).unwrap()
    }

    fn authority() -> Authority {
        Authority::parse("https://login.example/t.example").unwrap()
    }

    /// Throttles every request for a second (an ISV's tenants, one by one).
    #[derive(Debug)]
    struct Throttling;

    impl TokenSource for Throttling {
        fn request_token<'a>(&'a self, _: SourceRequest<'a>) -> crate::source::SourceFuture<'a> {
            let mut e = crate::ServerError::new(429, "throttled");
            e.retry_after = Some(Duration::from_secs(1));
            Box::pin(async move { Err(Error::IdentityProvider(Box::new(e))) })
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn state_stays_bounded_over_a_hundred_thousand_throttled_tenants() {
        let clock = Arc::new(crate::ManualClock::starting_now());
        let client = ConfidentialClient::builder()
            .authority(authority())
            .client_id("c")
            .token_source(Arc::new(Throttling))
            .clock(clock.clone())
            .retry_policy(RetryPolicy::none())
            .build()
            .unwrap();
        let mut most = 0;
        for i in 0..100_000 {
            let e = client
                .acquire_token_for_tenant(&["api://x/.default"], &format!("tenant-{i}.example"))
                .await
                .unwrap_err();
            assert!(e.is_throttled(), "{e:?}");
            clock.advance(Duration::from_millis(100));
            most = most.max(client.inner.cache.throttled_len());
        }
        // About ten tenants are throttled at any time: the memory holds at
        // most twice that, or the sweep's floor.
        assert!(most <= 2 * 64 + 1, "the throttle memory held {most} keys");
        assert_eq!(client.inner.cache.inflight.len(), 0);
        assert_eq!(client.cached_tokens(), 0);
    }

    #[test]
    fn refresh_times() {
        let now = OffsetDateTime::UNIX_EPOCH;
        let t = make_token(
            TokenResponse::new("a", Duration::from_secs(3599)),
            now,
            &authority(),
            &scopes(),
        );
        assert_eq!(t.refresh_on(), None);
        let at = refresh_at(&t, now).unwrap();
        let ten_before = t.expires_on() - time::Duration::minutes(10);
        assert!(
            at <= ten_before && at >= ten_before - time::Duration::minutes(3),
            "{at}"
        );

        let t = make_token(
            TokenResponse::new("a", Duration::from_secs(86400)),
            now,
            &authority(),
            &scopes(),
        );
        assert_eq!(t.refresh_on().unwrap().unix_timestamp(), 43200);
        let t = make_token(
            TokenResponse::new("a", Duration::from_secs(3600))
                .with_refresh_in(Duration::from_secs(1800)),
            now,
            &authority(),
            &scopes(),
        );
        let at = refresh_at(&t, now).unwrap();
        assert!(
            at <= now + time::Duration::minutes(30) && at >= now + time::Duration::minutes(27),
            "{at}"
        );
        let short = make_token(
            TokenResponse::new("a", Duration::from_secs(600)),
            now,
            &authority(),
            &scopes(),
        );
        assert_eq!(refresh_at(&short, now), None);
        // A short refresh_in on a long token: the jitter stays within a
        // tenth of it (it once moved the refresh up to five minutes early,
        // so the token was refreshed at once after every store).
        let t = make_token(
            TokenResponse::new("a", Duration::from_secs(86400))
                .with_refresh_in(Duration::from_secs(4)),
            now,
            &authority(),
            &scopes(),
        );
        for _ in 0..100 {
            let at = refresh_at(&t, now).unwrap();
            assert!(
                at <= now + time::Duration::seconds(4)
                    && at >= now + time::Duration::milliseconds(3600),
                "{at}"
            );
        }
    }

    #[test]
    fn claims_are_merged_with_capabilities() {
        assert_eq!(merge_claims(&[], None).unwrap(), None);
        let caps = vec!["cp1".to_string()];
        let c: serde_json::Value =
            serde_json::from_str(&merge_claims(&caps, None).unwrap().unwrap()).unwrap();
        assert_eq!(
            c,
            serde_json::json!({"access_token":{"xms_cc":{"values":["cp1"]}}})
        );
        let challenge = r#"{"access_token":{"nbf":{"essential":true,"value":"1700000000"}}}"#;
        let c: serde_json::Value =
            serde_json::from_str(&merge_claims(&caps, Some(challenge)).unwrap().unwrap()).unwrap();
        assert_eq!(c["access_token"]["nbf"]["value"], "1700000000");
        assert_eq!(c["access_token"]["xms_cc"]["values"][0], "cp1");
        assert!(merge_claims(&[], Some("not json")).is_err());
        assert!(merge_claims(&[], Some("[1]")).is_err());
    }

    #[test]
    fn jitter_spreads_refreshes() {
        let now = OffsetDateTime::UNIX_EPOCH;
        let t = make_token(
            TokenResponse::new("a", Duration::from_secs(7200)),
            now,
            &authority(),
            &scopes(),
        );
        let times: std::collections::HashSet<i64> = (0..200)
            .map(|_| refresh_at(&t, now).unwrap().unix_timestamp())
            .collect();
        assert!(
            times.len() > 50,
            "10,000 tenants must not refresh in the same second: {}",
            times.len()
        );
    }
}
