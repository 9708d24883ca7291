//! What a token is for ([`Scopes`]): scopes, and for generic OpenID
//! providers resource indicators and an audience, validated by the
//! provider's rules and normalised into the cache key's parts.
//!
//! Two rules. Entra ID and AD FS: exactly one resource's static scope,
//! `{resource}/.default`, compared without regard to case, no `resource`
//! or `audience` (Entra names the resource in the scope). Any other OpenID
//! Connect provider: free-form scope tokens (RFC 6749 §3.3), any number,
//! case-sensitive; RFC 8707 `resource` indicators and an `audience` (Auth0,
//! Okta). Either way order and duplicates do not change the key.

use crate::authority::AuthorityKind;
use crate::error::{ConfigError, ConfigErrorKind, Error, Result};

/// The OpenID Connect scopes that some clients add beside `/.default`; Entra
/// ignores them for app-only tokens, so they are dropped (Entra rule only).
const OIDC_SCOPES: [&str; 3] = ["openid", "profile", "offline_access"];

/// What Entra's rule says, after the reason a scope was refused.
const ENTRA_RULE: &str = "app-only tokens from Entra ID are requested with one static scope, \
     the resource's application ID URI followed by '/.default' (for example \
     'https://graph.microsoft.com/.default'); the permissions come from the app roles \
     an administrator granted to the app";

/// Separates the parts of [`Scopes::extra`] (a control character, which no
/// resource indicator or audience may contain).
const SEP: char = '\u{1f}';

/// A validated, normalised token target: the scopes of one app-only token
/// request and, for generic OpenID providers, its resource indicators and
/// audience.
///
/// Order and duplicates do not matter, nor case under Entra's rule:
/// `Scopes` compares and hashes by the normalised form, which is what the
/// token cache keys on. [`Scopes::new`] applies Entra's rule (one
/// `{resource}/.default`), [`Scopes::free_form`] a generic provider's
/// (RFC 6749 scope tokens, any number, case-sensitive); a client picks the
/// rule of its authority.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Scopes {
    /// As the caller wrote them (deduplicated, Entra's OIDC scopes removed), sent to the server.
    original: Vec<String>,
    /// Sorted (and lower-cased under Entra's rule): the cache key's scope part.
    normalized: String,
    /// RFC 8707 resource indicators as given, sorted and deduplicated.
    resources: Vec<String>,
    /// The `audience` parameter.
    audience: Option<String>,
    /// Resources and audience: the cache key's extra part (empty when none).
    extra: String,
    /// Scopes are case-sensitive (a generic provider's rule).
    exact: bool,
}

impl Scopes {
    /// Validates scopes under Entra ID's rule for the client credentials grant.
    ///
    /// The one scope must be a resource identifier followed by `/.default`
    /// (`https://graph.microsoft.com/.default`, `api://my-api/.default`,
    /// `00000003-0000-0000-c000-000000000000/.default`). `openid`, `profile`
    /// and `offline_access` are accepted and dropped. The error explains why
    /// any other scope is refused, before any request is made.
    ///
    /// ```
    /// use apptoken::Scopes;
    /// let s = Scopes::new(["api://my-api/.default", "openid"])?;
    /// assert_eq!(s.as_param(), "api://my-api/.default");
    /// assert!(Scopes::new(["api://a/.default", "api://b/.default"]).is_err());
    /// assert!(Scopes::new(["User.Read"]).is_err());
    /// # Ok::<(), apptoken::Error>(())
    /// ```
    pub fn new<I, S>(scopes: I) -> Result<Scopes>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut original: Vec<String> = Vec::new();
        for scope in scopes {
            for s in scope.as_ref().split_whitespace() {
                if OIDC_SCOPES.iter().any(|o| o.eq_ignore_ascii_case(s)) {
                    continue;
                }
                validate_entra(s)?;
                if !original.iter().any(|o| o.eq_ignore_ascii_case(s)) {
                    original.push(s.to_string());
                }
            }
        }
        if original.is_empty() {
            return Err(invalid("", format!("no scope was given; {ENTRA_RULE}")));
        }
        if original.len() > 1 {
            return Err(invalid(
                &original.join(" "),
                "a token is issued for one resource at a time; request one token per resource"
                    .into(),
            ));
        }
        let mut lower: Vec<String> = original.iter().map(|s| s.to_ascii_lowercase()).collect();
        lower.sort();
        Ok(Scopes {
            normalized: lower.join(" "),
            original,
            resources: Vec::new(),
            audience: None,
            extra: String::new(),
            exact: false,
        })
    }

    /// Validates scopes under a generic OpenID provider's rule: any number
    /// of scope tokens (printable ASCII without spaces, `"` or `\`, RFC
    /// 6749 §3.3), case-sensitive, none at all meaning the provider's
    /// default. `openid` and the like are kept: the provider decides.
    ///
    /// ```
    /// use apptoken::Scopes;
    /// let a = Scopes::free_form(["api:read api:write"])?;
    /// let b = Scopes::free_form(["api:write", "api:read", "api:read"])?;
    /// assert_eq!(a, b);
    /// assert_ne!(a, Scopes::free_form(["API:read", "api:write"])?);
    /// assert!(Scopes::free_form(["caf\u{e9}"]).is_err());
    /// # Ok::<(), apptoken::Error>(())
    /// ```
    pub fn free_form<I, S>(scopes: I) -> Result<Scopes>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut original: Vec<String> = Vec::new();
        for scope in scopes {
            // RFC 6749 separates scope tokens by spaces (%x20) only.
            for s in scope.as_ref().split(' ').filter(|s| !s.is_empty()) {
                validate_token(s)?;
                if !original.iter().any(|o| o == s) {
                    original.push(s.to_string());
                }
            }
        }
        let mut sorted: Vec<&str> = original.iter().map(String::as_str).collect();
        sorted.sort_unstable();
        Ok(Scopes {
            normalized: sorted.join(" "),
            original,
            resources: Vec::new(),
            audience: None,
            extra: String::new(),
            exact: true,
        })
    }

    /// The target of a request to an authority of this kind: its scope
    /// rule, and the resource indicators and audience only a generic
    /// provider takes.
    pub(crate) fn for_request<S: AsRef<str>>(
        kind: AuthorityKind,
        scopes: &[S],
        resources: &[String],
        audience: Option<&str>,
    ) -> Result<Scopes> {
        if kind != AuthorityKind::Oidc {
            if let Some(r) = resources.first() {
                return Err(unsupported(
                    "resource",
                    format!(
                        "resource indicator '{r}' is for generic OpenID Connect providers; \
                         Entra ID names the resource in the scope ('{}/.default')",
                        r.trim_end_matches('/')
                    ),
                ));
            }
            if audience.is_some() {
                return Err(unsupported(
                    "audience",
                    "an audience is for generic OpenID Connect providers (Auth0, Okta); \
                     Entra ID names the resource in the scope ('{resource}/.default')"
                        .into(),
                ));
            }
            return Scopes::new(scopes);
        }
        let mut target = Scopes::free_form(scopes)?;
        let mut rs: Vec<String> = Vec::with_capacity(resources.len());
        for r in resources {
            let r = validate_resource(r)?;
            if !rs.iter().any(|o| o == r) {
                rs.push(r.to_string());
            }
        }
        rs.sort_unstable();
        let audience = audience.map(validate_audience).transpose()?;
        let mut extra = String::new();
        for r in &rs {
            extra.push(SEP);
            extra.push_str("resource=");
            extra.push_str(r);
        }
        if let Some(a) = audience {
            extra.push(SEP);
            extra.push_str("audience=");
            extra.push_str(a);
        }
        target.resources = rs;
        target.audience = audience.map(str::to_string);
        target.extra = extra;
        Ok(target)
    }

    /// The scopes as sent to the server, space separated (empty when a
    /// generic provider is left to its default scopes).
    pub fn as_param(&self) -> String {
        self.original.join(" ")
    }

    /// The scopes as given (deduplicated).
    pub fn as_slice(&self) -> &[String] {
        &self.original
    }

    /// The normalised scopes: the cache key's scope part.
    pub fn normalized(&self) -> &str {
        &self.normalized
    }

    /// The RFC 8707 `resource` indicators (generic providers), sorted.
    pub fn resources(&self) -> &[String] {
        &self.resources
    }

    /// The `audience` parameter (generic providers such as Auth0 and Okta).
    pub fn audience(&self) -> Option<&str> {
        self.audience.as_deref()
    }

    /// Resources and audience, normalised: the cache key's extra part.
    pub(crate) fn extra(&self) -> &str {
        &self.extra
    }

    /// Whether scopes are case-sensitive (a generic provider's rule).
    pub(crate) fn exact(&self) -> bool {
        self.exact
    }
}

/// Validates scopes under Entra's rule without allocating and returns the
/// one resource scope (the cache's hot path). Errors are those of
/// [`Scopes::new`].
pub(crate) fn single_resource<S: AsRef<str>>(scopes: &[S]) -> Result<&str> {
    let mut found: Option<&str> = None;
    for scope in scopes {
        for s in scope.as_ref().split_whitespace() {
            if OIDC_SCOPES.iter().any(|o| o.eq_ignore_ascii_case(s)) {
                continue;
            }
            match found {
                Some(f) if f.eq_ignore_ascii_case(s) => {}
                Some(_) => return Scopes::new(scopes).map(|_| ""),
                None => {
                    validate_entra(s)?;
                    found = Some(s);
                }
            }
        }
    }
    match found {
        Some(f) => Ok(f),
        None => Scopes::new(scopes).map(|_| ""),
    }
}

impl PartialEq for Scopes {
    fn eq(&self, other: &Self) -> bool {
        self.exact == other.exact
            && self.normalized == other.normalized
            && self.extra == other.extra
    }
}

impl Eq for Scopes {}

impl std::hash::Hash for Scopes {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.exact.hash(state);
        self.normalized.hash(state);
        self.extra.hash(state);
    }
}

fn invalid(scope: &str, reason: String) -> Error {
    Error::InvalidScope {
        scope: scope.to_string(),
        reason,
    }
}

fn unsupported(setting: &'static str, message: String) -> Error {
    ConfigError::new(ConfigErrorKind::Unsupported, message)
        .with_setting(setting)
        .into()
}

fn validate_entra(scope: &str) -> Result<()> {
    let refuse = |reason: &str| Err(invalid(scope, format!("{reason}; {ENTRA_RULE}")));
    let Some(resource) = scope.strip_suffix("/.default") else {
        if scope.contains("://") || scope.contains('/') {
            return refuse("it names a delegated permission, not the resource's '/.default'");
        }
        return refuse("it does not end in '/.default'");
    };
    if resource.is_empty() {
        return refuse("the resource before '/.default' is empty");
    }
    if scope
        .chars()
        .any(|c| c.is_control() || c == '"' || c == '\\')
    {
        return refuse("it contains characters that are not allowed in a scope");
    }
    Ok(())
}

/// RFC 6749 §3.3: `scope-token = 1*( %x21 / %x23-5B / %x5D-7E )`.
fn validate_token(scope: &str) -> Result<()> {
    let allowed = |b: u8| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b);
    if scope.bytes().all(allowed) {
        return Ok(());
    }
    Err(invalid(
        scope,
        "a scope is printable ASCII without spaces, '\"' or '\\' (RFC 6749, section 3.3)".into(),
    ))
}

/// RFC 8707 §2: an absolute URI without a fragment.
fn validate_resource(resource: &str) -> Result<&str> {
    let r = resource.trim();
    let bad = |why: &str| {
        Err(ConfigError::new(
            ConfigErrorKind::Invalid,
            format!(
                "resource indicator '{r}' {why} (RFC 8707: an absolute URI without a fragment)"
            ),
        )
        .with_setting("resource")
        .into())
    };
    if r.is_empty() {
        return bad("is empty");
    }
    if r.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return bad("contains spaces or control characters");
    }
    match url::Url::parse(r) {
        Ok(u) if u.fragment().is_some() => bad("has a fragment"),
        Ok(_) => Ok(r),
        Err(_) => bad("is not an absolute URI"),
    }
}

fn validate_audience(audience: &str) -> Result<&str> {
    let a = audience.trim();
    if a.is_empty() || a.chars().any(char::is_control) {
        return Err(ConfigError::new(
            ConfigErrorKind::Invalid,
            "the audience is empty or contains control characters",
        )
        .with_setting("audience")
        .into());
    }
    Ok(a)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_default_scopes() {
        let s = Scopes::new(["https://graph.microsoft.com/.default"]).unwrap();
        assert_eq!(s.as_param(), "https://graph.microsoft.com/.default");
        let s = Scopes::new(["api://x/.default openid profile offline_access"]).unwrap();
        assert_eq!(s.as_param(), "api://x/.default");
        // a URI ending in a slash keeps it: Entra reads "https://x//.default" as resource "https://x/"
        assert!(Scopes::new(["https://x//.default"]).is_ok());
    }

    #[test]
    fn refuses_delegated_and_empty_scopes() {
        for bad in [
            "User.Read",
            "https://graph.microsoft.com/User.Read",
            "/.default",
            "",
            "api://x\"/.default",
        ] {
            let e = Scopes::new([bad]).unwrap_err();
            assert!(matches!(e, Error::InvalidScope { .. }), "{bad:?}: {e}");
            assert!(e.to_string().contains("/.default"), "{e}");
        }
    }

    #[test]
    fn the_fast_path_agrees_with_the_full_validation() {
        assert_eq!(
            single_resource(&["openid", "api://x/.default"]).unwrap(),
            "api://x/.default"
        );
        assert_eq!(
            single_resource(&["api://x/.default API://X/.default"]).unwrap(),
            "api://x/.default"
        );
        for bad in [
            &["User.Read"][..],
            &[],
            &["api://a/.default", "api://b/.default"],
            &["openid"],
        ] {
            assert_eq!(
                single_resource(bad).unwrap_err().to_string(),
                Scopes::new(bad).unwrap_err().to_string()
            );
        }
    }

    #[test]
    fn refuses_two_resources() {
        let e = Scopes::new(["api://a/.default", "api://b/.default"]).unwrap_err();
        assert!(e.to_string().contains("one resource at a time"), "{e}");
    }

    #[test]
    fn generic_providers_take_their_own_scopes() {
        let a = Scopes::free_form(["api:read api:write", "api:read"]).unwrap();
        assert_eq!(a.as_param(), "api:read api:write");
        assert_eq!(a.normalized(), "api:read api:write");
        let b = Scopes::free_form(["api:write", "api:read"]).unwrap();
        assert_eq!(a, b);
        // Case-sensitive, and a delegated-looking or OIDC scope is the provider's business.
        assert_ne!(a, Scopes::free_form(["API:read api:write"]).unwrap());
        assert!(Scopes::free_form(["openid", "User.Read"]).is_ok());
        assert!(
            Scopes::free_form::<[&str; 0], &str>([])
                .unwrap()
                .as_slice()
                .is_empty()
        );
        for bad in ["caf\u{e9}", "a\"b", "a\\b", "tab\there", "nul\0"] {
            let e = Scopes::free_form([bad]).unwrap_err();
            assert!(matches!(e, Error::InvalidScope { .. }), "{bad:?}: {e}");
            assert!(e.to_string().contains("RFC 6749"), "{e}");
        }
    }

    #[test]
    fn resources_and_audience_are_for_generic_providers_and_part_of_the_key() {
        let oidc = |scopes: &[&str], rs: &[&str], aud: Option<&str>| {
            let rs: Vec<String> = rs.iter().map(|r| r.to_string()).collect();
            Scopes::for_request(AuthorityKind::Oidc, scopes, &rs, aud)
        };
        let a = oidc(
            &["s"],
            &["https://b.example/", "https://a.example/"],
            Some("x"),
        )
        .unwrap();
        let b = oidc(
            &["s"],
            &[
                "https://a.example/",
                "https://b.example/",
                "https://a.example/",
            ],
            Some("x"),
        )
        .unwrap();
        assert_eq!(a, b);
        assert_eq!(a.resources(), ["https://a.example/", "https://b.example/"]);
        assert_eq!(a.audience(), Some("x"));
        assert_ne!(a, oidc(&["s"], &["https://a.example/"], Some("x")).unwrap());
        assert_ne!(
            a,
            oidc(
                &["s"],
                &["https://b.example/", "https://a.example/"],
                Some("y")
            )
            .unwrap()
        );
        assert_ne!(
            a,
            oidc(&["s"], &["https://b.example/", "https://a.example/"], None).unwrap()
        );
        assert_ne!(a.extra(), "");
        for (rs, aud, setting) in [
            (&["not a uri"][..], None, "resource"),
            (&["https://a.example/#frag"], None, "resource"),
            (&["relative/path"], None, "resource"),
            (&[""], None, "resource"),
            (&[], Some(" "), "audience"),
            (&[], Some("a\u{1f}b"), "audience"),
        ] {
            let e = oidc(&["s"], rs, aud).unwrap_err();
            let Error::Configuration(d) = &e else {
                panic!("{e:?}")
            };
            assert_eq!(d.setting(), Some(setting), "{e}");
            assert_eq!(d.kind(), ConfigErrorKind::Invalid, "{e}");
        }
        // Entra refuses both, saying where the resource goes.
        let rs = vec!["https://graph.microsoft.com".to_string()];
        let e = Scopes::for_request(AuthorityKind::Entra, &["api://x/.default"], &rs, None)
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("https://graph.microsoft.com/.default"),
            "{e}"
        );
        let Error::Configuration(d) = &e else {
            panic!("{e:?}")
        };
        assert_eq!(
            (d.kind(), d.setting()),
            (ConfigErrorKind::Unsupported, Some("resource"))
        );
        let e = Scopes::for_request(AuthorityKind::Adfs, &["api://x/.default"], &[], Some("a"))
            .unwrap_err();
        let Error::Configuration(d) = &e else {
            panic!("{e:?}")
        };
        assert_eq!(d.setting(), Some("audience"));
        // ...and keeps its own rule.
        assert_eq!(
            Scopes::for_request::<&str>(AuthorityKind::Entra, &["API://X/.default"], &[], None)
                .unwrap(),
            Scopes::new(["api://x/.default"]).unwrap()
        );
    }

    proptest! {
        #[test]
        fn order_case_and_duplicates_do_not_change_the_key(res in "[a-z][a-z0-9.-]{0,20}", upper in any::<bool>(), dup in any::<bool>()) {
            let base = format!("api://{res}/.default");
            let other = if upper { base.to_ascii_uppercase().replace("/.DEFAULT", "/.default") } else { base.clone() };
            let mut list = vec![other.clone(), "openid".to_string()];
            if dup { list.push(base.clone()); }
            let a = Scopes::new([base.as_str()]).unwrap();
            let b = Scopes::new(list.iter()).unwrap();
            prop_assert_eq!(a.normalized(), b.normalized());
            prop_assert_eq!(a, b);
        }

        #[test]
        fn never_panics(input in "\\PC{0,64}") {
            let _ = Scopes::new([input.as_str()]);
            let _ = Scopes::free_form([input.as_str()]);
            let _ = Scopes::for_request(AuthorityKind::Oidc, &[input.as_str()], std::slice::from_ref(&input), Some(&input));
        }

        /// Under a generic provider's rule, order and duplicates never
        /// change the key, and case always does.
        #[test]
        fn free_form_keys_ignore_order_and_duplicates(mut list in proptest::collection::vec("[a-zA-Z:._]{1,12}", 1..6), seed in any::<u64>()) {
            let a = Scopes::free_form(list.iter()).unwrap();
            let n = list.len();
            list.rotate_left((seed as usize) % n);
            list.push(list[0].clone());
            let b = Scopes::free_form(list.iter()).unwrap();
            prop_assert_eq!(&a, &b);
            let upper: Vec<String> = list.iter().map(|s| s.to_ascii_uppercase()).collect();
            let c = Scopes::free_form(upper.iter()).unwrap();
            prop_assert_eq!(a == c, list.iter().all(|s| *s == s.to_ascii_uppercase()));
        }
    }
}
