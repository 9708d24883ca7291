//! One API request with its token: bounded per-API concurrency, `Retry-After`
//! on 429/503, one token refresh (with the claims of a challenge) on 401.

use std::sync::Arc;
use std::time::{Duration, Instant};

use apptoken::{Clock, ConfidentialClient, TokenRequest};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;
use tokio::sync::Semaphore;
use tracing::{debug, info, warn};
use url::Url;

use crate::config::ApiConfig;

/// An API with its HTTP client and its concurrency bound.
#[derive(Debug)]
pub(crate) struct Api {
    pub(crate) config: ApiConfig,
    http: reqwest::Client,
    permits: Arc<Semaphore>,
    headers: HeaderMap,
}

/// Why a request failed (messages never hold a token).
#[derive(Debug)]
pub(crate) enum CallError {
    /// The API answered with this status after the retries.
    Status { status: u16, body: String },
    /// No token could be had.
    Token(apptoken::Error),
    /// The API could not be reached, or answered something unusable.
    Other(String),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Status { status, body } => {
                let body: String = body.chars().take(300).collect();
                write!(f, "the API answered HTTP {status}: {body}")
            }
            CallError::Token(e) => write!(f, "no token: {}", e.report()),
            CallError::Other(m) => f.write_str(m),
        }
    }
}

/// A successful answer: JSON body and the `Link: rel="next"` target.
#[derive(Debug)]
pub(crate) struct Page {
    pub(crate) body: Value,
    pub(crate) link_next: Option<String>,
}

impl Api {
    pub(crate) fn new(config: ApiConfig, ca_pem: Option<&[u8]>) -> Result<Api, String> {
        let mut builder = reqwest::Client::builder()
            .timeout(config.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("apptoken-daemon/", env!("CARGO_PKG_VERSION")));
        if let Some(pem) = ca_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| format!("the CA file is not a PEM bundle: {e}"))?;
            builder = builder.tls_certs_merge(certs);
        }
        let http = builder
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        let mut headers = HeaderMap::new();
        for (k, v) in &config.headers {
            if let (Ok(k), Ok(v)) = (
                HeaderName::try_from(k.as_str()),
                HeaderValue::try_from(v.as_str()),
            ) {
                headers.append(k, v);
            }
        }
        Ok(Api {
            permits: Arc::new(Semaphore::new(config.max_concurrency)),
            config,
            http,
            headers,
        })
    }

    /// Sends one request (with its retries) and parses the JSON answer.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn fetch(
        &self,
        client: &ConfidentialClient,
        clock: &dyn Clock,
        job: &str,
        tenant: Option<&str>,
        method: &reqwest::Method,
        url: &Url,
        body: Option<&Value>,
    ) -> Result<Page, CallError> {
        let api = self.config.name.as_str();
        let shown = format!("{}{}", url.origin().ascii_serialization(), url.path());
        let mut retries = 0u32;
        let mut auth_retry_done = false;
        let mut claims: Option<String> = None;
        let mut force = false;
        loop {
            let mut req = TokenRequest::new(&self.config.scopes);
            if let Some(t) = tenant {
                req = req.tenant(t);
            }
            if force {
                req = with_claims(req, claims.as_deref());
            }
            let token = client
                .acquire_token_with(req)
                .await
                .map_err(CallError::Token)?;
            let mut auth = HeaderValue::try_from(token.authorization_header())
                .map_err(|_| CallError::Other("the token cannot be sent in a header".into()))?;
            auth.set_sensitive(true);
            let request_id = uuid::Uuid::new_v4().to_string();
            let mut b = self
                .http
                .request(method.clone(), url.clone())
                .headers(self.headers.clone())
                .header(reqwest::header::ACCEPT, "application/json")
                .header("client-request-id", &request_id)
                .header("return-client-request-id", "true")
                .header(reqwest::header::AUTHORIZATION, auth);
            if let Some(body) = body {
                b = b.json(body);
            }
            let permit = self
                .permits
                .acquire()
                .await
                .map_err(|_| CallError::Other("the daemon is stopping".into()))?;
            let started = Instant::now();
            let sent = b.send().await;
            let result = match sent {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let headers = resp.headers().clone();
                    match resp.text().await {
                        Ok(t) => Ok((status, headers, t)),
                        Err(e) => Err(transport_message(&e)),
                    }
                }
                Err(e) => Err(transport_message(&e)),
            };
            drop(permit);
            let elapsed = started.elapsed();
            let status_label = match &result {
                Ok((s, _, _)) => s.to_string(),
                Err(_) => "error".to_string(),
            };
            metrics::counter!("apptoken_daemon_api_requests_total", "api" => api.to_string(), "status" => status_label.clone()).increment(1);
            metrics::histogram!("apptoken_daemon_api_request_duration_seconds", "api" => api.to_string()).record(elapsed.as_secs_f64());
            debug!(job, tenant, api, status = %status_label, duration_ms = elapsed.as_millis() as u64, client_request_id = %request_id, url = %shown, "API request");
            let (status, headers, text) = match result {
                Ok(r) => r,
                Err(message) => {
                    if retries < self.config.max_retries {
                        retries += 1;
                        let wait = backoff(retries);
                        warn!(job, tenant, api, client_request_id = %request_id, error = %message, retry_in_ms = wait.as_millis() as u64, "API request failed; retrying");
                        clock.sleep(wait).await;
                        continue;
                    }
                    return Err(CallError::Other(format!(
                        "could not reach {shown}: {message}"
                    )));
                }
            };
            if (200..300).contains(&status) {
                let body = if text.trim().is_empty() {
                    Value::Null
                } else {
                    serde_json::from_str(&text).map_err(|_| {
                        CallError::Other(format!(
                            "{shown} answered {status} with a body that is not JSON"
                        ))
                    })?
                };
                let link_next = headers
                    .get_all(reqwest::header::LINK)
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .find_map(link_next);
                return Ok(Page { body, link_next });
            }
            if status == 401 && !auth_retry_done {
                auth_retry_done = true;
                force = true;
                claims = headers
                    .get_all(reqwest::header::WWW_AUTHENTICATE)
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .find_map(apptoken::claims_challenge);
                info!(job, tenant, api, client_request_id = %request_id, claims_challenge = claims.is_some(), "the API answered 401; getting a new token and retrying once");
                metrics::counter!("apptoken_daemon_auth_retries_total", "api" => api.to_string())
                    .increment(1);
                continue;
            }
            if (status == 429 || status == 503) && retries < self.config.max_retries {
                let wait = headers
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| apptoken::retry_after(v, clock.now()))
                    .unwrap_or_else(|| backoff(retries + 1));
                if wait > self.config.max_retry_wait {
                    return Err(CallError::Status {
                        status,
                        body: format!(
                            "Retry-After asks for {wait:?}, more than max_retry_wait ({:?})",
                            self.config.max_retry_wait
                        ),
                    });
                }
                retries += 1;
                warn!(job, tenant, api, status, client_request_id = %request_id, retry_in_ms = wait.as_millis() as u64, attempt = retries, "the API is throttling or unavailable; waiting as told");
                metrics::counter!("apptoken_daemon_api_retries_total", "api" => api.to_string())
                    .increment(1);
                clock.sleep(wait).await;
                continue;
            }
            warn!(job, tenant, api, status, client_request_id = %request_id, "the API answered an error");
            return Err(CallError::Status { status, body: text });
        }
    }
}

/// The token request after a 401: a fresh token, carrying the challenge's
/// claims when there were some (`TokenRequest::claims` skips the cache too).
fn with_claims(req: TokenRequest, claims: Option<&str>) -> TokenRequest {
    match claims {
        Some(c) => req.claims(c),
        None => req.force_refresh(true),
    }
}

fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(500u64.saturating_mul(1u64 << attempt.min(6)))
}

fn transport_message(e: &reqwest::Error) -> String {
    let mut message = if e.is_timeout() {
        "the request timed out".to_string()
    } else {
        "the request failed".to_string()
    };
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    message
}

/// The target of a `Link` header's `rel="next"` (RFC 8288).
pub fn link_next(header: &str) -> Option<String> {
    for part in header.split(',') {
        let mut pieces = part.split(';');
        let Some(target) = pieces.next().map(str::trim) else {
            continue;
        };
        let Some(target) = target.strip_prefix('<').and_then(|t| t.strip_suffix('>')) else {
            continue;
        };
        let is_next = pieces.any(|p| {
            p.trim().strip_prefix("rel=").is_some_and(|v| {
                v.trim_matches('"')
                    .split_whitespace()
                    .any(|r| r.eq_ignore_ascii_case("next"))
            })
        });
        if is_next {
            return Some(target.to_string());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_links_and_waits() {
        let claims = r#"{"access_token":{"nbf":{"essential":true,"value":"1700000000"}}}"#;
        let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, claims);
        let h = format!(
            r#"Bearer realm="", authorization_uri="https://x", error="insufficient_claims", claims="{b64}""#
        );
        assert_eq!(apptoken::claims_challenge(&h).as_deref(), Some(claims));
        assert_eq!(
            apptoken::claims_challenge(r#"Bearer error="invalid_token""#),
            None
        );
        assert_eq!(
            apptoken::claims_challenge(r#"Bearer error="insufficient_claims", claims="!!""#),
            None
        );
        assert_eq!(
            link_next(r#"<https://a/x?p=1>; rel="prev", <https://a/x?p=3>; rel="next""#).as_deref(),
            Some("https://a/x?p=3")
        );
        assert_eq!(link_next("garbage, <x>"), None);
        let now = time::OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        assert_eq!(
            apptoken::retry_after("7", now),
            Some(Duration::from_secs(7))
        );
        let later = httpdate::fmt_http_date(
            std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_030),
        );
        assert_eq!(
            apptoken::retry_after(&later, now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(apptoken::retry_after("soon", now), None);
    }
}
