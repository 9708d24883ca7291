//! The crate's one error type: what can stop the endpoint from starting or
//! the child from running. A refused request is not an error here: it is
//! an answer (`app_service.rs`).

use std::path::PathBuf;

/// Why the endpoint or the child could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The loopback listener could not be opened.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: std::net::SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The system's random generator failed (the header secret).
    #[error("the system's random number generator failed")]
    Random,
    /// The program could not be started.
    #[error("cannot run '{}': {source}", program.display())]
    Spawn {
        /// The program as given.
        program: PathBuf,
        /// The cause (not found, not executable…).
        #[source]
        source: std::io::Error,
        /// The shell's exit code for it: 127 when not found, 126 otherwise.
        code: u8,
    },
    /// Signals could not be set up, or waiting for the child failed.
    #[error("{what}: {source}")]
    Process {
        /// What was being done.
        what: &'static str,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// The exit code a shell gives for this error, when it has one (a
    /// program not found: 127; found but not runnable: 126).
    pub fn exit_code(&self) -> Option<u8> {
        match self {
            Error::Spawn { code, .. } => Some(*code),
            _ => None,
        }
    }
}
