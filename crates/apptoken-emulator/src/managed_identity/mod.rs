//! Managed identities: which identity a request names, the token issued to
//! it (claims as Entra puts in managed-identity tokens), and the error that
//! each source answers in its own shape. The sources' endpoints are `imds`,
//! `app_service` and `arc`; IMDS's limits and the test hold are `limits`.
//!
//! Invariants: every value a source answers is a JSON string (as the real
//! endpoints send); tokens are signed with the emulator's current key (same
//! JWKS as app tokens) and carry the tenant's v2 issuer, so the emulator's
//! own token endpoint can take them back as federated client assertions;
//! every request is counted in the stats under its source.

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::config::{Config, ManagedIdentity};
use crate::crypto;
use crate::params::Params;
use crate::server::AppState;

pub(crate) mod app_service;
pub(crate) mod arc;
pub(crate) mod imds;
pub(crate) mod limits;

/// The token exchange audiences (public cloud, US Government, China), which
/// every identity may get a token for, as in Entra.
pub(crate) const EXCHANGE_AUDIENCES: [&str; 3] = [
    "api://AzureADTokenExchange",
    "api://AzureADTokenExchangeUSGov",
    "api://AzureADTokenExchangeChina",
];
/// Managed-identity tokens are back-dated by five minutes, as app tokens.
const BACKDATE_SECS: i64 = 300;

/// Which source answered, for the stats and the error shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    Imds,
    AppService,
    Arc,
}

impl Source {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Source::Imds => "imds",
            Source::AppService => "app_service",
            Source::Arc => "arc",
        }
    }

    /// The source of a request path, if it is a managed-identity endpoint.
    pub(crate) fn of_path(path: &str) -> Option<Source> {
        match path {
            imds::PATH => Some(Source::Imds),
            app_service::PATH => Some(Source::AppService),
            arc::PATH => Some(Source::Arc),
            _ => None,
        }
    }
}

/// Whether `id` is an Azure resource id: `/subscriptions/{guid}/resourceGroups/{name}/providers/{ns}/{type}/{name}`;
/// for a user-assigned identity the provider part is
/// `Microsoft.ManagedIdentity/userAssignedIdentities/{name}`.
pub(crate) fn valid_resource_id(id: &str, system: bool) -> bool {
    let parts: Vec<&str> = id.split('/').collect();
    let ok_name = |s: &str| {
        !s.is_empty()
            && s.len() <= 128
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.()".contains(&b))
    };
    let [
        "",
        subs,
        sub,
        groups,
        group,
        providers,
        namespace,
        kind,
        name,
    ] = parts.as_slice()
    else {
        return false;
    };
    let shape = subs.eq_ignore_ascii_case("subscriptions")
        && crate::config::parse_guid(sub).is_some()
        && groups.eq_ignore_ascii_case("resourceGroups")
        && ok_name(group)
        && providers.eq_ignore_ascii_case("providers")
        && ok_name(namespace)
        && ok_name(kind)
        && ok_name(name);
    let user_shape = namespace.eq_ignore_ascii_case("Microsoft.ManagedIdentity")
        && kind.eq_ignore_ascii_case("userAssignedIdentities");
    shape && (system != user_shape)
}

/// A refusal, in words every source can shape its own way.
#[derive(Debug, Clone)]
pub(crate) struct MiError {
    pub(crate) status: StatusCode,
    /// IMDS's `error` value (`invalid_request`, `invalid_resource`, …).
    pub(crate) error: &'static str,
    pub(crate) message: String,
}

impl MiError {
    pub(crate) fn new(status: StatusCode, error: &'static str, message: impl Into<String>) -> Self {
        MiError {
            status,
            error,
            message: message.into(),
        }
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    fn not_found() -> Self {
        Self::bad_request("Identity not found")
    }
}

/// The user-assigned id parameters one source accepts: (query name, what it names).
pub(crate) type IdParams = &'static [(&'static str, IdKind)];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IdKind {
    /// The identity's client id.
    Client,
    /// Its object (principal) id.
    Object,
    /// Its Azure resource id.
    Resource,
}

/// The identity a request names: none of `names` is system-assigned,
/// exactly one names a user-assigned identity, two or more are refused.
pub(crate) fn select<'c>(
    config: &'c Config,
    query: &Params,
    names: IdParams,
) -> Result<&'c ManagedIdentity, MiError> {
    let given: Vec<(&str, IdKind, &str)> = names
        .iter()
        .filter_map(|(name, kind)| query.first(name).map(|v| (*name, *kind, v)))
        .collect();
    match given.as_slice() {
        [] => config
            .managed_identities
            .iter()
            .find(|m| m.system)
            .ok_or_else(MiError::not_found),
        [(_, kind, value)] => {
            let value = value.trim();
            config
                .managed_identities
                .iter()
                .filter(|m| !m.system)
                .find(|m| match kind {
                    IdKind::Client => m.client_id.eq_ignore_ascii_case(value),
                    IdKind::Object => m.object_id.eq_ignore_ascii_case(value),
                    IdKind::Resource => m.resource_id.eq_ignore_ascii_case(value),
                })
                .ok_or_else(MiError::not_found)
        }
        several => Err(MiError::bad_request(format!(
            "Only one of {} may be given; the request has {}.",
            names
                .iter()
                .map(|(n, _)| format!("'{n}'"))
                .collect::<Vec<_>>()
                .join(", "),
            several
                .iter()
                .map(|(n, _, _)| format!("'{n}'"))
                .collect::<Vec<_>>()
                .join(" and ")
        ))),
    }
}

/// A token issued to a managed identity; every field answered as a string.
#[derive(Debug)]
pub(crate) struct Issued {
    pub(crate) access_token: String,
    pub(crate) expires_in: String,
    pub(crate) expires_on: String,
    pub(crate) not_before: String,
    pub(crate) resource: String,
    pub(crate) client_id: String,
}

impl Issued {
    /// IMDS's (and Arc's) success body.
    pub(crate) fn imds_body(&self) -> Value {
        json!({
            "access_token": self.access_token,
            "refresh_token": "",
            "expires_in": self.expires_in,
            "expires_on": self.expires_on,
            "ext_expires_in": self.expires_in,
            "not_before": self.not_before,
            "resource": self.resource,
            "token_type": "Bearer",
            "client_id": self.client_id,
        })
    }
}

/// Issues a token for `resource` (the resource URI as sent, no `/.default`)
/// to `identity`.
pub(crate) fn issue(
    st: &AppState,
    identity: &ManagedIdentity,
    resource: Option<&str>,
) -> Result<Issued, MiError> {
    let resource = resource
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .ok_or_else(|| MiError::bad_request("Required audience parameter not specified"))?;
    if resource.ends_with("/.default") {
        return Err(MiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_resource",
            format!(
                "AADSTS500011: The resource principal named {resource} was not found in the tenant named {}. Send the resource URI, without '/.default'.",
                identity.tenant_id
            ),
        ));
    }
    let exchange = EXCHANGE_AUDIENCES
        .iter()
        .any(|a| a.eq_ignore_ascii_case(resource.trim_end_matches('/')));
    let configured = st.config.resources.iter().find(|r| r.matches(resource));
    if !exchange && configured.is_none() {
        let tenant = st
            .config
            .tenant(&identity.tenant_id)
            .map_or(identity.tenant_id.as_str(), |t| t.display_name.as_str());
        return Err(MiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_resource",
            format!(
                "AADSTS500011: The resource principal named {resource} was not found in the tenant named {tenant}. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant."
            ),
        ));
    }
    let roles: Vec<String> = configured
        .map(|r| {
            identity
                .app_roles
                .iter()
                .filter(|(id, _)| *id == r.app_id)
                .flat_map(|(_, roles)| roles.iter().cloned())
                .collect()
        })
        .unwrap_or_default();
    let now = st.clock.now().unix_timestamp();
    let lifetime = i64::try_from(st.config.mi_lifetime_secs).unwrap_or(86_400);
    let issued_at = now.saturating_sub(BACKDATE_SECS);
    let exp = now.saturating_add(lifetime);
    let tid = &identity.tenant_id;
    let mut claims = json!({
        "aud": resource,
        "iss": st.issuer(tid),
        "iat": issued_at,
        "nbf": issued_at,
        "exp": exp,
        "appid": identity.client_id,
        "appidacr": "2",
        "azp": identity.client_id,
        "azpacr": "2",
        "idp": format!("https://sts.windows.net/{tid}/"),
        "idtyp": "app",
        "oid": identity.object_id,
        "sub": identity.object_id,
        "tid": tid,
        "uti": crypto::b64url(&crypto::random_bytes(16)),
        "ver": "2.0",
        "xms_mirid": identity.resource_id,
    });
    if !roles.is_empty() {
        claims["roles"] = json!(roles);
    }
    let key = st.runtime.current_key();
    let header = json!({"typ": "JWT", "alg": "RS256", "x5t": key.kid, "kid": key.kid});
    let access_token = key.sign_jwt(&header, &claims).map_err(|e| {
        tracing::error!(error = %e, "signing failed");
        MiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "The token could not be signed.",
        )
    })?;
    let expires_in = lifetime.saturating_sub(1);
    Ok(Issued {
        access_token,
        expires_in: expires_in.to_string(),
        expires_on: now.saturating_add(expires_in).to_string(),
        not_before: issued_at.to_string(),
        resource: resource.to_string(),
        client_id: identity.client_id.clone(),
    })
}

/// Counts a managed-identity answer in the stats.
pub(crate) fn count(st: &AppState, source: Source, client_id: &str, status: StatusCode) {
    let outcome = if status == StatusCode::OK {
        "success".to_string()
    } else {
        status.as_u16().to_string()
    };
    st.stats
        .managed_identity(source.name(), client_id, &outcome);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_ids_are_checked_by_kind() {
        let user = "/subscriptions/0b1f6471-1bf0-4dda-aec3-cb9272f09590/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-1";
        let vm = "/subscriptions/0b1f6471-1bf0-4dda-aec3-cb9272f09590/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm-1";
        assert!(valid_resource_id(user, false));
        assert!(!valid_resource_id(user, true));
        assert!(valid_resource_id(vm, true));
        assert!(!valid_resource_id(vm, false));
        for bad in [
            "",
            "/",
            "subscriptions/x",
            "/subscriptions/not-a-guid/resourceGroups/rg/providers/a/b/c",
            &format!("{vm}/extra"),
            &vm.replace("rg", "r g"),
        ] {
            assert!(!valid_resource_id(bad, true), "{bad}");
            assert!(!valid_resource_id(bad, false), "{bad}");
        }
    }
}
