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
    clean_command(BIN)
}

/// Where a child's managed-identity chain finds IMDS unless a test says
/// otherwise: a closed loopback port, so no test ever sends a packet to
/// 169.254.169.254.
pub(crate) const NO_IMDS: &str = "http://127.0.0.1:1";

/// `program` with a clean environment (`PATH`, `HOME`, `TMPDIR` only, and
/// IMDS on a closed loopback port: [`NO_IMDS`]) and no standard input.
pub(crate) fn clean_command(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut cmd = Command::new(program);
    cmd.env_clear();
    for k in ["PATH", "HOME", "TMPDIR"] {
        if let Ok(v) = std::env::var(k) {
            cmd.env(k, v);
        }
    }
    cmd.env("AZURE_POD_IDENTITY_AUTHORITY_HOST", NO_IMDS);
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
    http_with(addr, method, path, "application/json", body)
}

/// [`http`] with another `Content-Type`.
pub(crate) fn http_with(
    addr: &str,
    method: &str,
    path: &str,
    content_type: &str,
    body: &str,
) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// A file's text, empty while it does not exist (a log being written).
pub(crate) fn read_lossy(path: &Path) -> String {
    std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// Waits until the log file holds `needle` (the process wrote that line).
pub(crate) fn until_logged(log: &Path, needle: &str) {
    until(&format!("'{needle}' in {}", log.display()), || {
        read_lossy(log).contains(needle)
    });
}

/// A stand-in web API on 127.0.0.1:0 whose pages the test answers when it
/// wants: every request is reported as it arrives ([`GatedApi::next_request`]),
/// and a held page is answered only after [`GatedApi::release`]. Page `i`
/// (from 0) holds ten items `{"page": i, "n": …}` and links to page `i + 1`.
pub(crate) struct GatedApi {
    /// `http://127.0.0.1:PORT/v1.0`, the `base_url` of an `[apis]` table.
    pub(crate) base: String,
    requests: std::sync::mpsc::Receiver<String>,
    release: std::sync::mpsc::Sender<()>,
}

impl GatedApi {
    /// `pages` pages at `/v1.0/users` (then `?page=N`); those in `held`
    /// wait for a release.
    pub(crate) fn start(pages: usize, held: &[usize]) -> GatedApi {
        use std::sync::{Arc, Mutex, mpsc};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let origin = format!("http://{}", listener.local_addr().unwrap());
        let (req_tx, requests) = mpsc::channel();
        let (release, rel_rx) = mpsc::channel::<()>();
        let rel_rx = Arc::new(Mutex::new(rel_rx));
        let held = held.to_vec();
        let o = origin.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { return };
                let (req_tx, rel_rx, held, origin) =
                    (req_tx.clone(), Arc::clone(&rel_rx), held.clone(), o.clone());
                std::thread::spawn(move || {
                    let mut head = Vec::new();
                    let mut byte = [0u8; 1];
                    while !head.ends_with(b"\r\n\r\n") {
                        match conn.read(&mut byte) {
                            Ok(1) => head.push(byte[0]),
                            _ => return,
                        }
                    }
                    let head = String::from_utf8_lossy(&head).into_owned();
                    let target = head.split_whitespace().nth(1).unwrap_or("").to_string();
                    let page = target
                        .split_once("page=")
                        .and_then(|(_, p)| p.parse::<usize>().ok())
                        .unwrap_or(0);
                    let _ = req_tx.send(target);
                    if held.contains(&page) {
                        let rx = rel_rx.lock().unwrap();
                        if rx.recv().is_err() {
                            return;
                        }
                    }
                    let items: Vec<_> = (0..10)
                        .map(|n| serde_json::json!({"page": page, "n": n}))
                        .collect();
                    let mut body = serde_json::json!({ "value": items });
                    if page + 1 < pages {
                        body["@odata.nextLink"] =
                            format!("{origin}/v1.0/users?page={}", page + 1).into();
                    }
                    let body = body.to_string();
                    let _ = write!(
                        conn,
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                });
            }
        });
        GatedApi {
            base: format!("{origin}/v1.0"),
            requests,
            release,
        }
    }

    /// The next request's target (path and query), as it arrives.
    pub(crate) fn next_request(&self) -> String {
        self.requests
            .recv_timeout(Duration::from_secs(90))
            .expect("timed out waiting for a request to the API")
    }

    /// Answers one held request (now or when it arrives).
    pub(crate) fn release(&self) {
        self.release.send(()).unwrap();
    }
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
