//! Workload identity federation with the emulator's built-in issuer.

use std::time::Duration;

use apptoken_emulator::{Config, Emulator};
use serde_json::{Value, json};

use crate::support::{Answer, Harness, b64url, claims};

const TENANT: &str = "11111111-1111-1111-1111-111111111111";
const APP: &str = "aaaaaaaa-0000-0000-0000-000000000020";
const SUBJECT: &str = "system:serviceaccount:jobs:exporter";
const SCOPE: &str = "api://fed-api/.default";

fn config(dead_issuer: &str) -> String {
    format!(
        r#"
[[tenants]]
id = "{TENANT}"
[[resources]]
app_id = "bbbbbbbb-0000-0000-0000-000000000002"
app_id_uri = "api://fed-api"
roles = [{{ value = "Jobs.Run" }}]
[[apps]]
client_id = "{APP}"
home_tenant = "{TENANT}"
  [[apps.federated_credentials]]
  issuer = "{{base}}/_emulator/federation/k8s"
  subject = "{SUBJECT}"
  audiences = ["api://AzureADTokenExchange"]
  [[apps.federated_credentials]]
  issuer = "{dead_issuer}"
  subject = "{SUBJECT}"
[[grants]]
tenant = "{TENANT}"
client_id = "{APP}"
resource = "api://fed-api"
roles = ["Jobs.Run"]
"#
    )
}

async fn start_fed() -> (Harness, String) {
    // A loopback port with nothing listening: the unreachable issuer.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        format!("http://{}/dead", l.local_addr().expect("addr"))
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let config = Config::from_toml_str(&config(&dead), dir.path()).expect("config");
    let emu = Emulator::start(config, "127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("start");
    (
        Harness {
            emu,
            dir,
            http: reqwest::Client::new(),
        },
        dead,
    )
}

async fn mint(h: &Harness, issuer: &str, body: Value) -> Value {
    let r = h
        .http
        .post(format!(
            "{}/_emulator/federation/{issuer}/token",
            h.emu.base_url()
        ))
        .json(&body)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    r.json().await.expect("json")
}

async fn exchange(h: &Harness, assertion: &str) -> Answer {
    h.post_form(
        TENANT,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", APP),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", assertion),
            ("scope", SCOPE),
        ],
    )
    .await
}

#[tokio::test]
async fn built_in_issuer_tokens_are_exchanged_like_entra() {
    let (h, dead) = start_fed().await;
    let base = h.emu.base_url();
    let issuer = format!("{base}/_emulator/federation/k8s");
    let meta = h
        .get(
            "/_emulator/federation/k8s/.well-known/openid-configuration",
            None,
        )
        .await;
    assert_eq!(meta.body["issuer"], issuer.as_str());
    assert_eq!(meta.body["jwks_uri"], format!("{issuer}/jwks"));
    let jwks = h.get("/_emulator/federation/k8s/jwks", None).await;
    assert_eq!(jwks.body["keys"][0]["kty"], "RSA");

    let path = h.dir.path().join("sa-token");
    let minted = mint(
        &h,
        "k8s",
        json!({"subject": SUBJECT, "path": path.to_str().expect("utf-8")}),
    )
    .await;
    let token = minted["token"].as_str().expect("token");
    assert_eq!(std::fs::read_to_string(&path).expect("file"), token);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let c = claims(token);
    assert_eq!(c["iss"], issuer.as_str());
    assert_eq!(c["sub"], SUBJECT);
    assert_eq!(c["aud"], json!(["api://AzureADTokenExchange"]));

    let issued = exchange(&h, token).await;
    let ac = claims(issued.access_token());
    assert_eq!(ac["azp"], APP);
    assert_eq!(ac["roles"], json!(["Jobs.Run"]));
    // The Rust entry point mints the same kind of token.
    let rust_minted = h
        .emu
        .federated_token("k8s", SUBJECT, None, None)
        .expect("mint");
    assert_eq!(exchange(&h, &rust_minted).await.status, 200);

    // Subject: differs / differs only by case.
    let other = mint(
        &h,
        "k8s",
        json!({"subject": "system:serviceaccount:jobs:other"}),
    )
    .await;
    exchange(&h, other["token"].as_str().expect("token"))
        .await
        .assert_aad(
            401,
            "invalid_client",
            700213,
            "No matching federated identity record found for presented assertion subject 'system:serviceaccount:jobs:other'.",
        );
    let upper = mint(&h, "k8s", json!({"subject": SUBJECT.to_uppercase()})).await;
    exchange(&h, upper["token"].as_str().expect("token"))
        .await
        .assert_aad(
            401,
            "invalid_client",
            7002138,
            "No matching federated identity record found for presented assertion subject 'SYSTEM:SERVICEACCOUNT:JOBS:EXPORTER'. The subject matches with case-insensitive comparison, but not with case-sensitive comparison.",
        );
    // Audience.
    let aud = mint(
        &h,
        "k8s",
        json!({"subject": SUBJECT, "audience": "api://other"}),
    )
    .await;
    exchange(&h, aud["token"].as_str().expect("token"))
        .await
        .assert_aad(401, "invalid_client", 700212, "No matching federated identity record found for presented assertion audience 'api://other'.");
    // Issuer not trusted by the app.
    let stranger = mint(&h, "elsewhere", json!({"subject": SUBJECT})).await;
    exchange(&h, stranger["token"].as_str().expect("token"))
        .await
        .assert_aad(
            401,
            "invalid_client",
            700211,
            &format!("No matching federated identity record found for presented assertion issuer '{base}/_emulator/federation/elsewhere'."),
        );
    // Expired, on the emulator's clock.
    h.emu.freeze_clock();
    let short = mint(&h, "k8s", json!({"subject": SUBJECT, "lifetime_secs": 60})).await;
    h.emu.advance_clock(Duration::from_secs(600));
    exchange(&h, short["token"].as_str().expect("token"))
        .await
        .assert_aad(
            401,
            "invalid_client",
            700024,
            "Client assertion is not within its valid time range.",
        );
    // Tampered signature.
    let good = mint(&h, "k8s", json!({"subject": SUBJECT})).await;
    let good = good["token"].as_str().expect("token");
    let (input, _) = good.rsplit_once('.').expect("jws");
    let forged = format!("{input}.{}", b64url(&[7u8; 256]));
    let answer = exchange(&h, &forged).await;
    assert_eq!(
        answer.body["error_codes"],
        json!([700027]),
        "{:#}",
        answer.body
    );

    // Unreachable issuer.
    let unsigned = format!(
        "{}.{}.{}",
        b64url(json!({"alg": "RS256", "kid": "k"}).to_string().as_bytes()),
        b64url(
            json!({"iss": dead, "sub": SUBJECT, "aud": "api://AzureADTokenExchange", "exp": h.emu.now().unix_timestamp() + 600})
                .to_string()
                .as_bytes()
        ),
        b64url(b"sig"),
    );
    exchange(&h, &unsigned).await.assert_aad(
        400,
        "invalid_request",
        90061,
        "Request to External OIDC endpoint failed.",
    );
}

/// An external token whose `exp` is the largest integer (a lifetime of
/// `u64::MAX` saturates there) is compared without overflow: no upper bound
/// on lifetime, so it is exchanged.
#[tokio::test]
async fn external_token_with_the_largest_exp_is_exchanged() {
    let (h, _) = start_fed().await;
    let minted = mint(
        &h,
        "k8s",
        json!({"subject": SUBJECT, "lifetime_secs": u64::MAX}),
    )
    .await;
    let token = minted["token"].as_str().expect("token");
    assert_eq!(claims(token)["exp"], json!(i64::MAX));
    let answer = exchange(&h, token).await;
    assert_eq!(answer.status, 200, "{:#}", answer.body);
}
