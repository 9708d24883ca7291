//! The daemon: its options, the summary of a run, and [`Daemon`] itself —
//! `new`, `run_once`, and `run`, the lifecycle loop (listener, watchdog,
//! reloads, graceful shutdown within the grace period).
//!
//! The parts of the running daemon have their own files:
//! - `control.rs`: [`DaemonHandle`] (shutdown, reload, signal handlers);
//! - `shared.rs`: the state every task shares (configuration, client, APIs,
//!   fleet, tenant backoffs) and one job run on a tick;
//! - `build.rs`: the client, APIs and fleet built from a configuration;
//! - `schedule.rs`: each job's schedule loop and the fleet-aligned ticks;
//! - `watch.rs`: the credential-file and tenants-file polls.

mod build;
mod control;
mod schedule;
mod shared;
mod watch;

pub use control::DaemonHandle;
pub(crate) use shared::Shared;

use build::{build, publish_certificate};
use control::Control;
use schedule::start_generation;
use watch::watch_credentials;

use std::collections::HashSet;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

use apptoken::{Clock, ConfidentialClient, SystemClock};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info};

use crate::backoff::Book;
use crate::config::DaemonConfig;
use crate::error::Error;
use crate::outcome::{RunOutcome, TenantResult};
use crate::{observe, sdnotify};

/// Reports a run's progress (the CLI draws progress bars with it).
pub trait Progress: Send + Sync {
    /// A page of `job` for `tenant` was written; totals so far.
    fn page(&self, job: &str, tenant: Option<&str>, pages: usize, items: usize);
    /// `job` finished for `tenant`.
    fn finished(&self, job: &str, tenant: Option<&str>, ok: bool);
}

type Env = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// How a [`Daemon`] runs.
#[must_use]
#[non_exhaustive]
pub struct Options {
    /// The clock of schedules, retry waits, the grace period, tenant
    /// backoffs and the client (token lifetimes and refreshes).
    pub clock: Arc<dyn Clock>,
    /// Progress reports of each run.
    pub progress: Option<Arc<dyn Progress>>,
    /// The environment (`AZURE_*`, `CREDENTIALS_DIRECTORY`) for reloads.
    pub env: Env,
}

impl fmt::Debug for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Options")
            .field("clock", &self.clock)
            .field("progress", &self.progress.is_some())
            .finish_non_exhaustive()
    }
}

impl Default for Options {
    fn default() -> Self {
        Options {
            clock: Arc::new(SystemClock::default()),
            progress: None,
            env: Arc::new(|k| std::env::var(k).ok()),
        }
    }
}

impl Options {
    /// Uses this clock (tests: `apptoken::ManualClock`, with its `test-util` feature).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Reports progress to `progress`.
    pub fn progress(mut self, progress: Arc<dyn Progress>) -> Self {
        self.progress = Some(progress);
        self
    }

    /// Reads environment variables through `env` (on reload).
    pub fn env(mut self, env: impl Fn(&str) -> Option<String> + Send + Sync + 'static) -> Self {
        self.env = Arc::new(env);
        self
    }
}

/// One job's result in [`Daemon::run_once`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct JobOutcome {
    /// The job's name.
    pub job: String,
    /// How the run ended.
    pub outcome: RunOutcome,
    /// Pages read, the tenants that succeeded.
    pub pages: usize,
    /// Items written, the tenants that succeeded.
    pub items: usize,
    /// The shared output file written, if any (per-tenant files are in
    /// `tenants`).
    pub output: Option<PathBuf>,
    /// Each tenant's result, in the configured order (one without a tenant
    /// for a job without tenants).
    pub tenants: Vec<TenantResult>,
    /// What failed, in one line (partial and failed runs).
    pub error: Option<String>,
}

/// The results of [`Daemon::run_once`].
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct RunSummary {
    /// One per job, in configuration order.
    pub jobs: Vec<JobOutcome>,
}

impl RunSummary {
    /// Whether every job succeeded, for every tenant.
    pub fn all_succeeded(&self) -> bool {
        self.jobs
            .iter()
            .all(|j| matches!(j.outcome, RunOutcome::Success | RunOutcome::Elsewhere))
    }

    /// The run as a whole: `Failure` if any job failed (or lost its
    /// leases), else `Partial` if any job was partial, else `Success`.
    pub fn outcome(&self) -> RunOutcome {
        let has = |o| self.jobs.iter().any(|j| j.outcome == o);
        if has(RunOutcome::Failure) || has(RunOutcome::Lost) {
            RunOutcome::Failure
        } else if has(RunOutcome::Partial) {
            RunOutcome::Partial
        } else {
            RunOutcome::Success
        }
    }
}

/// The daemon. Build it with [`Daemon::new`], then [`Daemon::run`] (until
/// shut down) or [`Daemon::run_once`].
pub struct Daemon {
    shared: Arc<Shared>,
    tx: mpsc::UnboundedSender<Control>,
    rx: mpsc::UnboundedReceiver<Control>,
    listener: Option<tokio::net::TcpListener>,
}

impl fmt::Debug for Daemon {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Daemon")
            .field("config", &self.shared.config().path)
            .finish_non_exhaustive()
    }
}

impl Daemon {
    /// Builds the client and the API clients from a checked configuration,
    /// and installs the Prometheus recorder.
    pub fn new(config: DaemonConfig, options: Options) -> Result<Daemon, Error> {
        observe::install_metrics_recorder();
        let (client, apis, fleet) = build(&config, &options.clock)?;
        // Before any job runs: what a killed process left behind.
        crate::output::remove_all_orphans(&config);
        publish_certificate(&client, &config, options.clock.as_ref());
        let (tx, rx) = mpsc::unbounded_channel();
        Ok(Daemon {
            shared: Arc::new(Shared {
                config: RwLock::new(Arc::new(config)),
                client: RwLock::new(client),
                apis: RwLock::new(Arc::new(apis)),
                fleet: RwLock::new(fleet),
                clock: options.clock,
                progress: options.progress,
                env: options.env,
                running: Mutex::new(HashSet::new()),
                tracker: TaskTracker::new(),
                jobs_cancel: CancellationToken::new(),
                book: Book::default(),
            }),
            tx,
            rx,
            listener: None,
        })
    }

    /// A handle to stop or reload the daemon.
    pub fn handle(&self) -> DaemonHandle {
        DaemonHandle {
            tx: self.tx.clone(),
        }
    }

    /// The shared client (its cache serves every job).
    pub fn client(&self) -> ConfidentialClient {
        self.shared.client()
    }

    /// Binds `[daemon] listen` (when set) and returns the bound address
    /// (port 0 picks one). [`Daemon::run`] serves it.
    pub async fn bind(&mut self) -> Result<Option<SocketAddr>, Error> {
        let Some(addr) = self.shared.config().daemon.listen else {
            return Ok(None);
        };
        let l = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| Error::Listen {
                addr: addr.to_string(),
                message: e.to_string(),
            })?;
        let local = l.local_addr().map_err(|e| Error::Listen {
            addr: addr.to_string(),
            message: e.to_string(),
        })?;
        self.listener = Some(l);
        Ok(Some(local))
    }

    /// Runs every job once, all at once (per-API and per-tenant bounds
    /// still apply), and reports each.
    pub async fn run_once(&self) -> RunSummary {
        let config = self.shared.config();
        let runs = config.jobs.iter().map(|job| async move {
            let r = self.shared.run_job(job, None).await;
            match r {
                Ok(s) => {
                    if s.outcome == RunOutcome::Failure {
                        error!(job = %job.name, api = %job.api, error = s.error.as_deref(), "job run failed");
                    }
                    JobOutcome {
                        job: job.name.clone(),
                        outcome: s.outcome,
                        pages: s.pages,
                        items: s.items,
                        output: s.output,
                        tenants: s.tenants,
                        error: s.error,
                    }
                }
                Err(e) => {
                    error!(job = %job.name, api = %job.api, error = %e, "job run failed");
                    JobOutcome {
                        job: job.name.clone(),
                        outcome: RunOutcome::Failure,
                        pages: 0,
                        items: 0,
                        output: None,
                        tenants: Vec::new(),
                        error: Some(e),
                    }
                }
            }
        });
        RunSummary {
            jobs: futures::future::join_all(runs).await,
        }
    }

    /// Runs until [`DaemonHandle::shutdown`]: schedules the jobs, serves the
    /// listener, watches the credential files, notifies systemd. Returns
    /// `Ok` when every running job finished within the grace period.
    pub async fn run(mut self) -> Result<(), Error> {
        let shared = Arc::clone(&self.shared);
        let stop_all = CancellationToken::new();
        if let Some(l) = self.listener.take() {
            let app = crate::listener::router(Arc::clone(&shared));
            let stop = stop_all.clone();
            tokio::spawn(async move {
                let served = axum::serve(l, app)
                    .with_graceful_shutdown(async move { stop.cancelled().await })
                    .await;
                if let Err(e) = served {
                    error!(error = %apptoken::Report::of(&e), "the health/metrics listener stopped");
                }
            });
        }
        tokio::spawn(watch_credentials(Arc::clone(&shared), stop_all.clone()));
        if let Some(every) = sdnotify::watchdog_interval() {
            let stop = stop_all.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                loop {
                    tokio::select! {
                        _ = tick.tick() => sdnotify::notify("WATCHDOG=1"),
                        _ = stop.cancelled() => return,
                    }
                }
            });
        }
        let mut generation = CancellationToken::new();
        start_generation(&shared, generation.clone(), true);
        let config = shared.config();
        info!(config = %config.path.display(), jobs = config.jobs.len(), "apptoken daemon started");
        sdnotify::notify("READY=1\nSTATUS=running");
        while let Some(c) = self.rx.recv().await {
            match c {
                Control::Shutdown => break,
                Control::Reload => {
                    sdnotify::notify("RELOADING=1");
                    let path = shared.config().path.clone();
                    let env = Arc::clone(&shared.env);
                    match DaemonConfig::load(&path, &|k| env(k))
                        .and_then(|c| build(&c, &shared.clock).map(|b| (c, b)))
                    {
                        Ok((config, (client, apis, fleet))) => {
                            publish_certificate(&client, &config, shared.clock.as_ref());
                            shared.set_client(client);
                            *shared.fleet.write().unwrap_or_else(|p| p.into_inner()) = fleet;
                            *shared.apis.write().unwrap_or_else(|p| p.into_inner()) =
                                Arc::new(apis);
                            *shared.config.write().unwrap_or_else(|p| p.into_inner()) =
                                Arc::new(config);
                            shared.forget_unlisted_tenants();
                            generation.cancel();
                            generation = CancellationToken::new();
                            start_generation(&shared, generation.clone(), false);
                            metrics::counter!("apptoken_daemon_config_reloads_total", "outcome" => "success").increment(1);
                            info!("configuration reloaded");
                        }
                        Err(e) => {
                            metrics::counter!("apptoken_daemon_config_reloads_total", "outcome" => "failure").increment(1);
                            error!(error = %apptoken::Report::of(&e), "the new configuration is not used; the current one stays");
                        }
                    }
                    sdnotify::notify("READY=1");
                }
            }
        }
        sdnotify::notify("STOPPING=1");
        generation.cancel();
        shared.tracker.close();
        let grace = shared.config().daemon.grace_period;
        let finished = tokio::select! {
            _ = shared.tracker.wait() => true,
            _ = shared.clock.sleep(grace) => false,
        };
        let result = if finished {
            info!("all runs finished; stopping");
            Ok(())
        } else {
            shared.jobs_cancel.cancel();
            shared.tracker.wait().await;
            error!(grace_period = ?grace, "running jobs did not finish within the grace period; they were cancelled (their previous outputs stay)");
            Err(Error::Other(format!(
                "running jobs did not finish within the grace period ({grace:?})"
            )))
        };
        stop_all.cancel();
        result
    }
}
