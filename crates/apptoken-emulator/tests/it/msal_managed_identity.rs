//! Third-party witnesses: MSAL Python's `ManagedIdentityClient` and
//! azure-identity's `ManagedIdentityCredential` (versions pinned in
//! tests/peers/requirements.txt) get tokens from the emulator over IMDS
//! (`AZURE_POD_IDENTITY_AUTHORITY_HOST`) and over App Service
//! (`IDENTITY_ENDPOINT` + `IDENTITY_HEADER`), system-assigned and by each
//! user-assigned id form.
//!
//! The child's environment is cleared and holds only the variables that
//! select the source, always with `AZURE_POD_IDENTITY_AUTHORITY_HOST` on
//! loopback, so no client can fall back to 169.254.169.254 (the script also
//! refuses to resolve anything but loopback). FAILS (never skips) when the
//! interpreter or a package is missing.

use std::path::PathBuf;
use std::process::Command;

use apptoken_emulator::{Config, Emulator, ManagedIdentityInfo, RunningEmulator};
use serde_json::{Value, json};

const SAMPLE: &str = "api://apptoken-sample-api";

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/msal/managed_identity.py")
}

fn identity(emu: &RunningEmulator, kind: &str) -> ManagedIdentityInfo {
    emu.info()
        .managed_identities
        .iter()
        .find(|m| m.kind == kind)
        .cloned()
        .expect("identity")
}

/// Runs the script with exactly `env` and returns its report.
async fn run(dir: &std::path::Path, plan: &Value, env: Vec<(&'static str, String)>) -> Value {
    let plan_path = dir.join("mi-plan.json");
    std::fs::write(&plan_path, plan.to_string()).expect("write plan");
    let python = crate::msal::python();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(&python)
            .arg(script())
            .arg(&plan_path)
            .env_clear()
            .envs(env)
            .env("NO_PROXY", "*")
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .output()
    })
    .await
    .expect("join")
    .unwrap_or_else(|e| panic!("cannot run Python ({e}); run scripts/test.sh"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the managed-identity script failed ({}); if msal or azure-identity is not importable, run scripts/test.sh\nstdout: {stdout}\nstderr: {stderr}",
        output.status
    );
    let report: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("script output is not JSON ({e}): {stdout}\n{stderr}"));
    assert_eq!(report["msal"], "1.39.0", "pinned MSAL version");
    assert_eq!(
        report["azure_identity"], "1.25.1",
        "pinned azure-identity version"
    );
    report["results"].clone()
}

#[track_caller]
fn assert_token_of(results: &Value, case: &str, who: &ManagedIdentityInfo) {
    let r = &results[case];
    assert_eq!(r["ok"], true, "{case}: {r:#}");
    let c = &r["claims"];
    assert_eq!(c["oid"], who.object_id.as_str(), "{case}: {c:#}");
    assert_eq!(c["appid"], who.client_id.as_str(), "{case}: {c:#}");
    assert_eq!(c["xms_mirid"], who.resource_id.as_str(), "{case}: {c:#}");
    assert_eq!(c["aud"], SAMPLE, "{case}: {c:#}");
    assert_eq!(c["idtyp"], "app", "{case}: {c:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn msal_python_and_azure_identity_get_managed_identity_tokens_over_imds_and_app_service() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = Config::embedded(dir.path()).expect("config");
    let emu = Emulator::start(config, "127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("start");
    let (system, user) = (identity(&emu, "system"), identity(&emu, "user"));
    let info = emu.info().clone();
    assert!(info.imds_base_url.starts_with("http://127.0.0.1:"));
    let plan = |object_id_param: &str, resource_id_param: &str| {
        json!({
            "resource": SAMPLE,
            "scope": format!("{SAMPLE}/.default"),
            "client_id": user.client_id,
            "object_id": user.object_id,
            "resource_id": user.resource_id,
            "object_id_param": object_id_param,
            "resource_id_param": resource_id_param,
        })
    };
    // azure-identity 1.25 reads only `client_id`, `object_id` and
    // `resource_id` from `identity_config` (msal_managed_identity_client.py)
    // and silently uses the system-assigned identity for any other key
    // (`msi_res_id`, `mi_res_id`, `principal_id`): the claims below catch that.
    let cases = [
        ("msal_system", &system),
        ("msal_client_id", &user),
        ("msal_object_id", &user),
        ("msal_resource_id", &user),
        ("azid_system", &system),
        ("azid_client_id", &user),
        ("azid_object_id", &user),
        ("azid_resource_id", &user),
    ];

    let imds = run(
        dir.path(),
        &plan("object_id", "resource_id"),
        vec![(
            "AZURE_POD_IDENTITY_AUTHORITY_HOST",
            info.imds_base_url.clone(),
        )],
    )
    .await;
    for (case, who) in cases {
        assert_token_of(&imds, case, who);
    }
    let stats = emu.stats();
    assert_eq!(stats.managed_identity("imds", "success"), 8, "{stats:?}");
    assert_eq!(stats.managed_identity("app_service", "success"), 0);

    let app_service = run(
        dir.path(),
        &plan("object_id", "resource_id"),
        vec![
            (
                "AZURE_POD_IDENTITY_AUTHORITY_HOST",
                info.imds_base_url.clone(),
            ),
            ("IDENTITY_ENDPOINT", info.identity_endpoint.clone()),
            ("IDENTITY_HEADER", info.identity_header.clone()),
        ],
    )
    .await;
    for (case, who) in cases {
        assert_token_of(&app_service, case, who);
    }
    let stats = emu.stats();
    assert_eq!(
        stats.managed_identity("app_service", "success"),
        8,
        "{stats:?}"
    );
    assert_eq!(stats.managed_identity("imds", "success"), 8, "{stats:?}");
    // azure-identity read the string `expires_on` as the token's expiry.
    let expires_on = app_service["azid_system"]["expires_on"]
        .as_i64()
        .expect("expires_on");
    assert!(
        expires_on > emu.now().unix_timestamp() + 86_000,
        "{expires_on}"
    );
    emu.shutdown().await;
}
