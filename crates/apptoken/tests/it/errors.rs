//! Each refusal of the emulator surfaces as a typed error with its AADSTS code.

use std::sync::Arc;

use apptoken::{
    Authority, Certificate, ClientSecret, ConfidentialClient, Credential, Error, ManualClock,
    TokenRequest,
};

use crate::support::*;

fn expect_server(e: &Error, status: u16, error: &str, code: i64) {
    let s = e
        .server_error()
        .unwrap_or_else(|| panic!("not a server error: {e:?}"));
    assert_eq!(s.status, status, "{e}");
    assert_eq!(s.error, error, "{e}");
    assert_eq!(s.error_codes, vec![code], "{e}");
    assert!(
        s.trace_id.as_deref().is_some_and(|t| !t.is_empty()),
        "{e:?}"
    );
    assert!(s.timestamp.is_some(), "{e:?}");
    assert!(
        s.error_description
            .as_deref()
            .is_some_and(|d| d.starts_with(&format!("AADSTS{code}: "))),
        "{e:?}"
    );
    assert!(e.to_string().contains(&format!("AADSTS{code}")), "{e}");
}

#[tokio::test]
async fn unknown_tenant() {
    let env = start().await;
    let client = ConfidentialClient::builder()
        .authority(
            Authority::from_host(
                &env.emulator.base_url(),
                "dddddddd-0000-4000-8000-000000000009",
            )
            .unwrap(),
        )
        .client_id(CLIENT_ID)
        .credential(Credential::secret(ClientSecret::new(SECRET)))
        .build()
        .unwrap();
    let e = client.acquire_token(&[SCOPE]).await.unwrap_err();
    let s = e.server_error().unwrap();
    assert_eq!(s.status, 400);
    assert_eq!(s.error_codes, vec![90002], "{e}");
}

#[tokio::test]
async fn unknown_client() {
    let env = start().await;
    let client = ConfidentialClient::builder()
        .authority(env.authority())
        .client_id("99999999-0000-4000-8000-000000000099")
        .credential(Credential::secret(ClientSecret::new(SECRET)))
        .build()
        .unwrap();
    let e = client.acquire_token(&[SCOPE]).await.unwrap_err();
    expect_server(&e, 400, "unauthorized_client", 700016);
    assert!(!e.is_retryable());
}

#[tokio::test]
async fn wrong_secret_keeps_the_correlation_id_and_never_shows_the_secret() {
    let env = start().await;
    let client = env.client(Credential::secret(ClientSecret::new("wrong-secret-value")));
    let id = uuid::Uuid::new_v4();
    // Any usual spelling of a GUID (here braced, upper case) is sent hyphenated.
    let braced = format!("{{{}}}", id.to_string().to_uppercase());
    let e = client
        .acquire_token_with(TokenRequest::new([SCOPE]).correlation_id(braced))
        .await
        .unwrap_err();
    expect_server(&e, 401, "invalid_client", 7000215);
    assert_eq!(
        e.server_error().unwrap().correlation_id.as_deref(),
        Some(id.to_string().as_str())
    );
    for shown in [e.to_string(), format!("{e:?}")] {
        assert!(!shown.contains("wrong-secret-value"), "{shown}");
    }
}

#[tokio::test]
async fn a_correlation_id_that_is_not_a_guid_is_refused_before_any_request() {
    let env = start().await;
    let client = env.client(Credential::secret(ClientSecret::new(SECRET)));
    let e = client
        .acquire_token_with(TokenRequest::new([SCOPE]).correlation_id("job-42"))
        .await
        .unwrap_err();
    let apptoken::Error::Configuration(d) = &e else {
        panic!("{e:?}")
    };
    assert_eq!(d.kind(), apptoken::ConfigErrorKind::Invalid);
    assert_eq!(d.setting(), Some("correlation_id"));
    assert!(e.to_string().contains("'job-42' is not a GUID"), "{e}");
    assert_eq!(client.cached_tokens(), 0);
}

#[tokio::test]
async fn certificate_not_registered() {
    let env = start().await;
    let stranger = Certificate::from_pem(
        &std::fs::read(fixture("stranger.combined.pem")).unwrap(),
        None,
    )
    .unwrap();
    let e = env
        .client(Credential::certificate(stranger))
        .acquire_token(&[SCOPE])
        .await
        .unwrap_err();
    expect_server(&e, 401, "invalid_client", 700027);
}

#[tokio::test]
async fn expired_assertion_from_a_slow_clock() {
    let env = start().await;
    let cert =
        Certificate::from_pem(&std::fs::read(fixture("leaf.combined.pem")).unwrap(), None).unwrap();
    // Our clock is an hour behind: the assertion expired before the server saw it.
    let clock = Arc::new(ManualClock::new(
        time::OffsetDateTime::now_utc() - time::Duration::hours(1),
    ));
    let client = env.client_with_clock(Credential::certificate(cert), clock);
    let e = client.acquire_token(&[SCOPE]).await.unwrap_err();
    expect_server(&e, 401, "invalid_client", 700024);
}

#[tokio::test]
async fn unknown_resource() {
    let env = start().await;
    let e = env
        .secret_client()
        .acquire_token(&["api://no-such-api/.default"])
        .await
        .unwrap_err();
    expect_server(&e, 400, "invalid_resource", 500011);
}

#[tokio::test]
async fn tenant_without_consent() {
    let env = start().await;
    let e = env
        .secret_client()
        .acquire_token_with(TokenRequest::new([SCOPE]).tenant(UNCONSENTED_TENANT))
        .await
        .unwrap_err();
    expect_server(&e, 401, "invalid_client", 7000229);
}

#[tokio::test]
async fn forged_assertions_are_refused() {
    let env = start().await;
    let aud = env.token_endpoint(HOME_TENANT);
    // wrong audience, alg none, HMAC: all refused as invalid_client
    let wrong_aud = signed_assertion(
        "https://login.example/other/oauth2/v2.0/token",
        jsonwebtoken::Algorithm::PS256,
        600,
    );
    let unsigned = {
        use base64::Engine;
        let enc = |v: serde_json::Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
        };
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        format!(
            "{}.{}.",
            enc(serde_json::json!({"alg":"none","typ":"JWT"})),
            enc(
                serde_json::json!({"aud": aud, "iss": CLIENT_ID, "sub": CLIENT_ID, "exp": now + 600, "jti": "x"})
            )
        )
    };
    let hmac = {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let claims = serde_json::json!({"aud": aud, "iss": CLIENT_ID, "sub": CLIENT_ID, "exp": now + 600, "jti": "y"});
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap()
    };
    // "alg": "none" with a bogus signature segment (an empty one is refused before sending)
    let unsigned = format!("{unsigned}c2ln");
    for (name, jwt) in [
        ("wrong aud", wrong_aud),
        ("alg none", unsigned),
        ("HS256", hmac),
    ] {
        let client = env.client(Credential::assertion_callback(move |_| {
            let jwt = jwt.clone();
            async move { Ok::<_, std::io::Error>(jwt) }
        }));
        let e = client.acquire_token(&[SCOPE]).await.unwrap_err();
        let s = e.server_error().unwrap_or_else(|| panic!("{name}: {e}"));
        assert!(s.status == 400 || s.status == 401, "{name}: {e}");
        assert!(!s.error_codes.is_empty(), "{name}: {e}");
        assert_eq!(env.emulator.stats().successes_for(CLIENT_ID), 0, "{name}");
    }
}

#[tokio::test]
async fn a_scope_without_default_never_reaches_the_server() {
    let env = start().await;
    let client = env.secret_client();
    for bad in [
        "User.Read",
        "https://graph.microsoft.com/User.Read.All",
        "api://apptoken-sample-api",
    ] {
        let e = client.acquire_token(&[bad]).await.unwrap_err();
        assert!(matches!(e, Error::InvalidScope { .. }), "{e}");
        assert!(e.to_string().contains("/.default"), "{e}");
    }
    assert_eq!(env.emulator.stats().token_requests_total(), 0);
}

#[tokio::test]
async fn unreachable_identity_provider_is_a_transport_error() {
    // A port that nothing listens on: bind, learn the port, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let client = ConfidentialClient::builder()
        .authority(Authority::from_host(&format!("http://127.0.0.1:{port}"), HOME_TENANT).unwrap())
        .client_id(CLIENT_ID)
        .credential(Credential::secret(ClientSecret::new(SECRET)))
        .retry_policy(apptoken::RetryPolicy::none())
        .build()
        .unwrap();
    let e = client.acquire_token(&[SCOPE]).await.unwrap_err();
    assert!(matches!(e, Error::Transport { .. }), "{e:?}");
    assert!(e.is_retryable());
}
