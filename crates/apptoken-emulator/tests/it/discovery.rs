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

#[tokio::test]
async fn openid_configuration_values_never_name_microsoft_hosts() {
    let h = start().await;
    let base = h.emu.base_url();
    let host = base.trim_start_matches("http://");
    let tid = h.tenant();
    let doc = h
        .get(
            &format!("/{tid}/v2.0/.well-known/openid-configuration"),
            None,
        )
        .await;
    let b = &doc.body;
    let expected = serde_json::json!({
        "issuer": format!("{base}/{tid}/v2.0"),
        "authorization_endpoint": format!("{base}/{tid}/oauth2/v2.0/authorize"),
        "token_endpoint": format!("{base}/{tid}/oauth2/v2.0/token"),
        "jwks_uri": format!("{base}/{tid}/discovery/v2.0/keys"),
        "userinfo_endpoint": format!("{base}/oidc/userinfo"),
        "device_authorization_endpoint": format!("{base}/{tid}/oauth2/v2.0/devicecode"),
        "end_session_endpoint": format!("{base}/{tid}/oauth2/v2.0/logout"),
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "tenant_region_scope": "NA",
        "cloud_instance_name": "127.0.0.1",
        "cloud_graph_host_name": host,
        "msgraph_host": host,
        "rbac_url": base,
        "http_logout_supported": true,
        "frontchannel_logout_supported": true,
        "request_uri_parameter_supported": false,
    });
    for (field, value) in expected.as_object().expect("object") {
        assert_eq!(&b[field], value, "{field}");
    }
    let claims = b["claims_supported"].as_array().expect("claims");
    for c in ["sub", "iss", "aud", "exp", "iat", "tid", "ver"] {
        assert!(claims.contains(&Value::from(c)), "{c}");
    }
    let text = b.to_string();
    for real in ["microsoftonline.com", "windows.net", "microsoft.com"] {
        assert!(!text.contains(real), "{real} in {text}");
    }
    // `{tenantid}` only in the issuer, as Entra does for common/organizations.
    let org = h
        .get("/organizations/v2.0/.well-known/openid-configuration", None)
        .await;
    assert_eq!(org.body["issuer"], format!("{base}/{{tenantid}}/v2.0"));
    assert_eq!(org.body["tenant_region_scope"], Value::Null);
    let placeholders = org.body.to_string().matches("{tenantid}").count();
    assert_eq!(placeholders, 1);
}

#[tokio::test]
async fn endpoints_follow_the_request_host() {
    let h = start().await;
    let port = h.emu.local_addr().port();
    let base = h.emu.base_url();
    let doc: Value = h
        .http
        .get(format!(
            "http://localhost:{port}/common/v2.0/.well-known/openid-configuration"
        ))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(
        doc["token_endpoint"],
        format!("http://localhost:{port}/common/oauth2/v2.0/token")
    );
    assert_eq!(doc["msgraph_host"], format!("localhost:{port}"));
    assert_eq!(doc["cloud_instance_name"], "localhost");
    assert_eq!(doc["issuer"], format!("{base}/{{tenantid}}/v2.0"));
    // A Host that is not a host name falls back to base_url.
    let odd = h
        .http
        .get(format!(
            "{base}/common/v2.0/.well-known/openid-configuration"
        ))
        .header("host", "evil/path")
        .send()
        .await
        .expect("send");
    let odd: Value = odd.json().await.expect("json");
    assert_eq!(
        odd["token_endpoint"],
        format!("{base}/common/oauth2/v2.0/token")
    );
}

#[tokio::test]
async fn instance_discovery_answers_entra_shape() {
    let h = start().await;
    let base = h.emu.base_url();
    let host = base.trim_start_matches("http://").to_string();
    let port = h.emu.local_addr().port();
    let tid = h.tenant();
    let url = format!(
        "/common/discovery/instance?api-version=1.1&authorization_endpoint={base}/{tid}/oauth2/v2.0/authorize"
    );
    let doc = h.get(&url, None).await;
    assert_eq!(doc.status, 200);
    let keys: Vec<&String> = doc.body.as_object().expect("object").keys().collect();
    assert_eq!(keys.len(), 3, "{keys:?}");
    assert_eq!(
        doc.body["tenant_discovery_endpoint"],
        format!("{base}/{tid}/v2.0/.well-known/openid-configuration")
    );
    assert_eq!(doc.body["api-version"], "1.1");
    let metadata = doc.body["metadata"].as_array().expect("metadata");
    assert_eq!(metadata.len(), 1, "no cloud hosts without TLS");
    assert_eq!(metadata[0]["preferred_network"], host);
    assert_eq!(metadata[0]["preferred_cache"], host);
    assert_eq!(
        metadata[0]["aliases"],
        serde_json::json!([host, format!("localhost:{port}"), format!("[::1]:{port}")])
    );
    assert_eq!(h.emu.stats().discovery_requests(), 1);

    // Without authorization_endpoint: `common`; asked on another Host: its own entry.
    let other: Value = h
        .http
        .get(format!("{base}/common/discovery/instance?api-version=1.1"))
        .header("host", "idp.test:1234")
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(
        other["tenant_discovery_endpoint"],
        "http://idp.test:1234/common/v2.0/.well-known/openid-configuration"
    );
    let last = other["metadata"]
        .as_array()
        .expect("metadata")
        .last()
        .cloned();
    assert_eq!(
        last,
        Some(serde_json::json!({
            "preferred_network": "idp.test:1234",
            "preferred_cache": "idp.test:1234",
            "aliases": ["idp.test:1234"],
        }))
    );
}

#[tokio::test]
async fn instance_discovery_with_tls_lists_entra_hosts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = apptoken_emulator::Config::embedded(dir.path())
        .expect("config")
        .with_tls(true);
    let emu = apptoken_emulator::Emulator::start(config, "127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("start");
    let port = emu.local_addr().port();
    let ca = reqwest::Certificate::from_pem(emu.ca_certificate_pem().expect("pem").as_bytes())
        .expect("ca");
    let client = reqwest::Client::builder()
        .tls_certs_only([ca])
        .resolve("login.microsoftonline.com", emu.local_addr())
        .build()
        .expect("client");
    let authority = format!("https://login.microsoftonline.com:{port}");
    let doc: Value = client
        .get(format!(
            "{authority}/common/discovery/instance?api-version=1.1&authorization_endpoint={authority}/organizations/oauth2/v2.0/authorize"
        ))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(
        doc["tenant_discovery_endpoint"],
        format!("{authority}/organizations/v2.0/.well-known/openid-configuration")
    );
    let metadata = doc["metadata"].as_array().expect("metadata");
    assert_eq!(metadata.len(), 4);
    assert_eq!(
        metadata[1],
        serde_json::json!({
            "preferred_network": format!("login.microsoftonline.com:{port}"),
            "preferred_cache": format!("login.windows.net:{port}"),
            "aliases": [
                format!("login.microsoftonline.com:{port}"),
                format!("login.windows.net:{port}"),
                format!("login.microsoft.com:{port}"),
            ],
        })
    );
    assert_eq!(
        metadata[2]["aliases"],
        serde_json::json!([format!("login.microsoftonline.us:{port}")])
    );
    assert_eq!(
        metadata[3]["aliases"],
        serde_json::json!([format!("login.chinacloudapi.cn:{port}")])
    );
}
