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
//! One run of every job (as `apptoken run --once`), here against the
//! embedded emulator (this example runs as a test):
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let state = tempfile::tempdir()?;
//! # let dir = state.path();
//! # let emulator = apptoken_emulator::Emulator::start(
//! #     apptoken_emulator::Config::embedded(&dir.join("emulator"))?, "127.0.0.1:0".parse()?).await?;
//! # let info = emulator.info();
//! # std::fs::write(dir.join("daemon.toml"), format!(
//! #     "[identity]\nauthority_host = \"{}\"\ntenant_id = \"{}\"\nclient_id = \"{}\"\n\
//! #      client_secret_file = \"emulator/client-secret\"\n\
//! #      [apis.sample]\nbase_url = \"{}\"\nscopes = [\"{}\"]\n\
//! #      [[jobs]]\nname = \"users\"\napi = \"sample\"\npath = \"users\"\nevery = \"1h\"\n\
//! #      output = {{ type = \"file\", path = \"users.jsonl\" }}\n",
//! #     info.authority_host, info.tenant_id, info.client_id, info.sample_api, info.sample_scope))?;
//! use apptoken_daemon::{Daemon, DaemonConfig, Options};
//! let config = DaemonConfig::load(&dir.join("daemon.toml"), &|k| std::env::var(k).ok())?;
//! let daemon = Daemon::new(config, Options::default())?;
//! let summary = daemon.run_once().await;
//! assert!(summary.all_succeeded());
//! # assert!(std::fs::read_to_string(dir.join("users.jsonl"))?.lines().count() > 0);
//! # emulator.shutdown().await;
//! # Ok(()) }
//! ```

mod backoff;
mod check;
mod config;
mod credentials;
mod daemon;

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
pub use error::Error;
pub use http::link_next;
pub use observe::install_metrics_recorder;
pub use outcome::{RunOutcome, TenantOutcome, TenantResult};
pub use schedule::Schedule;
pub use tenant_list::{TenantListChange, add_tenants, remove_tenants};

/// The Rust examples of `docs/DAEMON.md`, compiled as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/DAEMON.md")]
mod daemon_guide {}
