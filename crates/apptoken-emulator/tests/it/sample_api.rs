//! The sample protected API.

use serde_json::Value;

use crate::support::{APP_NO_ROLE, APP_SINGLE, T_HOME, start, start_edge};

#[tokio::test]
async fn users_page_through_with_top() {
    let h = start().await;
    let token = h.secret_grant(&h.tenant()).await.access_token().to_string();
    let mut url = format!("{}/users?$top=10", h.emu.info().sample_api);
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let page = h.get(&url, Some(&token)).await;
        assert_eq!(page.status, 200, "{:#}", page.body);
        assert_eq!(
            page.body["@odata.context"],
            format!("{}/v1.0/$metadata#users", h.emu.base_url())
        );
        let value = page.body["value"].as_array().expect("value");
        assert!(value.len() <= 10);
        for u in value {
            for f in [
                "id",
                "displayName",
                "givenName",
                "surname",
                "userPrincipalName",
                "mail",
                "jobTitle",
            ] {
                assert!(u.get(f).is_some(), "missing {f}");
            }
            assert!(
                u["userPrincipalName"]
                    .as_str()
                    .expect("upn")
                    .ends_with("@contoso.onmicrosoft.com")
            );
            seen.push(u["id"].as_str().expect("id").to_string());
        }
        pages += 1;
        match page.body.get("@odata.nextLink").and_then(Value::as_str) {
            Some(next) => {
                assert!(
                    next.starts_with(&h.emu.base_url()) && next.contains("$skiptoken="),
                    "{next}"
                );
                url = next.to_string();
            }
            None => break,
        }
    }
    assert_eq!(pages, 5);
    assert_eq!(seen.len(), 42);
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 42);

    // Default page size holds all; the customer tenant sees its own users only.
    let all = h.get("/v1.0/users", Some(&token)).await;
    assert_eq!(all.body["value"].as_array().expect("value").len(), 42);
    assert!(all.body.get("@odata.nextLink").is_none());
    let fabrikam = h.emu.info().other_tenants[0].tenant_id.clone();
    let ftoken = h.secret_grant(&fabrikam).await.access_token().to_string();
    let f = h.get("/v1.0/users", Some(&ftoken)).await;
    assert_eq!(f.body["value"].as_array().expect("value").len(), 17);

    // One user by id.
    let one = h
        .get(&format!("/v1.0/users/{}", seen[0]), Some(&token))
        .await;
    assert_eq!(one.status, 200);
    assert_eq!(one.body["id"], seen[0].as_str());
    let missing = h.get("/v1.0/users/nobody", Some(&token)).await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.body["error"]["code"], "Request_ResourceNotFound");

    // Bad $top.
    for top in ["0", "1000", "ten"] {
        let bad = h
            .get(&format!("/v1.0/users?$top={top}"), Some(&token))
            .await;
        assert_eq!(bad.status, 400, "{top}");
    }
    let bad = h.get("/v1.0/users?$skiptoken=zzz", Some(&token)).await;
    assert_eq!(bad.status, 400);
    assert_eq!(h.emu.stats().sample_api_requests(200), 8);
}

#[tokio::test]
async fn unauthenticated_and_invalid_tokens_get_401() {
    let h = start().await;
    let none = h.get("/v1.0/users", None).await;
    assert_eq!(none.status, 401);
    let challenge = none.headers["www-authenticate"].to_str().expect("ascii");
    assert!(challenge.starts_with("Bearer realm=\"\""), "{challenge}");
    assert!(!challenge.contains("error="));
    assert_eq!(none.body["error"]["code"], "InvalidAuthenticationToken");
    for f in ["date", "request-id", "client-request-id"] {
        assert!(none.body["error"]["innerError"].get(f).is_some(), "{f}");
    }

    let token = h.secret_grant(&h.tenant()).await.access_token().to_string();
    let (input, _) = token.rsplit_once('.').expect("jwt");
    for bad in [
        format!("{input}.AAAA"),
        "garbage".to_string(),
        format!("{input}x.sig"),
    ] {
        let r = h.get("/v1.0/users", Some(&bad)).await;
        assert_eq!(r.status, 401);
        let challenge = r.headers["www-authenticate"].to_str().expect("ascii");
        assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
        assert!(challenge.contains("error_description=\""), "{challenge}");
        assert_eq!(r.body["error"]["code"], "InvalidAuthenticationToken");
    }
    assert_eq!(h.emu.stats().sample_api_requests(401), 4);
}

#[tokio::test]
async fn missing_role_gets_403_and_wrong_audience_401() {
    let h = start_edge().await;
    let no_role = h
        .grant_for(T_HOME, APP_NO_ROLE, "pw", "api://edge/.default")
        .await
        .access_token()
        .to_string();
    let r = h.get("/v1.0/users", Some(&no_role)).await;
    assert_eq!(r.status, 403);
    assert_eq!(r.body["error"]["code"], "Authorization_RequestDenied");
    assert_eq!(
        r.body["error"]["message"],
        "Insufficient privileges to complete the operation."
    );

    let ok = h
        .grant_for(T_HOME, APP_SINGLE, "pw", "api://edge/.default")
        .await
        .access_token()
        .to_string();
    let r = h.get("/v1.0/users", Some(&ok)).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.body["value"][0]["userPrincipalName"],
        "only@home.example.com"
    );
}
