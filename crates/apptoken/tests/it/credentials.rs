//! Every credential kind gets a token from the emulator.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use apptoken::{
    Certificate, ClientSecret, Credential, SecretAuthMethod, SigningAlgorithm, TokenRequest,
};

use crate::support::*;

#[tokio::test]
async fn client_secret_post_and_basic() {
    let env = start().await;
    let post = env.secret_client();
    let t = post.acquire_token(&[SCOPE]).await.unwrap();
    assert_eq!(t.token_type(), "Bearer");
    assert_eq!(t.tenant(), HOME_TENANT);
    assert_eq!(t.scopes(), [SCOPE.to_string()]);
    let left = t.expires_on() - time::OffsetDateTime::now_utc();
    assert!(
        left > time::Duration::minutes(50) && left <= time::Duration::minutes(60),
        "{left}"
    );

    let basic = env.client(Credential::secret_with(
        ClientSecret::new(SECRET),
        SecretAuthMethod::Basic,
    ));
    basic.acquire_token(&[SCOPE]).await.unwrap();
    let stats = env.emulator.stats();
    assert_eq!(stats.successes_for(CLIENT_ID), 2);
}

#[tokio::test]
async fn certificate_from_pem_and_pfx_files() {
    let env = start().await;
    let pem = private_copy(env.dir.path(), "leaf.combined.pem");
    let pfx = private_copy(env.dir.path(), "leaf.pfx");
    let encrypted = private_copy(env.dir.path(), "leaf.encrypted.pem");
    let cert_only = std::fs::read(fixture("leaf.cert.pem")).unwrap();
    let encrypted_key = std::fs::read(&encrypted).unwrap();

    let creds = [
        Credential::certificate(Certificate::from_file(&pem, None).unwrap()),
        Credential::certificate(Certificate::from_file(&pfx, Some(FIXTURE_PASSWORD)).unwrap()),
        Credential::certificate(
            Certificate::from_pem_parts(&cert_only, &encrypted_key, Some(FIXTURE_PASSWORD))
                .unwrap(),
        ),
        // subject name + issuer: the chain in x5c
        Credential::certificate_with(Certificate::from_file(&pem, None).unwrap(), true, None),
        // RS256 with a SHA-1 x5t, as for AD FS
        Credential::certificate_with(
            Certificate::from_file(&pfx, Some(FIXTURE_PASSWORD)).unwrap(),
            false,
            Some(SigningAlgorithm::Rs256),
        ),
    ];
    for (i, cred) in creds.into_iter().enumerate() {
        let client = env.client(cred);
        let t = client
            .acquire_token(&[SCOPE])
            .await
            .unwrap_or_else(|e| panic!("credential {i}: {e}"));
        assert!(!t.secret().is_empty());
    }
    assert_eq!(env.emulator.stats().successes_for(CLIENT_ID), 5);
}

#[tokio::test]
async fn assertion_file_is_read_on_every_request() {
    let env = start().await;
    let path = env.dir.path().join("federated-token");
    let aud = env.token_endpoint(HOME_TENANT);
    std::fs::write(
        &path,
        signed_assertion(&aud, jsonwebtoken::Algorithm::PS256, 600),
    )
    .unwrap();
    let client = env.client(Credential::assertion_file(&path));
    client.acquire_token(&[SCOPE]).await.unwrap();

    // The platform rotates the file: an assertion that expired ten minutes ago
    // (beyond the five minutes of clock skew Entra allows). A forced refresh must read it again.
    std::fs::write(
        &path,
        signed_assertion(&aud, jsonwebtoken::Algorithm::PS256, -600),
    )
    .unwrap();
    let e = client
        .acquire_token_with(TokenRequest::new([SCOPE]).force_refresh(true))
        .await
        .unwrap_err();
    assert_eq!(e.aadsts_codes(), &[700024], "{e}");

    // And a fresh one again.
    std::fs::write(
        &path,
        signed_assertion(&aud, jsonwebtoken::Algorithm::RS256, 600),
    )
    .unwrap();
    client
        .acquire_token_with(TokenRequest::new([SCOPE]).force_refresh(true))
        .await
        .unwrap();
}

#[tokio::test]
async fn assertion_callback_is_called_per_request_with_the_token_endpoint() {
    let env = start().await;
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    let want_aud = env.token_endpoint(HOME_TENANT);
    let client = env.client(Credential::assertion_callback(move |ctx| {
        seen.fetch_add(1, Ordering::SeqCst);
        let want = want_aud.clone();
        async move {
            assert_eq!(ctx.client_id, CLIENT_ID);
            assert_eq!(ctx.token_endpoint, want);
            Ok::<_, std::io::Error>(signed_assertion(
                &ctx.token_endpoint,
                jsonwebtoken::Algorithm::PS256,
                600,
            ))
        }
    }));
    client.acquire_token(&[SCOPE]).await.unwrap();
    client.acquire_token(&[SCOPE]).await.unwrap();
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "the second call is a cache hit"
    );
    client
        .acquire_token_with(TokenRequest::new([SCOPE]).force_refresh(true))
        .await
        .unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 2);

    let failing = env.client(Credential::assertion_callback(|_| async {
        Err::<String, _>(std::io::Error::other("vault unreachable"))
    }));
    let e = failing.acquire_token(&[SCOPE]).await.unwrap_err();
    assert!(
        matches!(&e, apptoken::Error::Credential(c) if c.kind() == apptoken::CredentialErrorKind::Callback),
        "{e:?}"
    );
    // The callback's own error is the cause, kept whole (not flattened into
    // the message), and the report prints the chain.
    let cause = std::error::Error::source(&e).expect("the callback's error is the source");
    assert!(
        cause.downcast_ref::<std::io::Error>().is_some(),
        "{cause:?}"
    );
    assert!(!e.to_string().contains("vault unreachable"), "{e}");
    assert!(
        e.report()
            .to_string()
            .ends_with("the assertion callback failed: vault unreachable"),
        "{}",
        e.report()
    );
}

#[tokio::test]
async fn settings_from_azure_environment_variables() {
    let env = start().await;
    let cert = private_copy(env.dir.path(), "leaf.pfx");
    let base = env.emulator.base_url();
    let vars = [
        ("AZURE_AUTHORITY_HOST", base.as_str()),
        ("AZURE_TENANT_ID", HOME_DOMAIN),
        ("AZURE_CLIENT_ID", CLIENT_ID),
        ("AZURE_CLIENT_CERTIFICATE_PATH", cert.to_str().unwrap()),
        ("AZURE_CLIENT_CERTIFICATE_PASSWORD", FIXTURE_PASSWORD),
        ("AZURE_CLIENT_SEND_CERTIFICATE_CHAIN", "true"),
    ];
    let config = apptoken::ClientConfig::from_env_vars(|k| {
        vars.iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| v.to_string())
    })
    .unwrap();
    let client = config.build_client().unwrap();
    let t = client.acquire_token(&[SCOPE]).await.unwrap();
    assert_eq!(t.tenant(), HOME_DOMAIN, "a domain name works as the tenant");
}
