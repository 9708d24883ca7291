//! Client settings from a TOML file and from the `AZURE_*` environment
//! variables that Azure Identity users already set.
//!
//! Over 500 lines: one type, `ClientConfig`, with its two sources (file,
//! environment), their merge and what they build (authority, credential,
//! client builder); each setting's reading and its use sit together, and
//! about a fifth of the file is their tests. The credential chain is
//! `chain.rs`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::authority::{Authority, CloudInstance};
use crate::chain::CredentialType;
use crate::client::ConfidentialClient;
use crate::credential::{
    Certificate, ClientSecret, Credential, SecretAuthMethod, SigningAlgorithm,
};
use crate::error::{ConfigError, ConfigErrorKind, Error, Result};
use crate::managed_identity::Environment;

/// The settings of one app identity.
///
/// In a file (TOML), secrets are never inline: a secret is read from a file
/// that only its owner can read. From the environment, the variables of Azure
/// Identity's `EnvironmentCredential` and `WorkloadIdentityCredential`:
///
/// | variable | setting |
/// |---|---|
/// | `AZURE_AUTHORITY_HOST` | `authority_host` (URL or cloud name) |
/// | `AZURE_TENANT_ID` | `tenant_id` |
/// | `AZURE_CLIENT_ID` | `client_id` |
/// | `AZURE_CLIENT_SECRET` | the client secret itself |
/// | `AZURE_CLIENT_CERTIFICATE_PATH` | `certificate_path` |
/// | `AZURE_CLIENT_CERTIFICATE_PASSWORD` | the certificate's password |
/// | `AZURE_CLIENT_SEND_CERTIFICATE_CHAIN` | `send_certificate_chain` |
/// | `AZURE_FEDERATED_TOKEN_FILE` | `federated_token_file` |
/// | `AZURE_REGIONAL_AUTHORITY_NAME` | `region` (send token requests to a regional endpoint) |
/// | `APPTOKEN_CA_FILE` | `ca_file` (an extra trusted root, e.g. the emulator's CA) |
/// | `APPTOKEN_ISSUER` | `issuer` (a generic OpenID Connect provider; it wins over the Entra settings) |
/// | `APPTOKEN_CREDENTIAL` | `credential` (`auto`, the chain, by default; or one credential) |
/// | `AZURE_TOKEN_CREDENTIALS` | `credential` when `APPTOKEN_CREDENTIAL` is unset, as Azure Identity reads it: `prod` (the chain), `EnvironmentCredential` (the secret, else the certificate), `WorkloadIdentityCredential`, `ManagedIdentityCredential`; `dev` is refused |
///
/// With no credential configured, the chain ([`ClientConfig::choose_credential`])
/// takes the host's managed identity, found from `IDENTITY_ENDPOINT`,
/// `IDENTITY_HEADER`, `IMDS_ENDPOINT` and `AZURE_POD_IDENTITY_AUTHORITY_HOST`
/// as the Azure SDKs find it; `AZURE_CLIENT_ID` then names a user-assigned
/// identity.
///
/// ```
/// let file = apptoken::ClientConfig::from_toml_str(r#"
///     tenant_id = "contoso.onmicrosoft.com"
///     client_id = "00000000-0000-0000-0000-000000000001"
///     certificate_path = "/etc/apptoken/app.pem"
/// "#)?;
/// let env = apptoken::ClientConfig::from_env_vars(|_| None)?;
/// let merged = file.or_env(env);
/// assert_eq!(merged.tenant_id.as_deref(), Some("contoso.onmicrosoft.com"));
/// # Ok::<(), apptoken::Error>(())
/// ```
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ClientConfig {
    /// A generic OpenID Connect provider's issuer URL (Keycloak, Okta,
    /// Auth0…): its metadata is discovered from it, and it takes precedence
    /// over every Entra setting (`authority_host`, `tenant_id`, `region`)
    /// and the managed-identity chain.
    pub issuer: Option<String>,
    /// The identity provider's host URL or a cloud name (`AzurePublic`,
    /// `AzureUsGovernment`, `AzureChina`). Default: Azure public cloud.
    pub authority_host: Option<String>,
    /// The tenant: id (GUID) or domain name.
    pub tenant_id: Option<String>,
    /// The app registration's application (client) id.
    pub client_id: Option<String>,
    /// A file holding the client secret (mode 0600 or stricter).
    pub client_secret_file: Option<PathBuf>,
    /// How the secret is sent: `post` or `basic`. Default: `post` for Entra
    /// ID and AD FS, `basic` for a generic provider (`post` if its metadata
    /// lists only that).
    pub client_secret_auth: Option<SecretAuthMethod>,
    /// A PEM (certificate + key) or PFX file.
    pub certificate_path: Option<PathBuf>,
    /// A file holding the certificate's (or encrypted key's) password.
    pub certificate_password_file: Option<PathBuf>,
    /// Send the certificate chain (`x5c`) in each assertion, for subject
    /// name + issuer authentication.
    pub send_certificate_chain: Option<bool>,
    /// `PS256` (default for Entra ID) or `RS256`.
    pub assertion_algorithm: Option<SigningAlgorithm>,
    /// A file holding a signed assertion, re-read on every token request
    /// (workload identity federation).
    pub federated_token_file: Option<PathBuf>,
    /// Timeout of each HTTP request, as a duration string (`"30s"`,
    /// `"1m"`; default 30 seconds).
    #[serde(default, deserialize_with = "crate::duration::deserialize_opt")]
    pub timeout: Option<Duration>,
    /// A generic provider's token lifetime when its answer has no
    /// `expires_in`, as a duration string (default `"5m"`).
    #[serde(default, deserialize_with = "crate::duration::deserialize_opt")]
    pub default_token_lifetime: Option<Duration>,
    /// The old name of `timeout` (seconds as a number): refused with a
    /// message that names the new key.
    #[serde(default, rename = "timeout_secs", deserialize_with = "renamed_timeout")]
    _timeout_secs: (),
    /// A PEM file of extra trusted root certificates (a private CA, the
    /// emulator's `ca.pem`), trusted beside the system's roots.
    pub ca_file: Option<PathBuf>,
    /// An Azure region (`westus2`): token requests go to
    /// `{region}.login.microsoft.com`, falling back to the global host.
    pub region: Option<String>,
    /// Client capabilities to declare (`["cp1"]`: this client handles claims
    /// challenges).
    pub client_capabilities: Option<Vec<String>>,
    /// Which credential: `auto` (the chain: secret or certificate, then a
    /// federated token file, then the managed identity), `secret`,
    /// `certificate`, `federated-token-file`, `managed-identity` or
    /// `managed-identity-federation` (the app's assertion is a managed
    /// identity's token). Naming one turns the chain off.
    pub credential: Option<CredentialType>,
    /// A user-assigned managed identity by client id.
    pub managed_identity_client_id: Option<String>,
    /// A user-assigned managed identity by object (principal) id.
    pub managed_identity_object_id: Option<String>,
    /// A user-assigned managed identity by Azure resource id.
    pub managed_identity_resource_id: Option<String>,
    /// The managed-identity variables of the environment it was read from.
    #[serde(skip)]
    mi_env: Option<Environment>,
    #[serde(skip)]
    client_secret: Option<ClientSecret>,
    #[serde(skip)]
    certificate_password: Option<SecretString>,
}

/// `AZURE_TOKEN_CREDENTIALS`, as Azure Identity's `DefaultAzureCredential`
/// reads it (case-insensitive): `prod` is the chain, apptoken's only one;
/// the name of one of its credentials is that credential alone (no probe).
/// `EnvironmentCredential` reads the environment only, so it is decided
/// here: the secret if `AZURE_CLIENT_SECRET` is set, else the certificate.
/// `dev` and the developer tools' credentials are refused: a daemon has no
/// user signed in to a tool.
fn azure_token_credentials(
    value: &str,
    get: &impl Fn(&str) -> Option<String>,
) -> Result<Option<CredentialType>> {
    const VAR: &str = "AZURE_TOKEN_CREDENTIALS";
    let refuse = |kind: ConfigErrorKind, why: String| -> Result<Option<CredentialType>> {
        Err(
            ConfigError::new(kind, format!("{VAR} is '{}': {why}", value.trim()))
                .with_setting(VAR)
                .into(),
        )
    };
    const DEVELOPER: [&str; 8] = [
        "dev",
        "azureclicredential",
        "azurepowershellcredential",
        "azuredeveloperclicredential",
        "visualstudiocredential",
        "visualstudiocodecredential",
        "interactivebrowsercredential",
        "brokercredential",
    ];
    match value.trim().to_ascii_lowercase().as_str() {
        "prod" => Ok(Some(CredentialType::Auto)),
        "managedidentitycredential" => Ok(Some(CredentialType::ManagedIdentity)),
        "workloadidentitycredential" => Ok(Some(CredentialType::FederatedTokenFile)),
        "environmentcredential" if get("AZURE_CLIENT_SECRET").is_some() => {
            Ok(Some(CredentialType::Secret))
        }
        "environmentcredential" if get("AZURE_CLIENT_CERTIFICATE_PATH").is_some() => {
            Ok(Some(CredentialType::Certificate))
        }
        "environmentcredential" => refuse(
            ConfigErrorKind::Missing,
            "neither AZURE_CLIENT_SECRET nor AZURE_CLIENT_CERTIFICATE_PATH is set".into(),
        ),
        v if DEVELOPER.contains(&v) => refuse(
            ConfigErrorKind::Invalid,
            "apptoken has no developer credentials (a daemon has no user signed in to a tool); \
             use prod, EnvironmentCredential, WorkloadIdentityCredential or \
             ManagedIdentityCredential, or unset it"
                .into(),
        ),
        _ => refuse(
            ConfigErrorKind::Invalid,
            "use prod, EnvironmentCredential, WorkloadIdentityCredential or \
             ManagedIdentityCredential"
                .into(),
        ),
    }
}

/// A secret sent as configured, else as the provider's kind prefers
/// ([`Credential::secret`]).
fn secret_credential(secret: ClientSecret, method: Option<SecretAuthMethod>) -> Credential {
    match method {
        Some(m) => Credential::secret_with(secret, m),
        None => Credential::secret(secret),
    }
}

/// `timeout_secs` was renamed: say so rather than "unknown field".
fn renamed_timeout<'de, D: serde::Deserializer<'de>>(_: D) -> std::result::Result<(), D::Error> {
    Err(serde::de::Error::custom(
        "timeout_secs was renamed: write timeout = \"30s\" (a duration string, like every duration of the file)",
    ))
}

impl ClientConfig {
    /// Parses TOML. Errors name the line and column.
    pub fn from_toml_str(toml_text: &str) -> Result<ClientConfig> {
        toml::from_str(toml_text)
            .map_err(|e| ConfigError::new(ConfigErrorKind::Invalid, e.to_string()).into())
    }

    /// Reads the environment variables (see the table above).
    pub fn from_env() -> Result<ClientConfig> {
        ClientConfig::from_env_vars(|k| std::env::var(k).ok())
    }

    /// Reads settings through a lookup function (for tests and embedding).
    pub fn from_env_vars(get: impl Fn(&str) -> Option<String>) -> Result<ClientConfig> {
        let get = |k: &str| get(k).filter(|v| !v.trim().is_empty());
        let send_chain = match get("AZURE_CLIENT_SEND_CERTIFICATE_CHAIN") {
            None => None,
            Some(v) => {
                match v.trim().to_ascii_lowercase().as_str() {
                    "1" | "true" | "yes" => Some(true),
                    "0" | "false" | "no" => Some(false),
                    other => {
                        return Err(ConfigError::new(
                        ConfigErrorKind::Invalid,
                        format!("AZURE_CLIENT_SEND_CERTIFICATE_CHAIN is '{other}'; use true or false"),
                    )
                    .with_setting("AZURE_CLIENT_SEND_CERTIFICATE_CHAIN")
                    .into());
                    }
                }
            }
        };
        let credential = match get("APPTOKEN_CREDENTIAL") {
            Some(v) => Some(v.parse::<CredentialType>().map_err(|e| match e {
                Error::Configuration(d) => {
                    Error::Configuration(d.with_setting("APPTOKEN_CREDENTIAL"))
                }
                other => other,
            })?),
            None => match get("AZURE_TOKEN_CREDENTIALS") {
                Some(v) => azure_token_credentials(&v, &get)?,
                None => None,
            },
        };
        Ok(ClientConfig {
            credential,
            issuer: get("APPTOKEN_ISSUER"),
            mi_env: Some(Environment::from_lookup(get)),
            authority_host: get("AZURE_AUTHORITY_HOST"),
            tenant_id: get("AZURE_TENANT_ID"),
            client_id: get("AZURE_CLIENT_ID"),
            client_secret: get("AZURE_CLIENT_SECRET").map(ClientSecret::new),
            certificate_path: get("AZURE_CLIENT_CERTIFICATE_PATH").map(PathBuf::from),
            certificate_password: get("AZURE_CLIENT_CERTIFICATE_PASSWORD").map(SecretString::from),
            send_certificate_chain: send_chain,
            federated_token_file: get("AZURE_FEDERATED_TOKEN_FILE").map(PathBuf::from),
            ca_file: get("APPTOKEN_CA_FILE").map(PathBuf::from),
            region: match get("AZURE_REGIONAL_AUTHORITY_NAME") {
                // Azure Identity's auto-detection reads the region the platform
                // publishes; without one there is nothing to detect.
                Some(r) if r.eq_ignore_ascii_case("TryAutoDetect") => match get("REGION_NAME") {
                    Some(region) => Some(region.to_ascii_lowercase().replace(' ', "")),
                    None => {
                        return Err(ConfigError::new(
                            ConfigErrorKind::Missing,
                            "AZURE_REGIONAL_AUTHORITY_NAME=TryAutoDetect, but the platform publishes no REGION_NAME: name the region (for example westus2)",
                        )
                        .with_setting("REGION_NAME")
                        .into());
                    }
                },
                other => other,
            },
            ..ClientConfig::default()
        })
    }

    /// Sets the client secret itself (for embedding; files never hold it inline).
    pub fn with_client_secret(mut self, secret: ClientSecret) -> ClientConfig {
        self.client_secret = Some(secret);
        self
    }

    fn names_credential(&self) -> bool {
        self.client_secret.is_some()
            || self.client_secret_file.is_some()
            || self.certificate_path.is_some()
            || self.federated_token_file.is_some()
            || self.credential.is_some_and(|c| c != CredentialType::Auto)
    }

    /// Whether a client secret is set (inline from the environment, or a file).
    pub(crate) fn has_secret(&self) -> bool {
        self.client_secret.is_some() || self.client_secret_file.is_some()
    }

    /// The managed-identity variables: those read with the settings, else
    /// the process's.
    pub(crate) fn mi_environment(&self) -> Environment {
        self.mi_env.clone().unwrap_or_else(Environment::read)
    }

    /// Fills what this configuration leaves out from `env`. The credential
    /// is taken whole from one side: this one's if it names one, else env's.
    pub fn or_env(self, env: ClientConfig) -> ClientConfig {
        let self_names_credential = self.names_credential();
        let mut out = ClientConfig {
            issuer: self.issuer.clone().or(env.issuer.clone()),
            authority_host: self.authority_host.clone().or(env.authority_host.clone()),
            tenant_id: self.tenant_id.clone().or(env.tenant_id.clone()),
            client_id: self.client_id.clone().or(env.client_id.clone()),
            timeout: self.timeout.or(env.timeout),
            default_token_lifetime: self.default_token_lifetime.or(env.default_token_lifetime),
            ca_file: self.ca_file.clone().or(env.ca_file.clone()),
            region: self.region.clone().or(env.region.clone()),
            client_capabilities: self
                .client_capabilities
                .clone()
                .or(env.client_capabilities.clone()),
            client_secret_auth: self.client_secret_auth.or(env.client_secret_auth),
            assertion_algorithm: self.assertion_algorithm.or(env.assertion_algorithm),
            managed_identity_client_id: self
                .managed_identity_client_id
                .clone()
                .or(env.managed_identity_client_id.clone()),
            managed_identity_object_id: self
                .managed_identity_object_id
                .clone()
                .or(env.managed_identity_object_id.clone()),
            managed_identity_resource_id: self
                .managed_identity_resource_id
                .clone()
                .or(env.managed_identity_resource_id.clone()),
            mi_env: self.mi_env.clone().or(env.mi_env.clone()),
            ..ClientConfig::default()
        };
        let cred = if self_names_credential { self } else { env };
        out.client_secret = cred.client_secret;
        out.client_secret_file = cred.client_secret_file;
        out.certificate_path = cred.certificate_path;
        out.certificate_password_file = cred.certificate_password_file;
        out.certificate_password = cred.certificate_password;
        out.send_certificate_chain = cred.send_certificate_chain;
        out.federated_token_file = cred.federated_token_file;
        out.credential = cred.credential;
        out
    }

    /// The authority these settings name.
    pub fn authority(&self) -> Result<Authority> {
        if let Some(issuer) = self.issuer.as_deref().filter(|i| !i.trim().is_empty()) {
            return Authority::oidc(issuer).map_err(|e| match e {
                Error::Authority(d) => Error::Authority(d.with_setting("issuer")),
                other => other,
            });
        }
        let tenant = self.tenant_id.as_deref().ok_or_else(|| {
            Error::from(
                ConfigError::new(
                    ConfigErrorKind::Missing,
                    "no tenant: set tenant_id in the configuration or AZURE_TENANT_ID",
                )
                .with_setting("tenant_id"),
            )
        })?;
        let cloud = match self.authority_host.as_deref() {
            None => CloudInstance::AzurePublic,
            Some(h) => CloudInstance::parse(h)?,
        };
        Authority::entra(cloud, tenant)
    }

    /// Which kind of credential these settings name, for messages (`None`
    /// when the chain will look for one: [`ClientConfig::choose_credential`]).
    pub fn credential_kind(&self) -> Option<&'static str> {
        match self.credential {
            Some(CredentialType::ManagedIdentity) => return Some("managed identity"),
            Some(CredentialType::ManagedIdentityFederation) => {
                return Some("managed identity (federated credential)");
            }
            _ => {}
        }
        if self.client_secret.is_some() || self.client_secret_file.is_some() {
            Some("client secret")
        } else if self.certificate_path.is_some() {
            Some("certificate")
        } else if self.federated_token_file.is_some() {
            Some("federated token file")
        } else {
            None
        }
    }

    /// Loads the credential these settings name (reads and checks the files).
    pub fn credential(&self) -> Result<Credential> {
        let file_creds = [
            self.client_secret_file.is_some(),
            self.certificate_path.is_some(),
            self.federated_token_file.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        if file_creds > 1 {
            return Err(crate::error::config(
                ConfigErrorKind::Conflict,
                "more than one credential is configured (client_secret_file, certificate_path, federated_token_file): keep one",
            ));
        }
        // Azure Identity's order: secret, certificate, federated token file.
        if let Some(secret) = &self.client_secret {
            return Ok(secret_credential(secret.clone(), self.client_secret_auth));
        }
        if let Some(path) = &self.client_secret_file {
            return Ok(secret_credential(
                ClientSecret::from_file(path)?,
                self.client_secret_auth,
            ));
        }
        if let Some(path) = &self.certificate_path {
            let password = match (&self.certificate_password, &self.certificate_password_file) {
                (Some(p), _) => Some(p.clone()),
                (None, Some(f)) => Some(read_password(f)?),
                (None, None) => None,
            };
            let cert = Certificate::from_file(path, password.as_ref().map(|p| p.expose_secret()))?;
            return Ok(Credential::certificate_with(
                cert,
                self.send_certificate_chain.unwrap_or(false),
                self.assertion_algorithm,
            ));
        }
        if let Some(path) = &self.federated_token_file {
            return Ok(Credential::assertion_file(path));
        }
        Err(crate::error::config(
            ConfigErrorKind::Missing,
            "no credential: set AZURE_CLIENT_SECRET, AZURE_CLIENT_CERTIFICATE_PATH or AZURE_FEDERATED_TOKEN_FILE, \
             or client_secret_file, certificate_path or federated_token_file in the configuration",
        ))
    }

    /// Builds a client from these settings.
    pub fn build_client(&self) -> Result<ConfidentialClient> {
        self.client_builder()?.build()
    }

    /// A client builder with these settings, to add more (a shared store, a
    /// clock) before `build`. The credential is the one
    /// [`ClientConfig::choose_credential`] chooses.
    pub fn client_builder(&self) -> Result<crate::ConfidentialClientBuilder> {
        let choice = self.choose_credential()?;
        if choice.credential == CredentialType::ManagedIdentity {
            let identity = choice.managed_identity.clone().ok_or_else(|| {
                crate::error::config(ConfigErrorKind::Missing, "no managed identity was found")
            })?;
            let mut b = ConfidentialClient::builder().managed_identity(identity);
            if choice.probe != crate::chain::Probe::None {
                b = b.probe_managed_identity(
                    choice.skipped_summary(),
                    choice.probe == crate::chain::Probe::Quick,
                );
            }
            return self.common(b);
        }
        let client_id = self.client_id.as_deref().ok_or_else(|| {
            Error::from(
                ConfigError::new(
                    ConfigErrorKind::Missing,
                    "no client id: set client_id in the configuration or AZURE_CLIENT_ID",
                )
                .with_setting("client_id"),
            )
        })?;
        let credential = match (choice.credential, choice.managed_identity) {
            (CredentialType::ManagedIdentityFederation, Some(identity)) => {
                let mut mi = ConfidentialClient::builder().managed_identity(identity);
                if let Some(t) = self.timeout {
                    mi = mi.timeout(t);
                }
                Credential::managed_identity_client(mi.build()?)
            }
            _ => self.credential()?,
        };
        let mut b = ConfidentialClient::builder()
            .client_id(client_id)
            .authority(self.authority()?)
            .credential(credential);
        // A region is Entra's: an issuer takes precedence over it.
        if let Some(r) = self.region.as_ref().filter(|_| self.issuer.is_none()) {
            b = b.azure_region(r);
        }
        self.common(b)
    }

    /// The settings every client takes: timeout, capabilities, extra roots.
    fn common(
        &self,
        mut b: crate::ConfidentialClientBuilder,
    ) -> Result<crate::ConfidentialClientBuilder> {
        if let Some(t) = self.timeout {
            b = b.timeout(t);
        }
        if let Some(l) = self.default_token_lifetime {
            b = b.default_token_lifetime(l);
        }
        if let Some(c) = &self.client_capabilities {
            b = b.client_capabilities(c.iter().cloned());
        }
        if let Some(ca) = &self.ca_file {
            let pem = crate::files::read_ca_file(ca)?;
            b = b.add_root_certificate_pem(pem);
        }
        Ok(b)
    }
}

fn read_password(path: &Path) -> Result<SecretString> {
    let bytes = crate::files::read_secret_file(path, "certificate password")?;
    let text = std::str::from_utf8(&bytes).map_err(|_| {
        crate::error::CredentialError::new(
            crate::error::CredentialErrorKind::File(crate::error::FileProblem::NotUtf8),
            format!("the password file '{}' is not UTF-8 text", path.display()),
        )
        .with_path(path)
    })?;
    Ok(SecretString::from(
        text.trim_end_matches(['\r', '\n']).to_string(),
    ))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn the_timeout_is_a_duration_string() {
        let c = ClientConfig::from_toml_str("timeout = \"1m30s\"").unwrap();
        assert_eq!(c.timeout, Some(Duration::from_secs(90)));
        let c = ClientConfig::from_toml_str("timeout = \"250ms\"").unwrap();
        assert_eq!(c.timeout, Some(Duration::from_millis(250)));
        let e = ClientConfig::from_toml_str("timeout = \"soon\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("'soon' is not a duration"), "{e}");
        let e = ClientConfig::from_toml_str("timeout = 30")
            .unwrap_err()
            .to_string();
        assert!(e.contains("string"), "{e}");
        // The old name is refused with the new one.
        let e = ClientConfig::from_toml_str("timeout_secs = 30")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("timeout_secs was renamed") && e.contains("timeout = \"30s\""),
            "{e}"
        );
        // A file's timeout wins over the environment's (none today) and is kept.
        let merged = c.or_env(ClientConfig::default());
        assert_eq!(merged.timeout, Some(Duration::from_millis(250)));
    }

    /// Settings from these environment variables only.
    pub(crate) fn env(pairs: &[(&str, &str)]) -> ClientConfig {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        ClientConfig::from_env_vars(|k| map.get(k).cloned()).unwrap()
    }

    #[test]
    fn env_fills_gaps_and_file_credential_wins() {
        let file =
            ClientConfig::from_toml_str("tenant_id = \"a.example\"\nclient_secret_file = \"/x\"")
                .unwrap();
        let e = env(&[
            ("AZURE_TENANT_ID", "b.example"),
            ("AZURE_CLIENT_ID", "cid"),
            ("AZURE_CLIENT_SECRET", "s"),
            ("AZURE_AUTHORITY_HOST", "http://127.0.0.1:9"),
        ]);
        let m = file.or_env(e);
        assert_eq!(m.tenant_id.as_deref(), Some("a.example"));
        assert_eq!(m.client_id.as_deref(), Some("cid"));
        assert!(
            m.client_secret.is_none(),
            "the file's credential is used whole"
        );
        assert_eq!(m.client_secret_file.as_deref(), Some(Path::new("/x")));
        assert_eq!(m.authority().unwrap().url(), "http://127.0.0.1:9/a.example");
    }

    #[test]
    fn env_credential_precedence_is_azure_identitys() {
        let e = env(&[
            ("AZURE_CLIENT_SECRET", "s"),
            ("AZURE_CLIENT_CERTIFICATE_PATH", "/nonexistent.pem"),
        ]);
        assert_eq!(e.credential_kind(), Some("client secret"));
        assert!(e.credential().is_ok());
        let e = env(&[("AZURE_FEDERATED_TOKEN_FILE", "/var/run/token")]);
        assert_eq!(e.credential_kind(), Some("federated token file"));
    }

    #[test]
    fn bad_settings_are_named() {
        let e = ClientConfig::from_toml_str("tenant = \"x\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("tenant") && e.contains("line 1"), "{e}");
        let e = ClientConfig::from_env_vars(|k| {
            (k == "AZURE_CLIENT_SEND_CERTIFICATE_CHAIN").then(|| "maybe".into())
        })
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("AZURE_CLIENT_SEND_CERTIFICATE_CHAIN")
        );
        let e = ClientConfig::default()
            .credential()
            .unwrap_err()
            .to_string();
        assert!(e.contains("AZURE_CLIENT_SECRET"), "{e}");
        let two =
            ClientConfig::from_toml_str("client_secret_file = \"/a\"\ncertificate_path = \"/b\"")
                .unwrap();
        assert!(
            two.credential()
                .unwrap_err()
                .to_string()
                .contains("more than one")
        );
        let e = ClientConfig::default().authority().unwrap_err().to_string();
        assert!(e.contains("AZURE_TENANT_ID"), "{e}");
        // The secret method and the assertion algorithm are parsed with the
        // file, at their place, not re-parsed by hand later.
        let c = ClientConfig::from_toml_str(
            "client_secret_auth = \"Client_Secret_Basic\"\nassertion_algorithm = \"rs256\"",
        )
        .unwrap();
        assert_eq!(c.client_secret_auth, Some(SecretAuthMethod::Basic));
        assert_eq!(c.assertion_algorithm, Some(SigningAlgorithm::Rs256));
        let e = ClientConfig::from_toml_str("client_secret_auth = \"digest\"")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("'digest'; use 'post' or 'basic'") && e.contains("line 1"),
            "{e}"
        );
        let e = ClientConfig::from_toml_str("assertion_algorithm = \"ES256\"")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("'ES256' is not supported; use PS256 or RS256"),
            "{e}"
        );
        assert!(
            !e.contains("configuration error: configuration error"),
            "{e}"
        );
        assert_eq!(
            "post".parse::<SecretAuthMethod>().unwrap(),
            SecretAuthMethod::Post
        );
        assert!("PS512".parse::<SigningAlgorithm>().is_err());
    }
}
