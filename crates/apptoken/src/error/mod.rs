//! The crate's error type, [`Error`], and its methods. Its parts each have
//! their file: `details` (the typed detail a variant holds: kind, message,
//! setting or file, cause), `kinds` (one kind enum per category), `server`
//! (the identity provider's answer), `external` (another crate's error) and
//! `report` (an error with its causes, for logs).

mod details;
mod external;
mod kinds;
mod report;
mod server;

use std::sync::Arc;
use std::time::Duration;

pub use details::{
    AuthorityError, ConfigError, CredentialError, Details, InternalError, Kind, StoreError,
};
pub(crate) use details::{authority, config, credential};
pub use external::ExternalError;
pub use kinds::{
    AuthorityErrorKind, ConfigErrorKind, CredentialErrorKind, FileProblem, InternalErrorKind,
    StoreErrorKind,
};
pub use report::Report;
pub use server::ServerError;

/// Everything that can go wrong while getting a token.
///
/// Every variant says what to fix. No variant ever carries a secret, a client
/// assertion or a token: messages are safe to log.
///
/// Match on the variant for the category, then on the detail's
/// [`kind`](Details::kind) for what exactly is wrong; the detail also names
/// the setting ([`Details::setting`]) or file ([`Details::path`]) at fault,
/// and [`std::error::Error::source`] gives the cause (the I/O, TLS or parse
/// error), never flattened into the text. [`Error::report`] prints the whole
/// chain, for logs.
///
/// ```
/// # async fn f(client: apptoken::ConfidentialClient) {
/// use apptoken::{CredentialErrorKind, Error, FileProblem};
/// match client.acquire_token(&["https://graph.microsoft.com/.default"]).await {
///     Ok(token) => { /* … */ }
///     Err(Error::Credential(c))
///         if c.kind() == CredentialErrorKind::File(FileProblem::OpenToOthers) =>
///     {
///         eprintln!("fix the permissions of {:?}", c.path());
///     }
///     Err(e) if e.is_retryable() => { /* try later */ }
///     Err(e) => eprintln!("{}", e.report()),
/// }
/// # }
/// ```
///
/// The variants are built by this crate. The crates that implement its
/// traits ([`crate::TokenSource`], `TokenStore` with the `shared-store`
/// feature) build theirs with
/// the public constructors: [`Error::server`], [`Error::transport`],
/// [`Error::invalid_response`], [`Error::external`], and the details' own
/// [`Details::new`] converted with `.into()`.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The client was configured with something unusable: a missing client
    /// id, a conflicting option, an unreadable CA file. The detail names the
    /// setting or file.
    #[error(transparent)]
    Configuration(ConfigError),

    /// The authority (identity provider address and tenant) is not usable for
    /// the client credentials grant: not `https`, a malformed tenant, or a
    /// tenant such as `common` that does not name one directory.
    #[error(transparent)]
    Authority(AuthorityError),

    /// A scope was refused before any request was sent. App-only tokens from
    /// Entra ID take one static scope, the resource's application ID URI
    /// followed by `/.default`; a generic OpenID provider's scopes are RFC
    /// 6749 scope tokens. The reason says which rule was broken.
    #[non_exhaustive]
    #[error("scope '{scope}' cannot be used with the client credentials grant: {reason}")]
    InvalidScope {
        /// The scope as given.
        scope: String,
        /// Why it was refused.
        reason: String,
    },

    /// The credential could not be loaded or used: an unreadable or unsafe
    /// secret file, a certificate that does not parse, a wrong password, a
    /// key that does not match the certificate, an empty assertion file.
    #[error(transparent)]
    Credential(CredentialError),

    /// The identity provider answered with an error. The server's fields
    /// (`error`, `error_codes` with the AADSTS numbers, `trace_id`,
    /// `correlation_id`) are kept: search for the AADSTS code.
    #[error("{0}")]
    IdentityProvider(Box<ServerError>),

    /// The identity provider could not be reached (DNS, connection, TLS,
    /// timeout). The cause (the connection's or TLS's error) is the
    /// [`source`](std::error::Error::source).
    #[non_exhaustive]
    #[error("could not reach {url}: {message}")]
    Transport {
        /// The address asked, without query string.
        url: String,
        /// What went wrong, in a few words; the cause holds the details.
        message: String,
        /// Whether the request timed out.
        timeout: bool,
        /// The underlying error.
        #[source]
        source: Option<Cause>,
    },

    /// A shared token store (Redis, the token cache file…) failed. The
    /// client itself never returns this: it carries on without the store;
    /// store implementations and their callers do.
    #[error(transparent)]
    Store(StoreError),

    /// The identity provider answered, but not with something this client
    /// can use: not JSON, no `access_token`, a bad `expires_in`, a discovery
    /// document without a token endpoint.
    #[non_exhaustive]
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
    /// was cancelled (the runtime shutting down), or the platform failed
    /// (no randomness). Nothing is cached for the key and the next call
    /// starts a fresh request. Please report it, with the log.
    #[error(transparent)]
    Internal(InternalError),

    /// A [`crate::TokenSource`] or `TokenStore` (`shared-store` feature) of
    /// another crate failed with its own error, kept as the detail's source (made with
    /// [`Error::external`]).
    #[error(transparent)]
    External(ExternalError),
}

/// The cause of an error: any error, shared so that [`Error`] stays `Clone`
/// (one failed request answers every caller waiting on it).
pub type Cause = Arc<dyn std::error::Error + Send + Sync + 'static>;

impl Error {
    /// An identity provider's error answer, for [`crate::TokenSource`]
    /// implementations (see [`ServerError::new`]).
    pub fn server(error: ServerError) -> Error {
        Error::IdentityProvider(Box::new(error))
    }

    /// The provider at `url` could not be reached: `message` says how in a
    /// few words, `cause` is the underlying error. For
    /// [`crate::TokenSource`] implementations; retryable.
    pub fn transport(
        url: impl Into<String>,
        message: impl Into<String>,
        timeout: bool,
        cause: Option<Cause>,
    ) -> Error {
        Error::Transport {
            url: url.into(),
            message: message.into(),
            timeout,
            source: cause,
        }
    }

    /// The provider at `url` answered with something unusable. Retryable
    /// when `status` is 408, 429 or 5xx.
    pub fn invalid_response(
        url: impl Into<String>,
        status: u16,
        message: impl Into<String>,
    ) -> Error {
        Error::InvalidResponse {
            url: url.into(),
            status,
            message: message.into(),
        }
    }

    /// Another crate's [`crate::TokenSource`] or `TokenStore`
    /// (`shared-store` feature) failed with its own error; `retryable` says whether trying again
    /// later may succeed (the client's retries and
    /// [`Error::is_retryable`] follow it).
    pub fn external(
        error: impl std::error::Error + Send + Sync + 'static,
        retryable: bool,
    ) -> Error {
        Error::External(ExternalError::new(Arc::new(error), retryable))
    }

    /// The error followed by its causes, `: `-separated: what logs and
    /// the command line print.
    pub fn report(&self) -> Report<'_> {
        Report::of(self)
    }

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
            Error::External(e) => e.is_retryable(),
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

/// Shorthand used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
