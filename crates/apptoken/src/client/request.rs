//! A token request's per-call options ([`TokenRequest`]) and the `claims`
//! parameter they produce with the client's declared capabilities.

use crate::error::{ConfigError, ConfigErrorKind, Result};

/// One token request, with per-call options.
///
/// What the token is for follows the client's authority:
/// - **Entra ID** (and AD FS): exactly one resource's static scope,
///   `{resource}/.default`; a list that names two resources, a delegated
///   permission, a [`resource`](TokenRequest::resource) or an
///   [`audience`](TokenRequest::audience) is refused before any request.
/// - **A generic OpenID Connect provider** ([`crate::Authority::oidc`]):
///   any number of the provider's own scopes (`api:read api:write`,
///   case-sensitive), RFC 8707 resource indicators and an audience.
///
/// Scopes, resources and audience are all part of the cache key; their
/// order and duplicates are not.
///
/// ```
/// use apptoken::TokenRequest;
/// // Entra ID: one resource, a customer's tenant.
/// let req = TokenRequest::new(["api://my-api/.default"])
///     .tenant("fabrikam.onmicrosoft.com")
///     .force_refresh(true);
/// // A generic provider: its scopes, a resource indicator, an audience.
/// let okta = TokenRequest::new(["orders:read", "orders:write"])
///     .resource("https://orders.example.com/")
///     .audience("api://orders");
/// # let _ = (req, okta);
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct TokenRequest {
    pub(super) scopes: Vec<String>,
    pub(super) resources: Vec<String>,
    pub(super) audience: Option<String>,
    pub(super) tenant: Option<String>,
    pub(super) force_refresh: bool,
    pub(super) correlation_id: Option<String>,
    pub(super) claims: Option<String>,
}

impl TokenRequest {
    /// A request for these scopes: one resource's `{resource}/.default` for
    /// Entra ID, the provider's scopes (any number, none for its default)
    /// for a generic OpenID provider.
    pub fn new<I, S>(scopes: I) -> TokenRequest
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        TokenRequest {
            scopes: scopes.into_iter().map(|s| s.as_ref().to_string()).collect(),
            resources: Vec::new(),
            audience: None,
            tenant: None,
            force_refresh: false,
            correlation_id: None,
            claims: None,
        }
    }

    /// Adds an RFC 8707 `resource` indicator (an absolute URI; repeat for
    /// several). Generic OpenID providers only: Entra ID names the
    /// resource in the scope, and refuses this.
    pub fn resource(mut self, uri: impl Into<String>) -> Self {
        self.resources.push(uri.into());
        self
    }

    /// Sets the `audience` parameter that Auth0 and Okta use to name the
    /// API. Generic OpenID providers only.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self
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
    /// request with the server's logs: a GUID such as
    /// `0f8fad5b-d9cb-469f-a165-70867728950e` (any of its usual spellings).
    /// Anything else makes the request fail with a configuration error
    /// naming `correlation_id`, before it is sent.
    pub fn correlation_id(mut self, id: impl Into<String>) -> Self {
        self.correlation_id = Some(id.into());
        self
    }

    /// The correlation id, parsed.
    pub(super) fn correlation(&self) -> Result<Option<uuid::Uuid>> {
        let Some(id) = self.correlation_id.as_deref() else {
            return Ok(None);
        };
        uuid::Uuid::try_parse(id.trim()).map(Some).map_err(|e| {
            ConfigError::new(
                ConfigErrorKind::Invalid,
                format!("the correlation id '{id}' is not a GUID"),
            )
            .with_setting("correlation_id")
            .with_source(e)
            .into()
        })
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
