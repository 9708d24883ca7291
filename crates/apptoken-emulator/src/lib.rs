//! A local identity provider that answers the OAuth 2.0 client credentials
//! grant exactly as Microsoft Entra ID's v2.0 endpoint does, plus a sample
//! protected web API shaped like Microsoft Graph's `/v1.0/users`.
//!
//! It is the test bed of the apptoken project: start it in-process on
//! `127.0.0.1:0`, point a client's authority host at
//! [`RunningEmulator::base_url`], and request tokens.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let state = tempfile::tempdir()?;
//! # let dir = state.path();
//! use apptoken_emulator::{Config, Emulator};
//! // `dir` keeps the emulator's keys, certificates and client secret.
//! let emulator = Emulator::start(Config::embedded(dir)?, "127.0.0.1:0".parse()?).await?;
//! let info = emulator.info();
//! println!("{} {} {}", info.authority_host, info.tenant_id, info.client_id);
//! assert!(info.authority_host.starts_with("http://127.0.0.1:"));
//! emulator.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! See `docs/EMULATOR.md` for the configuration schema, the endpoints and
//! the table of error answers.

mod accept_loop;
mod admin;
mod clock;
mod config;
mod consent;
mod crypto;
mod discovery;
mod embedded;
mod error;
mod error_shape;
mod fault;
mod federation;
#[doc(hidden)]
pub mod fuzzing;
pub mod generate;
mod info;
mod jwt;
mod listen;
mod managed_identity;
mod params;
mod router;
mod sample_api;
mod server;
mod state;
mod stats;
mod tenant;
mod tls;
mod token;

pub use admin::TokenLifetimes;
pub use config::Config;
pub use error::Error;
pub use fault::{Fault, Target};
pub use info::ManagedIdentityInfo;
pub use info::{EmulatorInfo, TenantInfo};
pub use server::{Emulator, RunningEmulator};
pub use stats::{ManagedIdentityRequestCount, Stats, TokenRequestCount};
