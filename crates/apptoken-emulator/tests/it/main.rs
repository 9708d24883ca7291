//! Integration tests: the emulator in-process on 127.0.0.1:0, driven with reqwest.

mod support;

mod assertion;
mod clock;
mod discovery;
mod embedded;
mod errors;
mod faults;
mod federation;
mod isv;
mod lifecycle;
mod listen;
mod managed_identity;
mod msal;
mod msal_managed_identity;
mod robustness;
mod sample_api;
mod secret;
mod tls;
