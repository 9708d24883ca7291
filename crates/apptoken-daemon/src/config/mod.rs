//! The daemon's configuration file: parsed, then checked as a whole, so
//! that `apptoken config check` and a starting daemon report every problem
//! at once, each with its file, line and field.
//!
//! This module holds the public shapes (`DaemonConfig`, `Problem`, the
//! section settings), the located-problem collector (`Checker`) and
//! `from_toml_str`, a short orchestrator:
//!
//! 1. [`raw`]: the serde shapes, parsed with spans (pure);
//! 2. one module per section, in file order of the checks — [`daemon`],
//!    [`identity`], [`apis`], [`jobs`] (with [`tenants`] and [`outputs`]),
//!    [`cache`] — each turning its raw table into settings and problems
//!    (pure: no file-system access of their own);
//! 3. [`preflight`]: everything that touches the file system (credential
//!    files, output and status directories, tenant lists, CA and key files),
//!    reached by the checks only through the [`preflight::Preflight`] trait,
//!    so that a problem is reported in the same order as the value it is
//!    about, whichever kind of check found it;
//! 4. [`expand`]: `${VAR}` expansion of paths.
//!
//! Invariants: problems are reported in the order the sections are checked
//! (daemon, identity, apis, jobs, cache) and, within a job, field by field;
//! a value with a problem is left out of the result (or defaulted), and the
//! result is returned only when no problem was found.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use apptoken::ClientConfig;
use toml::Spanned;
use url::Url;

use crate::duration::parse_duration;
use crate::error::Error;
use crate::schedule::Schedule;

mod apis;
mod cache;
mod daemon;
mod expand;
mod identity;
mod jobs;
mod outputs;
mod preflight;
mod raw;
mod tenants;
#[cfg(test)]
mod test_support;

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

    /// A duration value (`"30s"`) of at least `min`; `None` when absent or
    /// when it has a problem (reported at the value).
    fn duration(
        &mut self,
        v: &Option<Spanned<String>>,
        field: &str,
        min: Duration,
    ) -> Option<Duration> {
        let v = v.as_ref()?;
        match parse_duration(v.get_ref()) {
            Ok(d) if d >= min => Some(d),
            Ok(_) => {
                self.at(Some(v.span()), field, format!("must be at least {min:?}"));
                None
            }
            Err(m) => {
                self.at(Some(v.span()), field, m);
                None
            }
        }
    }
}

/// What the section checks use besides their raw values: the environment,
/// the configuration file's directory and the file system.
struct Inputs<'a> {
    env: &'a dyn Fn(&str) -> Option<String>,
    base: PathBuf,
    files: &'a dyn preflight::Preflight,
}

impl Inputs<'_> {
    /// A path of the file: relative paths resolve against its directory.
    fn resolve(&self, p: &str) -> PathBuf {
        let p = PathBuf::from(p);
        if p.is_relative() {
            self.base.join(p)
        } else {
            p
        }
    }

    /// `${VAR}` expanded from the environment.
    fn expand(&self, text: &str) -> Result<String, String> {
        expand::expand(text, self.env)
    }
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
        let inputs = Inputs {
            env,
            base: path.parent().unwrap_or(Path::new(".")).to_path_buf(),
            files: &preflight::FileSystem,
        };
        DaemonConfig::check(text, path, &inputs)
    }

    /// Parses, then checks section by section (see the module's comment).
    fn check(text: &str, path: &Path, inputs: &Inputs<'_>) -> Result<DaemonConfig, Error> {
        let mut ck = Checker {
            file: path,
            text,
            problems: Vec::new(),
        };
        let raw = match raw::parse(text) {
            Ok(r) => r,
            Err((span, field, message)) => {
                ck.at(span, field, message);
                return Err(Error::Config(ck.problems));
            }
        };
        let rd = raw.daemon.unwrap_or_default();
        let daemon = daemon::check(&mut ck, &rd);
        let identity = identity::check(&mut ck, raw.identity, &rd, inputs);
        let apis = apis::check(&mut ck, &raw.apis);
        let jobs = jobs::check(&mut ck, &raw.jobs, &raw.apis, &apis, inputs);
        let cache = cache::check(&mut ck, raw.cache, inputs);
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

/// The key of a file store without `key_file`: `<file>.key`.
pub(crate) fn key_path_for(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_os_string();
    name.push(".key");
    PathBuf::from(name)
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
    use super::test_support::*;
    use super::*;

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
}
