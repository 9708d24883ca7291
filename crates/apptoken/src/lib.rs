#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
// Every public type says whether it may grow: `#[non_exhaustive]`, or an
// `allow` with the reason it is closed for good (docs/ARCHITECTURE.md).
#![warn(clippy::exhaustive_enums, clippy::exhaustive_structs)]

mod authority;
mod cache;
mod chain;
mod challenge;
mod client;
mod clock;
mod config;
mod credential;
mod discovery;
mod duration;
mod error;
#[cfg(feature = "file-store")]
mod file_store;
mod files;
mod flight;
/// Entry points for the fuzz targets (`fuzz/`). Not public API.
#[doc(hidden)]
pub mod fuzzing;
mod grant;
mod http;
#[doc(hidden)]
pub mod internal;
mod limits;
mod managed_identity;
mod retry;
mod scope;
mod setting;
mod source;
#[cfg(feature = "shared-store")]
mod store;
mod throttle;
mod token;

pub use authority::{Authority, AuthorityKind, CloudInstance};
pub use chain::{ChainStep, CredentialChoice, CredentialType};
pub use challenge::claims_challenge;
pub use client::{ConfidentialClient, ConfidentialClientBuilder, TokenRequest};
#[cfg(any(test, feature = "test-util"))]
pub use clock::ManualClock;
pub use clock::{Clock, Sleep, SystemClock};
pub use config::ClientConfig;
pub use credential::{
    AssertionContext, AssertionFuture, AssertionSigner, Certificate, ClientSecret, Credential,
    SecretAuthMethod, SignFuture, SigningAlgorithm,
};
pub use duration::parse_duration;
pub use error::{
    AuthorityError, AuthorityErrorKind, Cause, ConfigError, ConfigErrorKind, CredentialError,
    CredentialErrorKind, Details, Error, ExternalError, FileProblem, InternalError,
    InternalErrorKind, Kind, Report, Result, ServerError, StoreError, StoreErrorKind,
};
#[cfg(feature = "file-store")]
pub use file_store::FileStore;
pub use files::read_ca_file;
pub use http::retry_after;
pub use limits::{MAX_LIFETIME, MAX_RETRY_AFTER, MIN_LIFETIME};
pub use managed_identity::{ManagedIdentity, ManagedIdentityId, ManagedIdentityKind};
pub use retry::RetryPolicy;
pub use scope::Scopes;
pub use source::{SourceFuture, SourceRequest, TokenResponse, TokenSource};
#[cfg(feature = "shared-store")]
pub use store::{StoreFuture, StoreKey, TokenStore};
pub use token::AccessToken;

/// The Rust examples of `docs/EMULATOR.md`, compiled (and run, where they
/// are not `no_run`) as doc tests. They live here rather than in the
/// emulator's crate because they use this crate too, and the emulator
/// depends on nothing of the client's, even for its tests.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/EMULATOR.md")]
mod emulator_guide {}

/// The Rust example of `docs/MANAGED_IDENTITY.md`, compiled as a doc test.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/MANAGED_IDENTITY.md")]
mod managed_identity_guide {}
