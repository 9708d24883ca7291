//! The embedded default configuration and the state files.

use std::os::unix::fs::PermissionsExt as _;

use apptoken_emulator::{Config, Emulator, EmulatorInfo};

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777
}

#[tokio::test]
async fn embedded_writes_state_files_and_reuses_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = Config::embedded(dir.path()).expect("embedded");
    let emu = Emulator::start(first, "127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("start");
    let info = emu.info().clone();

    for (file, expected) in [
        ("client-secret", 0o600),
        ("client-key.pem", 0o600),
        ("client-cert.pfx", 0o600),
        ("client-cert.pfx.password", 0o600),
        ("env", 0o600),
        ("emulator.json", 0o600),
    ] {
        assert_eq!(mode(&dir.path().join(file)), expected, "{file}");
    }
    let cert_pem = std::fs::read_to_string(dir.path().join("client-cert.pem")).expect("cert");
    assert!(cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
    let key_pem = std::fs::read_to_string(dir.path().join("client-key.pem")).expect("key");
    assert!(key_pem.starts_with("-----BEGIN PRIVATE KEY-----"));

    let env = std::fs::read_to_string(dir.path().join("env")).expect("env");
    for var in [
        "AZURE_AUTHORITY_HOST",
        "AZURE_TENANT_ID",
        "AZURE_CLIENT_ID",
        "AZURE_CLIENT_SECRET",
        "APPTOKEN_SAMPLE_API",
        "APPTOKEN_SAMPLE_SCOPE",
    ] {
        assert!(env.contains(&format!("export {var}='")), "{var} in {env}");
    }
    assert!(env.contains(&format!("export AZURE_AUTHORITY_HOST='{}'", emu.base_url())));

    let json: EmulatorInfo =
        serde_json::from_slice(&std::fs::read(dir.path().join("emulator.json")).expect("json"))
            .expect("parse");
    assert_eq!(json.client_id, info.client_id);
    assert_eq!(json.tenant_domain, "contoso.onmicrosoft.com");
    assert_eq!(json.sample_scope, "api://apptoken-sample-api/.default");
    assert_eq!(json.sample_api, format!("{}/v1.0", emu.base_url()));
    assert_eq!(json.other_tenants.len(), 1);
    let sha1 = crate::support::sha1(&crate::support::cert_der_from(
        &dir.path().join("client-cert.pem"),
    ));
    assert_eq!(
        json.certificate_thumbprint_sha1.as_deref(),
        Some(hex::encode_upper(sha1).as_str())
    );
    assert_eq!(
        json.certificate_thumbprint_sha256.as_ref().map(String::len),
        Some(64)
    );

    // The .pfx opens with the generated password.
    let pfx = std::fs::read(json.pfx_path.as_ref().expect("pfx")).expect("pfx bytes");
    let store = p12_keystore::KeyStore::from_pkcs12(
        &pfx,
        json.pfx_password.as_deref().expect("pw"),
        p12_keystore::Pkcs12ImportPolicy::Strict,
    )
    .expect("pfx opens");
    assert!(store.private_key_chain().is_some());
    emu.shutdown().await;

    // A second call reuses everything.
    let second = Config::embedded(dir.path()).expect("embedded again");
    let debug = format!("{second:?}");
    for secret in [info.client_secret.as_deref(), info.pfx_password.as_deref()] {
        assert!(
            !debug.contains(secret.expect("set")),
            "Debug leaks a secret"
        );
    }
    let emu = Emulator::start(second, "127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("start");
    assert_eq!(emu.info().client_secret, info.client_secret);
    assert_eq!(
        emu.info().certificate_thumbprint_sha1,
        info.certificate_thumbprint_sha1
    );
    assert_eq!(emu.info().pfx_password, info.pfx_password);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("client-cert.pem")).expect("cert"),
        cert_pem
    );

    // A corrupted certificate is regenerated; the secret is kept.
    std::fs::write(dir.path().join("client-cert.pem"), "garbage").expect("write");
    let third = Config::embedded(dir.path()).expect("embedded third");
    let emu3 = Emulator::start(third, "127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("start");
    assert_ne!(
        emu3.info().certificate_thumbprint_sha1,
        info.certificate_thumbprint_sha1
    );
    assert_eq!(emu3.info().client_secret, info.client_secret);
    drop(emu3);
    emu.shutdown().await;
}

#[tokio::test]
async fn file_config_with_state_dir_writes_env() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = Config::from_toml_str(crate::support::EDGE_TOML, dir.path())
        .expect("config")
        .with_state_dir(dir.path());
    let emu = Emulator::start(config, "127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("start");
    let env = std::fs::read_to_string(dir.path().join("env")).expect("env");
    assert!(
        env.contains("export AZURE_CLIENT_ID='aaaaaaaa-0000-0000-0000-000000000001'"),
        "{env}"
    );
    assert!(env.contains("export AZURE_CLIENT_SECRET='pw'"), "{env}");
    assert_eq!(emu.info().tenant_domain, "home.example.com");
    // Dropping stops the server.
    let addr = emu.local_addr();
    drop(emu);
    tokio::task::yield_now().await;
    let connect = tokio::net::TcpStream::connect(addr).await;
    if let Ok(stream) = connect {
        // The listener may linger briefly in the kernel backlog; a request must fail.
        drop(stream);
        let r = reqwest::Client::new()
            .get(format!("http://{addr}/_emulator/stats"))
            .send()
            .await;
        assert!(r.is_err(), "server still answering after drop");
    }
}
