//! Managed identity: tokens from the Azure host's own identity endpoint
//! instead of an app registration's credential.
//!
//! One concept per file:
//! - `mod.rs` (this file): the public [`ManagedIdentity`] (which identity,
//!   which endpoint) and the choice of endpoint from the environment;
//! - `wire.rs`: each endpoint's request (path, query, headers) and answer
//!   (string-typed numbers, error shapes);
//! - `arc.rs`: Azure Arc's challenge and the checks on its key file;
//! - `limit.rs`: IMDS's per-process limits (20 requests/s, 5 at once);
//! - `source.rs`: the [`crate::TokenSource`] that asks the endpoint, with
//!   IMDS's retry rules on the client's clock.
//!
//! The client puts its cache, single flight and refresh in front of it
//! like any other source; its keys name the endpoint and the identity, so a
//! managed identity never shares an entry with an app.

pub(crate) mod arc;
mod limit;
mod source;
pub(crate) mod wire;

use std::fmt;
use std::path::PathBuf;

use secrecy::SecretString;

pub(crate) use source::{ManagedIdentitySource, PROBE_TIMEOUT};

use crate::error::{ConfigError, ConfigErrorKind, Result};

/// IMDS's address when `AZURE_POD_IDENTITY_AUTHORITY_HOST` does not replace it.
#[cfg(not(any(test, feature = "test-util")))]
pub(crate) const IMDS_BASE: &str = "http://169.254.169.254";
/// With `test-util` (tests), IMDS's default address is a closed loopback
/// port: no test can send a packet to 169.254.169.254 by forgetting to set
/// `AZURE_POD_IDENTITY_AUTHORITY_HOST`.
#[cfg(any(test, feature = "test-util"))]
pub(crate) const IMDS_BASE: &str = "http://127.0.0.1:1";
/// The Azure Arc agent's endpoint when `IDENTITY_ENDPOINT` does not name one.
pub(crate) const ARC_DEFAULT_ENDPOINT: &str =
    "http://localhost:40342/metadata/identity/oauth2/token";
/// The file whose presence says the Azure Arc agent is installed.
const ARC_AGENT_FILE: &str = "/opt/azcmagent/bin/himds";
/// Where the Arc agent writes the key files its challenge names (fixed, as
/// MSAL's is: only a test hook moves it, never the environment).
pub(crate) const ARC_KEY_DIR: &str = "/var/opt/azcmagent/tokens";

/// Which managed identity of the host.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ManagedIdentityId {
    /// The host's system-assigned identity.
    SystemAssigned,
    /// A user-assigned identity by its client (application) id.
    ClientId(String),
    /// A user-assigned identity by its object (principal) id.
    ObjectId(String),
    /// A user-assigned identity by its Azure resource id
    /// (`/subscriptions/…/providers/Microsoft.ManagedIdentity/userAssignedIdentities/…`).
    ResourceId(String),
}

impl fmt::Display for ManagedIdentityId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ManagedIdentityId::SystemAssigned => f.write_str("system-assigned"),
            ManagedIdentityId::ClientId(id) => write!(f, "user-assigned (client id {id})"),
            ManagedIdentityId::ObjectId(id) => write!(f, "user-assigned (object id {id})"),
            ManagedIdentityId::ResourceId(id) => write!(f, "user-assigned (resource id {id})"),
        }
    }
}

/// The kind of managed-identity endpoint a host offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ManagedIdentityKind {
    /// The Azure Instance Metadata Service (VMs, scale sets, AKS nodes).
    Imds,
    /// App Service, Functions, Container Apps, Automation
    /// (`IDENTITY_ENDPOINT` and `IDENTITY_HEADER`).
    AppService,
    /// An Azure Arc-enabled server (the agent's local endpoint and its
    /// key-file challenge).
    AzureArc,
}

impl fmt::Display for ManagedIdentityKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ManagedIdentityKind::Imds => "IMDS",
            ManagedIdentityKind::AppService => "App Service",
            ManagedIdentityKind::AzureArc => "Azure Arc",
        })
    }
}

/// A managed identity: which one, and the endpoint that issues its tokens.
///
/// [`ManagedIdentity::from_env`] chooses the endpoint as the Azure SDKs do
/// (App Service's `IDENTITY_ENDPOINT` and `IDENTITY_HEADER`, Azure Arc's
/// agent, else IMDS, whose address `AZURE_POD_IDENTITY_AUTHORITY_HOST`
/// replaces). Give it to [`crate::ConfidentialClientBuilder::managed_identity`]:
/// no client id, authority or credential is needed.
///
/// ```
/// use apptoken::{ManagedIdentity, ManagedIdentityId, ManagedIdentityKind};
/// let mi = ManagedIdentity::imds("http://127.0.0.1:8080", ManagedIdentityId::SystemAssigned)?;
/// assert_eq!(mi.kind(), ManagedIdentityKind::Imds);
/// # Ok::<(), apptoken::Error>(())
/// ```
#[derive(Clone)]
pub struct ManagedIdentity {
    pub(crate) id: ManagedIdentityId,
    pub(crate) endpoint: Endpoint,
    /// Where Arc key files must be (the fixed directory outside tests).
    pub(crate) arc_key_dir: PathBuf,
}

/// The endpoint, with what each kind needs (`Debug` redacts the header:
/// `SecretString`'s does).
#[derive(Clone, Debug)]
pub(crate) enum Endpoint {
    /// The token URL (`{base}/metadata/identity/oauth2/token`).
    Imds { url: String },
    /// `IDENTITY_ENDPOINT` and the `IDENTITY_HEADER` secret.
    AppService { url: String, header: SecretString },
    /// The Arc agent's token URL.
    Arc { url: String },
}

impl Endpoint {
    pub(crate) fn url(&self) -> &str {
        match self {
            Endpoint::Imds { url } | Endpoint::AppService { url, .. } | Endpoint::Arc { url } => {
                url
            }
        }
    }

    pub(crate) fn kind(&self) -> ManagedIdentityKind {
        match self {
            Endpoint::Imds { .. } => ManagedIdentityKind::Imds,
            Endpoint::AppService { .. } => ManagedIdentityKind::AppService,
            Endpoint::Arc { .. } => ManagedIdentityKind::AzureArc,
        }
    }
}

impl fmt::Debug for ManagedIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // IDENTITY_HEADER is a secret: never shown.
        f.debug_struct("ManagedIdentity")
            .field("id", &self.id)
            .field("kind", &self.kind())
            .field("endpoint", &self.endpoint.url())
            .finish()
    }
}

/// What the environment says about managed identity, read once (tests
/// give their own).
#[derive(Debug, Clone, Default)]
pub(crate) struct Environment {
    pub(crate) identity_endpoint: Option<String>,
    pub(crate) identity_header: Option<SecretString>,
    pub(crate) identity_server_thumbprint: Option<String>,
    pub(crate) imds_endpoint: Option<String>,
    pub(crate) msi_endpoint: Option<String>,
    pub(crate) msi_secret: Option<String>,
    pub(crate) pod_identity_authority_host: Option<String>,
    /// Whether the Arc agent is installed (`/opt/azcmagent/bin/himds`).
    pub(crate) arc_agent_installed: bool,
}

impl Environment {
    /// The process's environment.
    pub(crate) fn read() -> Environment {
        Environment::from_lookup(|k| std::env::var(k).ok())
    }

    /// Through a lookup (the configuration's `from_env_vars`); whether the
    /// Arc agent is installed is read from the file system.
    pub(crate) fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Environment {
        let var = |k: &str| get(k).filter(|v| !v.trim().is_empty());
        Environment {
            identity_endpoint: var("IDENTITY_ENDPOINT"),
            identity_header: var("IDENTITY_HEADER").map(SecretString::from),
            identity_server_thumbprint: var("IDENTITY_SERVER_THUMBPRINT"),
            imds_endpoint: var("IMDS_ENDPOINT"),
            msi_endpoint: var("MSI_ENDPOINT"),
            msi_secret: var("MSI_SECRET"),
            pod_identity_authority_host: var("AZURE_POD_IDENTITY_AUTHORITY_HOST"),
            arc_agent_installed: std::path::Path::new(ARC_AGENT_FILE).exists(),
        }
    }

    /// The endpoint, first match wins (`shared/reference/managed-identity.md`).
    pub(crate) fn endpoint(&self) -> Result<Endpoint> {
        let unsupported = |what: &str| -> Result<Endpoint> {
            Err(
                ConfigError::new(ConfigErrorKind::Unsupported, what.to_string())
                    .with_setting("managed_identity")
                    .into(),
            )
        };
        match (
            &self.identity_endpoint,
            &self.identity_header,
            &self.identity_server_thumbprint,
        ) {
            (Some(_), Some(_), Some(_)) => {
                return unsupported(
                    "this is a Service Fabric node (IDENTITY_ENDPOINT, IDENTITY_HEADER and \
                     IDENTITY_SERVER_THUMBPRINT are set): its managed identity is not supported yet; \
                     use a certificate or a secret",
                );
            }
            (Some(url), Some(header), None) => {
                return Ok(Endpoint::AppService {
                    url: checked_url(url, "IDENTITY_ENDPOINT")?,
                    header: header.clone(),
                });
            }
            _ => {}
        }
        if self.msi_endpoint.is_some() && self.msi_secret.is_some() {
            return unsupported(
                "this is Azure Machine Learning (MSI_ENDPOINT and MSI_SECRET are set): its managed \
                 identity is not supported yet; use a certificate or a secret",
            );
        }
        if (self.identity_endpoint.is_some() && self.imds_endpoint.is_some())
            || self.arc_agent_installed
        {
            let url = match &self.identity_endpoint {
                Some(u) => checked_url(u, "IDENTITY_ENDPOINT")?,
                None => ARC_DEFAULT_ENDPOINT.to_string(),
            };
            return Ok(Endpoint::Arc { url });
        }
        if self.msi_endpoint.is_some() {
            return unsupported(
                "this is Azure Cloud Shell (MSI_ENDPOINT is set): its token is the signed-in user's, \
                 not an app's, so apptoken does not use it",
            );
        }
        let base = match &self.pod_identity_authority_host {
            Some(b) => checked_url(b, "AZURE_POD_IDENTITY_AUTHORITY_HOST")?,
            None => IMDS_BASE.to_string(),
        };
        Ok(Endpoint::Imds {
            url: format!(
                "{}/metadata/identity/oauth2/token",
                base.trim_end_matches('/')
            ),
        })
    }
}

/// An endpoint from the environment: http or https, a host, no credentials.
fn checked_url(value: &str, variable: &'static str) -> Result<String> {
    let bad = |why: &str| -> Result<String> {
        Err(
            ConfigError::new(ConfigErrorKind::Invalid, format!("{variable} is {why}"))
                .with_setting(variable)
                .into(),
        )
    };
    let v = value.trim();
    match url::Url::parse(v) {
        Ok(u) if !matches!(u.scheme(), "http" | "https") => bad("not an http(s) URL"),
        Ok(u) if u.host_str().is_none_or(str::is_empty) => bad("a URL without a host"),
        Ok(u) if !u.username().is_empty() || u.password().is_some() => {
            bad("a URL with credentials in it")
        }
        Ok(_) => Ok(v.to_string()),
        Err(_) => bad("not a URL"),
    }
}

fn check_id(id: &ManagedIdentityId) -> Result<()> {
    let (value, setting) = match id {
        ManagedIdentityId::SystemAssigned => return Ok(()),
        ManagedIdentityId::ClientId(v) => (v, "managed_identity_client_id"),
        ManagedIdentityId::ObjectId(v) => (v, "managed_identity_object_id"),
        ManagedIdentityId::ResourceId(v) => (v, "managed_identity_resource_id"),
    };
    let v = value.trim();
    if v.is_empty() || v.len() > 1024 || v.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(ConfigError::new(
            ConfigErrorKind::Invalid,
            "a user-assigned managed identity id is empty, too long, or has spaces or control characters",
        )
        .with_setting(setting)
        .into());
    }
    if matches!(id, ManagedIdentityId::ResourceId(_)) && !v.starts_with('/') {
        return Err(ConfigError::new(
            ConfigErrorKind::Invalid,
            format!(
                "'{v}' is not an Azure resource id (/subscriptions/…/userAssignedIdentities/NAME)"
            ),
        )
        .with_setting(setting)
        .into());
    }
    Ok(())
}

impl ManagedIdentity {
    /// This identity, at the endpoint the environment names (see the type's docs).
    ///
    /// # Errors
    /// A configuration error when the environment names an endpoint that is
    /// not a URL, a host whose managed identity is not supported (Service
    /// Fabric, Azure Machine Learning, Cloud Shell), or an invalid id.
    pub fn from_env(id: ManagedIdentityId) -> Result<ManagedIdentity> {
        ManagedIdentity::with_environment(id, &Environment::read())
    }

    pub(crate) fn with_environment(
        id: ManagedIdentityId,
        env: &Environment,
    ) -> Result<ManagedIdentity> {
        check_id(&id)?;
        Ok(ManagedIdentity {
            id,
            endpoint: env.endpoint()?,
            arc_key_dir: PathBuf::from(ARC_KEY_DIR),
        })
    }

    /// This identity from an IMDS at `base` (`http://169.254.169.254`, or an
    /// emulator's address), whatever the environment says.
    pub fn imds(base: &str, id: ManagedIdentityId) -> Result<ManagedIdentity> {
        check_id(&id)?;
        let base = checked_url(base, "AZURE_POD_IDENTITY_AUTHORITY_HOST")?;
        Ok(ManagedIdentity {
            id,
            endpoint: Endpoint::Imds {
                url: format!(
                    "{}/metadata/identity/oauth2/token",
                    base.trim_end_matches('/')
                ),
            },
            arc_key_dir: PathBuf::from(ARC_KEY_DIR),
        })
    }

    /// This identity from an App Service endpoint (`IDENTITY_ENDPOINT`) with
    /// its secret header (`IDENTITY_HEADER`), whatever the environment says.
    pub fn app_service(
        endpoint: &str,
        header: impl Into<String>,
        id: ManagedIdentityId,
    ) -> Result<ManagedIdentity> {
        check_id(&id)?;
        Ok(ManagedIdentity {
            id,
            endpoint: Endpoint::AppService {
                url: checked_url(endpoint, "IDENTITY_ENDPOINT")?,
                header: SecretString::from(header.into()),
            },
            arc_key_dir: PathBuf::from(ARC_KEY_DIR),
        })
    }

    /// The system-assigned identity from an Azure Arc agent's endpoint
    /// (`IDENTITY_ENDPOINT`, by default `http://localhost:40342/…`).
    pub fn azure_arc(endpoint: &str) -> Result<ManagedIdentity> {
        Ok(ManagedIdentity {
            id: ManagedIdentityId::SystemAssigned,
            endpoint: Endpoint::Arc {
                url: checked_url(endpoint, "IDENTITY_ENDPOINT")?,
            },
            arc_key_dir: PathBuf::from(ARC_KEY_DIR),
        })
    }

    /// Moves the directory Azure Arc key files must be in. For tests only:
    /// the real agent's is fixed, and no environment variable moves it
    /// (that would let anyone make the client read any file).
    #[cfg(any(test, feature = "test-util"))]
    pub fn with_arc_key_dir(mut self, dir: impl Into<PathBuf>) -> ManagedIdentity {
        self.arc_key_dir = dir.into();
        self
    }

    /// Which identity.
    pub fn id(&self) -> &ManagedIdentityId {
        &self.id
    }

    /// Which kind of endpoint.
    pub fn kind(&self) -> ManagedIdentityKind {
        self.endpoint.kind()
    }

    /// The endpoint's URL (never its secret header).
    pub fn endpoint(&self) -> &str {
        self.endpoint.url()
    }

    /// The cache key's client id part: the identity, never a GUID alone, so
    /// it cannot equal an app's client id.
    pub(crate) fn key_client_id(&self) -> String {
        match &self.id {
            ManagedIdentityId::SystemAssigned => "managed-identity:system".into(),
            ManagedIdentityId::ClientId(v) => format!("managed-identity:client_id={}", v.trim()),
            ManagedIdentityId::ObjectId(v) => format!("managed-identity:object_id={}", v.trim()),
            ManagedIdentityId::ResourceId(v) => {
                format!(
                    "managed-identity:resource_id={}",
                    v.trim().to_ascii_lowercase()
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Environment {
        Environment::default()
    }

    #[test]
    fn the_endpoint_follows_the_environment_first_match_wins() {
        let kind = |e: &Environment| e.endpoint().map(|x| x.kind());
        // Under test, IMDS's default address is a closed loopback port.
        assert_eq!(
            env().endpoint().unwrap().url(),
            "http://127.0.0.1:1/metadata/identity/oauth2/token"
        );
        let mut e = env();
        e.pod_identity_authority_host = Some("http://127.0.0.1:9/".into());
        assert_eq!(
            e.endpoint().unwrap().url(),
            "http://127.0.0.1:9/metadata/identity/oauth2/token"
        );
        e.identity_endpoint = Some("http://127.0.0.1:8081/msi/token".into());
        e.identity_header = Some(SecretString::from("h"));
        assert_eq!(kind(&e).unwrap(), ManagedIdentityKind::AppService);
        e.identity_server_thumbprint = Some("AB".into());
        assert!(kind(&e).unwrap_err().to_string().contains("Service Fabric"));
        let mut e = env();
        e.identity_endpoint = Some("http://localhost:40342/metadata/identity/oauth2/token".into());
        e.imds_endpoint = Some("http://localhost:40342".into());
        assert_eq!(kind(&e).unwrap(), ManagedIdentityKind::AzureArc);
        let mut e = env();
        e.arc_agent_installed = true;
        assert_eq!(e.endpoint().unwrap().url(), ARC_DEFAULT_ENDPOINT);
        let mut e = env();
        e.msi_endpoint = Some("http://localhost:50342/oauth2/token".into());
        assert!(kind(&e).unwrap_err().to_string().contains("Cloud Shell"));
        e.msi_secret = Some("s".into());
        assert!(
            kind(&e)
                .unwrap_err()
                .to_string()
                .contains("Machine Learning")
        );
    }

    #[test]
    fn bad_endpoints_and_ids_are_refused_by_name() {
        for bad in [
            "169.254.169.254",
            "ftp://x",
            "http://user:pw@host/",
            "http://",
        ] {
            let mut e = env();
            e.pod_identity_authority_host = Some(bad.into());
            let err = e.endpoint().unwrap_err();
            let crate::Error::Configuration(d) = &err else {
                panic!("{err:?}")
            };
            assert_eq!(
                d.setting(),
                Some("AZURE_POD_IDENTITY_AUTHORITY_HOST"),
                "{bad}: {err}"
            );
            assert!(!err.to_string().contains("pw"), "{err}");
        }
        for id in [
            ManagedIdentityId::ClientId(" ".into()),
            ManagedIdentityId::ObjectId("a b".into()),
            ManagedIdentityId::ResourceId("not-a-resource-id".into()),
        ] {
            assert!(
                ManagedIdentity::with_environment(id.clone(), &env()).is_err(),
                "{id}"
            );
        }
    }

    #[test]
    fn the_header_secret_is_never_shown() {
        let mi = ManagedIdentity::app_service(
            "http://127.0.0.1:1/msi/token",
            "very-secret-header",
            ManagedIdentityId::SystemAssigned,
        )
        .unwrap();
        assert!(!format!("{mi:?}").contains("very-secret-header"));
    }
}
