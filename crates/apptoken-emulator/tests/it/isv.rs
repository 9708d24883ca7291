//! The ISV case (issue #17): one multi-tenant app consented in many customer
//! tenants, generated with `apptoken_emulator::generate`; consent and
//! offboarding (`grant_consent`, `revoke_consent`, `DELETE /_emulator/consent`).

use std::time::Instant;

use apptoken_emulator::generate::{IsvFiles, IsvOptions, write_isv};
use apptoken_emulator::{Config, Emulator, Error};
use serde_json::{Value, json};

use crate::support::{Answer, Harness, claims};

const TENANTS: usize = 1000;
const USERS: usize = 3;
/// Customer tenants (0-based) generated without a grant.
const WITHOUT: [usize; 2] = [7, 999];

/// Generates `options` into a fresh directory, loads and starts it; prints
/// how long each step took.
async fn start_isv(options: &IsvOptions) -> (Harness, IsvFiles) {
    let dir = tempfile::tempdir().expect("tempdir");
    let t0 = Instant::now();
    let files = write_isv(dir.path(), options).expect("write_isv");
    let t1 = Instant::now();
    let config = Config::from_file(&files.config_path).expect("the generated config loads");
    let t2 = Instant::now();
    let emu = Emulator::start(config, "127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("the generated config starts");
    let t3 = Instant::now();
    eprintln!(
        "isv: {} tenants x {} users: generate+write {:?}, Config::from_file {:?}, Emulator::start {:?}, total {:?} ({} bytes of TOML)",
        options.tenants,
        options.users_per_tenant,
        t1 - t0,
        t2 - t1,
        t3 - t2,
        t3 - t0,
        files.config.toml.len()
    );
    let h = Harness {
        emu,
        dir,
        http: reqwest::Client::new(),
    };
    (h, files)
}

#[track_caller]
fn assert_no_service_principal(answer: &Answer, client_id: &str, tenant_id: &str) {
    answer.assert_aad(
        401,
        "invalid_client",
        7000229,
        &format!(
            "The client application {client_id} is missing service principal in the tenant {tenant_id}."
        ),
    );
}

#[tokio::test]
async fn a_thousand_customer_tenants_consent_offboard_and_list_their_own_users() {
    let options = IsvOptions::new(TENANTS)
        .users_per_tenant(USERS)
        .without_consent(WITHOUT);
    let (h, files) = start_isv(&options).await;
    let isv = &files.config;
    assert_eq!(h.client_id(), isv.client_id);
    assert_eq!(h.tenant(), isv.home_tenant);
    assert_eq!(h.scope(), isv.scope);
    assert_eq!(h.emu.info().other_tenants.len(), TENANTS);
    let secret = std::fs::read_to_string(&files.secret_path).expect("secret");
    assert_eq!(h.secret(), secret.trim());

    // Consented tenants, by domain and by id: a token with that tid and the role.
    for i in [0, 1, 500, 998] {
        for tenant in [&isv.tenants[i], &isv.tenant_ids[i]] {
            let c = claims(h.secret_grant(tenant).await.access_token());
            assert_eq!(c["tid"], isv.tenant_ids[i].as_str());
            assert_eq!(c["roles"], json!(["Users.Read.All"]));
        }
    }
    // The home tenant too (`common` resolves to it).
    let c = claims(h.secret_grant("common").await.access_token());
    assert_eq!(c["tid"], isv.home_tenant.as_str());

    // Generated without consent: AADSTS7000229, by domain and by id.
    for i in WITHOUT {
        for tenant in [&isv.tenants[i], &isv.tenant_ids[i]] {
            let answer = h.secret_grant(tenant).await;
            assert_no_service_principal(&answer, &isv.client_id, &isv.tenant_ids[i]);
        }
    }

    // Admin consent at runtime: tokens from then on.
    h.emu
        .grant_consent(&isv.tenants[7], &isv.client_id)
        .expect("grant_consent");
    let c = claims(h.secret_grant(&isv.tenants[7]).await.access_token());
    assert_eq!(c["tid"], isv.tenant_ids[7].as_str());
    assert_eq!(c["roles"], json!(["Users.Read.All"]));

    // Offboarding, of a runtime consent (7) and of a configured grant (500):
    // 7000229 again, exactly as for a tenant that never consented.
    for i in [7, 500] {
        h.emu
            .revoke_consent(&isv.tenants[i], &isv.client_id)
            .expect("revoke_consent");
        let answer = h.secret_grant(&isv.tenants[i]).await;
        assert_no_service_principal(&answer, &isv.client_id, &isv.tenant_ids[i]);
        // Idempotent.
        h.emu
            .revoke_consent(&isv.tenant_ids[i], &isv.client_id)
            .expect("revoke_consent again");
    }
    // Neighbours keep their consent.
    for i in [499, 501, 998] {
        assert_eq!(h.secret_grant(&isv.tenants[i]).await.status, 200);
    }
    // Consenting again after offboarding grants the required roles again.
    h.emu
        .grant_consent(&isv.tenant_ids[500], &isv.client_id)
        .expect("grant_consent after revoke");
    let c = claims(h.secret_grant(&isv.tenants[500]).await.access_token());
    assert_eq!(c["roles"], json!(["Users.Read.All"]));

    // Refused: the home tenant, unknown tenant or app; nothing changes.
    for (tenant, client_id, expected) in [
        (
            isv.home_domain.as_str(),
            isv.client_id.as_str(),
            "home tenant",
        ),
        (
            isv.home_tenant.as_str(),
            isv.client_id.as_str(),
            "home tenant",
        ),
        ("nowhere.example", isv.client_id.as_str(), "unknown tenant"),
        (
            isv.tenants[0].as_str(),
            "00000000-0000-4000-8000-00000000dead",
            "unknown client_id",
        ),
    ] {
        match h.emu.revoke_consent(tenant, client_id) {
            Err(Error::Config(m)) => assert!(m.contains(expected), "{m}"),
            other => panic!("{tenant}: expected Error::Config, got {other:?}"),
        }
    }
    assert_eq!(h.secret_grant(&isv.home_tenant).await.status, 200);

    // The sample API with a customer tenant's token: that tenant's users only.
    for i in [0, 998] {
        let token = h
            .secret_grant(&isv.tenants[i])
            .await
            .access_token()
            .to_string();
        let page = h.get("/v1.0/users", Some(&token)).await;
        assert_eq!(page.status, 200, "{:#}", page.body);
        let users = page.body["value"].as_array().expect("value");
        assert_eq!(users.len(), USERS, "{:#}", page.body);
        assert!(page.body.get("@odata.nextLink").is_none());
        let suffix = format!("@{}", isv.tenants[i]);
        for user in users {
            let upn = user["userPrincipalName"].as_str().expect("upn");
            assert!(upn.ends_with(&suffix), "{upn} is not in {}", isv.tenants[i]);
        }
    }
}

#[tokio::test]
async fn delete_emulator_consent_offboards_over_http() {
    let options = IsvOptions::new(5).users_per_tenant(2).without_consent([4]);
    let (h, files) = start_isv(&options).await;
    let isv = &files.config;
    let url = format!("{}/_emulator/consent", h.emu.base_url());
    let send = |method: reqwest::Method, body: Value| {
        let request = h.http.request(method, &url).json(&body);
        async move { Answer::read(request.send().await.expect("send")).await }
    };

    assert_eq!(h.secret_grant(&isv.tenants[1]).await.status, 200);
    let revoked = send(
        reqwest::Method::DELETE,
        json!({"tenant": isv.tenants[1], "client_id": isv.client_id.to_uppercase()}),
    )
    .await;
    assert_eq!(revoked.status, 200, "{:#}", revoked.body);
    assert_eq!(
        revoked.body,
        json!({"tenant": isv.tenant_ids[1], "client_id": isv.client_id, "revoked": true})
    );
    let answer = h.secret_grant(&isv.tenants[1]).await;
    assert_no_service_principal(&answer, &isv.client_id, &isv.tenant_ids[1]);

    // POST gives it back; a tenant generated without consent can be revoked
    // too (idempotent: it has nothing to remove).
    let granted = send(
        reqwest::Method::POST,
        json!({"tenant": isv.tenant_ids[1], "client_id": isv.client_id}),
    )
    .await;
    assert_eq!(granted.status, 200, "{:#}", granted.body);
    assert_eq!(h.secret_grant(&isv.tenants[1]).await.status, 200);
    let idle = send(
        reqwest::Method::DELETE,
        json!({"tenant": isv.tenants[4], "client_id": isv.client_id}),
    )
    .await;
    assert_eq!(idle.status, 200, "{:#}", idle.body);

    for (body, expected) in [
        (
            json!({"tenant": isv.home_domain, "client_id": isv.client_id}),
            "home tenant",
        ),
        (
            json!({"tenant": "nowhere.example", "client_id": isv.client_id}),
            "unknown tenant 'nowhere.example'",
        ),
        (
            json!({"tenant": isv.tenants[0], "client_id": "00000000-0000-4000-8000-00000000dead"}),
            "unknown client_id",
        ),
        (json!({"tenant": isv.tenants[0]}), "client_id"),
        (
            json!({"tenant": isv.tenants[0], "client_id": isv.client_id, "extra": 1}),
            "extra",
        ),
        (json!("not an object"), "invalid type"),
    ] {
        let answer = send(reqwest::Method::DELETE, body.clone()).await;
        assert_eq!(answer.status, 400, "{body}: {:#}", answer.body);
        assert_eq!(answer.body["error"], "invalid_request", "{:#}", answer.body);
        let description = answer.body["error_description"].as_str().unwrap_or("");
        assert!(description.contains(expected), "{body}: {description}");
    }
    // Nothing was revoked by the refused requests.
    assert_eq!(h.secret_grant(&isv.tenants[0]).await.status, 200);
    assert_eq!(h.secret_grant(&isv.home_tenant).await.status, 200);
}
