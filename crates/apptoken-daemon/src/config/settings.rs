//! The checked settings of each section, as the daemon uses them:
//! `[apis.NAME]` ([`ApiConfig`]), `[[jobs]]` ([`JobConfig`], its
//! [`OutputConfig`]), `[daemon]` ([`DaemonSettings`], [`LogFormat`]) and
//! `[cache]` ([`CacheSettings`], [`RedisUrl`]).
//!
//! Plain data, re-exported by `config` (and the crate) under their old
//! paths. Invariants: the defaults documented on each field are the ones
//! the section checks apply; a [`RedisUrl`] is never shown (it may carry a
//! password); a `PerTenant` output's file name holds [`TENANT_PLACEHOLDER`].

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use url::Url;

use crate::schedule::Schedule;

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum LogFormat {
    /// Human-readable lines (default).
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// A web API the jobs call.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ApiConfig {
    /// Its name (`[apis.NAME]`).
    pub name: String,
    /// The base URL job paths are relative to.
    pub base_url: Url,
    /// The token's scopes (each ending in `/.default`).
    pub scopes: Vec<String>,
    /// Headers sent with every request.
    pub headers: Vec<(String, String)>,
    /// Timeout of each HTTP request (default 60 s).
    pub timeout: Duration,
    /// Requests in flight to this API at most (default 4).
    pub max_concurrency: usize,
    /// Retries of a 429/503/transport failure (default 3).
    pub max_retries: u32,
    /// Longest `Retry-After` honoured; longer waits fail the run (default 5 min).
    pub max_retry_wait: Duration,
}

/// Where a job's items go.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum OutputConfig {
    /// JSON Lines on standard output.
    Stdout,
    /// JSON Lines in a file, replaced atomically when a run completes.
    /// For a job with tenants: the tenants that succeeded are written, a
    /// failed or skipped tenant's lines of the previous file are kept.
    File(PathBuf),
    /// One file per tenant: the path's file name holds `{tenant}`. Each
    /// tenant's file is replaced atomically when that tenant succeeded; a
    /// failed or skipped tenant's file stays as it was.
    PerTenant(PathBuf),
}

impl OutputConfig {
    /// The file a tenant's items go to (`PerTenant`: `{tenant}` replaced).
    pub fn path_for(&self, tenant: Option<&str>) -> Option<PathBuf> {
        match (self, tenant) {
            (OutputConfig::Stdout, _) => None,
            (OutputConfig::File(p), _) => Some(p.clone()),
            (OutputConfig::PerTenant(p), Some(t)) => {
                let name = p
                    .file_name()?
                    .to_string_lossy()
                    .replace(TENANT_PLACEHOLDER, t);
                Some(p.with_file_name(name))
            }
            (OutputConfig::PerTenant(_), None) => None,
        }
    }
}

/// The placeholder of a per-tenant output path.
pub(crate) const TENANT_PLACEHOLDER: &str = "{tenant}";

/// One scheduled job.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct JobConfig {
    /// Its name (unique).
    pub name: String,
    /// The API it calls (a key of `[apis]`).
    pub api: String,
    /// The HTTP method (default GET).
    pub method: String,
    /// The path and query, relative to the API's base URL.
    pub path: String,
    /// A JSON body to send.
    pub body: Option<serde_json::Value>,
    /// When it runs.
    pub schedule: Schedule,
    /// Run once at start, before the first tick.
    pub run_at_start: bool,
    /// Follow `@odata.nextLink` / `Link: rel="next"` (default true).
    pub paging: bool,
    /// Stop after this many items per tenant.
    pub max_items: Option<usize>,
    /// Stop after this many pages per tenant (default 1000).
    pub max_pages: usize,
    /// Where the items go.
    pub output: OutputConfig,
    /// The tenants to run for (empty: the identity's tenant only): the
    /// `tenants` list, or the lines of `tenants_file` as read at load.
    pub tenants: Vec<String>,
    /// The tenant list file (`tenants_file`), re-read on SIGHUP and when it
    /// changes.
    pub tenants_file: Option<PathBuf>,
    /// Tenants run at once at most (default 4).
    pub tenant_concurrency: usize,
    /// Where each run's per-tenant status (JSON) is written: `status_file`,
    /// by default `<output directory>/<job name>.status.json` for a job with
    /// tenants and a file output.
    pub status_file: Option<PathBuf>,
    /// The first wait after a tenant-level refusal (default 5 min); it
    /// doubles with each refusal in a row.
    pub tenant_backoff: Duration,
    /// The longest wait after tenant-level refusals (default 6 h).
    pub tenant_backoff_max: Duration,
}

/// The `[daemon]` table.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DaemonSettings {
    /// How long running jobs may take to finish after SIGTERM (default 30 s).
    pub grace_period: Duration,
    /// The health/metrics listener (none by default).
    pub listen: Option<SocketAddr>,
    /// The log format (the command line's `--log-format` wins when given).
    pub log_format: Option<LogFormat>,
    /// How often credential files are checked for changes (default 60 s).
    pub credential_poll: Duration,
    /// Warn this long before a certificate expires (default 30 days).
    pub certificate_warning: Duration,
    /// With a shared Redis store: how long a job run's lease lasts without
    /// renewal (renewed every third of it; default 60 s).
    pub job_lease: Duration,
}

impl Default for DaemonSettings {
    fn default() -> Self {
        DaemonSettings {
            grace_period: Duration::from_secs(30),
            listen: None,
            log_format: None,
            credential_poll: Duration::from_secs(60),
            certificate_warning: Duration::from_secs(30 * 86400),
            job_lease: Duration::from_secs(60),
        }
    }
}

/// A Redis URL; may carry a password, so it is never shown.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisUrl(pub(crate) String);

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RedisUrl([redacted])")
    }
}

/// The `[cache]` table: a second-level token store behind the in-memory
/// cache (Redis, shared by a fleet; or a file, on one machine).
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct CacheSettings {
    /// The shared Redis store (`redis`, or `APPTOKEN_REDIS_URL`).
    pub redis: Option<RedisUrl>,
    /// A file holding the Redis password, inserted into the URL at start.
    pub redis_password_file: Option<PathBuf>,
    /// The CA certificates (PEM) that issued a `rediss://` server's
    /// certificate, instead of the system's trust store
    /// (`redis_ca_file`, or `APPTOKEN_REDIS_CA_FILE`).
    pub redis_ca_file: Option<PathBuf>,
    /// The key that seals cached tokens (required with Redis; with a file
    /// store, default `<file>.key`, created when missing).
    pub key_file: Option<PathBuf>,
    /// The persistent single-machine store (`file`).
    pub file: Option<PathBuf>,
    /// How long one store operation may take (default 250 ms).
    pub timeout: Duration,
}

impl CacheSettings {
    /// Whether a store is configured.
    pub fn is_configured(&self) -> bool {
        self.redis.is_some() || self.file.is_some()
    }
}
