//! The TOML schema as serde reads it: one `Raw*` struct per table, every
//! field as written (strings not yet parsed, references not yet resolved).
//! `docs/EMULATOR.md` has the commented example.
//!
//! Invariants: every struct denies unknown fields, so a misspelt key is a
//! syntax error naming line and column; nothing here is checked beyond its
//! TOML type (that is `validate`'s job); `Debug` of an app never prints its
//! secrets.

use std::fmt;
use std::path::PathBuf;

use serde::Deserialize;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    pub(crate) token_lifetime_secs: Option<u64>,
    pub(crate) refresh_in_secs: Option<u64>,
    pub(crate) primary_app: Option<String>,
    pub(crate) tls: Option<bool>,
    pub(crate) key_overlap_secs: Option<u64>,
    /// Lifetime of managed-identity tokens (default 86400).
    pub(crate) managed_identity_token_lifetime_secs: Option<u64>,
    /// IMDS's limits (20 requests/s, 5 concurrent) answered with 429.
    pub(crate) imds_limits: Option<bool>,
    /// The App Service `IDENTITY_HEADER` secret (default: generated at start).
    pub(crate) identity_header: Option<String>,
    /// Where the Azure Arc challenge writes its key files.
    pub(crate) arc_key_dir: Option<PathBuf>,
    #[serde(default)]
    pub(crate) tenants: Vec<RawTenant>,
    #[serde(default)]
    pub(crate) resources: Vec<RawResource>,
    #[serde(default)]
    pub(crate) apps: Vec<RawApp>,
    #[serde(default)]
    pub(crate) grants: Vec<RawGrant>,
    #[serde(default)]
    pub(crate) users: Vec<RawUser>,
    pub(crate) sample_api: Option<RawSampleApi>,
    #[serde(default)]
    pub(crate) managed_identities: Vec<RawManagedIdentity>,
}

/// `[[managed_identities]]`: a system-assigned identity (the emulated
/// host's) or a user-assigned one.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawManagedIdentity {
    /// `"system"` or `"user"`.
    pub(crate) kind: String,
    pub(crate) tenant: String,
    pub(crate) client_id: String,
    pub(crate) object_id: String,
    pub(crate) resource_id: String,
    /// Application roles assigned to the identity, per resource.
    #[serde(default)]
    pub(crate) app_roles: Vec<RawRequiredRoles>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTenant {
    pub(crate) id: String,
    #[serde(default)]
    pub(crate) domains: Vec<String>,
    pub(crate) display_name: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawResource {
    pub(crate) app_id: String,
    pub(crate) app_id_uri: Option<String>,
    /// Informational only.
    #[allow(dead_code)]
    pub(crate) display_name: Option<String>,
    #[serde(default)]
    pub(crate) roles: Vec<RawRole>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRole {
    pub(crate) value: String,
    pub(crate) id: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawApp {
    pub(crate) client_id: String,
    pub(crate) display_name: Option<String>,
    pub(crate) home_tenant: String,
    #[serde(default)]
    pub(crate) multi_tenant: bool,
    #[serde(default)]
    pub(crate) disabled: bool,
    #[serde(default)]
    pub(crate) secrets: Vec<RawSecret>,
    #[serde(default)]
    pub(crate) certificates: Vec<RawCertificate>,
    #[serde(default)]
    pub(crate) required_roles: Vec<RawRequiredRoles>,
    #[serde(default)]
    pub(crate) redirect_uris: Vec<String>,
    #[serde(default)]
    pub(crate) federated_credentials: Vec<RawFederatedCredential>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRequiredRoles {
    pub(crate) resource: String,
    #[serde(default)]
    pub(crate) roles: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFederatedCredential {
    pub(crate) issuer: String,
    pub(crate) subject: String,
    #[serde(default)]
    pub(crate) audiences: Vec<String>,
}

impl fmt::Debug for RawApp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawApp")
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSecret {
    pub(crate) value: Option<String>,
    pub(crate) value_file: Option<PathBuf>,
    pub(crate) expires_at: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCertificate {
    pub(crate) path: Option<PathBuf>,
    pub(crate) pem: Option<String>,
    /// Informational: reported in emulator.json for the primary app.
    pub(crate) private_key_path: Option<PathBuf>,
    /// Informational: reported in emulator.json for the primary app.
    pub(crate) pfx_path: Option<PathBuf>,
    /// Informational: reported in emulator.json for the primary app.
    pub(crate) pfx_password: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawGrant {
    pub(crate) tenant: String,
    pub(crate) client_id: String,
    pub(crate) resource: String,
    #[serde(default)]
    pub(crate) roles: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawUser {
    pub(crate) tenant: String,
    pub(crate) id: Option<String>,
    pub(crate) display_name: String,
    pub(crate) given_name: Option<String>,
    pub(crate) surname: Option<String>,
    pub(crate) user_principal_name: String,
    pub(crate) mail: Option<String>,
    pub(crate) job_title: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSampleApi {
    pub(crate) resource: String,
    pub(crate) required_role: Option<String>,
}
