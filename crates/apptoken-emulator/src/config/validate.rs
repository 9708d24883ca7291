//! From the raw TOML shapes to the model: parses ids and dates, resolves
//! references, reads secret and certificate files, and reports the first
//! problem as `Error::Config` naming its place (`apps[2].secrets[0]: ...`).
//!
//! Invariants: sections are checked in a fixed order (tenants, resources,
//! apps, grants, users, sample API, primary app) and, within one, in file
//! order, so the first error reported does not depend on how lookups are
//! indexed; the indexes built here (ids, domains) only answer what the
//! linear scans they replace answered.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use time::OffsetDateTime;

use super::Config;
use super::model::{
    App, FederatedCredential, Grant, ManagedIdentity, RegisteredCert, Resource, Role, SampleApi,
    Secret, Tenant, User,
};
use super::raw::RawConfig;
use crate::Error;
use crate::crypto::ParsedCert;

/// Default token lifetime: one hour, answered as `expires_in: 3599`.
const DEFAULT_LIFETIME_SECS: u64 = 3600;
/// Default lifetime of managed-identity tokens: 24 hours, as IMDS issues.
const DEFAULT_MI_LIFETIME_SECS: u64 = 86_400;
/// Default overlap of a rotated-out signing key in the JWKS: 24 hours.
const DEFAULT_KEY_OVERLAP_SECS: u64 = 86_400;

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

/// Parses the GUID at `place.field`, checks it is not already in `taken`
/// and adds it there.
fn unique_guid(
    place: &str,
    field: &str,
    value: &str,
    taken: &mut HashSet<String>,
) -> Result<String, Error> {
    let id = parse_guid(value)
        .ok_or_else(|| cfg_err(format!("{place}: {field} '{value}' is not a GUID")))?;
    if !taken.insert(id.clone()) {
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
    let mut tenant_ids: HashSet<String> = HashSet::new();
    // Every tenant id and domain, to the tenant's id. Ids are GUIDs and
    // domains have a dot, so the two never collide; both are unique.
    let mut tenant_names: HashMap<String, String> = HashMap::new();
    for (i, t) in raw.tenants.iter().enumerate() {
        let id = unique_guid(&format!("tenants[{i}]"), "id", &t.id, &mut tenant_ids)?;
        let mut domains = Vec::new();
        for d in &t.domains {
            let d = d.trim().to_ascii_lowercase();
            if !crate::tenant::is_dns_name(&d) {
                return Err(cfg_err(format!(
                    "tenants[{i}]: domain '{d}' is not a valid DNS name"
                )));
            }
            if tenant_names.contains_key(&d) {
                return Err(cfg_err(format!("tenants[{i}]: duplicate domain '{d}'")));
            }
            tenant_names.insert(d.clone(), id.clone());
            domains.push(d);
        }
        let display_name = t
            .display_name
            .clone()
            .or_else(|| domains.first().cloned())
            .unwrap_or_else(|| id.clone());
        tenant_names.insert(id.clone(), id.clone());
        tenants.push(Tenant {
            id,
            domains,
            display_name,
        });
    }
    let find_tenant = |name: &str| -> Option<String> {
        tenant_names.get(&name.trim().to_ascii_lowercase()).cloned()
    };

    // Resources.
    let mut resources: Vec<Resource> = Vec::new();
    let mut resource_ids: HashSet<String> = HashSet::new();
    for (i, r) in raw.resources.iter().enumerate() {
        let app_id = unique_guid(
            &format!("resources[{i}]"),
            "app_id",
            &r.app_id,
            &mut resource_ids,
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
    let mut app_ids: HashSet<String> = HashSet::new();
    for (i, a) in raw.apps.into_iter().enumerate() {
        let client_id = unique_guid(
            &format!("apps[{i}]"),
            "client_id",
            &a.client_id,
            &mut app_ids,
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
    // Client id to the app's place in `apps`.
    let app_index: HashMap<&str, usize> = apps
        .iter()
        .enumerate()
        .map(|(k, a)| (a.client_id.as_str(), k))
        .collect();
    let mut grants = Vec::new();
    for (i, g) in raw.grants.iter().enumerate() {
        let tenant_id = find_tenant(&g.tenant).ok_or_else(|| {
            cfg_err(format!(
                "grants[{i}]: tenant '{}' is not a configured tenant",
                g.tenant
            ))
        })?;
        let client_id = parse_guid(&g.client_id)
            .filter(|id| app_index.contains_key(id.as_str()))
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
        let app = app_index.get(client_id.as_str()).map(|&k| &apps[k]);
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
    let mut user_ids: HashSet<String> = HashSet::new();
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
        if !user_ids.insert(id.clone()) {
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

    // Managed identities.
    let mut managed_identities: Vec<ManagedIdentity> = Vec::new();
    let mut mi_ids: HashSet<String> = app_ids.clone();
    for (i, m) in raw.managed_identities.iter().enumerate() {
        let place = format!("managed_identities[{i}]");
        let system = match m.kind.as_str() {
            "system" => true,
            "user" => false,
            other => {
                return Err(cfg_err(format!(
                    "{place}: kind '{other}' must be \"system\" or \"user\""
                )));
            }
        };
        if system && managed_identities.iter().any(|x| x.system) {
            return Err(cfg_err(format!(
                "{place}: a second system-assigned identity (the emulator is one host, which has one)"
            )));
        }
        let tenant_id = find_tenant(&m.tenant).ok_or_else(|| {
            cfg_err(format!(
                "{place}: tenant '{}' is not a configured tenant",
                m.tenant
            ))
        })?;
        let client_id = unique_guid(&place, "client_id", &m.client_id, &mut mi_ids)?;
        let object_id = unique_guid(&place, "object_id", &m.object_id, &mut mi_ids)?;
        if !crate::managed_identity::valid_resource_id(&m.resource_id, system) {
            let shape = if system {
                "/subscriptions/{id}/resourceGroups/{group}/providers/{namespace}/{type}/{name}"
            } else {
                "/subscriptions/{id}/resourceGroups/{group}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}"
            };
            return Err(cfg_err(format!(
                "{place}: resource_id '{}' is not of the form {shape}",
                m.resource_id
            )));
        }
        if managed_identities
            .iter()
            .any(|x| x.resource_id.eq_ignore_ascii_case(&m.resource_id))
        {
            return Err(cfg_err(format!(
                "{place}: duplicate resource_id '{}'",
                m.resource_id
            )));
        }
        let mut app_roles = Vec::new();
        for (j, r) in m.app_roles.iter().enumerate() {
            let resource = resources
                .iter()
                .find(|x| x.matches(&r.resource))
                .ok_or_else(|| {
                    cfg_err(format!(
                        "{place}.app_roles[{j}]: resource '{}' is not a configured resource",
                        r.resource
                    ))
                })?;
            for role in &r.roles {
                if !resource.roles.iter().any(|x| x.value == *role) {
                    return Err(cfg_err(format!(
                        "{place}.app_roles[{j}]: role '{role}' is not defined by resource '{}'",
                        r.resource
                    )));
                }
            }
            app_roles.push((resource.app_id.clone(), r.roles.clone()));
        }
        managed_identities.push(ManagedIdentity {
            system,
            tenant_id,
            client_id,
            object_id,
            resource_id: m.resource_id.clone(),
            app_roles,
        });
    }
    let mi_lifetime_secs = raw
        .managed_identity_token_lifetime_secs
        .unwrap_or(DEFAULT_MI_LIFETIME_SECS);
    if !(60..=86_400).contains(&mi_lifetime_secs) {
        return Err(cfg_err(format!(
            "managed_identity_token_lifetime_secs = {mi_lifetime_secs} is out of range (60..=86400)"
        )));
    }
    if let Some(h) = &raw.identity_header
        && (h.is_empty() || !h.bytes().all(|b| b.is_ascii_graphic()))
    {
        return Err(cfg_err(
            "identity_header must be non-empty printable ASCII without spaces",
        ));
    }

    let primary_app = match raw.primary_app {
        Some(p) => Some(
            parse_guid(&p)
                .filter(|id| app_index.contains_key(id.as_str()))
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
        managed_identities,
        mi_lifetime_secs,
        imds_limits: raw.imds_limits.unwrap_or(false),
        identity_header: raw.identity_header,
        arc_key_dir: raw.arc_key_dir.map(|d| resolve(base, &d)),
    })
}
