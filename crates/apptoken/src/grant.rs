//! The client credentials grant (RFC 6749 §4.4) over HTTP: discovery, client
//! authentication (secret, certificate assertion, assertion callback), the
//! token endpoint with its regional form, and the parsing of its answer.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;
use tracing::{Instrument, debug, info_span, warn};

use crate::authority::{Authority, AuthorityKind};
use crate::clock::Clock;
use crate::credential::{AssertionContext, Credential, SigningAlgorithm};
use crate::discovery::{self, Metadata};
use crate::error::{Error, Result};
use crate::http::Http;
use crate::source::{SourceFuture, SourceRequest, TokenResponse, TokenSource};

/// The client credentials grant (RFC 6749 §4.4) over HTTP: discovery, client
/// authentication, the token endpoint.
pub(crate) struct ClientCredentialsSource {
    pub(crate) http: Http,
    /// An Azure region (`westus2`): token requests go to the regional host
    /// first, and to the global one when it fails.
    pub(crate) region: Option<String>,
    /// Swappable: a rotated credential is used from the next request.
    pub(crate) credential: Arc<std::sync::RwLock<Credential>>,
    pub(crate) discovery: discovery::DiscoveryCache,
    pub(crate) clock: Arc<dyn Clock>,
    /// A generic provider's lifetime for answers without `expires_in`.
    pub(crate) default_lifetime: Duration,
}

impl fmt::Debug for ClientCredentialsSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCredentialsSource")
            .field(
                "credential",
                &*self.credential.read().unwrap_or_else(|p| p.into_inner()),
            )
            .finish_non_exhaustive()
    }
}

impl TokenSource for ClientCredentialsSource {
    fn request_token<'a>(&'a self, request: SourceRequest<'a>) -> SourceFuture<'a> {
        let span = info_span!(
            "token_request",
            client_id = request.client_id,
            tenant = request.authority.tenant(),
            scope = %request.scopes.as_param(),
            client_request_id = request.correlation_id,
        );
        Box::pin(self.request(request).instrument(span))
    }
}

impl ClientCredentialsSource {
    async fn metadata(&self, authority: &Authority, client_request_id: &str) -> Result<Metadata> {
        let url = authority.discovery_url();
        if let Some(m) = self.discovery.get(&url, self.clock.now()) {
            return Ok(m);
        }
        let m = match authority.kind() {
            AuthorityKind::Oidc => {
                discovery::fetch_oidc(&self.http, authority, client_request_id).await?
            }
            _ => discovery::fetch(&self.http, &url, client_request_id).await?,
        };
        self.discovery.insert(url, m.clone(), self.clock.now());
        Ok(m)
    }

    async fn request(&self, request: SourceRequest<'_>) -> Result<TokenResponse> {
        let metadata = self
            .metadata(request.authority, request.correlation_id)
            .await?;
        let ctx = AssertionContext {
            client_id: request.client_id.to_string(),
            token_endpoint: metadata.token_endpoint.clone(),
        };
        let default_alg = match request.authority.kind() {
            AuthorityKind::Entra => SigningAlgorithm::Ps256,
            _ => SigningAlgorithm::Rs256,
        };
        let default_secret = default_secret_method(request.authority.kind(), &metadata);
        let credential = self
            .credential
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let auth = credential
            .authenticate(ctx, default_alg, default_secret, self.clock.now())
            .await?;
        let form = request_form(request);
        let mut form = form;
        let authorization = auth.apply(request.client_id, &mut form);
        let regional = self
            .region
            .as_deref()
            .and_then(|r| regional_endpoint(&metadata.token_endpoint, r));
        let mut resp = None;
        if let Some(endpoint) = &regional {
            debug!(token_endpoint = %endpoint, "requesting a token from the regional endpoint");
            let r = self
                .http
                .post_form(
                    endpoint,
                    &form,
                    authorization.as_ref(),
                    request.correlation_id,
                )
                .await;
            match r {
                Ok(r) if r.status < 500 => resp = Some(Ok(r)),
                Ok(r) => warn!(
                    status = r.status,
                    "the regional endpoint failed; falling back to the global one"
                ),
                Err(e) => {
                    warn!(error = %e, "the regional endpoint is unreachable; falling back to the global one")
                }
            }
        }
        let resp = match resp {
            Some(r) => r,
            None => {
                debug!(token_endpoint = %metadata.token_endpoint, "requesting a token");
                self.http
                    .post_form(
                        &metadata.token_endpoint,
                        &form,
                        authorization.as_ref(),
                        request.correlation_id,
                    )
                    .await
            }
        };
        // The form holds the secret or assertion: wipe it.
        for (_, v) in form.iter_mut() {
            zeroize::Zeroize::zeroize(v);
        }
        let resp = resp?;
        if !(200..300).contains(&resp.status) {
            let e = resp.into_server_error();
            debug!(error = %e, "token request refused");
            return Err(e);
        }
        let default =
            (request.authority.kind() == AuthorityKind::Oidc).then_some(self.default_lifetime);
        let token = parse_token_answer(&resp.body, &resp.url, resp.status, default)?;
        debug!(expires_in = token.expires_in.as_secs(), "token received");
        Ok(token)
    }
}

/// The regional form of a token endpoint: `login.microsoftonline.com`
/// becomes `{region}.login.microsoft.com` (as MSAL and Azure Identity build
/// it); any other host gets the region as a first label. Scheme, port and
/// path are kept.
pub(crate) fn regional_endpoint(token_endpoint: &str, region: &str) -> Option<String> {
    let mut url = url::Url::parse(token_endpoint).ok()?;
    let host = url.host_str()?.to_ascii_lowercase();
    if url
        .host()
        .is_some_and(|h| !matches!(h, url::Host::Domain(_)))
    {
        return None; // an IP address has no regional form
    }
    let regional = if host == "login.microsoftonline.com" || host == "login.windows.net" {
        format!("{region}.login.microsoft.com")
    } else {
        format!("{region}.{host}")
    };
    url.set_host(Some(&regional)).ok()?;
    Some(url.to_string())
}

/// How a secret is sent when the configuration does not say: in the form
/// for Entra ID and AD FS (as MSAL does); for a generic provider
/// `client_secret_basic`, RFC 6749's default and the one every provider
/// must support, unless its metadata lists `client_secret_post` and not
/// `client_secret_basic`.
pub(crate) fn default_secret_method(
    kind: AuthorityKind,
    metadata: &Metadata,
) -> crate::SecretAuthMethod {
    use crate::SecretAuthMethod::{Basic, Post};
    if kind != AuthorityKind::Oidc {
        return Post;
    }
    let listed = |m: &str| metadata.auth_methods.iter().any(|a| a == m);
    if !listed("client_secret_basic") && listed("client_secret_post") {
        Post
    } else {
        Basic
    }
}

/// Reads a successful token answer. Numbers may come as JSON numbers or
/// strings of digits (AD FS and Entra's v1 endpoint send strings).
pub(crate) fn parse_token_response(body: &[u8], url: &str, status: u16) -> Result<TokenResponse> {
    parse_token_answer(body, url, status, None)
}

/// [`parse_token_response`], with the lifetime taken when the answer has
/// no `expires_in` (a generic provider's; `None`: it is an error).
pub(crate) fn parse_token_answer(
    body: &[u8],
    url: &str,
    status: u16,
    default_lifetime: Option<Duration>,
) -> Result<TokenResponse> {
    let invalid = |message: &str| Error::InvalidResponse {
        url: url.to_string(),
        status,
        message: message.to_string(),
    };
    // Never quote the body: it holds the token.
    let doc: serde_json::Value =
        serde_json::from_slice(body).map_err(|_| invalid("the token answer is not JSON"))?;
    let obj = doc
        .as_object()
        .ok_or_else(|| invalid("the token answer is not a JSON object"))?;
    let token = obj
        .get("access_token")
        .and_then(|v| v.as_str())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| invalid("the token answer has no access_token"))?;
    let token_type = match obj.get("token_type") {
        None => "Bearer".to_string(),
        Some(v) => v
            .as_str()
            .filter(|s| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
            .ok_or_else(|| invalid("the token answer's token_type is not a word"))?
            .to_string(),
    };
    // "Bearer" in any case is sent back as "Bearer" (RFC 6750 header
    // scheme). Anything else (DPoP, PoP, MAC) is bound to a key this client
    // does not hold, so it could not be used: refused, never passed on.
    let token_type = if token_type.eq_ignore_ascii_case("bearer") {
        "Bearer".to_string()
    } else {
        return Err(invalid(&format!(
            "the token answer's token_type is '{}', not Bearer: apptoken uses bearer tokens \
             only (RFC 6750); a proof-of-possession token cannot be sent as one",
            token_type.chars().take(32).collect::<String>()
        )));
    };
    // A number of seconds: not negative; any size (the client clamps
    // lifetimes to MIN_LIFETIME..=MAX_LIFETIME and logs it, see limits.rs).
    let seconds = |name: &str| -> Result<Option<u64>> {
        match obj.get(name) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(v) => {
                let n = v
                    .as_u64()
                    .or_else(|| v.as_i64().filter(|n| *n >= 0).map(|n| n as u64))
                    .or_else(|| {
                        v.as_f64()
                            .filter(|f| f.is_finite() && *f >= 0.0)
                            .map(|f| f as u64)
                    })
                    .or_else(|| v.as_str().and_then(|s| s.trim().parse::<u64>().ok()));
                match n {
                    Some(n) => Ok(Some(n)),
                    None => Err(invalid(&format!(
                        "the token answer's {name} is not a number of seconds"
                    ))),
                }
            }
        }
    };
    let expires_in = match (seconds("expires_in")?, default_lifetime) {
        (Some(s), _) => s,
        (None, Some(d)) => d.as_secs(),
        (None, None) => return Err(invalid("the token answer has no expires_in")),
    };
    Ok(TokenResponse {
        access_token: SecretString::from(token.to_string()),
        token_type,
        expires_in: Duration::from_secs(expires_in),
        ext_expires_in: seconds("ext_expires_in")?.map(Duration::from_secs),
        refresh_in: seconds("refresh_in")?.map(Duration::from_secs),
    })
}

/// The grant's parameters before client authentication: `scope` (left out
/// when a generic provider is left to its default scopes), one `resource`
/// per indicator (RFC 8707), `audience`, `claims`.
fn request_form(request: SourceRequest<'_>) -> Vec<(&'static str, String)> {
    let mut form: Vec<(&'static str, String)> = vec![
        ("grant_type", "client_credentials".into()),
        ("client_id", request.client_id.to_string()),
    ];
    let scopes = request.scopes;
    if !scopes.as_slice().is_empty() {
        form.push(("scope", scopes.as_param()));
    }
    for r in scopes.resources() {
        form.push(("resource", r.clone()));
    }
    if let Some(a) = scopes.audience() {
        form.push(("audience", a.to_string()));
    }
    if let Some(claims) = request.claims {
        form.push(("claims", claims.to_string()));
    }
    form
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scope::Scopes;

    #[test]
    fn regional_endpoints() {
        assert_eq!(
            regional_endpoint(
                "https://login.microsoftonline.com/t/oauth2/v2.0/token",
                "westus2"
            )
            .as_deref(),
            Some("https://westus2.login.microsoft.com/t/oauth2/v2.0/token")
        );
        assert_eq!(
            regional_endpoint(
                "https://login.microsoftonline.com:8443/t/oauth2/v2.0/token",
                "eastus"
            )
            .as_deref(),
            Some("https://eastus.login.microsoft.com:8443/t/oauth2/v2.0/token")
        );
        assert_eq!(
            regional_endpoint(
                "https://login.microsoftonline.us/t/oauth2/v2.0/token",
                "usgovvirginia"
            )
            .as_deref(),
            Some("https://usgovvirginia.login.microsoftonline.us/t/oauth2/v2.0/token")
        );
        assert_eq!(
            regional_endpoint("http://127.0.0.1:9/t/token", "westus2"),
            None
        );
    }

    #[test]
    fn token_answers() {
        let t = parse_token_response(
            br#"{"token_type":"Bearer","expires_in":3599,"ext_expires_in":3599,"access_token":"abc"}"#,
            "u",
            200,
        )
        .unwrap();
        assert_eq!(t.secret(), "abc");
        assert_eq!(t.expires_in, Duration::from_secs(3599));
        assert_eq!(t.refresh_in, None);
        let t = parse_token_response(
            br#"{"expires_in":"7200","refresh_in":3600,"access_token":"abc","token_type":"bearer"}"#,
            "u",
            200,
        )
        .unwrap();
        assert_eq!(t.refresh_in, Some(Duration::from_secs(3600)));
        assert_eq!(t.token_type, "Bearer");
        assert!(!format!("{t:?}").contains("abc"));
        // Absurd but numeric lifetimes parse; the client clamps them (limits.rs).
        for (body, want) in [
            (&br#"{"access_token":"a","expires_in":0}"#[..], 0),
            (
                br#"{"access_token":"a","expires_in":18446744073709551615}"#,
                u64::MAX,
            ),
            (br#"{"access_token":"a","expires_in":1e300}"#, u64::MAX),
            (
                br#"{"access_token":"a","expires_in":"99999999999999"}"#,
                99_999_999_999_999,
            ),
        ] {
            let t = parse_token_response(body, "u", 200).unwrap();
            assert_eq!(t.expires_in, Duration::from_secs(want));
        }
    }

    #[test]
    fn the_form_carries_the_whole_target() {
        let form = |authority: &Authority, scopes: &Scopes| {
            request_form(SourceRequest {
                authority,
                client_id: "app",
                scopes,
                correlation_id: "c",
                claims: None,
            })
        };
        let entra = Authority::parse("https://login.example/t.example").unwrap();
        let f = form(&entra, &Scopes::new(["api://x/.default"]).unwrap());
        assert_eq!(
            f,
            [
                ("grant_type", "client_credentials".to_string()),
                ("client_id", "app".into()),
                ("scope", "api://x/.default".into()),
            ]
        );
        let okta = Authority::oidc("https://idp.example/oauth2/default").unwrap();
        let target = Scopes::for_request(
            AuthorityKind::Oidc,
            &["orders:write orders:read"],
            &["https://b.example/".into(), "https://a.example/".into()],
            Some("api://orders"),
        )
        .unwrap();
        let f = form(&okta, &target);
        assert_eq!(
            f[2..],
            [
                ("scope", "orders:write orders:read".to_string()),
                ("resource", "https://a.example/".into()),
                ("resource", "https://b.example/".into()),
                ("audience", "api://orders".into()),
            ]
        );
        // No scope at all: the provider's default; no empty `scope=`.
        let bare = Scopes::for_request::<&str>(AuthorityKind::Oidc, &[], &[], Some("a")).unwrap();
        assert!(form(&okta, &bare).iter().all(|(k, _)| *k != "scope"));
    }

    #[test]
    fn bad_token_answers_never_quote_the_body() {
        for (body, want) in [
            (&br#"not json secret-token"#[..], "not JSON"),
            (br#"["secret-token"]"#, "not a JSON object"),
            (br#"{"expires_in":3600}"#, "no access_token"),
            (
                br#"{"access_token":"","expires_in":3600}"#,
                "no access_token",
            ),
            (br#"{"access_token":"secret-token"}"#, "no expires_in"),
            (
                br#"{"access_token":"secret-token","expires_in":"soon"}"#,
                "expires_in is not",
            ),
            (
                br#"{"access_token":"secret-token","expires_in":-5}"#,
                "expires_in is not",
            ),
            (
                br#"{"access_token":"secret-token","expires_in":-1e300}"#,
                "expires_in is not",
            ),
            (
                br#"{"access_token":"secret-token","expires_in":"-0"}"#,
                "expires_in is not",
            ),
            (
                br#"{"access_token":"secret-token","expires_in":60,"token_type":"a b"}"#,
                "token_type",
            ),
            (
                br#"{"access_token":"secret-token","expires_in":60,"token_type":"DPoP"}"#,
                "token_type is 'DPoP', not Bearer",
            ),
            (
                br#"{"access_token":"secret-token","expires_in":60,"refresh_in":"x"}"#,
                "refresh_in",
            ),
        ] {
            let e = parse_token_response(body, "u", 200)
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{e}");
            assert!(!e.contains("secret-token"), "{e}");
        }
    }
}
