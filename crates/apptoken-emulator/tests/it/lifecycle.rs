//! Multi-tenant and lifecycle fidelity, admin consent, key rotation,
//! continuous access evaluation — all on the emulator's clock.

use std::time::Duration;

use apptoken_emulator::{Config, Emulator, TokenLifetimes};
use base64::Engine as _;
use serde_json::{Value, json};

use crate::support::{Alg, Answer, Harness, claims, sign, start};

fn jwt_header(token: &str) -> Value {
    let part = token.split('.').next().expect("header");
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part)
            .expect("b64"),
    )
    .expect("json")
}

#[tokio::test]
async fn expired_certificate_answers_key_expired_on_the_clock() {
    let h = start().await;
    let tid = h.tenant();
    h.emu.freeze_clock();
    // The generated certificate is valid for one year.
    h.emu.advance_clock(Duration::from_secs(400 * 86_400));
    let now = h.emu.now().unix_timestamp();
    let mut c = h.assertion_claims(&tid);
    c["nbf"] = json!(now - 10);
    c["iat"] = json!(now - 10);
    c["exp"] = json!(now + 600);
    let assertion = sign(&h.key_pem_path(), Alg::Rs256, &h.x5t_header(), &c);
    let answer = h.assertion_grant(&tid, &assertion).await;
    answer.assert_aad(
        401,
        "invalid_client",
        700027,
        "Client assertion contains an invalid signature. [Reason - The key used is expired., Thumbprint of key used by client: '",
    );
    // The secret (no expiry) still works at that time.
    assert_eq!(h.secret_grant(&tid).await.status, 200);
}

#[tokio::test]
async fn tokens_for_each_consenting_tenant_carry_its_tid_and_issuer() {
    let h = start().await;
    for tenant in std::iter::once(h.tenant()).chain(
        h.emu
            .info()
            .other_tenants
            .iter()
            .map(|t| t.tenant_id.clone()),
    ) {
        let c = claims(h.secret_grant(&tenant).await.access_token());
        assert_eq!(c["tid"], tenant.as_str());
        assert_eq!(c["iss"], format!("{}/{tenant}/v2.0", h.emu.base_url()));
        // One service principal per tenant: distinct, stable oids.
        let again = claims(h.secret_grant(&tenant).await.access_token());
        assert_eq!(c["oid"], again["oid"]);
    }
}

const T_A: &str = "11111111-1111-1111-1111-111111111111";
const T_C: &str = "33333333-3333-3333-3333-333333333333";
const APP: &str = "aaaaaaaa-0000-0000-0000-000000000010";
const APP_SINGLE: &str = "aaaaaaaa-0000-0000-0000-000000000011";
const APP_OTHER: &str = "aaaaaaaa-0000-0000-0000-000000000012";
const REDIRECT: &str = "https://app.example/consent?from=admin";

const CONSENT_TOML: &str = r#"
[[tenants]]
id = "11111111-1111-1111-1111-111111111111"
domains = ["a.example.com"]
display_name = "Tenant A"
[[tenants]]
id = "33333333-3333-3333-3333-333333333333"
domains = ["c.example.com"]
display_name = "Tenant C"

[[resources]]
app_id = "bbbbbbbb-0000-0000-0000-000000000001"
app_id_uri = "api://consent-api"
roles = [{ value = "Users.Read.All" }, { value = "Mail.Send" }]

[[apps]]
client_id = "aaaaaaaa-0000-0000-0000-000000000010"
display_name = "Consent <Demo> & Co"
home_tenant = "a.example.com"
multi_tenant = true
secrets = [{ value = "pw" }]
redirect_uris = ["https://app.example/consent?from=admin"]
required_roles = [{ resource = "api://consent-api", roles = ["Users.Read.All", "Mail.Send"] }]
[[apps]]
client_id = "aaaaaaaa-0000-0000-0000-000000000011"
home_tenant = "a.example.com"
secrets = [{ value = "pw" }]
redirect_uris = ["https://app.example/consent?from=admin"]
[[apps]]
client_id = "aaaaaaaa-0000-0000-0000-000000000012"
home_tenant = "a.example.com"
multi_tenant = true
secrets = [{ value = "pw" }]
required_roles = [{ resource = "api://consent-api", roles = ["Mail.Send"] }]

[sample_api]
resource = "api://consent-api"
"#;

async fn start_consent() -> Harness {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = Config::from_toml_str(CONSENT_TOML, dir.path()).expect("config");
    let emu = Emulator::start(config, "127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("start");
    Harness {
        emu,
        dir,
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client"),
    }
}

fn location(answer: &Answer) -> url::Url {
    let l = answer.headers["location"].to_str().expect("ascii");
    url::Url::parse(l).expect("absolute Location")
}

fn query(url: &url::Url) -> std::collections::HashMap<String, String> {
    url.query_pairs().into_owned().collect()
}

#[tokio::test]
async fn admin_consent_page_approve_deny_and_errors() {
    let h = start_consent().await;
    let scope = "api://consent-api/.default";
    h.grant_for(T_C, APP, "pw", scope).await.assert_aad(
        401,
        "invalid_client",
        7000229,
        &format!("The client application {APP} is missing service principal in the tenant {T_C}."),
    );

    let page_url = |client: &str, redirect: &str| {
        let mut u =
            url::Url::parse(&format!("{}/{T_C}/adminconsent", h.emu.base_url())).expect("url");
        u.query_pairs_mut()
            .append_pair("client_id", client)
            .append_pair("redirect_uri", redirect)
            .append_pair("state", "s<1>");
        u.to_string()
    };
    let page = h.get(&page_url(APP, REDIRECT), None).await;
    assert_eq!(page.status, 200);
    assert!(
        page.headers["content-type"]
            .to_str()
            .expect("ct")
            .starts_with("text/html")
    );
    let html = page.body.as_str().expect("html").to_string();
    assert!(html.contains("Consent &lt;Demo&gt; &amp; Co"), "{html}");
    assert!(html.contains("Mail.Send (api://consent-api)"), "{html}");
    assert!(html.contains("value=\"approve\"") && html.contains("value=\"deny\""));
    assert!(
        html.contains("value=\"s&lt;1&gt;\""),
        "state is escaped: {html}"
    );
    assert!(!html.contains("<script"), "{html}");

    // Unknown client, unregistered reply URL: error pages, never a redirect.
    let unknown = h
        .get(
            &page_url("aaaaaaaa-9999-0000-0000-000000000000", REDIRECT),
            None,
        )
        .await;
    assert_eq!(unknown.status, 400);
    assert!(unknown.headers.get("location").is_none());
    assert!(
        unknown
            .body
            .as_str()
            .expect("html")
            .contains("AADSTS700016: Application with identifier"),
        "{}",
        unknown.body
    );
    let evil = h.get(&page_url(APP, "https://evil.example/"), None).await;
    assert_eq!(evil.status, 400);
    assert!(evil.headers.get("location").is_none());
    assert!(evil.body.as_str().expect("html").contains("AADSTS50011"));
    // A single-tenant app cannot be consented in another tenant.
    let single = h.get(&page_url(APP_SINGLE, REDIRECT), None).await;
    assert!(single.body.as_str().expect("html").contains("AADSTS700016"));

    let post = |decision: &'static str, redirect: &'static str| {
        let url = format!("{}/{T_C}/adminconsent", h.emu.base_url());
        let form = [
            ("client_id", APP),
            ("redirect_uri", redirect),
            ("state", "s<1>"),
            ("decision", decision),
        ];
        let request = h.http.post(url).form(&form);
        async move { Answer::read(request.send().await.expect("send")).await }
    };
    let evil_post = post("approve", "https://evil.example/").await;
    assert_eq!(evil_post.status, 400);
    assert!(evil_post.headers.get("location").is_none());

    let denied = post("deny", REDIRECT).await;
    assert_eq!(denied.status, 302);
    let to = location(&denied);
    assert_eq!(to.host_str(), Some("app.example"));
    let q = query(&to);
    assert_eq!(q["from"], "admin", "the reply URL's own query is kept");
    assert_eq!(q["error"], "access_denied");
    assert_eq!(q["error_subcode"], "cancel");
    assert_eq!(q["state"], "s<1>");
    assert!(
        q["error_description"]
            .starts_with("AADSTS65004: User declined to consent to access the app."),
        "{q:?}"
    );
    assert_eq!(h.grant_for(T_C, APP, "pw", scope).await.status, 401);

    let approved = post("approve", REDIRECT).await;
    assert_eq!(approved.status, 302);
    let q = query(&location(&approved));
    assert_eq!(q["admin_consent"], "True");
    assert_eq!(q["tenant"], T_C);
    assert_eq!(q["state"], "s<1>");

    let token = h.grant_for(T_C, APP, "pw", scope).await;
    let c = claims(token.access_token());
    assert_eq!(c["tid"], T_C);
    assert_eq!(c["iss"], format!("{}/{T_C}/v2.0", h.emu.base_url()));
    assert_eq!(c["roles"], json!(["Users.Read.All", "Mail.Send"]));
    // Tenant A (home) was never consented: no roles there.
    let home = claims(h.grant_for(T_A, APP, "pw", scope).await.access_token());
    assert!(home.get("roles").is_none(), "{home}");
}

#[tokio::test]
async fn consent_from_rust_and_the_admin_api() {
    let h = start_consent().await;
    let scope = "api://consent-api/.default";
    assert_eq!(h.grant_for(T_C, APP_OTHER, "pw", scope).await.status, 401);
    h.emu
        .grant_consent("c.example.com", APP_OTHER)
        .expect("consent");
    let c = claims(
        h.grant_for(T_C, APP_OTHER, "pw", scope)
            .await
            .access_token(),
    );
    assert_eq!(c["roles"], json!(["Mail.Send"]));
    assert!(h.emu.grant_consent(T_C, APP_SINGLE).is_err());
    assert!(h.emu.grant_consent("nowhere.example", APP).is_err());

    let url = format!("{}/_emulator/consent", h.emu.base_url());
    let ok = h
        .http
        .post(&url)
        .json(&json!({"tenant": T_C, "client_id": APP}))
        .send()
        .await
        .expect("send");
    assert_eq!(ok.status(), 200);
    assert_eq!(h.grant_for(T_C, APP, "pw", scope).await.status, 200);
    for bad in [
        json!({"tenant": T_C}),
        json!({"tenant": T_C, "client_id": APP_SINGLE}),
    ] {
        let r = h.http.post(&url).json(&bad).send().await.expect("send");
        assert_eq!(r.status(), 400, "{bad}");
    }
}

async fn jwks_kids(h: &Harness) -> Vec<String> {
    let tid = h.tenant();
    h.get(&format!("/{tid}/discovery/v2.0/keys"), None)
        .await
        .body["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| k["kid"].as_str().expect("kid").to_string())
        .collect()
}

#[tokio::test]
async fn key_rotation_overlaps_then_retires_the_old_key() {
    let h = start().await;
    let tid = h.tenant();
    h.emu.freeze_clock();
    h.emu
        .set_token_lifetimes(TokenLifetimes::new().expires_in(3 * 86_400));
    let old_token = h.secret_grant(&tid).await.access_token().to_string();
    let old_kid = h.emu.signing_key_id();
    assert_eq!(jwt_header(&old_token)["kid"], old_kid.as_str());
    assert_eq!(jwks_kids(&h).await, vec![old_kid.clone()]);

    let new_kid = h.emu.rotate_signing_key().expect("rotate");
    assert_ne!(new_kid, old_kid);
    assert_eq!(jwks_kids(&h).await, vec![new_kid.clone(), old_kid.clone()]);
    let new_token = h.secret_grant(&tid).await.access_token().to_string();
    assert_eq!(jwt_header(&new_token)["kid"], new_kid.as_str());
    for token in [&old_token, &new_token] {
        assert_eq!(h.get("/v1.0/users", Some(token)).await.status, 200);
    }

    // Within the 24 h overlap the old key still verifies.
    h.emu.advance_clock(Duration::from_secs(23 * 3600));
    assert_eq!(h.get("/v1.0/users", Some(&old_token)).await.status, 200);
    // After it, the old key leaves the JWKS and its tokens are refused.
    h.emu.advance_clock(Duration::from_secs(2 * 3600));
    assert_eq!(jwks_kids(&h).await, vec![new_kid.clone()]);
    let refused = h.get("/v1.0/users", Some(&old_token)).await;
    assert_eq!(refused.status, 401);
    assert_eq!(h.get("/v1.0/users", Some(&new_token)).await.status, 200);

    // Over HTTP too.
    let r: Value = h
        .http
        .post(format!("{}/_emulator/keys/rotate", h.emu.base_url()))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(r["previous_kid"], new_kid.as_str());
    assert_eq!(r["kid"], h.emu.signing_key_id().as_str());
}

const CP1: &str = r#"{"access_token":{"xms_cc":{"values":["cp1"]}}}"#;

async fn grant_with_claims(h: &Harness, claims_param: &str) -> Answer {
    let (id, secret, scope, tid) = (h.client_id(), h.secret(), h.scope(), h.tenant());
    h.post_form(
        &tid,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &id),
            ("client_secret", &secret),
            ("scope", &scope),
            ("claims", claims_param),
        ],
    )
    .await
}

#[tokio::test]
async fn continuous_access_evaluation_challenges_cp1_tokens() {
    let h = start().await;
    let tid = h.tenant();
    h.emu.freeze_clock();
    let capable = grant_with_claims(&h, CP1).await.access_token().to_string();
    assert_eq!(claims(&capable)["xms_cc"], json!(["cp1"]));
    let plain = h.secret_grant(&tid).await.access_token().to_string();
    assert!(claims(&plain).get("xms_cc").is_none());
    for t in [&capable, &plain] {
        assert_eq!(h.get("/v1.0/users", Some(t)).await.status, 200);
    }

    h.emu.advance_clock(Duration::from_secs(10));
    h.emu.revoke_tokens(&h.client_id());
    let revoked_at = h.emu.now().unix_timestamp();

    let challenged = h.get("/v1.0/users", Some(&capable)).await;
    assert_eq!(challenged.status, 401);
    let expected_claims =
        json!({"access_token": {"nbf": {"essential": true, "value": revoked_at.to_string()}}});
    let b64 = base64::engine::general_purpose::STANDARD.encode(expected_claims.to_string());
    assert_eq!(
        challenged.headers["www-authenticate"]
            .to_str()
            .expect("ascii"),
        format!(
            "Bearer realm=\"\", authorization_uri=\"{}/{tid}/oauth2/authorize\", client_id=\"00000003-0000-0000-c000-000000000000\", error=\"insufficient_claims\", claims=\"{b64}\"",
            h.emu.base_url()
        )
    );
    let plain_refused = h.get("/v1.0/users", Some(&plain)).await;
    assert_eq!(plain_refused.status, 401);
    let challenge = plain_refused.headers["www-authenticate"]
        .to_str()
        .expect("ascii");
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    assert!(!challenge.contains("insufficient_claims"), "{challenge}");

    // A fresh token (the client answers the challenge with its claims) passes.
    let merged =
        r#"{"access_token":{"nbf":{"essential":true,"value":"1"},"xms_cc":{"values":["cp1"]}}}"#;
    let fresh = grant_with_claims(&h, merged)
        .await
        .access_token()
        .to_string();
    assert!(claims(&fresh)["iat"].as_i64().expect("iat") >= revoked_at);
    assert_eq!(h.get("/v1.0/users", Some(&fresh)).await.status, 200);
    let fresh_plain = h.secret_grant(&tid).await.access_token().to_string();
    assert_eq!(h.get("/v1.0/users", Some(&fresh_plain)).await.status, 200);

    // Malformed claims.
    for bad in ["{", "[1]", "\"x\""] {
        grant_with_claims(&h, bad).await.assert_aad(
            400,
            "invalid_request",
            90014,
            "The 'claims' parameter is not a valid JSON object.",
        );
    }

    // Over HTTP, for one tenant only.
    let fabrikam = h.emu.info().other_tenants[0].tenant_id.clone();
    let other = h.secret_grant(&fabrikam).await.access_token().to_string();
    h.emu.advance_clock(Duration::from_secs(5));
    let r = h
        .http
        .post(format!("{}/_emulator/revoke", h.emu.base_url()))
        .json(&json!({"client_id": h.client_id(), "tenant": "fabrikam.onmicrosoft.com"}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    assert_eq!(h.get("/v1.0/users", Some(&other)).await.status, 401);
    assert_eq!(
        h.get("/v1.0/users", Some(&fresh)).await.status,
        200,
        "home tenant untouched"
    );
}

/// The largest `key_overlap_secs` TOML can hold: the old key's end of
/// publication saturates at the end of year 9999 instead of overflowing.
#[tokio::test]
async fn the_largest_key_overlap_saturates() {
    let dir = tempfile::tempdir().expect("tempdir");
    let toml = format!(
        "key_overlap_secs = {}\n{}",
        i64::MAX,
        crate::support::EDGE_TOML
    );
    let config = Config::from_toml_str(&toml, dir.path()).expect("config");
    let emu = Emulator::start(config, "127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("start");
    let h = Harness {
        emu,
        dir,
        http: reqwest::Client::new(),
    };
    let old = h.emu.signing_key_id();
    let r = h
        .http
        .post(format!("{}/_emulator/keys/rotate", h.emu.base_url()))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["previous_kid"], old.as_str());
    assert_eq!(body["previous_published_until"], json!(253_402_300_799_i64));
    assert_eq!(jwks_kids(&h).await.len(), 2);
    h.emu.rotate_signing_key().expect("rotate in Rust");
    assert_eq!(jwks_kids(&h).await.len(), 3);
}
