//! TLS with an extra trusted root, host overrides, and regional endpoints
//! with fallback to the global host.

use std::time::Duration;

use apptoken::{Authority, ClientSecret, ConfidentialClient, Credential, RetryPolicy};
use apptoken_emulator::{Fault, Target};

use crate::support::*;

fn client(
    env: &TestEnv,
    regional_addr: std::net::SocketAddr,
    region: Option<&str>,
) -> ConfidentialClient {
    let port = env.emulator.local_addr().port();
    let ca = env.emulator.ca_certificate_pem().expect("TLS is on");
    let mut b = ConfidentialClient::builder()
        .authority(
            Authority::from_host(
                &format!("https://login.microsoftonline.com:{port}"),
                HOME_TENANT,
            )
            .unwrap(),
        )
        .client_id(CLIENT_ID)
        .credential(Credential::secret(ClientSecret::new(SECRET)))
        .add_root_certificate_pem(ca)
        .resolve("login.microsoftonline.com", env.emulator.local_addr())
        .resolve("westus2.login.microsoft.com", regional_addr)
        .retry_policy(RetryPolicy::none())
        .timeout(Duration::from_secs(10));
    if let Some(r) = region {
        b = b.azure_region(r);
    }
    b.build().unwrap()
}

#[tokio::test]
async fn the_real_host_name_reaches_the_emulator_through_an_override() {
    let env = start_tls().await;
    let c = client(&env, env.emulator.local_addr(), None);
    c.acquire_token(&[SCOPE]).await.unwrap();
    assert_eq!(env.requests(), 1);
}

#[tokio::test]
async fn without_the_emulators_ca_the_server_is_not_trusted() {
    let env = start_tls().await;
    let port = env.emulator.local_addr().port();
    let c = ConfidentialClient::builder()
        .authority(
            Authority::from_host(
                &format!("https://login.microsoftonline.com:{port}"),
                HOME_TENANT,
            )
            .unwrap(),
        )
        .client_id(CLIENT_ID)
        .credential(Credential::secret(ClientSecret::new(SECRET)))
        .resolve("login.microsoftonline.com", env.emulator.local_addr())
        .retry_policy(RetryPolicy::none())
        .build()
        .unwrap();
    let e = c.acquire_token(&[SCOPE]).await.unwrap_err();
    assert!(matches!(e, apptoken::Error::Transport { .. }), "{e:?}");
    let bad = ConfidentialClient::builder()
        .authority(env.authority())
        .client_id(CLIENT_ID)
        .credential(Credential::secret(ClientSecret::new(SECRET)))
        .add_root_certificate_pem("not a certificate")
        .build();
    assert!(bad.is_err());
}

#[tokio::test]
async fn the_regional_endpoint_is_used_and_falls_back_to_the_global_one() {
    let env = start_tls().await;
    // Regional host up: one request.
    let c = client(&env, env.emulator.local_addr(), Some("westus2"));
    c.acquire_token(&[SCOPE]).await.unwrap();
    assert_eq!(env.requests(), 1);

    // Regional endpoint answers 503 once: the same acquisition falls back to the global host.
    env.emulator
        .add_fault(Fault::on(Target::Token).status(503).times(1));
    let c = client(&env, env.emulator.local_addr(), Some("westus2"));
    c.acquire_token(&[SCOPE]).await.unwrap();
    assert_eq!(
        env.requests(),
        3,
        "the regional attempt and the global fallback"
    );

    // Regional host unreachable: the global host serves, with no retry policy at all.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let c = client(&env, dead, Some("westus2"));
    c.acquire_token(&[SCOPE]).await.unwrap();
    assert_eq!(env.requests(), 4);
}
