//! A token request's per-call options ([`TokenRequest`]) and the `claims`
//! parameter they produce with the client's declared capabilities.

use crate::error::{ConfigError, ConfigErrorKind, Result};

/// One token request, with per-call options.
///
/// ```
/// use apptoken::TokenRequest;
/// let req = TokenRequest::new(["api://my-api/.default"])
///     .tenant("fabrikam.onmicrosoft.com")
///     .force_refresh(true);
/// # let _ = req;
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct TokenRequest {
    pub(super) scopes: Vec<String>,
    pub(super) tenant: Option<String>,
    pub(super) force_refresh: bool,
    pub(super) correlation_id: Option<uuid::Uuid>,
    pub(super) claims: Option<String>,
}

impl TokenRequest {
    /// A request for these scopes (one resource's `…/.default`).
    pub fn new<I, S>(scopes: I) -> TokenRequest
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        TokenRequest {
            scopes: scopes.into_iter().map(|s| s.as_ref().to_string()).collect(),
            tenant: None,
            force_refresh: false,
            correlation_id: None,
            claims: None,
        }
    }

    /// Answers a claims challenge: asks for a fresh token carrying these
    /// claims (the JSON a resource sent in `WWW-Authenticate: … claims="…"`,
    /// decoded — see [`crate::claims_challenge`]). Implies `force_refresh`.
    pub fn claims(mut self, claims: impl Into<String>) -> Self {
        self.claims = Some(claims.into());
        self
    }

    /// Requests the token from another tenant than the client's (a
    /// multi-tenant app serving a customer's directory).
    pub fn tenant(mut self, tenant: impl Into<String>) -> Self {
        self.tenant = Some(tenant.into());
        self
    }

    /// Skips the cache and asks the identity provider for a new token.
    pub fn force_refresh(mut self, force: bool) -> Self {
        self.force_refresh = force;
        self
    }

    /// The `client-request-id` to send (a fresh one otherwise), to match the
    /// request with the server's logs.
    pub fn correlation_id(mut self, id: uuid::Uuid) -> Self {
        self.correlation_id = Some(id);
        self
    }
}

/// The `claims` parameter: the request's claims (a JSON object) with the
/// client capabilities added as `access_token.xms_cc`.
pub(super) fn merge_claims(
    capabilities: &[String],
    request: Option<&str>,
) -> Result<Option<String>> {
    if capabilities.is_empty() && request.is_none() {
        return Ok(None);
    }
    let mut doc: serde_json::Value = match request {
        Some(c) => serde_json::from_str(c).map_err(|e| {
            ConfigError::new(ConfigErrorKind::Invalid, "the claims are not JSON")
                .with_setting("claims")
                .with_source(e)
        })?,
        None => serde_json::json!({}),
    };
    let Some(obj) = doc.as_object_mut() else {
        return Err(
            ConfigError::new(ConfigErrorKind::Invalid, "the claims are not a JSON object")
                .with_setting("claims")
                .into(),
        );
    };
    if !capabilities.is_empty() {
        let at = obj
            .entry("access_token")
            .or_insert_with(|| serde_json::json!({}));
        if let Some(at) = at.as_object_mut() {
            at.insert(
                "xms_cc".into(),
                serde_json::json!({ "values": capabilities }),
            );
        }
    }
    Ok(Some(doc.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_are_merged_with_capabilities() {
        assert_eq!(merge_claims(&[], None).unwrap(), None);
        let caps = vec!["cp1".to_string()];
        let c: serde_json::Value =
            serde_json::from_str(&merge_claims(&caps, None).unwrap().unwrap()).unwrap();
        assert_eq!(
            c,
            serde_json::json!({"access_token":{"xms_cc":{"values":["cp1"]}}})
        );
        let challenge = r#"{"access_token":{"nbf":{"essential":true,"value":"1700000000"}}}"#;
        let c: serde_json::Value =
            serde_json::from_str(&merge_claims(&caps, Some(challenge)).unwrap().unwrap()).unwrap();
        assert_eq!(c["access_token"]["nbf"]["value"], "1700000000");
        assert_eq!(c["access_token"]["xms_cc"]["values"][0], "cp1");
        assert!(merge_claims(&[], Some("not json")).is_err());
        assert!(merge_claims(&[], Some("[1]")).is_err());
    }
}
