//! Client credentials: how the app proves who it is.

mod assertion;
mod certificate;

use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};

use crate::error::{
    Cause, CredentialError, CredentialErrorKind as CK, FileProblem, Result, credential,
};

pub use certificate::{AssertionSigner, Certificate, SignFuture, SigningAlgorithm};

pub(crate) use assertion::build_assertion;

/// The client assertion type of RFC 7523.
pub(crate) const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// A client secret. Its `Debug` prints `[redacted]`; the value is zeroed on drop.
#[derive(Clone)]
pub struct ClientSecret(SecretString);

impl ClientSecret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> ClientSecret {
        ClientSecret(SecretString::from(value.into()))
    }

    /// Reads a secret from a file (one line; surrounding white space is
    /// trimmed). The file must not be readable by other users.
    pub fn from_file(path: impl AsRef<Path>) -> Result<ClientSecret> {
        let bytes = crate::files::read_secret_file(path.as_ref(), "client secret")?;
        let text = std::str::from_utf8(&bytes).map_err(|_| {
            CredentialError::new(
                CK::File(FileProblem::NotUtf8),
                format!(
                    "the client secret file '{}' is not UTF-8 text",
                    path.as_ref().display()
                ),
            )
            .with_path(path.as_ref())
        })?;
        Ok(ClientSecret::new(text.trim()))
    }

    pub(crate) fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientSecret([redacted])")
    }
}

/// How a client secret is sent to the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SecretAuthMethod {
    /// In the form body (`client_secret_post`), as MSAL does. The default.
    #[default]
    Post,
    /// In an `Authorization: Basic` header (`client_secret_basic`, RFC 6749 §2.3.1).
    Basic,
}

impl SecretAuthMethod {
    /// `post`/`client_secret_post` or `basic`/`client_secret_basic`
    /// (case-insensitive), or what is wrong with `s`.
    fn from_name(s: &str) -> std::result::Result<SecretAuthMethod, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "post" | "client_secret_post" => Ok(SecretAuthMethod::Post),
            "basic" | "client_secret_basic" => Ok(SecretAuthMethod::Basic),
            other => Err(format!(
                "client_secret_auth is '{other}'; use 'post' or 'basic'"
            )),
        }
    }
}

crate::setting::named_setting!(
    SecretAuthMethod,
    "client_secret_auth",
    "`post` or `basic` (or their OAuth names, `client_secret_post` and `client_secret_basic`), case-insensitive"
);

/// What an assertion callback is told about the request it signs for.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct AssertionContext {
    /// The app's client id (`iss` and `sub` of a client assertion).
    pub client_id: String,
    /// The token endpoint (`aud` of a client assertion).
    pub token_endpoint: String,
}

/// The future an assertion callback returns.
pub type AssertionFuture =
    Pin<Box<dyn Future<Output = Result<String, Box<dyn std::error::Error + Send + Sync>>> + Send>>;

type Callback = Arc<dyn Fn(AssertionContext) -> AssertionFuture + Send + Sync>;

/// How the app authenticates: a secret, a certificate, or a signed assertion
/// obtained elsewhere (a callback, or a file that a platform rotates).
#[derive(Clone)]
pub struct Credential {
    kind: Kind,
}

#[derive(Clone)]
enum Kind {
    Secret {
        secret: ClientSecret,
        /// `None`: as the provider's kind prefers (`Credential::secret`).
        method: Option<SecretAuthMethod>,
    },
    Certificate {
        certificate: Certificate,
        send_x5c: bool,
        algorithm: Option<SigningAlgorithm>,
    },
    Callback(Callback),
    File(PathBuf),
    /// The managed identity's own client (its cache refreshes the token
    /// half-way through its life, long before it expires).
    ManagedIdentity(Box<crate::client::ConfidentialClient>),
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Secret { method, .. } => write!(f, "Credential::Secret({method:?}, [redacted])"),
            Kind::Certificate {
                certificate,
                send_x5c,
                algorithm,
            } => f
                .debug_struct("Credential::Certificate")
                .field("thumbprint_sha1", &certificate.thumbprint_sha1_hex())
                .field("send_x5c", send_x5c)
                .field("algorithm", algorithm)
                .finish(),
            Kind::Callback(_) => f.write_str("Credential::AssertionCallback"),
            Kind::File(p) => write!(f, "Credential::AssertionFile({})", p.display()),
            Kind::ManagedIdentity(c) => write!(f, "Credential::ManagedIdentity({c:?})"),
        }
    }
}

impl Credential {
    /// A client secret, sent in the form body (`client_secret_post`) to
    /// Entra ID and AD FS, in an `Authorization: Basic` header
    /// (`client_secret_basic`) to a generic OpenID provider unless its
    /// metadata lists only `client_secret_post`.
    pub fn secret(secret: ClientSecret) -> Credential {
        Credential {
            kind: Kind::Secret {
                secret,
                method: None,
            },
        }
    }

    /// A client secret sent the given way.
    pub fn secret_with(secret: ClientSecret, method: SecretAuthMethod) -> Credential {
        Credential {
            kind: Kind::Secret {
                secret,
                method: Some(method),
            },
        }
    }

    /// A certificate: each token request sends a fresh client assertion
    /// (RFC 7523) signed with its key — PS256 with `x5t#S256` for Entra ID,
    /// RS256 with `x5t` for AD FS.
    pub fn certificate(certificate: Certificate) -> Credential {
        Credential {
            kind: Kind::Certificate {
                certificate,
                send_x5c: false,
                algorithm: None,
            },
        }
    }

    /// A certificate with options: `send_x5c` adds the certificate chain to
    /// each assertion (subject name + issuer authentication);
    /// `algorithm` overrides the authority's default.
    pub fn certificate_with(
        certificate: Certificate,
        send_x5c: bool,
        algorithm: Option<SigningAlgorithm>,
    ) -> Credential {
        Credential {
            kind: Kind::Certificate {
                certificate,
                send_x5c,
                algorithm,
            },
        }
    }

    /// A signed assertion produced by a callback on every token request (a
    /// token from another identity provider, a key vault signing service…).
    ///
    /// ```
    /// use apptoken::Credential;
    /// let cred = Credential::assertion_callback(|_ctx| async move {
    ///     Ok::<_, std::io::Error>("eyJ...".to_string())
    /// });
    /// # let _ = cred;
    /// ```
    pub fn assertion_callback<F, Fut, E>(callback: F) -> Credential
    where
        F: Fn(AssertionContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<String, E>> + Send + 'static,
        E: Into<Box<dyn std::error::Error + Send + Sync>> + 'static,
    {
        let cb: Callback = Arc::new(move |ctx| {
            let fut = callback(ctx);
            Box::pin(async move { fut.await.map_err(Into::into) })
        });
        Credential {
            kind: Kind::Callback(cb),
        }
    }

    /// A signed assertion read from a file on every token request: workload
    /// identity federation, where Kubernetes writes the service account token
    /// to `AZURE_FEDERATED_TOKEN_FILE` and rotates it.
    pub fn assertion_file(path: impl Into<PathBuf>) -> Credential {
        Credential {
            kind: Kind::File(path.into()),
        }
    }

    /// The app's client assertion is a token of this managed identity for
    /// Entra's token exchange (`api://AzureADTokenExchange`, or the national
    /// clouds' `…USGov`/`…China`, chosen from the token endpoint): the app
    /// registration holds a federated credential trusting the identity, so a
    /// multi-tenant app runs in Azure with no secret and no certificate
    /// (Microsoft.Identity.Web's `SignedAssertionFromManagedIdentity`).
    /// The identity's token is cached and refreshed by its own client.
    ///
    /// ```
    /// # fn demo() -> Result<(), apptoken::Error> {
    /// use apptoken::{Credential, ManagedIdentity, ManagedIdentityId};
    /// let identity = ManagedIdentity::from_env(ManagedIdentityId::ClientId("9c2ad8a8-…".into()))?;
    /// let credential = Credential::managed_identity(identity)?;
    /// # let _ = credential; Ok(()) }
    /// ```
    ///
    /// # Errors
    /// Those of [`crate::ConfidentialClientBuilder::build`] for the identity.
    pub fn managed_identity(identity: crate::ManagedIdentity) -> Result<Credential> {
        let client = crate::client::ConfidentialClient::builder()
            .managed_identity(identity)
            .build()?;
        Ok(Credential::managed_identity_client(client))
    }

    /// As [`Credential::managed_identity`], with a managed identity's client
    /// built by the caller (its clock, timeout or cache bound).
    pub fn managed_identity_client(client: crate::client::ConfidentialClient) -> Credential {
        Credential {
            kind: Kind::ManagedIdentity(Box::new(client)),
        }
    }

    /// The certificate, for certificate credentials.
    pub fn certificate_ref(&self) -> Option<&Certificate> {
        match &self.kind {
            Kind::Certificate { certificate, .. } => Some(certificate),
            _ => None,
        }
    }

    /// Produces what the token request carries to authenticate the client.
    pub(crate) async fn authenticate(
        &self,
        ctx: AssertionContext,
        default_algorithm: SigningAlgorithm,
        default_secret: SecretAuthMethod,
        now: time::OffsetDateTime,
    ) -> Result<ClientAuth> {
        match &self.kind {
            Kind::Secret { secret, method } => Ok(match method.unwrap_or(default_secret) {
                SecretAuthMethod::Post => ClientAuth::Secret(secret.clone()),
                SecretAuthMethod::Basic => ClientAuth::Basic(secret.clone()),
            }),
            Kind::Certificate {
                certificate,
                send_x5c,
                algorithm,
            } => {
                let alg = algorithm.unwrap_or(default_algorithm);
                let jwt = build_assertion(certificate, alg, *send_x5c, &ctx, now).await?;
                Ok(ClientAuth::Assertion(jwt))
            }
            Kind::Callback(cb) => {
                let jwt = cb(ctx).await.map_err(|e| {
                    CredentialError::new(CK::Callback, "the assertion callback failed")
                        .with_cause(Cause::from(e))
                })?;
                let jwt = jwt.trim().to_string();
                check_assertion_shape(&jwt, "the assertion callback")?;
                Ok(ClientAuth::Assertion(SecretString::from(jwt)))
            }
            Kind::File(path) => {
                let jwt = read_assertion_file(path).await?;
                Ok(ClientAuth::Assertion(jwt))
            }
            Kind::ManagedIdentity(client) => {
                let audience = exchange_scope(&ctx.token_endpoint);
                let token = client.acquire_token(&[audience]).await.map_err(|e| {
                    CredentialError::new(
                        CK::ManagedIdentity,
                        format!(
                            "the managed identity gave no token for the federated credential ({audience})"
                        ),
                    )
                    .with_cause(Arc::new(e))
                })?;
                Ok(ClientAuth::Assertion(SecretString::from(
                    token.secret().to_string(),
                )))
            }
        }
    }
}

/// Entra's token-exchange scope for the cloud of `token_endpoint`.
fn exchange_scope(token_endpoint: &str) -> &'static str {
    let host = url::Url::parse(token_endpoint)
        .ok()
        .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
        .unwrap_or_default();
    if host.ends_with("microsoftonline.us") {
        "api://AzureADTokenExchangeUSGov/.default"
    } else if host.ends_with("chinacloudapi.cn") {
        "api://AzureADTokenExchangeChina/.default"
    } else {
        "api://AzureADTokenExchange/.default"
    }
}

async fn read_assertion_file(path: &Path) -> Result<SecretString> {
    let bytes = tokio::fs::read(path).await.map_err(|e| {
        CredentialError::new(
            CK::File(FileProblem::Unreadable),
            format!("cannot read the federated token file '{}'", path.display()),
        )
        .with_path(path)
        .with_source(e)
    })?;
    let bytes = zeroize::Zeroizing::new(bytes);
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| {
            CredentialError::new(
                CK::File(FileProblem::NotUtf8),
                format!(
                    "the federated token file '{}' is not UTF-8 text",
                    path.display()
                ),
            )
            .with_path(path)
        })?
        .trim();
    check_assertion_shape(
        text,
        &format!("the federated token file '{}'", path.display()),
    )?;
    Ok(SecretString::from(text.to_string()))
}

/// A cheap sanity check (three base64url segments) so that an empty or
/// truncated assertion is reported here, not as a server error.
fn check_assertion_shape(jwt: &str, source: &str) -> Result<()> {
    if jwt.is_empty() {
        return Err(credential(
            CK::Malformed,
            format!("{source} gave an empty assertion"),
        ));
    }
    let parts: Vec<&str> = jwt.split('.').collect();
    let b64url = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'=')
    };
    if parts.len() != 3 || !parts.iter().all(|p| b64url(p)) {
        return Err(credential(
            CK::Malformed,
            format!(
                "{source} did not give a JWT (expected three base64url segments separated by dots)"
            ),
        ));
    }
    Ok(())
}

/// How one token request authenticates the client.
pub(crate) enum ClientAuth {
    Secret(ClientSecret),
    Basic(ClientSecret),
    Assertion(SecretString),
}

impl ClientAuth {
    /// Adds the form fields and returns the `Authorization` header value, if any.
    pub(crate) fn apply(
        &self,
        client_id: &str,
        form: &mut Vec<(&'static str, String)>,
    ) -> Option<SecretString> {
        match self {
            ClientAuth::Secret(s) => {
                form.push(("client_secret", s.expose().to_string()));
                None
            }
            ClientAuth::Basic(s) => {
                use base64::Engine;
                let enc = |v: &str| {
                    url::form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>()
                };
                let raw =
                    zeroize::Zeroizing::new(format!("{}:{}", enc(client_id), enc(s.expose())));
                let b64 = base64::engine::general_purpose::STANDARD.encode(raw.as_bytes());
                Some(SecretString::from(format!("Basic {b64}")))
            }
            ClientAuth::Assertion(jwt) => {
                form.push(("client_assertion_type", JWT_BEARER.to_string()));
                form.push(("client_assertion", jwt.expose_secret().to_string()));
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_exchange_audience_follows_the_cloud() {
        for (endpoint, want) in [
            (
                "https://login.microsoftonline.com/t/oauth2/v2.0/token",
                "api://AzureADTokenExchange/.default",
            ),
            (
                "https://westus2.login.microsoft.com/t/oauth2/v2.0/token",
                "api://AzureADTokenExchange/.default",
            ),
            (
                "https://login.microsoftonline.us/t/oauth2/v2.0/token",
                "api://AzureADTokenExchangeUSGov/.default",
            ),
            (
                "https://login.chinacloudapi.cn/t/oauth2/v2.0/token",
                "api://AzureADTokenExchangeChina/.default",
            ),
            (
                "http://127.0.0.1:8080/t/oauth2/v2.0/token",
                "api://AzureADTokenExchange/.default",
            ),
            ("not a url", "api://AzureADTokenExchange/.default"),
        ] {
            assert_eq!(exchange_scope(endpoint), want, "{endpoint}");
        }
    }

    #[test]
    fn debug_never_shows_secrets() {
        let s = ClientSecret::new("super-secret-value");
        assert_eq!(format!("{s:?}"), "ClientSecret([redacted])");
        let c = Credential::secret(s);
        assert!(!format!("{c:?}").contains("super-secret"));
    }

    #[test]
    fn assertion_shape() {
        assert!(check_assertion_shape("a.b.c", "x").is_ok());
        assert!(check_assertion_shape("", "x").is_err());
        assert!(check_assertion_shape("a.b", "x").is_err());
        assert!(check_assertion_shape("a.b c.d", "x").is_err());
    }

    #[tokio::test]
    async fn assertion_file_is_reread_every_time() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "aaa.bbb.ccc\n").unwrap();
        let cred = Credential::assertion_file(&path);
        let ctx = AssertionContext {
            client_id: "c".into(),
            token_endpoint: "https://x/token".into(),
        };
        let now = time::OffsetDateTime::now_utc();
        let first = cred
            .authenticate(
                ctx.clone(),
                SigningAlgorithm::Ps256,
                SecretAuthMethod::Post,
                now,
            )
            .await
            .unwrap();
        std::fs::write(&path, "ddd.eee.fff").unwrap();
        let second = cred
            .authenticate(
                ctx.clone(),
                SigningAlgorithm::Ps256,
                SecretAuthMethod::Post,
                now,
            )
            .await
            .unwrap();
        let get = |a: ClientAuth| match a {
            ClientAuth::Assertion(s) => s.expose_secret().to_string(),
            _ => unreachable!("file credentials give assertions"),
        };
        assert_eq!(get(first), "aaa.bbb.ccc");
        assert_eq!(get(second), "ddd.eee.fff");
        std::fs::write(&path, "").unwrap();
        let e = cred
            .authenticate(
                ctx.clone(),
                SigningAlgorithm::Ps256,
                SecretAuthMethod::Post,
                now,
            )
            .await
            .err()
            .unwrap();
        assert!(e.to_string().contains("empty"), "{e}");
        std::fs::remove_file(&path).unwrap();
        let e = cred
            .authenticate(ctx, SigningAlgorithm::Ps256, SecretAuthMethod::Post, now)
            .await
            .err()
            .unwrap();
        assert!(e.to_string().contains("cannot read"), "{e}");
    }
}
