//! End-to-end tests of the library against the emulator, in process, on
//! loopback ephemeral ports. Nothing here reaches the internet.

mod support;

mod cache;
mod credentials;
mod errors;
mod hostile;
mod managed_identity;
mod managed_identity_emulator;
mod msal_cache;
mod oidc;
mod regional;
mod resilience;
mod storm;
mod targets;
