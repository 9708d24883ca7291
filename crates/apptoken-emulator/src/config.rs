//! The emulator's configuration: the TOML schema, its validation, and the
//! validated model the handlers read.
//!
//! Why one file (for now): the schema, its validation and the model are
//! written against each other field by field; a split into `schema` and
//! `model` is part of issue #18's layout step.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use time::OffsetDateTime;

use crate::Error;
use crate::crypto::ParsedCert;

/// Default token lifetime: one hour, answered as `expires_in: 3599`.
const DEFAULT_LIFETIME_SECS: u64 = 3600;
/// Default overlap of a rotated-out signing key in the JWKS: 24 hours.
const DEFAULT_KEY_OVERLAP_SECS: u64 = 86_400;

// ---------------------------------------------------------------------------
// The TOML schema (private; see docs/EMULATOR.md for the commented example).
// ---------------------------------------------------------------------------

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    pub(crate) token_lifetime_secs: Option<u64>,
    pub(crate) refresh_in_secs: Option<u64>,
    pub(crate) primary_app: Option<String>,
    pub(crate) tls: Option<bool>,
    pub(crate) key_overlap_secs: Option<u64>,
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

// ---------------------------------------------------------------------------
// The validated model.
// ---------------------------------------------------------------------------

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

/// The emulator's whole configuration: tenants, apps and their credentials,
/// resources, admin consents (grants), sample users and token settings.
///
/// Build it with [`Config::from_toml_str`], [`Config::from_file`] or
/// [`Config::embedded`]. `Debug` never prints secrets.
#[derive(Debug, Clone)]
pub struct Config {
    pub(crate) token_lifetime_secs: u64,
    pub(crate) refresh_in_secs: Option<u64>,
    pub(crate) tenants: Vec<Tenant>,
    pub(crate) resources: Vec<Resource>,
    pub(crate) apps: Vec<App>,
    pub(crate) grants: Vec<Grant>,
    pub(crate) users: Vec<User>,
    pub(crate) sample_api: Option<SampleApi>,
    pub(crate) primary_app: Option<String>,
    pub(crate) state_dir: Option<PathBuf>,
    pub(crate) tls: bool,
    /// Whether `start` may listen on an address that is not loopback.
    pub(crate) allow_remote: bool,
    /// How long a rotated-out signing key stays in the JWKS.
    pub(crate) key_overlap_secs: u64,
}

impl Config {
    /// Parses a TOML configuration; relative paths (`value_file`, certificate
    /// `path`) resolve against `base_dir`.
    ///
    /// # Errors
    /// [`Error::ConfigSyntax`] when the TOML is invalid or has an unknown or
    /// mistyped field (the message names line and column);
    /// [`Error::Config`] when a reference names an unknown tenant, app or
    /// resource, an id is not a GUID, or a date does not parse;
    /// [`Error::Io`]/[`Error::Crypto`] when a referenced file is unreadable
    /// or not a certificate.
    pub fn from_toml_str(toml: &str, base_dir: &Path) -> Result<Config, Error> {
        let raw: RawConfig = toml::from_str(toml)
            .map_err(|e| Error::ConfigSyntax(e.to_string().trim_end().to_string()))?;
        validate(raw, base_dir)
    }

    /// Reads and parses a TOML configuration file; relative paths resolve
    /// against the file's directory.
    ///
    /// # Errors
    /// As [`Config::from_toml_str`], plus [`Error::Io`] if the file cannot be read.
    pub fn from_file(path: &Path) -> Result<Config, Error> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io("reading", path, e))?;
        let base = path.parent().unwrap_or_else(|| Path::new("."));
        Config::from_toml_str(&text, base).map_err(|e| match e {
            Error::ConfigSyntax(m) => Error::ConfigSyntax(format!("{}: {m}", path.display())),
            Error::Config(m) => Error::Config(format!("{}: {m}", path.display())),
            other => other,
        })
    }

    /// The embedded default configuration (two tenants, one multi-tenant app
    /// consented in both, the sample API and deterministic sample users).
    ///
    /// Generates — or reuses, when valid files are already there — the
    /// default app's client secret and an RSA-2048 key with a self-signed
    /// certificate in `state_dir` (PEM certificate, PKCS#8 PEM key with mode
    /// 0600, and a password-protected `.pfx`). `start` later writes the `env`
    /// and `emulator.json` files there too.
    ///
    /// # Errors
    /// [`Error::Io`] when `state_dir` cannot be created or written;
    /// [`Error::Crypto`] when key generation fails.
    pub fn embedded(state_dir: &Path) -> Result<Config, Error> {
        crate::embedded::config(state_dir)
    }

    /// Serves HTTPS (`true`) or plain HTTP (`false`, the default; TOML key
    /// `tls`). With TLS, `start` creates a local CA (or reuses `ca.pem` and
    /// `ca-key.pem` from the state directory) and a server certificate for
    /// loopback and Entra's login host names; see docs/EMULATOR.md.
    #[must_use]
    pub fn with_tls(mut self, enabled: bool) -> Config {
        self.tls = enabled;
        self
    }

    /// Lets [`Emulator::start`](crate::Emulator::start) listen on an address
    /// that is not loopback (not in `127.0.0.0/8`, not `::1`), such as
    /// `0.0.0.0`; default `false`, and without it such an address is refused
    /// with [`Error::RemoteListen`] before anything is bound. There is no
    /// TOML key for it: exposing the emulator is the caller's decision.
    ///
    /// The admin API (`/_emulator/*`: faults, clock, token lifetimes,
    /// consent, key rotation, revocation, stats) has no authentication:
    /// anyone who can reach the port can change the emulator's behaviour.
    /// `start` logs a warning saying so when this is used.
    #[must_use]
    pub fn with_allow_remote(mut self, allow: bool) -> Config {
        self.allow_remote = allow;
        self
    }

    /// Sets the directory where `start` writes the `env` and `emulator.json`
    /// files.
    #[must_use]
    pub fn with_state_dir(mut self, dir: &Path) -> Config {
        self.state_dir = Some(dir.to_path_buf());
        self
    }

    pub(crate) fn tenant_by_id_or_domain(&self, name: &str) -> Option<&Tenant> {
        let lower = name.to_ascii_lowercase();
        self.tenants
            .iter()
            .find(|t| t.id == lower || t.domains.contains(&lower))
    }

    pub(crate) fn tenant(&self, id: &str) -> Option<&Tenant> {
        self.tenants.iter().find(|t| t.id == id)
    }

    pub(crate) fn app(&self, client_id: &str) -> Option<&App> {
        let lower = client_id.to_ascii_lowercase();
        self.apps.iter().find(|a| a.client_id == lower)
    }

    pub(crate) fn resource_by_app_id(&self, app_id: &str) -> Option<&Resource> {
        self.resources.iter().find(|r| r.app_id == app_id)
    }

    /// The primary app: `primary_app` or the first app.
    pub(crate) fn primary(&self) -> Option<&App> {
        match &self.primary_app {
            Some(id) => self.app(id),
            None => self.apps.first(),
        }
    }

    /// Whether the app has a service principal in the tenant (its home
    /// tenant, or any tenant where a grant consents to it).
    pub(crate) fn has_service_principal(&self, app: &App, tenant_id: &str) -> bool {
        app.home_tenant == tenant_id
            || self
                .grants
                .iter()
                .any(|g| g.client_id == app.client_id && g.tenant_id == tenant_id)
    }

    /// Application roles granted to the app on the resource in the tenant.
    pub(crate) fn granted_roles(
        &self,
        client_id: &str,
        tenant_id: &str,
        resource_app_id: &str,
    ) -> Vec<String> {
        let mut roles: Vec<String> = Vec::new();
        for g in self.grants.iter().filter(|g| {
            g.client_id == client_id
                && g.tenant_id == tenant_id
                && g.resource_app_id == resource_app_id
        }) {
            for r in &g.roles {
                if !roles.contains(r) {
                    roles.push(r.clone());
                }
            }
        }
        roles
    }
}

/// Normalizes a GUID to lower-case hyphenated form.
pub(crate) fn parse_guid(text: &str) -> Option<String> {
    let t = text.trim();
    // Only the canonical 36-character form, as Entra uses.
    if t.len() != 36 {
        return None;
    }
    uuid::Uuid::parse_str(t)
        .ok()
        .map(|u| u.hyphenated().to_string())
}

fn parse_rfc3339(text: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()
}

/// Parses the GUID at `place.field` and checks it is not already taken.
fn unique_guid<'a>(
    place: &str,
    field: &str,
    value: &str,
    mut taken: impl Iterator<Item = &'a str>,
) -> Result<String, Error> {
    let id = parse_guid(value)
        .ok_or_else(|| cfg_err(format!("{place}: {field} '{value}' is not a GUID")))?;
    if taken.any(|t| t == id) {
        return Err(cfg_err(format!("{place}: duplicate {field} '{id}'")));
    }
    Ok(id)
}

fn resolve(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

fn cfg_err(msg: impl Into<String>) -> Error {
    Error::Config(msg.into())
}

pub(crate) fn validate(raw: RawConfig, base: &Path) -> Result<Config, Error> {
    let token_lifetime_secs = raw.token_lifetime_secs.unwrap_or(DEFAULT_LIFETIME_SECS);
    if !(60..=86_400).contains(&token_lifetime_secs) {
        return Err(cfg_err(format!(
            "token_lifetime_secs = {token_lifetime_secs} is out of range (60..=86400)"
        )));
    }
    let refresh_in_secs = raw.refresh_in_secs.filter(|s| *s > 0);

    // Tenants.
    let mut tenants: Vec<Tenant> = Vec::new();
    for (i, t) in raw.tenants.iter().enumerate() {
        let id = unique_guid(
            &format!("tenants[{i}]"),
            "id",
            &t.id,
            tenants.iter().map(|x| x.id.as_str()),
        )?;
        let mut domains = Vec::new();
        for d in &t.domains {
            let d = d.trim().to_ascii_lowercase();
            if !crate::token::is_dns_name(&d) {
                return Err(cfg_err(format!(
                    "tenants[{i}]: domain '{d}' is not a valid DNS name"
                )));
            }
            if tenants.iter().any(|x| x.domains.contains(&d)) || domains.contains(&d) {
                return Err(cfg_err(format!("tenants[{i}]: duplicate domain '{d}'")));
            }
            domains.push(d);
        }
        let display_name = t
            .display_name
            .clone()
            .or_else(|| domains.first().cloned())
            .unwrap_or_else(|| id.clone());
        tenants.push(Tenant {
            id,
            domains,
            display_name,
        });
    }
    let find_tenant = |name: &str| -> Option<String> {
        let lower = name.trim().to_ascii_lowercase();
        tenants
            .iter()
            .find(|t| t.id == lower || t.domains.contains(&lower))
            .map(|t| t.id.clone())
    };

    // Resources.
    let mut resources: Vec<Resource> = Vec::new();
    for (i, r) in raw.resources.iter().enumerate() {
        let app_id = unique_guid(
            &format!("resources[{i}]"),
            "app_id",
            &r.app_id,
            resources.iter().map(|x| x.app_id.as_str()),
        )?;
        if let Some(uri) = &r.app_id_uri
            && (uri.is_empty() || uri.chars().any(char::is_whitespace))
        {
            return Err(cfg_err(format!(
                "resources[{i}]: app_id_uri '{uri}' is not valid"
            )));
        }
        let mut roles = Vec::new();
        for role in &r.roles {
            let id = match &role.id {
                Some(id) => parse_guid(id).ok_or_else(|| {
                    cfg_err(format!(
                        "resources[{i}]: role '{}' id '{id}' is not a GUID",
                        role.value
                    ))
                })?,
                None => crate::crypto::derived_guid(&["role", &app_id, &role.value]).to_string(),
            };
            roles.push(Role {
                value: role.value.clone(),
                id,
            });
        }
        resources.push(Resource {
            app_id,
            app_id_uri: r.app_id_uri.clone(),
            roles,
        });
    }
    let find_resource = |name: &str| -> Option<String> {
        resources
            .iter()
            .find(|r| r.matches(name))
            .map(|r| r.app_id.clone())
    };

    // Apps.
    let mut apps: Vec<App> = Vec::new();
    for (i, a) in raw.apps.into_iter().enumerate() {
        let client_id = unique_guid(
            &format!("apps[{i}]"),
            "client_id",
            &a.client_id,
            apps.iter().map(|x| x.client_id.as_str()),
        )?;
        let home_tenant = find_tenant(&a.home_tenant).ok_or_else(|| {
            cfg_err(format!(
                "apps[{i}] ({client_id}): home_tenant '{}' is not a configured tenant",
                a.home_tenant
            ))
        })?;
        let mut secrets = Vec::new();
        for (j, s) in a.secrets.into_iter().enumerate() {
            let value = match (s.value, s.value_file) {
                (Some(v), None) => v,
                (None, Some(file)) => {
                    let path = resolve(base, &file);
                    std::fs::read_to_string(&path)
                        .map_err(|e| Error::io("reading", &path, e))?
                        .trim()
                        .to_string()
                }
                _ => {
                    return Err(cfg_err(format!(
                        "apps[{i}].secrets[{j}]: exactly one of 'value' or 'value_file' is required"
                    )));
                }
            };
            if value.is_empty() {
                return Err(cfg_err(format!(
                    "apps[{i}].secrets[{j}]: the secret is empty"
                )));
            }
            let expires_at = match s.expires_at {
                Some(text) => Some(parse_rfc3339(&text).ok_or_else(|| {
                    cfg_err(format!(
                        "apps[{i}].secrets[{j}]: expires_at '{text}' is not an RFC 3339 date-time"
                    ))
                })?),
                None => None,
            };
            secrets.push(Secret { value, expires_at });
        }
        let mut certificates = Vec::new();
        for (j, c) in a.certificates.into_iter().enumerate() {
            let (pem, path) = match (c.path, c.pem) {
                (Some(p), None) => {
                    let path = resolve(base, &p);
                    let text = std::fs::read_to_string(&path)
                        .map_err(|e| Error::io("reading", &path, e))?;
                    (text, Some(path))
                }
                (None, Some(pem)) => (pem, None),
                _ => {
                    return Err(cfg_err(format!(
                        "apps[{i}].certificates[{j}]: exactly one of 'path' or 'pem' is required"
                    )));
                }
            };
            let cert = ParsedCert::from_pem(&pem)
                .map_err(|e| cfg_err(format!("apps[{i}].certificates[{j}]: {e}")))?;
            certificates.push(RegisteredCert {
                cert,
                path,
                private_key_path: c.private_key_path.map(|p| resolve(base, &p)),
                pfx_path: c.pfx_path.map(|p| resolve(base, &p)),
                pfx_password: c.pfx_password,
            });
        }
        let mut required_roles: Vec<(String, Vec<String>)> = Vec::new();
        for (j, r) in a.required_roles.iter().enumerate() {
            let resource = resources
                .iter()
                .find(|x| x.matches(&r.resource))
                .ok_or_else(|| {
                    cfg_err(format!(
                        "apps[{i}].required_roles[{j}]: resource '{}' is not a configured resource",
                        r.resource
                    ))
                })?;
            for role in &r.roles {
                if !resource.roles.iter().any(|x| x.value == *role) {
                    return Err(cfg_err(format!(
                        "apps[{i}].required_roles[{j}]: role '{role}' is not defined by resource '{}'",
                        r.resource
                    )));
                }
            }
            required_roles.push((resource.app_id.clone(), r.roles.clone()));
        }
        for (j, uri) in a.redirect_uris.iter().enumerate() {
            if url::Url::parse(uri).is_err() {
                return Err(cfg_err(format!(
                    "apps[{i}].redirect_uris[{j}]: '{uri}' is not an absolute URL"
                )));
            }
        }
        let mut federated_credentials = Vec::new();
        for (j, f) in a.federated_credentials.into_iter().enumerate() {
            let probe = f
                .issuer
                .replace(crate::federation::BASE_PLACEHOLDER, "http://127.0.0.1");
            if url::Url::parse(&probe).is_err() || f.subject.is_empty() {
                return Err(cfg_err(format!(
                    "apps[{i}].federated_credentials[{j}]: issuer must be a URL and subject non-empty"
                )));
            }
            let audiences = if f.audiences.is_empty() {
                vec![crate::federation::DEFAULT_AUDIENCE.to_string()]
            } else {
                f.audiences
            };
            federated_credentials.push(FederatedCredential {
                issuer: f.issuer,
                subject: f.subject,
                audiences,
            });
        }
        apps.push(App {
            required_roles,
            redirect_uris: a.redirect_uris,
            federated_credentials,
            display_name: a.display_name.unwrap_or_else(|| format!("app {client_id}")),
            client_id,
            home_tenant,
            multi_tenant: a.multi_tenant,
            disabled: a.disabled,
            secrets,
            certificates,
        });
    }

    // Grants.
    let mut grants = Vec::new();
    for (i, g) in raw.grants.iter().enumerate() {
        let tenant_id = find_tenant(&g.tenant).ok_or_else(|| {
            cfg_err(format!(
                "grants[{i}]: tenant '{}' is not a configured tenant",
                g.tenant
            ))
        })?;
        let client_id = parse_guid(&g.client_id)
            .filter(|id| apps.iter().any(|a| a.client_id == *id))
            .ok_or_else(|| {
                cfg_err(format!(
                    "grants[{i}]: client_id '{}' is not a configured app",
                    g.client_id
                ))
            })?;
        let resource_app_id = find_resource(&g.resource).ok_or_else(|| {
            cfg_err(format!(
                "grants[{i}]: resource '{}' is not a configured resource",
                g.resource
            ))
        })?;
        let resource = resources
            .iter()
            .find(|r| r.app_id == resource_app_id)
            .ok_or_else(|| cfg_err(format!("grants[{i}]: resource '{}' vanished", g.resource)))?;
        for role in &g.roles {
            if !resource.roles.iter().any(|r| r.value == *role) {
                return Err(cfg_err(format!(
                    "grants[{i}]: role '{role}' is not defined by resource '{}'",
                    g.resource
                )));
            }
        }
        let app = apps.iter().find(|a| a.client_id == client_id);
        if let Some(app) = app
            && !app.multi_tenant
            && app.home_tenant != tenant_id
        {
            return Err(cfg_err(format!(
                "grants[{i}]: app '{client_id}' is single-tenant and cannot be consented in tenant '{}'",
                g.tenant
            )));
        }
        grants.push(Grant {
            tenant_id,
            client_id,
            resource_app_id,
            roles: g.roles.clone(),
        });
    }

    // Users.
    let mut users: Vec<User> = Vec::new();
    for (i, u) in raw.users.into_iter().enumerate() {
        let tenant_id = find_tenant(&u.tenant).ok_or_else(|| {
            cfg_err(format!(
                "users[{i}]: tenant '{}' is not a configured tenant",
                u.tenant
            ))
        })?;
        let id = match &u.id {
            Some(id) => parse_guid(id)
                .ok_or_else(|| cfg_err(format!("users[{i}]: id '{id}' is not a GUID")))?,
            None => crate::crypto::derived_guid(&[
                "user",
                &tenant_id,
                &u.user_principal_name.to_ascii_lowercase(),
            ])
            .to_string(),
        };
        if users.iter().any(|x| x.id == id) {
            return Err(cfg_err(format!("users[{i}]: duplicate user id '{id}'")));
        }
        users.push(User {
            tenant_id,
            id,
            display_name: u.display_name,
            given_name: u.given_name,
            surname: u.surname,
            mail: u.mail.or_else(|| Some(u.user_principal_name.clone())),
            user_principal_name: u.user_principal_name,
            job_title: u.job_title,
        });
    }

    // Sample API.
    let sample_api = match raw.sample_api {
        Some(s) => {
            let resource_app_id = find_resource(&s.resource).ok_or_else(|| {
                cfg_err(format!(
                    "sample_api: resource '{}' is not a configured resource",
                    s.resource
                ))
            })?;
            if let Some(role) = &s.required_role {
                let known = resources.iter().any(|r| {
                    r.app_id == resource_app_id && r.roles.iter().any(|x| x.value == *role)
                });
                if !known {
                    return Err(cfg_err(format!(
                        "sample_api: required_role '{role}' is not defined by resource '{}'",
                        s.resource
                    )));
                }
            }
            Some(SampleApi {
                resource_app_id,
                required_role: s.required_role,
            })
        }
        None => None,
    };

    let primary_app = match raw.primary_app {
        Some(p) => Some(
            parse_guid(&p)
                .filter(|id| apps.iter().any(|a| a.client_id == *id))
                .ok_or_else(|| cfg_err(format!("primary_app '{p}' is not a configured app")))?,
        ),
        None => None,
    };

    Ok(Config {
        token_lifetime_secs,
        refresh_in_secs,
        tenants,
        resources,
        apps,
        grants,
        users,
        sample_api,
        primary_app,
        state_dir: None,
        tls: raw.tls.unwrap_or(false),
        allow_remote: false,
        key_overlap_secs: raw.key_overlap_secs.unwrap_or(DEFAULT_KEY_OVERLAP_SECS),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const T1: &str = "11111111-1111-1111-1111-111111111111";

    fn minimal() -> String {
        format!(
            r#"
[[tenants]]
id = "{T1}"
domains = ["contoso.onmicrosoft.com"]
display_name = "Contoso"

[[resources]]
app_id = "22222222-2222-2222-2222-222222222222"
app_id_uri = "api://sample"
roles = [{{ value = "Users.Read.All" }}]

[[apps]]
client_id = "33333333-3333-3333-3333-333333333333"
home_tenant = "contoso.onmicrosoft.com"
  [[apps.secrets]]
  value = "s3cret"
  expires_at = "2030-01-01T00:00:00Z"

[[grants]]
tenant = "Contoso.onmicrosoft.com"
client_id = "33333333-3333-3333-3333-333333333333"
resource = "api://sample"
roles = ["Users.Read.All"]

[sample_api]
resource = "api://sample"
required_role = "Users.Read.All"
"#
        )
    }

    fn parse(text: &str) -> Result<Config, Error> {
        Config::from_toml_str(text, Path::new("/nonexistent"))
    }

    #[test]
    fn minimal_config_parses_and_resolves_references() {
        let c = parse(&minimal()).expect("valid");
        assert_eq!(c.token_lifetime_secs, 3600);
        assert_eq!(c.refresh_in_secs, None);
        assert_eq!(c.apps[0].home_tenant, T1);
        assert_eq!(c.grants[0].tenant_id, T1);
        assert_eq!(
            c.grants[0].resource_app_id,
            "22222222-2222-2222-2222-222222222222"
        );
        assert!(c.apps[0].secrets[0].expires_at.is_some());
        assert_eq!(
            c.primary().map(|a| a.client_id.as_str()),
            Some("33333333-3333-3333-3333-333333333333")
        );
        assert!(
            c.tenant_by_id_or_domain("CONTOSO.onmicrosoft.com")
                .is_some()
        );
        assert!(
            !format!("{c:?}").contains("s3cret"),
            "Debug must redact secrets"
        );
    }

    #[test]
    fn unknown_field_is_named_with_line_and_column() {
        let text = minimal().replace("display_name = \"Contoso\"", "display_nam = \"Contoso\"");
        let err = parse(&text).unwrap_err().to_string();
        assert!(err.contains("display_nam"), "{err}");
        assert!(err.contains("line 5"), "{err}");
    }

    #[test]
    fn unknown_references_are_named() {
        let text = minimal().replace(
            "home_tenant = \"contoso.onmicrosoft.com\"",
            "home_tenant = \"nowhere.example\"",
        );
        let err = parse(&text).unwrap_err().to_string();
        assert!(err.contains("nowhere.example"), "{err}");

        let text = minimal().replace(
            "resource = \"api://sample\"\nroles",
            "resource = \"api://other\"\nroles",
        );
        let err = parse(&text).unwrap_err().to_string();
        assert!(err.contains("api://other"), "{err}");

        let text = minimal().replace(
            "client_id = \"33333333-3333-3333-3333-333333333333\"\nresource",
            "client_id = \"44444444-4444-4444-4444-444444444444\"\nresource",
        );
        let err = parse(&text).unwrap_err().to_string();
        assert!(
            err.contains("44444444-4444-4444-4444-444444444444"),
            "{err}"
        );

        let text = minimal().replace("roles = [\"Users.Read.All\"]", "roles = [\"Mail.Send\"]");
        let err = parse(&text).unwrap_err().to_string();
        assert!(err.contains("Mail.Send"), "{err}");
    }

    #[test]
    fn bad_values_are_rejected() {
        let err = parse(&minimal().replace(T1, "not-a-guid"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("not-a-guid"), "{err}");
        let err = parse(&minimal().replace("2030-01-01T00:00:00Z", "tomorrow"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("tomorrow"), "{err}");
        let err = parse(&format!("token_lifetime_secs = 5\n{}", minimal()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("token_lifetime_secs"), "{err}");
        let err = parse(&minimal().replace("value = \"s3cret\"", ""))
            .unwrap_err()
            .to_string();
        assert!(err.contains("value_file"), "{err}");
        assert!(matches!(parse("tenants = 3"), Err(Error::ConfigSyntax(_))));
    }

    #[test]
    fn value_file_and_refresh_in_resolve() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("secret.txt"), "from-file\n").expect("write");
        let text = format!("refresh_in_secs = 1800\n{}", minimal())
            .replace("value = \"s3cret\"", "value_file = \"secret.txt\"");
        let c = Config::from_toml_str(&text, dir.path()).expect("valid");
        assert_eq!(c.apps[0].secrets[0].value, "from-file");
        assert_eq!(c.refresh_in_secs, Some(1800));
    }

    #[test]
    fn resource_matching_is_lenient_about_case_and_trailing_slash() {
        let r = Resource {
            app_id: "22222222-2222-2222-2222-222222222222".into(),
            app_id_uri: Some("https://api.example".into()),
            roles: vec![],
        };
        assert!(r.matches("https://API.example"));
        assert!(r.matches("https://api.example/"));
        assert!(r.matches("22222222-2222-2222-2222-222222222222"));
        assert!(!r.matches("https://api.example/other"));
    }
}
