//! MSAL Python (the version pinned in tests/peers/requirements.txt) against
//! the emulator over HTTPS: secret, certificate (SHA-1 thumbprint, x5c,
//! SHA-256), its token cache, instance discovery and the known-host path.
//!
//! Needs the virtualenv that scripts/test.sh creates; FAILS (never skips)
//! when it is missing.

use std::path::PathBuf;
use std::process::Command;

use apptoken_emulator::{Config, Emulator, RunningEmulator};
use serde_json::{Value, json};

/// The Python interpreter of the venv with MSAL: `$APPTOKEN_PYTHON`, else
/// `<repo>/.venv/bin/python`.
pub(crate) fn python() -> PathBuf {
    let path = std::env::var_os("APPTOKEN_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python")
        });
    assert!(
        path.exists(),
        "MSAL Python is missing: no interpreter at {} (APPTOKEN_PYTHON). \
         Run scripts/test.sh, which creates the .venv with tests/peers/requirements.txt.",
        path.display()
    );
    path
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/msal/client_credentials.py")
}

/// Runs the script on a blocking thread (the emulator keeps serving) and
/// returns its `results` object.
async fn run_msal(emu: &RunningEmulator, dir: &std::path::Path, cases: &[&str]) -> Value {
    let info = emu.info().clone();
    let read =
        |p: &Option<PathBuf>| std::fs::read_to_string(p.as_deref().expect("path")).expect("read");
    let plan = json!({
        "base": emu.base_url(),
        "port": emu.local_addr().port(),
        "tenant": info.tenant_id,
        "client_id": info.client_id,
        "secret": info.client_secret,
        "scope": info.sample_scope,
        "private_key": read(&info.private_key_path),
        "certificate": read(&info.certificate_path),
        "thumbprint": info.certificate_thumbprint_sha1,
        "cases": cases,
    });
    let plan_path = dir.join("msal-plan.json");
    std::fs::write(&plan_path, plan.to_string()).expect("write plan");
    let ca = info.ca_certificate_path.clone().expect("TLS: ca.pem");
    let python = python();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(&python)
            .arg(script())
            .arg(&plan_path)
            .env("REQUESTS_CA_BUNDLE", &ca)
            .env_remove("SSL_CERT_FILE")
            .env_remove("HTTPS_PROXY")
            .env_remove("https_proxy")
            .env("NO_PROXY", "*")
            .output()
    })
    .await
    .expect("join")
    .unwrap_or_else(|e| panic!("cannot run MSAL Python ({e}); run scripts/test.sh"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the MSAL script failed ({}); if msal is not importable, run scripts/test.sh\nstdout: {stdout}\nstderr: {stderr}",
        output.status
    );
    let report: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("script output is not JSON ({e}): {stdout}\n{stderr}"));
    assert_eq!(report["msal"], "1.39.0", "pinned MSAL version");
    report["results"].clone()
}

async fn start_tls(dir: &std::path::Path) -> RunningEmulator {
    let config = Config::embedded(dir).expect("config").with_tls(true);
    Emulator::start(config, "127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("start")
}

#[track_caller]
fn assert_issued(result: &Value, emu: &RunningEmulator, azpacr: &str) {
    assert_eq!(result["ok"], true, "{result:#}");
    assert_eq!(result["token_source"], "identity_provider", "{result:#}");
    let claims = &result["claims"];
    let info = emu.info();
    assert_eq!(claims["azp"], info.client_id.as_str(), "{claims:#}");
    assert_eq!(claims["tid"], info.tenant_id.as_str(), "{claims:#}");
    assert_eq!(claims["azpacr"], azpacr, "{claims:#}");
    assert_eq!(claims["roles"], json!(["Users.Read.All"]), "{claims:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn msal_python_acquires_tokens_for_client() {
    let dir = tempfile::tempdir().expect("tempdir");
    let emu = start_tls(dir.path()).await;
    let results = run_msal(
        &emu,
        dir.path(),
        &[
            "secret",
            "certificate",
            "certificate_x5c",
            "certificate_sha256",
            "cache",
            "instance_discovery",
            "known_host",
            "wrong_secret",
            "cp1",
        ],
    )
    .await;

    assert_issued(&results["secret"], &emu, "1");
    assert_issued(&results["certificate"], &emu, "2");
    assert_issued(&results["certificate_x5c"], &emu, "2");
    assert_issued(&results["certificate_sha256"], &emu, "2");
    assert_issued(&results["instance_discovery"], &emu, "1");
    assert_issued(&results["known_host"], &emu, "2");

    // The second call is answered from MSAL's cache: no request reached us.
    let cache = &results["cache"];
    assert_issued(&cache["first"], &emu, "1");
    assert_eq!(cache["ok"], true, "{cache:#}");
    assert_eq!(cache["token_source"], "cache", "{cache:#}");
    assert_eq!(
        cache["token_requests_before"], cache["token_requests_after"],
        "{cache:#}"
    );

    // An Entra error reaches MSAL's result intact.
    let wrong = &results["wrong_secret"];
    assert_eq!(wrong["ok"], false, "{wrong:#}");
    assert_eq!(wrong["error"], "invalid_client", "{wrong:#}");
    assert_eq!(wrong["error_codes"], json!([7000215]), "{wrong:#}");

    // client_capabilities=["cp1"]: MSAL sends the claims parameter; the token says so.
    assert_issued(&results["cp1"], &emu, "1");
    assert_eq!(results["cp1"]["claims"]["xms_cc"], json!(["cp1"]));

    // Exactly one token request per network acquisition (9 cases, the cached call none).
    let stats = emu.stats();
    assert_eq!(stats.token_requests_total(), 9, "{stats:?}");
    assert!(stats.discovery_requests() >= 9, "{stats:?}");
}
