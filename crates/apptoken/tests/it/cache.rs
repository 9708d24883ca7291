//! The cache turns repeated calls into one request; overrides make new ones.

use apptoken::TokenRequest;

use crate::support::*;

#[tokio::test]
async fn two_calls_one_request() {
    let env = start().await;
    let client = env.secret_client();
    let a = client.acquire_token(&[SCOPE]).await.unwrap();
    let b = client.acquire_token(&[SCOPE]).await.unwrap();
    assert!(a.is_same_token(&b));
    // order, case and the OIDC scopes do not make a new key
    let c = client
        .acquire_token(&["openid", "API://APPTOKEN-SAMPLE-API/.default"])
        .await
        .unwrap();
    assert!(a.is_same_token(&c));
    assert_eq!(env.requests(), 1);
    assert_eq!(client.cached_tokens(), 1);
}

#[tokio::test]
async fn tenant_override_and_force_refresh_make_new_requests() {
    let env = start().await;
    let client = env.secret_client();
    let home = client.acquire_token(&[SCOPE]).await.unwrap();
    let other = client
        .acquire_token_with(TokenRequest::new([SCOPE]).tenant(OTHER_TENANT))
        .await
        .unwrap();
    assert_eq!(other.tenant(), OTHER_TENANT);
    assert!(!home.is_same_token(&other));
    assert_eq!(env.requests(), 2);
    // the other tenant's token carries that tenant's tid
    let tid = claims(other.secret())["tid"].as_str().unwrap().to_string();
    assert_eq!(tid, OTHER_TENANT);
    // cached per tenant
    client
        .acquire_token_with(TokenRequest::new([SCOPE]).tenant(OTHER_TENANT))
        .await
        .unwrap();
    assert_eq!(env.requests(), 2);
    let forced = client
        .acquire_token_with(TokenRequest::new([SCOPE]).force_refresh(true))
        .await
        .unwrap();
    assert!(!forced.is_same_token(&home));
    assert_eq!(env.requests(), 3);
    // and the forced token replaced the cached one
    let after = client.acquire_token(&[SCOPE]).await.unwrap();
    assert!(after.is_same_token(&forced));
    assert_eq!(env.requests(), 3);
}

#[tokio::test]
async fn concurrent_callers_share_one_request() {
    let env = start().await;
    let client = env.secret_client();
    let mut tasks = Vec::new();
    for _ in 0..200 {
        let c = client.clone();
        tasks.push(tokio::spawn(async move { c.acquire_token(&[SCOPE]).await }));
    }
    let mut tokens = Vec::new();
    for t in tasks {
        tokens.push(t.await.unwrap().unwrap());
    }
    assert!(tokens.windows(2).all(|w| w[0].is_same_token(&w[1])));
    assert_eq!(env.requests(), 1);
}

#[tokio::test]
async fn a_cached_token_calls_the_sample_api() {
    let env = start().await;
    let client = env.secret_client();
    let token = client.acquire_token(&[SCOPE]).await.unwrap();
    let url = format!("{}/v1.0/users?$top=5", env.emulator.base_url());
    let resp = reqwest::Client::new()
        .get(&url)
        .header("Authorization", token.authorization_header())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["value"].as_array().unwrap().len(), 5);
    assert!(body["@odata.nextLink"].is_string());
}

pub(crate) fn claims(jwt: &str) -> serde_json::Value {
    use base64::Engine;
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}
