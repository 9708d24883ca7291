//! The refresh policy — when a token is refreshed ahead of its expiry
//! (`refresh_in`, half-life for long tokens as MSAL does, else ten minutes
//! before expiry, minus a jitter so many tenants do not refresh in the same
//! second) — and the background refresher task that drains the cache's
//! schedule. Only tokens a caller used since they were stored are refreshed.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use time::OffsetDateTime;
use tracing::{debug, warn};

use super::acquire::FetchSpec;
use super::{ConfidentialClient, Inner};
use crate::cache::CacheKey;
use crate::limits;
use crate::token::AccessToken;

/// After a failed background refresh, wait this long before the next try
/// (the cached token keeps being served meanwhile).
pub(super) const REFRESH_BACKOFF: time::Duration = time::Duration::seconds(30);

impl ConfidentialClient {
    /// Starts a refresh whose result nobody waits for.
    pub(super) fn refresh_in_background(&self, key: &CacheKey) {
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
                target: None,
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

    pub(super) fn ensure_refresher(&self) {
        if self.inner.refresher_started.swap(true, Ordering::AcqRel) {
            return;
        }
        let weak = Arc::downgrade(&self.inner);
        let wake = Arc::clone(&self.inner.refresher_wake);
        tokio::spawn(refresher(weak, wake));
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

/// A random duration in `[0, max]`.
pub(super) fn jitter(max: time::Duration) -> time::Duration {
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
pub(super) fn refresh_at(token: &AccessToken, now: OffsetDateTime) -> Option<OffsetDateTime> {
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::authority::Authority;
    use crate::client::fetch::make_token;
    use crate::scope::Scopes;
    use crate::source::TokenResponse;

    fn scopes() -> Scopes {
        Scopes::new(["api://x/.default"]).unwrap()
    }

    fn authority() -> Authority {
        Authority::parse("https://login.example/t.example").unwrap()
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
