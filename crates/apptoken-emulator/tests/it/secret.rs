//! Client secrets: client_secret_post and client_secret_basic.

use base64::Engine as _;
use serde_json::json;

use crate::support::{claims, start};

#[tokio::test]
async fn secret_post_issues_an_entra_shaped_token() {
    let h = start().await;
    let answer = h.secret_grant(&h.tenant()).await;
    let token = answer.access_token().to_string();
    assert_eq!(answer.body["token_type"], "Bearer");
    assert_eq!(answer.body["expires_in"], json!(3599));
    assert_eq!(answer.body["ext_expires_in"], json!(3599));
    assert!(answer.body.get("refresh_token").is_none() && answer.body.get("scope").is_none());
    assert!(answer.body.get("refresh_in").is_none());
    assert_eq!(answer.headers["cache-control"], "no-store, no-cache");

    let c = claims(&token);
    let tenant = h.tenant();
    assert_eq!(c["aud"], "e3f9a7c1-2b4d-4f6e-8a9b-0c1d2e3f4a5b");
    assert_eq!(c["iss"], format!("{}/{tenant}/v2.0", h.emu.base_url()));
    assert_eq!(c["tid"], tenant);
    assert_eq!(c["azp"], h.client_id());
    assert_eq!(c["azpacr"], "1");
    assert_eq!(c["idtyp"], "app");
    assert_eq!(c["ver"], "2.0");
    assert_eq!(c["roles"], json!(["Users.Read.All"]));
    assert_eq!(c["sub"], c["oid"]);
    assert!(c["exp"].as_i64().expect("exp") > c["iat"].as_i64().expect("iat"));
    assert!(c["uti"].is_string());

    let header_part = token.split('.').next().expect("header");
    let header: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(header_part)
            .expect("b64"),
    )
    .expect("json");
    assert_eq!(header["alg"], "RS256");
    assert_eq!(header["typ"], "JWT");
    assert_eq!(header["kid"], header["x5t"]);

    // The service principal id is stable per tenant.
    let again = claims(h.secret_grant(&tenant).await.access_token());
    assert_eq!(again["oid"], c["oid"]);
    assert_ne!(again["uti"], c["uti"]);
}

#[tokio::test]
async fn secret_basic_with_urlencoded_credentials() {
    let h = start().await;
    let encode = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let basic = base64::engine::general_purpose::STANDARD.encode(format!(
        "{}:{}",
        encode(&h.client_id()),
        encode(&h.secret())
    ));
    let response = h
        .http
        .post(h.token_url("contoso.onmicrosoft.com"))
        .header("authorization", format!("Basic {basic}"))
        .form(&[("grant_type", "client_credentials"), ("scope", &h.scope())])
        .send()
        .await
        .expect("send");
    let answer = crate::support::Answer::read(response).await;
    let c = claims(answer.access_token());
    assert_eq!(c["tid"], h.tenant());
    assert_eq!(c["azpacr"], "1");
}

#[tokio::test]
async fn tenants_by_domain_common_and_customer_tenant() {
    let h = start().await;
    let home = h.tenant();
    for segment in ["CONTOSO.onmicrosoft.com", "common", "organizations"] {
        let c = claims(h.secret_grant(segment).await.access_token());
        assert_eq!(c["tid"], home, "{segment}");
    }
    let fabrikam = &h.emu.info().other_tenants[0];
    assert_eq!(fabrikam.domain, "fabrikam.onmicrosoft.com");
    let c = claims(h.secret_grant(&fabrikam.tenant_id).await.access_token());
    assert_eq!(c["tid"], fabrikam.tenant_id.as_str());
    assert_eq!(
        c["iss"],
        format!("{}/{}/v2.0", h.emu.base_url(), fabrikam.tenant_id)
    );
}

#[tokio::test]
async fn accepts_what_entra_accepts_in_the_request() {
    let h = start().await;
    let (id, secret) = (h.client_id(), h.secret());
    for scope in [
        "openid api://apptoken-sample-api/.default profile offline_access".to_string(),
        "e3f9a7c1-2b4d-4f6e-8a9b-0c1d2e3f4a5b/.default".to_string(),
        "api://apptoken-sample-api//.default".to_string(),
        "API://apptoken-sample-api/.default".to_string(),
    ] {
        let url = format!(
            "{}?x-client-SKU=test&client-request-id=q-1",
            h.token_url(&h.tenant())
        );
        let response = h
            .http
            .post(url)
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", id.as_str()),
                ("client_secret", secret.as_str()),
                ("scope", scope.as_str()),
                ("client_info", "1"),
                ("x-client-ver", "9.9"),
            ])
            .send()
            .await
            .expect("send");
        let answer = crate::support::Answer::read(response).await;
        assert_eq!(answer.status, 200, "{scope}: {:#}", answer.body);
        assert_eq!(answer.headers["client-request-id"], "q-1");
    }
}

#[tokio::test]
async fn stats_count_by_client_tenant_and_outcome() {
    let h = start().await;
    let (id, tenant) = (h.client_id(), h.tenant());
    h.secret_grant(&tenant).await;
    h.secret_grant(&tenant).await;
    h.post_form(
        &tenant,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &id),
            ("client_secret", "wrong"),
            ("scope", &h.scope()),
        ],
    )
    .await;
    h.get(
        &format!("/{tenant}/v2.0/.well-known/openid-configuration"),
        None,
    )
    .await;

    let stats = h.emu.stats();
    assert_eq!(stats.token_requests_total(), 3);
    assert_eq!(stats.token_requests_for(&id), 3);
    assert_eq!(stats.successes_for(&id), 2);
    assert_eq!(stats.count(&id, &tenant, "success"), 2);
    assert_eq!(stats.count(&id, &tenant, "AADSTS7000215"), 1);
    assert_eq!(stats.discovery_requests(), 1);

    let over_http = h.get("/_emulator/stats", None).await;
    assert_eq!(over_http.body["token_requests_total"], 3);
    assert_eq!(over_http.body["discovery_requests"], 1);

    let reset = h
        .http
        .post(format!("{}/_emulator/stats/reset", h.emu.base_url()))
        .send()
        .await
        .expect("send");
    assert!(reset.status().is_success());
    assert_eq!(h.emu.stats().token_requests_total(), 0);
}
