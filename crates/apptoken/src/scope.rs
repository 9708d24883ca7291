//! Scopes for the client credentials grant.

use crate::error::{Error, Result};

/// The OpenID Connect scopes that some clients add beside `/.default`; the
/// identity provider ignores them for app-only tokens, so they are dropped.
const OIDC_SCOPES: [&str; 3] = ["openid", "profile", "offline_access"];

/// A validated, normalised set of scopes for one app-only token request.
///
/// Order, case and duplicates do not matter: `Scopes` compares and hashes by
/// the normalised form, which is what the token cache keys on.
#[derive(Debug, Clone)]
pub struct Scopes {
    /// As the caller wrote them (deduplicated, OIDC scopes removed), sent to the server.
    original: Vec<String>,
    /// Lower-cased and sorted: the cache key part.
    normalized: String,
}

impl Scopes {
    /// Validates scopes for the client credentials grant.
    ///
    /// Each scope must be a resource identifier followed by `/.default`
    /// (`https://graph.microsoft.com/.default`, `api://my-api/.default`,
    /// `00000003-0000-0000-c000-000000000000/.default`). `openid`, `profile`
    /// and `offline_access` are accepted and dropped. The error explains why
    /// any other scope is refused, before any request is made.
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
                validate(s)?;
                if !original.iter().any(|o| o.eq_ignore_ascii_case(s)) {
                    original.push(s.to_string());
                }
            }
        }
        if original.is_empty() {
            return Err(Error::InvalidScope {
                scope: String::new(),
                reason: "no scope was given".into(),
            });
        }
        if original.len() > 1 {
            return Err(Error::InvalidScope {
                scope: original.join(" "),
                reason:
                    "a token is issued for one resource at a time; request one token per resource"
                        .into(),
            });
        }
        let mut lower: Vec<String> = original.iter().map(|s| s.to_ascii_lowercase()).collect();
        lower.sort();
        Ok(Scopes {
            normalized: lower.join(" "),
            original,
        })
    }

    /// The scopes as sent to the server, space separated.
    pub fn as_param(&self) -> String {
        self.original.join(" ")
    }

    /// The scopes as given (deduplicated).
    pub fn as_slice(&self) -> &[String] {
        &self.original
    }

    /// The normalised form used as the cache key.
    pub fn normalized(&self) -> &str {
        &self.normalized
    }
}

/// Validates scopes without allocating and returns the one resource scope
/// (the cache's hot path). Errors are those of [`Scopes::new`].
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
                    validate(s)?;
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
        self.normalized == other.normalized
    }
}

impl Eq for Scopes {}

impl std::hash::Hash for Scopes {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.normalized.hash(state);
    }
}

fn validate(scope: &str) -> Result<()> {
    let refuse = |reason: &str| {
        Err(Error::InvalidScope {
            scope: scope.to_string(),
            reason: reason.to_string(),
        })
    };
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
        }
    }
}
