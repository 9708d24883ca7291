//! What a token is for, end to end through the client: a generic OpenID
//! provider's free-form scopes, resource indicators and audience reach the
//! token source and key the cache (order-insensitive, case-sensitive);
//! Entra's one-resource rule refuses them before any request.

use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use apptoken::{
    Authority, ConfidentialClient, ConfigErrorKind, Error, SourceFuture, SourceRequest,
    TokenRequest, TokenResponse, TokenSource,
};

/// What one request asked for: scope parameter, resources, audience.
type Asked = (String, Vec<String>, Option<String>);

/// Records what each request asked for and answers with a numbered token.
#[derive(Debug, Default)]
struct Recorder {
    seen: Mutex<Vec<Asked>>,
}

impl TokenSource for Recorder {
    fn request_token<'a>(&'a self, request: SourceRequest<'a>) -> SourceFuture<'a> {
        let mut seen = self.seen.lock().unwrap();
        seen.push((
            request.scopes.as_param(),
            request.scopes.resources().to_vec(),
            request.scopes.audience().map(str::to_string),
        ));
        let n = seen.len();
        Box::pin(async move {
            Ok(TokenResponse::new(
                format!("token-{n}"),
                Duration::from_secs(3600),
            ))
        })
    }
}

fn client(authority: Authority, source: Arc<Recorder>) -> ConfidentialClient {
    ConfidentialClient::builder()
        .authority(authority)
        .client_id("app")
        .token_source(source)
        .build()
        .unwrap()
}

fn okta() -> Authority {
    Authority::oidc("https://idp.example/oauth2/default").unwrap()
}

#[tokio::test]
async fn a_generic_providers_scopes_are_free_form_order_insensitive_and_case_sensitive() {
    let source = Arc::new(Recorder::default());
    let c = client(okta(), source.clone());
    let a = c
        .acquire_token(&["orders:read", "orders:write"])
        .await
        .unwrap();
    // Another order, duplicates, one string: the same key.
    for same in [
        &["orders:write", "orders:read"][..],
        &["orders:read orders:write"],
        &["orders:write", "orders:read", "orders:write"],
    ] {
        assert!(
            c.acquire_token(same).await.unwrap().is_same_token(&a),
            "{same:?}"
        );
    }
    // Case matters to a generic provider.
    let upper = c
        .acquire_token(&["Orders:Read", "orders:write"])
        .await
        .unwrap();
    assert!(!upper.is_same_token(&a));
    // One scope: the allocation-free hot path finds it too.
    let one = c.acquire_token(&["orders:read"]).await.unwrap();
    assert!(
        c.acquire_token(&["orders:read"])
            .await
            .unwrap()
            .is_same_token(&one)
    );
    let seen = source.seen.lock().unwrap();
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert_eq!(seen[0].0, "orders:read orders:write");
    assert_eq!(seen[1].0, "Orders:Read orders:write");
}

#[tokio::test]
async fn resources_and_audience_reach_the_source_and_key_the_cache() {
    let source = Arc::new(Recorder::default());
    let c = client(okta(), source.clone());
    let req = |rs: &[&str], aud: Option<&str>| {
        let mut r = TokenRequest::new(["orders:read"]);
        for x in rs {
            r = r.resource(*x);
        }
        if let Some(a) = aud {
            r = r.audience(a);
        }
        r
    };
    let both = ["https://b.example/", "https://a.example/"];
    let t = c
        .acquire_token_with(req(&both, Some("api://orders")))
        .await
        .unwrap();
    let again = c
        .acquire_token_with(req(
            &["https://a.example/", "https://b.example/"],
            Some("api://orders"),
        ))
        .await
        .unwrap();
    assert!(again.is_same_token(&t), "resource order does not matter");
    for other in [
        req(&both, None),
        req(&both, Some("api://other")),
        req(&["https://a.example/"], Some("api://orders")),
        req(&[], None),
    ] {
        let o = c.acquire_token_with(other).await.unwrap();
        assert!(!o.is_same_token(&t));
    }
    let seen = source.seen.lock().unwrap();
    assert_eq!(seen.len(), 5, "{seen:?}");
    assert_eq!(
        seen[0],
        (
            "orders:read".to_string(),
            vec![
                "https://a.example/".to_string(),
                "https://b.example/".into()
            ],
            Some("api://orders".to_string())
        )
    );
    // The plain scope after the targeted ones is its own key, not theirs.
    assert_eq!(seen[4], ("orders:read".to_string(), vec![], None));
}

#[tokio::test]
async fn entra_refuses_resources_audiences_and_a_second_resource_before_any_request() {
    let source = Arc::new(Recorder::default());
    let c = client(
        Authority::parse("https://login.example/contoso.example").unwrap(),
        source.clone(),
    );
    let e = c
        .acquire_token_with(TokenRequest::new(["api://x/.default"]).resource("https://x.example"))
        .await
        .unwrap_err();
    let Error::Configuration(d) = &e else {
        panic!("{e:?}")
    };
    assert_eq!(
        (d.kind(), d.setting()),
        (ConfigErrorKind::Unsupported, Some("resource"))
    );
    let e = c
        .acquire_token_with(TokenRequest::new(["api://x/.default"]).audience("x"))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::Configuration(d) if d.setting() == Some("audience")),
        "{e}"
    );
    let e = c
        .acquire_token(&["api://a/.default", "api://b/.default"])
        .await
        .unwrap_err();
    assert!(matches!(e, Error::InvalidScope { .. }), "{e}");
    let e = c.acquire_token(&["orders:read"]).await.unwrap_err();
    assert!(e.to_string().contains("/.default"), "{e}");
    assert!(source.seen.lock().unwrap().is_empty());
    // Entra's scopes stay case-insensitive.
    let t = c.acquire_token(&["api://x/.default"]).await.unwrap();
    assert!(
        c.acquire_token(&["API://X/.default"])
            .await
            .unwrap()
            .is_same_token(&t)
    );
}
