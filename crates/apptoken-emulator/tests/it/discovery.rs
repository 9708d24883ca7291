//! OpenID discovery and JWKS.

use serde_json::Value;

use crate::support::start;

const FIELDS: [&str; 22] = [
    "issuer",
    "authorization_endpoint",
    "token_endpoint",
    "jwks_uri",
    "userinfo_endpoint",
    "device_authorization_endpoint",
    "end_session_endpoint",
    "response_types_supported",
    "response_modes_supported",
    "subject_types_supported",
    "scopes_supported",
    "id_token_signing_alg_values_supported",
    "token_endpoint_auth_methods_supported",
    "claims_supported",
    "tenant_region_scope",
    "cloud_instance_name",
    "cloud_graph_host_name",
    "msgraph_host",
    "rbac_url",
    "http_logout_supported",
    "frontchannel_logout_supported",
    "request_uri_parameter_supported",
];

#[tokio::test]
async fn openid_configuration_has_every_entra_field() {
    let h = start().await;
    let base = h.emu.base_url();
    let tid = h.tenant();
    // Asked by domain name: endpoints still use the GUID.
    let doc = h
        .get(
            "/contoso.onmicrosoft.com/v2.0/.well-known/openid-configuration",
            None,
        )
        .await;
    assert_eq!(doc.status, 200);
    for field in FIELDS {
        assert!(doc.body.get(field).is_some(), "missing {field}");
    }
    assert_eq!(doc.body["issuer"], format!("{base}/{tid}/v2.0"));
    assert_eq!(
        doc.body["token_endpoint"],
        format!("{base}/{tid}/oauth2/v2.0/token")
    );
    assert_eq!(
        doc.body["jwks_uri"],
        format!("{base}/{tid}/discovery/v2.0/keys")
    );
    assert_eq!(
        doc.body["subject_types_supported"],
        serde_json::json!(["pairwise"])
    );
    assert_eq!(
        doc.body["id_token_signing_alg_values_supported"],
        serde_json::json!(["RS256"])
    );
    assert_eq!(
        doc.body["token_endpoint_auth_methods_supported"],
        serde_json::json!([
            "client_secret_post",
            "private_key_jwt",
            "client_secret_basic"
        ])
    );

    let common = h
        .get("/common/v2.0/.well-known/openid-configuration", None)
        .await;
    assert_eq!(common.body["issuer"], format!("{base}/{{tenantid}}/v2.0"));
    assert_eq!(
        common.body["token_endpoint"],
        format!("{base}/common/oauth2/v2.0/token")
    );
}

#[tokio::test]
async fn discovery_errors_use_entra_shape() {
    let h = start().await;
    let unknown = h
        .get(
            "/aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee/v2.0/.well-known/openid-configuration",
            None,
        )
        .await;
    unknown.assert_aad(
        400,
        "invalid_tenant",
        90002,
        "Tenant 'aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee' not found.",
    );
    let malformed = h
        .get("/not_a_tenant/v2.0/.well-known/openid-configuration", None)
        .await;
    malformed.assert_aad(
        400,
        "invalid_request",
        900023,
        "Specified tenant identifier 'not_a_tenant' is neither",
    );
}

#[tokio::test]
async fn jwks_publishes_the_signing_key() {
    let h = start().await;
    let tid = h.tenant();
    let token = h.secret_grant(&tid).await.access_token().to_string();
    for path in [
        format!("/{tid}/discovery/v2.0/keys"),
        "/common/discovery/v2.0/keys".to_string(),
    ] {
        let jwks = h.get(&path, None).await;
        assert_eq!(jwks.status, 200);
        let key = &jwks.body["keys"][0];
        for field in ["kty", "use", "kid", "x5t", "n", "e", "x5c", "issuer"] {
            assert!(key.get(field).is_some(), "missing {field}");
        }
        assert_eq!(key["kty"], "RSA");
        assert_eq!(key["use"], "sig");
        assert_eq!(key["e"], "AQAB");
        // kid/x5t is the base64url SHA-1 of the x5c certificate.
        let x5c = key["x5c"][0].as_str().expect("x5c");
        let der = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, x5c)
            .expect("std b64");
        assert_eq!(
            key["x5t"],
            crate::support::b64url(&crate::support::sha1(&der))
        );
    }
    let jwks = h.get(&format!("/{tid}/discovery/v2.0/keys"), None).await;
    let key = &jwks.body["keys"][0];
    assert_eq!(key["issuer"], format!("{}/{tid}/v2.0", h.emu.base_url()));
    let header: Value = serde_json::from_slice(
        &base64::Engine::decode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            token.split('.').next().expect("h"),
        )
        .expect("b64"),
    )
    .expect("json");
    assert_eq!(header["kid"], key["kid"]);

    // The signature verifies with n/e from the JWKS.
    let decode = |s: &str| {
        base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, s).expect("b64")
    };
    let components = aws_lc_rs::rsa::PublicKeyComponents {
        n: decode(key["n"].as_str().expect("n")),
        e: decode(key["e"].as_str().expect("e")),
    };
    let (input, sig) = token.rsplit_once('.').expect("jwt");
    components
        .verify(
            &aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA256,
            input.as_bytes(),
            &decode(sig),
        )
        .expect("signature verifies with the published key");
    assert_eq!(h.emu.stats().jwks_requests(), 3);
}

#[tokio::test]
async fn unknown_paths_answer_json_404() {
    let h = start().await;
    let answer = h.get("/nothing/here", None).await;
    assert_eq!(answer.status, 404);
    assert_eq!(answer.body["error"], "not_found");
}
