//! What an endpoint may serve: the resources ([`Policy`]) and the identity
//! it serves ([`ServedIdentity`]), which a request's `client_id`,
//! `object_id`/`principal_id` or `mi_res_id` must name when it names one.
//!
//! Resources compare as the App Service protocol passes them (the scope
//! without `/.default`), byte for byte but for a trailing `/`:
//! `https://vault.azure.net` and `https://vault.azure.net/` are one
//! resource to the allow-list (each is still asked of Entra as sent).

/// The resources a client of the endpoint may ask for.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// `None`: any resource.
    allowed: Option<Vec<String>>,
}

impl Policy {
    /// Any resource the served identity can get a token for.
    pub fn any() -> Policy {
        Policy { allowed: None }
    }

    /// Only these scopes' resources (`https://vault.azure.net/.default`
    /// allows resource `https://vault.azure.net`).
    pub fn scopes<I, S>(scopes: I) -> Policy
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Policy {
            allowed: Some(
                scopes
                    .into_iter()
                    .map(|s| resource_of(s.as_ref()).to_string())
                    .collect(),
            ),
        }
    }

    /// The allowed resources, or `None` for any.
    pub fn resources(&self) -> Option<&[String]> {
        self.allowed.as_deref()
    }

    /// Whether `resource` may be served.
    pub(crate) fn allows(&self, resource: &str) -> bool {
        match &self.allowed {
            None => true,
            Some(list) => list.iter().any(|r| same_resource(r, resource)),
        }
    }
}

/// The resource of a scope, by the library's rule.
pub(crate) use apptoken::internal::resource_of;

/// The scope a resource is asked for with.
pub(crate) fn scope_of(resource: &str) -> String {
    if resource.ends_with("/.default") {
        resource.to_string()
    } else {
        format!("{resource}/.default")
    }
}

fn same_resource(a: &str, b: &str) -> bool {
    let b = resource_of(b);
    a.strip_suffix('/').unwrap_or(a) == b.strip_suffix('/').unwrap_or(b)
}

/// The identity an endpoint serves: what a request's identity parameters
/// are compared with.
#[derive(Debug, Clone, Default)]
pub struct ServedIdentity {
    client_id: Option<String>,
    object_id: Option<String>,
    resource_id: Option<String>,
}

impl ServedIdentity {
    /// An identity with this client (application) id; empty for none.
    pub fn new(client_id: impl Into<String>) -> ServedIdentity {
        let client_id = client_id.into();
        ServedIdentity {
            client_id: (!client_id.trim().is_empty()).then_some(client_id),
            ..ServedIdentity::default()
        }
    }

    /// Its object (principal) id, when known ahead; otherwise a request's
    /// `object_id` is compared with the token's `oid` claim.
    pub fn with_object_id(mut self, id: impl Into<String>) -> ServedIdentity {
        self.object_id = Some(id.into());
        self
    }

    /// Its Azure resource id (a user-assigned managed identity's).
    pub fn with_resource_id(mut self, id: impl Into<String>) -> ServedIdentity {
        self.resource_id = Some(id.into());
        self
    }

    /// The client id.
    pub fn client_id(&self) -> Option<&str> {
        self.client_id.as_deref()
    }

    /// Checks what a request names against what is known ahead. `Ok(Some)`:
    /// an id that only the token's claims can confirm (a system-assigned
    /// identity's client id, an object id not configured).
    pub(crate) fn check(&self, named: &Named) -> Result<Option<Named>, String> {
        match named {
            Named::Nothing => Ok(None),
            Named::ClientId(c) => match &self.client_id {
                Some(mine) if mine.eq_ignore_ascii_case(c.trim()) => Ok(None),
                Some(mine) => Err(format!(
                    "client_id '{}' is not the identity this endpoint serves ({mine}); \
                     unset AZURE_CLIENT_ID in the child, or set it to {mine}",
                    clean(c)
                )),
                None => Ok(Some(named.clone())),
            },
            Named::ObjectId(o) => match &self.object_id {
                Some(mine) if mine.eq_ignore_ascii_case(o.trim()) => Ok(None),
                Some(mine) => Err(format!(
                    "object_id '{}' is not the identity this endpoint serves ({mine})",
                    clean(o)
                )),
                None => Ok(Some(named.clone())),
            },
            Named::ResourceId(r) => match &self.resource_id {
                Some(mine) if mine.eq_ignore_ascii_case(r.trim()) => Ok(None),
                _ => Err(format!(
                    "mi_res_id '{}' is not the identity this endpoint serves{}",
                    clean(r),
                    match &self.client_id {
                        Some(c) => format!(" (client id {c})"),
                        None => String::new(),
                    }
                )),
            },
        }
    }
}

/// The identity a request names (at most one way).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Named {
    Nothing,
    ClientId(String),
    ObjectId(String),
    ResourceId(String),
}

impl Named {
    /// From the query's `client_id`, `object_id`/`principal_id`,
    /// `mi_res_id`/`msi_res_id`; more than one is an error.
    pub(crate) fn from_query(get: impl Fn(&str) -> Option<String>) -> Result<Named, String> {
        let given: Vec<Named> = [
            ("client_id", Named::ClientId as fn(String) -> Named),
            ("object_id", Named::ObjectId),
            ("principal_id", Named::ObjectId),
            ("mi_res_id", Named::ResourceId),
            ("msi_res_id", Named::ResourceId),
        ]
        .into_iter()
        .filter_map(|(k, f)| get(k).filter(|v| !v.trim().is_empty()).map(f))
        .collect();
        match given.len() {
            0 => Ok(Named::Nothing),
            1 => Ok(given.into_iter().next().unwrap_or(Named::Nothing)),
            _ => Err(
                "name the identity one way: client_id, object_id (principal_id) or \
                      mi_res_id, not several"
                    .into(),
            ),
        }
    }
}

/// A value from a request, safe to quote in a message: no control
/// characters, at most 128 characters.
pub(crate) fn clean(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(128)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_allow_their_resources_with_or_without_a_trailing_slash() {
        let p = Policy::scopes(["https://vault.azure.net/.default", "api://sample/"]);
        assert!(p.allows("https://vault.azure.net"));
        assert!(p.allows("https://vault.azure.net/"));
        assert!(p.allows("https://vault.azure.net/.default"));
        assert!(p.allows("api://sample"));
        assert!(!p.allows("https://vault.azure.net.evil.example"));
        assert!(!p.allows("https://VAULT.azure.net"));
        assert!(!p.allows("https://storage.azure.com"));
        assert!(!p.allows(""));
        assert!(Policy::any().allows("https://storage.azure.com"));
        assert_eq!(scope_of("https://x"), "https://x/.default");
        assert_eq!(scope_of("https://x/"), "https://x//.default");
        assert_eq!(scope_of("https://x/.default"), "https://x/.default");
    }

    #[test]
    fn a_request_names_the_served_identity_or_is_refused() {
        let me = ServedIdentity::new("0f8fad5b-d9cb-469f-a165-70867728950e");
        let named = |pairs: &[(&str, &str)]| {
            let pairs: Vec<(String, String)> = pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            Named::from_query(|k| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()))
        };
        let n = named(&[("client_id", "0F8FAD5B-D9CB-469F-A165-70867728950E")]).unwrap();
        assert_eq!(me.check(&n), Ok(None));
        let n = named(&[("client_id", "11111111-1111-1111-1111-111111111111")]).unwrap();
        let e = me.check(&n).unwrap_err();
        assert!(e.contains("not the identity this endpoint serves"), "{e}");
        // An object id is confirmed by the token when not known ahead.
        let n = named(&[("principal_id", "abc")]).unwrap();
        assert_eq!(me.check(&n), Ok(Some(Named::ObjectId("abc".into()))));
        let anonymous = ServedIdentity::new("");
        let c = named(&[("client_id", "abc")]).unwrap();
        assert_eq!(anonymous.check(&c), Ok(Some(c.clone())));
        let known = me.clone().with_object_id("def");
        assert!(known.check(&n).is_err());
        // A resource id only for an identity that has one.
        let n = named(&[("mi_res_id", "/subscriptions/s/x")]).unwrap();
        assert!(me.check(&n).is_err());
        assert_eq!(
            me.clone().with_resource_id("/subscriptions/s/X").check(&n),
            Ok(None)
        );
        assert!(named(&[("client_id", "a"), ("object_id", "b")]).is_err());
        assert_eq!(named(&[("client_id", " ")]).unwrap(), Named::Nothing);
        // Quoted values carry no control characters.
        let n = named(&[("client_id", "x\r\nSet-Cookie: a")]).unwrap();
        assert!(!me.check(&n).unwrap_err().contains('\n'));
    }
}
