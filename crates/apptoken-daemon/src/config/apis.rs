//! The `[apis.NAME]` tables: base URL, scopes, headers, timeouts,
//! concurrency and retries of each web API the jobs call.
//!
//! Pure. Invariants: a base URL is http(s) with a host, plain http only on
//! loopback (the token would travel in clear text); for Entra ID, every
//! scope ends in `/.default` (a generic provider's issuer lifts that rule:
//! its scopes are its own, and none means its default); the Authorization
//! header is the token's alone. An API whose
//! base URL has a problem is left out of the result (the jobs naming it are
//! checked against the raw table, so they are not reported twice).

use std::collections::BTreeMap;
use std::time::Duration;

use toml::Spanned;
use url::Url;

use super::raw::RawApi;
use super::{ApiConfig, Checker};

/// Checks `[apis.NAME]`.
pub(super) fn check(
    ck: &mut Checker<'_>,
    raw: &BTreeMap<String, Spanned<RawApi>>,
    generic_provider: bool,
) -> BTreeMap<String, ApiConfig> {
    let mut apis = BTreeMap::new();
    for (name, api) in raw {
        let f = |k: &str| format!("apis.{name}.{k}");
        let a = api.get_ref();
        let base_url = match Url::parse(a.base_url.get_ref()) {
            Ok(u) if matches!(u.scheme(), "https" | "http") && u.host().is_some() => {
                if u.scheme() == "http" && !apptoken::internal::is_loopback_url(u.as_str()) {
                    ck.at(Some(a.base_url.span()), f("base_url"), "plain http is only allowed on loopback (the token would travel in clear text); use https");
                }
                Some(u)
            }
            Ok(_) => {
                ck.at(
                    Some(a.base_url.span()),
                    f("base_url"),
                    "must be an http(s) URL",
                );
                None
            }
            Err(e) => {
                ck.at(
                    Some(a.base_url.span()),
                    f("base_url"),
                    format!("'{}' is not a URL: {e}", a.base_url.get_ref()),
                );
                None
            }
        };
        if a.scopes.get_ref().is_empty() && !generic_provider {
            ck.at(
                Some(a.scopes.span()),
                f("scopes"),
                "give the resource's scope, e.g. [\"https://graph.microsoft.com/.default\"]",
            );
        }
        for s in a.scopes.get_ref() {
            if !generic_provider && !s.get_ref().trim().ends_with("/.default") {
                ck.at(Some(s.span()), f("scopes"), format!("'{}' does not end in /.default: app-only tokens take the resource's static scope, e.g. \"https://graph.microsoft.com/.default\"", s.get_ref()));
            }
        }
        let mut headers = Vec::new();
        for (k, v) in &a.headers {
            let ok_name = reqwest::header::HeaderName::try_from(k.as_str()).is_ok();
            let ok_value = reqwest::header::HeaderValue::try_from(v.get_ref().as_str()).is_ok();
            if !ok_name || !ok_value {
                ck.at(
                    Some(v.span()),
                    f(&format!("headers.{k}")),
                    "not a valid HTTP header",
                );
            } else if k.eq_ignore_ascii_case("authorization") {
                ck.at(
                    Some(v.span()),
                    f(&format!("headers.{k}")),
                    "the Authorization header is set from the token; remove it",
                );
            } else {
                headers.push((k.clone(), v.get_ref().clone()));
            }
        }
        let timeout = ck
            .duration(&a.timeout, &f("timeout"), Duration::from_millis(1))
            .unwrap_or(Duration::from_secs(60));
        let max_retry_wait = ck
            .duration(&a.max_retry_wait, &f("max_retry_wait"), Duration::ZERO)
            .unwrap_or(Duration::from_secs(300));
        let max_concurrency = match &a.max_concurrency {
            Some(c) if *c.get_ref() == 0 => {
                ck.at(Some(c.span()), f("max_concurrency"), "must be at least 1");
                1
            }
            Some(c) => *c.get_ref(),
            None => 4,
        };
        if let Some(base_url) = base_url {
            apis.insert(
                name.clone(),
                ApiConfig {
                    name: name.clone(),
                    base_url,
                    scopes: a
                        .scopes
                        .get_ref()
                        .iter()
                        .map(|s| s.get_ref().trim().to_string())
                        .collect(),
                    headers,
                    timeout,
                    max_concurrency,
                    max_retries: a.max_retries.unwrap_or(3),
                    max_retry_wait,
                },
            );
        }
    }
    apis
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;

    #[test]
    fn a_generic_providers_scopes_are_its_own() {
        let free = GOOD.replace(
            "\"api://sample/.default\"",
            "\"orders:read\", \"orders:write\"",
        );
        // Entra ID: each is a problem at its place.
        let p = check(&free).unwrap_err();
        assert_eq!(p.len(), 2, "{p:#?}");
        assert_eq!(p[0].location, Some(place(&free, "\"orders:read\"")));
        assert!(
            p.iter()
                .all(|p| p.message.contains("does not end in /.default"))
        );
        // Under an issuer: free-form, several, or none (the provider's default).
        let oidc = |t: &str| {
            t.replace(
                "tenant_id = \"contoso.example\"\n",
                "tenant_id = \"contoso.example\"\nissuer = \"https://idp.example/realms/acme\"\n",
            )
        };
        let c = check(&oidc(&free)).unwrap();
        assert_eq!(
            c.identity.issuer.as_deref(),
            Some("https://idp.example/realms/acme")
        );
        assert_eq!(c.apis["sample"].scopes, ["orders:read", "orders:write"]);
        let none = GOOD.replace("scopes = [\"api://sample/.default\"]", "scopes = []");
        assert!(check(&none).is_err());
        check(&oidc(&none)).unwrap();
    }

    #[test]
    fn plain_http_only_on_loopback() {
        let with_base = |url: &str| GOOD.replace("http://127.0.0.1:9/v1.0", url);
        for url in [
            "http://127.0.0.1:9/v1.0",
            "http://127.0.0.2/v1",
            "http://[::1]:8080/",
            "http://localhost:8080/",
            "https://api.example.com/v1",
            "https://10.0.0.1/v1",
        ] {
            let c = check(&with_base(url)).unwrap_or_else(|p| panic!("{url}: {p:?}"));
            assert!(c.apis.contains_key("sample"), "{url}");
        }
        for url in [
            "http://10.0.0.1/v1",
            "http://api.example.com/v1",
            "http://localhost.example.com/",
            "http://0.0.0.0:8080/",
        ] {
            let text = with_base(url);
            only_problem(
                &check(&text).unwrap_err(),
                "apis.sample.base_url",
                place(&text, &format!("\"{url}\"")),
                "plain http is only allowed on loopback",
            );
        }
    }
}
