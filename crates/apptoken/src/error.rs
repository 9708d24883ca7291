//! The crate's error type: [`Error`], the typed details its variants hold
//! ([`Details`] with a kind per category: what is wrong, with which setting
//! or file, and the cause), and the identity provider's answer
//! ([`ServerError`]).

use std::borrow::Cow;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

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
/// traits ([`crate::TokenSource`], [`crate::TokenStore`]) build theirs with
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
    /// followed by `/.default`.
    #[non_exhaustive]
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

    /// A [`crate::TokenSource`] or [`crate::TokenStore`] of another crate
    /// failed with its own error, kept as the detail's source (made with
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

    /// Another crate's [`crate::TokenSource`] or [`crate::TokenStore`]
    /// failed with its own error; `retryable` says whether trying again
    /// later may succeed (the client's retries and
    /// [`Error::is_retryable`] follow it).
    pub fn external(
        error: impl std::error::Error + Send + Sync + 'static,
        retryable: bool,
    ) -> Error {
        Error::External(ExternalError {
            source: Arc::new(error),
            retryable,
        })
    }

    /// The error followed by its causes, `: `-separated: what logs and
    /// the command line print.
    pub fn report(&self) -> Report<'_> {
        Report(self)
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
            Error::External(e) => e.retryable,
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

/// The detail of a [`Error::Configuration`], [`Error::Authority`],
/// [`Error::Credential`], [`Error::Store`] or [`Error::Internal`]: a kind to
/// match on, the message, the setting or file at fault and the cause.
///
/// `K` is the category's kind ([`ConfigErrorKind`], [`AuthorityErrorKind`],
/// [`CredentialErrorKind`], [`StoreErrorKind`], [`InternalErrorKind`]).
/// Displayed as `category: message`; the cause is the
/// [`source`](std::error::Error::source), not part of the text.
#[derive(Debug, Clone)]
pub struct Details<K> {
    kind: K,
    message: String,
    setting: Option<Cow<'static, str>>,
    path: Option<PathBuf>,
    source: Option<Cause>,
}

/// A configuration error's detail.
pub type ConfigError = Details<ConfigErrorKind>;
/// An invalid authority's detail.
pub type AuthorityError = Details<AuthorityErrorKind>;
/// A credential error's detail.
pub type CredentialError = Details<CredentialErrorKind>;
/// A shared token store's error detail.
pub type StoreError = Details<StoreErrorKind>;
/// An internal error's detail.
pub type InternalError = Details<InternalErrorKind>;

impl<K: Kind> Details<K> {
    /// A detail of this kind; `message` says what is wrong and what to fix,
    /// without the cause's text (give it with [`Details::with_source`]) and
    /// never with a secret.
    pub fn new(kind: K, message: impl Into<String>) -> Self {
        Details {
            kind,
            message: message.into(),
            setting: None,
            path: None,
            source: None,
        }
    }

    /// Names the setting at fault (`client_id`, `AZURE_TENANT_ID`, …).
    #[must_use]
    pub fn with_setting(mut self, setting: impl Into<Cow<'static, str>>) -> Self {
        self.setting = Some(setting.into());
        self
    }

    /// Names the file at fault.
    #[must_use]
    pub fn with_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.path = Some(path.into());
        self
    }

    /// Keeps the cause.
    #[must_use]
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Arc::new(source));
        self
    }

    /// What is wrong.
    pub fn kind(&self) -> K {
        self.kind
    }

    /// The message, without the category and the cause.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The setting at fault, when one is.
    pub fn setting(&self) -> Option<&str> {
        self.setting.as_deref()
    }

    /// The file at fault, when one is.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }
}

impl<K: Kind> Details<K> {
    /// Keeps a shared cause.
    pub(crate) fn with_cause(mut self, cause: Cause) -> Self {
        self.source = Some(cause);
        self
    }

    /// Puts `prefix: ` before the message (the file a parse error was in).
    pub(crate) fn prefixed(mut self, prefix: impl fmt::Display) -> Self {
        self.message = format!("{prefix}: {}", self.message);
        self
    }
}

/// Shorthand for the crate's own configuration errors.
pub(crate) fn config(kind: ConfigErrorKind, message: impl Into<String>) -> Error {
    Error::Configuration(ConfigError::new(kind, message))
}

/// Shorthand for the crate's own credential errors.
pub(crate) fn credential(kind: CredentialErrorKind, message: impl Into<String>) -> Error {
    Error::Credential(CredentialError::new(kind, message))
}

/// Shorthand for the crate's own authority errors.
pub(crate) fn authority(kind: AuthorityErrorKind, message: impl Into<String>) -> Error {
    Error::Authority(AuthorityError::new(kind, message))
}

impl<K: Kind> fmt::Display for Details<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.category(), self.message)
    }
}

impl<K: Kind> std::error::Error for Details<K> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|s| s as &(dyn std::error::Error + 'static))
    }
}

impl From<ConfigError> for Error {
    fn from(e: ConfigError) -> Error {
        Error::Configuration(e)
    }
}

impl From<AuthorityError> for Error {
    fn from(e: AuthorityError) -> Error {
        Error::Authority(e)
    }
}

impl From<CredentialError> for Error {
    fn from(e: CredentialError) -> Error {
        Error::Credential(e)
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Error {
        Error::Store(e)
    }
}

impl From<InternalError> for Error {
    fn from(e: InternalError) -> Error {
        Error::Internal(e)
    }
}

mod sealed {
    pub trait Sealed {}
}

/// The kinds of [`Details`]: one enum per error category. Sealed.
pub trait Kind: sealed::Sealed + Copy + fmt::Debug + PartialEq + Send + Sync + 'static {
    /// The category, as the message starts (`configuration error`, …).
    fn category(self) -> &'static str;
}

macro_rules! kind {
    ($t:ty, $category:literal) => {
        impl sealed::Sealed for $t {}
        impl Kind for $t {
            fn category(self) -> &'static str {
                $category
            }
        }
    };
}

kind!(ConfigErrorKind, "configuration error");
kind!(AuthorityErrorKind, "invalid authority");
kind!(CredentialErrorKind, "credential error");
kind!(StoreErrorKind, "shared token store");
kind!(InternalErrorKind, "internal error");

/// What is wrong with the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ConfigErrorKind {
    /// A required setting is absent (the client id, the tenant, a
    /// credential).
    Missing,
    /// A setting's value is not usable: it does not parse, is out of range
    /// or has the wrong shape.
    Invalid,
    /// Settings that exclude each other were given together.
    Conflict,
    /// What was asked does not apply to this client (replacing the
    /// credential of a client that uses a custom token source, refreshing a
    /// token that was never cached).
    Unsupported,
    /// A file the configuration names cannot be used.
    File(FileProblem),
    /// The HTTP client (TLS set-up) could not be built.
    HttpClient,
}

/// What is wrong with an authority.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuthorityErrorKind {
    /// Not a URL, or a URL with a query or fragment.
    NotAUrl,
    /// Not `https` (plain `http` is allowed on loopback only).
    Insecure,
    /// Not of the form `https://host/tenant`.
    Malformed,
    /// The tenant is empty, malformed, or one (`common`,
    /// `organizations`…) that cannot issue app-only tokens.
    Tenant,
    /// A tenant per request on an authority that has none (ADFS, a
    /// generic OpenID Connect issuer).
    PerRequestTenant,
}

/// What is wrong with the credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CredentialErrorKind {
    /// The secret, certificate, password or federated token file cannot be
    /// used.
    File(FileProblem),
    /// A certificate, private key, PEM block, PFX or assertion does not
    /// parse.
    Malformed,
    /// The private key is encrypted and no password was given.
    PasswordRequired,
    /// The password does not open the key or the PFX.
    WrongPassword,
    /// The key is not of a type this credential can sign with (an EC key
    /// for Entra ID, which takes RSA).
    UnsupportedKey,
    /// The private key does not match any certificate given with it.
    KeyMismatch,
    /// A part is missing: no private key, or no certificate beside it.
    Incomplete,
    /// The assertion callback failed (its error is the source).
    Callback,
    /// Signing the client assertion failed.
    Signing,
    /// The secret holds characters that cannot be sent in a header.
    NotSendable,
}

/// What is wrong with a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FileProblem {
    /// It cannot be read (the I/O error is the source: not found, no
    /// permission…).
    Unreadable,
    /// It, or its directory, cannot be written.
    Unwritable,
    /// It is not a regular file (a directory, a device).
    NotAFile,
    /// It is empty.
    Empty,
    /// It is larger than such a file can be.
    TooLarge,
    /// It is not UTF-8 text.
    NotUtf8,
    /// Other users can read it, and it holds a secret.
    OpenToOthers,
    /// It holds nothing of what it should (a CA file without a
    /// certificate).
    NoContent,
}

/// What went wrong with a shared token store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StoreErrorKind {
    /// The store does not answer (retry later).
    Unavailable,
    /// The store answered, but the operation failed.
    Failed,
}

/// What went wrong inside apptoken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum InternalErrorKind {
    /// The task getting the token panicked.
    Panicked,
    /// The task getting the token was cancelled (the runtime shutting
    /// down) or ended without an answer.
    Cancelled,
    /// The platform failed: no randomness, a cryptographic primitive that
    /// refused valid input.
    Platform,
}

/// Another crate's error, kept whole (see [`Error::external`]).
#[derive(Debug, Clone)]
pub struct ExternalError {
    source: Cause,
    retryable: bool,
}

impl ExternalError {
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

/// An error and its causes, `: `-separated (see [`Error::report`]).
#[derive(Debug, Clone, Copy)]
pub struct Report<'a>(&'a (dyn std::error::Error + 'static));

impl<'a> Report<'a> {
    /// The report of any error (the crates around this one log theirs so).
    pub fn of(error: &'a (dyn std::error::Error + 'static)) -> Report<'a> {
        Report(error)
    }
}

impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cause = self.0.source();
        // Bounded: a cyclic chain of a foreign error cannot loop forever.
        let mut depth = 0;
        while let Some(c) = cause {
            if depth == 16 {
                break;
            }
            write!(f, ": {c}")?;
            cause = c.source();
            depth += 1;
        }
        Ok(())
    }
}
