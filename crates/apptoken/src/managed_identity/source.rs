//! The managed-identity [`TokenSource`]: one request to the host's endpoint
//! (IMDS within its limits, App Service with its secret header, Azure Arc
//! through its challenge), retried as IMDS's guidance says, on the client's
//! clock:
//! - 410 (IMDS is being updated): every 10 s, for up to 70 s;
//! - 404, 408, 429, 5xx and transport failures: after 1, 2 and 4 s (or the
//!   `Retry-After` asked for, when longer and within 70 s);
//! - 400, 401, 403 and anything else: never (an identity that is not
//!   assigned does not become assigned by asking again).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use tracing::{Instrument, debug, info_span};

use super::arc::read_challenge_key;
use super::limit::{self, Limiter};
use super::wire::{into_error, parse_token, resource_of, token_url};
use super::{Endpoint, ManagedIdentity};
use crate::clock::Clock;
use crate::error::{CredentialError, CredentialErrorKind, Error, Result};
use crate::http::{Http, Response};
use crate::source::{SourceFuture, SourceRequest, TokenResponse, TokenSource};

/// The wait between tries while IMDS answers 410.
const GONE_INTERVAL: Duration = Duration::from_secs(10);
/// How long 410s are waited out (IMDS's guidance: 70 s).
pub(crate) const GONE_DEADLINE: Duration = Duration::from_secs(70);
/// The backoff of other retryable answers.
const BACKOFF: [Duration; 3] = [
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(4),
];

/// How long the probe waits for IMDS (azure-identity's connection timeout).
pub(crate) const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// Tokens from a managed-identity endpoint.
pub(crate) struct ManagedIdentitySource {
    pub(crate) identity: ManagedIdentity,
    pub(crate) http: Http,
    pub(crate) clock: Arc<dyn Clock>,
    /// IMDS's limits (IMDS only).
    limiter: Option<Arc<Limiter>>,
    /// While set and not yet confirmed, the first try is a probe: a short
    /// timeout, no retries, and an answer that must look like Azure's.
    probe: Option<Probe>,
}

/// The probe of a chain that reaches IMDS without being told it is there.
struct Probe {
    http: Http,
    confirmed: AtomicBool,
    /// The chain's steps before this one, for the error.
    skipped: String,
}

impl fmt::Debug for ManagedIdentitySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManagedIdentitySource")
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

impl ManagedIdentitySource {
    pub(crate) fn new(identity: ManagedIdentity, http: Http, clock: Arc<dyn Clock>) -> Self {
        let limiter = match &identity.endpoint {
            Endpoint::Imds { url } => Some(limit::for_endpoint(url)),
            _ => None,
        };
        ManagedIdentitySource {
            identity,
            http,
            clock,
            limiter,
            probe: None,
        }
    }

    /// Makes the first try a probe (see [`Self::probe_once`]), with this
    /// short-timeout HTTP client.
    pub(crate) fn probing(mut self, http: Http, skipped: String) -> Self {
        self.probe = Some(Probe {
            http,
            confirmed: AtomicBool::new(false),
            skipped,
        });
        self
    }

    /// What the endpoint is called in errors and logs.
    fn name(&self) -> String {
        self.identity.kind().to_string()
    }

    async fn request(&self, request: SourceRequest<'_>) -> Result<TokenResponse> {
        // The client validated the scopes under Entra's rule: exactly one.
        let scope = request
            .scopes
            .as_slice()
            .first()
            .map(String::as_str)
            .unwrap_or("");
        let url = token_url(
            &self.identity.endpoint,
            &self.identity.id,
            resource_of(scope),
        )?;
        if let Some(probe) = &self.probe
            && !probe.confirmed.load(Ordering::Acquire)
        {
            match self.probe_once(probe, &url).await {
                Probed::Done(result) => return result,
                Probed::Retry => {}
            }
        }
        let start = self.clock.now();
        let mut backoffs = BACKOFF.iter();
        loop {
            let err = match self.once(&url).await {
                Ok(t) => return Ok(t),
                Err(e) => e,
            };
            let elapsed = crate::limits::until(start, self.clock.now());
            let wait = match err.status() {
                Some(410) if elapsed.saturating_add(GONE_INTERVAL) <= GONE_DEADLINE => {
                    GONE_INTERVAL
                }
                Some(404 | 408 | 429 | 500..=599) | None
                    if matches!(err, Error::IdentityProvider(_) | Error::Transport { .. }) =>
                {
                    let Some(b) = backoffs.next() else {
                        return Err(err);
                    };
                    let wait = err.retry_after().map_or(*b, |r| r.max(*b));
                    if elapsed.saturating_add(wait) > GONE_DEADLINE {
                        return Err(err);
                    }
                    wait
                }
                _ => return Err(err),
            };
            debug!(wait_ms = wait.as_millis() as u64, error = %err.report(), "retrying the managed-identity request");
            metrics::counter!("apptoken_token_retries_total").increment(1);
            self.clock.sleep(wait).await;
        }
    }

    /// The probe: one try within [`PROBE_TIMEOUT`], no retries. No answer,
    /// or an answer Azure's IMDS never gives (a 401/403/404 without its
    /// JSON error: another cloud's metadata service; HTML from a proxy), is
    /// [`CredentialErrorKind::Unavailable`]; any answer in Azure's shape
    /// confirms IMDS, and a transient one (410, 429, 5xx) goes on to the
    /// ordinary retries.
    async fn probe_once(&self, probe: &Probe, url: &str) -> Probed {
        let unavailable = |why: String, cause: Option<Error>| {
            let why = if probe.skipped.is_empty() {
                why
            } else {
                format!("{why}; and before it: {}", probe.skipped)
            };
            let mut e = CredentialError::new(CredentialErrorKind::Unavailable, why)
                .with_setting("managed_identity");
            if let Some(c) = cause {
                e = e.with_source(c);
            }
            Probed::Done(Err(e.into()))
        };
        let base = self.identity.endpoint.url().to_string();
        let result = match self.try_with(&probe.http, url).await {
            Ok(t) => Ok(t),
            Err(e @ Error::Transport { .. }) => {
                return unavailable(
                    format!(
                        "no managed identity: IMDS ({base}) did not answer, so this is not an \
                         Azure VM, scale set or AKS node (or IMDS is blocked)"
                    ),
                    Some(e),
                );
            }
            Err(e) => Err(e),
        };
        let azure_like = match &result {
            Ok(_) => true,
            Err(Error::IdentityProvider(s)) => match s.status {
                410 | 429 | 500..=599 => true,
                // Docker Desktop's proxy answers 403 "…unreachable…".
                _ => {
                    !s.error.is_empty()
                        && !s
                            .error_description
                            .as_deref()
                            .is_some_and(|d| d.contains("unreachable"))
                }
            },
            Err(_) => false,
        };
        if !azure_like {
            let status = result.as_ref().err().and_then(Error::status);
            return unavailable(
                format!(
                    "no managed identity: the metadata service at {base} answered{} in a shape \
                     Azure's IMDS never uses (another cloud's metadata service, or a proxy?)",
                    status.map(|s| format!(" {s}")).unwrap_or_default()
                ),
                result.err(),
            );
        }
        probe.confirmed.store(true, Ordering::Release);
        match result {
            Err(e) if matches!(e.status(), Some(410 | 429 | 500..=599)) => Probed::Retry,
            other => Probed::Done(other),
        }
    }

    /// One try (for Arc, the challenge and the answer to it).
    async fn once(&self, url: &str) -> Result<TokenResponse> {
        self.try_with(&self.http, url).await
    }

    async fn try_with(&self, http: &Http, url: &str) -> Result<TokenResponse> {
        let name = self.name();
        let response = match &self.identity.endpoint {
            Endpoint::Imds { .. } => {
                let _permit = match &self.limiter {
                    Some(l) => l.admit(&*self.clock).await,
                    None => None,
                };
                http.get_with(url, &[("metadata", "true", false)]).await?
            }
            Endpoint::AppService { header, .. } => {
                http.get_with(url, &[("x-identity-header", header.expose_secret(), true)])
                    .await?
            }
            Endpoint::Arc { .. } => {
                let first = self
                    .http
                    .get_with(url, &[("metadata", "true", false)])
                    .await?;
                if first.status != 401 {
                    return self.answer(first, &name);
                }
                let key = read_challenge_key(
                    first.www_authenticate.as_deref(),
                    &self.identity.arc_key_dir,
                    &first.url,
                    first.status,
                )?;
                let basic = SecretString::from(format!("Basic {}", key.expose_secret()));
                http.get_with(
                    url,
                    &[
                        ("metadata", "true", false),
                        ("authorization", basic.expose_secret(), true),
                    ],
                )
                .await?
            }
        };
        self.answer(response, &name)
    }

    fn answer(&self, response: Response, name: &str) -> Result<TokenResponse> {
        match response.status {
            200 => parse_token(&response, name, self.clock.now()),
            // Redirects are never followed (the HTTP client's policy): a
            // managed-identity endpoint does not send them, and following
            // one would carry the identity header elsewhere.
            300..=399 => Err(Error::InvalidResponse {
                url: response.url,
                status: response.status,
                message: format!(
                    "{name}: the endpoint answered with a redirect, which a managed-identity \
                     endpoint never sends; it was not followed"
                ),
            }),
            _ => Err(into_error(response, name)),
        }
    }
}

/// What a probe decided.
enum Probed {
    /// Its answer is the request's.
    Done(Result<TokenResponse>),
    /// IMDS is there but busy: on to the ordinary retries.
    Retry,
}

impl TokenSource for ManagedIdentitySource {
    fn request_token<'a>(&'a self, request: SourceRequest<'a>) -> SourceFuture<'a> {
        let span = info_span!(
            "managed_identity_request",
            source = %self.identity.kind(),
            identity = %self.identity.id,
            scope = %request.scopes.as_param(),
        );
        Box::pin(self.request(request).instrument(span))
    }
}
