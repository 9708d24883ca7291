//! OpenID Connect discovery: where the token endpoint is, and the bounded,
//! expiring memory of the documents already read.
//!
//! A generic provider's metadata ([`fetch_oidc`]) is looked for at each of
//! its issuer's well-known addresses in turn (OpenID's, then RFC 8414's
//! two forms), and its `issuer` must be the configured one exactly; when
//! they differ only by a trailing `/`, the error says so.

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
    /// `token_endpoint_auth_methods_supported` (empty when not given).
    pub(crate) auth_methods: Vec<String>,
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

/// A generic provider's metadata: the first of its well-known addresses
/// that answers (a 404 moves on to the next), its issuer checked.
pub(crate) async fn fetch_oidc(
    http: &Http,
    authority: &crate::Authority,
    client_request_id: &str,
) -> Result<Metadata> {
    let urls = authority.discovery_urls();
    for url in &urls {
        let resp = http.get(url, client_request_id).await?;
        if resp.status == 404 {
            continue;
        }
        if !(200..300).contains(&resp.status) {
            return Err(resp.into_server_error());
        }
        let m = parse(&resp.body, &resp.url, resp.status)?;
        check_issuer(
            authority.issuer().unwrap_or_default(),
            m.issuer.as_deref(),
            url,
        )?;
        return Ok(m);
    }
    Err(crate::error::AuthorityError::new(
        crate::error::AuthorityErrorKind::NoMetadata,
        format!(
            "no OpenID or OAuth metadata for issuer '{}': {} answered 404; is the issuer the \
             provider's (its 'iss' claim)?",
            authority.issuer().unwrap_or_default(),
            urls.join(", ")
        ),
    )
    .with_setting("issuer")
    .into())
}

/// The metadata's `issuer` must be the configured one, exactly.
pub(crate) fn check_issuer(configured: &str, found: Option<&str>, url: &str) -> Result<()> {
    let mismatch = |message: String| -> Result<()> {
        Err(crate::error::AuthorityError::new(
            crate::error::AuthorityErrorKind::IssuerMismatch,
            message,
        )
        .with_setting("issuer")
        .into())
    };
    match found {
        Some(f) if f == configured => Ok(()),
        Some(f) if f.trim_end_matches('/') == configured.trim_end_matches('/') => {
            mismatch(if f.ends_with('/') {
                format!(
                    "the provider's issuer is '{f}', with a trailing '/', and the configured one \
                     '{configured}' has none: write issuer = \"{f}\" (the issuer must match exactly)"
                )
            } else {
                format!(
                    "the provider's issuer is '{f}', without a trailing '/', and the configured \
                     one '{configured}' has one: write issuer = \"{f}\" (the issuer must match exactly)"
                )
            })
        }
        Some(f) => mismatch(format!(
            "the metadata at {url} names issuer '{}', not the configured '{configured}': \
             configure the provider's own issuer",
            f.chars().take(200).collect::<String>()
        )),
        None => mismatch(format!(
            "the metadata at {url} names no issuer, so it cannot be the configured \
             '{configured}''s"
        )),
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
        auth_methods: doc
            .get("token_endpoint_auth_methods_supported")
            .and_then(|v| v.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|m| m.as_str())
                    .take(32)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(i: usize) -> Metadata {
        Metadata {
            token_endpoint: format!("https://l/t{i}/oauth2/v2.0/token"),
            issuer: None,
            auth_methods: Vec::new(),
        }
    }

    #[test]
    fn the_issuer_must_be_the_configured_one_exactly() {
        let ok = check_issuer("https://i.example/r", Some("https://i.example/r"), "u");
        assert!(ok.is_ok());
        let msg = |c: &str, f: Option<&str>| {
            check_issuer(c, f, "https://i.example/m")
                .unwrap_err()
                .to_string()
        };
        let m = msg("https://i.example/", Some("https://i.example"));
        assert!(
            m.contains("without a trailing '/'") && m.contains("issuer = \"https://i.example\""),
            "{m}"
        );
        let m = msg("https://i.example", Some("https://i.example/"));
        assert!(m.contains("with a trailing '/'"), "{m}");
        let m = msg("https://i.example", Some("https://other.example"));
        assert!(m.contains("names issuer 'https://other.example'"), "{m}");
        let m = msg("https://i.example", None);
        assert!(m.contains("names no issuer"), "{m}");
        // Case matters (OpenID Connect Discovery §4.3: identical).
        assert!(check_issuer("https://i.example/R", Some("https://i.example/r"), "u").is_err());
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
