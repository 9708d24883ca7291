//! Another crate's error (a `TokenSource` or `TokenStore` of its own),
//! kept whole.

use std::fmt;

use super::Cause;

/// Another crate's error, kept whole (see [`Error::external`](super::Error::external)).
#[derive(Debug, Clone)]
pub struct ExternalError {
    source: Cause,
    retryable: bool,
}

impl ExternalError {
    pub(super) fn new(source: Cause, retryable: bool) -> ExternalError {
        ExternalError { source, retryable }
    }

    /// Whether the implementation said trying again may succeed.
    pub fn is_retryable(&self) -> bool {
        self.retryable
    }

    /// The error itself, to downcast to the implementation's type.
    pub fn get(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        &*self.source
    }
}

impl fmt::Display for ExternalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.source, f)
    }
}

impl std::error::Error for ExternalError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.source()
    }
}
