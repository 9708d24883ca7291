//! What every task of a running daemon shares ([`Shared`]): the current
//! configuration, client, APIs and fleet (swapped whole on a reload), the
//! running jobs, the task tracker for the grace period, and the tenants'
//! backoff book (kept across reloads); and one job's run on a tick.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};

use apptoken::{Clock, ConfidentialClient};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, warn};

use super::{Env, Progress};
use crate::backoff::Book;
use crate::config::{DaemonConfig, JobConfig};
use crate::fleet::Fleet;
use crate::http::Api;
use crate::job::{self, FleetTick, JobContext};
use crate::outcome::RunOutcome;

pub(crate) struct Shared {
    pub(super) config: RwLock<Arc<DaemonConfig>>,
    pub(super) client: RwLock<ConfidentialClient>,
    pub(super) apis: RwLock<Arc<BTreeMap<String, Arc<Api>>>>,
    pub(super) fleet: RwLock<Option<Arc<Fleet>>>,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) progress: Option<Arc<dyn Progress>>,
    pub(super) env: Env,
    pub(super) running: Mutex<HashSet<String>>,
    pub(super) tracker: TaskTracker,
    pub(super) jobs_cancel: CancellationToken,
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

    pub(super) fn set_client(&self, client: ConfidentialClient) {
        *self.client.write().unwrap_or_else(|p| p.into_inner()) = client;
    }

    /// Runs `job`; `tick` (a scheduled run) with a shared Redis store makes
    /// it a fleet run (once per fleet).
    pub(super) async fn run_job(
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
    pub(super) fn tick(self: &Arc<Self>, job: Arc<JobConfig>, at: time::OffsetDateTime) {
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
