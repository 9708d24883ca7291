//! The default credential chain: which credential a [`ClientConfig`]'s
//! settings choose, and why each earlier step was passed over.
//!
//! Azure Identity's order: environment credentials (a client secret or a
//! certificate), then workload identity (a federated token file), then the
//! host's managed identity — where `AZURE_CLIENT_ID` (or `client_id`) names a
//! user-assigned identity when no app credential is set. A step whose
//! credential is configured but cannot be used ends the chain with its own
//! error (never a silent fall-through to another identity); only an absent
//! one is passed over. When the managed identity is IMDS and nothing says
//! it is there (`AZURE_POD_IDENTITY_AUTHORITY_HOST` unset), the first token
//! request is a probe: one second, no retries, an answer in Azure's shape
//! (see `managed_identity/source.rs`), so a laptop fails in about a second
//! with every step's reason. `credential = "…"` (`APPTOKEN_CREDENTIAL`)
//! turns the chain off and names the one credential to use.
//!
//! Over 500 lines with its tests: the code is about 400, one decision
//! (which credential, and why each step was passed over) that reads as a
//! whole; the tests beside it walk the chain step by step.

use std::fmt;

use crate::config::ClientConfig;
use crate::error::{ConfigError, ConfigErrorKind, Error, Result};
use crate::managed_identity::{Endpoint, ManagedIdentity, ManagedIdentityId};

/// Which credential a client uses (`credential` in the configuration,
/// `APPTOKEN_CREDENTIAL` in the environment).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum CredentialType {
    /// The chain: the first of secret or certificate, federated token file,
    /// managed identity that is configured (the default).
    #[default]
    Auto,
    /// A client secret (`AZURE_CLIENT_SECRET`, `client_secret_file`).
    Secret,
    /// A certificate (`AZURE_CLIENT_CERTIFICATE_PATH`, `certificate_path`).
    Certificate,
    /// A federated token file (`AZURE_FEDERATED_TOKEN_FILE`): workload identity.
    FederatedTokenFile,
    /// The host's managed identity.
    ManagedIdentity,
    /// An app registration whose client assertion is a token of the host's
    /// managed identity (a federated credential trusting it): no secret and
    /// no certificate for a multi-tenant app running in Azure.
    ManagedIdentityFederation,
}

impl CredentialType {
    /// The name in the configuration (`managed-identity`…).
    pub fn name(self) -> &'static str {
        match self {
            CredentialType::Auto => "auto",
            CredentialType::Secret => "secret",
            CredentialType::Certificate => "certificate",
            CredentialType::FederatedTokenFile => "federated-token-file",
            CredentialType::ManagedIdentity => "managed-identity",
            CredentialType::ManagedIdentityFederation => "managed-identity-federation",
        }
    }

    const ALL: [CredentialType; 6] = [
        CredentialType::Auto,
        CredentialType::Secret,
        CredentialType::Certificate,
        CredentialType::FederatedTokenFile,
        CredentialType::ManagedIdentity,
        CredentialType::ManagedIdentityFederation,
    ];

    fn from_name(s: &str) -> std::result::Result<CredentialType, String> {
        let s = s.trim();
        CredentialType::ALL
            .into_iter()
            .find(|c| {
                c.name().eq_ignore_ascii_case(s)
                    || c.name().replace('-', "_").eq_ignore_ascii_case(s)
            })
            .ok_or_else(|| {
                let names: Vec<&str> = CredentialType::ALL.iter().map(|c| c.name()).collect();
                format!("credential is '{s}'; use one of {}", names.join(", "))
            })
    }
}

impl fmt::Display for CredentialType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

crate::setting::named_setting!(
    CredentialType,
    "credential",
    "`auto`, `secret`, `certificate`, `federated-token-file`, `managed-identity` or `managed-identity-federation` (or with `_`), case-insensitive"
);

/// One step of the chain and what became of it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ChainStep {
    /// The credential this step tries.
    pub credential: CredentialType,
    /// Whether the chain chose it.
    pub chosen: bool,
    /// Why it was chosen, or passed over.
    pub reason: String,
}

impl fmt::Display for ChainStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.credential {
            CredentialType::Secret | CredentialType::Certificate => "environment credential",
            CredentialType::FederatedTokenFile => "workload identity",
            _ => "managed identity",
        };
        let verdict = if self.chosen { "chosen" } else { "skipped" };
        write!(
            f,
            "{what} ({}): {verdict}, {}",
            self.credential, self.reason
        )
    }
}

/// What the settings choose: the credential, the managed identity if it is
/// one, and the chain's steps (only the chosen one when the chain is off).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CredentialChoice {
    /// The credential used.
    pub credential: CredentialType,
    /// The steps, in order, up to the chosen one.
    pub steps: Vec<ChainStep>,
    /// The managed identity, for `ManagedIdentity` and `ManagedIdentityFederation`.
    pub managed_identity: Option<ManagedIdentity>,
    /// Whether the first request probes IMDS (the chain reached it).
    pub(crate) probe: Probe,
}

/// How the chain's first managed-identity request probes IMDS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Probe {
    /// No probe (named explicitly, or not IMDS).
    None,
    /// IMDS at its default address: one second, no retries.
    Quick,
    /// IMDS where `AZURE_POD_IDENTITY_AUTHORITY_HOST` says: the ordinary
    /// timeout, no retries.
    Patient,
}

impl CredentialChoice {
    /// The steps passed over, on one line (for errors).
    pub(crate) fn skipped_summary(&self) -> String {
        self.steps
            .iter()
            .filter(|s| !s.chosen)
            .map(ChainStep::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    }
}

fn step(credential: CredentialType, chosen: bool, reason: impl Into<String>) -> ChainStep {
    ChainStep {
        credential,
        chosen,
        reason: reason.into(),
    }
}

impl ClientConfig {
    /// Which credential these settings choose and why (`apptoken whoami`
    /// prints it). Nothing is read or sent: files are checked when the
    /// client is built, the managed identity at its first request.
    ///
    /// ```
    /// use apptoken::{ClientConfig, CredentialType};
    /// let env = ClientConfig::from_env_vars(|k| match k {
    ///     "AZURE_POD_IDENTITY_AUTHORITY_HOST" => Some("http://127.0.0.1:9".into()),
    ///     "AZURE_CLIENT_ID" => Some("0f8fad5b-d9cb-469f-a165-70867728950e".into()),
    ///     _ => None,
    /// })?;
    /// let choice = env.choose_credential()?;
    /// assert_eq!(choice.credential, CredentialType::ManagedIdentity);
    /// assert_eq!(choice.steps.len(), 3); // two skipped, one chosen
    /// # Ok::<(), apptoken::Error>(())
    /// ```
    ///
    /// # Errors
    /// A configuration error when an explicitly named credential is not
    /// configured, when several user-assigned ids are given, or when the
    /// host's managed identity is of a kind apptoken does not support.
    pub fn choose_credential(&self) -> Result<CredentialChoice> {
        let kind = self.credential.unwrap_or_default();
        let secret = self.has_secret();
        let certificate = self.certificate_path.is_some();
        let file = self.federated_token_file.is_some();
        let explicit = |credential: CredentialType, reason: &str| CredentialChoice {
            credential,
            steps: vec![step(credential, true, reason)],
            managed_identity: None,
            probe: Probe::None,
        };
        let missing = |what: &str| -> Result<CredentialChoice> {
            Err(ConfigError::new(
                ConfigErrorKind::Missing,
                format!("credential = \"{}\", but {what}", kind.name()),
            )
            .with_setting("credential")
            .into())
        };
        // A generic provider has no managed identity: the chain ends before it.
        let issuer = self.issuer.as_deref().filter(|i| !i.trim().is_empty());
        if let (Some(issuer), CredentialType::ManagedIdentity)
        | (Some(issuer), CredentialType::ManagedIdentityFederation) = (issuer, kind)
        {
            return Err(ConfigError::new(
                ConfigErrorKind::Conflict,
                format!(
                    "credential = \"{}\" is an Azure managed identity, but issuer '{issuer}' \
                     names another OpenID provider: give it a client secret or certificate, or \
                     remove issuer",
                    kind.name()
                ),
            )
            .with_setting("credential")
            .into());
        }
        match kind {
            CredentialType::Secret if secret => {
                return Ok(explicit(kind, "named by the credential setting"));
            }
            CredentialType::Secret => {
                return missing(
                    "no client secret is set (AZURE_CLIENT_SECRET or client_secret_file)",
                );
            }
            CredentialType::Certificate if certificate => {
                return Ok(explicit(kind, "named by the credential setting"));
            }
            CredentialType::Certificate => {
                return missing(
                    "no certificate is set (AZURE_CLIENT_CERTIFICATE_PATH or certificate_path)",
                );
            }
            CredentialType::FederatedTokenFile if file => {
                return Ok(explicit(kind, "named by the credential setting"));
            }
            CredentialType::FederatedTokenFile => {
                return missing(
                    "no federated token file is set (AZURE_FEDERATED_TOKEN_FILE or federated_token_file)",
                );
            }
            CredentialType::ManagedIdentity | CredentialType::ManagedIdentityFederation => {
                let id = self.managed_identity_id(kind == CredentialType::ManagedIdentity)?;
                let identity = ManagedIdentity::with_environment(id, &self.mi_environment())?;
                let mut choice = explicit(kind, "named by the credential setting");
                choice.steps[0].reason = format!(
                    "named by the credential setting: {} from {} ({})",
                    identity.id(),
                    identity.kind(),
                    identity.endpoint()
                );
                choice.managed_identity = Some(identity);
                return Ok(choice);
            }
            CredentialType::Auto => {}
        }
        let mut steps = Vec::new();
        if secret || certificate {
            let which = if secret {
                CredentialType::Secret
            } else {
                CredentialType::Certificate
            };
            steps.push(step(
                which,
                true,
                "a client secret or certificate is configured",
            ));
            return Ok(CredentialChoice {
                credential: which,
                steps,
                managed_identity: None,
                probe: Probe::None,
            });
        }
        steps.push(step(
            CredentialType::Secret,
            false,
            "no client secret or certificate is set (AZURE_CLIENT_SECRET, AZURE_CLIENT_CERTIFICATE_PATH, \
             client_secret_file, certificate_path)",
        ));
        if file {
            steps.push(step(
                CredentialType::FederatedTokenFile,
                true,
                "a federated token file is configured",
            ));
            return Ok(CredentialChoice {
                credential: CredentialType::FederatedTokenFile,
                steps,
                managed_identity: None,
                probe: Probe::None,
            });
        }
        steps.push(step(
            CredentialType::FederatedTokenFile,
            false,
            "no federated token file is set (AZURE_FEDERATED_TOKEN_FILE, federated_token_file)",
        ));
        if let Some(issuer) = issuer {
            let summary: Vec<String> = steps.iter().map(ChainStep::to_string).collect();
            return Err(ConfigError::new(
                ConfigErrorKind::Missing,
                format!(
                    "no credential works ({}); managed identity: not tried, issuer '{issuer}' \
                     names a generic OpenID provider: set a client secret \
                     (AZURE_CLIENT_SECRET, client_secret_file) or a certificate",
                    summary.join("; ")
                ),
            )
            .with_setting("client_secret_file")
            .into());
        }
        let env = self.mi_environment();
        let id = self.managed_identity_id(true)?;
        let identity =
            ManagedIdentity::with_environment(id, &env).map_err(|e| prefixed(e, &steps))?;
        // IMDS reached by the chain is probed: quickly (1 s) at its default
        // address, within the ordinary timeout where
        // AZURE_POD_IDENTITY_AUTHORITY_HOST names it; no retries either way.
        let probe = matches!(identity.endpoint, Endpoint::Imds { .. });
        let quick = env.pod_identity_authority_host.is_none();
        steps.push(step(
            CredentialType::ManagedIdentity,
            true,
            format!(
                "{} from {} ({}){}",
                identity.id(),
                identity.kind(),
                identity.endpoint(),
                match (probe, quick) {
                    (true, true) =>
                        "; nothing names IMDS, so the first request probes it (1 s, no retries)",
                    (true, false) => "; the first request probes it (no retries)",
                    _ => "",
                }
            ),
        ));
        Ok(CredentialChoice {
            credential: CredentialType::ManagedIdentity,
            steps,
            managed_identity: Some(identity),
            probe: match (probe, quick) {
                (false, _) => Probe::None,
                (true, true) => Probe::Quick,
                (true, false) => Probe::Patient,
            },
        })
    }

    /// The user-assigned identity the settings name: one of the
    /// `managed_identity_*` ids, else (for a managed identity of its own,
    /// as Azure Identity reads `AZURE_CLIENT_ID`) the client id, else the
    /// system-assigned one.
    fn managed_identity_id(&self, client_id_names_it: bool) -> Result<ManagedIdentityId> {
        let given: Vec<ManagedIdentityId> = [
            self.managed_identity_client_id
                .clone()
                .map(ManagedIdentityId::ClientId),
            self.managed_identity_object_id
                .clone()
                .map(ManagedIdentityId::ObjectId),
            self.managed_identity_resource_id
                .clone()
                .map(ManagedIdentityId::ResourceId),
        ]
        .into_iter()
        .flatten()
        .collect();
        match given.as_slice() {
            [] => Ok(match (&self.client_id, client_id_names_it) {
                (Some(c), true) => ManagedIdentityId::ClientId(c.clone()),
                _ => ManagedIdentityId::SystemAssigned,
            }),
            [one] => Ok(one.clone()),
            _ => Err(ConfigError::new(
                ConfigErrorKind::Conflict,
                "more than one of managed_identity_client_id, managed_identity_object_id and \
                 managed_identity_resource_id is set: a user-assigned identity is named one way",
            )
            .with_setting("managed_identity_client_id")
            .into()),
        }
    }
}

/// `e` with the steps passed over before it, so the error says everything.
fn prefixed(e: Error, steps: &[ChainStep]) -> Error {
    let summary: Vec<String> = steps.iter().map(ChainStep::to_string).collect();
    match e {
        Error::Configuration(d) => Error::Configuration(d.prefixed(format!(
            "no credential works ({}); managed identity",
            summary.join("; ")
        ))),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::env;

    const LOOP: (&str, &str) = ("AZURE_POD_IDENTITY_AUTHORITY_HOST", "http://127.0.0.1:9");

    #[test]
    fn the_chain_takes_the_first_configured_credential_in_azure_identitys_order() {
        let c = env(&[
            ("AZURE_CLIENT_SECRET", "s"),
            ("AZURE_FEDERATED_TOKEN_FILE", "/t"),
            LOOP,
        ]);
        let choice = c.choose_credential().unwrap();
        assert_eq!(choice.credential, CredentialType::Secret);
        assert_eq!(choice.steps.len(), 1);
        let c = env(&[("AZURE_FEDERATED_TOKEN_FILE", "/t"), LOOP]);
        let choice = c.choose_credential().unwrap();
        assert_eq!(choice.credential, CredentialType::FederatedTokenFile);
        assert_eq!(choice.steps.iter().filter(|s| s.chosen).count(), 1);
        assert!(choice.steps[0].reason.contains("AZURE_CLIENT_SECRET"));
        // Nothing configured: the managed identity, AZURE_CLIENT_ID naming a user-assigned one.
        let c = env(&[("AZURE_CLIENT_ID", "cid"), LOOP]);
        let choice = c.choose_credential().unwrap();
        assert_eq!(choice.credential, CredentialType::ManagedIdentity);
        assert_eq!(
            choice.managed_identity.as_ref().unwrap().id(),
            &ManagedIdentityId::ClientId("cid".into())
        );
        assert_eq!(
            choice.probe,
            Probe::Patient,
            "AZURE_POD_IDENTITY_AUTHORITY_HOST names IMDS"
        );
        assert_eq!(choice.skipped_summary().matches("skipped").count(), 2);
    }

    #[test]
    fn imds_reached_unasked_is_probed_and_explicit_choices_skip_the_chain() {
        let choice = env(&[]).choose_credential().unwrap();
        assert_eq!(choice.probe, Probe::Quick);
        assert_eq!(
            choice.managed_identity.unwrap().endpoint(),
            format!(
                "{}/metadata/identity/oauth2/token",
                crate::managed_identity::IMDS_BASE
            )
        );
        let c = env(&[
            ("APPTOKEN_CREDENTIAL", "managed-identity"),
            ("AZURE_CLIENT_SECRET", "s"),
        ]);
        let choice = c.choose_credential().unwrap();
        assert_eq!(choice.credential, CredentialType::ManagedIdentity);
        assert_eq!(choice.probe, Probe::None, "named explicitly: no probe");
        assert_eq!(choice.steps.len(), 1);
        let e = env(&[("APPTOKEN_CREDENTIAL", "certificate")])
            .choose_credential()
            .unwrap_err();
        let Error::Configuration(d) = &e else {
            panic!("{e:?}")
        };
        assert_eq!(
            (d.kind(), d.setting()),
            (ConfigErrorKind::Missing, Some("credential"))
        );
        let e =
            ClientConfig::from_env_vars(|k| (k == "APPTOKEN_CREDENTIAL").then(|| "magic".into()))
                .unwrap_err();
        assert!(e.to_string().contains("managed-identity"), "{e}");
    }

    #[test]
    fn azure_token_credentials_selects_as_azure_identity_reads_it() {
        let chosen = |vars: &[(&str, &str)]| env(vars).choose_credential().unwrap();
        let var = "AZURE_TOKEN_CREDENTIALS";
        // prod: the chain, here ending at the managed identity, probed.
        let c = chosen(&[(var, "prod")]);
        assert_eq!(
            (c.credential, c.steps.len()),
            (CredentialType::ManagedIdentity, 3)
        );
        // One credential alone: with a secret configured, still the managed
        // identity, with no probe (as Azure Identity skips it), and
        // AZURE_CLIENT_ID naming the user-assigned one.
        let c = chosen(&[
            (var, "ManagedIdentityCredential"),
            ("AZURE_CLIENT_SECRET", "s"),
            ("AZURE_CLIENT_ID", "cid"),
        ]);
        assert_eq!(
            (c.credential, c.probe),
            (CredentialType::ManagedIdentity, Probe::None)
        );
        assert_eq!(
            c.managed_identity.unwrap().id(),
            &ManagedIdentityId::ClientId("cid".into())
        );
        let c = chosen(&[
            (var, "workloadidentitycredential"),
            ("AZURE_CLIENT_SECRET", "s"),
            ("AZURE_FEDERATED_TOKEN_FILE", "/t"),
        ]);
        assert_eq!(c.credential, CredentialType::FederatedTokenFile);
        let c = chosen(&[
            (var, " EnvironmentCredential "),
            ("AZURE_CLIENT_SECRET", "s"),
        ]);
        assert_eq!(c.credential, CredentialType::Secret);
        let c = chosen(&[
            (var, "EnvironmentCredential"),
            ("AZURE_CLIENT_CERTIFICATE_PATH", "/c.pem"),
            ("AZURE_FEDERATED_TOKEN_FILE", "/t"),
        ]);
        assert_eq!(c.credential, CredentialType::Certificate);
        // APPTOKEN_CREDENTIAL, apptoken's own, wins.
        let c = chosen(&[
            (var, "ManagedIdentityCredential"),
            ("APPTOKEN_CREDENTIAL", "secret"),
            ("AZURE_CLIENT_SECRET", "s"),
        ]);
        assert_eq!(c.credential, CredentialType::Secret);
        // Refusals name the variable and say what to do.
        let refused = |value: &str, extra: &[(&str, &str)]| {
            let mut vars = vec![(var, value)];
            vars.extend_from_slice(extra);
            let e = ClientConfig::from_env_vars(|k| {
                vars.iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            })
            .unwrap_err();
            let Error::Configuration(d) = &e else {
                panic!("{e:?}")
            };
            assert_eq!(d.setting(), Some(var), "{e}");
            (d.kind(), e.to_string())
        };
        let (kind, m) = refused(
            "EnvironmentCredential",
            &[("AZURE_FEDERATED_TOKEN_FILE", "/t")],
        );
        assert_eq!(kind, ConfigErrorKind::Missing);
        assert!(
            m.contains("AZURE_CLIENT_SECRET nor AZURE_CLIENT_CERTIFICATE_PATH"),
            "{m}"
        );
        for dev in ["dev", "AzureCliCredential", "VisualStudioCodeCredential"] {
            let (kind, m) = refused(dev, &[]);
            assert_eq!(kind, ConfigErrorKind::Invalid);
            assert!(m.contains("no developer credentials"), "{m}");
        }
        let (_, m) = refused("ManagedIdentity", &[]);
        assert!(
            m.contains("'ManagedIdentity'") && m.contains("ManagedIdentityCredential"),
            "{m}"
        );
    }

    #[test]
    fn ids_are_named_one_way_and_unsupported_hosts_end_the_chain_with_every_step() {
        let c = ClientConfig::from_toml_str(
            "credential = \"managed-identity\"\nmanaged_identity_client_id = \"a\"\nmanaged_identity_object_id = \"b\"",
        )
        .unwrap();
        let e = c.choose_credential().unwrap_err();
        assert!(
            matches!(&e, Error::Configuration(d) if d.kind() == ConfigErrorKind::Conflict),
            "{e}"
        );
        let c =
            ClientConfig::from_toml_str("managed_identity_resource_id = \"/subscriptions/s/x\"")
                .unwrap()
                .or_env(env(&[LOOP]));
        assert_eq!(
            c.choose_credential()
                .unwrap()
                .managed_identity
                .unwrap()
                .id(),
            &ManagedIdentityId::ResourceId("/subscriptions/s/x".into())
        );
        let e = env(&[("MSI_ENDPOINT", "http://localhost:50342/oauth2/token")])
            .choose_credential()
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("Cloud Shell") && e.contains("AZURE_FEDERATED_TOKEN_FILE"),
            "{e}"
        );
    }
}
