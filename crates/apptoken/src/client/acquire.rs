//! The caller's path: a lock-free, allocation-free cache hit; on a miss the
//! throttle check, single flight (one request per key, however many
//! callers), and the fallback to a cached token when the request fails.
//!
//! Invariant: only validated keys are ever stored, so the hot path needs no
//! validation — a string that is not exactly one stored scope cannot match
//! and falls to the full path, which normalises it and looks up again.

use std::sync::Arc;

use time::OffsetDateTime;
use tracing::{debug_span, warn};

use super::refresh::REFRESH_BACKOFF;
use super::request::merge_claims;
use super::{ConfidentialClient, Inner, TokenRequest};
use crate::authority::{AuthorityKind, check_tenant};
use crate::cache::{CacheKey, KeyRef, Lookup};
use crate::error::{Error, Result};
use crate::flight::SharedFetch;
use crate::scope::{self, Scopes};
use crate::token::AccessToken;

impl ConfidentialClient {
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
        Box::pin(self.acquire(scopes, None, Options::default())).await
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
        Box::pin(self.acquire(scopes, Some(tenant), Options::default())).await
    }

    /// An app-only token, with per-call options.
    pub async fn acquire_token_with(&self, request: TokenRequest) -> Result<AccessToken> {
        let correlation = request.correlation()?;
        if !request.force_refresh
            && request.claims.is_none()
            && request.resources.is_empty()
            && request.audience.is_none()
            && let Some(token) = self.cached(&request.scopes, request.tenant.as_deref())
        {
            return Ok(token);
        }
        let options = Options {
            force: request.force_refresh || request.claims.is_some(),
            correlation,
            claims: request.claims.as_deref(),
            resources: &request.resources,
            audience: request.audience.as_deref(),
        };
        Box::pin(self.acquire(&request.scopes, request.tenant.as_deref(), options)).await
    }

    /// The hot path: a fresh cached token for the strings as given, if
    /// there is one. Only validated keys are ever stored, so a hit needs no
    /// validation: a scope string that is not exactly one stored scope
    /// (several scopes in another order, spaces, `openid` beside it under
    /// Entra's rule) cannot match one and is left to the full path, which
    /// normalises it and looks up again. Requests with resource indicators
    /// or an audience take the full path.
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
                extra: "",
                exact: inner.authority.kind() == AuthorityKind::Oidc,
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
        options: Options<'_>,
    ) -> Result<AccessToken> {
        let Options {
            force,
            correlation,
            claims,
            resources,
            audience,
        } = options;
        let inner = &self.inner;
        let kind = inner.authority.kind();
        // Entra's one resource is validated without allocating; other
        // targets are normalised first (sorted scopes, resources, audience).
        let built = if kind != AuthorityKind::Oidc && resources.is_empty() && audience.is_none() {
            None
        } else {
            Some(Scopes::for_request(kind, scopes, resources, audience)?)
        };
        let (scope, extra, exact) = match &built {
            None => (scope::single_resource(scopes)?, "", false),
            Some(t) => (t.normalized(), t.extra(), t.exact()),
        };
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
            extra,
            exact,
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
        let target = match &built {
            Some(t) => t.clone(),
            None => Scopes::new([scope])?,
        };
        let spec = FetchSpec {
            tenant: Some(tenant),
            target: Some(target),
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
    pub(super) fn single_flight(
        &self,
        key: CacheKey,
        spec: FetchSpec<'_>,
        recheck: bool,
    ) -> Result<std::result::Result<AccessToken, SharedFetch>> {
        let FetchSpec {
            tenant,
            target,
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
        let (authority, scopes) = match (tenant, target) {
            (Some(t), Some(s)) => {
                let authority = if t == inner.authority.tenant() {
                    inner.authority.clone()
                } else {
                    inner.authority.with_tenant(t)?
                };
                (authority, s)
            }
            _ => match inner.cache.entry(&key) {
                Some(e) => (e.authority.clone(), e.scopes.clone()),
                None => {
                    return Err(crate::error::config(
                        crate::error::ConfigErrorKind::Unsupported,
                        "nothing cached to refresh",
                    ));
                }
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
}

/// The per-call options of [`ConfidentialClient::acquire`].
#[derive(Default, Clone, Copy)]
struct Options<'a> {
    force: bool,
    correlation: Option<uuid::Uuid>,
    claims: Option<&'a str>,
    resources: &'a [String],
    audience: Option<&'a str>,
}

/// What a new shared request asks for. Without tenant and target, the
/// cached entry's are used (a refresh).
pub(super) struct FetchSpec<'a> {
    pub(super) tenant: Option<&'a str>,
    pub(super) target: Option<Scopes>,
    pub(super) correlation: Option<uuid::Uuid>,
    pub(super) claims: Option<String>,
    /// Whether a caller asked for it (unused tokens are not refreshed).
    pub(super) used: bool,
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::authority::Authority;
    use crate::retry::RetryPolicy;
    use crate::source::{SourceRequest, TokenSource};

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
}
