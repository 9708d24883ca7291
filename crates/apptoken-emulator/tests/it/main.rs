//! Integration tests: the emulator in-process on 127.0.0.1:0, driven with reqwest.

mod support;

mod assertion;
mod discovery;
mod embedded;
mod errors;
mod sample_api;
mod secret;
