//! OpenID Connect discovery: where the token endpoint is, and the bounded,
//! expiring memory of the documents already read.

use std::collections::HashMap;
use std::sync::Mutex;

use time::OffsetDateTime;

use crate::authority::is_loopback;
use crate::error::{Error, Result};
use crate::http::Http;

/// What this client reads from an OpenID discovery document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Metadata {
    pub(crate) token_endpoint: String,
    pub(crate) issuer: Option<String>,
}

/// How long a discovery document is used before it is read again.
pub(crate) const DISCOVERY_TTL: time::Duration = time::Duration::hours(24);

/// At most this many discovery documents are kept (one per tenant: an ISV
/// with 100,000 tenants keeps the most recently read ones).
pub(crate) const MAX_DISCOVERY_DOCUMENTS: usize = 10_000;

/// The discovery documents read, by URL: bounded by
/// [`MAX_DISCOVERY_DOCUMENTS`] (when full, expired documents go first, then
/// the oldest tenth) and each used for [`DISCOVERY_TTL`].
#[derive(Debug, Default)]
pub(crate) struct DiscoveryCache {
    docs: Mutex<HashMap<String, (Metadata, OffsetDateTime)>>,
}

impl DiscoveryCache {
    /// The document for `url`, if one was read less than a day before `now`.
    pub(crate) fn get(&self, url: &str, now: OffsetDateTime) -> Option<Metadata> {
        let docs = self.docs.lock().unwrap_or_else(|p| p.into_inner());
        docs.get(url)
            .filter(|(_, read)| now < crate::limits::add(*read, DISCOVERY_TTL) && *read <= now)
            .map(|(m, _)| m.clone())
    }

    /// Keeps the document read from `url` at `now`.
    pub(crate) fn insert(&self, url: String, m: Metadata, now: OffsetDateTime) {
        let mut docs = self.docs.lock().unwrap_or_else(|p| p.into_inner());
        if docs.len() >= MAX_DISCOVERY_DOCUMENTS && !docs.contains_key(&url) {
            docs.retain(|_, (_, read)| now < crate::limits::add(*read, DISCOVERY_TTL));
            if docs.len() >= MAX_DISCOVERY_DOCUMENTS {
                let mut ages: Vec<OffsetDateTime> = docs.values().map(|(_, r)| *r).collect();
                ages.sort_unstable();
                let cut = ages[MAX_DISCOVERY_DOCUMENTS / 10];
                docs.retain(|_, (_, read)| *read > cut);
            }
        }
        docs.insert(url, (m, now));
    }

    /// How many documents are kept (tests).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.docs.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

pub(crate) async fn fetch(
    http: &Http,
    discovery_url: &str,
    client_request_id: &str,
) -> Result<Metadata> {
    let resp = http.get(discovery_url, client_request_id).await?;
    if !(200..300).contains(&resp.status) {
        return Err(resp.into_server_error());
    }
    parse(&resp.body, &resp.url, resp.status)
}

pub(crate) fn parse(body: &[u8], url: &str, status: u16) -> Result<Metadata> {
    let invalid = |message: String| Error::InvalidResponse {
        url: url.to_string(),
        status,
        message,
    };
    let doc: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| invalid(format!("the OpenID discovery document is not JSON ({e})")))?;
    let token_endpoint = doc
        .get("token_endpoint")
        .and_then(|v| v.as_str())
        .ok_or_else(|| invalid("the OpenID discovery document has no token_endpoint".into()))?;
    let parsed = url::Url::parse(token_endpoint).map_err(|e| {
        invalid(format!(
            "the discovery document's token_endpoint is not a URL ({e})"
        ))
    })?;
    let secure = parsed.scheme() == "https" || (parsed.scheme() == "http" && is_loopback(&parsed));
    if !secure {
        return Err(invalid(format!(
            "the discovery document's token_endpoint '{token_endpoint}' is not https"
        )));
    }
    Ok(Metadata {
        token_endpoint: token_endpoint.to_string(),
        issuer: doc
            .get("issuer")
            .and_then(|v| v.as_str())
            .map(str::to_string),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(i: usize) -> Metadata {
        Metadata {
            token_endpoint: format!("https://l/t{i}/oauth2/v2.0/token"),
            issuer: None,
        }
    }

    #[test]
    fn discovery_documents_are_bounded_and_expire() {
        let cache = DiscoveryCache::default();
        let start = OffsetDateTime::UNIX_EPOCH + time::Duration::days(1);
        let mut most = 0;
        for i in 0..100_000usize {
            let now = start + time::Duration::milliseconds(i as i64);
            cache.insert(format!("u{i}"), doc(i), now);
            most = most.max(cache.len());
        }
        assert!(most <= MAX_DISCOVERY_DOCUMENTS, "{most} documents kept");
        let now = start + time::Duration::seconds(100);
        // The newest are kept, the oldest were dropped.
        assert_eq!(cache.get("u99999", now), Some(doc(99_999)));
        assert_eq!(cache.get("u0", now), None);
        // A document is used for a day, then read again.
        assert!(cache.get("u99999", start + DISCOVERY_TTL).is_some());
        assert!(
            cache
                .get(
                    "u99999",
                    start + DISCOVERY_TTL + time::Duration::seconds(100)
                )
                .is_none()
        );
        // A clock that went back does not make a document valid for ever.
        assert!(
            cache
                .get("u99999", start - time::Duration::days(400))
                .is_none()
        );
    }

    #[test]
    fn parses_and_checks_token_endpoint() {
        let m = parse(
            br#"{"token_endpoint":"https://l/t/oauth2/v2.0/token","issuer":"https://l/t/v2.0"}"#,
            "u",
            200,
        )
        .unwrap();
        assert_eq!(m.token_endpoint, "https://l/t/oauth2/v2.0/token");
        assert!(parse(br#"{"token_endpoint":"http://evil/t"}"#, "u", 200).is_err());
        assert!(parse(br#"{"token_endpoint":"http://127.0.0.1:9/t"}"#, "u", 200).is_ok());
        assert!(
            parse(br#"{"issuer":"x"}"#, "u", 200)
                .unwrap_err()
                .to_string()
                .contains("no token_endpoint")
        );
        assert!(
            parse(b"<html>", "u", 200)
                .unwrap_err()
                .to_string()
                .contains("not JSON")
        );
        assert!(parse(br#"{"token_endpoint":42}"#, "u", 200).is_err());
    }
}
