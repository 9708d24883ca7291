//! `apptoken run`: a daemon that calls web APIs on a schedule with app-only
//! tokens from one shared [`apptoken::ConfidentialClient`], and writes what
//! they answer as JSON Lines.
//!
//! * [`DaemonConfig`]: the TOML configuration (`[identity]`, `[apis.NAME]`,
//!   `[[jobs]]`, `[daemon]`), checked as a whole; every [`Problem`] names
//!   its file, line and field.
//! * [`Daemon`]: the scheduler (an injectable [`apptoken::Clock`]), jobs
//!   with paging, retries and claims challenges, atomic file outputs,
//!   per-tenant runs, credential rotation, systemd notifications, and an
//!   optional `/healthz`, `/readyz`, `/metrics` listener.
//!
//! See `docs/DAEMON.md` for the configuration reference.
//!
//! ```no_run
//! # async fn demo() -> Result<(), apptoken_daemon::Error> {
//! use apptoken_daemon::{Daemon, DaemonConfig, Options};
//! let config = DaemonConfig::load(std::path::Path::new("daemon.toml"), &|k| std::env::var(k).ok())?;
//! let daemon = Daemon::new(config, Options::default())?;
//! let summary = daemon.run_once().await;
//! assert!(summary.all_succeeded());
//! # Ok(()) }
//! ```

mod backoff;
mod check;
mod config;
mod credentials;
mod daemon;
mod duration;
mod error;
mod fleet;
mod http;
mod job;
mod listener;
mod observe;
mod outcome;
mod output;
mod schedule;
mod sdnotify;
mod tenant_list;

pub use check::{CheckOutcome, TenantCheck, check_tenants};
pub use config::{
    ApiConfig, CacheSettings, DaemonConfig, DaemonSettings, JobConfig, LogFormat, OutputConfig,
    Problem, RedisUrl, tenants_file_of,
};
pub use daemon::{Daemon, DaemonHandle, JobOutcome, Options, Progress, RunSummary};
pub use duration::parse_duration;
pub use error::Error;
pub use http::link_next;
pub use observe::install_metrics_recorder;
pub use outcome::{RunOutcome, TenantOutcome, TenantResult};
pub use schedule::Schedule;
pub use tenant_list::{TenantListChange, add_tenants, remove_tenants};
