//! Clock control: the emulator's notion of "now" drives token times, the
//! sample API's checks and credential expiry.

use std::path::Path;
use std::time::Duration;

use apptoken_emulator::{Config, Emulator};
use reqwest::Method;
use serde_json::json;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::support::{Harness, claims, start};

#[tokio::test]
async fn advancing_past_expiry_makes_the_sample_api_refuse_the_token() {
    let h = start().await;
    // Frozen, so that the real clock ticking between two requests cannot move
    // the emulator's "now"; the instants below are taken from the token itself.
    h.emu.freeze_clock();
    let token = h.secret_grant(&h.tenant()).await.access_token().to_string();
    let exp = claims(&token)["exp"].as_i64().expect("exp");
    let at = |unix: i64| OffsetDateTime::from_unix_timestamp(unix).expect("instant");
    let users = format!("{}/users", h.emu.info().sample_api);
    assert_eq!(h.get(&users, Some(&token)).await.status, 200);
    // The last second before `exp` is accepted; `exp` itself is not.
    h.emu.set_clock(at(exp - 1));
    assert_eq!(h.get(&users, Some(&token)).await.status, 200);
    h.emu.set_clock(at(exp));
    let refused = h.get(&users, Some(&token)).await;
    assert_eq!(refused.status, 401);
    let challenge = refused.headers["www-authenticate"].to_str().expect("ascii");
    assert!(challenge.contains("invalid_token"), "{challenge}");
    // A token issued now (on the moved clock) is accepted.
    let fresh = h.secret_grant(&h.tenant()).await.access_token().to_string();
    assert_eq!(h.get(&users, Some(&fresh)).await.status, 200);
}

#[tokio::test]
async fn freeze_set_and_resume_drive_issued_times() {
    let h = start().await;
    h.emu.freeze_clock();
    let first = claims(h.secret_grant(&h.tenant()).await.access_token());
    let frozen = h.emu.now();
    let second = claims(h.secret_grant(&h.tenant()).await.access_token());
    assert_eq!(first["iat"], second["iat"]);
    assert_eq!(first["iat"].as_i64(), Some(frozen.unix_timestamp() - 300));

    let at = OffsetDateTime::parse("2031-02-03T04:05:06Z", &Rfc3339).expect("date");
    h.emu.set_clock(at);
    let c = claims(h.secret_grant(&h.tenant()).await.access_token());
    assert_eq!(c["iat"].as_i64(), Some(at.unix_timestamp() - 300));
    assert_eq!(c["exp"].as_i64(), Some(at.unix_timestamp() + 3600));
    let answer = h.admin(Method::GET, "/_emulator/clock", None).await;
    assert_eq!(answer.body["now"], "2031-02-03T04:05:06Z");
    assert_eq!(answer.body["frozen"], true);

    h.emu.resume_clock();
    assert!(h.emu.now() >= at && h.emu.now() < at + time::Duration::hours(1));
    let answer = h.admin(Method::GET, "/_emulator/clock", None).await;
    assert_eq!(answer.body["frozen"], false);
}

#[tokio::test]
async fn http_clock_controls() {
    let h = start().await;
    let post = |body| h.admin(Method::POST, "/_emulator/clock", Some(body));
    let frozen = post(json!({"freeze": true})).await;
    assert_eq!(frozen.status, 200);
    let t0 = frozen.body["unix"].as_i64().expect("unix");
    let advanced = post(json!({"advance_secs": 90})).await;
    assert_eq!(advanced.body["unix"].as_i64(), Some(t0 + 90));
    let back = post(json!({"advance_secs": -30})).await;
    assert_eq!(back.body["unix"].as_i64(), Some(t0 + 60));
    let set = post(json!({"set": "2030-01-01T00:00:00+02:00"})).await;
    assert_eq!(set.body["now"], "2029-12-31T22:00:00Z");
    let resumed = post(json!({"resume": true})).await;
    assert_eq!(resumed.body["frozen"], false);
    for bad in [
        json!({}),
        json!({"freeze": true, "resume": true}),
        json!({"freeze": false}),
        json!({"set": "yesterday"}),
        json!({"advance_secs": "10"}),
        json!({"speed": 2}),
    ] {
        let answer = post(bad.clone()).await;
        assert_eq!(answer.status, 400, "{bad}");
        assert!(answer.body["error_description"].is_string(), "{bad}");
    }
}

#[tokio::test]
async fn secret_expires_on_the_advanced_clock() {
    let expires = (OffsetDateTime::now_utc() + time::Duration::hours(1))
        .format(&Rfc3339)
        .expect("format");
    let toml = format!(
        r#"
[[tenants]]
id = "11111111-1111-1111-1111-111111111111"
[[resources]]
app_id = "22222222-2222-2222-2222-222222222222"
[[apps]]
client_id = "33333333-3333-3333-3333-333333333333"
home_tenant = "11111111-1111-1111-1111-111111111111"
secrets = [{{ value = "pw", expires_at = "{expires}" }}]
"#
    );
    let config = Config::from_toml_str(&toml, Path::new(".")).expect("config");
    let emu = Emulator::start(config, "127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("start");
    let h = Harness {
        emu,
        dir: tempfile::tempdir().expect("tempdir"),
        http: reqwest::Client::new(),
    };
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", "33333333-3333-3333-3333-333333333333"),
        ("client_secret", "pw"),
        ("scope", "22222222-2222-2222-2222-222222222222/.default"),
    ];
    let tenant = "11111111-1111-1111-1111-111111111111";
    assert_eq!(h.post_form(tenant, &form).await.status, 200);
    let advanced = h
        .admin(
            Method::POST,
            "/_emulator/clock",
            Some(json!({"advance_secs": 7200})),
        )
        .await;
    assert_eq!(advanced.status, 200);
    h.post_form(tenant, &form).await.assert_aad(
        401,
        "invalid_client",
        7000222,
        "The provided client secret keys",
    );
}

/// The clock stays between 1970-01-01T00:00:00Z and 9999-12-31T23:59:59Z:
/// moves beyond are refused (400, naming the range) instead of saturating to
/// instants that key generation and date arithmetic cannot handle; at both
/// ends every time-dependent endpoint still answers.
#[tokio::test]
async fn the_clock_stays_between_1970_and_9999() {
    let h = start().await;
    let post = |body| h.admin(Method::POST, "/_emulator/clock", Some(body));
    assert_eq!(post(json!({"freeze": true})).await.status, 200);
    let frozen = h.emu.now();
    for bad in [
        json!({"advance_secs": i64::MAX}),
        json!({"advance_secs": i64::MIN}),
        json!({"advance_secs": 300_000_000_000_i64}),
        json!({"set": "9999-12-31T23:59:59-01:00"}),
        json!({"set": "1969-12-31T23:59:59Z"}),
        json!({"set": "1970-01-01T00:59:59+01:00"}),
        json!({"set": "0000-01-01T00:00:00Z"}),
    ] {
        let answer = post(bad.clone()).await;
        assert_eq!(answer.status, 400, "{bad}: {:#}", answer.body);
        let description = answer.body["error_description"].as_str().expect("text");
        assert!(
            description.contains("1970-01-01T00:00:00Z")
                && description.contains("9999-12-31T23:59:59Z"),
            "{bad}: {description}"
        );
        assert_eq!(h.emu.now(), frozen, "{bad} moved the clock");
    }

    let users = format!("{}/users", h.emu.info().sample_api);
    for (end, beyond) in [("9999-12-31T23:59:59Z", 1), ("1970-01-01T00:00:00Z", -1)] {
        let set = post(json!({"set": end})).await;
        assert_eq!(set.status, 200, "{:#}", set.body);
        assert_eq!(set.body["now"], end);
        let rotated = h.admin(Method::POST, "/_emulator/keys/rotate", None).await;
        assert_eq!(rotated.status, 200, "{end}: {:#}", rotated.body);
        h.emu.rotate_signing_key().expect("rotate in Rust");
        // A new issuer's key is generated on this clock.
        let issuer = format!("end-{}", &end[..4]);
        let minted = h
            .admin(
                Method::POST,
                &format!("/_emulator/federation/{issuer}/token"),
                Some(json!({"subject": "s", "lifetime_secs": u64::MAX})),
            )
            .await;
        assert_eq!(minted.status, 200, "{end}: {:#}", minted.body);
        let token = h.secret_grant(&h.tenant()).await.access_token().to_string();
        assert_eq!(h.get(&users, Some(&token)).await.status, 200, "{end}");
        let past = post(json!({"advance_secs": beyond})).await;
        assert_eq!(past.status, 400, "{end} {beyond}: {:#}", past.body);
        assert_eq!(h.get("/_emulator/clock", None).await.body["now"], end);
    }

    // In Rust the clock is clamped to the same range.
    h.emu
        .set_clock(time::macros::datetime!(-9999-01-01 00:00:00 UTC));
    assert_eq!(h.emu.now(), OffsetDateTime::UNIX_EPOCH);
    h.emu
        .rotate_signing_key()
        .expect("rotate at the start of 1970");
    h.emu.set_clock(time::PrimitiveDateTime::MAX.assume_utc());
    h.emu.advance_clock(Duration::MAX);
    let last = OffsetDateTime::parse("9999-12-31T23:59:59Z", &Rfc3339).expect("date");
    assert_eq!(h.emu.now(), last);
    h.emu
        .rotate_signing_key()
        .expect("rotate at the end of 9999");
}
