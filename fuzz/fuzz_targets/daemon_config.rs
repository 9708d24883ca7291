//! The daemon's configuration check (`apptoken_daemon::DaemonConfig::from_toml_str`):
//! any text gives a configuration or a list of problems with places, never
//! a panic, and every problem's line and column lie inside the text.
//!
//! The file is read as if it were `daemon.toml` in a scratch directory that
//! holds a client secret, a certificate with its key, a cache key and a CA
//! (all mode 0600), which is also `${CREDENTIALS_DIRECTORY}`; no other
//! environment variable is set. The check reads the files a configuration
//! names: inputs whose `ca_file`s point outside that directory or `/etc`
//! (`/dev/zero`, a FIFO) are skipped, so that a run never blocks.

#![no_main]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

const CERT: &[u8] = include_bytes!("../../crates/apptoken/tests/fixtures/leaf.combined.pem");
const CA: &[u8] = include_bytes!("../../crates/apptoken/tests/fixtures/ca.cert.pem");

fn scratch() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("apptoken-fuzz-daemon-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("out")).expect("scratch dir");
        for (name, content) in [
            (
                "client-secret",
                &b"fuzz~secret-value-0123456789abcdefghij"[..],
            ),
            ("cert.pem", CERT),
            (
                "cache-key",
                b"AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=\n",
            ),
            ("ca.pem", CA),
        ] {
            let p = dir.join(name);
            std::fs::write(&p, content).expect("scratch file");
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        }
        dir
    })
}

/// Whether every `*ca_file` value stays in the scratch directory or `/etc`.
fn safe(value: &toml::Value, key: &str, dir: &Path) -> bool {
    match value {
        toml::Value::String(s) if key.ends_with("ca_file") => {
            !s.contains("..")
                && (!s.starts_with('/') || s.starts_with("/etc/") || Path::new(s).starts_with(dir))
        }
        toml::Value::Table(t) => t.iter().all(|(k, v)| safe(v, k, dir)),
        toml::Value::Array(a) => a.iter().all(|v| safe(v, key, dir)),
        _ => true,
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let dir = scratch();
    // Text that is not TOML is refused before any file is read.
    if let Ok(table) = text.parse::<toml::Table>()
        && !table.iter().all(|(k, v)| safe(v, k, dir))
    {
        return;
    }
    let env = |name: &str| (name == "CREDENTIALS_DIRECTORY").then(|| dir.display().to_string());
    match apptoken_daemon::DaemonConfig::from_toml_str(text, &dir.join("daemon.toml"), &env) {
        Ok(config) => {
            let _ = (format!("{config:?}"), config.credential_files());
        }
        Err(apptoken_daemon::Error::Config(problems)) => {
            assert!(!problems.is_empty());
            let lines = text.split('\n').count();
            for p in &problems {
                let _ = p.to_string();
                if let Some((line, col)) = p.location {
                    assert!(line >= 1 && line <= lines, "{p}: line {line} of {lines}");
                    assert!(col >= 1, "{p}");
                }
            }
        }
        Err(e) => panic!("not a configuration error: {e:?}"),
    }
});
