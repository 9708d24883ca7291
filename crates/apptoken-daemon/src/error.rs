//! The daemon's error type.

use crate::config::Problem;

/// What can stop the daemon from starting or running.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration has problems; each names its file, line and field.
    /// Fix them (`apptoken config check FILE` lists them all).
    #[error("{}", problems_text(.0))]
    Config(Vec<Problem>),
    /// The client could not be built from `[identity]` (a credential that
    /// does not load, an invalid authority).
    #[error(transparent)]
    Client(#[from] apptoken::Error),
    /// The health/metrics listener could not bind its address (in use, or
    /// not allowed).
    #[error("cannot listen on {addr}: {message}")]
    Listen {
        /// The address of `[daemon] listen`.
        addr: String,
        /// The operating system's reason.
        message: String,
    },
    /// A tenant list file (`tenants_file`) could not be read, has a
    /// problem, or cannot be written (`apptoken tenants add|remove`).
    #[error("{}: {message}", path.display())]
    TenantList {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Something else at start-up (the signal handlers, the HTTP client).
    #[error("{0}")]
    Other(String),
}

fn problems_text(problems: &[Problem]) -> String {
    let mut s = format!(
        "the configuration has {} problem{}:",
        problems.len(),
        if problems.len() == 1 { "" } else { "s" }
    );
    for p in problems {
        s.push_str("\n  ");
        s.push_str(&p.to_string());
    }
    s
}
