//! The configuration file's serde shapes, each value with its span so
//! that a check can name the line and column of what it refuses.
//!
//! Pure: parsing touches nothing but the text. Invariants: every table
//! denies unknown fields (a misspelt key is a problem, never ignored);
//! durations are strings (`"30s"`) parsed by the checks, and the renamed
//! numeric keys (`timeout_ms`, `job_lease_secs`) are still read here, as
//! any value, only so that their check can name the new key.

use std::collections::BTreeMap;
use std::ops::Range;

use apptoken::ClientConfig;
use serde::Deserialize;
use toml::Spanned;

/// Parses the file; a syntax or shape error as (place, field, message), the
/// field taken from serde's message when it names one.
pub(super) fn parse(text: &str) -> Result<RawFile, (Option<Range<usize>>, String, String)> {
    toml::from_str(text).map_err(|e| {
        let field = e
            .message()
            .split('`')
            .nth(1)
            .filter(|_| e.message().contains("field"))
            .unwrap_or("")
            .to_string();
        (e.span(), field, e.message().trim().to_string())
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFile {
    pub(super) identity: Option<Spanned<ClientConfig>>,
    #[serde(default)]
    pub(super) apis: BTreeMap<String, Spanned<RawApi>>,
    #[serde(default)]
    pub(super) jobs: Vec<Spanned<RawJob>>,
    pub(super) daemon: Option<RawDaemon>,
    pub(super) cache: Option<Spanned<RawCache>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCache {
    pub(super) redis: Option<Spanned<String>>,
    pub(super) redis_password_file: Option<Spanned<String>>,
    pub(super) redis_ca_file: Option<Spanned<String>>,
    pub(super) key_file: Option<Spanned<String>>,
    pub(super) file: Option<Spanned<String>>,
    pub(super) timeout: Option<Spanned<String>>,
    /// Renamed to `timeout` (a duration string): refused with a problem
    /// that names the new key.
    pub(super) timeout_ms: Option<Spanned<toml::Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawApi {
    pub(super) base_url: Spanned<String>,
    pub(super) scopes: Spanned<Vec<Spanned<String>>>,
    #[serde(default)]
    pub(super) headers: BTreeMap<String, Spanned<String>>,
    pub(super) timeout: Option<Spanned<String>>,
    pub(super) max_concurrency: Option<Spanned<usize>>,
    pub(super) max_retries: Option<u32>,
    pub(super) max_retry_wait: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawJob {
    pub(super) name: Spanned<String>,
    pub(super) api: Spanned<String>,
    pub(super) method: Option<Spanned<String>>,
    pub(super) path: Spanned<String>,
    pub(super) body: Option<Spanned<toml::Value>>,
    pub(super) every: Option<Spanned<String>>,
    pub(super) cron: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) run_at_start: bool,
    pub(super) paging: Option<bool>,
    pub(super) max_items: Option<Spanned<usize>>,
    pub(super) max_pages: Option<Spanned<usize>>,
    pub(super) output: Option<Spanned<RawOutput>>,
    pub(super) tenants: Option<Vec<Spanned<String>>>,
    pub(super) tenants_file: Option<Spanned<String>>,
    pub(super) tenant_concurrency: Option<Spanned<usize>>,
    pub(super) status_file: Option<Spanned<String>>,
    pub(super) tenant_backoff: Option<Spanned<String>>,
    pub(super) tenant_backoff_max: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawOutput {
    #[serde(rename = "type")]
    pub(super) kind: Spanned<String>,
    pub(super) path: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDaemon {
    pub(super) grace_period: Option<Spanned<String>>,
    pub(super) listen: Option<Spanned<String>>,
    pub(super) log_format: Option<Spanned<String>>,
    pub(super) credential_poll: Option<Spanned<String>>,
    pub(super) certificate_warning: Option<Spanned<String>>,
    pub(super) client_secret_credential: Option<Spanned<String>>,
    pub(super) job_lease: Option<Spanned<String>>,
    /// Renamed to `job_lease` (a duration string): refused with a problem
    /// that names the new key.
    pub(super) job_lease_secs: Option<Spanned<toml::Value>>,
}
