//! The confidential client: acquires app-only tokens through the cache.
//!
//! One concept per file:
//! - `mod.rs` (this file): the client handle and what every part shares
//!   (`Inner`), its accessors, and whether a fetch goes through the shared
//!   store (the one call into `shared.rs`, a plain source call without the
//!   `shared-store` feature);
//! - `builder.rs`: the builder and the checks `build` makes;
//! - `request.rs`: a token request's per-call options and the `claims`
//!   parameter they produce;
//! - `acquire.rs`: the caller's path — cache hit, miss, single flight,
//!   fallback to a cached token when a request fails;
//! - `fetch.rs`: the body of one shared request — the source with retries,
//!   the result stored or the throttle remembered;
//! - `shared.rs`: the fleet's shared store (read, lease, wait) around a fetch
//!   (`shared-store` feature);
//! - `refresh.rs`: the refresh policy (when a token is refreshed ahead of its
//!   expiry, with jitter) and the background refresher task;
//! - `msal_format.rs`: import and export in MSAL's token cache format
//!   (`msal-cache` feature).
//!
//! Single flight itself lives in `crate::flight`, the numeric rules in
//! `crate::limits`, the grant in `crate::grant`.

mod acquire;
mod builder;
mod fetch;
#[cfg(feature = "msal-cache")]
mod msal_format;
mod refresh;
mod request;
#[cfg(feature = "shared-store")]
mod shared;

pub use builder::ConfidentialClientBuilder;
pub use request::TokenRequest;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use crate::authority::Authority;
use crate::cache::Cache;
use crate::cache::CacheKey;
use crate::clock::Clock;
use crate::credential::Credential;
use crate::error::Result;
use crate::retry::RetryPolicy;
use crate::source::{SourceRequest, TokenSource};
#[cfg(feature = "shared-store")]
use crate::store::Shared;
use crate::token::AccessToken;

/// A daemon application's client: one app registration (client id and
/// credential) at one authority. Cheap to clone; clones share the cache.
///
/// Against a real tenant the authority is
/// `Authority::entra(CloudInstance::AzurePublic, "contoso.onmicrosoft.com")?`;
/// here (a doc test that runs) the embedded emulator stands in for Entra ID:
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let state = tempfile::tempdir()?;
/// # let config = apptoken_emulator::Config::embedded(state.path())?;
/// # let emulator = apptoken_emulator::Emulator::start(config, "127.0.0.1:0".parse()?).await?;
/// # let info = emulator.info();
/// # let (authority_url, client_id) = (format!("{}/{}", info.authority_host, info.tenant_id), &info.client_id);
/// # let (secret, scope) = (info.client_secret.clone().unwrap_or_default(), &info.sample_scope);
/// use apptoken::{Authority, ClientSecret, ConfidentialClient, Credential};
/// let client = ConfidentialClient::builder()
///     .authority(Authority::parse(&authority_url)?)
///     .client_id(client_id)
///     .credential(Credential::secret(ClientSecret::new(secret)))
///     .build()?;
/// let token = client.acquire_token(&[scope]).await?;
/// assert!(token.authorization_header().starts_with("Bearer "));
/// // The second call is a cache hit: no request, no allocation.
/// let again = client.acquire_token(&[scope]).await?;
/// assert_eq!(again.expires_on(), token.expires_on());
/// # emulator.shutdown().await;
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
    #[cfg(feature = "shared-store")]
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

impl Inner {
    /// The token of one shared request: through the fleet's shared store
    /// when the client has one (`shared-store` feature) and the request may
    /// use it — a claims request needs a token from the identity provider
    /// itself — else from the source, with retries.
    #[cfg_attr(not(feature = "shared-store"), allow(unused_variables))]
    async fn obtain_for_fetch(
        &self,
        key: &CacheKey,
        request: SourceRequest<'_>,
        used: bool,
    ) -> Result<AccessToken> {
        #[cfg(feature = "shared-store")]
        if let Some(shared) = &self.shared
            && (request.claims.is_none() || request.claims == self.capability_claims.as_deref())
        {
            return self
                .obtain_shared(shared, key, request, used)
                .await
                .map(|(token, _from_store)| token);
        }
        self.obtain(request).await
    }
}

impl ConfidentialClient {
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
            return Err(crate::error::config(
                crate::error::ConfigErrorKind::Unsupported,
                "this client uses a custom token source: it has no credential to replace",
            ));
        };
        *cell.write().unwrap_or_else(|p| p.into_inner()) = credential;
        Ok(())
    }

    /// Whether the shared store (if any) answered its last operation.
    ///
    /// Available with the `shared-store` feature.
    #[cfg(feature = "shared-store")]
    pub fn shared_store_is_up(&self) -> Option<bool> {
        self.inner.shared.as_ref().map(Shared::is_up)
    }

    /// How many tokens the cache holds.
    pub fn cached_tokens(&self) -> usize {
        self.inner.cache.len()
    }
}
