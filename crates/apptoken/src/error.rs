//! The crate's error type.

use std::fmt;
use std::time::Duration;

/// Everything that can go wrong while getting a token.
///
/// Every variant says what to fix. No variant ever carries a secret, a client
/// assertion or a token: messages are safe to log.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The client was configured with something unusable (a missing client id,
    /// a conflicting option). The message names the setting.
    #[error("configuration error: {0}")]
    Configuration(String),

    /// The authority (identity provider address and tenant) is not usable for
    /// the client credentials grant: not `https`, a malformed tenant, or a
    /// tenant such as `common` that does not name one directory.
    #[error("invalid authority: {0}")]
    Authority(String),

    /// A scope was refused before any request was sent. App-only tokens take
    /// one static scope, the resource's application ID URI followed by
    /// `/.default`.
    #[error(
        "scope '{scope}' cannot be used with the client credentials grant: {reason}. \
         App-only tokens are requested with one static scope, the resource's application ID URI \
         followed by '/.default' (for example 'https://graph.microsoft.com/.default'); the \
         permissions come from the app roles an administrator granted to the app"
    )]
    InvalidScope {
        /// The scope as given.
        scope: String,
        /// Why it was refused.
        reason: String,
    },

    /// The credential could not be loaded or used: an unreadable or unsafe
    /// secret file, a certificate that does not parse, a wrong password, a
    /// key that does not match the certificate, an empty assertion file.
    #[error("credential error: {0}")]
    Credential(String),

    /// The identity provider answered with an error. The server's fields
    /// (`error`, `error_codes` with the AADSTS numbers, `trace_id`,
    /// `correlation_id`) are kept: search for the AADSTS code.
    #[error("{0}")]
    IdentityProvider(Box<ServerError>),

    /// The identity provider could not be reached (DNS, connection, TLS,
    /// timeout).
    #[error("could not reach {url}: {message}")]
    Transport {
        /// The address asked, without query string.
        url: String,
        /// What went wrong.
        message: String,
        /// Whether the request timed out.
        timeout: bool,
    },

    /// A shared token store (Redis, …) failed. The client itself never
    /// returns this: it carries on without the store; store implementations
    /// and their callers do.
    #[error("shared token store: {0}")]
    Store(String),

    /// The identity provider answered, but not with something this client
    /// can use: not JSON, no `access_token`, a bad `expires_in`, a discovery
    /// document without a token endpoint.
    #[error("unexpected response from {url} (HTTP {status}): {message}")]
    InvalidResponse {
        /// The address asked, without query string.
        url: String,
        /// The HTTP status of the answer.
        status: u16,
        /// What was wrong with it.
        message: String,
    },

    /// A bug in apptoken or in a [`crate::TokenSource`] it called, not in
    /// the configuration: the task that was getting the token panicked or
    /// was cancelled (the runtime shutting down). Nothing is cached for the
    /// key and the next call starts a fresh request. Please report it, with
    /// the log.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// The identity provider's error, when the failure came from it.
    pub fn server_error(&self) -> Option<&ServerError> {
        match self {
            Error::IdentityProvider(e) => Some(e),
            _ => None,
        }
    }

    /// The AADSTS codes of an identity provider error (empty otherwise).
    pub fn aadsts_codes(&self) -> &[i64] {
        self.server_error()
            .map(|e| e.error_codes.as_slice())
            .unwrap_or(&[])
    }

    /// The HTTP status of the answer that caused this error, if there was one.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::IdentityProvider(e) => Some(e.status),
            Error::InvalidResponse { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether this is a timeout.
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Transport { timeout: true, .. })
    }

    /// Whether trying again later may succeed: transport failures, timeouts,
    /// 408, 429 and 5xx answers. Configuration, credential and 4xx errors such
    /// as `invalid_client` are not retryable.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Transport { .. } => true,
            Error::IdentityProvider(e) => matches!(e.status, 408 | 429 | 500..=599),
            Error::InvalidResponse { status, .. } => matches!(status, 408 | 429 | 500..=599),
            _ => false,
        }
    }

    /// Whether the identity provider throttled the request (HTTP 429).
    pub fn is_throttled(&self) -> bool {
        self.status() == Some(429)
    }

    /// The wait the server asked for with `Retry-After`, if any, capped at
    /// [`crate::MAX_RETRY_AFTER`] (an hour) whoever built the error.
    pub fn retry_after(&self) -> Option<Duration> {
        self.server_error()
            .and_then(|e| e.retry_after)
            .map(|d| d.min(crate::MAX_RETRY_AFTER))
    }
}

/// An error answer from the identity provider, with every field Entra ID sends.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerError {
    /// HTTP status.
    pub status: u16,
    /// OAuth `error` (`invalid_client`, `invalid_scope`, …). Empty when the
    /// answer was not an OAuth error document (for example a plain-text 429).
    pub error: String,
    /// `error_description`; for Entra it starts with `AADSTSnnnnn:`.
    pub error_description: Option<String>,
    /// `error_codes`: the AADSTS numbers.
    pub error_codes: Vec<i64>,
    /// `suberror`, when sent.
    pub suberror: Option<String>,
    /// `trace_id` (Entra also sends it as `x-ms-request-id`).
    pub trace_id: Option<String>,
    /// `correlation_id`: the `client-request-id` this client sent.
    pub correlation_id: Option<String>,
    /// `timestamp`, as the server wrote it.
    pub timestamp: Option<String>,
    /// `error_uri`, when sent.
    pub error_uri: Option<String>,
    /// The wait asked for by a `Retry-After` header.
    pub retry_after: Option<Duration>,
    /// The endpoint that answered (no query string).
    pub url: String,
    /// The start of a body that was not an OAuth error document (at most
    /// 512 characters), for diagnostics.
    pub body_excerpt: Option<String>,
}

impl ServerError {
    /// An answer with this HTTP status and OAuth `error`, every other field
    /// empty: for [`crate::TokenSource`] implementations, which then set
    /// the fields they know (`retry_after`, `error_codes`, …).
    pub fn new(status: u16, error: impl Into<String>) -> ServerError {
        ServerError {
            status,
            error: error.into(),
            error_description: None,
            error_codes: Vec::new(),
            suberror: None,
            trace_id: None,
            correlation_id: None,
            timestamp: None,
            error_uri: None,
            retry_after: None,
            url: String::new(),
            body_excerpt: None,
        }
    }

    /// The `AADSTSnnnnn` codes as strings, for messages and searches.
    pub fn aadsts(&self) -> Vec<String> {
        self.error_codes
            .iter()
            .map(|c| format!("AADSTS{c}"))
            .collect()
    }
}

impl fmt::Debug for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerError")
            .field("status", &self.status)
            .field("error", &self.error)
            .field("error_codes", &self.error_codes)
            .field("error_description", &self.error_description)
            .field("suberror", &self.suberror)
            .field("trace_id", &self.trace_id)
            .field("correlation_id", &self.correlation_id)
            .field("timestamp", &self.timestamp)
            .field("retry_after", &self.retry_after)
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the identity provider refused the request (HTTP {}",
            self.status
        )?;
        if !self.error.is_empty() {
            write!(f, ", {}", self.error)?;
        }
        f.write_str(")")?;
        match &self.error_description {
            // Entra's descriptions end with Trace ID / Correlation ID / Timestamp
            // lines; keep the first line and print the ids once, below.
            Some(d) => write!(f, ": {}", d.lines().next().unwrap_or("").trim())?,
            None => {
                if let Some(body) = &self.body_excerpt {
                    write!(f, ": {body}")?;
                }
            }
        }
        if let Some(t) = &self.trace_id {
            write!(f, " [trace id {t}")?;
            if let Some(c) = &self.correlation_id {
                write!(f, ", correlation id {c}")?;
            }
            f.write_str("]")?;
        } else if let Some(c) = &self.correlation_id {
            write!(f, " [correlation id {c}]")?;
        }
        if let Some(r) = self.retry_after {
            write!(f, " (retry after {}s)", r.as_secs())?;
        }
        Ok(())
    }
}

/// Shorthand used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
