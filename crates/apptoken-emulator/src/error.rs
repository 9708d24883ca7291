//! The crate's single error type.

use std::path::PathBuf;

/// Everything that can go wrong while configuring or starting the emulator.
///
/// Request-level failures never surface here: the HTTP endpoints answer them
/// in Entra ID's (or Microsoft Graph's) error shape instead.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be read, written or created; the path names it.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done ("reading", "writing", ...).
        action: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The TOML is not valid or does not fit the schema (unknown field, wrong
    /// type). The message carries toml's line and column.
    #[error("invalid emulator configuration: {0}")]
    ConfigSyntax(String),
    /// The configuration parses but is inconsistent: a reference to an unknown
    /// tenant, app or resource, a duplicate id, a malformed GUID or date.
    #[error("invalid emulator configuration: {0}")]
    Config(String),
    /// A certificate or key could not be parsed, generated or encoded.
    #[error("certificate or key error: {0}")]
    Crypto(String),
    /// The listen address is not loopback (not in `127.0.0.0/8`, not `::1`;
    /// `0.0.0.0` and `::` included) and the configuration does not allow
    /// it ([`Config::with_allow_remote`](crate::Config::with_allow_remote)).
    /// Raised before anything is bound.
    #[error(
        "refusing to listen on {addr}: it is not a loopback address (127.0.0.0/8 or ::1), and the \
         emulator's admin API (/_emulator/*: faults, clock, token lifetimes, consent, key rotation, \
         revocation, stats) has no authentication, so anyone who can reach the port could change \
         it. Listen on 127.0.0.1 (or [::1]), or, to expose it anyway, pass --allow-remote \
         (Config::with_allow_remote(true) in Rust)"
    )]
    RemoteListen {
        /// The requested address.
        addr: std::net::SocketAddr,
    },
    /// The listener could not be bound or the server failed to start.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The requested address.
        addr: std::net::SocketAddr,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }
}
