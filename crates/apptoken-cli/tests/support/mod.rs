//! Shared by the `apptoken` end-to-end tests: the binary with a clean
//! environment, bounded polling, a minimal HTTP client, and the emulator as
//! a child process.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_apptoken");

pub(crate) struct ChildGuard(pub(crate) Option<Child>);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub(crate) fn apptoken() -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_clear();
    for k in ["PATH", "HOME", "TMPDIR"] {
        if let Ok(v) = std::env::var(k) {
            cmd.env(k, v);
        }
    }
    cmd.stdin(Stdio::null());
    cmd
}

pub(crate) fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

pub(crate) fn until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(90);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A minimal HTTP/1.1 client for the emulator's admin API.
pub(crate) fn http(addr: &str, method: &str, path: &str, body: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

pub(crate) struct Emulator {
    _child: ChildGuard,
    pub(crate) state: tempfile::TempDir,
    pub(crate) info: serde_json::Value,
    pub(crate) addr: String,
}

pub(crate) fn start_emulator(config: Option<&Path>) -> Emulator {
    let state = tempfile::tempdir().unwrap();
    let mut cmd = apptoken();
    cmd.args(["emulator", "--listen", "127.0.0.1:0", "--state-dir"])
        .arg(state.path());
    if let Some(c) = config {
        cmd.arg("--config").arg(c);
    }
    let child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let guard = ChildGuard(Some(child));
    let json = state.path().join("emulator.json");
    until("the emulator's emulator.json", || {
        std::fs::read_to_string(&json)
            .is_ok_and(|s| serde_json::from_str::<serde_json::Value>(&s).is_ok())
    });
    let info: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let addr = info["authority_host"]
        .as_str()
        .unwrap()
        .trim_start_matches("http://")
        .to_string();
    Emulator {
        _child: guard,
        state,
        info,
        addr,
    }
}

impl Emulator {
    pub(crate) fn s(&self, k: &str) -> String {
        self.info[k].as_str().unwrap_or_default().to_string()
    }

    /// A daemon configuration using the emulator's secret; `cache` is the
    /// body of a `[cache]` table (none when empty).
    pub(crate) fn daemon_toml(&self, cache: &str, daemon: &str, jobs: &str) -> String {
        let cache = if cache.is_empty() {
            String::new()
        } else {
            format!("[cache]\n{cache}\n\n")
        };
        format!(
            "[identity]\nauthority_host = \"{}\"\ntenant_id = \"{}\"\nclient_id = \"{}\"\nclient_secret_file = \"{}\"\n\n[apis.sample]\nbase_url = \"{}\"\nscopes = [\"{}\"]\n\n{cache}[daemon]\n{daemon}\n\n{jobs}\n",
            self.s("authority_host"),
            self.s("tenant_id"),
            self.s("client_id"),
            self.state.path().join("client-secret").display(),
            self.s("sample_api"),
            self.s("sample_scope"),
        )
    }

    /// The daemon configuration written to `dir/daemon.toml`.
    pub(crate) fn daemon_config(&self, dir: &Path, jobs: &str, daemon: &str) -> PathBuf {
        let p = dir.join("daemon.toml");
        std::fs::write(&p, self.daemon_toml("", daemon, jobs)).unwrap();
        p
    }

    /// Token requests the emulator received.
    pub(crate) fn token_requests(&self) -> u64 {
        body(&http(&self.addr, "GET", "/_emulator/stats", ""))["token_requests_total"]
            .as_u64()
            .unwrap()
    }

    pub(crate) fn add_fault(&self, json: &str) {
        let r = http(&self.addr, "POST", "/_emulator/faults", json);
        assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    }

    /// How many faults are still waiting (a `times: 1` fault leaves the
    /// list when it fires: the request is then being delayed).
    pub(crate) fn faults_pending(&self) -> usize {
        body(&http(&self.addr, "GET", "/_emulator/faults", ""))["faults"]
            .as_array()
            .map_or(usize::MAX, Vec::len)
    }
}

/// The JSON body of an HTTP answer from [`http`].
pub(crate) fn body(r: &str) -> serde_json::Value {
    serde_json::from_str(r.split("\r\n\r\n").nth(1).unwrap_or("{}")).unwrap_or_default()
}

/// Writes a file only its owner can read.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
}
