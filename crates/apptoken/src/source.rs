//! What a token source is: [`TokenSource`], the request it is given and
//! the answer it returns. The client credentials grant over HTTP is one
//! (`crate::grant`); an in-process source for tests, a managed identity
//! endpoint or a user's own are others. The cache, single flight, retries and
//! throttling sit above it.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use crate::authority::Authority;
use crate::error::Result;
use crate::scope::Scopes;

/// One request to a token source.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct SourceRequest<'a> {
    /// The authority, with the tenant of this request.
    pub authority: &'a Authority,
    /// The application (client) id.
    pub client_id: &'a str,
    /// The validated scopes.
    pub scopes: &'a Scopes,
    /// The `client-request-id` of this request.
    pub correlation_id: &'a str,
    /// The `claims` request parameter (JSON): a claims challenge and/or the
    /// client capabilities (`xms_cc`).
    pub claims: Option<&'a str>,
}

/// A token as a source returns it: lifetimes relative to its receipt.
#[derive(Clone)]
#[non_exhaustive]
pub struct TokenResponse {
    /// The access token: read it with [`TokenResponse::secret`]. Kept
    /// private so that the secret wrapper is ours to choose.
    pub(crate) access_token: SecretString,
    /// `Bearer`, usually.
    pub token_type: String,
    /// `expires_in`.
    pub expires_in: Duration,
    /// `ext_expires_in`: how long it may serve during an outage.
    pub ext_expires_in: Option<Duration>,
    /// `refresh_in`: when the provider wants it refreshed.
    pub refresh_in: Option<Duration>,
}

impl fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenResponse")
            .field("access_token", &"[redacted]")
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .field("ext_expires_in", &self.ext_expires_in)
            .field("refresh_in", &self.refresh_in)
            .finish()
    }
}

impl TokenResponse {
    /// A bearer token valid for `expires_in`.
    pub fn new(access_token: impl Into<String>, expires_in: Duration) -> TokenResponse {
        TokenResponse {
            access_token: SecretString::from(access_token.into()),
            token_type: "Bearer".into(),
            expires_in,
            ext_expires_in: None,
            refresh_in: None,
        }
    }

    /// The access token (a secret: never log it).
    pub fn secret(&self) -> &str {
        self.access_token.expose_secret()
    }

    /// Sets `refresh_in`.
    pub fn with_refresh_in(mut self, refresh_in: Duration) -> TokenResponse {
        self.refresh_in = Some(refresh_in);
        self
    }

    /// Sets `ext_expires_in`.
    pub fn with_ext_expires_in(mut self, ext: Duration) -> TokenResponse {
        self.ext_expires_in = Some(ext);
        self
    }
}

/// The future of [`TokenSource::request_token`].
pub type SourceFuture<'a> = Pin<Box<dyn Future<Output = Result<TokenResponse>> + Send + 'a>>;

/// Something that issues tokens. [`crate::ConfidentialClient`] puts its cache,
/// single flight, retries and throttling in front of one.
pub trait TokenSource: Send + Sync + fmt::Debug {
    /// Asks for one token. Errors that may pass (transport, 5xx, 429) should
    /// be reported as such (see [`crate::Error::is_retryable`]) so that the client
    /// retries them.
    fn request_token<'a>(&'a self, request: SourceRequest<'a>) -> SourceFuture<'a>;
}
