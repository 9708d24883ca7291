//! Import and export of the cached tokens in MSAL's token cache format (the
//! `AccessToken` section MSAL Python's `SerializableTokenCache` and MSAL.NET
//! read and write), so that a cache can move between apptoken and MSAL-based
//! tools. Only app-only access tokens of this client and authority host move.
//! Compiled with the `msal-cache` feature only.

use std::sync::Arc;

use time::OffsetDateTime;

use super::ConfidentialClient;
use super::refresh::refresh_at;
use crate::authority::check_tenant;
use crate::cache::CacheKey;
use crate::error::{ConfigError, ConfigErrorKind, Result};
use crate::limits;
use crate::scope::{self, Scopes};
use crate::token::AccessToken;

impl ConfidentialClient {
    /// The cached tokens in MSAL's token cache format (the `AccessToken`
    /// section that MSAL Python's `SerializableTokenCache` and MSAL.NET
    /// read), so that a cache can move to MSAL-based tools. The JSON holds
    /// the tokens in clear: protect it like a secret. Tokens requested with
    /// resource indicators or an audience (generic providers) are left out:
    /// MSAL's format has no field for them.
    ///
    /// Available with the `msal-cache` feature.
    pub fn export_msal_cache(&self) -> String {
        let now = self.inner.clock.now();
        let environment = msal_environment(&self.inner.host);
        let mut at = serde_json::Map::new();
        for (key, token, stored_at) in self.inner.cache.snapshot() {
            if token.expires_on() <= now || !key.extra().is_empty() {
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
    ///
    /// Available with the `msal-cache` feature.
    pub fn import_msal_cache(&self, json: &str) -> Result<usize> {
        let doc: serde_json::Value = serde_json::from_str(json).map_err(|e| {
            ConfigError::new(ConfigErrorKind::Invalid, "the MSAL token cache is not JSON")
                .with_source(e)
        })?;
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
}

/// MSAL's `environment`: the authority's host name (no scheme, no port),
/// as MSAL Python's `authority.instance` has it.
fn msal_environment(host: &str) -> String {
    url::Url::parse(host)
        .ok()
        .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
        .unwrap_or_else(|| host.to_ascii_lowercase())
}
