//! The `{tenant}` path segment: a configured tenant by id or domain,
//! `common`/`organizations` (resolved later from the app's home tenant), or
//! Entra's error for anything else. Used by the token endpoint, discovery,
//! admin consent and the consent URL pages.
//!
//! Invariants: the config's tenant ids and domains are lower case (the
//! config validation makes them so), so a segment is lower-cased once and
//! compared exactly; the empty GUID and single labels other than the
//! multi-tenant names are refused before any lookup.

use crate::config::{Config, Tenant};
use crate::error_shape::AadError;

/// Whether `name` is a syntactically valid DNS name with at least one dot.
pub(crate) fn is_dns_name(name: &str) -> bool {
    name.len() <= 253
        && name.contains('.')
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// How the `{tenant}` path segment resolved.
#[derive(Debug)]
pub(crate) enum TenantRef<'a> {
    /// A configured tenant, named by id or domain.
    Known(&'a Tenant),
    /// `common` or `organizations`: resolved later from the app's home tenant.
    Multi,
}

/// Resolves a tenant path segment; `discovery` selects the discovery wording.
pub(crate) fn resolve_tenant<'a>(
    config: &'a Config,
    segment: &str,
    discovery: bool,
) -> Result<TenantRef<'a>, AadError> {
    let lower = segment.to_ascii_lowercase();
    if lower == "common" || lower == "organizations" {
        return Ok(TenantRef::Multi);
    }
    let not_found = |t: &str| {
        if discovery {
            AadError::tenant_not_found_discovery(t)
        } else {
            AadError::tenant_not_found(t)
        }
    };
    if let Some(guid) = crate::config::parse_guid(&lower) {
        if guid == "00000000-0000-0000-0000-000000000000" {
            return Err(AadError::empty_guid_tenant(segment));
        }
        return config
            .tenant(&guid)
            .map(TenantRef::Known)
            .ok_or_else(|| not_found(segment));
    }
    if is_dns_name(&lower) {
        return config
            .tenant_by_id_or_domain(&lower)
            .map(TenantRef::Known)
            .ok_or_else(|| not_found(segment));
    }
    // `consumers` and any other single label: not a tenant Entra can serve here.
    if lower == "consumers" {
        return Err(not_found(segment));
    }
    Err(AadError::malformed_tenant(segment))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_names() {
        assert!(is_dns_name("contoso.onmicrosoft.com"));
        assert!(!is_dns_name("contoso"));
        assert!(!is_dns_name("bad_name.com"));
        assert!(!is_dns_name("-a.com"));
        assert!(!is_dns_name("a..com"));
    }
}
