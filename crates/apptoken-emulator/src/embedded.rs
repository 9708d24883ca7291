//! The embedded default configuration and its generated credentials.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use aws_lc_rs::signature::KeyPair as _;
use time::OffsetDateTime;

use crate::Error;
use crate::config::{
    Config, RawApp, RawCertificate, RawConfig, RawFederatedCredential, RawGrant,
    RawManagedIdentity, RawRequiredRoles, RawResource, RawRole, RawSampleApi, RawSecret, RawTenant,
    RawUser,
};
use crate::crypto::{self, CertKey, GeneratedCert, ParsedCert};

/// The home tenant of the default app ("Contoso").
pub(crate) const CONTOSO_TENANT_ID: &str = "7c1e3a52-9c4b-4d8e-a0f1-3b2d5e6f7a81";
/// A customer tenant that consented to the default app ("Fabrikam").
pub(crate) const FABRIKAM_TENANT_ID: &str = "b4f2d6e8-1a3c-4e5f-8a7b-9c0d1e2f3a4b";
/// The default app's client id.
pub(crate) const DEFAULT_CLIENT_ID: &str = "5d8b0e7a-6c3f-4a1b-9e2d-7f4c8a1b3e5d";
/// The sample API's app id.
pub(crate) const SAMPLE_API_APP_ID: &str = "e3f9a7c1-2b4d-4f6e-8a9b-0c1d2e3f4a5b";
/// The sample API's app id URI.
pub(crate) const SAMPLE_API_URI: &str = "api://apptoken-sample-api";
const SAMPLE_ROLE: &str = "Users.Read.All";
const SAMPLE_ROLE_ID: &str = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d";
/// The default app's registered reply URL (admin consent redirects).
const DEFAULT_REDIRECT_URI: &str = "http://localhost/consent-done";
/// The service account the default app trusts on the built-in issuer `default`.
const DEFAULT_FEDERATED_SUBJECT: &str = "system:serviceaccount:default:apptoken";

/// The emulated host's system-assigned managed identity (a VM in Contoso).
pub(crate) const SYSTEM_MI_CLIENT_ID: &str = "6a1c3e5f-7b9d-4f2a-8c4e-0a2b4c6d8e01";
const SYSTEM_MI_OBJECT_ID: &str = "6a1c3e5f-7b9d-4f2a-8c4e-0a2b4c6d8e02";
const SUBSCRIPTION: &str = "0b1f6471-1bf0-4dda-aec3-cb9272f09590";
/// A user-assigned managed identity in Contoso.
pub(crate) const USER_MI_CLIENT_ID: &str = "6a1c3e5f-7b9d-4f2a-8c4e-0a2b4c6d8e11";
/// Its object id: the subject the federated app below trusts.
pub(crate) const USER_MI_OBJECT_ID: &str = "6a1c3e5f-7b9d-4f2a-8c4e-0a2b4c6d8e12";
/// An app whose only credential is a federated credential trusting the
/// user-assigned identity (managed identity as a federated credential).
pub(crate) const MI_FEDERATED_CLIENT_ID: &str = "6a1c3e5f-7b9d-4f2a-8c4e-0a2b4c6d8e21";

/// Sample users per tenant: enough for several pages with a small `$top`.
const CONTOSO_USERS: usize = 42;
const FABRIKAM_USERS: usize = 17;

pub(crate) const SECRET_FILE: &str = "client-secret";
pub(crate) const CERT_FILE: &str = "client-cert.pem";
pub(crate) const KEY_FILE: &str = "client-key.pem";
pub(crate) const PFX_FILE: &str = "client-cert.pfx";
pub(crate) const PFX_PASSWORD_FILE: &str = "client-cert.pfx.password";

/// Writes a file readable by its owner only (mode 0600), atomically.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    write_with_mode(path, bytes, 0o600)
}

/// Writes a file readable by everyone (mode 0644), atomically.
pub(crate) fn write_public(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    write_with_mode(path, bytes, 0o644)
}

fn write_with_mode(path: &Path, bytes: &[u8], mode: u32) -> Result<(), Error> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options
        .open(&tmp)
        .map_err(|e| Error::io("creating", &tmp, e))?;
    file.write_all(bytes)
        .map_err(|e| Error::io("writing", &tmp, e))?;
    file.sync_all().map_err(|e| Error::io("writing", &tmp, e))?;
    drop(file);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))
            .map_err(|e| Error::io("setting permissions of", &tmp, e))?;
    }
    std::fs::rename(&tmp, path).map_err(|e| Error::io("renaming", path, e))
}

fn random_from(alphabet: &[u8], len: usize) -> String {
    crypto::random_bytes(len * 2)
        .chunks(2)
        .map(|c| {
            let v = usize::from(c[0]) << 8 | usize::from(c[1]);
            char::from(alphabet[v % alphabet.len()])
        })
        .collect()
}

/// A secret shaped like Entra's: three characters, `8Q~`, 34 more.
pub(crate) fn generate_secret() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.~-";
    format!(
        "{}8Q~{}",
        random_from(ALPHABET, 3),
        random_from(ALPHABET, 34)
    )
}

fn read_trimmed(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_string())
}

/// The default app's generated certificate files, when they exist, parse,
/// belong together and are not about to expire.
fn reusable_certificate(dir: &Path, now: OffsetDateTime) -> Option<(ParsedCert, String)> {
    let cert = ParsedCert::from_pem(&std::fs::read_to_string(dir.join(CERT_FILE)).ok()?).ok()?;
    if cert.not_after < now + time::Duration::days(1) || cert.not_before > now {
        return None;
    }
    let key_pem = std::fs::read_to_string(dir.join(KEY_FILE)).ok()?;
    let key_der = crypto::pem_blocks(&key_pem, "PRIVATE KEY")
        .into_iter()
        .next()?;
    let key = aws_lc_rs::rsa::KeyPair::from_pkcs8(&key_der).ok()?;
    let CertKey::Rsa(cert_public) = &cert.key else {
        return None;
    };
    if key.public_key().as_ref() != cert_public.der.as_slice() {
        return None;
    }
    let password = read_trimmed(&dir.join(PFX_PASSWORD_FILE))?;
    let pfx = std::fs::read(dir.join(PFX_FILE)).ok()?;
    p12_keystore::KeyStore::from_pkcs12(&pfx, &password, p12_keystore::Pkcs12ImportPolicy::Strict)
        .ok()?;
    Some((cert, password))
}

fn generate_certificate(dir: &Path, now: OffsetDateTime) -> Result<(ParsedCert, String), Error> {
    let generated = GeneratedCert::generate(
        "apptoken-emulator default app",
        now - time::Duration::hours(1),
        now + time::Duration::days(365),
    )?;
    let password = random_from(
        b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789",
        24,
    );
    let mut store = p12_keystore::KeyStore::new();
    let key = p12_keystore::PrivateKey::from_der(&generated.pkcs8_der)
        .map_err(|e| Error::Crypto(format!("encoding the .pfx key: {e}")))?;
    let cert = p12_keystore::Certificate::from_der(&generated.cert_der)
        .map_err(|e| Error::Crypto(format!("encoding the .pfx certificate: {e}")))?;
    let local_key_id = crypto::sha1(&generated.cert_der);
    store.add_entry(
        "apptoken-emulator",
        p12_keystore::KeyStoreEntry::PrivateKeyChain(p12_keystore::PrivateKeyChain::new(
            local_key_id,
            key,
            [cert],
        )),
    );
    let pfx = store
        .writer(&password)
        .write()
        .map_err(|e| Error::Crypto(format!("writing the .pfx: {e}")))?;

    write_public(
        &dir.join(CERT_FILE),
        crypto::to_pem("CERTIFICATE", &generated.cert_der).as_bytes(),
    )?;
    write_private(
        &dir.join(KEY_FILE),
        crypto::to_pem("PRIVATE KEY", &generated.pkcs8_der).as_bytes(),
    )?;
    write_private(&dir.join(PFX_FILE), &pfx)?;
    write_private(
        &dir.join(PFX_PASSWORD_FILE),
        format!("{password}\n").as_bytes(),
    )?;
    Ok((ParsedCert::from_der(&generated.cert_der)?, password))
}

const GIVEN_NAMES: [&str; 16] = [
    "Adele",
    "Alex",
    "Allan",
    "Christie",
    "Debra",
    "Diego",
    "Emily",
    "Enrico",
    "Grady",
    "Henrietta",
    "Irvin",
    "Isaiah",
    "Johanna",
    "Joni",
    "Lee",
    "Lidia",
];
const SURNAMES: [&str; 12] = [
    "Vance",
    "Wilber",
    "Deyoung",
    "Cline",
    "Berger",
    "Siciliani",
    "Braun",
    "Cattaneo",
    "Archie",
    "Mueller",
    "Sink",
    "Langer",
];
const JOB_TITLES: [&str; 7] = [
    "Retail Manager",
    "Marketing Assistant",
    "Corporate Security Officer",
    "Attorney",
    "Product Manager",
    "Developer",
    "Sales Representative",
];

fn sample_users(tenant_domain: &str, count: usize) -> Vec<RawUser> {
    (0..count)
        .map(|i| {
            let given = GIVEN_NAMES[i % GIVEN_NAMES.len()];
            let surname = SURNAMES[(i / GIVEN_NAMES.len() + i) % SURNAMES.len()];
            let upn = format!(
                "{}.{}{}@{tenant_domain}",
                given.to_lowercase(),
                surname.to_lowercase(),
                i + 1
            );
            RawUser {
                tenant: tenant_domain.to_string(),
                id: None,
                display_name: format!("{given} {surname}"),
                given_name: Some(given.to_string()),
                surname: Some(surname.to_string()),
                user_principal_name: upn,
                mail: None,
                job_title: Some(JOB_TITLES[i % JOB_TITLES.len()].to_string()),
            }
        })
        .collect()
}

pub(crate) fn config(state_dir: &Path) -> Result<Config, Error> {
    std::fs::create_dir_all(state_dir).map_err(|e| Error::io("creating", state_dir, e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(state_dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| Error::io("setting permissions of", state_dir, e))?;
    }
    let now = OffsetDateTime::now_utc();

    let secret_path = state_dir.join(SECRET_FILE);
    let secret = match read_trimmed(&secret_path) {
        Some(s) => s,
        None => {
            let s = generate_secret();
            write_private(&secret_path, format!("{s}\n").as_bytes())?;
            s
        }
    };
    let (cert, pfx_password) = match reusable_certificate(state_dir, now) {
        Some(found) => found,
        None => {
            tracing::info!(dir = %state_dir.display(), "generating the default app's certificate");
            generate_certificate(state_dir, now)?
        }
    };
    let cert_path: PathBuf = state_dir.join(CERT_FILE);

    let raw = RawConfig {
        token_lifetime_secs: None,
        refresh_in_secs: None,
        primary_app: Some(DEFAULT_CLIENT_ID.into()),
        tls: None,
        key_overlap_secs: None,
        managed_identity_token_lifetime_secs: None,
        imds_limits: None,
        identity_header: None,
        arc_key_dir: None,
        managed_identities: vec![
            RawManagedIdentity {
                kind: "system".into(),
                tenant: CONTOSO_TENANT_ID.into(),
                client_id: SYSTEM_MI_CLIENT_ID.into(),
                object_id: SYSTEM_MI_OBJECT_ID.into(),
                resource_id: format!(
                    "/subscriptions/{SUBSCRIPTION}/resourceGroups/apptoken-demo/providers/Microsoft.Compute/virtualMachines/apptoken-vm"
                ),
                app_roles: vec![RawRequiredRoles {
                    resource: SAMPLE_API_URI.into(),
                    roles: vec![SAMPLE_ROLE.into()],
                }],
            },
            RawManagedIdentity {
                kind: "user".into(),
                tenant: CONTOSO_TENANT_ID.into(),
                client_id: USER_MI_CLIENT_ID.into(),
                object_id: USER_MI_OBJECT_ID.into(),
                resource_id: format!(
                    "/subscriptions/{SUBSCRIPTION}/resourceGroups/apptoken-demo/providers/Microsoft.ManagedIdentity/userAssignedIdentities/apptoken-daemon-id"
                ),
                app_roles: vec![RawRequiredRoles {
                    resource: SAMPLE_API_URI.into(),
                    roles: vec![SAMPLE_ROLE.into()],
                }],
            },
        ],
        tenants: vec![
            RawTenant {
                id: CONTOSO_TENANT_ID.into(),
                domains: vec!["contoso.onmicrosoft.com".into()],
                display_name: Some("Contoso".into()),
            },
            RawTenant {
                id: FABRIKAM_TENANT_ID.into(),
                domains: vec!["fabrikam.onmicrosoft.com".into()],
                display_name: Some("Fabrikam".into()),
            },
        ],
        resources: vec![RawResource {
            app_id: SAMPLE_API_APP_ID.into(),
            app_id_uri: Some(SAMPLE_API_URI.into()),
            display_name: Some("apptoken sample API".into()),
            roles: vec![RawRole {
                value: SAMPLE_ROLE.into(),
                id: Some(SAMPLE_ROLE_ID.into()),
            }],
        }],
        apps: vec![
            RawApp {
                client_id: DEFAULT_CLIENT_ID.into(),
                display_name: Some("apptoken sample daemon".into()),
                home_tenant: CONTOSO_TENANT_ID.into(),
                multi_tenant: true,
                disabled: false,
                secrets: vec![RawSecret {
                    value: Some(secret),
                    value_file: None,
                    expires_at: None,
                }],
                certificates: vec![RawCertificate {
                    path: Some(cert_path),
                    pem: None,
                    private_key_path: Some(state_dir.join(KEY_FILE)),
                    pfx_path: Some(state_dir.join(PFX_FILE)),
                    pfx_password: Some(pfx_password),
                }],
                required_roles: vec![RawRequiredRoles {
                    resource: SAMPLE_API_URI.into(),
                    roles: vec![SAMPLE_ROLE.into()],
                }],
                redirect_uris: vec![DEFAULT_REDIRECT_URI.into()],
                federated_credentials: vec![RawFederatedCredential {
                    issuer: format!(
                        "{}/_emulator/federation/default",
                        crate::federation::BASE_PLACEHOLDER
                    ),
                    subject: DEFAULT_FEDERATED_SUBJECT.into(),
                    audiences: Vec::new(),
                }],
            },
            RawApp {
                client_id: MI_FEDERATED_CLIENT_ID.into(),
                display_name: Some("apptoken daemon federated with a managed identity".into()),
                home_tenant: CONTOSO_TENANT_ID.into(),
                multi_tenant: true,
                disabled: false,
                secrets: Vec::new(),
                certificates: Vec::new(),
                required_roles: vec![RawRequiredRoles {
                    resource: SAMPLE_API_URI.into(),
                    roles: vec![SAMPLE_ROLE.into()],
                }],
                redirect_uris: Vec::new(),
                federated_credentials: vec![RawFederatedCredential {
                    issuer: format!(
                        "{}/{CONTOSO_TENANT_ID}/v2.0",
                        crate::federation::BASE_PLACEHOLDER
                    ),
                    subject: USER_MI_OBJECT_ID.into(),
                    audiences: Vec::new(),
                }],
            },
        ],
        grants: [CONTOSO_TENANT_ID, FABRIKAM_TENANT_ID]
            .into_iter()
            .map(|tenant| RawGrant {
                tenant: tenant.into(),
                client_id: DEFAULT_CLIENT_ID.into(),
                resource: SAMPLE_API_URI.into(),
                roles: vec![SAMPLE_ROLE.into()],
            })
            .chain(std::iter::once(RawGrant {
                tenant: CONTOSO_TENANT_ID.into(),
                client_id: MI_FEDERATED_CLIENT_ID.into(),
                resource: SAMPLE_API_URI.into(),
                roles: vec![SAMPLE_ROLE.into()],
            }))
            .collect(),
        users: sample_users("contoso.onmicrosoft.com", CONTOSO_USERS)
            .into_iter()
            .chain(sample_users("fabrikam.onmicrosoft.com", FABRIKAM_USERS))
            .collect(),
        sample_api: Some(RawSampleApi {
            resource: SAMPLE_API_URI.into(),
            required_role: Some(SAMPLE_ROLE.into()),
        }),
    };
    let config = crate::config::validate(raw, state_dir)?;
    debug_assert_eq!(config.apps[0].certificates[0].cert.sha1, cert.sha1);
    Ok(config.with_state_dir(state_dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_secret_looks_like_entra() {
        let s = generate_secret();
        assert_eq!(s.len(), 40);
        assert_eq!(&s[3..6], "8Q~");
        assert_ne!(s, generate_secret());
    }

    #[test]
    fn sample_users_are_deterministic_and_unique() {
        let a = sample_users("contoso.onmicrosoft.com", CONTOSO_USERS);
        let b = sample_users("contoso.onmicrosoft.com", CONTOSO_USERS);
        assert_eq!(a.len(), 42);
        let upns: std::collections::HashSet<_> =
            a.iter().map(|u| u.user_principal_name.clone()).collect();
        assert_eq!(upns.len(), 42);
        assert_eq!(a[5].user_principal_name, b[5].user_principal_name);
    }
}
