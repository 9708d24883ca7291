//! Authorities: where tokens come from.

use std::fmt;
use std::net::IpAddr;

use url::Url;

use crate::error::{AuthorityError, AuthorityErrorKind as AK, Result, authority};

/// The national clouds of Microsoft Entra ID, and any other host.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloudInstance {
    /// `https://login.microsoftonline.com`
    AzurePublic,
    /// `https://login.microsoftonline.us`
    AzureUsGovernment,
    /// `https://login.chinacloudapi.cn`
    AzureChina,
    /// Any other Entra-compatible host (`https://login.example`, or the local
    /// emulator at `http://127.0.0.1:PORT`).
    Custom(String),
}

impl CloudInstance {
    /// The host's base URL.
    pub fn host_url(&self) -> &str {
        match self {
            CloudInstance::AzurePublic => "https://login.microsoftonline.com",
            CloudInstance::AzureUsGovernment => "https://login.microsoftonline.us",
            CloudInstance::AzureChina => "https://login.chinacloudapi.cn",
            CloudInstance::Custom(h) => h,
        }
    }

    /// Parses a cloud by name (`AzurePublic`, `AzureUsGovernment`,
    /// `AzureChina`, case-insensitive, also `public`, `usgov`, `china`) or a
    /// host URL.
    pub fn parse(s: &str) -> Result<CloudInstance> {
        let t = s.trim();
        match t.to_ascii_lowercase().as_str() {
            "azurepublic" | "azurepubliccloud" | "public" => return Ok(CloudInstance::AzurePublic),
            "azureusgovernment" | "azureusgovernmentcloud" | "usgov" | "usgovernment" => {
                return Ok(CloudInstance::AzureUsGovernment);
            }
            "azurechina" | "azurechinacloud" | "china" => return Ok(CloudInstance::AzureChina),
            _ => {}
        }
        let url = parse_host_url(t)?;
        let s = url.as_str().trim_end_matches('/').to_string();
        Ok(match s.as_str() {
            "https://login.microsoftonline.com" => CloudInstance::AzurePublic,
            "https://login.microsoftonline.us" => CloudInstance::AzureUsGovernment,
            "https://login.chinacloudapi.cn" => CloudInstance::AzureChina,
            _ => CloudInstance::Custom(s),
        })
    }
}

/// What kind of identity provider an authority is; it decides the discovery
/// address and how client assertions are signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuthorityKind {
    /// Microsoft Entra ID (or a compatible host such as the emulator): tenant
    /// in the path, discovery at `/{tenant}/v2.0/.well-known/openid-configuration`.
    Entra,
    /// AD FS: discovery at `/adfs/.well-known/openid-configuration`; client
    /// assertions are signed RS256 with a SHA-1 `x5t`.
    Adfs,
    /// Any OpenID Connect provider, found through its issuer's discovery document.
    Oidc,
    /// The host's managed-identity endpoint (IMDS, App Service, Azure Arc):
    /// the authority of a client built with
    /// [`crate::ConfidentialClientBuilder::managed_identity`]. Its scopes
    /// follow Entra's rule.
    ManagedIdentity,
}

/// An identity provider address and, for Entra ID, the tenant.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Authority {
    kind: AuthorityKind,
    /// Scheme, host, port and any path prefix, without a trailing slash.
    host: String,
    /// The tenant (Entra), `adfs` (AD FS) or empty (OIDC: the issuer is `host`).
    tenant: String,
    /// OIDC: the issuer exactly as configured (a trailing `/` kept, as
    /// Auth0's issuers have one), which the discovery document must name.
    /// Empty for the other kinds.
    issuer: String,
}

impl fmt::Debug for Authority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Authority({:?}, {})", self.kind, self.url())
    }
}

impl fmt::Display for Authority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.url())
    }
}

impl Authority {
    /// An Entra ID authority: a cloud and a tenant (GUID, domain name such as
    /// `contoso.onmicrosoft.com`, or `organizations`).
    ///
    /// `common` and `consumers` are refused: an app-only token is issued by
    /// one directory, so the tenant must name it.
    ///
    /// ```
    /// use apptoken::{Authority, CloudInstance};
    /// let a = Authority::entra(CloudInstance::AzurePublic, "contoso.onmicrosoft.com")?;
    /// assert_eq!(a.url(), "https://login.microsoftonline.com/contoso.onmicrosoft.com");
    /// assert!(Authority::entra(CloudInstance::AzurePublic, "common").is_err());
    /// # Ok::<(), apptoken::Error>(())
    /// ```
    pub fn entra(cloud: CloudInstance, tenant: &str) -> Result<Authority> {
        let url = parse_host_url(cloud.host_url())?;
        let host = url.as_str().trim_end_matches('/').to_string();
        let tenant = validate_tenant(tenant)?;
        Ok(Authority {
            kind: AuthorityKind::Entra,
            host,
            tenant,
            issuer: String::new(),
        })
    }

    /// An Entra ID authority from a host URL (`AZURE_AUTHORITY_HOST`) and a tenant.
    pub fn from_host(host: &str, tenant: &str) -> Result<Authority> {
        Authority::entra(CloudInstance::parse(host)?, tenant)
    }

    /// Parses a full authority URL: `https://login.microsoftonline.com/{tenant}`
    /// (Entra), `https://adfs.contoso.com/adfs` (AD FS).
    pub fn parse(authority_url: &str) -> Result<Authority> {
        let url = parse_any_url(authority_url)?;
        let segments: Vec<&str> = url
            .path_segments()
            .map(|s| s.filter(|p| !p.is_empty()).collect())
            .unwrap_or_default();
        let mut base = url.clone();
        base.set_path("");
        let host = base.as_str().trim_end_matches('/').to_string();
        match segments.as_slice() {
            [t] if t.eq_ignore_ascii_case("adfs") => Ok(Authority {
                kind: AuthorityKind::Adfs,
                host,
                tenant: "adfs".into(),
                issuer: String::new(),
            }),
            [t] | [t, "v2.0"] => Ok(Authority {
                kind: AuthorityKind::Entra,
                host,
                tenant: validate_tenant(t)?,
                issuer: String::new(),
            }),
            [] => Err(authority(
                AK::Malformed,
                format!(
                    "'{authority_url}' names no tenant; write it as {host}/<tenant id or domain>"
                ),
            )),
            _ => Err(authority(
                AK::Malformed,
                format!(
                    "'{authority_url}' is not of the form https://<host>/<tenant> (or https://<host>/adfs)"
                ),
            )),
        }
    }

    /// A generic OpenID Connect provider, by issuer URL. Its token endpoint is
    /// read from `{issuer}/.well-known/openid-configuration`.
    pub fn oidc(issuer: &str) -> Result<Authority> {
        let url = parse_any_url(issuer)?;
        Ok(Authority {
            kind: AuthorityKind::Oidc,
            host: url.as_str().trim_end_matches('/').to_string(),
            tenant: String::new(),
            issuer: issuer.trim().to_string(),
        })
    }

    /// A managed-identity endpoint as an authority (no tenant, no discovery).
    pub(crate) fn managed_identity(endpoint: &str) -> Authority {
        Authority {
            kind: AuthorityKind::ManagedIdentity,
            host: endpoint.trim_end_matches('/').to_string(),
            tenant: String::new(),
            issuer: String::new(),
        }
    }

    /// The same identity provider with another tenant (Entra only).
    pub fn with_tenant(&self, tenant: &str) -> Result<Authority> {
        match self.kind {
            AuthorityKind::Entra => Ok(Authority {
                kind: self.kind,
                host: self.host.clone(),
                tenant: validate_tenant(tenant)?,
                issuer: String::new(),
            }),
            other => Err(authority(
                AK::PerRequestTenant,
                format!("a tenant cannot be chosen per request on a {other:?} authority ({self})"),
            )),
        }
    }

    /// The kind of provider.
    pub fn kind(&self) -> AuthorityKind {
        self.kind
    }

    /// Scheme, host and port (and path prefix), without a trailing slash.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The tenant (`adfs` for AD FS, empty for a generic OIDC provider).
    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    /// The authority URL (`{host}/{tenant}`).
    pub fn url(&self) -> String {
        if self.tenant.is_empty() {
            self.host.clone()
        } else {
            format!("{}/{}", self.host, self.tenant)
        }
    }

    /// The issuer as configured, for a generic OpenID Connect provider.
    pub fn issuer(&self) -> Option<&str> {
        (self.kind == AuthorityKind::Oidc).then_some(self.issuer.as_str())
    }

    /// Where the metadata of a generic provider may be, in the order they
    /// are tried: OpenID's `{issuer}/.well-known/openid-configuration`, then
    /// RFC 8414's `/.well-known/oauth-authorization-server` inserted between
    /// the host and the issuer's path, then appended to the issuer (as some
    /// providers serve it). Other kinds have one: [`Self::discovery_url`].
    pub(crate) fn discovery_urls(&self) -> Vec<String> {
        let mut urls = vec![self.discovery_url()];
        if self.kind != AuthorityKind::Oidc {
            return urls;
        }
        if let Ok(u) = Url::parse(&self.host) {
            let path = u.path().trim_end_matches('/');
            let mut origin = u.clone();
            origin.set_path("");
            let origin = origin.as_str().trim_end_matches('/').to_string();
            urls.push(format!(
                "{origin}/.well-known/oauth-authorization-server{path}"
            ));
            if !path.is_empty() {
                urls.push(format!(
                    "{}/.well-known/oauth-authorization-server",
                    self.host
                ));
            }
        }
        urls
    }

    /// Where the OpenID discovery document is.
    pub fn discovery_url(&self) -> String {
        match self.kind {
            AuthorityKind::Entra => format!(
                "{}/{}/v2.0/.well-known/openid-configuration",
                self.host, self.tenant
            ),
            AuthorityKind::Adfs => format!("{}/adfs/.well-known/openid-configuration", self.host),
            AuthorityKind::Oidc => format!("{}/.well-known/openid-configuration", self.host),
            // A managed-identity endpoint has no discovery document.
            AuthorityKind::ManagedIdentity => self.host.clone(),
        }
    }

    /// The admin consent URL an ISV sends to a customer's administrator.
    pub fn admin_consent_url(&self, client_id: &str, redirect_uri: Option<&str>) -> String {
        let mut url = format!("{}/{}/adminconsent", self.host, self.tenant);
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        q.append_pair("client_id", client_id);
        if let Some(r) = redirect_uri {
            q.append_pair("redirect_uri", r);
        }
        url.push('?');
        url.push_str(&q.finish());
        url
    }
}

fn parse_any_url(s: &str) -> Result<Url> {
    let url = Url::parse(s.trim()).map_err(|e| {
        AuthorityError::new(AK::NotAUrl, format!("'{s}' is not a URL")).with_source(e)
    })?;
    check_scheme(&url, s)?;
    if url.query().is_some() || url.fragment().is_some() {
        return Err(authority(
            AK::NotAUrl,
            format!("'{s}' must not have a query or fragment"),
        ));
    }
    Ok(url)
}

fn parse_host_url(s: &str) -> Result<Url> {
    let url = parse_any_url(s)?;
    Ok(url)
}

fn check_scheme(url: &Url, original: &str) -> Result<()> {
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(url) => Ok(()),
        "http" => Err(authority(
            AK::Insecure,
            format!(
                "'{original}' uses http; an authority must use https (plain http is allowed only on loopback addresses, for local emulators)"
            ),
        )),
        other => Err(authority(
            AK::Insecure,
            format!("'{original}' has scheme '{other}'; an authority must use https"),
        )),
    }
}

/// Whether a URL points at this machine (127.0.0.0/8, ::1, localhost):
/// where plain http is allowed (a local emulator, a test API), since the
/// secrets and tokens it carries never leave the machine. A host name other
/// than `localhost` is not loopback, whatever it resolves to, nor is an
/// IPv4-mapped address (`::ffff:127.0.0.1`).
pub(crate) fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// Checks a tenant for the client credentials grant and returns it as given.
pub(crate) fn validate_tenant(tenant: &str) -> Result<String> {
    check_tenant(tenant)?;
    let t = tenant.trim();
    if t.eq_ignore_ascii_case("organizations") {
        return Ok(t.to_ascii_lowercase());
    }
    Ok(t.to_string())
}

/// Checks a tenant without allocating (the cache's hot path).
pub(crate) fn check_tenant(tenant: &str) -> Result<()> {
    let t = tenant.trim();
    if t.is_empty() {
        return Err(authority(
            AK::Tenant,
            "the tenant is empty; give the directory's tenant id (a GUID) or a verified domain name",
        ));
    }
    if t.eq_ignore_ascii_case("common") || t.eq_ignore_ascii_case("consumers") {
        return Err(authority(
            AK::Tenant,
            format!(
                "tenant '{t}' cannot issue app-only tokens: the client credentials grant needs the one directory \
             the app is registered or consented in; give its tenant id (a GUID) or domain name"
            ),
        ));
    }
    if uuid::Uuid::try_parse(t).is_ok() {
        if t.chars().all(|c| c == '0' || c == '-') {
            return Err(authority(
                AK::Tenant,
                "the tenant id may not be the empty GUID",
            ));
        }
        return Ok(());
    }
    if t.eq_ignore_ascii_case("organizations") {
        return Ok(());
    }
    let valid_label = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if t.len() <= 253 && t.contains('.') && t.split('.').all(valid_label) {
        return Ok(());
    }
    Err(authority(
        AK::Tenant,
        format!(
            "'{t}' is neither a tenant id (GUID) nor a domain name (such as contoso.onmicrosoft.com)"
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generic_providers_metadata_is_looked_for_at_openids_then_rfc_8414s_addresses() {
        let a = Authority::oidc("https://idp.example/realms/acme/").unwrap();
        assert_eq!(a.issuer(), Some("https://idp.example/realms/acme/"));
        assert_eq!(
            a.discovery_urls(),
            [
                "https://idp.example/realms/acme/.well-known/openid-configuration",
                "https://idp.example/.well-known/oauth-authorization-server/realms/acme",
                "https://idp.example/realms/acme/.well-known/oauth-authorization-server",
            ]
        );
        // An issuer without a path: RFC 8414's one address.
        let a = Authority::oidc("https://tenant.auth0.example/").unwrap();
        assert_eq!(
            a.discovery_urls(),
            [
                "https://tenant.auth0.example/.well-known/openid-configuration",
                "https://tenant.auth0.example/.well-known/oauth-authorization-server",
            ]
        );
        let e = Authority::entra(CloudInstance::AzurePublic, "contoso.example").unwrap();
        assert_eq!(e.discovery_urls(), [e.discovery_url()]);
        assert_eq!(e.issuer(), None);
    }

    #[test]
    fn loopback_is_127_0_0_0_8_the_ipv6_one_and_localhost() {
        for (url, loopback) in [
            ("http://127.0.0.1:8400/", true),
            ("http://127.0.0.2/", true),
            ("http://127.255.255.254/", true),
            ("http://127.1/", true), // the URL parser reads it as 127.0.0.1
            ("http://[::1]:8400/", true),
            ("http://[0:0:0:0:0:0:0:1]/", true),
            ("http://localhost:8400/", true),
            ("http://LocalHost/", true),
            ("https://localhost/", true),
            ("http://10.0.0.1/", false),
            ("http://128.0.0.1/", false),
            ("http://0.0.0.0/", false),
            ("http://[::]/", false),
            ("http://[::ffff:127.0.0.1]/", false),
            ("http://login.microsoftonline.com/", false),
            ("http://localhost.example.com/", false),
            ("http://foo.localhost/", false),
            ("http://localhost./", false),
            ("file:///etc/passwd", false),
        ] {
            assert_eq!(is_loopback(&Url::parse(url).unwrap()), loopback, "{url}");
        }
    }

    #[test]
    fn clouds_by_name_and_host() {
        assert_eq!(
            CloudInstance::parse("AzureChina").unwrap(),
            CloudInstance::AzureChina
        );
        assert_eq!(
            CloudInstance::parse("https://login.microsoftonline.us/").unwrap(),
            CloudInstance::AzureUsGovernment
        );
        assert_eq!(
            CloudInstance::parse("http://127.0.0.1:8080").unwrap(),
            CloudInstance::Custom("http://127.0.0.1:8080".into())
        );
        let e = CloudInstance::parse("http://login.example.com").unwrap_err();
        assert!(e.to_string().contains("https"), "{e}");
        assert!(CloudInstance::parse("ftp://x").is_err());
        assert!(CloudInstance::parse("not a url").is_err());
    }

    #[test]
    fn tenants() {
        for ok in [
            "contoso.onmicrosoft.com",
            "72f988bf-86f1-41af-91ab-2d7cd011db47",
            "organizations",
            "a.b",
        ] {
            assert!(validate_tenant(ok).is_ok(), "{ok}");
        }
        for bad in [
            "common",
            "Consumers",
            "",
            "not a tenant",
            "contoso",
            "00000000-0000-0000-0000-000000000000",
            "a..b",
            "-a.b",
        ] {
            assert!(validate_tenant(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn parse_authority_urls() {
        let a =
            Authority::parse("https://login.microsoftonline.com/contoso.onmicrosoft.com/").unwrap();
        assert_eq!(a.kind(), AuthorityKind::Entra);
        assert_eq!(a.tenant(), "contoso.onmicrosoft.com");
        assert_eq!(
            a.discovery_url(),
            "https://login.microsoftonline.com/contoso.onmicrosoft.com/v2.0/.well-known/openid-configuration"
        );
        let a = Authority::parse("https://adfs.contoso.com/adfs").unwrap();
        assert_eq!(a.kind(), AuthorityKind::Adfs);
        assert_eq!(
            a.discovery_url(),
            "https://adfs.contoso.com/adfs/.well-known/openid-configuration"
        );
        assert!(Authority::parse("https://login.microsoftonline.com").is_err());
        assert!(Authority::parse("https://login.microsoftonline.com/common").is_err());
        assert!(Authority::parse("http://evil.example/tenant.com").is_err());
        let a = Authority::parse("http://localhost:1234/t.example").unwrap();
        assert_eq!(
            a.with_tenant("other.example").unwrap().url(),
            "http://localhost:1234/other.example"
        );
        assert!(
            Authority::oidc("https://idp.example/realms/x")
                .unwrap()
                .with_tenant("a.b")
                .is_err()
        );
    }

    #[test]
    fn consent_url() {
        let a = Authority::entra(CloudInstance::AzurePublic, "contoso.onmicrosoft.com").unwrap();
        assert_eq!(
            a.admin_consent_url("abc", Some("https://x/cb?a=1")),
            "https://login.microsoftonline.com/contoso.onmicrosoft.com/adminconsent?client_id=abc&redirect_uri=https%3A%2F%2Fx%2Fcb%3Fa%3D1"
        );
    }
}
