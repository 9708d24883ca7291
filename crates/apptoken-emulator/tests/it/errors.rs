//! Request failures at the token endpoint, matched against entra-errors.tsv.

use crate::support::{
    APP_DISABLED, APP_MULTI, APP_NO_ROLE, APP_SINGLE, T_HOME, T_OTHER, start, start_edge,
};

#[tokio::test]
async fn tenant_errors() {
    let h = start().await;
    h.secret_grant("aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee").await.assert_aad(
        400, "invalid_request", 90002,
        "Tenant 'aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee' not found. This may happen if there are no active subscriptions for the tenant.",
    );
    h.secret_grant("nowhere.onmicrosoft.com").await.assert_aad(
        400,
        "invalid_request",
        90002,
        "Tenant 'nowhere.onmicrosoft.com' not found.",
    );
    h.secret_grant("not_a_tenant").await.assert_aad(
        400, "invalid_request", 900023,
        "Specified tenant identifier 'not_a_tenant' is neither a valid DNS name, nor a valid external domain.",
    );
    h.secret_grant("00000000-0000-0000-0000-000000000000")
        .await
        .assert_aad(
            400,
            "invalid_request",
            90002,
            "Requested tenant identifier '00000000-0000-0000-0000-000000000000' is not valid.",
        );
}

#[tokio::test]
async fn client_and_credential_errors() {
    let h = start().await;
    let tid = h.tenant();
    let (id, scope) = (h.client_id(), h.scope());
    let gt = ("grant_type", "client_credentials");

    h.post_form(&tid, &[gt, ("client_id", "00000000-1234-1234-1234-123456789012"), ("client_secret", "x"), ("scope", &scope)])
        .await
        .assert_aad(400, "unauthorized_client", 700016,
            "Application with identifier '00000000-1234-1234-1234-123456789012' was not found in the directory 'Contoso'.");
    h.post_form(&tid, &[gt, ("client_id", &id), ("client_secret", "wrong"), ("scope", &scope)])
        .await
        .assert_aad(401, "invalid_client", 7000215, &format!(
            "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{id}'."));
    h.post_form(&tid, &[gt, ("client_id", &id), ("scope", &scope)])
        .await
        .assert_aad(401, "invalid_client", 7000216, "'client_assertion', 'client_secret' or 'request' is required for the 'client_credentials' grant type.");
    h.post_form(&tid, &[gt, ("scope", &scope)])
        .await
        .assert_aad(
            401,
            "invalid_client",
            7000216,
            "'client_assertion', 'client_secret' or 'request'",
        );
    h.post_form(&tid, &[gt, ("client_secret", "x"), ("scope", &scope)])
        .await
        .assert_aad(
            400,
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'client_id'.",
        );
    h.post_form(
        &tid,
        &[
            ("client_id", &id),
            ("client_secret", "x"),
            ("scope", &scope),
        ],
    )
    .await
    .assert_aad(
        400,
        "invalid_request",
        900144,
        "The request body must contain the following parameter: 'grant_type'.",
    );
    h.post_form(
        &tid,
        &[
            ("grant_type", "password"),
            ("client_id", &id),
            ("client_secret", "x"),
            ("scope", &scope),
        ],
    )
    .await
    .assert_aad(
        400,
        "unsupported_grant_type",
        70003,
        "The app requested an unsupported grant type 'password'.",
    );
}

#[tokio::test]
async fn scope_errors() {
    let h = start().await;
    let tid = h.tenant();
    let (id, secret) = (h.client_id(), h.secret());
    let ask = |scope: &'static str| {
        let (tid, id, secret) = (tid.clone(), id.clone(), secret.clone());
        let h = &h;
        async move {
            h.post_form(
                &tid,
                &[
                    ("grant_type", "client_credentials"),
                    ("client_id", &id),
                    ("client_secret", &secret),
                    ("scope", scope),
                ],
            )
            .await
        }
    };
    ask("api://apptoken-sample-api/Users.Read").await.assert_aad(400, "invalid_scope", 1002012,
        "The provided value for scope api://apptoken-sample-api/Users.Read is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).");
    ask("api://apptoken-sample-api/.default https://graph.microsoft.com/.default").await.assert_aad(400, "invalid_scope", 70011,
        "The provided request must include a 'scope' input parameter. The provided value for the input parameter 'scope' is not valid. The scope api://apptoken-sample-api/.default https://graph.microsoft.com/.default is not valid.");
    ask("https://graph.microsoft.com/.default").await.assert_aad(400, "invalid_resource", 500011,
        "The resource principal named https://graph.microsoft.com was not found in the tenant named Contoso.");
    h.post_form(
        &tid,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &id),
            ("client_secret", &secret),
        ],
    )
    .await
    .assert_aad(
        400,
        "invalid_request",
        900144,
        "The request body must contain the following parameter: 'scope'.",
    );
}

#[tokio::test]
async fn app_state_errors() {
    let h = start_edge().await;
    let scope = "api://edge/.default";
    h.grant_for(T_HOME, APP_DISABLED, "pw", scope)
        .await
        .assert_aad(
            400,
            "unauthorized_client",
            7000112,
            &format!("Application '{APP_DISABLED}'(Disabled App) is disabled."),
        );
    h.grant_for(T_OTHER, APP_SINGLE, "pw", scope)
        .await
        .assert_aad(
            400,
            "unauthorized_client",
            700016,
            &format!(
                "Application with identifier '{APP_SINGLE}' was not found in the directory 'Other'."
            ),
        );
    h.grant_for(T_OTHER, APP_MULTI, "pw", scope).await
        .assert_aad(401, "invalid_client", 7000229, &format!(
            "The client application {APP_MULTI} is missing service principal in the tenant {T_OTHER}. See instructions here: https://go.microsoft.com/fwlink/?linkid=2225119"));
    h.grant_for(T_HOME, APP_NO_ROLE, "old", scope)
        .await
        .assert_aad(
            401,
            "invalid_client",
            7000222,
            &format!("The provided client secret keys for app '{APP_NO_ROLE}' are expired."),
        );
    // refresh_in is answered when configured; no grant means no roles claim.
    let ok = h.grant_for(T_HOME, APP_NO_ROLE, "pw", scope).await;
    assert_eq!(ok.body["refresh_in"], serde_json::json!(1800));
    assert!(
        crate::support::claims(ok.access_token())
            .get("roles")
            .is_none()
    );
}

#[tokio::test]
async fn malformed_requests_never_break_the_shape() {
    let h = start().await;
    let url = h.token_url(&h.tenant());
    // JSON body instead of a form.
    let r = h
        .http
        .post(&url)
        .header("content-type", "application/json")
        .body(r#"{"grant_type":"client_credentials"}"#)
        .send()
        .await
        .expect("send");
    crate::support::Answer::read(r).await.assert_aad(
        400,
        "invalid_request",
        900144,
        "The request body must contain the following parameter: 'grant_type'.",
    );
    // Invalid UTF-8 and broken escapes in a form.
    let r = h
        .http
        .post(&url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            b"grant_type=client_credentials&client_id=%FF%FE%&client_secret=\xff\xfe&scope=%"
                .to_vec(),
        )
        .send()
        .await
        .expect("send");
    let a = crate::support::Answer::read(r).await;
    assert!(
        a.status.is_client_error() && a.body["error_codes"].is_array(),
        "{:#}",
        a.body
    );
    // Oversized body.
    let r = h
        .http
        .post(&url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(vec![b'a'; 70 * 1024])
        .send()
        .await
        .expect("send");
    crate::support::Answer::read(r).await.assert_aad(
        413,
        "invalid_request",
        90023,
        "The request body is larger than",
    );
    // Garbage Basic header is ignored (then: no credential).
    let r = h
        .http
        .post(&url)
        .header("authorization", "Basic %%%")
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", "x/.default"),
        ])
        .send()
        .await
        .expect("send");
    crate::support::Answer::read(r).await.assert_aad(
        401,
        "invalid_client",
        7000216,
        "'client_assertion'",
    );
    // GET on the token endpoint.
    h.get(&url, None).await.assert_aad(
        400,
        "invalid_request",
        900561,
        "The endpoint only accepts POST, OPTIONS requests.",
    );
    // Percent-encoded invalid UTF-8 in the tenant segment.
    let r = h
        .http
        .post(format!("{}/%FF/oauth2/v2.0/token", h.emu.base_url()))
        .form(&[("a", "b")])
        .send()
        .await
        .expect("send");
    crate::support::Answer::read(r).await.assert_aad(
        400,
        "invalid_request",
        900023,
        "Specified tenant identifier",
    );
}

#[tokio::test]
async fn correlation_id_echoes_client_request_id() {
    let h = start().await;
    let r = h
        .http
        .post(h.token_url(&h.tenant()))
        .header("client-request-id", "my-corr-id")
        .form(&[("grant_type", "x")])
        .send()
        .await
        .expect("send");
    let a = crate::support::Answer::read(r).await;
    assert_eq!(a.body["correlation_id"], "my-corr-id");
    assert_eq!(a.headers["client-request-id"], "my-corr-id");
    assert!(
        a.body["error_description"]
            .as_str()
            .expect("d")
            .contains("\r\nCorrelation ID: my-corr-id\r\nTimestamp: ")
    );
    assert_eq!(
        a.body["error_uri"],
        format!("{}/error?code=70003", h.emu.base_url())
    );
}
