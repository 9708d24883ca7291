//! What a client needs to talk to a running emulator: the public
//! [`EmulatorInfo`] and [`TenantInfo`], how they are derived from the
//! configuration, and the `env` and `emulator.json` files written to the
//! state directory.
//!
//! Invariants: the primary app's first unexpired secret is the one
//! described (on the emulator clock at start); values in the `env` file are
//! single-quoted for a POSIX shell, so none is expanded; both files are
//! written with mode 0600 (they hold a secret).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::Error;
use crate::config::Config;
use crate::embedded::write_private;

/// A tenant other than the primary app's home tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TenantInfo {
    /// The tenant's GUID.
    pub tenant_id: String,
    /// Its first domain name (the GUID when it has none).
    pub domain: String,
}

/// A managed identity the emulator serves tokens for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ManagedIdentityInfo {
    /// `"system"` (the emulated host's) or `"user"`.
    pub kind: String,
    /// The tenant the identity's service principal lives in.
    pub tenant_id: String,
    /// The service principal's app id.
    pub client_id: String,
    /// The service principal's object id (principal id).
    pub object_id: String,
    /// The Azure resource id.
    pub resource_id: String,
}

/// The facts a client needs to talk to a running emulator; written to
/// `emulator.json` in the state directory.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[non_exhaustive]
pub struct EmulatorInfo {
    /// Base URL of the emulator, used as the authority host
    /// (`http://127.0.0.1:PORT`).
    pub authority_host: String,
    /// The primary app's home tenant id.
    pub tenant_id: String,
    /// That tenant's first domain name.
    pub tenant_domain: String,
    /// The other configured tenants.
    pub other_tenants: Vec<TenantInfo>,
    /// The primary app's client id.
    pub client_id: String,
    /// The primary app's first unexpired client secret, if any.
    pub client_secret: Option<String>,
    /// The primary app's certificate (PEM), when configured by path.
    pub certificate_path: Option<PathBuf>,
    /// The matching PKCS#8 PEM private key, when known.
    pub private_key_path: Option<PathBuf>,
    /// The matching `.pfx`, when known.
    pub pfx_path: Option<PathBuf>,
    /// The `.pfx` password, when known.
    pub pfx_password: Option<String>,
    /// SHA-1 thumbprint of the certificate (upper-case hex).
    pub certificate_thumbprint_sha1: Option<String>,
    /// SHA-256 thumbprint of the certificate (upper-case hex).
    pub certificate_thumbprint_sha256: Option<String>,
    /// Base URL of the sample API (`{authority_host}/v1.0`).
    pub sample_api: String,
    /// The scope to request for the sample API (`api://…/.default`).
    pub sample_scope: String,
    /// With TLS: the local CA certificate (`ca.pem` in the state directory)
    /// that clients must trust.
    #[serde(default)]
    pub ca_certificate_path: Option<PathBuf>,
    /// IMDS's base URL (the authority host): what
    /// `AZURE_POD_IDENTITY_AUTHORITY_HOST` is set to so clients send
    /// `GET {imds_base_url}/metadata/identity/oauth2/token`.
    #[serde(default)]
    pub imds_base_url: String,
    /// App Service / Functions / Container Apps: `IDENTITY_ENDPOINT`.
    #[serde(default)]
    pub identity_endpoint: String,
    /// App Service: `IDENTITY_HEADER`, the `X-IDENTITY-HEADER` secret.
    #[serde(default)]
    pub identity_header: String,
    /// Azure Arc: the endpoint (`IDENTITY_ENDPOINT` on an Arc machine).
    #[serde(default)]
    pub arc_endpoint: String,
    /// Azure Arc: the directory its challenge writes `.key` files into.
    #[serde(default)]
    pub arc_key_dir: PathBuf,
    /// Whether IMDS's limits mode (429 past 20/s or 5 concurrent) is on.
    #[serde(default)]
    pub imds_limits: bool,
    /// The managed identities (system-assigned first when there is one).
    #[serde(default)]
    pub managed_identities: Vec<ManagedIdentityInfo>,
}

pub(crate) fn describe(config: &Config, base_url: &str, now: time::OffsetDateTime) -> EmulatorInfo {
    let app = config.primary();
    let home = app
        .and_then(|a| config.tenant(&a.home_tenant))
        .or_else(|| config.tenants.first());
    let domain_of =
        |t: &crate::config::Tenant| t.domains.first().cloned().unwrap_or_else(|| t.id.clone());
    let cert = app.and_then(|a| a.certificates.first());
    EmulatorInfo {
        authority_host: base_url.to_string(),
        tenant_id: home.map(|t| t.id.clone()).unwrap_or_default(),
        tenant_domain: home.map(domain_of).unwrap_or_default(),
        other_tenants: config
            .tenants
            .iter()
            .filter(|t| Some(t.id.as_str()) != home.map(|h| h.id.as_str()))
            .map(|t| TenantInfo {
                tenant_id: t.id.clone(),
                domain: domain_of(t),
            })
            .collect(),
        client_id: app.map(|a| a.client_id.clone()).unwrap_or_default(),
        client_secret: app.and_then(|a| {
            a.secrets
                .iter()
                .find(|s| s.expires_at.is_none_or(|e| e > now))
                .map(|s| s.value.clone())
        }),
        certificate_path: cert.and_then(|c| c.path.clone()),
        private_key_path: cert.and_then(|c| c.private_key_path.clone()),
        pfx_path: cert.and_then(|c| c.pfx_path.clone()),
        pfx_password: cert.and_then(|c| c.pfx_password.clone()),
        certificate_thumbprint_sha1: cert.map(|c| c.cert.sha1_hex()),
        certificate_thumbprint_sha256: cert.map(|c| c.cert.sha256_hex()),
        sample_api: format!("{base_url}/v1.0"),
        sample_scope: config
            .sample_api
            .as_ref()
            .and_then(|s| config.resource_by_app_id(&s.resource_app_id))
            .map(|r| format!("{}/.default", r.scope_prefix()))
            .unwrap_or_default(),
        ca_certificate_path: None,
        imds_base_url: base_url.to_string(),
        identity_endpoint: format!("{base_url}{}", crate::managed_identity::app_service::PATH),
        identity_header: config.identity_header.clone().unwrap_or_default(),
        arc_endpoint: format!("{base_url}{}", crate::managed_identity::arc::PATH),
        arc_key_dir: crate::managed_identity::arc::arc_key_dir(config),
        imds_limits: config.imds_limits,
        managed_identities: {
            let mut list: Vec<ManagedIdentityInfo> = config
                .managed_identities
                .iter()
                .map(|m| ManagedIdentityInfo {
                    kind: if m.system { "system" } else { "user" }.to_string(),
                    tenant_id: m.tenant_id.clone(),
                    client_id: m.client_id.clone(),
                    object_id: m.object_id.clone(),
                    resource_id: m.resource_id.clone(),
                })
                .collect();
            list.sort_by_key(|m| m.kind != "system");
            list
        },
    }
}

/// Quotes a value for POSIX shells: `'…'` with `'` written as `'\''`.
pub(crate) fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

fn env_file(info: &EmulatorInfo) -> String {
    let mut lines = vec![
        "# Written by apptoken-emulator; source it: . ./env".to_string(),
        format!(
            "export AZURE_AUTHORITY_HOST={}",
            shell_quote(&info.authority_host)
        ),
        format!("export AZURE_TENANT_ID={}", shell_quote(&info.tenant_id)),
        format!("export AZURE_CLIENT_ID={}", shell_quote(&info.client_id)),
    ];
    if let Some(secret) = &info.client_secret {
        lines.push(format!(
            "export AZURE_CLIENT_SECRET={}",
            shell_quote(secret)
        ));
    }
    lines.push(format!(
        "export APPTOKEN_SAMPLE_API={}",
        shell_quote(&info.sample_api)
    ));
    lines.push(format!(
        "export APPTOKEN_SAMPLE_SCOPE={}",
        shell_quote(&info.sample_scope)
    ));
    if let Some(ca) = &info.ca_certificate_path {
        let ca = shell_quote(&ca.display().to_string());
        lines.push(format!("export APPTOKEN_CA_FILE={ca}"));
        lines.push(
            "# The emulator serves HTTPS with a certificate from this local CA. To make other tools trust it\n\
             # for one command only, prefix that command (do not export these: SSL_CERT_FILE replaces the\n\
             # system roots for every program started from this shell):"
                .to_string(),
        );
        lines.push(format!(
            "#   SSL_CERT_FILE={ca} curl …        (OpenSSL-based tools)"
        ));
        lines.push(format!(
            "#   REQUESTS_CA_BUNDLE={ca} python …  (Python requests)"
        ));
        lines.push(format!(
            "#   NODE_EXTRA_CA_CERTS={ca} node …   (Node.js; adds to the system roots)"
        ));
    }
    lines.join("\n") + "\n"
}

pub(crate) fn write_state_files(dir: &Path, info: &EmulatorInfo) -> Result<(), Error> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io("creating", dir, e))?;
    write_private(&dir.join("env"), env_file(info).as_bytes())?;
    let json = serde_json::to_vec_pretty(info).map_err(|e| Error::Config(e.to_string()))?;
    write_private(&dir.join("emulator.json"), &json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_quote_survives_quotes() {
        assert_eq!(shell_quote("a'b"), r"'a'\''b'");
        assert_eq!(shell_quote("$HOME `x`"), "'$HOME `x`'");
    }
}
