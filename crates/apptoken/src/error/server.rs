//! The identity provider's error answer, with every field Entra ID sends.

use std::fmt;
use std::time::Duration;

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
