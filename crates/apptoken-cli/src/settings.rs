//! Reading the CLI's settings: `--config FILE` and the `AZURE_*` variables.

use std::path::Path;

use anyhow::Context;
use apptoken::ClientConfig;
use serde::Deserialize;

/// The configuration file. Only the `[identity]` table is read by `token`
/// and `call`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    identity: Option<ClientConfig>,
}

/// The file's `[identity]` (if a file is given), completed by the environment.
pub(crate) fn client_config(path: Option<&Path>) -> anyhow::Result<ClientConfig> {
    let env = ClientConfig::from_env()?;
    let Some(path) = path else { return Ok(env) };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the configuration file '{}'", path.display()))?;
    let file: ConfigFile = toml::from_str(&text)
        .map_err(|e| crate::failure::CliConfigError(format!("{}: {e}", path.display())))?;
    let mut identity = file.identity.unwrap_or_default();
    // Relative paths in the file are relative to the file.
    let base = path.parent().unwrap_or(Path::new("."));
    for p in [
        &mut identity.client_secret_file,
        &mut identity.certificate_path,
        &mut identity.certificate_password_file,
        &mut identity.federated_token_file,
    ] {
        if let Some(rel) = p.as_ref().filter(|p| p.is_relative()) {
            *p = Some(base.join(rel));
        }
    }
    Ok(identity.or_env(env))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_errors_name_the_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("daemon.toml");
        std::fs::write(
            &path,
            "[identity]\ntenant_id = \"a.example\"\nclient_secret = \"inline\"\n",
        )
        .unwrap();
        let e = client_config(Some(&path)).unwrap_err().to_string();
        assert!(
            e.contains("daemon.toml") && e.contains("line 3") && e.contains("client_secret"),
            "{e}"
        );
        std::fs::write(
            &path,
            "[identity]\ntenant_id = \"a.example\"\nclient_secret_file = \"secret\"\n",
        )
        .unwrap();
        let c = client_config(Some(&path)).unwrap();
        assert_eq!(c.client_secret_file.unwrap(), dir.path().join("secret"));
        let e = client_config(Some(&dir.path().join("missing.toml")))
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing.toml"), "{e}");
    }
}
