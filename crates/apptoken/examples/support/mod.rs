//! What every example needs: an app to run as. With `AZURE_CLIENT_ID` set
//! the examples use your app registration (the `AZURE_*` variables Azure
//! Identity reads) and `APPTOKEN_SCOPE`; without it they start the embedded
//! emulator in-process on a free loopback port, so `cargo run --example …`
//! works offline and `cargo test --examples` runs each of them.

#![allow(dead_code)]

use apptoken_emulator::{Config, Emulator, EmulatorInfo, RunningEmulator};

/// Where the example's tokens come from.
pub(crate) struct Target {
    /// The emulator, when no app is configured (kept running until dropped).
    pub(crate) emulator: Option<RunningEmulator>,
    /// The emulator's identity, authority and sample API.
    pub(crate) info: Option<EmulatorInfo>,
    /// The scope to ask for: `APPTOKEN_SCOPE`, Graph, or the sample API's.
    pub(crate) scope: String,
    _state: Option<tempfile::TempDir>,
}

/// The emulator, unless `AZURE_CLIENT_ID` names a real app.
pub(crate) async fn target() -> Result<Target, Box<dyn std::error::Error>> {
    if std::env::var_os("AZURE_CLIENT_ID").is_some() {
        let scope = std::env::var("APPTOKEN_SCOPE")
            .unwrap_or_else(|_| "https://graph.microsoft.com/.default".into());
        return Ok(Target {
            emulator: None,
            info: None,
            scope,
            _state: None,
        });
    }
    let state = tempfile::tempdir()?;
    let emulator = Emulator::start(Config::embedded(state.path())?, "127.0.0.1:0".parse()?).await?;
    let info = emulator.info().clone();
    eprintln!(
        "(no AZURE_CLIENT_ID: using the embedded emulator at {})",
        info.authority_host
    );
    Ok(Target {
        scope: info.sample_scope.clone(),
        emulator: Some(emulator),
        info: Some(info),
        _state: Some(state),
    })
}

/// Calls the sample API's `/users` with `header` and returns how many
/// users it listed (emulator only).
pub(crate) async fn list_users(
    info: &EmulatorInfo,
    header: &str,
) -> Result<usize, Box<dyn std::error::Error>> {
    let body: serde_json::Value = reqwest::Client::new()
        .get(format!("{}/users", info.sample_api))
        .header("authorization", header)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok(body["value"].as_array().map_or(0, Vec::len))
}
