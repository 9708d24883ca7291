//! The validated model the handlers read: tenants, resources and their
//! roles, apps and their credentials, grants, users, the sample API.
//!
//! Invariants (established by `validate`, relied on by every lookup): ids
//! are lower-case hyphenated GUIDs, domains lower-case DNS names, every
//! reference (home tenant, grant tenant/app/resource, required roles)
//! names something configured, and ids and domains are unique. `Debug`
//! never prints a secret value or a PFX password.

use std::fmt;
use std::path::PathBuf;

use time::OffsetDateTime;

use crate::crypto::ParsedCert;

#[derive(Debug, Clone)]
pub(crate) struct Tenant {
    /// Lower-case hyphenated GUID.
    pub(crate) id: String,
    /// Lower-case domain names.
    pub(crate) domains: Vec<String>,
    pub(crate) display_name: String,
}

#[derive(Debug, Clone)]
pub(crate) struct Role {
    pub(crate) value: String,
    #[allow(dead_code)]
    pub(crate) id: String,
}

#[derive(Debug, Clone)]
pub(crate) struct Resource {
    pub(crate) app_id: String,
    pub(crate) app_id_uri: Option<String>,
    pub(crate) roles: Vec<Role>,
}

impl Resource {
    /// The identifier used in `{resource}/.default` scopes: the app id URI
    /// when there is one, else the app id.
    pub(crate) fn scope_prefix(&self) -> &str {
        self.app_id_uri.as_deref().unwrap_or(&self.app_id)
    }

    /// Whether a scope's resource part names this resource. App id GUIDs and
    /// URIs compare case-insensitively; a trailing `/` is tolerated.
    pub(crate) fn matches(&self, requested: &str) -> bool {
        let trimmed = requested.strip_suffix('/').unwrap_or(requested);
        let eq = |candidate: &str| {
            candidate.eq_ignore_ascii_case(requested) || candidate.eq_ignore_ascii_case(trimmed)
        };
        eq(&self.app_id) || self.app_id_uri.as_deref().is_some_and(eq)
    }
}

/// A client secret. `Debug` never prints the value.
#[derive(Clone)]
pub(crate) struct Secret {
    pub(crate) value: String,
    pub(crate) expires_at: Option<OffsetDateTime>,
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Secret")
            .field("value", &"[redacted]")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

#[derive(Clone)]
pub(crate) struct RegisteredCert {
    pub(crate) cert: ParsedCert,
    pub(crate) path: Option<PathBuf>,
    pub(crate) private_key_path: Option<PathBuf>,
    pub(crate) pfx_path: Option<PathBuf>,
    pub(crate) pfx_password: Option<String>,
}

impl fmt::Debug for RegisteredCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegisteredCert")
            .field("sha1", &self.cert.sha1_hex())
            .field("path", &self.path)
            .field(
                "pfx_password",
                &self.pfx_password.as_ref().map(|_| "[redacted]"),
            )
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone)]
pub(crate) struct App {
    pub(crate) client_id: String,
    pub(crate) display_name: String,
    pub(crate) home_tenant: String,
    pub(crate) multi_tenant: bool,
    pub(crate) disabled: bool,
    pub(crate) secrets: Vec<Secret>,
    pub(crate) certificates: Vec<RegisteredCert>,
    /// What the app registration asks for: (resource app id, role values).
    pub(crate) required_roles: Vec<(String, Vec<String>)>,
    /// Reply URLs registered on the app (admin consent redirects).
    pub(crate) redirect_uris: Vec<String>,
    pub(crate) federated_credentials: Vec<FederatedCredential>,
}

/// A federated identity credential: tokens of an external issuer accepted
/// as client assertions.
#[derive(Debug, Clone)]
pub(crate) struct FederatedCredential {
    pub(crate) issuer: String,
    pub(crate) subject: String,
    pub(crate) audiences: Vec<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct Grant {
    pub(crate) tenant_id: String,
    pub(crate) client_id: String,
    pub(crate) resource_app_id: String,
    pub(crate) roles: Vec<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct User {
    pub(crate) tenant_id: String,
    pub(crate) id: String,
    pub(crate) display_name: String,
    pub(crate) given_name: Option<String>,
    pub(crate) surname: Option<String>,
    pub(crate) user_principal_name: String,
    pub(crate) mail: Option<String>,
    pub(crate) job_title: Option<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct SampleApi {
    pub(crate) resource_app_id: String,
    pub(crate) required_role: Option<String>,
}

/// A managed identity: the emulated host's system-assigned one, or a
/// user-assigned one (both are service principals in `tenant_id`).
#[derive(Debug, Clone)]
pub(crate) struct ManagedIdentity {
    pub(crate) system: bool,
    pub(crate) tenant_id: String,
    /// The service principal's app id (`appid`/`azp` of its tokens).
    pub(crate) client_id: String,
    /// The service principal's object id (`oid`/`sub`).
    pub(crate) object_id: String,
    /// The Azure resource id (`xms_mirid`), as configured.
    pub(crate) resource_id: String,
    /// Application roles assigned: (resource app id, role values).
    pub(crate) app_roles: Vec<(String, Vec<String>)>,
}
