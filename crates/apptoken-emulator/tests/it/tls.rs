//! HTTPS with a local CA, reached as Entra's own host names.

use apptoken_emulator::{Config, Emulator, RunningEmulator};
use serde_json::Value;

async fn start_tls(dir: &std::path::Path) -> RunningEmulator {
    let config = Config::embedded(dir).expect("config").with_tls(true);
    Emulator::start(config, "127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("start")
}

fn trusting(emu: &RunningEmulator, hosts: &[&str]) -> reqwest::Client {
    let pem = emu.ca_certificate_pem().expect("CA PEM");
    let ca = reqwest::Certificate::from_pem(pem.as_bytes()).expect("certificate");
    let mut builder = reqwest::Client::builder().tls_certs_only([ca]);
    for host in hosts {
        builder = builder.resolve(host, emu.local_addr());
    }
    builder.build().expect("client")
}

async fn json(client: &reqwest::Client, url: &str) -> Value {
    let response = client.get(url).send().await.expect("send");
    assert_eq!(response.status(), 200, "{url}");
    response.json().await.expect("json")
}

#[tokio::test]
async fn serves_https_for_entra_host_names() {
    let dir = tempfile::tempdir().expect("tempdir");
    let emu = start_tls(dir.path()).await;
    let port = emu.local_addr().port();
    let base = emu.base_url();
    assert_eq!(base, format!("https://127.0.0.1:{port}"));
    let info = emu.info().clone();
    assert_eq!(info.authority_host, base);
    let client = trusting(
        &emu,
        &[
            "login.microsoftonline.com",
            "westus2.login.microsoft.com",
            "login.microsoftonline.us",
            "login.chinacloudapi.cn",
            "localhost",
        ],
    );
    let tid = &info.tenant_id;
    let authority = format!("https://login.microsoftonline.com:{port}");
    let doc = json(
        &client,
        &format!("{authority}/{tid}/v2.0/.well-known/openid-configuration"),
    )
    .await;
    // Endpoints on the host asked; the issuer on base_url (what tokens carry).
    assert_eq!(doc["issuer"], format!("{base}/{tid}/v2.0"));
    let token_endpoint = doc["token_endpoint"].as_str().expect("token_endpoint");
    assert_eq!(
        token_endpoint,
        format!("{authority}/{tid}/oauth2/v2.0/token")
    );
    assert_eq!(
        doc["jwks_uri"],
        format!("{authority}/{tid}/discovery/v2.0/keys")
    );

    for host in [
        "westus2.login.microsoft.com",
        "login.microsoftonline.us",
        "login.chinacloudapi.cn",
        "localhost",
    ] {
        let doc = json(
            &client,
            &format!("https://{host}:{port}/common/v2.0/.well-known/openid-configuration"),
        )
        .await;
        assert_eq!(
            doc["token_endpoint"],
            format!("https://{host}:{port}/common/oauth2/v2.0/token")
        );
    }
    // Loopback by address, IPv4 (the certificate holds 127.0.0.1 and ::1).
    json(
        &trusting(&emu, &[]),
        &format!("{base}/common/discovery/v2.0/keys"),
    )
    .await;

    // A token over HTTPS, used on the sample API.
    let token: Value = client
        .post(token_endpoint)
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", info.client_id.as_str()),
            (
                "client_secret",
                info.client_secret.as_deref().expect("secret"),
            ),
            ("scope", info.sample_scope.as_str()),
        ])
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    let access = token["access_token"].as_str().expect("access_token");
    let users = client
        .get(format!("{}/users", info.sample_api))
        .bearer_auth(access)
        .send()
        .await
        .expect("send");
    assert_eq!(users.status(), 200);
    assert!(info.sample_api.starts_with("https://127.0.0.1:"));

    // Without the CA the handshake fails; plain HTTP is not served.
    let untrusting = reqwest::Client::builder()
        .tls_certs_only(Vec::<reqwest::Certificate>::new())
        .build()
        .expect("client");
    assert!(
        untrusting
            .get(format!("{base}/error"))
            .send()
            .await
            .is_err()
    );
    let plain = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/error"))
        .send()
        .await;
    assert!(plain.is_err() || plain.is_ok_and(|r| r.status() != 200));
}

#[tokio::test]
async fn ca_is_written_reused_and_regenerated() {
    let dir = tempfile::tempdir().expect("tempdir");
    let emu = start_tls(dir.path()).await;
    let ca_path = emu.info().ca_certificate_path.clone().expect("CA path");
    assert_eq!(ca_path, dir.path().join("ca.pem"));
    let pem = std::fs::read_to_string(&ca_path).expect("ca.pem");
    assert_eq!(Some(pem.clone()), emu.ca_certificate_pem());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = |f: &str| {
            std::fs::metadata(dir.path().join(f))
                .expect("metadata")
                .permissions()
                .mode()
                & 0o777
        };
        assert_eq!(mode("ca-key.pem"), 0o600);
    }
    let env = std::fs::read_to_string(dir.path().join("env")).expect("env");
    assert!(env.contains(&format!("export APPTOKEN_CA_FILE='{}'", ca_path.display())));
    assert!(env.contains(&format!("export AZURE_AUTHORITY_HOST='{}'", emu.base_url())));
    for var in ["SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "NODE_EXTRA_CA_CERTS"] {
        assert!(env.contains(&format!("#   {var}=")), "{var} hint missing");
        assert!(
            !env.lines().any(|l| l.starts_with(&format!("export {var}"))),
            "{var} must not be exported"
        );
    }
    let json: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("emulator.json")).expect("json"))
            .expect("parse");
    assert_eq!(json["ca_certificate_path"], ca_path.display().to_string());
    emu.shutdown().await;

    // Same directory: the CA is reused, and still verifies the new server certificate.
    let again = start_tls(dir.path()).await;
    assert_eq!(again.ca_certificate_pem(), Some(pem.clone()));
    json_ok(&again).await;
    again.shutdown().await;

    // A CA whose key no longer matches is replaced.
    let other = tempfile::tempdir().expect("tempdir");
    let third = start_tls(other.path()).await;
    third.shutdown().await;
    std::fs::copy(
        other.path().join("ca-key.pem"),
        dir.path().join("ca-key.pem"),
    )
    .expect("copy");
    let regenerated = start_tls(dir.path()).await;
    assert_ne!(regenerated.ca_certificate_pem(), Some(pem));
    json_ok(&regenerated).await;

    // Garbage is replaced too.
    regenerated.shutdown().await;
    std::fs::write(dir.path().join("ca.pem"), "not a certificate").expect("write");
    let fresh = start_tls(dir.path()).await;
    json_ok(&fresh).await;
}

async fn json_ok(emu: &RunningEmulator) {
    json(
        &trusting(emu, &[]),
        &format!("{}/common/discovery/v2.0/keys", emu.base_url()),
    )
    .await;
}

#[tokio::test]
async fn tls_from_toml() {
    let toml = r#"
tls = true
[[tenants]]
id = "11111111-1111-1111-1111-111111111111"
"#;
    let config = Config::from_toml_str(toml, std::path::Path::new(".")).expect("config");
    let emu = Emulator::start(config, "127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("start");
    assert!(emu.base_url().starts_with("https://"));
    // No state directory: the CA lives in memory only.
    assert!(emu.info().ca_certificate_path.is_none());
    json_ok(&emu).await;
}
