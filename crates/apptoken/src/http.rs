//! The HTTP layer. reqwest stays inside the crate: no reqwest type is public.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use crate::error::{
    ConfigError, ConfigErrorKind, CredentialErrorKind, Error, Result, ServerError, credential,
};

/// Answers larger than this are refused (a token answer is a few KiB).
const MAX_BODY: usize = 1024 * 1024;

/// Connection settings: extra trusted roots and host overrides.
#[derive(Debug, Clone, Default)]
pub(crate) struct HttpOptions {
    /// PEM certificates trusted beside the system's roots.
    pub(crate) extra_roots_pem: Vec<Vec<u8>>,
    /// Host names answered from here instead of DNS.
    pub(crate) resolve: Vec<(String, std::net::SocketAddr)>,
    /// Never through a proxy (a managed-identity endpoint is on the host or
    /// link-local: a proxy could not reach it, or would see its secret).
    pub(crate) direct: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct Http {
    client: reqwest::Client,
}

pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) url: String,
    pub(crate) retry_after: Option<Duration>,
    /// `WWW-Authenticate` (Azure Arc's challenge), when sent.
    pub(crate) www_authenticate: Option<String>,
    pub(crate) body: Vec<u8>,
}

impl Http {
    pub(crate) fn new(timeout: Duration, options: &HttpOptions) -> Result<Http> {
        let mut builder = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("apptoken/", env!("CARGO_PKG_VERSION")));
        let mut roots = Vec::new();
        for pem in &options.extra_roots_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem).map_err(|e| {
                ConfigError::new(
                    ConfigErrorKind::Invalid,
                    "an extra trusted root is not a PEM certificate",
                )
                .with_setting("root_certificate")
                .with_source(e)
            })?;
            if certs.is_empty() {
                return Err(ConfigError::new(
                    ConfigErrorKind::Invalid,
                    "an extra trusted root holds no PEM certificate",
                )
                .with_setting("root_certificate")
                .into());
            }
            roots.extend(certs);
        }
        if !roots.is_empty() {
            builder = builder.tls_certs_merge(roots);
        }
        if options.direct {
            builder = builder.no_proxy();
        }
        for (host, addr) in &options.resolve {
            builder = builder.resolve(host, *addr);
        }
        let client = builder.build().map_err(|e| {
            ConfigError::new(ConfigErrorKind::HttpClient, "cannot build the HTTP client")
                .with_source(e)
        })?;
        Ok(Http { client })
    }

    pub(crate) async fn get(&self, url: &str, client_request_id: &str) -> Result<Response> {
        let req = self
            .client
            .get(url)
            .headers(common_headers(client_request_id));
        self.send(url, req).await
    }

    pub(crate) async fn post_form(
        &self,
        url: &str,
        form: &[(&'static str, String)],
        authorization: Option<&SecretString>,
        client_request_id: &str,
    ) -> Result<Response> {
        let mut req = self
            .client
            .post(url)
            .headers(common_headers(client_request_id))
            .form(form);
        if let Some(auth) = authorization {
            let mut value =
                reqwest::header::HeaderValue::from_str(auth.expose_secret()).map_err(|_| {
                    credential(
                        CredentialErrorKind::NotSendable,
                        "the client secret contains characters that cannot be sent",
                    )
                })?;
            value.set_sensitive(true);
            req = req.header(reqwest::header::AUTHORIZATION, value);
        }
        self.send(url, req).await
    }

    /// A GET with these headers only (a managed-identity endpoint's):
    /// name, value, and whether the value is a secret (kept out of logs and
    /// of HTTP/2 header compression).
    pub(crate) async fn get_with(
        &self,
        url: &str,
        headers: &[(&'static str, &str, bool)],
    ) -> Result<Response> {
        use reqwest::header::{HeaderName, HeaderValue};
        let mut h = reqwest::header::HeaderMap::new();
        h.insert(
            reqwest::header::ACCEPT,
            HeaderValue::from_static("application/json"),
        );
        for (name, value, sensitive) in headers {
            let mut v = HeaderValue::from_str(value).map_err(|_| {
                credential(
                    CredentialErrorKind::NotSendable,
                    format!("the {name} header holds characters that cannot be sent"),
                )
            })?;
            v.set_sensitive(*sensitive);
            h.insert(HeaderName::from_static(name), v);
        }
        self.send(url, self.client.get(url).headers(h)).await
    }

    async fn send(&self, url: &str, req: reqwest::RequestBuilder) -> Result<Response> {
        let shown = strip_query(url);
        let mut resp = req.send().await.map_err(|e| transport(&shown, e))?;
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after)
            .map(|d| crate::limits::cap_retry_after(d, &shown));
        let www_authenticate = resp
            .headers()
            .get(reqwest::header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        if resp.content_length().is_some_and(|l| l > MAX_BODY as u64) {
            return Err(Error::InvalidResponse {
                url: shown,
                status,
                message: "the answer is larger than 1 MiB".into(),
            });
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| transport(&shown, e))? {
            if body.len() + chunk.len() > MAX_BODY {
                return Err(Error::InvalidResponse {
                    url: shown,
                    status,
                    message: "the answer is larger than 1 MiB".into(),
                });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Response {
            status,
            url: shown,
            retry_after,
            www_authenticate,
            body,
        })
    }
}

fn common_headers(client_request_id: &str) -> reqwest::header::HeaderMap {
    use reqwest::header::{HeaderName, HeaderValue};
    let mut h = reqwest::header::HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(client_request_id) {
        h.insert(HeaderName::from_static("client-request-id"), v);
    }
    h.insert(
        HeaderName::from_static("return-client-request-id"),
        HeaderValue::from_static("true"),
    );
    h.insert(
        HeaderName::from_static("x-client-sku"),
        HeaderValue::from_static("apptoken.rust"),
    );
    h.insert(
        HeaderName::from_static("x-client-ver"),
        HeaderValue::from_static(env!("CARGO_PKG_VERSION")),
    );
    h.insert(
        reqwest::header::ACCEPT,
        HeaderValue::from_static("application/json"),
    );
    h
}

fn transport(url: &str, e: reqwest::Error) -> Error {
    // reqwest's Display includes the URL; our message has it once, and the
    // cause is reqwest's own cause (hyper's, the TLS stack's, the socket's),
    // kept as the source.
    let message = if e.is_timeout() {
        "the request timed out"
    } else if e.is_connect() {
        "the connection failed"
    } else {
        "the request failed"
    };
    let timeout = e.is_timeout();
    let cause: crate::error::Cause = std::sync::Arc::new(e.without_url());
    Error::transport(url, message, timeout, Some(cause))
}

pub(crate) fn strip_query(url: &str) -> String {
    url.split(['?', '#']).next().unwrap_or(url).to_string()
}

/// `Retry-After` as delta-seconds or an HTTP date (RFC 9110 §10.2.3), by
/// the wall clock.
pub(crate) fn parse_retry_after(v: &str) -> Option<Duration> {
    retry_after(v, time::OffsetDateTime::now_utc())
}

/// How long a `Retry-After` value asks to wait at `now`: delta-seconds or
/// an HTTP date (RFC 9110 §10.2.3); a date already past is no wait, a value
/// that is neither is `None`.
///
/// ```
/// # use std::time::Duration;
/// let now = time::OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
/// assert_eq!(apptoken::retry_after("7", now), Some(Duration::from_secs(7)));
/// assert_eq!(apptoken::retry_after("soon", now), None);
/// ```
pub fn retry_after(value: &str, now: time::OffsetDateTime) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    // Checked all the way: the date may be any year httpdate accepts, the
    // `now` any instant a clock gives.
    let since_epoch = httpdate::parse_http_date(v)
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?;
    let when = crate::limits::later(time::OffsetDateTime::UNIX_EPOCH, since_epoch);
    Some(crate::limits::until(now, when))
}

impl Response {
    /// Turns a non-success answer into the identity provider's error.
    pub(crate) fn into_server_error(self) -> Error {
        #[derive(serde::Deserialize)]
        struct Body {
            error: Option<String>,
            error_description: Option<String>,
            #[serde(default)]
            error_codes: Vec<serde_json::Value>,
            suberror: Option<String>,
            trace_id: Option<String>,
            correlation_id: Option<String>,
            timestamp: Option<String>,
            error_uri: Option<String>,
        }
        let parsed: Option<Body> = serde_json::from_slice(&self.body).ok();
        let mut err = ServerError::new(self.status, String::new());
        err.retry_after = self.retry_after;
        err.url = self.url;
        match parsed {
            Some(b) if b.error.is_some() => {
                err.error = b.error.unwrap_or_default();
                err.error_description = b.error_description;
                err.error_codes = b
                    .error_codes
                    .iter()
                    .filter_map(|v| {
                        v.as_i64()
                            .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                    })
                    .collect();
                err.suberror = b.suberror;
                err.trace_id = b.trace_id;
                err.correlation_id = b.correlation_id;
                err.timestamp = b.timestamp;
                err.error_uri = b.error_uri;
            }
            _ => {
                let text = String::from_utf8_lossy(&self.body);
                let clean: String = text
                    .chars()
                    .map(|c| if c.is_control() { ' ' } else { c })
                    .take(512)
                    .collect();
                let clean = clean.trim().to_string();
                if !clean.is_empty() {
                    err.body_excerpt = Some(clean);
                }
            }
        }
        Error::IdentityProvider(Box::new(err))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_forms() {
        assert_eq!(parse_retry_after("60"), Some(Duration::from_secs(60)));
        assert_eq!(parse_retry_after(" 0 "), Some(Duration::ZERO));
        let future = std::time::SystemTime::now() + Duration::from_secs(120);
        let d = parse_retry_after(&httpdate::fmt_http_date(future)).unwrap();
        assert!(
            d > Duration::from_secs(100) && d <= Duration::from_secs(120),
            "{d:?}"
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
        assert_eq!(parse_retry_after("-5"), None);
    }

    #[test]
    fn server_errors_keep_every_field() {
        let body = br#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided.\r\nTrace ID: t\r\nCorrelation ID: c\r\nTimestamp: 2026-01-01 00:00:00Z","error_codes":[7000215],"timestamp":"2026-01-01 00:00:00Z","trace_id":"t","correlation_id":"c","error_uri":"https://x/error?code=7000215"}"#;
        let e = Response {
            status: 401,
            url: "https://x/t/oauth2/v2.0/token".into(),
            retry_after: None,
            www_authenticate: None,
            body: body.to_vec(),
        }
        .into_server_error();
        assert_eq!(e.aadsts_codes(), &[7000215]);
        let s = e.server_error().unwrap();
        assert_eq!(s.trace_id.as_deref(), Some("t"));
        assert_eq!(s.correlation_id.as_deref(), Some("c"));
        assert_eq!(s.error_uri.as_deref(), Some("https://x/error?code=7000215"));
        let shown = e.to_string();
        assert!(
            shown.contains("AADSTS7000215: Invalid client secret provided."),
            "{shown}"
        );
        assert!(shown.contains("HTTP 401, invalid_client"), "{shown}");
        assert!(!e.is_retryable());
    }

    #[test]
    fn plain_text_errors() {
        let e = Response {
            status: 429,
            url: "u".into(),
            retry_after: Some(Duration::from_secs(60)),
            www_authenticate: None,
            body: b"Too many requests\n".to_vec(),
        }
        .into_server_error();
        assert!(e.is_throttled() && e.is_retryable());
        assert_eq!(e.retry_after(), Some(Duration::from_secs(60)));
        assert!(e.to_string().contains("Too many requests"), "{e}");
    }
}
