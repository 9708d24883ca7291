//! Fault injection and token lifetimes, through the Rust API and over HTTP.

use std::time::{Duration, Instant};

use apptoken_emulator::{Fault, Target, TokenLifetimes};
use serde_json::{Value, json};

use crate::support::{Answer, Harness, claims, start};

impl Harness {
    pub(crate) async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Answer {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.emu.base_url()));
        if let Some(body) = body {
            request = request.json(&body);
        }
        Answer::read(request.send().await.expect("send")).await
    }
}

#[tokio::test]
async fn entra_throttle_applies_n_times_and_is_counted() {
    let h = start().await;
    let (tenant, client) = (h.tenant(), h.client_id());
    h.emu
        .add_fault(Fault::entra_throttle(Target::Token).times(2));
    for _ in 0..2 {
        let a = h.secret_grant(&tenant).await;
        assert_eq!(a.status, 429);
        assert_eq!(a.headers["retry-after"], "60");
        assert_eq!(a.body, Value::String("Too Many Requests".into()));
        assert!(
            a.headers["content-type"]
                .to_str()
                .expect("ct")
                .starts_with("text/plain")
        );
    }
    assert_eq!(h.secret_grant(&tenant).await.status, 200);
    let stats = h.emu.stats();
    assert_eq!(stats.count(&client, &tenant, "fault:429"), 2);
    assert_eq!(stats.successes_for(&client), 1);
    assert_eq!(stats.token_requests_for(&client), 3);
    assert_eq!(stats.token_requests_total(), 3);
}

#[tokio::test]
async fn client_id_and_tenant_filters_select_requests() {
    let h = start().await;
    let (tenant, client) = (h.tenant(), h.client_id());
    let other_tenant = h.emu.info().other_tenants[0].tenant_id.clone();
    let other = h.emu.add_fault(
        Fault::on(Target::Token)
            .client_id("00000000-1111-2222-3333-444444444444")
            .status(500),
    );
    assert_eq!(h.secret_grant(&tenant).await.status, 200);
    h.emu.remove_fault(other);
    // Basic authentication names the client too; case does not matter.
    h.emu.add_fault(
        Fault::on(Target::Token)
            .client_id(&client.to_uppercase())
            .tenant("fabrikam.onmicrosoft.com")
            .status(502),
    );
    assert_eq!(h.secret_grant(&tenant).await.status, 200);
    let faulted = h.secret_grant(&other_tenant).await;
    assert_eq!(faulted.status, 502);
    let basic = h
        .http
        .post(h.token_url("fabrikam.onmicrosoft.com"))
        .basic_auth(&client, Some(h.secret()))
        .form(&[("grant_type", "client_credentials"), ("scope", &h.scope())])
        .send()
        .await
        .expect("send");
    assert_eq!(basic.status(), 502);
    assert_eq!(h.emu.stats().count(&client, &other_tenant, "fault:502"), 2);
    h.emu.clear_faults();
    assert_eq!(h.secret_grant(&other_tenant).await.status, 200);
}

#[tokio::test]
async fn dropped_connection_is_a_transport_error() {
    let h = start().await;
    let client = h.client_id();
    h.emu
        .add_fault(Fault::on(Target::Token).drop_connection().times(1));
    let err = h
        .http
        .post(h.token_url(&h.tenant()))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", &client),
            ("client_secret", &h.secret()),
            ("scope", &h.scope()),
        ])
        .send()
        .await
        .expect_err("the connection must close without an answer");
    assert!(!err.is_status(), "{err:?}");
    assert!(err.status().is_none());
    assert_eq!(h.emu.stats().count(&client, &h.tenant(), "fault:drop"), 1);
    // The server still answers afterwards.
    assert_eq!(h.secret_grant(&h.tenant()).await.status, 200);
}

#[tokio::test]
async fn delay_only_fault_delays_then_answers_normally() {
    let h = start().await;
    h.emu
        .add_fault(Fault::on(Target::Jwks).delay(Duration::from_millis(150)));
    let started = Instant::now();
    let keys = h.get("/common/discovery/v2.0/keys", None).await;
    assert!(started.elapsed() >= Duration::from_millis(150));
    assert_eq!(keys.status, 200);
    assert!(keys.body["keys"].is_array());
    assert_eq!(h.emu.stats().jwks_requests(), 1);
}

#[tokio::test]
async fn share_faults_a_fraction_deterministically() {
    let h = start().await;
    h.emu
        .add_fault(Fault::on(Target::SampleApi).share(0.5).status(503));
    let statuses: Vec<u16> = {
        let mut v = Vec::new();
        for _ in 0..4 {
            v.push(h.get("/v1.0/users", None).await.status.as_u16());
        }
        v
    };
    // Not faulted: 401 (no token). Faulted: 503.
    assert_eq!(statuses, [401, 503, 401, 503]);
    assert_eq!(h.emu.stats().sample_api_requests(503), 2);
}

#[tokio::test]
async fn path_fault_with_custom_answer() {
    let h = start().await;
    h.emu.add_fault(
        Fault::on(Target::Path("/error".into()))
            .status(418)
            .body("{\"x\":1}".into())
            .content_type("application/json".into())
            .retry_after("Wed, 21 Oct 2037 07:28:00 GMT".into()),
    );
    let a = h.get("/error?code=1", None).await;
    assert_eq!(a.status, 418);
    assert_eq!(a.body, json!({"x": 1}));
    assert_eq!(a.headers["retry-after"], "Wed, 21 Oct 2037 07:28:00 GMT");
    // Admin endpoints are never faulted.
    h.emu
        .add_fault(Fault::on(Target::Path("/".into())).status(500));
    assert_eq!(h.get("/_emulator/stats", None).await.status, 200);
}

#[tokio::test]
async fn http_api_adds_lists_and_removes_faults() {
    let h = start().await;
    use reqwest::Method;
    let added = h
        .admin(
            Method::POST,
            "/_emulator/faults",
            Some(json!({"target": "discovery", "preset": "unavailable", "times": 1})),
        )
        .await;
    assert_eq!(added.status, 200, "{}", added.body);
    let id = added.body["id"].as_u64().expect("id");
    let list = h.admin(Method::GET, "/_emulator/faults", None).await;
    assert_eq!(list.body["faults"][0]["id"], id);
    assert_eq!(list.body["faults"][0]["remaining"], 1);
    assert_eq!(list.body["faults"][0]["target"], "discovery");

    let doc = h
        .get("/common/v2.0/.well-known/openid-configuration", None)
        .await;
    assert_eq!(doc.status, 503);
    assert_eq!(doc.body["error"], "temporarily_unavailable");
    assert_eq!(doc.body["error_codes"], json!([90033]));
    assert!(
        doc.body["error_description"]
            .as_str()
            .expect("description")
            .starts_with("AADSTS90033: ")
    );
    assert!(doc.headers.contains_key("x-ms-request-id"));
    // Used up: removed from the list, and discovery answers again.
    let list = h.admin(Method::GET, "/_emulator/faults", None).await;
    assert_eq!(list.body["faults"], json!([]));
    let doc = h
        .get("/common/v2.0/.well-known/openid-configuration", None)
        .await;
    assert_eq!(doc.status, 200);
    assert_eq!(h.emu.stats().discovery_requests(), 2);

    let added = h
        .admin(
            Method::POST,
            "/_emulator/faults",
            Some(
                json!({"target": "token", "preset": "entra_throttle", "client_id": h.client_id()}),
            ),
        )
        .await;
    let id = added.body["id"].as_u64().expect("id");
    assert_eq!(h.secret_grant(&h.tenant()).await.status, 429);
    let path = format!("/_emulator/faults/{id}");
    assert_eq!(h.admin(Method::DELETE, &path, None).await.status, 204);
    assert_eq!(h.admin(Method::DELETE, &path, None).await.status, 404);
    assert_eq!(h.secret_grant(&h.tenant()).await.status, 200);

    h.admin(
        Method::POST,
        "/_emulator/faults",
        Some(json!({"path": "/v1.0", "status": 500, "delay_ms": 1})),
    )
    .await;
    assert_eq!(h.get("/v1.0/users", None).await.status, 500);
    assert_eq!(
        h.admin(Method::DELETE, "/_emulator/faults", None)
            .await
            .status,
        204
    );
    assert_eq!(h.get("/v1.0/users", None).await.status, 401);

    let bad = h
        .http
        .post(format!("{}/_emulator/faults", h.emu.base_url()))
        .body("{not json")
        .send()
        .await
        .expect("send");
    assert_eq!(bad.status(), 400);
    let body: Value = bad.json().await.expect("json");
    assert!(
        body["error_description"]
            .as_str()
            .expect("message")
            .starts_with("Invalid fault JSON")
    );
    let bad = h
        .admin(
            Method::POST,
            "/_emulator/faults",
            Some(json!({"target": "tokens"})),
        )
        .await;
    assert_eq!(bad.status, 400);
    assert!(
        bad.body["error_description"]
            .as_str()
            .expect("m")
            .contains("tokens")
    );
}

fn lifetime_of(answer: &Answer) -> i64 {
    let c = claims(answer.access_token());
    // iat is back-dated five minutes.
    c["exp"].as_i64().expect("exp") - (c["iat"].as_i64().expect("iat") + 300)
}

#[tokio::test]
async fn token_lifetimes_apply_to_new_tokens() {
    let h = start().await;
    let tenant = h.tenant();
    let default = h.secret_grant(&tenant).await;
    assert_eq!(default.body["expires_in"], 3599);
    assert!(default.body.get("refresh_in").is_none());
    assert_eq!(lifetime_of(&default), 3600);

    h.emu
        .set_token_lifetimes(TokenLifetimes::new().expires_in(120).refresh_in(60));
    let short = h.secret_grant(&tenant).await;
    assert_eq!(short.body["expires_in"], 120);
    assert_eq!(short.body["ext_expires_in"], 120);
    assert_eq!(short.body["refresh_in"], 60);
    assert_eq!(lifetime_of(&short), 121);

    let set = h
        .admin(
            reqwest::Method::POST,
            "/_emulator/token-lifetimes",
            Some(json!({"expires_in": 600, "ext_expires_in": 7200, "refresh_in": null})),
        )
        .await;
    assert_eq!(set.status, 200);
    let longer = h.secret_grant(&tenant).await;
    assert_eq!(longer.body["expires_in"], 600);
    assert_eq!(longer.body["ext_expires_in"], 7200);
    assert!(longer.body.get("refresh_in").is_none());
    assert_eq!(lifetime_of(&longer), 601);

    let reset = h
        .admin(
            reqwest::Method::POST,
            "/_emulator/token-lifetimes",
            Some(json!({"expires_in": null})),
        )
        .await;
    assert_eq!(reset.body["expires_in"], 3599);
    assert_eq!(h.secret_grant(&tenant).await.body["ext_expires_in"], 3599);
    let bad = h
        .admin(
            reqwest::Method::POST,
            "/_emulator/token-lifetimes",
            Some(json!({"expires_in": "soon"})),
        )
        .await;
    assert_eq!(bad.status, 400);
}
