//! The fleet's shared store around a fetch: its token if it has a fresh one;
//! else the lease, so that one instance asks the identity provider while the
//! others wait for its token; the source directly when the store is down.
//! Compiled with the `shared-store` feature only.

use std::time::Duration;

use super::Inner;
use crate::cache::CacheKey;
use crate::error::Result;
use crate::source::SourceRequest;
use crate::store::Shared;
use crate::token::AccessToken;

impl Inner {
    /// Through the shared store: its token if it has a fresh one; else the
    /// lease, so that one instance of the fleet asks the identity provider
    /// and the others wait for its token; the source directly when the store
    /// is unavailable. `Ok((token, true))` when the token came from the store.
    pub(super) async fn obtain_shared(
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
}
