//! The body of one shared request (run by the task single flight spawns):
//! the source with retries, then the token stored — and the refresher told —
//! or, on failure, the throttle remembered and a failed refresh rescheduled,
//! all before the in-flight slot is freed.

use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;

use super::refresh::{REFRESH_BACKOFF, jitter, refresh_at};
use super::{ConfidentialClient, Inner};
use crate::authority::Authority;
use crate::cache::CacheKey;
use crate::error::Result;
use crate::limits;
use crate::retry;
use crate::scope::Scopes;
use crate::source::{SourceRequest, TokenResponse};
use crate::token::AccessToken;

/// How long a 429 without `Retry-After` keeps a key throttled.
const DEFAULT_THROTTLE: Duration = Duration::from_secs(60);

impl Inner {
    /// One token from the source, with retries.
    pub(super) async fn obtain(&self, request: SourceRequest<'_>) -> Result<AccessToken> {
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

    /// The body of one shared request: the source, with retries; the result
    /// stored (or the throttle remembered) before the caller frees the
    /// in-flight slot with [`crate::flight::Slot::finish`].
    pub(super) async fn fetch(
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
        let result = inner.obtain_for_fetch(&key, request, used).await;
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

pub(super) fn make_token(
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
