//! `apptoken run` and `apptoken config check`: the daemon of
//! `apptoken-daemon`, with logging, signals and progress bars.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::Path;
use std::sync::{Arc, Mutex};

use apptoken_daemon::{Daemon, DaemonConfig, Options, Progress, RunOutcome};

use crate::cli::{LogFormat, RunArgs};
use crate::exit;
use crate::{Failure, init_logging};

fn env(k: &str) -> Option<String> {
    std::env::var(k).ok()
}

pub(crate) fn failure(e: apptoken_daemon::Error) -> Failure {
    Failure::from(e)
}

pub(crate) async fn run(
    args: RunArgs,
    log_level: Option<String>,
    log_format: LogFormat,
) -> Result<(), Failure> {
    let cli_json = matches!(log_format, LogFormat::Json);
    let config = match DaemonConfig::load(&args.config, &env) {
        Ok(c) => c,
        Err(e) => {
            init_logging(log_level.as_deref(), "info", cli_json);
            return Err(failure(e));
        }
    };
    let json = cli_json || config.daemon.log_format == Some(apptoken_daemon::LogFormat::Json);
    // JSON when `--log-format json` or `[daemon] log_format = "json"`.
    init_logging(log_level.as_deref(), "info", json);
    apptoken_daemon::install_metrics_recorder();
    let mut options = Options::default();
    let bars = (args.once && std::io::stderr().is_terminal()).then(|| Arc::new(Bars::default()));
    if let Some(b) = &bars {
        options = options.progress(Arc::clone(b) as Arc<dyn Progress>);
    }
    let mut daemon = Daemon::new(config, options).map_err(failure)?;
    if args.once {
        let summary = daemon.run_once().await;
        if let Some(b) = &bars {
            b.multi.clear().ok();
        }
        for j in &summary.jobs {
            let written = match &j.output {
                Some(p) => p.display().to_string(),
                None if j.tenants.iter().any(|t| t.output.is_some()) => {
                    "one file per tenant".to_string()
                }
                None => "standard output".to_string(),
            };
            let e = j.error.as_deref().unwrap_or("");
            match j.outcome {
                RunOutcome::Success | RunOutcome::Elsewhere => eprintln!(
                    "{}: {} pages, {} items -> {written}",
                    j.job, j.pages, j.items
                ),
                RunOutcome::Partial => eprintln!(
                    "{}: PARTIAL: {} pages, {} items -> {written}; {e}",
                    j.job, j.pages, j.items
                ),
                _ => eprintln!("{}: FAILED: {e}", j.job),
            }
        }
        let failed = summary
            .jobs
            .iter()
            .filter(|j| {
                !matches!(
                    j.outcome,
                    RunOutcome::Success | RunOutcome::Elsewhere | RunOutcome::Partial
                )
            })
            .count();
        let partial = summary
            .jobs
            .iter()
            .filter(|j| j.outcome == RunOutcome::Partial)
            .count();
        return match summary.outcome() {
            RunOutcome::Partial => Err(Failure {
                code: exit::PARTIAL,
                error: anyhow::anyhow!(
                    "{partial} of {} jobs partial: some tenants failed or were skipped, the others were written (see the status files)",
                    summary.jobs.len()
                ),
            }),
            RunOutcome::Failure | RunOutcome::Lost => Err(Failure {
                code: exit::FAILURE,
                error: anyhow::anyhow!("{failed} of {} jobs failed", summary.jobs.len()),
            }),
            _ => Ok(()),
        };
    }
    if let Some(addr) = daemon.bind().await.map_err(failure)? {
        eprintln!(
            "apptoken run: health and metrics on http://{addr} (/healthz, /readyz, /metrics)"
        );
    }
    daemon.handle().install_signal_handlers().map_err(failure)?;
    daemon.run().await.map_err(failure)
}

pub(crate) fn config_check(file: &Path) -> Result<(), Failure> {
    match DaemonConfig::load(file, &env) {
        Ok(c) => {
            println!(
                "{}: OK ({} APIs, {} jobs, credential: {})",
                file.display(),
                c.apis.len(),
                c.jobs.len(),
                c.identity.credential_kind().unwrap_or("none")
            );
            // The certificate loaded fine (checked above); warn ahead of its expiry.
            if let Ok(cred) = c.identity.credential()
                && let Some(cert) = cred.certificate_ref()
            {
                let left = cert.not_after() - time::OffsetDateTime::now_utc();
                let warn = time::Duration::try_from(c.daemon.certificate_warning)
                    .unwrap_or(time::Duration::ZERO);
                if left < warn {
                    println!(
                        "warning: the certificate {} ({}) expires on {} (in {} days): register a new one",
                        cert.thumbprint_sha1_hex(),
                        cert.subject(),
                        cert.not_after().date(),
                        left.whole_days()
                    );
                }
            }
            Ok(())
        }
        Err(apptoken_daemon::Error::Config(problems)) => {
            for p in &problems {
                println!("{p}");
            }
            Err(Failure {
                code: exit::CONFIG,
                error: anyhow::anyhow!(
                    "{}: {} problem{}",
                    file.display(),
                    problems.len(),
                    if problems.len() == 1 { "" } else { "s" }
                ),
            })
        }
        Err(e) => Err(failure(e)),
    }
}

/// A progress bar per job and tenant (`run --once` on a terminal).
#[derive(Default)]
struct Bars {
    multi: indicatif::MultiProgress,
    jobs: Mutex<HashMap<String, JobBar>>,
}

/// One job's bar: its tenants summed (a job may have thousands).
struct JobBar {
    bar: indicatif::ProgressBar,
    /// Pages and items so far, per tenant.
    tenants: HashMap<Option<String>, (usize, usize)>,
    done: usize,
    failed: usize,
}

impl Bars {
    fn update(&self, job: &str, f: impl FnOnce(&mut JobBar)) {
        let mut jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        let j = jobs.entry(job.to_string()).or_insert_with(|| {
            let bar = self.multi.add(indicatif::ProgressBar::new_spinner());
            if let Ok(style) = indicatif::ProgressStyle::with_template("{spinner} {prefix}: {msg}")
            {
                bar.set_style(style);
            }
            bar.set_prefix(job.to_string());
            JobBar {
                bar,
                tenants: HashMap::new(),
                done: 0,
                failed: 0,
            }
        });
        f(j);
        let (pages, items) = j
            .tenants
            .values()
            .fold((0, 0), |(p, i), (a, b)| (p + a, i + b));
        let tenants = if j.tenants.len() > 1 || j.tenants.keys().any(Option::is_some) {
            format!(
                ", {} tenants done{}",
                j.done,
                if j.failed > 0 {
                    format!(" ({} failed or skipped)", j.failed)
                } else {
                    String::new()
                }
            )
        } else {
            String::new()
        };
        j.bar
            .set_message(format!("{pages} pages, {items} items{tenants}"));
        j.bar.tick();
    }
}

impl Progress for Bars {
    fn page(&self, job: &str, tenant: Option<&str>, pages: usize, items: usize) {
        self.update(job, |j| {
            j.tenants.insert(tenant.map(str::to_string), (pages, items));
        });
    }

    fn finished(&self, job: &str, tenant: Option<&str>, ok: bool) {
        self.update(job, |j| {
            j.tenants.entry(tenant.map(str::to_string)).or_default();
            j.done += 1;
            if !ok {
                j.failed += 1;
            }
        });
    }
}

/// The demo's last step: the daemon, with an embedded configuration, runs
/// one job listing the sample users of both tenants into a JSON Lines file.
pub(crate) async fn demo_daemon(
    info: &apptoken_emulator::EmulatorInfo,
    state_dir: &Path,
) -> Result<(), Failure> {
    let output =
        std::env::temp_dir().join(format!("apptoken-demo-users-{}.jsonl", std::process::id()));
    let mut tenants = vec![format!("{:?}", info.tenant_domain)];
    tenants.extend(info.other_tenants.iter().map(|t| format!("{:?}", t.domain)));
    let text = format!(
        r#"[identity]
authority_host = {host:?}
tenant_id = {tenant:?}
client_id = {client:?}
client_secret_file = "client-secret"

[apis.sample]
base_url = {api:?}
scopes = [{scope:?}]

[[jobs]]
name = "users"
api = "sample"
path = "users?$top=10"
every = "15m"
output = {{ type = "file", path = {output:?} }}
tenants = [{tenants}]
"#,
        host = info.authority_host,
        tenant = info.tenant_id,
        client = info.client_id,
        api = info.sample_api,
        scope = info.sample_scope,
        output = output.display().to_string(),
        tenants = tenants.join(", "),
    );
    let path = state_dir.join("daemon.toml");
    std::fs::write(&path, &text).map_err(anyhow::Error::from)?;
    let config = DaemonConfig::load(&path, &|_| None).map_err(failure)?;
    let daemon = Daemon::new(config, Options::default()).map_err(failure)?;
    let summary = daemon.run_once().await;
    let job = summary
        .jobs
        .first()
        .ok_or_else(|| anyhow::anyhow!("the demo job did not run"))?;
    if let Some(e) = &job.error {
        return Err(anyhow::anyhow!("the demo daemon job failed: {e}").into());
    }
    println!();
    println!(
        "daemon (apptoken run --once): job \"users\" read {} users of {} tenants in {} pages -> {}",
        job.items,
        tenants.len(),
        job.pages,
        output.display()
    );
    println!("   one JSON line per user: {{\"job\", \"tenant\", \"item\"}}; see docs/DAEMON.md");
    Ok(())
}
