//! The token cache moves between apptoken and MSAL Python (MSAL's JSON
//! format), both ways, with no token request. Needs the virtualenv that
//! scripts/test.sh creates: FAILS (never skips) without it.

use std::path::PathBuf;

use apptoken::{Authority, ClientSecret, ConfidentialClient, Credential};

use crate::support::*;

fn python() -> PathBuf {
    let path = std::env::var_os("APPTOKEN_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python")
        });
    assert!(
        path.exists(),
        "MSAL Python is missing ({}): run scripts/test.sh, which creates .venv",
        path.display()
    );
    path
}

fn client(env: &TestEnv) -> ConfidentialClient {
    ConfidentialClient::builder()
        .authority(Authority::from_host(&env.emulator.base_url(), HOME_TENANT).unwrap())
        .client_id(CLIENT_ID)
        .credential(Credential::secret(ClientSecret::new(SECRET)))
        .add_root_certificate_pem(env.emulator.ca_certificate_pem().unwrap())
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn msal_python_reads_our_cache_and_we_read_its() {
    let env = start_tls().await;
    let ours = client(&env);
    let token = ours.acquire_token(&[SCOPE]).await.unwrap();
    assert_eq!(env.requests(), 1);

    let exported = env.dir.path().join("apptoken-export.json");
    std::fs::write(&exported, ours.export_msal_cache()).unwrap();
    let msal_cache = env.dir.path().join("msal-cache.json");
    let plan = env.dir.path().join("plan.json");
    std::fs::write(
        &plan,
        serde_json::json!({
            "authority_host": env.emulator.base_url(),
            "tenant": HOME_TENANT,
            "other_tenant": OTHER_TENANT,
            "client_id": CLIENT_ID,
            "secret": SECRET,
            "scope": SCOPE,
            "exported": exported,
            "msal_cache": msal_cache,
        })
        .to_string(),
    )
    .unwrap();
    let ca = env.dir.path().join("ca.pem");
    std::fs::write(&ca, env.emulator.ca_certificate_pem().unwrap()).unwrap();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/it/msal_roundtrip.py");
    let python = python();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(python)
            .arg(script)
            .arg(plan)
            .env("REQUESTS_CA_BUNDLE", ca)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["a_error"], serde_json::Value::Null, "{r}");
    assert_eq!(
        r["a_source"], "cache",
        "MSAL served our token from its cache"
    );
    assert_eq!(r["a_token"], token.secret());
    assert_eq!(
        env.requests(),
        2,
        "only MSAL's own token for the other tenant was requested"
    );

    // MSAL's cache, imported: the other tenant's token without a request.
    let fresh = client(&env);
    let imported = fresh
        .import_msal_cache(&std::fs::read_to_string(&msal_cache).unwrap())
        .unwrap();
    assert_eq!(imported, 1);
    let t = fresh
        .acquire_token_for_tenant(&[SCOPE], OTHER_TENANT)
        .await
        .unwrap();
    assert_eq!(t.secret(), r["b_token"].as_str().unwrap());
    assert_eq!(env.requests(), 2);
    // Garbage is an error, foreign entries are skipped.
    assert!(fresh.import_msal_cache("not json").is_err());
    assert_eq!(
        fresh
            .import_msal_cache(r#"{"AccessToken":{"x":{"client_id":"other"}}}"#)
            .unwrap(),
        0
    );
}
