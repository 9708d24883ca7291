//! The daemon: scheduler, overlap policy, reload, credential rotation,
//! graceful shutdown, systemd notifications.
//!
//! Why one file (for now): these are the phases of one state machine (the
//! running daemon's lifecycle) and share its state; the pieces that stand
//! alone (jobs, outputs, fleet, credentials, http) already have their own
//! files. Splitting the scheduler from the signal/reload loop is part of
//! issue #18's layout step.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

use apptoken::{Clock, ConfidentialClient, SystemClock};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

use crate::backoff::Book;
use crate::config::{DaemonConfig, JobConfig};
use crate::credentials::Fingerprint;
use crate::error::Error;
use crate::fleet::Fleet;
use crate::http::Api;
use crate::job::{self, FleetTick, JobContext};
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
    /// Uses this clock (tests: [`apptoken::ManualClock`]).
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

#[derive(Debug)]
enum Control {
    Shutdown,
    Reload,
}

/// Tells a running [`Daemon`] to stop or to reload its configuration.
#[derive(Debug, Clone)]
pub struct DaemonHandle {
    tx: mpsc::UnboundedSender<Control>,
}

impl DaemonHandle {
    /// Stops scheduling; running jobs get the grace period to finish.
    pub fn shutdown(&self) {
        let _ = self.tx.send(Control::Shutdown);
    }

    /// Re-reads the configuration file; a file with problems is not used
    /// (they are logged) and the current configuration stays.
    pub fn reload(&self) {
        let _ = self.tx.send(Control::Reload);
    }

    /// SIGTERM and SIGINT shut down (a second one exits the process at once
    /// with status 130); SIGHUP reloads. Needs a tokio runtime.
    #[cfg(unix)]
    pub fn install_signal_handlers(&self) -> Result<(), Error> {
        use tokio::signal::unix::{SignalKind, signal};
        let listen = |k: SignalKind, name: &str| {
            signal(k).map_err(|e| Error::Other(format!("cannot listen for {name}: {e}")))
        };
        let mut term = listen(SignalKind::terminate(), "SIGTERM")?;
        let mut int = listen(SignalKind::interrupt(), "SIGINT")?;
        let mut hup = listen(SignalKind::hangup(), "SIGHUP")?;
        let handle = self.clone();
        tokio::spawn(async move {
            let mut stopping = false;
            loop {
                let stop = tokio::select! {
                    _ = term.recv() => true,
                    _ = int.recv() => true,
                    _ = hup.recv() => false,
                };
                if !stop {
                    info!("SIGHUP: reloading the configuration");
                    handle.reload();
                    continue;
                }
                if stopping {
                    error!(
                        "second stop signal: exiting now, unfinished runs are abandoned (their previous outputs stay)"
                    );
                    std::process::exit(130);
                }
                stopping = true;
                info!(
                    "stop signal: no new runs; waiting for running jobs (the grace period), a second signal exits at once"
                );
                handle.shutdown();
            }
        });
        Ok(())
    }
}

pub(crate) struct Shared {
    config: RwLock<Arc<DaemonConfig>>,
    client: RwLock<ConfidentialClient>,
    apis: RwLock<Arc<BTreeMap<String, Arc<Api>>>>,
    fleet: RwLock<Option<Arc<Fleet>>>,
    clock: Arc<dyn Clock>,
    progress: Option<Arc<dyn Progress>>,
    env: Env,
    running: Mutex<HashSet<String>>,
    tracker: TaskTracker,
    jobs_cancel: CancellationToken,
    /// Failing tenants and their backoff; kept across reloads.
    pub(crate) book: Book,
}

impl Shared {
    pub(crate) fn client(&self) -> ConfidentialClient {
        self.client
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub(crate) fn apis(&self) -> Arc<BTreeMap<String, Arc<Api>>> {
        Arc::clone(&self.apis.read().unwrap_or_else(|p| p.into_inner()))
    }

    pub(crate) fn fleet(&self) -> Option<Arc<Fleet>> {
        self.fleet.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub(crate) fn config(&self) -> Arc<DaemonConfig> {
        Arc::clone(&self.config.read().unwrap_or_else(|p| p.into_inner()))
    }

    fn set_client(&self, client: ConfidentialClient) {
        *self.client.write().unwrap_or_else(|p| p.into_inner()) = client;
    }

    /// Runs `job`; `tick` (a scheduled run) with a shared Redis store makes
    /// it a fleet run (once per fleet).
    async fn run_job(
        &self,
        job: &JobConfig,
        tick: Option<time::OffsetDateTime>,
    ) -> Result<job::RunStats, String> {
        let apis = self.apis();
        let api = apis
            .get(&job.api)
            .ok_or_else(|| format!("no API named '{}'", job.api))?;
        // The tenant list as last read (a tenants file may have changed
        // since this job's schedule started).
        let config = self.config();
        let tenants = config
            .jobs
            .iter()
            .find(|j| j.name == job.name)
            .map_or(&job.tenants, |j| &j.tenants);
        let ctx = JobContext {
            job,
            tenants,
            book: &self.book,
            api,
            client: self.client(),
            clock: self.clock.as_ref(),
            progress: self.progress.as_ref(),
            fleet: tick.zip(self.fleet()).map(|(tick, fleet)| {
                // Wait for another holder until the next tick and two lease
                // lifetimes: a holder that dies is replaced within a TTL.
                let period = job
                    .schedule
                    .next_after(tick)
                    .map_or(time::Duration::ZERO, |n| n - tick);
                let ttl = time::Duration::try_from(fleet.ttl).unwrap_or(time::Duration::MINUTE);
                FleetTick {
                    deadline: tick + period + ttl * 2,
                    fleet,
                    tick,
                }
            }),
        };
        tokio::select! {
            r = job::run(&ctx) => r,
            _ = self.jobs_cancel.cancelled() => Err("cancelled: the grace period ended".into()),
        }
    }

    /// A tick of `job`'s schedule: run it unless it is still running.
    fn tick(self: &Arc<Self>, job: Arc<JobConfig>, at: time::OffsetDateTime) {
        {
            let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
            if !running.insert(job.name.clone()) {
                metrics::counter!("apptoken_daemon_job_skipped_total", "job" => job.name.clone())
                    .increment(1);
                warn!(job = %job.name, "the job is still running at its next tick; this tick is skipped");
                return;
            }
        }
        let shared = Arc::clone(self);
        self.tracker.spawn(async move {
            let r = shared.run_job(&job, Some(at)).await;
            shared
                .running
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&job.name);
            match r {
                Err(e) => {
                    error!(job = %job.name, api = %job.api, error = %e, "job run failed; the previous output stays");
                }
                Ok(s) if s.outcome == RunOutcome::Failure => {
                    error!(job = %job.name, api = %job.api, error = s.error.as_deref(), "job run failed; the previous output stays");
                }
                Ok(_) => {}
            }
        });
    }
}

type Built = (
    ConfidentialClient,
    BTreeMap<String, Arc<Api>>,
    Option<Arc<Fleet>>,
);

/// The client (on the daemon's clock: token lifetimes, refreshes and
/// backoffs all follow one time), the APIs and the fleet of `config`.
fn build(config: &DaemonConfig, clock: &Arc<dyn Clock>) -> Result<Built, Error> {
    let mut builder = config.identity.client_builder()?.clock(Arc::clone(clock));
    let mut fleet = None;
    let cache = &config.cache;
    if let Some(url) = &cache.redis {
        let url = redis_url(&url.0, cache.redis_password_file.as_deref())?;
        let key_file = cache.key_file.as_ref().ok_or_else(|| {
            Error::Other("[cache] redis needs key_file (the key that seals tokens)".into())
        })?;
        let key = apptoken::StoreKey::from_file(key_file)?;
        let redis = match &cache.redis_ca_file {
            Some(ca) => {
                let pem = apptoken::read_ca_file(ca).map_err(|e| Error::Other(e.to_string()))?;
                apptoken_redis::RedisStore::with_ca(&url, &pem)?
            }
            None => apptoken_redis::RedisStore::new(&url)?,
        };
        let store: Arc<dyn apptoken::TokenStore> = Arc::new(redis.with_timeout(cache.timeout));
        builder = builder.shared_store(Arc::clone(&store), key);
        let namespace = config.identity.client_id.clone().unwrap_or_default();
        fleet = Some(Arc::new(Fleet::new(
            store,
            config.daemon.job_lease,
            namespace,
        )));
    } else if let Some(file) = &cache.file {
        let key = match &cache.key_file {
            Some(k) => apptoken::StoreKey::from_file(k)?,
            None => apptoken::StoreKey::load_or_create(crate::config::key_path_for(file))?,
        };
        let store = apptoken::FileStore::open(file)?;
        builder = builder.shared_store(Arc::new(store), key);
    }
    let client = builder.build()?;
    let ca = match &config.identity.ca_file {
        Some(p) => Some(apptoken::read_ca_file(p).map_err(|e| Error::Other(e.to_string()))?),
        None => None,
    };
    let mut apis = BTreeMap::new();
    for (name, a) in &config.apis {
        let api = Api::new(a.clone(), ca.as_deref()).map_err(Error::Other)?;
        apis.insert(name.clone(), Arc::new(api));
    }
    Ok((client, apis, fleet))
}

/// The Redis URL with the password of `password_file` in it (never logged).
fn redis_url(url: &str, password_file: Option<&std::path::Path>) -> Result<String, Error> {
    let Some(pf) = password_file else {
        return Ok(url.to_string());
    };
    let bytes = std::fs::read(pf)
        .map_err(|e| Error::Other(format!("cannot read '{}': {e}", pf.display())))?;
    let password = String::from_utf8(bytes)
        .map_err(|_| Error::Other(format!("'{}' is not UTF-8 text", pf.display())))?;
    let password = password.trim_end_matches(['\r', '\n']);
    let mut u = url::Url::parse(url)
        .map_err(|_| Error::Other("[cache] redis is not a valid URL".into()))?;
    if matches!(u.scheme(), "redis+unix" | "unix") {
        u.query_pairs_mut().append_pair("pass", password);
    } else if u.set_password(Some(password)).is_err() {
        return Err(Error::Other(
            "[cache] redis: this URL cannot carry a password".into(),
        ));
    }
    Ok(u.into())
}

fn publish_certificate(client: &ConfidentialClient, config: &DaemonConfig, clock: &dyn Clock) {
    if let Some(cert) = client
        .credential()
        .and_then(|c| c.certificate_ref().cloned())
    {
        observe::certificate_expiry(&cert, clock.now(), config.daemon.certificate_warning);
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
                    error!(error = %e, "the health/metrics listener stopped");
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
                            error!(error = %e, "the new configuration is not used; the current one stays");
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

fn start_generation(shared: &Arc<Shared>, cancel: CancellationToken, first: bool) {
    for job in &shared.config().jobs {
        tokio::spawn(schedule_loop(
            Arc::clone(shared),
            Arc::new(job.clone()),
            cancel.clone(),
            first,
        ));
    }
}

async fn schedule_loop(
    shared: Arc<Shared>,
    job: Arc<JobConfig>,
    cancel: CancellationToken,
    first: bool,
) {
    let clock = Arc::clone(&shared.clock);
    // A fleet's instances must agree on ticks: `every` counts from the unix
    // epoch instead of from the start.
    let aligned = shared.fleet().is_some();
    let next_after = |t: time::OffsetDateTime| next_tick(&job.schedule, t, aligned);
    let mut next = if job.run_at_start && first {
        let now = clock.now();
        if aligned {
            current_slot(&job.schedule, now)
        } else {
            now
        }
    } else {
        match next_after(clock.now()) {
            Some(n) => n,
            None => return,
        }
    };
    loop {
        let now = clock.now();
        if next > now {
            let wait = (next - now).unsigned_abs();
            tokio::select! {
                _ = clock.sleep(wait) => continue,
                _ = cancel.cancelled() => return,
            }
        }
        if cancel.is_cancelled() {
            return;
        }
        shared.tick(Arc::clone(&job), next);
        let Some(mut n) = next_after(next) else {
            return;
        };
        let now = clock.now();
        if n <= now {
            match next_after(now) {
                Some(m) => n = m,
                None => return,
            }
        }
        next = n;
    }
}

/// The first tick after `after`; `aligned`: `every` ticks are multiples of
/// the interval since the unix epoch (the same on every instance).
pub(crate) fn next_tick(
    schedule: &crate::Schedule,
    after: time::OffsetDateTime,
    aligned: bool,
) -> Option<time::OffsetDateTime> {
    match schedule {
        crate::Schedule::Every(d) if aligned => {
            let step = d.as_millis().max(1) as i128;
            let ms = after.unix_timestamp_nanos() / 1_000_000;
            let next = (ms.div_euclid(step) + 1) * step;
            time::OffsetDateTime::from_unix_timestamp_nanos(next * 1_000_000).ok()
        }
        s => s.next_after(after),
    }
}

/// The aligned tick at or before `now` (a fleet's `run_at_start`).
fn current_slot(schedule: &crate::Schedule, now: time::OffsetDateTime) -> time::OffsetDateTime {
    match schedule {
        crate::Schedule::Every(d) => {
            let step = d.as_millis().max(1) as i128;
            let ms = now.unix_timestamp_nanos() / 1_000_000;
            time::OffsetDateTime::from_unix_timestamp_nanos(ms.div_euclid(step) * step * 1_000_000)
                .unwrap_or(now)
        }
        _ => now.replace_nanosecond(0).unwrap_or(now),
    }
}

async fn watch_credentials(shared: Arc<Shared>, stop: CancellationToken) {
    let mut last = Fingerprint::of(&shared.config().credential_files());
    let mut tenants = Fingerprint::of(&shared.config().tenant_files());
    loop {
        let poll = shared.config().daemon.credential_poll;
        tokio::select! {
            _ = shared.clock.sleep(poll) => {}
            _ = stop.cancelled() => return,
        }
        check_credentials(&shared, &mut last);
        check_tenant_files(&shared, &mut tenants);
    }
}

impl Shared {
    /// Drops the book's entries of tenants no longer configured.
    pub(crate) fn forget_unlisted_tenants(&self) {
        let config = self.config();
        let configured = config
            .jobs
            .iter()
            .flat_map(|j| j.tenants.iter().map(|t| (j.name.clone(), t.clone())))
            .collect();
        self.book.retain(&configured);
    }
}

/// Re-reads the tenant lists when a tenants file changed (one poll). A
/// list with problems is logged and the current one stays; the client, its
/// cache and the schedules are kept.
pub(crate) fn check_tenant_files(shared: &Shared, last: &mut Fingerprint) {
    let config = shared.config();
    let files = config.tenant_files();
    let now = Fingerprint::of(&files);
    if now == *last {
        return;
    }
    *last = now;
    let mut next = (*config).clone();
    let mut changed = false;
    for job in &mut next.jobs {
        let Some(path) = &job.tenants_file else {
            continue;
        };
        match crate::tenant_list::load(path) {
            Ok(list) if list.is_empty() => {
                metrics::counter!("apptoken_daemon_tenant_list_reloads_total", "outcome" => "failure").increment(1);
                error!(job = %job.name, file = %path.display(), "the tenants file lists no tenant; the current list stays");
            }
            Ok(list) => {
                if list != job.tenants {
                    let old: HashSet<&String> = job.tenants.iter().collect();
                    let new: HashSet<&String> = list.iter().collect();
                    let added = new.difference(&old).count();
                    let removed = old.difference(&new).count();
                    info!(job = %job.name, file = %path.display(), tenants = list.len(), added, removed, "the tenants file changed; the next run uses the new list");
                    job.tenants = list;
                    changed = true;
                }
                metrics::counter!("apptoken_daemon_tenant_list_reloads_total", "outcome" => "success").increment(1);
            }
            Err(problems) => {
                metrics::counter!("apptoken_daemon_tenant_list_reloads_total", "outcome" => "failure").increment(1);
                for p in &problems {
                    error!(job = %job.name, problem = %p, "the tenants file has a problem; the current list stays");
                }
            }
        }
    }
    if changed {
        *shared.config.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(next);
        shared.forget_unlisted_tenants();
    }
}

/// Rebuilds the client when a credential file changed (one poll).
pub(crate) fn check_credentials(shared: &Shared, last: &mut Fingerprint) {
    let config = shared.config();
    let now = Fingerprint::of(&config.credential_files());
    if now == *last {
        return;
    }
    *last = now;
    // The new credential goes into the running client: its cache stays.
    match config
        .identity
        .credential()
        .and_then(|c| shared.client().set_credential(c.clone()).map(|()| c))
    {
        Ok(credential) => {
            let client = shared.client();
            publish_certificate(&client, &config, shared.clock.as_ref());
            let thumbprint = credential
                .certificate_ref()
                .map(|c| c.thumbprint_sha1_hex());
            metrics::counter!("apptoken_daemon_credential_reloads_total", "outcome" => "success")
                .increment(1);
            info!(
                thumbprint = thumbprint.as_deref(),
                "a credential file changed; the new credential is used from the next token request"
            );
        }
        Err(e) => {
            metrics::counter!("apptoken_daemon_credential_reloads_total", "outcome" => "failure")
                .increment(1);
            error!(error = %e, "a credential file changed but does not load; the last good credential stays in use");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn thumbprint(d: &Daemon) -> Option<String> {
        d.shared
            .client()
            .credential()
            .and_then(|c| c.certificate_ref().map(|c| c.thumbprint_sha1_hex()))
    }

    fn combined(state: &std::path::Path) -> Vec<u8> {
        let mut pem = std::fs::read(state.join("client-cert.pem")).unwrap();
        pem.extend(std::fs::read(state.join("client-key.pem")).unwrap());
        pem
    }

    fn write_private(path: &std::path::Path, bytes: &[u8]) {
        std::fs::write(path, bytes).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
    }

    #[test]
    fn a_changed_certificate_is_used_and_a_broken_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        apptoken_emulator::Config::embedded(&a).unwrap();
        apptoken_emulator::Config::embedded(&b).unwrap();
        let cert = dir.path().join("app.pem");
        write_private(&cert, &combined(&a));
        let path = dir.path().join("daemon.toml");
        std::fs::write(
            &path,
            "[identity]\nauthority_host = \"http://127.0.0.1:9\"\ntenant_id = \"t.example\"\nclient_id = \"c\"\ncertificate_path = \"app.pem\"\n",
        )
        .unwrap();
        let config = DaemonConfig::load(&path, &|_| None).unwrap();
        let daemon = Daemon::new(config, Options::default()).unwrap();
        let first = thumbprint(&daemon).unwrap();
        let mut last = Fingerprint::of(&daemon.shared.config().credential_files());
        check_credentials(&daemon.shared, &mut last);
        assert_eq!(thumbprint(&daemon).unwrap(), first, "unchanged");
        write_private(&cert, b"-----BEGIN GARBAGE-----\n");
        check_credentials(&daemon.shared, &mut last);
        assert_eq!(
            thumbprint(&daemon).unwrap(),
            first,
            "the last good credential stays"
        );
        write_private(&cert, &combined(&b));
        check_credentials(&daemon.shared, &mut last);
        let second = thumbprint(&daemon).unwrap();
        assert_ne!(second, first, "the new certificate is used");
    }
}
