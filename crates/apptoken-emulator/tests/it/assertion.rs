//! Certificate credentials: client assertions signed in the test.

use serde_json::json;

use crate::support::{Alg, b64url, claims, now, sha1, sha256, sign, start};

#[tokio::test]
async fn rs256_and_ps256_assertions_are_accepted() {
    let h = start().await;
    let tid = h.tenant();
    for alg in [Alg::Rs256, Alg::Ps256] {
        let assertion = sign(
            &h.key_pem_path(),
            alg,
            &h.x5t_header(),
            &h.assertion_claims(&tid),
        );
        let answer = h.assertion_grant(&tid, &assertion).await;
        let c = claims(answer.access_token());
        assert_eq!(c["azpacr"], "2");
        assert_eq!(c["tid"], tid);
        // The same assertion (same jti) is accepted again.
        let replay = h.assertion_grant(&tid, &assertion).await;
        assert_eq!(replay.status, 200, "{:#}", replay.body);
    }
}

/// Base64 broken into 64-column lines, as in a PEM file.
fn pem_lines(b64: &str) -> String {
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).expect("ascii"))
        .collect();
    lines.join("\n")
}

#[tokio::test]
async fn thumbprint_and_chain_forms_entra_accepts() {
    let h = start().await;
    let tid = h.tenant();
    let der = h.cert_der();
    let std = |b: &[u8]| base64::Engine::encode(&base64::engine::general_purpose::STANDARD, b);
    let headers = [
        json!({"x5t": b64url(&sha1(&der))}),
        json!({"x5t": std(&sha1(&der))}),
        json!({"x5t": std(&sha1(&der)).trim_end_matches('=')}),
        json!({"x5t": format!("{}=", b64url(&sha1(&der)))}),
        json!({"x5t#S256": b64url(&sha256(&der))}),
        json!({"x5t#S256": std(&sha256(&der))}),
        json!({"x5c": [std(&der)]}),
        json!({"x5t": b64url(&sha1(&der)), "x5c": [std(&der)]}),
        // MSAL Python's `public_certificate`: the PEM body, line breaks kept.
        json!({"x5t": b64url(&sha1(&der)), "x5c": [pem_lines(&std(&der))]}),
    ];
    for header in headers {
        let assertion = sign(
            &h.key_pem_path(),
            Alg::Ps256,
            &header,
            &h.assertion_claims(&tid),
        );
        let answer = h.assertion_grant(&tid, &assertion).await;
        assert_eq!(answer.status, 200, "{header}: {:#}", answer.body);
    }
}

#[tokio::test]
async fn lenient_claims_entra_accepts() {
    let h = start().await;
    let tid = h.tenant();
    let base = h.assertion_claims(&tid);
    let mut variants = Vec::new();
    let mut c = base.clone();
    c["exp"] = json!((now() + 600).to_string());
    c["nbf"] = json!((now() - 10).to_string());
    variants.push(c);
    let mut c = base.clone();
    c["exp"] = json!(now() as f64 + 600.5);
    c["iat"] = json!(now() as f64 - 0.25);
    variants.push(c);
    let mut c = base.clone();
    c.as_object_mut().expect("object").remove("nbf");
    c.as_object_mut().expect("object").remove("iat");
    variants.push(c);
    let mut c = base.clone();
    c["exp"] = json!(now() + 10 * 365 * 86_400); // no upper bound on lifetime
    variants.push(c);
    let mut c = base.clone();
    c["aud"] = json!(
        h.token_url("contoso.onmicrosoft.com")
            .to_uppercase()
            .replace("HTTP://", "http://")
    );
    variants.push(c);
    let mut c = base.clone();
    c["aud"] = json!([h.token_url(&tid)]);
    variants.push(c);
    for claims in variants {
        let assertion = sign(&h.key_pem_path(), Alg::Rs256, &h.x5t_header(), &claims);
        let answer = h.assertion_grant(&tid, &assertion).await;
        assert_eq!(answer.status, 200, "{claims}: {:#}", answer.body);
    }
    // Requested on /common with aud naming /common: accepted, home tenant.
    let assertion = sign(
        &h.key_pem_path(),
        Alg::Rs256,
        &h.x5t_header(),
        &h.assertion_claims("common"),
    );
    assert_eq!(
        claims(h.assertion_grant("common", &assertion).await.access_token())["tid"],
        tid
    );
}

#[tokio::test]
async fn assertion_failures_answer_like_entra() {
    let h = start().await;
    let tid = h.tenant();
    let id = h.client_id();
    let key = h.key_pem_path();
    let good = h.assertion_claims(&tid);

    // Expired.
    let mut c = good.clone();
    c["exp"] = json!(now() - 3600);
    c["nbf"] = json!(now() - 7200);
    let a = h
        .assertion_grant(&tid, &sign(&key, Alg::Rs256, &h.x5t_header(), &c))
        .await;
    a.assert_aad(
        401,
        "invalid_client",
        700024,
        "Client assertion is not within its valid time range. Current time: ",
    );
    let d = a.body["error_description"].as_str().expect("d");
    assert!(
        d.contains(", assertion valid from ") && d.contains(", expiry time of assertion "),
        "{d}"
    );

    // Not yet valid.
    let mut c = good.clone();
    c["nbf"] = json!(now() + 3600);
    h.assertion_grant(&tid, &sign(&key, Alg::Rs256, &h.x5t_header(), &c))
        .await
        .assert_aad(
            401,
            "invalid_client",
            700024,
            "Client assertion is not within its valid time range.",
        );

    // Thumbprint not registered.
    let unknown = [0xABu8; 20];
    let a = h
        .assertion_grant(
            &tid,
            &sign(&key, Alg::Rs256, &json!({"x5t": b64url(&unknown)}), &good),
        )
        .await;
    a.assert_aad(401, "invalid_client", 700027, &format!(
        "Client assertion contains an invalid signature. [Reason - The key was not found., Thumbprint of key used by client: '{}'",
        hex::encode_upper(unknown)
    ));
    assert!(
        a.body["error_description"]
            .as_str()
            .expect("d")
            .contains(&format!("keys for app Id '{id}'"))
    );

    // Bad signature: valid header and claims, signature of something else.
    let signed = sign(&key, Alg::Rs256, &h.x5t_header(), &good);
    let other = sign(&key, Alg::Rs256, &h.x5t_header(), &json!({"other": 1}));
    let forged = format!(
        "{}.{}",
        signed.rsplit_once('.').expect("jwt").0,
        other.rsplit_once('.').expect("jwt").1
    );
    h.assertion_grant(&tid, &forged).await.assert_aad(401, "invalid_client", 700027,
        "Client assertion contains an invalid signature. [Reason - The provided signature value did not match");

    // Malformed.
    for garbage in ["not-a-jwt", "a.b.c", "e30.e30", "%%%.%%%.%%%"] {
        h.assertion_grant(&tid, garbage).await.assert_aad(
            401,
            "invalid_client",
            50027,
            "JWT token is invalid or malformed.",
        );
    }

    // Algorithms.
    let unsigned = format!(
        "{}.{}.",
        b64url(br#"{"alg":"none"}"#),
        b64url(good.to_string().as_bytes())
    );
    h.assertion_grant(&tid, &unsigned).await.assert_aad(
        400,
        "invalid_request",
        5002738,
        "Invalid JWT token. 'none' is not a supported",
    );
    let hs = sign(
        &key,
        Alg::Rs256,
        &json!({"alg": "HS256", "x5t": b64url(&sha1(&h.cert_der()))}),
        &good,
    );
    h.assertion_grant(&tid, &hs).await.assert_aad(
        400,
        "invalid_request",
        5002738,
        "Invalid JWT token. 'HS256' is not a supported",
    );
    let es = sign(
        &key,
        Alg::Rs256,
        &json!({"alg": "ES256", "x5t": b64url(&sha1(&h.cert_der()))}),
        &good,
    );
    h.assertion_grant(&tid, &es).await.assert_aad(
        401,
        "invalid_client",
        700027,
        "Invalid JWT token. Unsupported asymmetric signing algorithm.",
    );

    // Audience.
    let mut c = good.clone();
    c["aud"] = json!("https://login.microsoftonline.com/elsewhere/oauth2/v2.0/token");
    h.assertion_grant(&tid, &sign(&key, Alg::Rs256, &h.x5t_header(), &c))
        .await
        .assert_aad(
            401,
            "invalid_client",
            50012,
            "Client assertion audience claim does not match Realm issuer.",
        );
    let mut c = good.clone();
    c["aud"] = json!([h.token_url(&tid), "https://x"]);
    h.assertion_grant(&tid, &sign(&key, Alg::Rs256, &h.x5t_header(), &c))
        .await
        .assert_aad(
            401,
            "invalid_client",
            5002741,
            "Number of audience values in the provided client credential exceed",
        );

    // Issuer / subject.
    let mut c = good.clone();
    c["sub"] = json!("someone-else");
    h.assertion_grant(&tid, &sign(&key, Alg::Rs256, &h.x5t_header(), &c))
        .await
        .assert_aad(
            401,
            "invalid_client",
            50048,
            "Subject must match the issuer claim in the client assertion.",
        );
    let mut c = good.clone();
    c["sub"] = json!("00000000-1111-2222-3333-444444444444");
    c["iss"] = json!("00000000-1111-2222-3333-444444444444");
    h.assertion_grant(&tid, &sign(&key, Alg::Rs256, &h.x5t_header(), &c))
        .await
        .assert_aad(
            401,
            "invalid_client",
            700021,
            "Client assertion application identifier doesn't match 'client_id' parameter.",
        );

    // exp of the wrong type.
    let mut c = good.clone();
    c["exp"] = json!("tomorrow");
    h.assertion_grant(&tid, &sign(&key, Alg::Rs256, &h.x5t_header(), &c))
        .await
        .assert_aad(
            401,
            "invalid_client",
            50027,
            "JWT token is invalid or malformed.",
        );

    // Missing / wrong client_assertion_type, and two credentials at once.
    let assertion = sign(&key, Alg::Rs256, &h.x5t_header(), &good);
    let scope = h.scope();
    h.post_form(
        &tid,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &id),
            ("client_assertion", &assertion),
            ("scope", &scope),
        ],
    )
    .await
    .assert_aad(
        400,
        "invalid_request",
        900144,
        "The request body must contain the following parameter: 'client_assertion_type'.",
    );
    h.post_form(
        &tid,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &id),
            ("client_assertion", &assertion),
            ("client_assertion_type", "urn:other"),
            ("scope", &scope),
        ],
    )
    .await
    .assert_aad(
        400,
        "invalid_request",
        90023,
        "The value of 'client_assertion_type' must be",
    );
    let secret = h.secret();
    h.post_form(
        &tid,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &id),
            ("client_secret", &secret),
            ("client_assertion", &assertion),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("scope", &scope),
        ],
    )
    .await
    .assert_aad(
        400,
        "invalid_request",
        90023,
        "The request contains more than one client credential.",
    );

    // x5c whose leaf is not the registered certificate.
    let mut der = h.cert_der();
    let last = der.len() - 1;
    der[last] ^= 0xff;
    let std = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &der);
    h.assertion_grant(&tid, &sign(&key, Alg::Rs256, &json!({"x5c": [std]}), &good))
        .await
        .assert_aad(
            401,
            "invalid_client",
            700027,
            "Client assertion contains an invalid signature. [Reason - The key was not found.",
        );
}

/// `exp`, `nbf` and `iat` at the ends of the integer range and of the
/// calendar: compared without overflow (no panic, no wrap-around), answered
/// like Entra, and named as dates clamped to 1970-01-01 … 9999-12-31.
#[tokio::test]
async fn assertion_dates_at_the_extremes() {
    let h = start().await;
    h.emu.freeze_clock();
    let tid = h.tenant();
    let key = h.key_pem_path();
    let now = h.emu.now().unix_timestamp();
    let good = {
        let mut c = h.assertion_claims(&tid);
        c["nbf"] = json!(now - 10);
        c["iat"] = json!(now - 10);
        c["exp"] = json!(now + 600);
        c
    };
    let grant = |claims: serde_json::Value| {
        let assertion = sign(&key, Alg::Rs256, &h.x5t_header(), &claims);
        let h = &h;
        let tid = tid.clone();
        async move { h.assertion_grant(&tid, &assertion).await }
    };
    let with = |name: &str, value: serde_json::Value| {
        let mut c = good.clone();
        c[name] = value;
        c
    };
    const LAST_SECOND_OF_9999: i64 = 253_402_300_799;
    const YEAR_1: i64 = -62_135_596_800;

    // Accepted: no upper bound on exp; nbf and iat far in the past.
    for claims in [
        with("exp", json!(i64::MAX)),
        with("exp", json!(i64::MAX - 299)),
        with("exp", json!(LAST_SECOND_OF_9999)),
        with("exp", json!(LAST_SECOND_OF_9999 + 1)),
        with("exp", json!("99999999999999")),
        with("nbf", json!(i64::MIN)),
        with("nbf", json!(i64::MIN + 300)),
        with("nbf", json!(YEAR_1)),
        with("nbf", json!(0)),
        with("iat", json!(i64::MIN)),
        with("iat", json!(i64::MAX)),
        with("iat", json!(0)),
    ] {
        let answer = grant(claims.clone()).await;
        assert_eq!(answer.status, 200, "{claims}: {:#}", answer.body);
    }

    // Outside the time range: AADSTS700024, the dates clamped into the calendar.
    for (claims, from, expiry) in [
        (with("exp", json!(0)), None, "1970-01-01T00:00:00.0000000Z"),
        (with("exp", json!(-1)), None, "1970-01-01T00:00:00.0000000Z"),
        (
            with("exp", json!(i64::MIN)),
            None,
            "1970-01-01T00:00:00.0000000Z",
        ),
        (
            with("exp", json!(YEAR_1)),
            None,
            "1970-01-01T00:00:00.0000000Z",
        ),
        (
            with("nbf", json!(i64::MAX)),
            Some("9999-12-31T23:59:59.0000000Z"),
            "",
        ),
        (
            with("nbf", json!(LAST_SECOND_OF_9999 + 1)),
            Some("9999-12-31T23:59:59.0000000Z"),
            "",
        ),
    ] {
        let answer = grant(claims.clone()).await;
        answer.assert_aad(
            401,
            "invalid_client",
            700024,
            "Client assertion is not within its valid time range.",
        );
        let d = answer.body["error_description"].as_str().expect("text");
        if let Some(from) = from {
            assert!(
                d.contains(&format!("assertion valid from {from}")),
                "{claims}: {d}"
            );
        }
        assert!(
            d.contains(&format!("expiry time of assertion {expiry}")),
            "{claims}: {d}"
        );
    }

    // Not a NumericDate at all (u64::MAX is no i64 and too large a float).
    for claims in [
        with("exp", json!(u64::MAX)),
        with("nbf", json!(u64::MAX)),
        with("iat", json!(u64::MAX)),
        with("exp", json!(1e300)),
        with("exp", json!("-1")),
        with("exp", json!("9999999999999999999999")),
    ] {
        grant(claims.clone()).await.assert_aad(
            401,
            "invalid_client",
            50027,
            "JWT token is invalid or malformed.",
        );
    }
}
