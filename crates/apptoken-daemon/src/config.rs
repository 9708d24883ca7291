//! The daemon's configuration file: parsed, then checked as a whole, so
//! that `apptoken config check` and a starting daemon report every problem
//! at once, each with its file, line and field.
//!
//! Why one file (for now): the checks share one located-problem collector
//! and read the raw spanned TOML side by side, so a field's parse and its
//! check sit together. Splitting it per table (`identity`, `apis`, `jobs`,
//! `cache`) is part of issue #18's layout step, which moves behaviour-free.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use apptoken::ClientConfig;
use serde::Deserialize;
use toml::Spanned;
use url::Url;

use crate::duration::parse_duration;
use crate::error::Error;
use crate::schedule::Schedule;

/// One problem found in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Problem {
    /// The configuration file.
    pub file: PathBuf,
    /// 1-based line and column, when the problem has a place in the file.
    pub location: Option<(usize, usize)>,
    /// The field, as a TOML path (`jobs[1].cron`, `apis.graph.scopes`).
    pub field: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some((line, col)) = self.location {
            write!(f, ":{line}:{col}")?;
        }
        if self.field.is_empty() {
            write!(f, ": {}", self.message)
        } else {
            write!(f, ": {}: {}", self.field, self.message)
        }
    }
}

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

/// A checked daemon configuration.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DaemonConfig {
    /// The file it was read from.
    pub path: PathBuf,
    /// `[identity]`, completed by the `AZURE_*` environment.
    pub identity: ClientConfig,
    /// `[apis.NAME]`.
    pub apis: BTreeMap<String, ApiConfig>,
    /// `[[jobs]]`.
    pub jobs: Vec<JobConfig>,
    /// `[daemon]`.
    pub daemon: DaemonSettings,
    /// `[cache]`.
    pub cache: CacheSettings,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    identity: Option<Spanned<ClientConfig>>,
    #[serde(default)]
    apis: BTreeMap<String, Spanned<RawApi>>,
    #[serde(default)]
    jobs: Vec<Spanned<RawJob>>,
    daemon: Option<RawDaemon>,
    cache: Option<Spanned<RawCache>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawCache {
    redis: Option<Spanned<String>>,
    redis_password_file: Option<Spanned<String>>,
    redis_ca_file: Option<Spanned<String>>,
    key_file: Option<Spanned<String>>,
    file: Option<Spanned<String>>,
    timeout: Option<Spanned<String>>,
    /// Renamed to `timeout` (a duration string): refused with a problem
    /// that names the new key.
    timeout_ms: Option<Spanned<toml::Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApi {
    base_url: Spanned<String>,
    scopes: Spanned<Vec<Spanned<String>>>,
    #[serde(default)]
    headers: BTreeMap<String, Spanned<String>>,
    timeout: Option<Spanned<String>>,
    max_concurrency: Option<Spanned<usize>>,
    max_retries: Option<u32>,
    max_retry_wait: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJob {
    name: Spanned<String>,
    api: Spanned<String>,
    method: Option<Spanned<String>>,
    path: Spanned<String>,
    body: Option<Spanned<toml::Value>>,
    every: Option<Spanned<String>>,
    cron: Option<Spanned<String>>,
    #[serde(default)]
    run_at_start: bool,
    paging: Option<bool>,
    max_items: Option<Spanned<usize>>,
    max_pages: Option<Spanned<usize>>,
    output: Option<Spanned<RawOutput>>,
    tenants: Option<Vec<Spanned<String>>>,
    tenants_file: Option<Spanned<String>>,
    tenant_concurrency: Option<Spanned<usize>>,
    status_file: Option<Spanned<String>>,
    tenant_backoff: Option<Spanned<String>>,
    tenant_backoff_max: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOutput {
    #[serde(rename = "type")]
    kind: Spanned<String>,
    path: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawDaemon {
    grace_period: Option<Spanned<String>>,
    listen: Option<Spanned<String>>,
    log_format: Option<Spanned<String>>,
    credential_poll: Option<Spanned<String>>,
    certificate_warning: Option<Spanned<String>>,
    client_secret_credential: Option<Spanned<String>>,
    job_lease: Option<Spanned<String>>,
    /// Renamed to `job_lease` (a duration string): refused with a problem
    /// that names the new key.
    job_lease_secs: Option<Spanned<toml::Value>>,
}

/// Collects problems with their places.
struct Checker<'a> {
    file: &'a Path,
    text: &'a str,
    problems: Vec<Problem>,
}

impl Checker<'_> {
    fn location(&self, span: Range<usize>) -> (usize, usize) {
        let start = span.start.min(self.text.len());
        let before = &self.text[..start];
        let line = before.matches('\n').count() + 1;
        let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
        (line, col)
    }

    fn at(
        &mut self,
        span: Option<Range<usize>>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) {
        let location = span.map(|s| self.location(s));
        self.problems.push(Problem {
            file: self.file.to_path_buf(),
            location,
            field: field.into(),
            message: message.into(),
        });
    }
}

/// `<job name>.status.json`, the name made safe for a file name.
fn default_status_name(job: &str) -> String {
    let safe: String = job
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{}.status.json", safe.trim_start_matches('.'))
}

/// Expands `${VAR}` (e.g. `${CREDENTIALS_DIRECTORY}`) from the environment.
fn expand(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let Some(end) = after.find('}') else {
            return Err(format!("'{text}' has an unclosed '${{'"));
        };
        let name = &after[..end];
        match env(name).filter(|v| !v.is_empty()) {
            Some(v) => out.push_str(&v),
            None => {
                return Err(format!(
                    "'{text}' uses ${{{name}}}, which is not set (systemd sets CREDENTIALS_DIRECTORY for LoadCredential=)"
                ));
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

impl DaemonConfig {
    /// Reads and checks a configuration file: syntax, required fields,
    /// values, references between tables, credential files (present,
    /// readable, safe permissions, certificate and key matching), output
    /// directories. `env` looks up environment variables (`AZURE_*` fill
    /// what `[identity]` leaves out; `${VAR}` in paths).
    pub fn load(path: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<DaemonConfig, Error> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::Config(vec![Problem {
                file: path.to_path_buf(),
                location: None,
                field: String::new(),
                message: format!("cannot read the configuration file: {e}"),
            }])
        })?;
        DaemonConfig::from_toml_str(&text, path, env)
    }

    /// Checks configuration text as if read from `path` (relative paths
    /// resolve against its directory).
    pub fn from_toml_str(
        text: &str,
        path: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<DaemonConfig, Error> {
        let mut ck = Checker {
            file: path,
            text,
            problems: Vec::new(),
        };
        let raw: RawFile = match toml::from_str(text) {
            Ok(r) => r,
            Err(e) => {
                let field = e
                    .message()
                    .split('`')
                    .nth(1)
                    .filter(|_| e.message().contains("field"))
                    .unwrap_or("")
                    .to_string();
                ck.at(e.span(), field, e.message().trim().to_string());
                return Err(Error::Config(ck.problems));
            }
        };
        let base = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        let resolve = |p: &str| -> PathBuf {
            let p = PathBuf::from(p);
            if p.is_relative() { base.join(p) } else { p }
        };

        // [daemon]
        let rd = raw.daemon.unwrap_or_default();
        let mut daemon = DaemonSettings::default();
        let dur =
            |ck: &mut Checker<'_>, v: &Option<Spanned<String>>, field: &str, min: Duration| {
                let v = v.as_ref()?;
                match parse_duration(v.get_ref()) {
                    Ok(d) if d >= min => Some(d),
                    Ok(_) => {
                        ck.at(Some(v.span()), field, format!("must be at least {min:?}"));
                        None
                    }
                    Err(m) => {
                        ck.at(Some(v.span()), field, m);
                        None
                    }
                }
            };
        if let Some(d) = dur(
            &mut ck,
            &rd.grace_period,
            "daemon.grace_period",
            Duration::ZERO,
        ) {
            daemon.grace_period = d;
        }
        if let Some(d) = dur(
            &mut ck,
            &rd.credential_poll,
            "daemon.credential_poll",
            Duration::from_secs(1),
        ) {
            daemon.credential_poll = d;
        }
        if let Some(d) = dur(
            &mut ck,
            &rd.certificate_warning,
            "daemon.certificate_warning",
            Duration::ZERO,
        ) {
            daemon.certificate_warning = d;
        }
        if let Some(d) = dur(
            &mut ck,
            &rd.job_lease,
            "daemon.job_lease",
            Duration::from_secs(1),
        ) {
            if d > Duration::from_secs(86400) {
                let span = rd.job_lease.as_ref().map(Spanned::span);
                ck.at(span, "daemon.job_lease", "must be at most 1d (a day)");
            } else {
                daemon.job_lease = d;
            }
        }
        if let Some(old) = &rd.job_lease_secs {
            ck.at(
                Some(old.span()),
                "daemon.job_lease_secs",
                "renamed: use job_lease = \"60s\" (a duration)",
            );
        }
        if let Some(l) = &rd.listen {
            match l.get_ref().parse::<SocketAddr>() {
                Ok(a) => daemon.listen = Some(a),
                Err(_) => ck.at(
                    Some(l.span()),
                    "daemon.listen",
                    format!(
                        "'{}' is not an address:port such as \"127.0.0.1:9464\"",
                        l.get_ref()
                    ),
                ),
            }
        }
        if let Some(f) = &rd.log_format {
            match f.get_ref().to_ascii_lowercase().as_str() {
                "text" => daemon.log_format = Some(LogFormat::Text),
                "json" => daemon.log_format = Some(LogFormat::Json),
                other => ck.at(
                    Some(f.span()),
                    "daemon.log_format",
                    format!("'{other}' is not text or json"),
                ),
            }
        }

        // [identity]
        let identity_span = raw.identity.as_ref().map(|i| i.span());
        let mut identity = raw.identity.map(Spanned::into_inner).unwrap_or_default();
        {
            let fix = |ck: &mut Checker<'_>, p: &mut Option<PathBuf>, field: &str| {
                let Some(v) = p.as_ref() else { return };
                match expand(&v.to_string_lossy(), env) {
                    Ok(s) => *p = Some(resolve(&s)),
                    Err(m) => {
                        ck.at(identity_span.clone(), format!("identity.{field}"), m);
                        *p = None;
                    }
                }
            };
            fix(
                &mut ck,
                &mut identity.client_secret_file,
                "client_secret_file",
            );
            fix(&mut ck, &mut identity.certificate_path, "certificate_path");
            fix(
                &mut ck,
                &mut identity.certificate_password_file,
                "certificate_password_file",
            );
            fix(
                &mut ck,
                &mut identity.federated_token_file,
                "federated_token_file",
            );
            fix(&mut ck, &mut identity.ca_file, "ca_file");
        }
        if let Some(c) = &rd.client_secret_credential {
            match env("CREDENTIALS_DIRECTORY").filter(|v| !v.is_empty()) {
                Some(dir) => identity.client_secret_file = Some(Path::new(&dir).join(c.get_ref())),
                None => ck.at(
                    Some(c.span()),
                    "daemon.client_secret_credential",
                    "CREDENTIALS_DIRECTORY is not set: run under systemd with LoadCredential=, or use identity.client_secret_file",
                ),
            }
        }
        let env_identity = match ClientConfig::from_env_vars(env) {
            Ok(e) => e,
            Err(e) => {
                ck.at(None, "environment", e.to_string());
                ClientConfig::default()
            }
        };
        let identity = identity.or_env(env_identity);
        if identity.client_id.is_none() {
            ck.at(
                identity_span.clone(),
                "identity.client_id",
                "missing: set client_id or AZURE_CLIENT_ID",
            );
        }
        if let Err(e) = identity.authority() {
            ck.at(identity_span.clone(), "identity.tenant_id", e.to_string());
        }
        if let Err(e) = identity.credential() {
            ck.at(identity_span.clone(), "identity", e.to_string());
        }
        if let Some(ca) = &identity.ca_file
            && let Err(e) = apptoken::read_ca_file(ca)
        {
            ck.at(identity_span.clone(), "identity.ca_file", e.to_string());
        }

        // [apis.NAME]
        let mut apis = BTreeMap::new();
        for (name, api) in &raw.apis {
            let f = |k: &str| format!("apis.{name}.{k}");
            let a = api.get_ref();
            let base_url = match Url::parse(a.base_url.get_ref()) {
                Ok(u) if matches!(u.scheme(), "https" | "http") && u.host().is_some() => {
                    if u.scheme() == "http" && !is_loopback(&u) {
                        ck.at(Some(a.base_url.span()), f("base_url"), "plain http is only allowed on loopback (the token would travel in clear text); use https");
                    }
                    Some(u)
                }
                Ok(_) => {
                    ck.at(
                        Some(a.base_url.span()),
                        f("base_url"),
                        "must be an http(s) URL",
                    );
                    None
                }
                Err(e) => {
                    ck.at(
                        Some(a.base_url.span()),
                        f("base_url"),
                        format!("'{}' is not a URL: {e}", a.base_url.get_ref()),
                    );
                    None
                }
            };
            if a.scopes.get_ref().is_empty() {
                ck.at(
                    Some(a.scopes.span()),
                    f("scopes"),
                    "give the resource's scope, e.g. [\"https://graph.microsoft.com/.default\"]",
                );
            }
            for s in a.scopes.get_ref() {
                if !s.get_ref().trim().ends_with("/.default") {
                    ck.at(Some(s.span()), f("scopes"), format!("'{}' does not end in /.default: app-only tokens take the resource's static scope, e.g. \"https://graph.microsoft.com/.default\"", s.get_ref()));
                }
            }
            let mut headers = Vec::new();
            for (k, v) in &a.headers {
                let ok_name = reqwest::header::HeaderName::try_from(k.as_str()).is_ok();
                let ok_value = reqwest::header::HeaderValue::try_from(v.get_ref().as_str()).is_ok();
                if !ok_name || !ok_value {
                    ck.at(
                        Some(v.span()),
                        f(&format!("headers.{k}")),
                        "not a valid HTTP header",
                    );
                } else if k.eq_ignore_ascii_case("authorization") {
                    ck.at(
                        Some(v.span()),
                        f(&format!("headers.{k}")),
                        "the Authorization header is set from the token; remove it",
                    );
                } else {
                    headers.push((k.clone(), v.get_ref().clone()));
                }
            }
            let timeout = dur(&mut ck, &a.timeout, &f("timeout"), Duration::from_millis(1))
                .unwrap_or(Duration::from_secs(60));
            let max_retry_wait = dur(
                &mut ck,
                &a.max_retry_wait,
                &f("max_retry_wait"),
                Duration::ZERO,
            )
            .unwrap_or(Duration::from_secs(300));
            let max_concurrency = match &a.max_concurrency {
                Some(c) if *c.get_ref() == 0 => {
                    ck.at(Some(c.span()), f("max_concurrency"), "must be at least 1");
                    1
                }
                Some(c) => *c.get_ref(),
                None => 4,
            };
            if let Some(base_url) = base_url {
                apis.insert(
                    name.clone(),
                    ApiConfig {
                        name: name.clone(),
                        base_url,
                        scopes: a
                            .scopes
                            .get_ref()
                            .iter()
                            .map(|s| s.get_ref().trim().to_string())
                            .collect(),
                        headers,
                        timeout,
                        max_concurrency,
                        max_retries: a.max_retries.unwrap_or(3),
                        max_retry_wait,
                    },
                );
            }
        }

        // [[jobs]]
        let mut jobs = Vec::new();
        let mut seen = BTreeMap::new();
        // The files the jobs write (outputs, status files): by whom.
        let mut written_by: BTreeMap<PathBuf, String> = BTreeMap::new();
        for (i, job) in raw.jobs.iter().enumerate() {
            let f = |k: &str| format!("jobs[{i}].{k}");
            let j = job.get_ref();
            let name = j.name.get_ref().trim().to_string();
            if name.is_empty() || name.chars().any(|c| c.is_control()) {
                ck.at(Some(j.name.span()), f("name"), "must be a non-empty name");
            }
            if seen.insert(name.clone(), i).is_some() {
                ck.at(
                    Some(j.name.span()),
                    f("name"),
                    format!("another job is already named '{name}'"),
                );
            }
            if !raw.apis.contains_key(j.api.get_ref()) {
                let known: Vec<&str> = raw.apis.keys().map(String::as_str).collect();
                ck.at(
                    Some(j.api.span()),
                    f("api"),
                    format!(
                        "no API named '{}' in [apis] (known: {})",
                        j.api.get_ref(),
                        if known.is_empty() {
                            "none".to_string()
                        } else {
                            known.join(", ")
                        }
                    ),
                );
            }
            let method = j
                .method
                .as_ref()
                .map_or("GET".to_string(), |m| m.get_ref().to_ascii_uppercase());
            if reqwest::Method::from_bytes(method.as_bytes()).is_err() {
                ck.at(
                    j.method.as_ref().map(|m| m.span()),
                    f("method"),
                    format!("'{method}' is not an HTTP method"),
                );
            }
            let p = j.path.get_ref();
            if p.contains("://") || p.starts_with("//") {
                ck.at(
                    Some(j.path.span()),
                    f("path"),
                    "must be relative to the API's base_url (no scheme or host)",
                );
            } else if let Some(api) = apis.get(j.api.get_ref())
                && join(&api.base_url, p).is_err()
            {
                ck.at(
                    Some(j.path.span()),
                    f("path"),
                    "does not form a URL with the API's base_url",
                );
            }
            let body = match &j.body {
                None => None,
                Some(b) => match b.get_ref() {
                    toml::Value::String(s) => match serde_json::from_str(s) {
                        Ok(v) => Some(v),
                        Err(e) => {
                            ck.at(Some(b.span()), f("body"), format!("not valid JSON: {e}"));
                            None
                        }
                    },
                    other => serde_json::to_value(other).ok(),
                },
            };
            let schedule = match (&j.every, &j.cron) {
                (Some(_), Some(c)) => {
                    ck.at(
                        Some(c.span()),
                        f("cron"),
                        "give either every or cron, not both",
                    );
                    None
                }
                (None, None) => {
                    ck.at(
                        Some(job.span()),
                        f("every"),
                        "no schedule: set every = \"15m\" or cron = \"0 */5 * * * *\"",
                    );
                    None
                }
                (Some(e), None) => match parse_duration(e.get_ref()) {
                    Ok(d) if d >= Duration::from_secs(1) => Some(Schedule::Every(d)),
                    Ok(_) => {
                        ck.at(Some(e.span()), f("every"), "must be at least 1s");
                        None
                    }
                    Err(m) => {
                        ck.at(Some(e.span()), f("every"), m);
                        None
                    }
                },
                (None, Some(c)) => match Schedule::cron(c.get_ref()) {
                    Ok(s) => Some(s),
                    Err(m) => {
                        ck.at(Some(c.span()), f("cron"), m);
                        None
                    }
                },
            };
            let output = match &j.output {
                None => OutputConfig::Stdout,
                Some(o) => match (o.get_ref().kind.get_ref().as_str(), &o.get_ref().path) {
                    ("stdout", None) => OutputConfig::Stdout,
                    ("stdout", Some(p)) => {
                        ck.at(
                            Some(p.span()),
                            f("output.path"),
                            "only a file output has a path",
                        );
                        OutputConfig::Stdout
                    }
                    ("file", Some(p)) => {
                        let path = match expand(p.get_ref(), env) {
                            Ok(s) => resolve(&s),
                            Err(m) => {
                                ck.at(Some(p.span()), f("output.path"), m);
                                PathBuf::new()
                            }
                        };
                        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
                        if !path.as_os_str().is_empty() && !dir.is_dir() {
                            ck.at(
                                Some(p.span()),
                                f("output.path"),
                                format!("the directory '{}' does not exist", dir.display()),
                            );
                        } else if path.is_dir() {
                            ck.at(
                                Some(p.span()),
                                f("output.path"),
                                format!("'{}' is a directory", path.display()),
                            );
                        }
                        OutputConfig::File(path)
                    }
                    ("file", None) => {
                        ck.at(
                            Some(o.span()),
                            f("output.path"),
                            "a file output needs path = \"…\"",
                        );
                        OutputConfig::Stdout
                    }
                    (other, _) => {
                        ck.at(
                            Some(o.get_ref().kind.span()),
                            f("output.type"),
                            format!("'{other}' is not an output type; use \"stdout\" or \"file\""),
                        );
                        OutputConfig::Stdout
                    }
                },
            };
            let mut tenants = Vec::new();
            let mut lower = std::collections::HashSet::new();
            for t in j.tenants.iter().flatten() {
                let v = t.get_ref().trim();
                match crate::tenant_list::check_tenant(v) {
                    Err(m) => ck.at(Some(t.span()), f("tenants"), m),
                    Ok(v) if !lower.insert(v.to_ascii_lowercase()) => ck.at(
                        Some(t.span()),
                        f("tenants"),
                        format!("'{v}' is listed twice"),
                    ),
                    Ok(v) => tenants.push(v.to_string()),
                }
            }
            let mut tenants_file = None;
            if let Some(tf) = &j.tenants_file {
                if j.tenants.is_some() {
                    ck.at(
                        Some(tf.span()),
                        f("tenants_file"),
                        "give either tenants or tenants_file, not both",
                    );
                }
                match expand(tf.get_ref(), env) {
                    Err(m) => ck.at(Some(tf.span()), f("tenants_file"), m),
                    Ok(s) => {
                        let path = resolve(&s);
                        match crate::tenant_list::load(&path) {
                            Ok(list) if list.is_empty() => ck.at(
                                Some(tf.span()),
                                f("tenants_file"),
                                format!("'{}' lists no tenant", path.display()),
                            ),
                            Ok(list) => tenants = list,
                            Err(problems) => {
                                for m in problems {
                                    ck.at(Some(tf.span()), f("tenants_file"), m);
                                }
                            }
                        }
                        tenants_file = Some(path);
                    }
                }
            }
            // `tenants = []` is the identity's tenant alone, like no list: no
            // tenant to name a `{tenant}` file after, no status file.
            let has_tenants =
                j.tenants.as_ref().is_some_and(|t| !t.is_empty()) || j.tenants_file.is_some();
            let output = match output {
                OutputConfig::File(p) if p.to_string_lossy().contains(TENANT_PLACEHOLDER) => {
                    let span = j
                        .output
                        .as_ref()
                        .and_then(|o| o.get_ref().path.as_ref())
                        .map(Spanned::span);
                    let in_name = p
                        .file_name()
                        .is_some_and(|n| n.to_string_lossy().contains(TENANT_PLACEHOLDER));
                    let in_dir = p
                        .parent()
                        .is_some_and(|d| d.to_string_lossy().contains(TENANT_PLACEHOLDER));
                    if !has_tenants {
                        ck.at(
                            span,
                            f("output.path"),
                            "{tenant} needs a job with tenants or tenants_file",
                        );
                    } else if in_dir || !in_name {
                        ck.at(
                            span,
                            f("output.path"),
                            "{tenant} may only appear in the file name, not in a directory",
                        );
                    }
                    OutputConfig::PerTenant(p)
                }
                other => other,
            };
            let status_file = match &j.status_file {
                Some(sf) => match expand(sf.get_ref(), env) {
                    Ok(s) => {
                        let path = resolve(&s);
                        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
                        if !dir.is_dir() {
                            ck.at(
                                Some(sf.span()),
                                f("status_file"),
                                format!("the directory '{}' does not exist", dir.display()),
                            );
                        } else if path.is_dir() {
                            ck.at(
                                Some(sf.span()),
                                f("status_file"),
                                format!("'{}' is a directory", path.display()),
                            );
                        }
                        Some(path)
                    }
                    Err(m) => {
                        ck.at(Some(sf.span()), f("status_file"), m);
                        None
                    }
                },
                None if has_tenants => match &output {
                    OutputConfig::File(p) | OutputConfig::PerTenant(p) => {
                        p.parent().map(|d| d.join(default_status_name(&name)))
                    }
                    OutputConfig::Stdout => None,
                },
                None => None,
            };
            // None: the value has a problem (reported).
            let backoff = |ck: &mut Checker<'_>, v: &Option<Spanned<String>>, k: &str, default| {
                let Some(v) = v else { return Some(default) };
                match parse_duration(v.get_ref()) {
                    Ok(d) if d >= Duration::from_secs(1) => Some(d),
                    Ok(_) => {
                        ck.at(Some(v.span()), f(k), "must be at least 1s");
                        None
                    }
                    Err(m) => {
                        ck.at(Some(v.span()), f(k), m);
                        None
                    }
                }
            };
            let tenant_backoff = backoff(
                &mut ck,
                &j.tenant_backoff,
                "tenant_backoff",
                Duration::from_secs(300),
            );
            let tenant_backoff_max = backoff(
                &mut ck,
                &j.tenant_backoff_max,
                "tenant_backoff_max",
                Duration::from_secs(6 * 3600),
            );
            if let (Some(initial), Some(max)) = (tenant_backoff, tenant_backoff_max)
                && max < initial
            {
                // Without tenant_backoff_max (6h), the value at fault is
                // tenant_backoff's.
                ck.at(
                    j.tenant_backoff_max
                        .as_ref()
                        .or(j.tenant_backoff.as_ref())
                        .map(Spanned::span),
                    f("tenant_backoff_max"),
                    if j.tenant_backoff_max.is_some() {
                        "must be at least tenant_backoff"
                    } else {
                        "must be at least tenant_backoff (6h when not given): set tenant_backoff_max"
                    },
                );
            }
            let tenant_backoff = tenant_backoff.unwrap_or(Duration::from_secs(300));
            let tenant_backoff_max = tenant_backoff_max.unwrap_or(Duration::from_secs(6 * 3600));
            let positive =
                |ck: &mut Checker<'_>, v: &Option<Spanned<usize>>, k: &str, default: usize| match v
                {
                    Some(v) if *v.get_ref() == 0 => {
                        ck.at(Some(v.span()), f(k), "must be at least 1");
                        default
                    }
                    Some(v) => *v.get_ref(),
                    None => default,
                };
            let tenant_concurrency =
                positive(&mut ck, &j.tenant_concurrency, "tenant_concurrency", 4);
            let max_pages = positive(&mut ck, &j.max_pages, "max_pages", 1000);
            let max_items = j
                .max_items
                .as_ref()
                .map(|_| positive(&mut ck, &j.max_items, "max_items", 1));
            let output_span = j
                .output
                .as_ref()
                .and_then(|o| o.get_ref().path.as_ref())
                .map(Spanned::span);
            let written = [
                match &output {
                    OutputConfig::File(p) | OutputConfig::PerTenant(p) => {
                        Some((p, "output.path", output_span.clone()))
                    }
                    OutputConfig::Stdout => None,
                },
                // A default status file has no value of its own: the output
                // path's (it sits beside it).
                status_file.as_ref().map(|p| {
                    let span = j.status_file.as_ref().map(Spanned::span);
                    (p, "status_file", span.or(output_span.clone()))
                }),
            ];
            for (p, k, span) in written.into_iter().flatten() {
                if p.as_os_str().is_empty() {
                    continue; // its problem is reported
                }
                match written_by.get(p) {
                    Some(other) => ck.at(
                        span,
                        f(k),
                        format!("job '{other}' writes the same file ('{}')", p.display()),
                    ),
                    None => {
                        written_by.insert(p.clone(), name.clone());
                    }
                }
            }
            if let Some(schedule) = schedule {
                jobs.push(JobConfig {
                    name,
                    api: j.api.get_ref().clone(),
                    method,
                    path: p.clone(),
                    body,
                    schedule,
                    run_at_start: j.run_at_start,
                    paging: j.paging.unwrap_or(true),
                    max_items,
                    max_pages,
                    output,
                    tenants,
                    tenants_file,
                    tenant_concurrency,
                    status_file,
                    tenant_backoff,
                    tenant_backoff_max,
                });
            }
        }
        let cache = check_cache(&mut ck, raw.cache, env, &resolve);
        if !ck.problems.is_empty() {
            return Err(Error::Config(ck.problems));
        }
        Ok(DaemonConfig {
            path: path.to_path_buf(),
            identity,
            apis,
            jobs,
            daemon,
            cache,
        })
    }

    /// The tenant list files (`tenants_file`) of the jobs: a change
    /// re-reads them.
    pub fn tenant_files(&self) -> Vec<PathBuf> {
        self.jobs
            .iter()
            .filter_map(|j| j.tenants_file.clone())
            .collect()
    }

    /// The files whose change should reload the credential.
    pub fn credential_files(&self) -> Vec<PathBuf> {
        [
            &self.identity.client_secret_file,
            &self.identity.certificate_path,
            &self.identity.certificate_password_file,
        ]
        .into_iter()
        .flatten()
        .cloned()
        .collect()
    }
}

/// Whether a secret file may be read by others (group or world).
fn readable_by_others(path: &Path) -> Result<bool, String> {
    let meta =
        std::fs::metadata(path).map_err(|e| format!("cannot read '{}': {e}", path.display()))?;
    if !meta.is_file() {
        return Err(format!("'{}' is not a regular file", path.display()));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        Ok(meta.permissions().mode() & 0o044 != 0)
    }
    #[cfg(not(unix))]
    Ok(false)
}

/// Checks `[cache]`; `APPTOKEN_REDIS_URL` fills `redis`.
fn check_cache(
    ck: &mut Checker<'_>,
    raw: Option<Spanned<RawCache>>,
    env: &dyn Fn(&str) -> Option<String>,
    resolve: &dyn Fn(&str) -> PathBuf,
) -> CacheSettings {
    let span = raw.as_ref().map(|r| r.span());
    let raw = raw.map(Spanned::into_inner).unwrap_or_default();
    let mut out = CacheSettings {
        timeout: Duration::from_millis(250),
        ..CacheSettings::default()
    };
    let path = |ck: &mut Checker<'_>, v: &Option<Spanned<String>>, field: &str| {
        let v = v.as_ref()?;
        match expand(v.get_ref(), env) {
            Ok(s) => Some(resolve(&s)),
            Err(m) => {
                ck.at(Some(v.span()), format!("cache.{field}"), m);
                None
            }
        }
    };
    if let Some(t) = &raw.timeout {
        match parse_duration(t.get_ref()) {
            Ok(d) if d >= Duration::from_millis(1) && d <= Duration::from_secs(60) => {
                out.timeout = d
            }
            Ok(_) => ck.at(
                Some(t.span()),
                "cache.timeout",
                "must be between 1ms and 60s",
            ),
            Err(m) => ck.at(Some(t.span()), "cache.timeout", m),
        }
    }
    if let Some(old) = &raw.timeout_ms {
        ck.at(
            Some(old.span()),
            "cache.timeout_ms",
            "renamed: use timeout = \"250ms\" (a duration)",
        );
    }
    let (redis, redis_span) = match &raw.redis {
        Some(r) => (Some(r.get_ref().trim().to_string()), Some(r.span())),
        None => (
            env("APPTOKEN_REDIS_URL")
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty()),
            span.clone(),
        ),
    };
    let field = if raw.redis.is_some() {
        "cache.redis"
    } else {
        "environment.APPTOKEN_REDIS_URL"
    };
    if let Some(url) = redis {
        // Never echo the URL: it may carry a password.
        match Url::parse(&url) {
            Ok(u) if matches!(u.scheme(), "redis" | "rediss" | "redis+unix" | "unix") => {
                match apptoken_redis::RedisStore::new(&url) {
                    Ok(_) => out.redis = Some(RedisUrl(url)),
                    Err(e) => ck.at(redis_span.clone(), field, e.to_string()),
                }
            }
            Ok(_) => ck.at(
                redis_span.clone(),
                field,
                "must be a redis://, rediss:// or redis+unix:// URL",
            ),
            Err(e) => ck.at(
                redis_span.clone(),
                field,
                format!("is not a URL ({e}); e.g. \"rediss://redis.internal:6380/0\""),
            ),
        }
    }
    if let Some(p) = path(ck, &raw.redis_password_file, "redis_password_file") {
        let span = raw.redis_password_file.as_ref().map(|v| v.span());
        if raw.redis.is_none() && out.redis.is_none() {
            ck.at(
                span.clone(),
                "cache.redis_password_file",
                "there is no redis URL to use it with",
            );
        }
        match readable_by_others(&p) {
            Ok(false) => out.redis_password_file = Some(p),
            Ok(true) => ck.at(
                span,
                "cache.redis_password_file",
                format!(
                    "'{}' can be read by other users; restrict it with 'chmod 600'",
                    p.display()
                ),
            ),
            Err(m) => ck.at(span, "cache.redis_password_file", m),
        }
    }
    let ca = match &raw.redis_ca_file {
        Some(v) => path(ck, &raw.redis_ca_file, "redis_ca_file")
            .map(|p| (p, Some(v.span()), "cache.redis_ca_file")),
        None => env("APPTOKEN_REDIS_CA_FILE")
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .map(|v| {
                (
                    resolve(&v),
                    span.clone(),
                    "environment.APPTOKEN_REDIS_CA_FILE",
                )
            }),
    };
    if let Some((p, ca_span, field)) = ca {
        match out
            .redis
            .as_ref()
            .map(|u| u.0.trim_start().starts_with("rediss://"))
        {
            None if raw.redis.is_none() && out.redis.is_none() => {
                ck.at(ca_span, field, "there is no redis URL to use it with")
            }
            Some(false) => ck.at(
                ca_span,
                field,
                "a CA for Redis needs a rediss:// URL (TLS); redis:// is not encrypted",
            ),
            _ => match apptoken::read_ca_file(&p) {
                Ok(pem)
                    if String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----") =>
                {
                    out.redis_ca_file = Some(p)
                }
                Ok(_) => ck.at(
                    ca_span,
                    field,
                    format!(
                        "'{}' holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
                        p.display()
                    ),
                ),
                Err(e) => ck.at(ca_span, field, e.to_string()),
            },
        }
    }
    if let Some(p) = path(ck, &raw.file, "file") {
        let span = raw.file.as_ref().map(|v| v.span());
        let dir = p.parent().map(Path::to_path_buf).unwrap_or_default();
        if !dir.is_dir() {
            ck.at(
                span.clone(),
                "cache.file",
                format!("the directory '{}' does not exist", dir.display()),
            );
        } else if p.is_dir() {
            ck.at(
                span.clone(),
                "cache.file",
                format!("'{}' is a directory", p.display()),
            );
        }
        if raw.redis.is_some() || out.redis.is_some() {
            ck.at(
                span,
                "cache.file",
                "give either redis (a fleet) or file (one machine), not both",
            );
        }
        out.file = Some(p);
    }
    let key_span = raw.key_file.as_ref().map(|v| v.span());
    let key_file = path(ck, &raw.key_file, "key_file").or_else(|| {
        let default =
            Path::new(&env("CREDENTIALS_DIRECTORY").filter(|d| !d.is_empty())?).join("cache-key");
        default.exists().then_some(default)
    });
    match &key_file {
        Some(k) => {
            if let Err(e) = apptoken::StoreKey::from_file(k) {
                ck.at(key_span.or(span.clone()), "cache.key_file", e.to_string());
            }
        }
        None if out.redis.is_some() => ck.at(
            span.clone().or(redis_span),
            "cache.key_file",
            "required with redis: the key that seals tokens in the shared store (32 random bytes, e.g. `openssl rand -base64 32 > cache.key; chmod 600 cache.key`), the same on every instance; or LoadCredential=cache-key",
        ),
        None => {
            if let Some(f) = &out.file {
                let k = key_path_for(f);
                if k.exists()
                    && let Err(e) = apptoken::StoreKey::from_file(&k)
                {
                    ck.at(span.clone(), "cache.file", e.to_string());
                }
            }
        }
    }
    out.key_file = key_file;
    out
}

/// The key of a file store without `key_file`: `<file>.key`.
pub(crate) fn key_path_for(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_os_string();
    name.push(".key");
    PathBuf::from(name)
}

fn is_loopback(u: &Url) -> bool {
    match u.host() {
        Some(url::Host::Ipv4(a)) => a.is_loopback(),
        Some(url::Host::Ipv6(a)) => a.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// `base` + a relative `path` (with query); the result stays on `base`'s origin.
pub(crate) fn join(base: &Url, path: &str) -> Result<Url, String> {
    let mut b = base.clone();
    if !b.path().ends_with('/') {
        let p = format!("{}/", b.path());
        b.set_path(&p);
    }
    let u = b
        .join(path.trim_start_matches('/'))
        .map_err(|e| e.to_string())?;
    if u.origin() != base.origin() {
        return Err("leaves the API's origin".into());
    }
    Ok(u)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> Result<DaemonConfig, Vec<Problem>> {
        let dir = std::env::temp_dir();
        DaemonConfig::from_toml_str(text, &dir.join("daemon.toml"), &|k| match k {
            "AZURE_CLIENT_SECRET" => Some("s".into()),
            _ => None,
        })
        .map_err(|e| match e {
            Error::Config(p) => p,
            other => panic!("{other}"),
        })
    }

    const GOOD: &str = r#"
[identity]
authority_host = "http://127.0.0.1:9"
tenant_id = "contoso.example"
client_id = "cid"

[apis.sample]
base_url = "http://127.0.0.1:9/v1.0"
scopes = ["api://sample/.default"]
headers = { ConsistencyLevel = "eventual" }

[[jobs]]
name = "users"
api = "sample"
path = "users?$top=5"
every = "15m"
tenants = ["a.example", "b.example"]
"#;

    #[test]
    fn a_good_file_checks_clean() {
        let c = check(GOOD).unwrap();
        assert_eq!(c.jobs[0].name, "users");
        assert_eq!(c.jobs[0].output, OutputConfig::Stdout);
        let u = join(&c.apis["sample"].base_url, &c.jobs[0].path).unwrap();
        assert_eq!(u.as_str(), "http://127.0.0.1:9/v1.0/users?$top=5");
        assert_eq!(c.identity.credential_kind(), Some("client secret"));
    }

    #[test]
    fn problems_name_line_and_field() {
        let bad = GOOD
            .replace("every = \"15m\"", "cron = \"every day\"")
            .replace("api = \"sample\"", "api = \"nope\"")
            .replace("api://sample/.default", "api://sample/User.Read");
        let p = check(&bad).unwrap_err();
        let text: Vec<String> = p.iter().map(|p| p.to_string()).collect();
        assert!(
            text.iter()
                .any(|t| t.contains(":9:") && t.contains("apis.sample.scopes")),
            "{text:?}"
        );
        assert!(
            text.iter()
                .any(|t| t.contains(":14:") && t.contains("jobs[0].api")),
            "{text:?}"
        );
        assert!(
            text.iter()
                .any(|t| t.contains(":16:") && t.contains("jobs[0].cron")),
            "{text:?}"
        );
        let p = check(&GOOD.replace(
            "client_id = \"cid\"",
            "client_id = \"cid\"\nclient_secret = \"inline\"",
        ))
        .unwrap_err();
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].location.unwrap().0, 6, "{}", p[0]);
        assert!(p[0].to_string().contains("client_secret"), "{}", p[0]);
    }

    #[test]
    fn a_redis_ca_file_needs_rediss_and_a_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(
            &ca,
            "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let key = dir.path().join("cache.key");
        // 32 bytes, base64, readable by the owner only.
        std::fs::write(&key, "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=\n").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let with = |url: &str, ca: &Path| {
            format!(
                "{GOOD}\n[cache]\nredis = \"{url}\"\nredis_ca_file = \"{}\"\nkey_file = \"{}\"\n",
                ca.display(),
                key.display()
            )
        };
        let c = check(&with("rediss://redis.internal:6380/0", &ca)).unwrap();
        assert_eq!(c.cache.redis_ca_file.as_deref(), Some(ca.as_path()));

        let p = check(&with("redis://redis.internal:6379/0", &ca)).unwrap_err();
        assert!(
            p.iter()
                .any(|p| p.to_string().contains("cache.redis_ca_file")
                    && p.to_string().contains("rediss://")),
            "{p:?}"
        );
        let not_pem = dir.path().join("not.pem");
        std::fs::write(&not_pem, "hello").unwrap();
        let p = check(&with("rediss://redis.internal:6380/0", &not_pem)).unwrap_err();
        assert!(
            p.iter()
                .any(|p| p.to_string().contains("no PEM certificate")),
            "{p:?}"
        );
        let p = check(&with(
            "rediss://redis.internal:6380/0",
            &dir.path().join("missing.pem"),
        ))
        .unwrap_err();
        assert!(
            p.iter().any(|p| p.to_string().contains("cannot read")),
            "{p:?}"
        );
        // A device or a FIFO is refused, never read without end (found by
        // the daemon_config fuzz target: /dev/zero exhausted memory).
        let p = check(&with(
            "rediss://redis.internal:6380/0",
            Path::new("/dev/zero"),
        ))
        .unwrap_err();
        assert!(
            p.iter()
                .any(|p| p.to_string().contains("not a regular file")),
            "{p:?}"
        );
        let p = check(&GOOD.replace(
            "client_id = \"cid\"",
            "client_id = \"cid\"\nca_file = \"/dev/zero\"",
        ));
        let shown = format!("{p:?}");
        assert!(shown.contains("not a regular file"), "{shown}");
    }

    #[test]
    fn credentials_directory_is_expanded() {
        let e = expand("${CREDENTIALS_DIRECTORY}/client-secret", &|k| {
            (k == "CREDENTIALS_DIRECTORY").then(|| "/run/credentials/apptoken.service".into())
        });
        assert_eq!(
            e.unwrap(),
            "/run/credentials/apptoken.service/client-secret"
        );
        assert!(expand("${CREDENTIALS_DIRECTORY}/x", &|_| None).is_err());
    }

    // ---- Job options of issue #17: tenants, tenants_file, {tenant}
    // outputs, status_file, tenant backoffs. ----

    /// A configuration with one job (`users`) of no tenants, `extra` lines
    /// appended to it (more `[[jobs]]` may follow in `extra`).
    fn with_job(extra: &str) -> String {
        format!(
            "[identity]\nauthority_host = \"http://127.0.0.1:9\"\ntenant_id = \"contoso.example\"\nclient_id = \"cid\"\n\n\
             [apis.sample]\nbase_url = \"http://127.0.0.1:9/v1.0\"\nscopes = [\"api://sample/.default\"]\n\n\
             [[jobs]]\nname = \"users\"\napi = \"sample\"\npath = \"users\"\nevery = \"15m\"\n{extra}\n"
        )
    }

    /// Checks `text` as if read from `dir/daemon.toml`; `${DATA}` is `dir/data`.
    fn check_in(dir: &Path, text: &str) -> Result<DaemonConfig, Vec<Problem>> {
        let data = dir.join("data").display().to_string();
        DaemonConfig::from_toml_str(text, &dir.join("daemon.toml"), &|k| match k {
            "AZURE_CLIENT_SECRET" => Some("s".into()),
            "DATA" => Some(data.clone()),
            _ => None,
        })
        .map_err(|e| match e {
            Error::Config(p) => p,
            other => panic!("{other}"),
        })
    }

    /// The 1-based line and column of byte `i` of `text`.
    fn line_col(text: &str, i: usize) -> (usize, usize) {
        let before = &text[..i];
        let line = before.matches('\n').count() + 1;
        (line, i - before.rfind('\n').map_or(0, |n| n + 1) + 1)
    }

    /// Where `needle` first occurs in `text` (line, column).
    fn place(text: &str, needle: &str) -> (usize, usize) {
        let i = text.find(needle);
        line_col(
            text,
            i.unwrap_or_else(|| panic!("{needle:?} not in {text}")),
        )
    }

    /// Where `needle` last occurs in `text` (line, column).
    fn place_last(text: &str, needle: &str) -> (usize, usize) {
        let i = text.rfind(needle);
        line_col(
            text,
            i.unwrap_or_else(|| panic!("{needle:?} not in {text}")),
        )
    }

    /// The one problem `problems` holds: its field, its place and a part of
    /// its message.
    #[track_caller]
    fn only_problem(
        problems: &[Problem],
        field: &str,
        at: (usize, usize),
        fragment: &str,
    ) -> Problem {
        assert_eq!(problems.len(), 1, "{problems:#?}");
        let p = &problems[0];
        assert_eq!(p.field, field, "{p}");
        assert_eq!(p.location, Some(at), "{p}");
        assert!(p.message.contains(fragment), "{fragment:?} not in {p}");
        p.clone()
    }

    /// A temporary directory holding `data/` (outputs) and `tenants.txt`.
    fn workspace(tenants: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("data")).unwrap();
        std::fs::write(dir.path().join("tenants.txt"), tenants).unwrap();
        dir
    }

    #[test]
    fn a_tenants_file_fills_the_tenants_in_file_order() {
        let dir = workspace(
            "# customers of the users export\n\nzeta.example\n  alpha.example   # since 2026-11\n\
             \t\n7c1e3a52-9c4b-4d8e-a0f1-3b2d5e6f7a81#no space before the comment\n# mid.example\n",
        );
        let c = check_in(dir.path(), &with_job("tenants_file = \"tenants.txt\"")).unwrap();
        let j = &c.jobs[0];
        assert_eq!(
            j.tenants,
            [
                "zeta.example",
                "alpha.example",
                "7c1e3a52-9c4b-4d8e-a0f1-3b2d5e6f7a81"
            ]
        );
        let resolved = dir.path().join("tenants.txt");
        assert_eq!(j.tenants_file.as_deref(), Some(resolved.as_path()));
        assert_eq!(c.tenant_files(), [resolved]);

        // ${VAR} is expanded, then the path resolved like any other.
        std::fs::write(dir.path().join("data/list.txt"), "b.example\na.example\n").unwrap();
        let c = check_in(dir.path(), &with_job("tenants_file = \"${DATA}/list.txt\"")).unwrap();
        assert_eq!(c.jobs[0].tenants, ["b.example", "a.example"]);
        assert_eq!(
            c.jobs[0].tenants_file.as_deref(),
            Some(dir.path().join("data/list.txt").as_path())
        );
        // Without a tenants file, none.
        let c = check_in(dir.path(), &with_job("")).unwrap();
        assert!(c.jobs[0].tenants.is_empty() && c.jobs[0].tenants_file.is_none());
        assert!(c.tenant_files().is_empty());
    }

    #[test]
    fn a_tenants_file_that_cannot_be_used_is_a_problem_at_its_value() {
        let dir = workspace("");
        let file = dir.path().join("tenants.txt");
        let field = "jobs[0].tenants_file";
        let text = with_job("tenants_file = \"tenants.txt\"");
        let at = place(&text, "\"tenants.txt\"");
        let problems = |list: &str| {
            std::fs::write(&file, list).unwrap();
            check_in(dir.path(), &text).unwrap_err()
        };

        // Lists no tenant: empty, or only comments and blank lines.
        only_problem(&problems(""), field, at, "lists no tenant");
        only_problem(
            &problems("# none yet\n\n   \n"),
            field,
            at,
            "lists no tenant",
        );

        // A bad line: FILE:LINE:COL, the column at the name.
        let p = only_problem(
            &problems("a.example\n\n   bad/name   # oops\n"),
            field,
            at,
            "is not a tenant id or domain name",
        );
        let prefix = format!("{}:3:4: 'bad/name'", file.display());
        assert!(p.message.starts_with(&prefix), "{p}");
        let p = only_problem(&problems("common\n"), field, at, "not a tenant id");
        assert!(
            p.message.starts_with(&format!("{}:1:1:", file.display())),
            "{p}"
        );
        let p = only_problem(&problems("two names\n"), field, at, "one tenant per line");
        assert!(
            p.message.starts_with(&format!("{}:1:1:", file.display())),
            "{p}"
        );

        // A duplicate, compared without case.
        let p = only_problem(
            &problems("contoso.example\nfabrikam.example\n  CONTOSO.Example\n"),
            field,
            at,
            "is listed twice",
        );
        let expected = format!("{}:3:3: 'CONTOSO.Example' is listed twice", file.display());
        assert_eq!(p.message, expected);

        // Every bad line is its own problem, all at the value.
        let p = problems("a.example\n..\nA.EXAMPLE\n");
        assert_eq!(p.len(), 2, "{p:#?}");
        assert!(p.iter().all(|p| p.field == field && p.location == Some(at)));
        assert!(
            p[0].message
                .starts_with(&format!("{}:2:1:", file.display()))
        );
        assert!(
            p[1].message
                .starts_with(&format!("{}:3:1:", file.display()))
        );

        // A missing file, a directory.
        let text = with_job("tenants_file = \"missing.txt\"");
        only_problem(
            &check_in(dir.path(), &text).unwrap_err(),
            field,
            place(&text, "\"missing.txt\""),
            "cannot read",
        );
        let text = with_job("tenants_file = \"data\"");
        only_problem(
            &check_in(dir.path(), &text).unwrap_err(),
            field,
            place(&text, "\"data\""),
            "is not a regular file",
        );
        // A ${VAR} that is not set.
        let text = with_job("tenants_file = \"${NOPE}/tenants.txt\"");
        only_problem(
            &check_in(dir.path(), &text).unwrap_err(),
            field,
            place(&text, "\"${NOPE}"),
            "${NOPE}, which is not set",
        );
    }

    #[test]
    fn tenants_and_a_tenants_file_together_are_a_problem() {
        let dir = workspace("b.example\n");
        let text = with_job("tenants = [\"a.example\"]\ntenants_file = \"tenants.txt\"");
        only_problem(
            &check_in(dir.path(), &text).unwrap_err(),
            "jobs[0].tenants_file",
            place(&text, "\"tenants.txt\""),
            "give either tenants or tenants_file, not both",
        );
    }

    #[test]
    fn inline_tenants_are_checked_each_at_its_place() {
        let dir = workspace("");
        let c = check_in(
            dir.path(),
            &with_job("tenants = [\"b.example\", \" a.example \", \"7c1e3a52-9c4b-4d8e-a0f1-3b2d5e6f7a81\"]"),
        )
        .unwrap();
        assert_eq!(
            c.jobs[0].tenants,
            [
                "b.example",
                "a.example",
                "7c1e3a52-9c4b-4d8e-a0f1-3b2d5e6f7a81"
            ]
        );
        assert_eq!(c.jobs[0].tenants_file, None);

        let text =
            with_job("tenants = [\"contoso.example\", \"fabrikam.example\", \"Contoso.EXAMPLE\"]");
        only_problem(
            &check_in(dir.path(), &text).unwrap_err(),
            "jobs[0].tenants",
            place(&text, "\"Contoso.EXAMPLE\""),
            "'Contoso.EXAMPLE' is listed twice",
        );

        for bad in [
            "common",
            "organizations",
            "consumers",
            "Common",
            "..",
            "a/b",
            ".a.example",
            "-a.example",
        ] {
            let text = with_job(&format!("tenants = [\"ok.example\", \"{bad}\"]"));
            only_problem(
                &check_in(dir.path(), &text).unwrap_err(),
                "jobs[0].tenants",
                place(&text, &format!("\"{bad}\"")),
                &format!("'{bad}' is not a tenant id or domain name"),
            );
        }
    }

    #[test]
    fn a_tenant_placeholder_makes_a_per_tenant_output() {
        let dir = workspace("a.example\n");
        let c = check_in(
            dir.path(),
            &with_job(
                "tenants = [\"a.example\"]\noutput = { type = \"file\", path = \"data/users-{tenant}.jsonl\" }",
            ),
        )
        .unwrap();
        let template = dir.path().join("data/users-{tenant}.jsonl");
        assert_eq!(c.jobs[0].output, OutputConfig::PerTenant(template.clone()));
        assert_eq!(
            c.jobs[0].output.path_for(Some("t.example")),
            Some(dir.path().join("data/users-t.example.jsonl"))
        );
        assert_eq!(c.jobs[0].output.path_for(None), None);
        // With a tenants file too; a path without it is a shared file.
        let c = check_in(
            dir.path(),
            &with_job(
                "tenants_file = \"tenants.txt\"\noutput = { type = \"file\", path = \"${DATA}/{tenant}.jsonl\" }",
            ),
        )
        .unwrap();
        assert_eq!(
            c.jobs[0].output.path_for(Some("t.example")),
            Some(dir.path().join("data/t.example.jsonl"))
        );
        let c = check_in(
            dir.path(),
            &with_job("tenants = [\"a.example\"]\noutput = { type = \"file\", path = \"data/users.jsonl\" }"),
        )
        .unwrap();
        let shared = dir.path().join("data/users.jsonl");
        assert_eq!(c.jobs[0].output, OutputConfig::File(shared.clone()));
        assert_eq!(c.jobs[0].output.path_for(Some("t.example")), Some(shared));
        assert_eq!(OutputConfig::Stdout.path_for(Some("t.example")), None);
    }

    #[test]
    fn a_tenant_placeholder_needs_tenants_and_belongs_in_the_file_name() {
        let dir = workspace("");
        let path = "\"data/users-{tenant}.jsonl\"";
        let text = with_job(&format!("output = {{ type = \"file\", path = {path} }}"));
        only_problem(
            &check_in(dir.path(), &text).unwrap_err(),
            "jobs[0].output.path",
            place(&text, path),
            "{tenant} needs a job with tenants or tenants_file",
        );
        // An empty list runs for the identity's tenant: no tenant to name a file.
        let text = with_job(&format!(
            "tenants = []\noutput = {{ type = \"file\", path = {path} }}"
        ));
        only_problem(
            &check_in(dir.path(), &text).unwrap_err(),
            "jobs[0].output.path",
            place(&text, path),
            "{tenant} needs a job with tenants or tenants_file",
        );

        // In a directory part (that exists, so that it is the only problem).
        std::fs::create_dir(dir.path().join("data/{tenant}")).unwrap();
        let path = "\"data/{tenant}/users.jsonl\"";
        let text = with_job(&format!(
            "tenants = [\"a.example\"]\noutput = {{ type = \"file\", path = {path} }}"
        ));
        only_problem(
            &check_in(dir.path(), &text).unwrap_err(),
            "jobs[0].output.path",
            place(&text, path),
            "{tenant} may only appear in the file name",
        );
        let path = "\"data/{tenant}/{tenant}.jsonl\"";
        let text = with_job(&format!(
            "tenants = [\"a.example\"]\noutput = {{ type = \"file\", path = {path} }}"
        ));
        only_problem(
            &check_in(dir.path(), &text).unwrap_err(),
            "jobs[0].output.path",
            place(&text, path),
            "{tenant} may only appear in the file name",
        );
    }

    #[test]
    fn an_explicit_status_file_is_resolved_and_its_directory_checked() {
        let dir = workspace("");
        let c = check_in(dir.path(), &with_job("status_file = \"data/users.json\"")).unwrap();
        assert_eq!(
            c.jobs[0].status_file,
            Some(dir.path().join("data/users.json"))
        );
        let c = check_in(
            dir.path(),
            &with_job(
                "tenants = [\"a.example\"]\noutput = { type = \"file\", path = \"data/u.jsonl\" }\nstatus_file = \"${DATA}/s.json\"",
            ),
        )
        .unwrap();
        assert_eq!(c.jobs[0].status_file, Some(dir.path().join("data/s.json")));

        let text = with_job("status_file = \"nowhere/users.json\"");
        let p = only_problem(
            &check_in(dir.path(), &text).unwrap_err(),
            "jobs[0].status_file",
            place(&text, "\"nowhere/users.json\""),
            "does not exist",
        );
        assert!(
            p.message
                .contains(&dir.path().join("nowhere").display().to_string()),
            "{p}"
        );
        let text = with_job("status_file = \"data\"");
        only_problem(
            &check_in(dir.path(), &text).unwrap_err(),
            "jobs[0].status_file",
            place(&text, "\"data\""),
            "is a directory",
        );
    }

    #[test]
    fn the_default_status_file_sits_beside_a_file_output_of_a_job_with_tenants() {
        let dir = workspace("a.example\n");
        let status = |job: &str| {
            check_in(dir.path(), &with_job(job))
                .unwrap()
                .jobs
                .remove(0)
                .status_file
        };
        let out = "output = { type = \"file\", path = \"data/out/u.jsonl\" }";
        std::fs::create_dir(dir.path().join("data/out")).unwrap();
        let beside = Some(dir.path().join("data/out/users.status.json"));
        assert_eq!(status(&format!("tenants = [\"a.example\"]\n{out}")), beside);
        assert_eq!(
            status(&format!("tenants_file = \"tenants.txt\"\n{out}")),
            beside
        );
        assert_eq!(
            status(
                "tenants = [\"a.example\"]\noutput = { type = \"file\", path = \"data/out/u-{tenant}.jsonl\" }"
            ),
            beside
        );
        // No default without tenants, or with standard output.
        assert_eq!(status(out), None);
        assert_eq!(status(&format!("tenants = []\n{out}")), None);
        assert_eq!(status("tenants = [\"a.example\"]"), None);
        assert_eq!(
            status("tenants = [\"a.example\"]\noutput = { type = \"stdout\" }"),
            None
        );

        // The job's name made safe for a file name.
        for (name, file) in [
            ("users", "users.status.json"),
            ("a-b_c.d", "a-b_c.d.status.json"),
            ("users/of contoso", "users_of_contoso.status.json"),
            ("../up", "_up.status.json"),
            ("..hidden", "hidden.status.json"),
            ("Grüße", "Gr__e.status.json"),
        ] {
            let text = with_job(&format!("tenants = [\"a.example\"]\n{out}"))
                .replace("name = \"users\"", &format!("name = \"{name}\""));
            let c = check_in(dir.path(), &text).unwrap();
            assert_eq!(
                c.jobs[0].status_file,
                Some(dir.path().join("data/out").join(file)),
                "{name}"
            );
        }
    }

    #[test]
    fn two_jobs_may_not_write_the_same_file() {
        let dir = workspace("a.example\n");
        let second = |lines: &str| {
            format!(
                "\n[[jobs]]\nname = \"groups\"\napi = \"sample\"\npath = \"groups\"\nevery = \"1h\"\n{lines}"
            )
        };
        // The same explicit status file.
        let text = with_job(&format!(
            "status_file = \"data/s.json\"{}",
            second("status_file = \"data/s.json\"")
        ));
        only_problem(
            &check_in(dir.path(), &text).unwrap_err(),
            "jobs[1].status_file",
            place_last(&text, "\"data/s.json\""),
            "job 'users' writes the same file",
        );
        // A status file that is another job's output.
        let text = with_job(&format!(
            "output = {{ type = \"file\", path = \"data/u.jsonl\" }}{}",
            second("status_file = \"${DATA}/u.jsonl\"")
        ));
        only_problem(
            &check_in(dir.path(), &text).unwrap_err(),
            "jobs[1].status_file",
            place(&text, "\"${DATA}/u.jsonl\""),
            "job 'users' writes the same file",
        );
        // A default status file that is another job's output.
        let text = with_job(&format!(
            "tenants = [\"a.example\"]\noutput = {{ type = \"file\", path = \"data/u.jsonl\" }}{}",
            second("output = { type = \"file\", path = \"data/users.status.json\" }")
        ));
        only_problem(
            &check_in(dir.path(), &text).unwrap_err(),
            "jobs[1].output.path",
            place(&text, "\"data/users.status.json\""),
            "job 'users' writes the same file",
        );
        // Two default status files of names made alike.
        let text = with_job(&format!(
            "tenants = [\"a.example\"]\noutput = {{ type = \"file\", path = \"data/u.jsonl\" }}{}",
            second(
                "tenants = [\"a.example\"]\noutput = { type = \"file\", path = \"data/g.jsonl\" }"
            )
        ))
        .replace("name = \"groups\"", "name = \"users?\"")
        .replace("name = \"users\"", "name = \"users!\"");
        let p = check_in(dir.path(), &text).unwrap_err();
        assert_eq!(p.len(), 1, "{p:#?}");
        assert_eq!(p[0].field, "jobs[1].status_file");
        assert!(
            p[0].message.contains("job 'users!' writes the same file"),
            "{p:#?}"
        );
        // Its place: the output path it sits beside.
        assert_eq!(p[0].location, Some(place(&text, "\"data/g.jsonl\"")));
    }

    #[test]
    fn tenant_backoffs_have_defaults_and_bounds() {
        let dir = workspace("");
        let c = check_in(dir.path(), &with_job("tenants = [\"a.example\"]")).unwrap();
        assert_eq!(c.jobs[0].tenant_backoff, Duration::from_secs(300));
        assert_eq!(c.jobs[0].tenant_backoff_max, Duration::from_secs(6 * 3600));
        let c = check_in(
            dir.path(),
            &with_job("tenant_backoff = \"30s\"\ntenant_backoff_max = \"1h30m\""),
        )
        .unwrap();
        assert_eq!(c.jobs[0].tenant_backoff, Duration::from_secs(30));
        assert_eq!(c.jobs[0].tenant_backoff_max, Duration::from_secs(5400));
        let c = check_in(
            dir.path(),
            &with_job("tenant_backoff = \"1s\"\ntenant_backoff_max = \"1s\""),
        )
        .unwrap();
        assert_eq!(c.jobs[0].tenant_backoff, Duration::from_secs(1));
        assert_eq!(c.jobs[0].tenant_backoff_max, Duration::from_secs(1));

        for key in ["tenant_backoff", "tenant_backoff_max"] {
            let text = with_job(&format!("{key} = \"999ms\""));
            only_problem(
                &check_in(dir.path(), &text).unwrap_err(),
                &format!("jobs[0].{key}"),
                place(&text, "\"999ms\""),
                "must be at least 1s",
            );
            let text = with_job(&format!("{key} = \"soon\""));
            only_problem(
                &check_in(dir.path(), &text).unwrap_err(),
                &format!("jobs[0].{key}"),
                place(&text, "\"soon\""),
                "is not a duration",
            );
        }

        let text = with_job("tenant_backoff = \"10m\"\ntenant_backoff_max = \"9m59s\"");
        only_problem(
            &check_in(dir.path(), &text).unwrap_err(),
            "jobs[0].tenant_backoff_max",
            place(&text, "\"9m59s\""),
            "must be at least tenant_backoff",
        );
        let text = with_job("tenant_backoff_max = \"4m\"");
        only_problem(
            &check_in(dir.path(), &text).unwrap_err(),
            "jobs[0].tenant_backoff_max",
            place(&text, "\"4m\""),
            "must be at least tenant_backoff",
        );
        // A value with a problem is not compared again (one problem each).
        let text = with_job("tenant_backoff = \"7h\"\ntenant_backoff_max = \"soon\"");
        only_problem(
            &check_in(dir.path(), &text).unwrap_err(),
            "jobs[0].tenant_backoff_max",
            place(&text, "\"soon\""),
            "is not a duration",
        );
        let text = with_job("tenant_backoff = \"0s\"\ntenant_backoff_max = \"1m\"");
        only_problem(
            &check_in(dir.path(), &text).unwrap_err(),
            "jobs[0].tenant_backoff",
            place(&text, "\"0s\""),
            "must be at least 1s",
        );
        // Above the default maximum, the place is tenant_backoff's value.
        let text = with_job("tenant_backoff = \"7h\"");
        only_problem(
            &check_in(dir.path(), &text).unwrap_err(),
            "jobs[0].tenant_backoff_max",
            place(&text, "\"7h\""),
            "must be at least tenant_backoff",
        );
    }

    #[test]
    fn every_problem_of_a_file_is_reported_at_once() {
        let dir = workspace("a.example\nA.example\n");
        let text = with_job(
            "tenants_file = \"tenants.txt\"\noutput = { type = \"file\", path = \"data/{tenant}/u.jsonl\" }\n\
             tenant_backoff = \"1h\"\ntenant_backoff_max = \"30m\"\n\
             \n[[jobs]]\nname = \"groups\"\napi = \"sample\"\npath = \"groups\"\nevery = \"1h\"\n\
             tenants = [\"common\", \"b.example\", \"B.example\"]",
        );
        let p = check_in(dir.path(), &text).unwrap_err();
        let got: Vec<(&str, Option<(usize, usize)>)> =
            p.iter().map(|p| (p.field.as_str(), p.location)).collect();
        let path_at = place(&text, "\"data/{tenant}/u.jsonl\"");
        assert_eq!(
            got,
            [
                ("jobs[0].output.path", Some(path_at)),
                (
                    "jobs[0].tenants_file",
                    Some(place(&text, "\"tenants.txt\""))
                ),
                ("jobs[0].output.path", Some(path_at)),
                ("jobs[0].tenant_backoff_max", Some(place(&text, "\"30m\""))),
                ("jobs[1].tenants", Some(place(&text, "\"common\""))),
                ("jobs[1].tenants", Some(place(&text, "\"B.example\""))),
            ],
            "{p:#?}"
        );
        assert!(p[0].message.contains("does not exist"), "{}", p[0]);
        assert!(
            p[1].message.contains(":2:1: 'A.example' is listed twice"),
            "{}",
            p[1]
        );
        assert!(
            p[2].message.contains("only appear in the file name"),
            "{}",
            p[2]
        );
        assert!(
            p[3].message.contains("must be at least tenant_backoff"),
            "{}",
            p[3]
        );
        assert!(p[4].message.contains("not a tenant id"), "{}", p[4]);
        assert!(p[5].message.contains("listed twice"), "{}", p[5]);
        // The CLI's lines: file:line:column: field: message.
        let line = p[3].to_string();
        let expected = format!(
            "{}:{}:{}: jobs[0].tenant_backoff_max: must be at least tenant_backoff",
            dir.path().join("daemon.toml").display(),
            p[3].location.unwrap().0,
            p[3].location.unwrap().1
        );
        assert_eq!(line, expected);
    }

    #[test]
    fn durations_are_strings_and_the_old_numeric_keys_name_their_new_ones() {
        let dir = workspace("");
        let c = check_in(dir.path(), &with_job("")).unwrap();
        assert_eq!(c.daemon.job_lease, Duration::from_secs(60));
        let text = format!("{}\n[daemon]\njob_lease = \"90s\"\n", with_job(""));
        let c = check_in(dir.path(), &text).unwrap();
        assert_eq!(c.daemon.job_lease, Duration::from_secs(90));
        for (value, fragment) in [
            ("\"0s\"", "must be at least 1s"),
            ("\"2d\"", "must be at most 1d"),
            ("\"soon\"", "is not a duration"),
        ] {
            let text = format!("{}\n[daemon]\njob_lease = {value}\n", with_job(""));
            only_problem(
                &check_in(dir.path(), &text).unwrap_err(),
                "daemon.job_lease",
                place(&text, value),
                fragment,
            );
        }
        let text = format!("{}\n[daemon]\njob_lease_secs = 60\n", with_job(""));
        only_problem(
            &check_in(dir.path(), &text).unwrap_err(),
            "daemon.job_lease_secs",
            place(&text, "60\n"),
            "renamed: use job_lease = \"60s\"",
        );

        let cache = |line: &str| {
            format!(
                "{}\n[cache]\nfile = \"data/tokens.json\"\n{line}\n",
                with_job("")
            )
        };
        let c = check_in(dir.path(), &cache("")).unwrap();
        assert_eq!(c.cache.timeout, Duration::from_millis(250));
        let c = check_in(dir.path(), &cache("timeout = \"1500ms\"")).unwrap();
        assert_eq!(c.cache.timeout, Duration::from_millis(1500));
        for (value, fragment) in [
            ("\"0ms\"", "must be between 1ms and 60s"),
            ("\"61s\"", "must be between 1ms and 60s"),
            ("\"soon\"", "is not a duration"),
        ] {
            let text = cache(&format!("timeout = {value}"));
            only_problem(
                &check_in(dir.path(), &text).unwrap_err(),
                "cache.timeout",
                place(&text, value),
                fragment,
            );
        }
        let text = cache("timeout_ms = 250");
        only_problem(
            &check_in(dir.path(), &text).unwrap_err(),
            "cache.timeout_ms",
            place(&text, "250\n"),
            "renamed: use timeout = \"250ms\"",
        );
    }
}
