//! The daemon's configuration file: parsed, then checked as a whole, so
//! that `apptoken config check` and a starting daemon report every problem
//! at once, each with its file, line and field.
//!
//! This module holds `DaemonConfig` and `Problem` (the section settings
//! are in [`settings`], re-exported here), the located-problem collector (`Checker`) and
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
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use apptoken::ClientConfig;
use toml::Spanned;
use url::Url;

use crate::error::Error;
use apptoken::parse_duration;

mod apis;
mod cache;
mod daemon;
mod expand;
mod identity;
mod jobs;
mod outputs;
mod preflight;
mod raw;
mod settings;
mod tenants;
pub use tenants::tenants_file_of;
#[cfg(test)]
mod test_support;

pub(crate) use settings::TENANT_PLACEHOLDER;
pub use settings::{
    ApiConfig, CacheSettings, DaemonSettings, JobConfig, LogFormat, OutputConfig, RedisUrl,
};

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
        let apis = apis::check(&mut ck, &raw.apis, identity.issuer.is_some());
        let jobs = jobs::check(&mut ck, &raw.jobs, &raw.apis, &apis, inputs);
        if identity
            .choose_credential()
            .is_ok_and(|c| c.credential == apptoken::CredentialType::ManagedIdentity)
        {
            tenants::managed_identity(&mut ck, &raw.jobs);
        }
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

    /// A file system that holds nothing but what the test says, and
    /// records what was asked of it.
    #[derive(Default)]
    struct FakeFiles {
        asked: std::cell::RefCell<Vec<String>>,
    }

    impl preflight::Preflight for FakeFiles {
        fn file_place(&self, path: &Path) -> Result<(), String> {
            self.asked
                .borrow_mut()
                .push(format!("place {}", path.display()));
            Ok(())
        }
        fn tenant_list(&self, path: &Path) -> Result<Vec<String>, Vec<String>> {
            self.asked
                .borrow_mut()
                .push(format!("tenants {}", path.display()));
            Ok(vec!["x.example".into()])
        }
        fn credential(&self, _: &ClientConfig) -> Result<(), String> {
            self.asked.borrow_mut().push("credential".into());
            Err("no such secret".into())
        }
        fn ca_file(&self, _: &Path) -> Result<Vec<u8>, String> {
            unreachable!("no CA file is named")
        }
        fn secret_file(&self, _: &Path, _: &str) -> Result<(), String> {
            unreachable!("no password file is named")
        }
        fn store_key(&self, _: &Path) -> Result<(), String> {
            unreachable!("no key file is named")
        }
        fn exists(&self, _: &Path) -> bool {
            false
        }
    }

    #[test]
    fn the_checks_reach_the_file_system_only_through_preflight() {
        let text = test_support::with_job(
            "tenants_file = \"/nowhere/tenants.txt\"\noutput = { type = \"file\", path = \"/nowhere/u.jsonl\" }",
        );
        let files = FakeFiles::default();
        let inputs = Inputs {
            env: &|k| (k == "AZURE_CLIENT_SECRET").then(|| "s".into()),
            base: PathBuf::from("/etc/apptoken"),
            files: &files,
        };
        let problems =
            match DaemonConfig::check(&text, Path::new("/etc/apptoken/daemon.toml"), &inputs) {
                Err(Error::Config(p)) => p,
                other => panic!("{other:?}"),
            };
        // The fake's answers, in the order of the fields: no real file read
        // (the default status file sits beside the output: not asked again).
        assert_eq!(
            *files.asked.borrow(),
            [
                "credential",
                "place /nowhere/u.jsonl",
                "tenants /nowhere/tenants.txt",
            ]
        );
        assert_eq!(problems.len(), 1, "{problems:#?}");
        assert_eq!(problems[0].field, "identity");
        assert_eq!(problems[0].message, "no such secret");
    }
}
