//! Tokens for other processes, never the credential.
//!
//! Every Azure SDK (and MSAL's managed-identity clients) knows how to ask a
//! local endpoint for a token: the App Service managed-identity protocol,
//! `GET $IDENTITY_ENDPOINT?api-version=2019-08-01&resource=R` with the
//! header `X-IDENTITY-HEADER: $IDENTITY_HEADER`. This crate serves that
//! protocol on loopback from an [`apptoken::ConfidentialClient`] — its
//! cache, single flight and refresh — and runs a child process with the
//! two variables set and the credential's variables removed
//! (`apptoken exec`, docs/EXEC.md).
//!
//! - [`AppServiceEndpoint`]: the endpoint (`app_service.rs`), its request
//!   guards (`guard.rs`) and what it may serve ([`Policy`], `policy.rs`).
//! - [`Exec`]: the child process (`exec.rs`): its environment, signals
//!   forwarded, its exit status passed on.
//!
//! ```no_run
//! # async fn run(client: apptoken::ConfidentialClient) -> Result<(), apptoken_broker::Error> {
//! use std::sync::Arc;
//! use apptoken_broker::{AppServiceEndpoint, Exec, Policy, ServedIdentity};
//!
//! let identity = ServedIdentity::new(client.client_id());
//! let policy = Policy::scopes(["https://vault.azure.net/.default"]);
//! let endpoint = AppServiceEndpoint::start(Arc::new(client), identity, policy).await?;
//! let code = Exec::new("python3", ["job.py"]).run(&endpoint).await?;
//! endpoint.shutdown().await;
//! std::process::exit(i32::from(code));
//! # }
//! ```

mod app_service;
mod error;
mod exec;
mod guard;
mod policy;

pub use app_service::AppServiceEndpoint;
pub use error::Error;
pub use exec::{Exec, REMOVED_VARIABLES};
pub use policy::{Policy, ServedIdentity};
