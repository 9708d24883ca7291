//! Builds a [`ConfidentialClient`]: setters that never fail, and `build`,
//! which checks every setting and reports the first problem.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use super::request::merge_claims;
use super::{ConfidentialClient, Inner};
use crate::authority::Authority;
use crate::cache::Cache;
use crate::clock::{Clock, SystemClock};
use crate::credential::Credential;
use crate::error::{ConfigError, ConfigErrorKind, Error, Result};
use crate::grant::ClientCredentialsSource;
use crate::http::{Http, HttpOptions};
use crate::managed_identity::{ManagedIdentity, ManagedIdentitySource};
use crate::retry::RetryPolicy;
use crate::source::TokenSource;
#[cfg(feature = "shared-store")]
use crate::store::{Shared, StoreKey, TokenStore};

/// A generic provider's token lifetime when it sends no `expires_in`.
pub(crate) const DEFAULT_GENERIC_LIFETIME: Duration = Duration::from_secs(300);

/// Builds a [`ConfidentialClient`]. Setters never fail; `build` reports the
/// first problem.
#[must_use]
pub struct ConfidentialClientBuilder {
    client_id: Option<String>,
    authority: Option<Result<Authority>>,
    credential: Option<Credential>,
    source: Option<Arc<dyn TokenSource>>,
    managed_identity: Option<ManagedIdentity>,
    /// The chain reached IMDS: probe it (quickly or not), these steps
    /// passed over.
    probe: Option<(String, bool)>,
    clock: Arc<dyn Clock>,
    timeout: Duration,
    /// A generic provider's token lifetime when its answer has no `expires_in`.
    default_lifetime: Duration,
    retry: RetryPolicy,
    max_cached_tokens: Option<usize>,
    serve_extended: bool,
    http: HttpOptions,
    capabilities: Vec<String>,
    region: Option<String>,
    #[cfg(feature = "shared-store")]
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
    /// HTTP (then no credential is needed, and giving one too is an error at
    /// `build`). The cache, single flight, retries and throttling still apply.
    pub fn token_source(mut self, source: Arc<dyn TokenSource>) -> Self {
        self.source = Some(source);
        self
    }

    /// Gets tokens from the host's managed identity instead of an app
    /// registration: no client id, authority or credential is needed (giving
    /// one of them too is an error at `build`). The cache, single flight,
    /// proactive refresh (half-way through a managed identity's 24-hour
    /// tokens) and outage fallback apply as for an app; retries follow
    /// IMDS's guidance rather than [`RetryPolicy`] (410 every 10 s for up to
    /// 70 s; 404, 408, 429 and 5xx after 1, 2 and 4 s; 400, 401 and 403
    /// never), and IMDS's limits (20 requests a second, 5 at once) hold for
    /// the whole process.
    ///
    /// ```
    /// # fn demo() -> Result<(), apptoken::Error> {
    /// use apptoken::{ConfidentialClient, ManagedIdentity, ManagedIdentityId};
    /// let client = ConfidentialClient::builder()
    ///     .managed_identity(ManagedIdentity::from_env(ManagedIdentityId::SystemAssigned)?)
    ///     .build()?;
    /// # let _ = client; Ok(()) }
    /// ```
    pub fn managed_identity(mut self, identity: ManagedIdentity) -> Self {
        self.managed_identity = Some(identity);
        self
    }

    /// Makes the managed identity's first request a probe (the chain's: see
    /// `chain.rs`); `skipped` says which steps came before it, for its error.
    pub(crate) fn probe_managed_identity(mut self, skipped: String, quick: bool) -> Self {
        self.probe = Some((skipped, quick));
        self
    }

    /// The clock used for token freshness, assertion times and waits (tests
    /// move it: `ManualClock`, with the `test-util` feature).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Timeout of each HTTP request (default 30 seconds).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How long a generic OpenID provider's token is taken to live when
    /// its answer has no `expires_in` (RFC 6749 §5.1 only recommends it).
    /// Default: 5 minutes, short enough that a provider's real lifetime is
    /// rarely outlived; clamped to [`crate::MIN_LIFETIME`]..=[`crate::MAX_LIFETIME`].
    /// Entra ID and AD FS always send it; an answer of theirs without it is
    /// an error.
    pub fn default_token_lifetime(mut self, lifetime: Duration) -> Self {
        self.default_lifetime = lifetime;
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
    /// [`crate::AccessToken::is_extended_lifetime`]. Off by default.
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
    ///
    /// Available with the `shared-store` feature.
    #[cfg(feature = "shared-store")]
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
    pub fn build(mut self) -> Result<ConfidentialClient> {
        if let Some(mi) = self.managed_identity.take() {
            return self.build_managed_identity(mi);
        }
        let client_id = self.client_id.take().ok_or_else(|| {
            Error::from(
                ConfigError::new(
                    ConfigErrorKind::Missing,
                    "no client id: set the app registration's application (client) id (AZURE_CLIENT_ID)",
                )
                .with_setting("client_id"),
            )
        })?;
        let client_id = client_id.trim().to_string();
        if client_id.is_empty()
            || client_id
                .chars()
                .any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(ConfigError::new(
                ConfigErrorKind::Invalid,
                format!(
                    "client id '{client_id}' is not valid: it is the app registration's application id, usually a GUID"
                ),
            )
            .with_setting("client_id")
            .into());
        }
        let authority = self.authority.take().ok_or_else(|| {
            Error::from(
                ConfigError::new(
                    ConfigErrorKind::Missing,
                    "no authority: set the tenant (AZURE_TENANT_ID) or an authority URL",
                )
                .with_setting("authority"),
            )
        })??;
        self.check_common()?;
        if let Some(r) = &self.region
            && (r.is_empty() || !r.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
        {
            return Err(ConfigError::new(
                ConfigErrorKind::Invalid,
                format!("'{r}' is not an Azure region name (such as westus2)"),
            )
            .with_setting("region")
            .into());
        }
        if self.source.is_some() && self.credential.is_some() {
            return Err(crate::error::config(
                ConfigErrorKind::Conflict,
                "both a credential and a token source were given: a client uses one or the other \
                 (a token source replaces the client credentials grant, so the credential would never be used)",
            ));
        }
        let cell = match (&self.source, &self.credential) {
            (None, Some(c)) => Some(Arc::new(std::sync::RwLock::new(c.clone()))),
            _ => None,
        };
        let source: Arc<dyn TokenSource> = match (self.source.take(), &cell) {
            (Some(s), _) => s,
            (None, Some(c)) => Arc::new(ClientCredentialsSource {
                http: Http::new(self.timeout, &self.http)?,
                region: self.region.clone(),
                credential: Arc::clone(c),
                discovery: Default::default(),
                clock: Arc::clone(&self.clock),
                default_lifetime: self.default_lifetime,
            }),
            (None, None) => {
                return Err(crate::error::config(
                    ConfigErrorKind::Missing,
                    "no credential: give a client secret, a certificate or a federated token file",
                ));
            }
        };
        let retry = self.retry.clone();
        self.finish(authority, client_id, cell, source, retry)
    }

    /// The checks every client makes, app or managed identity.
    fn check_common(&self) -> Result<()> {
        if self.timeout.is_zero() {
            return Err(ConfigError::new(
                ConfigErrorKind::Invalid,
                "the HTTP timeout must be above zero",
            )
            .with_setting("timeout")
            .into());
        }
        if self.max_cached_tokens == Some(0) {
            return Err(ConfigError::new(
                ConfigErrorKind::Invalid,
                "max_cached_tokens must be at least 1",
            )
            .with_setting("max_cached_tokens")
            .into());
        }
        Ok(())
    }

    /// A managed identity's client: the endpoint is the authority, the
    /// identity the key's client id (never an app's: see
    /// `ManagedIdentity::key_client_id`), the source's own retries.
    fn build_managed_identity(self, mi: ManagedIdentity) -> Result<ConfidentialClient> {
        let conflict = |what: &str| -> Result<ConfidentialClient> {
            Err(crate::error::config(
                ConfigErrorKind::Conflict,
                format!(
                    "a managed identity was given with {what}: a managed identity's client has no app \
                     registration (name a user-assigned identity with ManagedIdentityId::ClientId)"
                ),
            ))
        };
        if self.credential.is_some() {
            return conflict("a credential");
        }
        if self.source.is_some() {
            return conflict("a token source");
        }
        if self.client_id.is_some() {
            return conflict("a client id");
        }
        if self.authority.is_some() {
            return conflict("an authority");
        }
        if self.region.is_some() {
            return conflict("an Azure region");
        }
        self.check_common()?;
        let http = Http::new(
            self.timeout,
            &HttpOptions {
                direct: true,
                ..self.http.clone()
            },
        )?;
        let authority = Authority::managed_identity(mi.endpoint());
        let client_id = mi.key_client_id();
        let mut source = ManagedIdentitySource::new(mi, http, Arc::clone(&self.clock));
        if let Some((skipped, quick)) = &self.probe {
            let timeout = if *quick {
                crate::managed_identity::PROBE_TIMEOUT.min(self.timeout)
            } else {
                self.timeout
            };
            let probe_http = Http::new(
                timeout,
                &HttpOptions {
                    direct: true,
                    ..self.http.clone()
                },
            )?;
            source = source.probing(probe_http, skipped.clone());
        }
        let source: Arc<dyn TokenSource> = Arc::new(source);
        self.finish(authority, client_id, None, source, RetryPolicy::none())
    }

    fn finish(
        self,
        authority: Authority,
        client_id: String,
        credential: Option<Arc<std::sync::RwLock<Credential>>>,
        source: Arc<dyn TokenSource>,
        retry: RetryPolicy,
    ) -> Result<ConfidentialClient> {
        Ok(ConfidentialClient {
            inner: Arc::new(Inner {
                host: authority.host().into(),
                client_id: client_id.into(),
                authority,
                credential,
                source,
                cache: Cache::new(self.max_cached_tokens),
                clock: self.clock,
                retry,
                serve_extended: self.serve_extended,
                capability_claims: merge_claims(&self.capabilities, None)?,
                capabilities: self.capabilities,
                #[cfg(feature = "shared-store")]
                shared: self.shared.map(|(store, key)| Shared::new(store, key)),
                refresher_started: AtomicBool::new(false),
                refresher_wake: Arc::new(tokio::sync::Notify::new()),
            }),
        })
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
            managed_identity: None,
            probe: None,
            clock: Arc::new(SystemClock),
            timeout: Duration::from_secs(30),
            default_lifetime: DEFAULT_GENERIC_LIFETIME,
            retry: RetryPolicy::default(),
            max_cached_tokens: None,
            serve_extended: false,
            http: HttpOptions::default(),
            capabilities: Vec::new(),
            region: None,
            #[cfg(feature = "shared-store")]
            shared: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credential::ClientSecret;
    use crate::source::{SourceFuture, SourceRequest, TokenResponse};

    #[derive(Debug)]
    struct Fixed;

    impl TokenSource for Fixed {
        fn request_token<'a>(&'a self, _: SourceRequest<'a>) -> SourceFuture<'a> {
            Box::pin(async { Ok(TokenResponse::new("t", Duration::from_secs(3600))) })
        }
    }

    fn builder() -> ConfidentialClientBuilder {
        ConfidentialClient::builder()
            .client_id("c")
            .authority_url("https://login.example/t.example")
    }

    #[test]
    fn a_credential_and_a_token_source_together_are_refused() {
        let secret = || Credential::secret(ClientSecret::new("s"));
        let e = builder()
            .credential(secret())
            .token_source(Arc::new(Fixed))
            .build()
            .unwrap_err();
        assert!(
            matches!(&e, Error::Configuration(c) if c.kind() == ConfigErrorKind::Conflict),
            "{e}"
        );
        // Either alone builds.
        builder().credential(secret()).build().unwrap();
        builder().token_source(Arc::new(Fixed)).build().unwrap();
        // Neither names what is missing.
        let e = builder().build().unwrap_err();
        assert!(e.to_string().contains("no credential"), "{e}");
    }
}
